"""Prompt engineering and ensembling (Radford et al., 2021, §3.1.4, Figure 4) in miniature: the trained `clip_small`
model evaluated zero-shot on every suite of its corpus with (a) the bare class name as the prompt, (b) one template
(the suite's first, our counterpart of the paper's default "A photo of a {label}.") and (c) the ensemble of all the
suite's templates, with each template's own accuracy recorded. Nothing is trained here unless the `clip_small`
weights of the profile and seed are missing (`common.trained_clip`)."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import torch

from ..data.pack import PackedSplit
from ..data.suites import Suite
from ..evaluate.runner import load_suites
from ..evaluate.zeroshot import CLASSNAME_ONLY, zeroshot_eval
from . import clip_small
from .common import trained_clip_with_corpus
from .results import write_result

NAME = "prompts"

#: The modes of paper Figure 4, in order: contextless class name, one template, the ensemble of the suite's templates.
MODES = ("classname", "single", "ensemble")
#: The metrics kept per suite and mode (accuracies are fractions in [0, 1]).
KEPT = ("top1", "top5", "mean_per_class_recall", "n", "n_classes", "shift")

#: Same sizes as `clip_small` (whose trained model is evaluated): smoke 1 seed, cpu and gpu 3 seeds.
PROFILES = {name: {"corpus": spec["corpus"], "seeds": spec["seeds"]} for name, spec in clip_small.PROFILES.items()}


def _kept(result: dict) -> dict:
    return {k: result[k] for k in KEPT}


def evaluate_modes(model: torch.nn.Module, tokenizer: object, packed: PackedSplit, suite: Suite,
                   image_features: torch.Tensor | None = None) -> dict:
    """One suite in the three modes of paper Figure 4: `{"classname": …, "single": …, "ensemble": …}` (each with
    `KEPT` metrics; the ensemble also with `per_template`, each template's top-1 alone), plus `n_templates`,
    `templates` and `single_template` (the suite's first template, the one used in the single-template mode)."""
    single = suite.templates[0]
    runs = {"classname": CLASSNAME_ONLY, "single": (single,), "ensemble": suite.templates}
    out: dict = {}
    for mode, templates in runs.items():
        result = zeroshot_eval(model, tokenizer, packed, suite, templates=templates, image_features=image_features,
                               per_template=mode == "ensemble")
        out[mode] = _kept(result) | ({"per_template": result["per_template"]} if mode == "ensemble" else {})
    return out | {"n_templates": len(suite.templates), "templates": list(suite.templates), "single_template": single}


def run(profile: str, seed: int, workdir: Path, results_root: Path | None = None) -> Path:
    """Evaluate one seed's trained `clip_small` in the three prompt modes on every suite; returns the result path."""
    spec = PROFILES[profile]
    start = time.time()
    model, tokenizer, config, corpus, cache = trained_clip_with_corpus(profile, seed, workdir, results_root)
    metrics = {}
    with torch.no_grad():
        for suite in load_suites(corpus):
            metrics[suite.name] = evaluate_modes(model, tokenizer, cache.split(suite.split), suite,
                                                 image_features=cache.features(suite.split))
    settings = {"corpus": spec["corpus"], "seeds": spec["seeds"], "modes": list(MODES),
                "classname_template": CLASSNAME_ONLY[0]}
    return write_result(NAME, profile, seed, asdict(config) | settings, metrics, time.time() - start, None,
                        results_root)

