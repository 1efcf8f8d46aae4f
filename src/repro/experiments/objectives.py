"""Efficiency of training objectives (paper §2.3, Figure 2): zero-shot accuracy against images seen for a caption
Transformer language model, bag-of-words prediction, a contrastive objective with a bag-of-words text encoder, and
the full contrastive CLIP — the same image encoder, data, budget and schedule for all four.

The paper (ImageNet zero-shot, ResNet-50 image encoder, 400M pairs): bag-of-words prediction reaches the language
model's accuracy with 3× fewer images, and the contrastive bag-of-words objective is 4× more efficient again.
Here each objective is trained on the corpus and scored zero-shot at evenly spaced snapshots with the same prompts;
`sample_efficiency` turns two curves into the paper's ratio."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from ..evaluate.objective_zeroshot import objective_zeroshot
from ..evaluate.runner import SplitCache, load_suites
from ..tokenizer import Tokenizer
from ..train import TrainConfig, read_log
from .clip_small import PROFILES as CLIP_PROFILES
from .common import cached_json, corpus_for, curves_from_log, shared_tokenizer, suite_facts, train_with_snapshots
from .fewshot import shots_to_match
from .results import write_result

NAME = "objectives"

#: Figure 2's objectives, slowest (paper) first; keys of `repro.objectives.make_objective`.
OBJECTIVES = {
    "caption-lm": "Transformer language model (predict the caption)",
    "bow-predict": "bag-of-words prediction",
    "bow-contrastive": "bag-of-words contrastive",
    "clip": "contrastive (CLIP)",
}
#: The paper's ratios (Figure 2): (faster, slower) -> how many times fewer images the faster needs.
PAPER_RATIOS = {("bow-predict", "caption-lm"): 3.0, ("bow-contrastive", "bow-predict"): 4.0}

#: One template for every objective: prompt ensembling is not the question here, and the language model scores every
#: (image, prompt) pair, so each extra template multiplies its cost.
_TEMPLATES = ("an emoji of a {}.",)

#: The same model and tokenizer sizes as clip_small's profile; one epoch at batch 128 on the cpu profile (four runs
#: per seed must fit a laptop), snapshots at each quarter.
PROFILES = {
    "smoke": {"corpus": "smoke", "seeds": 1, "snapshots": 2, "templates": ("a {}.",),
              "suites": ("smoke-category/val", "smoke-concept/val"),
              "train": CLIP_PROFILES["smoke"]["train"] | dict(steps=12, warmup_steps=3)},
    "cpu": {"corpus": "full", "seeds": 3, "snapshots": 4, "templates": _TEMPLATES,
            "suites": ("emoji-subcategory/val", "emoji-category/val"),
            "train": CLIP_PROFILES["cpu"]["train"] | dict(batch_size=128, epochs=None, steps=282, warmup_steps=30)},
    "gpu": {"corpus": "full", "seeds": 3, "snapshots": 8, "templates": _TEMPLATES,
            "suites": ("emoji-subcategory/val", "emoji-category/val", "emoji-subcategory/test-fluent-3d"),
            "train": CLIP_PROFILES["gpu"]["train"] | dict(epochs=None, steps=1000)},
}


def sample_efficiency(images_seen: Sequence[int], faster: Sequence[float], slower_final: float) -> dict:
    """How many times fewer images the `faster` curve needs to reach the accuracy `slower_final` that the slower
    objective reaches at the end of the budget `images_seen[-1]` (Figure 2's "3× / 4× efficiency").

    The crossing is interpolated in log(images) between snapshots (as Figure 7 interpolates in log k). Returns
    `images` (float, or "<= first" / "> budget" strings when the faster curve reaches it already at the first
    snapshot — so possibly earlier — or never) and `ratio` = budget / images (a float; for "<= first" only a lower
    bound `ratio_at_least`). A ratio means something only if the slower objective rose above chance."""
    budget = images_seen[-1]
    images = shots_to_match(images_seen, faster, slower_final)
    if isinstance(images, float) and images > images_seen[0]:
        return {"images": images, "ratio": budget / images}
    if isinstance(images, float) or images.startswith("<"):  # reached at the first snapshot: maybe earlier
        return {"images": f"<= {images_seen[0]}", "ratio": None, "ratio_at_least": budget / images_seen[0]}
    return {"images": f"> {budget}", "ratio": None}


def run(profile: str, seed: int, workdir: Path, results_root: Path | None = None) -> Path:
    """Train the four objectives for one seed, scoring zero-shot at snapshots; returns the result file's path."""
    spec = PROFILES[profile]
    corpus = corpus_for(spec["corpus"])
    suites = {s.name: s for s in load_suites(corpus)}
    missing = [s for s in spec["suites"] if s not in suites]
    if missing:
        raise ValueError(f"profile {profile!r}: suites {missing} are not in {corpus}")
    base = TrainConfig(corpus_dir=str(corpus), seed=seed, **spec["train"])
    tokenizer_path = shared_tokenizer(corpus, base.clip_config().vocab_size, Path(workdir), size=base.data_size)
    splits = SplitCache(None, corpus, base.data_size)
    start = time.time()
    metrics: dict = {"objectives": {}, "suites": suite_facts(suites[name] for name in spec["suites"])}
    curves: dict = {}
    for kind in OBJECTIVES:
        config = TrainConfig.from_dict(asdict(base) | {
            "objective": kind, "tokenizer": tokenizer_path,
            "out_dir": str(Path(workdir) / NAME / profile / f"seed{seed}" / kind)})
        context = config.clip_config().context_length
        tokenizer = Tokenizer.load(tokenizer_path)

        def evaluate(objective, tokenizer=tokenizer, context=context) -> dict:
            return {name: objective_zeroshot(objective, tokenizer, splits.split(suites[name].split), suites[name],
                                             context, spec["templates"])["top1"] for name in spec["suites"]}

        def trained(config=config, evaluate=evaluate) -> dict:
            summary, snapshots = train_with_snapshots(config, spec["snapshots"], evaluate)
            return {"snapshots": snapshots, "img_s": summary["img_s"], "train_wall_time_s": summary["wall_time_s"],
                    "final_loss": summary["final"]}

        # a finished objective is not retrained when the experiment is run again
        metrics["objectives"][kind] = cached_json(Path(config.out_dir) / "snapshots.json", asdict(config), trained)
        curves[kind] = curves_from_log(read_log(Path(config.out_dir) / "metrics.jsonl"), ("loss",))
    metrics["efficiency"] = efficiency_table(metrics["objectives"], spec["suites"])
    settings = {"train": asdict(base) | {"tokenizer": tokenizer_path}, "corpus": spec["corpus"],
                "snapshots": spec["snapshots"], "templates": list(spec["templates"]), "suites": list(spec["suites"]),
                "objectives": OBJECTIVES}
    return write_result(NAME, profile, seed, settings, metrics, time.time() - start, curves, results_root)


def efficiency_table(objectives: dict, suite_names: Sequence[str]) -> dict:
    """For each suite and each ordered pair (faster, slower) of objectives: `sample_efficiency` of faster against
    slower's final accuracy, keyed "faster>slower"."""
    out: dict = {}
    for name in suite_names:
        out[name] = {}
        for fast, f in objectives.items():
            for slow, s in objectives.items():
                if fast == slow:
                    continue
                seen = [r["images_seen"] for r in f["snapshots"]]
                out[name][f"{fast}>{slow}"] = sample_efficiency(
                    seen, [r[name] for r in f["snapshots"]], s["snapshots"][-1][name])
    return out
