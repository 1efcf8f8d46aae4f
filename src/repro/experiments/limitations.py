"""Where zero-shot is weak (Radford et al., 2021, §6 "Limitations"): the paper reports that zero-shot CLIP reaches
only 88% on MNIST's handwritten digits, below logistic regression on raw pixels, and that it is weak on
fine-grained and abstract tasks. Here the trained `clip_small` model of each seed is compared, on each real-photo
suite (Fashion-MNIST, MNIST, the UCI 8×8 digits), with two supervised baselines trained on the *same* labelled rows:

- zero-shot with the suite's prompt ensemble (paper §3.1.4), with per-class recall and a confusion matrix, and
  again on the same images inverted to dark-on-light (our CLIP learned from drawings on white);
- logistic regression on raw pixels, which needs no CLIP at all (the paper's §6 comparison for MNIST);
- a linear probe on the CLIP image features (paper §3.2, appendix A.3), which tells whether the features or the
  zero-shot classifier built from text is the bottleneck.

The corpus packs only the test split of each photo set (and MNIST and the digits have one split), so a fixed
stratified probe-train / test split is drawn once (`split_seed`, the same for every model seed and every method);
zero-shot is scored on the test rows only. Raw-pixel results do not depend on the model seed: they are computed
once per profile and cached in the work directory.

For the emoji suites, per-class zero-shot recall (and, for small suites, a confusion matrix) shows which classes
fail. Nothing is trained here unless the `clip_small` weights of the profile and seed are missing
(`common.trained_clip`).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ..data.pack import PackedSplit
from ..data.suites import Suite
from ..evaluate.features import encode_images
from ..evaluate.metrics import mean_per_class_recall
from ..evaluate.probe import fit_logistic, linear_probe
from ..evaluate.runner import SplitCache, load_suites
from ..evaluate.zeroshot import class_labels, zeroshot_classifier
from ..files import atomic_write_text
from . import clip_small
from .common import corpus_for, limited_threads, trained_clip
from .results import write_result

NAME = "limitations"

#: Sizes per profile (seeds as `clip_small`, whose models are evaluated). `tasks`: the suites compared with the
#: supervised baselines (the real photos; the smoke corpus has none, so a shapes suite stands in).
#: `train_per_class`: labelled rows per class for both probes, at most `max_train_fraction` of the class;
#: `test_per_class`: at most this many of the remaining rows per class are the test rows of every method.
#: `per_class_max_classes`: emoji suites with at most this many classes get per-class recall (the held-out-style
#: concept suites, about one picture per class, are left out); `confusion_max_classes`: those with at most this
#: many also a confusion matrix. `threads`: torch and BLAS threads while this runs (the cpu profile shares 2 busy
#: cores, where one thread is several times faster than two fighting for them); None leaves them as they are.
PROFILES = {
    "smoke": {"corpus": "smoke", "seeds": clip_small.PROFILES["smoke"]["seeds"],
              "tasks": ("smoke-category/test-outline",), "train_per_class": 8, "test_per_class": 200,
              "max_train_fraction": 0.5, "split_seed": 0, "per_class_max_classes": 250, "confusion_max_classes": 12,
              "threads": 1},
    "cpu": {"corpus": clip_small.PROFILES["cpu"]["corpus"], "seeds": clip_small.PROFILES["cpu"]["seeds"],
            "tasks": ("fashion-mnist-test", "mnist-test", "digits"), "train_per_class": 200, "test_per_class": 200,
            "max_train_fraction": 0.5, "split_seed": 0, "per_class_max_classes": 250, "confusion_max_classes": 12,
            "threads": 1},
    "gpu": {"corpus": clip_small.PROFILES["gpu"]["corpus"], "seeds": clip_small.PROFILES["gpu"]["seeds"],
            "tasks": ("fashion-mnist-test", "mnist-test", "digits"), "train_per_class": 500, "test_per_class": 400,
            "max_train_fraction": 0.5, "split_seed": 0, "per_class_max_classes": 250, "confusion_max_classes": 12,
            "threads": None},
}

#: Version of the raw-pixel cache entries; bump when the probe or the pixel features change.
PIXEL_CACHE_VERSION = 1


def probe_split(labels: np.ndarray, train_per_class: int, test_per_class: int, max_train_fraction: float,
                seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) row indices, stratified: per class (in a permutation drawn from `seed`), the first
    min(`train_per_class`, ⌊`max_train_fraction`·n⌋, n − 1) rows train and the next (at most `test_per_class`)
    are the test rows. Disjoint, sorted; the same for every method and model seed."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == c))
        n_train = max(0, min(train_per_class, int(max_train_fraction * len(rows)), len(rows) - 1))
        train.extend(rows[:n_train])
        test.extend(rows[n_train:n_train + test_per_class])
    return np.sort(np.array(train, dtype=np.int64)), np.sort(np.array(test, dtype=np.int64))


def pixel_features(images: np.ndarray) -> np.ndarray:
    """Raw pixels as features: each uint8 [H, W, 3] image as it is packed (what CLIP sees), averaged over the colour
    channels (the photos are grey) and scaled to [0, 1], flattened to H·W values."""
    return (np.asarray(images, dtype=np.float64).mean(axis=-1) / 255.0).reshape(len(images), -1)


def confusion_matrix(pred: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts [C, C]: row = true class, column = predicted class; row c sums to the number of rows of class c."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (labels, pred), 1)
    return matrix


def per_class_recall(pred: np.ndarray, labels: np.ndarray, n_classes: int) -> list[float | None]:
    """Recall of each class (None for a class without rows)."""
    return [float(np.mean(pred[labels == c] == c)) if np.any(labels == c) else None for c in range(n_classes)]


def _classification(pred: np.ndarray, labels: np.ndarray, n_classes: int) -> dict:
    return {"top1": float(np.mean(pred == labels)), "mean_per_class_recall": mean_per_class_recall(pred, labels),
            "per_class_recall": per_class_recall(pred, labels, n_classes)}


def zeroshot_predictions(model: torch.nn.Module, tokenizer: object, suite: Suite,
                         image_features: torch.Tensor) -> np.ndarray:
    """Top-1 zero-shot class per image with the suite's prompt ensemble (paper §3.1.4; as `zeroshot_eval`)."""
    weights = zeroshot_classifier(model, tokenizer, suite.classnames, suite.templates)
    return (image_features.double() @ weights.double()).argmax(dim=1).numpy()


def probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, n_classes: int,
          seed: int) -> dict:
    """`linear_probe` (C chosen on a stratified validation part of the training rows, appendix A.3), plus the
    per-class recall of its final model (refitted with the chosen C: L-BFGS is deterministic)."""
    result = linear_probe(train_x, train_y, test_x, test_y, seed=seed)
    pred = fit_logistic(np.asarray(train_x, dtype=np.float64), train_y, result["C"]).predict(
        np.asarray(test_x, dtype=np.float64))
    return result | {"per_class_recall": per_class_recall(pred, test_y, n_classes)}


def _pixel_probe(cache_dir: Path, x: np.ndarray, labels: np.ndarray, train: np.ndarray, test: np.ndarray,
                 n_classes: int, seed: int) -> dict:
    """The raw-pixel probe, cached under `cache_dir` by a hash of everything it depends on (it does not depend on
    the model seed, so seeds after the first reuse it)."""
    digest = hashlib.sha256()
    for part in (x, labels, train, test):
        digest.update(np.ascontiguousarray(part).tobytes())
    digest.update(json.dumps([seed, n_classes, PIXEL_CACHE_VERSION]).encode())
    path = cache_dir / f"{digest.hexdigest()[:20]}.json"
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8")) | {"cached": True}
    start = time.time()
    result = probe(x[train], labels[train], x[test], labels[test], n_classes, seed)
    result["fit_time_s"] = round(time.time() - start, 1)
    atomic_write_text(path, json.dumps(result))
    return result | {"cached": False}


