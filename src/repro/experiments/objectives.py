"""Efficiency of training objectives (paper §2.3, Figure 2): zero-shot accuracy against images seen for a caption
Transformer language model, bag-of-words prediction, a contrastive objective with a bag-of-words text encoder, and
the full contrastive CLIP — the same image encoder, data, budget and schedule for all four.

The paper (ImageNet zero-shot, ResNet-50 image encoder, 400M pairs): bag-of-words prediction reaches the language
model's accuracy with 3× fewer images, and the contrastive bag-of-words objective is 4× more efficient again.
Here each objective is trained on the corpus and scored zero-shot with the same prompts at snapshots spaced
log-uniformly in images seen (the axis of Figure 2); `sample_efficiency` turns two curves into the paper's ratio,
and `objectives_summary` reads it per seed with an interval over seeds."""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from ..evaluate.objective_zeroshot import objective_zeroshot
from ..evaluate.runner import SplitCache, load_suites
from ..tokenizer import Tokenizer
from ..train import TrainConfig, read_log
from . import scaling
from .clip_small import PROFILES as CLIP_PROFILES
from .common import cached_json, corpus_for, curves_from_log, shared_tokenizer, suite_facts, train_run
from .fewshot import shots_to_match
from .results import provenance, result_path, write_record, write_result

log = logging.getLogger(__name__)

NAME = "objectives"

#: Figure 2's objectives, slowest (paper) first; keys of `repro.objectives.make_objective`.
OBJECTIVES = {
    "caption-lm": "Transformer language model (predict the caption)",
    "bow-predict": "bag-of-words prediction",
    "bow-contrastive": "bag-of-words contrastive",
    "clip": "contrastive (CLIP)",
}
#: The paper's ratios (Figure 2): (faster, slower) -> how many times fewer images the faster needs; the third is
#: the product of the two the paper states ("3× ... a further 4×", §2.3).
PAPER_RATIOS = {("bow-predict", "caption-lm"): 3.0, ("bow-contrastive", "bow-predict"): 4.0,
                ("bow-contrastive", "caption-lm"): 12.0}
#: The (faster, slower) pairs whose efficiency is reported: the paper's, then CLIP against its neighbours.
PAIRS = (("bow-predict", "caption-lm"), ("bow-contrastive", "bow-predict"), ("bow-contrastive", "caption-lm"),
         ("clip", "bow-contrastive"), ("clip", "caption-lm"))

#: One template for every objective: prompt ensembling is not the question here, and the language model scores every
#: (image, prompt) pair, so each extra template multiplies its cost.
_TEMPLATES = ("an emoji of a {}.",)


def _rung(size: str) -> dict:
    """The model fields of one rung of the compute study's ResNet ladder (a copy)."""
    return copy.deepcopy(scaling.LADDERS["ResNet"][size])


#: `snapshots` zero-shot evaluations per run at 2^-k fractions of the budget (`snapshot_steps`), the last at the end.
#:
#: cpu: the headline's corpus and recipe (batch 256, lr 1e-3, warm-up a tenth) for 2,600 steps (666k images, 2.5×
#: the compute study's), on the "RN 8" rung: the caption language model's output layer over the 8,192-token
#: vocabulary at every caption position costs ~20 GFLOP a step whatever the image encoder, so the headline's RN 16
#: affords only ~2,200 steps in the budget. Estimate, per step on 2 cores: clip 0.124 s (the compute study's RN 8,
#: results/scaling/cpu/seed0.json: 1,024 steps of 256 in 127 s); bag-of-words contrastive and prediction 0.72× and
#: 0.85× of it and the language model ~0.45 s (one-thread timings of a step of each objective on a random batch of
#: 256, longest caption 24 tokens: 0.72–0.78 s for the language model at RN 4/8, ~1.7× faster on two threads) →
#: 0.77 s for the four × 2,600 ≈ 2,000 s, plus 8 snapshots (~20 s each for the language model, which scores every
#: (image, prompt) pair: 935 × 95 on emoji-subcategory/val) and setup ≈ 2,280 s a seed → 3 seeds ≈ 115 minutes
#: (measured on an AMD EPYC: 2,240–2,420 s a seed). At that budget the language model stays at chance in every seed,
#: so it also trains for 4× the budget ("longer": 10,400 steps, 2.66M images, warm-up 1,040; snapshots continue the
#: log2 grid to 10): 477 img/s measured on two threads → ~95 minutes a seed more. 4 seeds: with three, each seed's
#: language model ended above chance on its own images but their interval over seeds did not exclude chance, so a
#: fourth was trained, the seed count fixed before its result was known (~2 h 15 min for its five runs).
#: gpu: the gpu headline's recipe on its corpus with the headline model ("RN 16"), 2,000 steps of 1,024; not sized
#: from a measurement (no GPU result is committed yet).
PROFILES = {
    "smoke": {"corpus": "smoke", "seeds": 1, "snapshots": 3, "templates": ("a {}.",),
              "suites": ("smoke-category/val", "smoke-concept/val"),
              "train": CLIP_PROFILES["smoke"]["train"] | dict(steps=12, warmup_steps=3), "longer": {"caption-lm": 2}},
    "cpu": {"corpus": CLIP_PROFILES["cpu"]["corpus"], "seeds": 4, "snapshots": 8, "templates": _TEMPLATES,
            "suites": ("emoji-subcategory/val", "emoji-category/val"),
            "train": dict(**_rung("RN 8"), data_size=32, batch_size=256, steps=2600, warmup_steps=260, lr=1e-3),
            "longer": {"caption-lm": 4}},
    "gpu": {"corpus": CLIP_PROFILES["gpu"]["corpus"], "seeds": 3, "snapshots": 8, "templates": _TEMPLATES,
            "suites": ("emoji-subcategory/val", "emoji-category/val", "emoji-subcategory/test-fluent-3d"),
            "train": dict(**_rung("RN 16"), data_size=32, batch_size=1024, steps=2000, warmup_steps=200, lr=2e-3)},
}


