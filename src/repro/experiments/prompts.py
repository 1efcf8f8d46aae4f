"""Prompt engineering and ensembling (Radford et al., 2021, §3.1.4, Figure 4) in miniature: the trained `clip_small`
model evaluated zero-shot on every suite of its corpus with (a) the bare class name as the prompt, (b) one template
(the suite's first, our counterpart of the paper's default "A photo of a {label}."), (c) the ensemble of all the
suite's templates and (d) the templates *chosen on validation data*: for each label family (emoji categories,
subcategories, concepts) a greedy forward selection on that family's `val` suite only (`choose_templates`), then
used unchanged on every other suite of the family — the paper engineered its prompts on validation data too. Every
image's correctness is kept per mode, so that two modes can be compared image by image (`repro.stats`). Nothing is
trained here unless the `clip_small` weights of the profile and seed are missing (`common.trained_clip`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..data.pack import PackedSplit
from ..data.suites import Suite
from ..evaluate.features import normalize
from ..evaluate.runner import load_suites
from ..evaluate.zeroshot import CLASSNAME_ONLY, class_labels, template_features, zeroshot_eval
from . import clip_small
from .common import trained_clip_with_corpus
from .results import write_result

NAME = "prompts"

#: The modes, in order: contextless class name, one template, the ensemble of the suite's templates, and the
#: templates chosen on the family's validation suite.
MODES = ("classname", "single", "ensemble", "chosen")
#: The metrics kept per suite and mode (accuracies are fractions in [0, 1]).
KEPT = ("top1", "top5", "mean_per_class_recall", "n", "n_classes", "shift")
#: The split templates are chosen on; suites of this split are where the choice was made (not a test of it).
VALIDATION = "val"

#: Same sizes as `clip_small` (whose trained model is evaluated): smoke 1 seed, cpu 5 seeds, gpu 3.
PROFILES = {name: {"corpus": spec["corpus"], "seeds": spec["seeds"]} for name, spec in clip_small.PROFILES.items()}


def family(suite_name: str) -> str:
    """A suite's label family, the part of its name before "/" ("emoji-concept/named" -> "emoji-concept")."""
    return suite_name.split("/", 1)[0]


def _top1(features: torch.Tensor, weights: torch.Tensor, labels: np.ndarray) -> float:
    return float(((features.double() @ weights.double()).argmax(dim=1).numpy() == labels).mean())


def choose_templates(model: torch.nn.Module, tokenizer: object, packed: PackedSplit, suite: Suite,
                     image_features: torch.Tensor) -> tuple[list[str], list[float]]:
    """Greedy forward selection of an ensemble on a validation suite: start from the template that classifies
    `suite` best alone, add the template that raises the ensemble's top-1 most, stop when none raises it. Returns
    the chosen templates (in the order added) and the ensemble's validation top-1 after each addition."""
    labels = class_labels(packed, suite)
    features = normalize(torch.as_tensor(image_features))
    prompts = template_features(model, tokenizer, suite.classnames, suite.templates)  # [C, T, d]
    chosen: list[int] = []
    path: list[float] = []
    while len(chosen) < len(suite.templates):
        scores = {t: _top1(features, normalize(prompts[:, chosen + [t]].mean(dim=1)).t(), labels)
                  for t in range(len(suite.templates)) if t not in chosen}
        best = max(scores, key=lambda t: (scores[t], -t))
        if path and scores[best] <= path[-1]:
            break
        chosen.append(best)
        path.append(scores[best])
    return [suite.templates[t] for t in chosen], path


def _bits(correct: np.ndarray) -> str:
    return "".join("1" if c else "0" for c in correct)


def unbits(text: str) -> np.ndarray:
    """A stored correctness string ("0110…") as a bool array, one entry per image."""
    if set(text) - {"0", "1"}:
        raise ValueError("a correctness string holds only '0' and '1'")
    return np.frombuffer(text.encode(), dtype=np.uint8) == ord("1")


def evaluate_modes(model: torch.nn.Module, tokenizer: object, packed: PackedSplit, suite: Suite,
                   image_features: torch.Tensor | None = None, chosen: Sequence[str] | None = None) -> dict:
    """One suite in the modes of `MODES` ("chosen" only when `chosen` templates are given): each mode with `KEPT`
    metrics and `correct` (per image, as a "0"/"1" string); the ensemble also with `per_template`, each template's
    top-1 alone. Also `n_templates`, `templates` and `single_template` (the suite's first template)."""
    single = suite.templates[0]
    runs = {"classname": CLASSNAME_ONLY, "single": (single,), "ensemble": suite.templates}
    if chosen:
        runs["chosen"] = tuple(chosen)
    out: dict = {}
    for mode, templates in runs.items():
        result = zeroshot_eval(model, tokenizer, packed, suite, templates=templates, image_features=image_features,
                               per_template=mode == "ensemble", correct=True)
        out[mode] = {k: result[k] for k in KEPT} | {"correct": _bits(result["correct"])}
        if mode == "ensemble":
            out[mode]["per_template"] = result["per_template"]
    return out | {"n_templates": len(suite.templates), "templates": list(suite.templates), "single_template": single}