def evaluate_task(model: torch.nn.Module, tokenizer: object, packed: PackedSplit, suite: Suite, spec: dict,
                  cache_dir: Path) -> dict:
    """One real-photo suite: zero-shot (as packed and inverted) vs raw-pixel logistic regression vs a linear probe
    on CLIP features, all scored on the same test rows; zero-shot's confusion matrix on them."""
    labels = class_labels(packed, suite)
    n_classes = len(suite.classes)
    train, test = probe_split(labels, spec["train_per_class"], spec["test_per_class"], spec["max_train_fraction"],
                              spec["split_seed"])
    rows = np.concatenate([train, test])
    features = encode_images(model, packed.images[rows])
    train_f, test_f = features[: len(train)], features[len(train):]
    y_train, y_test = labels[train], labels[test]

    pred = zeroshot_predictions(model, tokenizer, suite, test_f)
    inverted = encode_images(model, 255 - packed.images[test])
    pred_inverted = zeroshot_predictions(model, tokenizer, suite, inverted)
    counts = np.bincount(y_test, minlength=n_classes)
    return {
        "suite": suite.name, "shift": suite.shift, "classes": list(suite.classes), "classnames": list(suite.classnames),
        "n_images": len(packed), "n_train": len(train), "n_test": len(test), "n_classes": n_classes,
        "test_counts": counts.tolist(), "chance": 1.0 / n_classes, "majority": float(counts.max() / counts.sum()),
        "zeroshot": _classification(pred, y_test, n_classes)
        | {"confusion": confusion_matrix(pred, y_test, n_classes).tolist()},
        "zeroshot_inverted": _classification(pred_inverted, y_test, n_classes)
        | {"confusion": confusion_matrix(pred_inverted, y_test, n_classes).tolist()},
        "probe_clip": probe(train_f.numpy(), y_train, test_f.numpy(), y_test, n_classes, spec["split_seed"]),
        "probe_pixels": _pixel_probe(cache_dir, pixel_features(packed.images), labels, train, test, n_classes,
                                     spec["split_seed"]),
    }


def evaluate_per_class(model: torch.nn.Module, tokenizer: object, packed: PackedSplit, suite: Suite,
                       image_features: torch.Tensor, confusion_max_classes: int) -> dict:
    """Zero-shot on one (emoji) suite with the recall and image count of every class, to find the weakest."""
    labels = class_labels(packed, suite)
    n_classes = len(suite.classes)
    pred = zeroshot_predictions(model, tokenizer, suite, image_features)
    out = {"split": suite.split, "shift": suite.shift, "label": suite.label, "n": len(packed),
           "n_classes": n_classes, "classes": list(suite.classes), "classnames": list(suite.classnames),
           "count": np.bincount(labels, minlength=n_classes).tolist()} | _classification(pred, labels, n_classes)
    if n_classes <= confusion_max_classes:
        out["confusion"] = confusion_matrix(pred, labels, n_classes).tolist()
    return out


def run(profile: str, seed: int, workdir: Path, results_root: Path | None = None) -> Path:
    """Evaluate one seed's trained `clip_small` on the real-photo tasks and the emoji suites; returns the result
    file's path."""
    spec = PROFILES[profile]
    start = time.time()
    model, tokenizer, config = trained_clip(profile, seed, Path(workdir), results_root)
    corpus = corpus_for(spec["corpus"])
    suites = {s.name: s for s in load_suites(corpus)}
    missing = [t for t in spec["tasks"] if t not in suites]
    if missing:
        raise ValueError(f"profile {profile!r}: tasks {missing} are not suites of {corpus} ({sorted(suites)})")
    cache_dir = Path(workdir) / NAME / profile / "pixel-probe"
    cache = SplitCache(model, corpus, config.data_size)
    metrics: dict = {"tasks": {}, "per_class": {}}
    with limited_threads(spec["threads"]), torch.no_grad():
        for task in spec["tasks"]:
            suite = suites[task]
            metrics["tasks"][task] = evaluate_task(model, tokenizer, cache.split(suite.split), suite, spec, cache_dir)
        for name, suite in suites.items():
            if name in spec["tasks"] or len(suite.classes) > spec["per_class_max_classes"]:
                continue
            metrics["per_class"][name] = evaluate_per_class(model, tokenizer, cache.split(suite.split), suite,
                                                            cache.features(suite.split),
                                                            spec["confusion_max_classes"])
    settings = {k: (list(v) if isinstance(v, tuple) else v) for k, v in spec.items()} | {
        "pixel_features": "packed image (what CLIP sees), channel mean / 255, flattened",
        "split_note": "the corpus packs one labelled split per photo set, so a fixed stratified probe-train/test "
                      "split (split_seed) is drawn from it; every method and model seed uses the same rows",
    }
    return write_result(NAME, profile, seed, {"clip": asdict(config)} | settings, metrics, time.time() - start,
                        None, results_root)