def longer_name(kind: str, factor: int) -> str:
    """The results' key of objective `kind` trained `factor` times the profile's budget ("caption-lm-x4"); the
    kind itself at factor 1. A profile's "longer" entry gives a slow objective such a budget beside its own, on the
    same log2 snapshot grid extended by log2(factor) snapshots."""
    if factor < 1 or factor & (factor - 1):
        raise ValueError(f"a longer budget must be a power of two times the profile's, got {factor!r}")
    return kind if factor == 1 else f"{kind}-x{factor}"


def base_kind(name: str) -> str:
    """The objective behind a results key: "caption-lm-x4" -> "caption-lm" (`longer_name`'s inverse)."""
    head, _, factor = name.rpartition("-x")
    return head if head in OBJECTIVES and factor.isdigit() else name


def snapshot_steps(steps: int, snapshots: int) -> list[int]:
    """`snapshots` steps spaced log-uniformly: steps · 2^-k for k = snapshots − 1 … 0, rounded (at least step 1;
    duplicates of a short run merged), so the curves are sampled evenly on Figure 2's log axis of images seen."""
    if steps < 1 or snapshots < 1:
        raise ValueError(f"need steps >= 1 and snapshots >= 1, got {steps} and {snapshots}")
    return sorted({max(1, round(steps / 2 ** k)) for k in range(snapshots)})


def train_at(config: TrainConfig, at: list[int], evaluate) -> tuple[dict, list[dict]]:
    """Train `config`, calling `evaluate(objective)` -> dict after each step in `at`; returns the training summary
    and one row per snapshot {"step", "images_seen", **evaluate(...)} (accuracy against images seen, Figure 2).

    Each row is appended to snapshots.partial.jsonl in the run folder as it is measured, so an interrupted run of
    the same settings resumes from its checkpoint with the snapshots it had (when they cover every snapshot step up
    to the checkpoint); otherwise the run starts afresh."""
    from ..checkpoint import read_metadata
    from ..runs import CHECKPOINT, resumable
    from ..train import train

    wanted, partial = set(at), Path(config.out_dir) / "snapshots.partial.jsonl"
    rows: list[dict] = []
    resume = False
    if resumable(config) and partial.is_file() and (Path(config.out_dir) / CHECKPOINT).is_file():
        done = int(read_metadata(Path(config.out_dir) / CHECKPOINT)["step"])
        saved = [json.loads(line) for line in partial.read_text(encoding="utf-8").splitlines() if line.strip()]
        saved = [r for r in saved if r.get("step") in wanted and r["step"] <= done]
        resume = {r["step"] for r in saved} == {s for s in wanted if s <= done}
        rows = saved if resume else []
    if resume:
        log.info("resuming %s with %d snapshots measured", config.out_dir, len(rows))
    else:
        partial.unlink(missing_ok=True)

    def callback(step: int, objective) -> None:
        if step in wanted:
            rows.append({"step": step, "images_seen": step * config.batch_size, **evaluate(objective)})
            with open(partial, "a", encoding="utf-8") as f:
                f.write(json.dumps(rows[-1], default=float) + "\n")
            log.info("step %d: %s", step, {k: v for k, v in rows[-1].items() if isinstance(v, float)})

    if resume:
        summary = train(config, resume=True, callback=callback)
    else:
        summary = train_run(config, callback=callback)
    rows = sorted({r["step"]: r for r in rows}.values(), key=lambda r: r["step"])  # a re-measured step: the last
    return summary, rows


