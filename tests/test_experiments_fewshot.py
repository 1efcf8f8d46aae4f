"""The `fewshot` experiment (paper §3.1.5, Figures 5–7) end to end at the smoke profile, the shots-to-match
interpolation of Figure 7 on synthetic curves, and `probe_task` agreeing with `linear_probe` / `few_shot`."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import smoke_experiment

from repro.evaluate.probe import few_shot, linear_probe
from repro.experiments import clip_small, fewshot, get
from repro.experiments.results import load_results

SHOTS = (1, 2, 4, 8, 16)
CURVE = (0.2, 0.3, 0.4, 0.5, 0.6)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """One smoke run of `fewshot` (training the smoke clip_small first) into temporary data/results/run dirs."""
    with smoke_experiment(tmp_path_factory, "fewshot") as run:
        yield run


def test_profiles_match_clip_small() -> None:
    assert get("fewshot") is fewshot
    seeds = {p: s["seeds"] for p, s in clip_small.PROFILES.items()}  # it evaluates every headline seed
    assert {p: s["seeds"] for p, s in fewshot.PROFILES.items()} == seeds


@pytest.mark.parametrize(("zero_shot", "expected"), [
    (0.4, 4.0),  # exactly the 4-shot accuracy
    (0.2, 1.0),  # exactly the 1-shot accuracy
    (0.6, 16.0),
    (0.45, math.sqrt(32)),  # half-way between 4 and 8 in accuracy: half-way in log k
    (0.7, "> 16"),
    (0.1, "< 1"),
])
def test_shots_to_match(zero_shot, expected) -> None:
    got = fewshot.shots_to_match(SHOTS, CURVE, zero_shot)
    assert got == pytest.approx(expected) if isinstance(expected, float) else got == expected


def test_shots_to_match_takes_the_first_crossing_and_checks_its_input() -> None:
    # a non-monotonic curve: the first k reaching zero-shot counts
    assert fewshot.shots_to_match(SHOTS, (0.2, 0.5, 0.3, 0.6, 0.7), 0.5) == pytest.approx(2.0)
    assert fewshot.shots_to_match((1, 2), (0.1, 0.3), 0.2) == pytest.approx(math.sqrt(2))
    with pytest.raises(ValueError, match="one accuracy per k"):
        fewshot.shots_to_match(SHOTS, CURVE[:3], 0.3)
    with pytest.raises(ValueError, match="must increase"):
        fewshot.shots_to_match((2, 1), (0.1, 0.2), 0.15)


def test_probe_task_matches_linear_probe_and_few_shot() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 8))
    y = np.repeat(np.array(["a", "b", "c"]), 12)
    x = centres[np.searchsorted(["a", "b", "c"], y)] + rng.normal(scale=1.5, size=(len(y), 8))
    tests = {}
    for name in ("one", "two"):
        ty = np.repeat(np.array(["a", "b", "c"]), 10)
        tests[name] = (centres[np.searchsorted(["a", "b", "c"], ty)] + rng.normal(scale=1.5, size=(30, 8)), ty)
    out = fewshot.probe_task(x, y, tests, shots=(1, 2, 4), draws=2, seed=3)
    for name, (tx, ty) in tests.items():
        assert out[name]["linear_probe"] == linear_probe(x, y, tx, ty, seed=3)["top1"]
        expected = few_shot(x, y, tx, ty, shots=(1, 2, 4), draws=2, seed=3)
        for k in (1, 2, 4):
            assert out[name]["few_shot_draws"][str(k)] == [r["top1"] for r in expected if r["k"] == k]
    assert out["_probe"]["n_fits"] > 10


def test_smoke_run_has_every_task_and_k(smoke_run) -> None:
    [record] = load_results("fewshot", "smoke", root=smoke_run["root"] / "results")
    spec = fewshot.PROFILES["smoke"]
    assert record["experiment"] == "fewshot" and record["config"]["corpus"] == "smoke"
    assert record["config"]["per_class"] == spec["per_class"] and record["config"]["draws"] == spec["draws"]
    assert set(record["metrics"]) == set(spec["families"]) | set(spec["own_split"])
    for task, entry in record["metrics"].items():
        assert {"label", "pool", "n_classes", "n_pool", "classes_dropped", "probe", "tests"} <= set(entry)
        assert entry["n_classes"] >= 2 and entry["n_pool"] > 0
        assert entry["tests"], task
        for result in entry["tests"].values():
            assert result["n"] > 0
            for key in ("zero_shot", "linear_probe"):
                assert 0.0 <= result[key] <= 1.0
            assert list(result["few_shot"]) == [str(k) for k in SHOTS]
            for k in SHOTS:
                draws = result["few_shot_draws"][str(k)]
                assert len(draws) == spec["draws"] and all(0.0 <= a <= 1.0 for a in draws)
                assert result["few_shot"][str(k)] == pytest.approx(np.mean(draws))
            match = result["shots_to_match"]
            assert match in ("< 1", "> 16") or 1.0 <= match <= 16.0
    family = record["metrics"][spec["families"][0]]
    assert family["pool"] == "train split"
    assert {"in-distribution", "held-out style", "zero-shot concepts"} <= set(family["tests"])
    # the clip_small model was trained once (its result is there) and is reused, not retrained
    assert load_results("clip_small", "smoke", root=smoke_run["root"] / "results")
