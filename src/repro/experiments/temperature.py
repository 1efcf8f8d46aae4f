"""The temperature ablation (paper §2.5): CLIP learns the softmax temperature τ as a log-parameterised scalar,
initialised to 0.07 and clipped so the logit scale 1/τ never exceeds 100 "to prevent training instability". Here the
same model is trained with τ fixed at each of {0.01, 0.03, 0.07, 0.1, 0.3}, with τ learnable (clamped, the paper's
recipe) and learnable without the clamp; each run reports zero-shot accuracy, retrieval, how smooth its loss was,
and — for the learnable ones — the trajectory of τ and the first logged step at the clip. The budget lets Adam move
the logit scale to its clip (`repro.optim.logit_scale_reach`); `temperature_summary` reads the results."""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..evaluate import run_suites
from ..loading import load
from ..optim import logit_scale_reach
from ..train import TrainConfig, TrainingDiverged, read_log
from . import scaling
from .clip_small import PROFILES as CLIP_PROFILES
from .common import corpus_for, curves_from_log, shared_tokenizer, train_run
from .results import write_result

NAME = "temperature"

#: The paper's clip on the logit scale (§2.5); a logged scale at or above `AT_CLIP` counts as at the clip.
CLAMP = 100.0
AT_CLIP = 99.5
#: The cpu and gpu budgets must let Adam's bound carry the logit scale this many times past the clip
#: (`logit_scale_reach(lr, warmup, steps) >= REACH_MARGIN * CLAMP`), so the learnable settings are free to reach it.
REACH_MARGIN = 1.25

FIXED = (0.01, 0.03, 0.07, 0.1, 0.3)
#: setting name -> TrainConfig fields; "learnable" is the paper's recipe.
SETTINGS = {f"fixed {t:g}": {"temperature": "fixed", "fixed_temperature": t} for t in FIXED} | {
    "learnable": {"temperature": "learnable"},
    "learnable, unclamped": {"temperature": "unclamped"},
}

_SUITES = ("emoji-subcategory/val", "emoji-category/val", "emoji-subcategory/zeroshot", "emoji-concept/zeroshot",
           "emoji-subcategory/test-fluent-3d", "emoji-subcategory/test-fluent-high-contrast",
           "emoji-subcategory/test-openmoji-black")


def _rung(size: str) -> dict:
    """The model fields of one rung of the compute study's ResNet ladder (a copy)."""
    return copy.deepcopy(scaling.LADDERS["ResNet"][size])


#: Every setting is trained with the same recipe; the suites are scored zero-shot and retrieval on the validation
#: split. `select` is the validation suite the best fixed τ is chosen on, `score` the (different) suite the
#: learnable-versus-best-fixed comparison is reported on first (`temperature_summary.learnable_vs_best_fixed`).
#:
#: cpu: the headline's corpus and recipe (batch 256, lr 1e-3, warm-up a tenth) on the smallest ResNet rung, "RN 4",
#: so that 7 settings × 3 seeds fit about 90 minutes on 2 cores with Σ lr = 2.20 (logit scale reach 129 ≥ 125).
#: Estimate: the compute study (results/scaling/cpu/seed0.json) trained RN 4 for 1,024 steps of 256 in 52 s
#: (0.051 s/step, fp32, 2 cores); its evaluations took 13–45 s a point → 4,400 × 0.051 + ~30 s ≈ 250 s a run,
#: × 21 runs ≈ 88 minutes (the headline's seeds ran ±20% around the study's speed, so allow 70–105). The bound is
#: necessary, not sufficient: the headline (5,360 steps, Σ lr 2.68) moved log(scale) by only 0.42 (14.3 → 21.8).
#: Measured (bf16, AMD EPYC, 2 cores): ≈ 33 minutes a seed; 5 seeds, to tell learnable from the best fixed τ.
#: gpu: the headline corpus on "RN 16" at batch 1024 and lr 2e-3 (the gpu headline's), Σ lr = 2.40 (reach 158);
#: not sized from a measurement (no GPU result is committed yet).
PROFILES = {
    "smoke": {"corpus": CLIP_PROFILES["smoke"]["corpus"], "seeds": 1,
              "train": CLIP_PROFILES["smoke"]["train"] | dict(steps=12, warmup_steps=3),
              "suites": ("smoke-category/val", "smoke-concept/val", "smoke-category/test-outline"),
              "select": "smoke-category/val", "score": "smoke-category/test-outline"},
    "cpu": {"corpus": CLIP_PROFILES["cpu"]["corpus"], "seeds": 5,
            "train": dict(**_rung("RN 4"), data_size=32, batch_size=256, steps=4400, warmup_steps=440, lr=1e-3),
            "suites": _SUITES, "select": "emoji-subcategory/val", "score": "emoji-subcategory/zeroshot"},
    "gpu": {"corpus": CLIP_PROFILES["gpu"]["corpus"], "seeds": 3,
            "train": dict(**_rung("RN 16"), data_size=32, batch_size=1024, steps=2400, warmup_steps=240, lr=2e-3),
            "suites": _SUITES, "select": "emoji-subcategory/val", "score": "emoji-subcategory/zeroshot"},
}