def sample_efficiency(images_seen: Sequence[int], faster: Sequence[float], slower_final: float,
                      budget: float | None = None) -> dict:
    """How many times fewer images the `faster` curve needs to reach the accuracy `slower_final` that the slower
    objective reaches at the end of its budget `budget` (default: the faster curve's, `images_seen[-1]`) —
    Figure 2's "3× / 4× efficiency".

    The crossing is interpolated in log(images) between snapshots (as Figure 7 interpolates in log k). Returns
    `images` (float, or "<= first" / "> last" strings when the faster curve reaches it already at the first
    snapshot — so possibly earlier — or never) and `ratio` = budget / images (a float; for "<= first" only a lower
    bound `ratio_at_least`; never reached: only an upper bound `ratio_below` = budget / the faster curve's last
    snapshot). A ratio means something only if the slower objective rose above chance."""
    budget = images_seen[-1] if budget is None else budget
    images = shots_to_match(images_seen, faster, slower_final)
    if isinstance(images, float) and images > images_seen[0]:
        return {"images": images, "ratio": budget / images}
    if isinstance(images, float) or images.startswith("<"):  # reached at the first snapshot: maybe earlier
        return {"images": f"<= {images_seen[0]}", "ratio": None, "ratio_at_least": budget / images_seen[0]}
    return {"images": f"> {images_seen[-1]}", "ratio": None, "ratio_below": budget / images_seen[-1]}


def monotone_curve(images_seen: Sequence[int], accuracy: Sequence[float]) -> list[float]:
    """The closest non-decreasing curve to `accuracy` against log(images) (isotonic least squares, scikit-learn):
    accuracy rises with images in expectation, and each snapshot's sampling noise (one validation split scored)
    would otherwise let one lucky snapshot decide where a curve "first reaches" an accuracy. Figure 2's curves, on
    ImageNet's 50,000 validation images, hardly need such a step."""
    from sklearn.isotonic import IsotonicRegression

    x = [math.log(n) for n in images_seen]
    return [float(a) for a in IsotonicRegression(increasing=True).fit_transform(x, [float(a) for a in accuracy])]


def _setup(profile: str, seed: int, workdir: Path) -> dict:
    """What every objective of one seed shares: the base config, tokenizer, suites and split cache."""
    spec = PROFILES[profile]
    corpus = corpus_for(spec["corpus"])
    suites = {s.name: s for s in load_suites(corpus)}
    missing = [s for s in spec["suites"] if s not in suites]
    if missing:
        raise ValueError(f"profile {profile!r}: suites {missing} are not in {corpus}")
    base = TrainConfig(corpus_dir=str(corpus), seed=seed, **spec["train"])
    tokenizer_path = shared_tokenizer(corpus, base.clip_config().vocab_size, Path(workdir), size=base.data_size)
    settings = {"train": asdict(base) | {"tokenizer": tokenizer_path}, "corpus": spec["corpus"],
                "snapshots": spec["snapshots"], "snapshot_steps": snapshot_steps(base.steps, spec["snapshots"]),
                "spacing": "log2", "templates": list(spec["templates"]), "suites": list(spec["suites"]),
                "objectives": OBJECTIVES, "longer": dict(spec.get("longer", {}))}
    return {"spec": spec, "base": base, "tokenizer": tokenizer_path, "suites": suites, "settings": settings,
            "splits": SplitCache(None, corpus, base.data_size),
            "workdir": Path(workdir) / NAME / profile / f"seed{seed}"}


def _train_objective(setup: dict, kind: str, factor: int) -> tuple[dict, dict]:
    """Train objective `kind` for `factor` times the profile's budget, scoring zero-shot at the log2 snapshots
    (cached in its run folder); returns its metrics and its loss curve."""
    spec, base, suites, splits = setup["spec"], setup["base"], setup["suites"], setup["splits"]
    label = longer_name(kind, factor)
    config = TrainConfig.from_dict(asdict(base) | {
        "objective": kind, "tokenizer": setup["tokenizer"], "steps": base.steps * factor,
        "warmup_steps": base.warmup_steps * factor, "out_dir": str(setup["workdir"] / label)})
    grid = snapshot_steps(config.steps, spec["snapshots"] + int(math.log2(factor)))  # the same log2 grid, extended
    context = config.clip_config().context_length
    tokenizer = Tokenizer.load(setup["tokenizer"])

    def evaluate(objective) -> dict:
        return {name: objective_zeroshot(objective, tokenizer, splits.split(suites[name].split), suites[name],
                                         context, spec["templates"])["top1"] for name in spec["suites"]}

    def trained() -> dict:
        summary, snapshots = train_at(config, grid, evaluate)
        return {"snapshots": snapshots, "img_s": summary["img_s"], "train_wall_time_s": summary["wall_time_s"],
                "final_loss": summary["final"], "budget_factor": factor}

    # a finished objective is not retrained when the experiment is run again with the same plan
    key = {"config": asdict(config), "snapshot_steps": grid, "suites": list(spec["suites"]),
           "templates": list(spec["templates"])}
    metrics = cached_json(Path(config.out_dir) / "snapshots.json", key, trained)
    return metrics, curves_from_log(read_log(Path(config.out_dir) / "metrics.jsonl"), ("loss",))


