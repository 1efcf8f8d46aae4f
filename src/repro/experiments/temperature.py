"""The temperature ablation (paper §2.5): CLIP learns the softmax temperature τ as a log-parameterised scalar,
initialised to 0.07 and clipped so the logit scale 1/τ never exceeds 100 "to prevent training instability". Here the
same model is trained with τ fixed at each of {0.01, 0.03, 0.07, 0.1, 0.3, 1.0}, with τ learnable (clamped, the
paper's recipe) and learnable without the clamp; each run reports zero-shot accuracy, retrieval, how smooth its
loss was, and — for the learnable ones — the trajectory of τ."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..evaluate import run_suites
from ..loading import load
from ..train import TrainConfig, TrainingDiverged, read_log
from .common import corpus_for, curves_from_log, shared_tokenizer, train_run
from .objectives import PROFILES as OBJECTIVE_PROFILES
from .results import write_result

NAME = "temperature"

FIXED = (0.01, 0.03, 0.07, 0.1, 0.3, 1.0)
#: setting name -> TrainConfig fields; "learnable" is the paper's recipe.
SETTINGS = {f"fixed {t:g}": {"temperature": "fixed", "fixed_temperature": t} for t in FIXED} | {
    "learnable": {"temperature": "learnable"},
    "learnable, unclamped": {"temperature": "unclamped"},
}

#: The training run of the objectives experiment's "clip" (same model, data, budget), evaluated on the
#: in-distribution, unseen-concept and held-out-style suites and in retrieval on the validation split.
PROFILES = {
    "smoke": {"corpus": "smoke", "seeds": 1, "train": OBJECTIVE_PROFILES["smoke"]["train"],
              "suites": ("smoke-category/val", "smoke-concept/val", "smoke-category/test-outline")},
    "cpu": {"corpus": "full", "seeds": 3, "train": OBJECTIVE_PROFILES["cpu"]["train"],
            "suites": ("emoji-subcategory/val", "emoji-category/val", "emoji-concept/zeroshot",
                       "emoji-subcategory/test-fluent-3d", "emoji-subcategory/test-fluent-high-contrast",
                       "emoji-subcategory/test-openmoji-black")},
    "gpu": {"corpus": "full", "seeds": 3, "train": OBJECTIVE_PROFILES["gpu"]["train"],
            "suites": ("emoji-subcategory/val", "emoji-category/val", "emoji-concept/zeroshot",
                       "emoji-subcategory/test-fluent-3d", "emoji-subcategory/test-fluent-high-contrast",
                       "emoji-subcategory/test-openmoji-black")},
}


def roughness(loss: list[float]) -> float:
    """Mean absolute change of the logged loss between consecutive log points over the second half of training —
    a scale-free reading of "training instability" (0 for a smooth curve)."""
    tail = np.asarray(loss[len(loss) // 2:], dtype=np.float64)
    return float(np.abs(np.diff(tail)).mean()) if len(tail) > 1 else 0.0


def setting_configs(profile: str, seed: int, workdir: Path) -> dict[str, TrainConfig]:
    """The training configuration of every setting for one seed (one out_dir each under workdir)."""
    spec = PROFILES[profile]
    corpus = corpus_for(spec["corpus"])
    base = TrainConfig(corpus_dir=str(corpus), seed=seed, **spec["train"])
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
            metrics["settings"][name] = {"diverged": True, "error": str(err)}
            continue
        log = read_log(log_path)
        curves[name] = curves_from_log(log, ("loss", "logit_scale", "temperature"))
        evaluation = run_suites(model, tokenizer, corpus, config.data_size, suites=spec["suites"],
                                retrieval_splits=("val",))
        metrics["settings"][name] = {
            "diverged": False, "config": fields,
            "zeroshot": {s: evaluation[s]["top1"] for s in spec["suites"]},
            "retrieval": {k: v for k, v in evaluation["retrieval/val"].items() if "_r" in k},
            "final_loss": log[-1]["loss"], "loss_roughness": roughness([r["loss"] for r in log]),
            "final_temperature": log[-1]["temperature"], "final_logit_scale": log[-1]["logit_scale"],
            "img_s": summary["img_s"], "train_wall_time_s": summary["wall_time_s"],
        }
    base = asdict(configs["learnable"]) | {"out_dir": str(Path(workdir) / NAME / profile / f"seed{seed}")}
    settings = {"train": base, "corpus": spec["corpus"],
                "suites": list(spec["suites"]), "settings": SETTINGS}
    return write_result(NAME, profile, seed, settings, metrics, time.time() - start, curves, results_root)
