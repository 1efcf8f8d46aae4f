"""The `limitations` experiment (paper §6) end to end at the smoke profile: zero-shot vs raw-pixel logistic
regression vs a linear probe on CLIP features on the same test rows, confusion matrices that add up, per-class
recall of the other suites agreeing with `zeroshot_eval`, and the split and pixel cache it relies on."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import smoke_experiment

from repro.evaluate.runner import SplitCache, load_suites
from repro.evaluate.zeroshot import zeroshot_eval
from repro.experiments import clip_small, get, limitations
from repro.experiments.common import trained_clip
from repro.experiments.results import load_results

METHODS = ("zeroshot", "zeroshot_inverted", "probe_clip", "probe_pixels")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """One smoke run of `limitations` (training the smoke clip_small first) into temporary data/results/run dirs."""
    with smoke_experiment(tmp_path_factory, "limitations") as run:
        yield run


def _fraction(value: float | None) -> bool:
    return value is None or 0.0 <= value <= 1.0


def test_registered_with_the_profiles_of_clip_small() -> None:
    assert get("limitations") is limitations
    seeds = {p: s["seeds"] for p, s in clip_small.PROFILES.items()}  # it evaluates every headline seed
    assert {p: s["seeds"] for p, s in limitations.PROFILES.items()} == seeds
    assert limitations.PROFILES["cpu"]["tasks"] == ("fashion-mnist-test", "mnist-test", "digits")


def test_smoke_tasks_compare_every_method_on_the_same_rows(smoke_run) -> None:
    record = smoke_run["record"]
    assert record["experiment"] == "limitations" and record["config"]["corpus"] == "smoke"
    tasks = record["metrics"]["tasks"]
    assert set(tasks) == set(limitations.PROFILES["smoke"]["tasks"])
    for task in tasks.values():
        n_classes, counts = task["n_classes"], np.array(task["test_counts"])
        assert len(task["classes"]) == n_classes == len(counts) and counts.sum() == task["n_test"]
        assert task["n_train"] + task["n_test"] <= task["n_images"]
        assert task["chance"] == pytest.approx(1 / n_classes) and _fraction(task["majority"])
        for method in METHODS:
            result = task[method]
            assert _fraction(result["top1"]) and _fraction(result["mean_per_class_recall"])
            assert len(result["per_class_recall"]) == n_classes and all(map(_fraction, result["per_class_recall"]))
        for probe in ("probe_clip", "probe_pixels"):
            assert task[probe]["n_train"] == task["n_train"] and task[probe]["n_test"] == task["n_test"]
        for method in ("zeroshot", "zeroshot_inverted"):
            confusion = np.array(task[method]["confusion"])
            assert confusion.shape == (n_classes, n_classes)
            assert confusion.sum(axis=1).tolist() == counts.tolist()  # rows sum to the class counts
            assert np.trace(confusion) / counts.sum() == pytest.approx(task[method]["top1"])
            recall = np.diag(confusion) / np.maximum(counts, 1)
            assert recall.tolist() == pytest.approx(task[method]["per_class_recall"])
    # the clip_small model was trained once (its result is there) and is reused, not retrained
    assert load_results("clip_small", "smoke", root=smoke_run["root"] / "results")


def test_per_class_suites_agree_with_zeroshot_eval(smoke_run, monkeypatch) -> None:
    monkeypatch.setenv("REPRO_DATA", str(smoke_run["root"] / "data"))
    per_class = smoke_run["record"]["metrics"]["per_class"]
    suites = {s.name: s for s in load_suites(smoke_run["corpus"])}
    spec = limitations.PROFILES["smoke"]
    expected = {n for n, s in suites.items()
                if n not in spec["tasks"] and len(s.classes) <= spec["per_class_max_classes"]}
    assert set(per_class) == expected and expected
    model, tokenizer, config = trained_clip("smoke", 0, smoke_run["root"] / "runs")
    cache = SplitCache(model, smoke_run["corpus"], config.data_size)
    for name, entry in per_class.items():
        suite = suites[name]
        assert entry["classes"] == list(suite.classes) and sum(entry["count"]) == entry["n"]
        assert all(map(_fraction, entry["per_class_recall"]))
        reference = zeroshot_eval(model, tokenizer, cache.split(suite.split), suite,
                                  image_features=cache.features(suite.split))
        assert entry["top1"] == pytest.approx(reference["top1"], abs=1.5 / entry["n"])
        if "confusion" in entry:
            assert np.array(entry["confusion"]).sum(axis=1).tolist() == entry["count"]
        present = [r for r, c in zip(entry["per_class_recall"], entry["count"], strict=True) if c]
        assert entry["mean_per_class_recall"] == pytest.approx(np.mean(present))
        assert all(r is None for r, c in zip(entry["per_class_recall"], entry["count"], strict=True) if not c)


def test_probe_split_is_stratified_disjoint_and_fixed() -> None:
    labels = np.repeat(np.arange(4), [10, 3, 40, 2])
    train, test = limitations.probe_split(labels, train_per_class=5, test_per_class=8, max_train_fraction=0.5, seed=0)
    assert not set(train) & set(test)
    assert np.bincount(labels[train], minlength=4).tolist() == [5, 1, 5, 1]
    assert np.bincount(labels[test], minlength=4).tolist() == [5, 2, 8, 1]
    again = limitations.probe_split(labels, 5, 8, 0.5, seed=0)
    assert np.array_equal(again[0], train) and np.array_equal(again[1], test)


def test_confusion_matrix_and_recall() -> None:
    labels, pred = np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 0, 2, 2])
    assert limitations.confusion_matrix(pred, labels, 4).tolist() == [[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 2, 0],
                                                                      [0, 0, 0, 0]]
    recall = limitations.per_class_recall(pred, labels, 4)
    assert recall[:3] == pytest.approx([0.5, 1.0, 2 / 3]) and recall[3] is None


def test_pixel_probe_is_cached(tmp_path) -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 12)
    x = rng.normal(size=(36, 5)) + labels[:, None]
    train, test = limitations.probe_split(labels, 6, 6, 0.5, seed=0)
    first = limitations._pixel_probe(tmp_path, x, labels, train, test, 3, seed=0)
    second = limitations._pixel_probe(tmp_path, x, labels, train, test, 3, seed=0)
    assert first.pop("cached") is False and second.pop("cached") is True and first == second
    assert math.isfinite(first["top1"]) and len(list(tmp_path.glob("*.json"))) == 1
    limitations._pixel_probe(tmp_path, x + 1, labels, train, test, 3, seed=0)  # other data: another entry
    assert len(list(tmp_path.glob("*.json"))) == 2