def _budgets(spec: dict) -> list[tuple[str, int]]:
    """(objective, budget factor) for every run of a seed: the four at the profile's budget, then its longer ones."""
    return [(k, 1) for k in OBJECTIVES] + list(spec.get("longer", {}).items())


def run(profile: str, seed: int, workdir: Path, results_root: Path | None = None) -> Path:
    """Train the four objectives for one seed, scoring zero-shot at snapshots; returns the result file's path."""
    setup = _setup(profile, seed, workdir)
    spec, splits, start = setup["spec"], setup["splits"], time.time()
    facts = suite_facts(setup["suites"][name] for name in spec["suites"])
    for name in spec["suites"]:  # the images each accuracy is over, for intervals on one seed
        facts[name]["n"] = len(splits.split(setup["suites"][name].split))
    metrics: dict = {"objectives": {}, "suites": facts}
    curves: dict = {}
    for kind, factor in _budgets(spec):
        label = longer_name(kind, factor)
        metrics["objectives"][label], curves[label] = _train_objective(setup, kind, factor)
    metrics["efficiency"] = efficiency_table(metrics["objectives"], spec["suites"])
    return write_result(NAME, profile, seed, setup["settings"], metrics, time.time() - start, curves, results_root)


def extend(profile: str, seed: int, workdir: Path, results_root: Path | None = None) -> Path:
    """Add to seed `seed`'s result file the profile's longer budgets it lacks, leaving the objectives it holds as
    they were measured: each added run carries its own "provenance" (revision, hardware, versions, wall time), and
    the efficiency table is recomputed over all. The file's settings must be the profile's (else a one-line error
    naming the first field that differs); returns the file's path."""
    path = result_path(NAME, profile, seed, results_root)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no result to extend; run the experiment for seed {seed} first")
    record = json.loads(path.read_text(encoding="utf-8"))
    setup = _setup(profile, seed, workdir)
    want = json.loads(json.dumps({k: v for k, v in setup["settings"].items() if k != "longer"}, default=float))
    differs = _first_difference({k: record["config"].get(k) for k in want}, want, "config")
    if differs:
        raise ValueError(f"{path}: {differs[0]} is {differs[1]!r}, the profile's is {differs[2]!r}; re-run the "
                         "experiment")
    objectives = record["metrics"]["objectives"]
    for kind, factor in setup["spec"].get("longer", {}).items():
        label = longer_name(kind, factor)
        if label in objectives:
            continue
        start = time.time()
        objectives[label], record["curves"][label] = _train_objective(setup, kind, factor)
        objectives[label]["provenance"] = provenance(time.time() - start)
    record["metrics"]["efficiency"] = efficiency_table(objectives, setup["spec"]["suites"])
    record["config"]["longer"] = setup["settings"]["longer"]
    return write_record(path, record)


def _first_difference(have: object, want: object, name: str) -> tuple[str, object, object] | None:
    """The first (dotted name, have, want) where two JSON values differ, descending into dicts; None if equal."""
    if isinstance(have, dict) and isinstance(want, dict):
        for key in list(want) + [k for k in have if k not in want]:
            found = _first_difference(have.get(key), want.get(key), f"{name}.{key}")
            if found:
                return found
        return None
    return None if have == want else (name, have, want)


def efficiency_table(objectives: dict, suite_names: Sequence[str]) -> dict:
    """For each suite and each ordered pair (faster, slower) of objectives: `sample_efficiency` of faster against
    slower's final accuracy, keyed "faster>slower": the raw crossings, stored with the result. The book's ratios
    (`objectives_summary.efficiency_ratios`) are read off monotone fits, at the highest accuracy both reach."""
    out: dict = {}
    for name in suite_names:
        out[name] = {}
        for fast, f in objectives.items():
            for slow, s in objectives.items():
                if fast == slow:
                    continue
                seen = [r["images_seen"] for r in f["snapshots"]]
                out[name][f"{fast}>{slow}"] = sample_efficiency(
                    seen, [r[name] for r in f["snapshots"]], s["snapshots"][-1][name],
                    s["snapshots"][-1]["images_seen"])
    return out