def run(profile: str, seed: int, workdir: Path, results_root: Path | None = None) -> Path:
    """Evaluate one seed's trained `clip_small` in every prompt mode on every suite; returns the result path."""
    spec = PROFILES[profile]
    start = time.time()
    model, tokenizer, config, corpus, cache = trained_clip_with_corpus(profile, seed, workdir, results_root)
    suites = load_suites(corpus)
    selection: dict[str, dict] = {}
    metrics: dict = {}
    with torch.no_grad():
        for suite in suites:
            if suite.split == VALIDATION:
                templates, path = choose_templates(model, tokenizer, cache.split(suite.split), suite,
                                                   cache.features(suite.split))
                selection[family(suite.name)] = {"suite": suite.name, "templates": templates, "val_top1": path}
        for suite in suites:
            chosen = selection.get(family(suite.name), {}).get("templates")
            metrics[suite.name] = evaluate_modes(model, tokenizer, cache.split(suite.split), suite,
                                                 image_features=cache.features(suite.split), chosen=chosen)
    metrics["selection"] = selection
    settings = {"corpus": spec["corpus"], "seeds": spec["seeds"], "modes": list(MODES),
                "classname_template": CLASSNAME_ONLY[0], "selection_split": VALIDATION,
                "selection": "greedy forward selection of templates by top-1 on the family's val suite"}
    return write_result(NAME, profile, seed, asdict(config) | settings, metrics, time.time() - start, None,
                        results_root)


def suite_metrics(record: dict) -> dict[str, dict]:
    """The per-suite entries of a result record (without `selection`)."""
    return {k: v for k, v in record["metrics"].items() if isinstance(v, dict) and "classname" in v}


def summarize(records: Sequence[dict]) -> pd.DataFrame:
    """Tidy top-1 per seed, suite and mode: columns seed, suite, family, split, shift, n_classes, mode, top1 and
    `selected_on` (True for the validation suites the chosen templates were selected on)."""
    rows = []
    for record in records:
        for suite, m in suite_metrics(record).items():
            for mode in MODES:
                if mode in m:
                    rows.append({"seed": record["seed"], "suite": suite, "family": family(suite),
                                 "split": suite.split("/", 1)[-1] if "/" in suite else suite,
                                 "shift": m[mode]["shift"], "n_classes": m[mode]["n_classes"], "mode": mode,
                                 "top1": m[mode]["top1"], "selected_on": suite.endswith(f"/{VALIDATION}")})
    return pd.DataFrame(rows)


def gain(records: Sequence[dict], mode: str, suites: Sequence[str], over: str = "classname") -> list[float]:
    """Per seed: the top-1 gain of `mode` over `over`, averaged over `suites` (every seed must have them all)."""
    out = []
    for record in records:
        m = suite_metrics(record)
        missing = [s for s in suites if s not in m or mode not in m[s]]
        if missing:
            raise ValueError(f"seed {record['seed']}: no {mode!r} results for {missing}")
        out.append(float(np.mean([m[s][mode]["top1"] - m[s][over]["top1"] for s in suites])))
    return out


def paired_tests(records: Sequence[dict], mode: str, suites: Sequence[str], over: str = "classname") -> pd.DataFrame:
    """Image-by-image comparison of `mode` with `over` on the same images, per seed and suite: the accuracy
    difference with its paired bootstrap interval and McNemar's exact p-value (`repro.stats`)."""
    from ..stats import mcnemar, paired_bootstrap

    rows = []
    for record in records:
        m = suite_metrics(record)
        for suite in suites:
            a, b = unbits(m[suite][mode]["correct"]), unbits(m[suite][over]["correct"])
            boot = paired_bootstrap(a, b, seed=record["seed"])
            rows.append({"seed": record["seed"], "suite": suite, "n": len(a), "diff": boot["diff"],
                         "low": boot["low"], "high": boot["high"], "p_mcnemar": mcnemar(a, b)["p"]})
    return pd.DataFrame(rows)
