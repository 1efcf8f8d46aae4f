"""The `robustness` experiment (paper §3.3, Figures 13–14 and Figure 5's supervised half) end to end at the smoke
profile: the result file's schema, accuracies, snapshots, effective robustness recomputed from the stored
accuracies, and CLIP and the supervised ResNets scored on the same images."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import smoke_experiment

from repro.evaluate.robustness import effective_robustness
from repro.experiments import get, robustness


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """One smoke run of `robustness` (training the smoke clip_small first) into temporary data/results/run dirs."""
    with smoke_experiment(tmp_path_factory, "robustness") as run:
        yield run


def test_registered_and_profiles_match_clip_small() -> None:
    assert get("robustness") is robustness
    assert {p: s["seeds"] for p, s in robustness.PROFILES.items()} == {"smoke": 1, "cpu": 3, "gpu": 3}
    for spec in robustness.PROFILES.values():
        assert spec["headline"] in spec["models"] and not spec["models"][spec["headline"]].get("reference")
        assert sum(1 for m in spec["models"].values() if m.get("reference")) >= 1


def test_snapshot_steps() -> None:
    assert robustness.snapshot_steps(100, (0.25, 0.5, 0.75, 1.0)) == [25, 50, 75, 100]
    assert robustness.snapshot_steps(3, (0.1, 0.2, 1.0)) == [1, 3]  # at least step 1, no duplicates


def test_robustness_metrics_matches_effective_robustness() -> None:
    rng = np.random.default_rng(0)
    trend = [{"val": a, "s1": a * 0.5 + rng.uniform(0, 0.05), "s2": a * 0.3} for a in (0.2, 0.4, 0.6, 0.8)]
    models = {"clip": {"val": 0.3, "s1": 0.3, "s2": 0.25}, "sup": {"val": 0.7, "s1": 0.35, "s2": 0.2}}
    out = robustness.robustness_metrics(trend, models, "val", ["s1", "s2"], ["s1", "s2"])
    for split in ("s1", "s2"):
        fit = effective_robustness([0.3, 0.7], [models["clip"][split], models["sup"][split]],
                                   [p["val"] for p in trend], [p[split] for p in trend])
        assert out["models"]["clip"][split]["effective_robustness"] == pytest.approx(fit["effective_robustness"][0])
        assert out["models"]["sup"][split]["predicted"] == pytest.approx(fit["predicted"][1])
    mean = out["models"]["clip"][robustness.HELD_OUT_MEAN]
    assert mean["shifted"] == pytest.approx(0.275)
    assert out["trend"][robustness.HELD_OUT_MEAN]["n_ref"] == 4


def test_result_schema(smoke_run) -> None:
    record = smoke_run["record"]
    spec = robustness.PROFILES["smoke"]
    assert record["experiment"] == "robustness" and record["profile"] == "smoke" and record["seed"] == 0
    m = record["metrics"]
    assert set(m) == {"task", "supervised", "zero_shot", "lr_head", "figure5", "effective_robustness"}
    assert m["task"]["prefix"] == spec["prefix"] and m["task"]["in_distribution"] in m["task"]["splits"]
    assert set(m["supervised"]) == set(spec["models"])
    assert set(m["effective_robustness"]["models"]) == {"zero_shot", spec["headline"], "lr_head"}
    assert set(record["curves"]) == set(spec["models"])
    for curve in record["curves"].values():
        assert len(curve["loss"]) == len(curve["step"]) > 0 and all(math.isfinite(v) for v in curve["loss"])
    assert set(m["figure5"]["tests"]) == set(m["task"]["splits"][s]["shift"] for s in m["task"]["splits"])


def _accuracies(record: dict):
    m = record["metrics"]
    for model in m["supervised"].values():
        for snap in model["snapshots"]:
            yield from snap["accuracy"].values()
    for r in m["zero_shot"].values():
        yield r["top1"]
    yield from m["lr_head"]["accuracy"].values()
    for t in m["figure5"]["tests"].values():
        yield from (t["zero_shot"], t["resnet101_probe"], t["clip_probe"])


def test_accuracies_are_fractions(smoke_run) -> None:
    values = list(_accuracies(smoke_run["record"]))
    assert values and all(0.0 <= v <= 1.0 for v in values)


def test_snapshots_are_monotone_in_images_seen(smoke_run) -> None:
    m = smoke_run["record"]["metrics"]
    for name, model in m["supervised"].items():
        seen = [s["images_seen"] for s in model["snapshots"]]
        assert seen == sorted(set(seen)) and len(seen) == len(robustness.PROFILES["smoke"]["snapshots"]), name
        assert all(s["images_seen"] == s["step"] * model["batch_size"] for s in model["snapshots"])
        assert model["snapshots"][-1]["step"] == model["total_steps"]
        assert model["final"] == model["snapshots"][-1]["accuracy"]


def test_effective_robustness_recomputed_from_stored_accuracies(smoke_run) -> None:
    m = smoke_run["record"]["metrics"]
    ind = m["task"]["in_distribution"]
    trend = [s["accuracy"] for model in m["supervised"].values() for s in model["snapshots"]]
    models = {"zero_shot": {s: r["top1"] for s, r in m["zero_shot"].items()},
              "resnet101": m["supervised"]["resnet101"]["final"], "lr_head": m["lr_head"]["accuracy"]}
    er = m["effective_robustness"]
    assert er["trend_points"] == len(trend)
    for split in (s for s in m["task"]["splits"] if s != ind):
        fit = effective_robustness([models[n][ind] for n in models], [models[n][split] for n in models],
                                   [p[ind] for p in trend], [p[split] for p in trend])
        assert er["trend"][split]["slope"] == pytest.approx(fit["slope"])
        for i, name in enumerate(models):
            assert er["models"][name][split]["effective_robustness"] == pytest.approx(fit["effective_robustness"][i])
            assert er["models"][name][split]["shifted"] == models[name][split]


def test_clip_and_resnets_see_the_same_images(smoke_run) -> None:
    m = smoke_run["record"]["metrics"]
    for split, info in m["task"]["splits"].items():
        assert m["zero_shot"][split]["n"] == info["n"] > 0
        for model in m["supervised"].values():
            assert model["n"][split] == info["n"]
    for t in m["figure5"]["tests"].values():
        assert t["n"] == sum(m["task"]["splits"][s]["n"] for s in t["splits"]) or m["figure5"]["classes_dropped"]


def test_classifier_accuracy_restores_training_mode() -> None:
    class Fixed(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.eye(3))

        def predict(self, x: torch.Tensor) -> torch.Tensor:
            return x.flatten(1)[:, :3] @ self.w

    model = Fixed().train()
    x = torch.eye(3).repeat(4, 1).view(12, 3, 1, 1)
    y = np.tile(np.arange(3), 4)
    assert robustness.classifier_accuracy(model, x, y, batch_size=5) == 1.0
    assert robustness.classifier_accuracy(model, x, (y + 1) % 3) == 0.0
    assert model.training


def test_bad_prefix_is_a_clear_error(smoke_run, monkeypatch) -> None:
    monkeypatch.setenv("REPRO_DATA", str(smoke_run["root"] / "data"))
    monkeypatch.setitem(robustness.PROFILES, "smoke", robustness.PROFILES["smoke"] | {"prefix": "no-such-task/"})
    with pytest.raises(ValueError, match="no suite starts with 'no-such-task/'"):
        robustness.run("smoke", 0, smoke_run["root"] / "runs", results_root=smoke_run["root"] / "results")