def reach(profile: str) -> float:
    """The largest logit scale the profile's schedule lets Adam reach from 1/0.07 (`logit_scale_reach`)."""
    train = PROFILES[profile]["train"]
    return logit_scale_reach(train["lr"], train["warmup_steps"], train["steps"])


def roughness(loss: list[float]) -> float:
    """Mean absolute change of the logged loss between consecutive log points over the second half of training —
    a scale-free reading of "training instability" (0 for a smooth curve)."""
    tail = np.asarray(loss[len(loss) // 2:], dtype=np.float64)
    return float(np.abs(np.diff(tail)).mean()) if len(tail) > 1 else 0.0


def reached_clip_step(steps: list[int], logit_scale: list[float], at: float = AT_CLIP) -> int | None:
    """The first logged step whose logit scale is ≥ `at` (the clip at 100, allowing for rounding), or None."""
    return next((int(s) for s, v in zip(steps, logit_scale, strict=True) if v >= at), None)


def setting_configs(profile: str, seed: int, workdir: Path) -> dict[str, TrainConfig]:
    """The training configuration of every setting for one seed (one out_dir each under workdir)."""
    spec = PROFILES[profile]
    corpus = corpus_for(spec["corpus"])
    base = TrainConfig(corpus_dir=str(corpus), seed=seed, **copy.deepcopy(spec["train"]))
    tokenizer_path = shared_tokenizer(corpus, base.clip_config().vocab_size, Path(workdir), size=base.data_size)
    out = Path(workdir) / NAME / profile / f"seed{seed}"
    return {name: TrainConfig.from_dict(asdict(base) | fields | {
        "tokenizer": tokenizer_path, "out_dir": str(out / name.replace(", ", "-").replace(" ", "-"))})
        for name, fields in SETTINGS.items()}


def _trained(config: TrainConfig):
    """(model, tokenizer, log path, {"img_s", "wall_time_s"}) of the run `config` describes: trained now, or loaded
    from its out_dir when a finished run of the same configuration is there (its final weights, and a log that
    reaches the last step) — a sweep interrupted between settings resumes without retraining what it finished."""
    out = Path(config.out_dir)
    weights, log_path, saved = out / "model.safetensors", out / "metrics.jsonl", out / "config.json"
    if weights.is_file() and log_path.is_file() and saved.is_file() and \
            json.loads(saved.read_text(encoding="utf-8")) == json.loads(json.dumps(asdict(config))):
        last = read_log(log_path)[-1]
        if last["step"] == config.steps:
            model, _ = load(weights)
            return model, model.tokenizer, log_path, {"img_s": last["img_s"],
                                                      "wall_time_s": last["step"] * config.batch_size / last["img_s"]}
    summary = train_run(config)
    return (summary["objective"].model.eval(), summary["tokenizer"], summary["log"],
            {"img_s": summary["img_s"], "wall_time_s": summary["wall_time_s"]})


def run(profile: str, seed: int, workdir: Path, results_root: Path | None = None) -> Path:
    """Train and evaluate every temperature setting for one seed; returns the result file's path."""
    spec = PROFILES[profile]
    corpus = corpus_for(spec["corpus"])
    start = time.time()
    metrics: dict = {"settings": {}}
    curves: dict = {}
    configs = setting_configs(profile, seed, Path(workdir))
    for name, fields in SETTINGS.items():
        config = configs[name]
        try:
            model, tokenizer, log_path, summary = _trained(config)
        except TrainingDiverged as err:  # a result too: the setting is unstable
            metrics["settings"][name] = {"diverged": True, "config": fields, "error": str(err)}
            continue
        log = read_log(log_path)
        curves[name] = curves_from_log(log, ("loss", "logit_scale", "temperature"))
        evaluation = run_suites(model, tokenizer, corpus, config.data_size, suites=spec["suites"],
                                retrieval_splits=("val",))
        learnable = fields["temperature"] != "fixed"
        scales = curves[name]["logit_scale"]
        metrics["settings"][name] = {
            "diverged": False, "config": fields,
            "zeroshot": {s: evaluation[s]["top1"] for s in spec["suites"]},
            "retrieval": {k: v for k, v in evaluation["retrieval/val"].items() if "_r" in k},
            "final_loss": log[-1]["loss"], "loss_roughness": roughness([r["loss"] for r in log]),
            "final_temperature": log[-1]["temperature"], "final_logit_scale": log[-1]["logit_scale"],
            "max_logit_scale": max(scales),
            "reached_clip_step": reached_clip_step(curves[name]["step"], scales) if learnable else None,
            "img_s": summary["img_s"], "train_wall_time_s": summary["wall_time_s"],
        }
    base = asdict(configs["learnable"]) | {"out_dir": str(Path(workdir) / NAME / profile / f"seed{seed}")}
    settings = {"train": base, "corpus": spec["corpus"], "suites": list(spec["suites"]), "select": spec["select"],
                "score": spec["score"], "settings": SETTINGS, "clamp": CLAMP, "at_clip": AT_CLIP,
                "logit_scale_reach": logit_scale_reach(base["lr"], base["warmup_steps"], base["steps"])}
    return write_result(NAME, profile, seed, settings, metrics, time.time() - start, curves, results_root)
