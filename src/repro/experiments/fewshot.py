"""Zero-shot versus linear probes and few-shot probes (Radford et al., 2021, §3.1.5, Figures 5–7) in miniature: the
trained `clip_small` model's zero-shot classifier (the suite's prompt ensemble) against logistic-regression probes on
the same frozen image features — a full probe (C chosen on a validation split, appendix A.3) and k-shot probes for
k = 1, 2, 4, 8, 16 over several random draws — and the number of labelled examples per class at which the k-shot
curve matches zero-shot (Figure 7's log-linear interpolation). Nothing is trained here unless the `clip_small`
weights of the profile and seed are missing (`common.trained_clip`).

Tasks. An emoji label *family* (e.g. `emoji-category`: the suites `emoji-category/val`, `…/test-*`, `…/zeroshot`)
trains its probes on images of the corpus's `train` split (the split CLIP was trained on) carrying that label, and
is tested on each suite's split, pooled by distribution shift (in-distribution, held-out styles, zero-shot
concepts). A photo suite (Fashion-MNIST, MNIST, digits) has no training split in the corpus, so its split is
divided once, stratified with a fixed seed, into a probe pool and a test part. Probe pools are subsampled to
`per_class` rows per class and classes with fewer than `min_per_class` pool rows are dropped; zero-shot and
probes always classify among the same classes and are scored on the same test rows.

The probes work on feature arrays (`probe_task`), so another feature extractor (e.g. the supervised baseline of
Figure 5) can be compared later by passing its features for the same rows.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ..data.suites import Suite
from ..evaluate.features import encode_images, normalize
from ..evaluate.probe import (
    ONE_SHOT_C,
    cv_score,
    evaluate_fit,
    fit_logistic,
    sample_shots,
    search_C,
    shot_folds,
    stratified_holdout,
)
from ..evaluate.runner import SplitCache, load_suites
from ..evaluate.zeroshot import zeroshot_classifier
from . import clip_small
from .common import limited_threads, trained_clip_with_corpus
from .results import write_result

NAME = "fewshot"

#: The k of the paper's Figure 6 (labelled examples per class).
SHOTS = (1, 2, 4, 8, 16)

_PHOTOS = ("fashion-mnist-test", "mnist-test", "digits")

#: The corpus of each profile's headline model (`clip_small`), whose trained weights this experiment evaluates.
_CORPUS = {profile: spec["corpus"] for profile, spec in clip_small.PROFILES.items()}

#: Same models as `clip_small` (smoke 1 seed, cpu and gpu 3). `families`: emoji label families probed from the
#: `train` split; `own_split`: photo suites whose split is halved into probe pool and test part. `per_class`:
#: probe-pool rows kept per class; `min_per_class`: classes with fewer pool rows are dropped; `test_per_class`:
#: test rows kept per class of a photo suite; `draws`: random k-shot samples per k; `max_folds`: validation folds
#: of the k-shot C search; `max_iter`: L-BFGS iterations per fit (the paper's 1,000 on the GPU machine; the cpu
#: profile caps it at 100 and leaves out the 95-way subcategory task so that a seed takes minutes on 2 cores).
PROFILES = {
    "smoke": {"corpus": "smoke", "seeds": 1, "families": ("smoke-category",),
              "own_split": ("smoke-category/test-outline",), "per_class": 40, "min_per_class": 4,
              "test_per_class": 100, "draws": 2, "shots": SHOTS, "max_folds": 2, "max_iter": 100, "pool_seed": 0},
    "cpu": {"corpus": _CORPUS["cpu"], "seeds": 5, "families": ("emoji-category",), "own_split": _PHOTOS,
            "per_class": 100, "min_per_class": 20, "test_per_class": 300, "draws": 3, "shots": SHOTS, "max_folds": 2,
            "max_iter": 100, "pool_seed": 0},
    "gpu": {"corpus": _CORPUS["gpu"], "seeds": 3, "families": ("emoji-category", "emoji-subcategory"),
            "own_split": _PHOTOS, "per_class": 200, "min_per_class": 20, "test_per_class": 500, "draws": 5,
            "shots": SHOTS, "max_folds": 4,
            "max_iter": 1000, "pool_seed": 0},
}
assert {p: s["seeds"] for p, s in PROFILES.items()} == {p: s["seeds"] for p, s in clip_small.PROFILES.items()}


def shots_to_match(shots: Sequence[int], accuracy: Sequence[float], zero_shot: float) -> float | str:
    """Labelled examples per class at which a k-shot curve reaches `zero_shot` (paper Figure 7): the first k
    whose accuracy is ≥ zero-shot, interpolated log-linearly in k from the k before it. Returns a float in
    [min k, max k], or the string "< min k" when even the smallest k beats zero-shot and "> max k" when none reaches
    it (e.g. "> 16")."""
    if len(shots) != len(accuracy) or not shots:
        raise ValueError(f"need one accuracy per k: {len(shots)} k values, {len(accuracy)} accuracies")
    ks, acc = [float(k) for k in shots], [float(a) for a in accuracy]
    if any(b <= a for a, b in zip(ks[:-1], ks[1:], strict=True)):
        raise ValueError(f"k values must increase: {list(shots)}")
    if acc[0] > zero_shot:
        return f"< {shots[0]:g}"
    for i, a in enumerate(acc):
        if a >= zero_shot:
            if i == 0 or a == zero_shot:
                return ks[i]
            lo, hi = acc[i - 1], a
            t = (zero_shot - lo) / (hi - lo)
            return float(math.exp(math.log(ks[i - 1]) + t * (math.log(ks[i]) - math.log(ks[i - 1]))))
    return f"> {shots[-1]:g}"


def _top1(model, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(model.predict(x) == y)) if len(y) else math.nan


def probe_task(
    pool_x: np.ndarray, pool_y: np.ndarray, tests: dict[str, tuple[np.ndarray, np.ndarray]],
    shots: Sequence[int] = SHOTS, draws: int = 5, seed: int = 0, val_fraction: float = 0.2, max_folds: int = 4,
    max_iter: int = 1000,
) -> dict[str, dict]:
    """The full linear probe and the k-shot probes of `repro.evaluate.probe` (`linear_probe`, `few_shot`: the
    same C search, samples, folds and iteration cap) fitted once on the pool and scored on every test set of `tests`
    ({name: (x, y)}). Returns {name: {"linear_probe": top1, "few_shot": {k: mean top1 over draws},
    "few_shot_draws": {k: [top1 per draw]}}} plus "_probe": {"C", "val_top1", "n_fits"} of the full probe."""
    pool_x, pool_y = np.asarray(pool_x, dtype=np.float64), np.asarray(pool_y)
    tests = {name: (np.asarray(x, dtype=np.float64), np.asarray(y)) for name, (x, y) in tests.items()}
    out: dict[str, dict] = {name: {"few_shot": {}, "few_shot_draws": {}} for name in tests}

    fit_rows, val_rows = stratified_holdout(pool_y, val_fraction, np.random.default_rng(seed))
    if len(val_rows) == 0:
        raise ValueError("no validation rows: every class has a single pool example")

    def score(C: float) -> tuple[float, float]:
        correct, loss = evaluate_fit(fit_logistic(pool_x[fit_rows], pool_y[fit_rows], C, max_iter), pool_x[val_rows],
                                  pool_y[val_rows])
        return correct / len(val_rows), loss / len(val_rows)

    best_C, scores = search_C(score)
    full = fit_logistic(pool_x, pool_y, best_C, max_iter)
    for name, (x, y) in tests.items():
        out[name]["linear_probe"] = _top1(full, x, y)

    for k in shots:
        per_draw: dict[str, list[float]] = {name: [] for name in tests}
        for draw in range(draws):
            rows = sample_shots(pool_y, k, seed, draw)
            x_k, y_k = pool_x[rows], pool_y[rows]
            folds = shot_folds(y_k, min(k, max_folds)) if k >= 2 else []
            C = search_C(cv_score(x_k, y_k, folds, max_iter))[0] if folds else ONE_SHOT_C
            model = fit_logistic(x_k, y_k, C, max_iter)
            for name, (x, y) in tests.items():
                per_draw[name].append(_top1(model, x, y))
        for name in tests:
            out[name]["few_shot"][str(k)] = float(np.mean(per_draw[name]))
            out[name]["few_shot_draws"][str(k)] = per_draw[name]
    out["_probe"] = {"C": best_C, "val_top1": scores[best_C][0], "n_fits": len(scores) + 1}
    return out


def cap_per_class(rows: np.ndarray, y: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """At most `per_class` random rows of each class (rows in sorted order)."""
    keep = [rng.permutation(rows[y[rows] == c])[:per_class] for c in np.unique(y[rows])]
    return np.sort(np.concatenate(keep)) if keep else np.array([], dtype=np.int64)


def zero_shot_on_features(model, tokenizer, features: torch.Tensor, labels: np.ndarray, classes: list[str],
               classnames: list[str], templates: Sequence[str]) -> float:
    """Zero-shot top-1 among `classes` (the prompt ensemble of §3.1.4) of the rows with these labels."""
    weights = zeroshot_classifier(model, tokenizer, classnames, templates)
    scores = normalize(torch.as_tensor(features)).double() @ weights.double()
    pred = np.asarray(classes)[scores.argmax(dim=1).numpy()]
    return float(np.mean(pred == labels)) if len(labels) else math.nan


def _task_suites(suites: list[Suite], family: str) -> list[Suite]:
    found = [s for s in suites if s.name.split("/")[0] == family]
    if not found:
        raise ValueError(f"no suites of family {family!r}; the corpus has {sorted({s.name for s in suites})}")
    return found


def _run_task(model, tokenizer, cache: SplitCache, task_suites: list[Suite], own_split: bool, spec: dict,
              seed: int) -> dict:
    """One task: pool and test rows, their features, zero-shot and probes on every test set."""
    label = task_suites[0].label
    templates = task_suites[0].templates
    names: dict[str, str] = {}
    for s in task_suites:
        if s.label != label or s.templates != templates:
            raise ValueError(f"suites {[t.name for t in task_suites]} differ in label field or templates")
        names.update(zip(s.classes, s.classnames, strict=True))
    rng = np.random.default_rng(spec["pool_seed"])

    if own_split:
        [suite] = task_suites
        packed = cache.split(suite.split)
        y_all = np.asarray(packed.fields[label])
        pool_part, test_part = stratified_holdout(y_all, 0.5, rng)
        pool_rows = cap_per_class(pool_part, y_all, spec["per_class"], rng)
        test_rows = {suite.shift: (suite.split, cap_per_class(test_part, y_all, spec["test_per_class"], rng))}
        pool_split, pool_y = suite.split, y_all[pool_rows]
        tests_from = {suite.shift: [suite.name]}
    else:
        packed = cache.split("train")
        y_all = np.asarray(packed.fields[label])
        pool_rows = cap_per_class(np.flatnonzero(np.isin(y_all, list(names))), y_all, spec["per_class"], rng)
        pool_split, pool_y = "train", y_all[pool_rows]
        test_rows, tests_from = {}, {}
        for s in task_suites:
            tests_from.setdefault(s.shift, []).append(s.name)
    counts = {c: int(np.sum(pool_y == c)) for c in names}
    classes = sorted(c for c, n in counts.items() if n >= spec["min_per_class"])
    dropped = sorted(set(names) - set(classes))
    keep = np.isin(pool_y, classes)
    pool_rows, pool_y = pool_rows[keep], pool_y[keep]
    pool_x = encode_images(model, cache.split(pool_split).images[pool_rows]).numpy()

    tests: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    zero: dict[str, float] = {}
    classnames = [names[c] for c in classes]
    for shift, suite_names in tests_from.items():
        xs, ys = [], []
        for suite in (s for s in task_suites if s.name in suite_names):
            split_y = np.asarray(cache.split(suite.split).fields[label])
            if own_split:
                rows = test_rows[shift][1]
                rows = rows[np.isin(split_y[rows], classes)]
                xs.append(normalize(encode_images(model, cache.split(suite.split).images[rows])))
            else:
                rows = np.flatnonzero(np.isin(split_y, classes))
                xs.append(cache.features(suite.split)[rows])
            ys.append(split_y[rows])
        x, y = torch.cat(xs), np.concatenate(ys)
        zero[shift] = zero_shot_on_features(model, tokenizer, x, y, classes, classnames, templates)
        tests[shift] = (normalize(x).numpy(), y)

    with limited_threads(1):  # many small L-BFGS fits: threads slow them down on busy cores
        probes = probe_task(normalize(torch.as_tensor(pool_x)).numpy(), pool_y, tests, spec["shots"],
                            spec["draws"], seed, max_folds=spec["max_folds"], max_iter=spec["max_iter"])
    result: dict = {
        "label": label, "pool": "own split (stratified half)" if own_split else "train split",
        "pool_split": pool_split, "n_classes": len(classes), "classes_dropped": dropped, "n_pool": len(pool_y),
        "pool_per_class": {"min": int(min(counts[c] for c in classes)), "max": int(max(counts[c] for c in classes))},
        "templates": list(templates), "probe": probes.pop("_probe"), "tests": {},
    }
    for shift in tests:
        curve = [probes[shift]["few_shot"][str(k)] for k in spec["shots"]]
        result["tests"][shift] = {
            "suites": tests_from[shift], "n": len(tests[shift][1]), "zero_shot": zero[shift], **probes[shift],
            "shots_to_match": shots_to_match(spec["shots"], curve, zero[shift]),
        }
    return result


def run(profile: str, seed: int, workdir: Path, results_root: Path | None = None) -> Path:
    """Zero-shot, full and k-shot linear probes for every task of the profile on one seed's `clip_small`."""
    spec = PROFILES[profile]
    start = time.time()
    model, tokenizer, config, corpus, cache = trained_clip_with_corpus(profile, seed, workdir, results_root)
    suites = load_suites(corpus)
    metrics: dict[str, dict] = {}
    with torch.no_grad():
        for family in spec["families"]:
            metrics[family] = _run_task(model, tokenizer, cache, _task_suites(suites, family), False, spec, seed)
        for name in spec["own_split"]:
            [suite] = [s for s in suites if s.name == name] or [None]
            if suite is None:
                raise ValueError(f"no suite {name!r} in {corpus}")
            metrics[name] = _run_task(model, tokenizer, cache, [suite], True, spec, seed)
    settings = {k: (list(v) if isinstance(v, tuple) else v) for k, v in spec.items()} | {
        "probe": "L2 multinomial logistic regression, L-BFGS; full probe: C by the paper's search on a 20% "
                 "stratified validation part, refitted on the pool; k-shot: C by leave-one-per-class-out folds "
                 "inside the sample (k >= 2), C = 1 for k = 1 (repro.evaluate.probe)",
        "features": "L2-normalised clip_small image embeddings",
    }
    return write_result(NAME, profile, seed, asdict(config) | settings, metrics, time.time() - start, None,
                        results_root)
