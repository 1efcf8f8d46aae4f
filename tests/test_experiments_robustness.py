"""The `robustness` experiment (paper §3.3, Figures 13–14 and Figure 5's supervised half; Fang et al. 2022's narrow
CLIP) end to end at the smoke profile: the result file's schema, accuracies, snapshots, effective robustness (with
the trend's band) recomputed from the stored accuracies, the narrow corpus holding exactly the supervised models'
pictures, the relabelled icon-set stand-in, and CLIP and the supervised ResNets scored on the same images."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import smoke_experiment

from repro.data.pack import load_packed
from repro.evaluate.robustness import effective_robustness
from repro.evaluate.shift import shift_task, training_rows
from repro.experiments import clip_small, get, robustness, robustness_narrow
from repro.experiments.robustness_summary import record_metrics, summarize


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """One smoke run of `robustness` (training the smoke clip_small first) into temporary data/results/run dirs."""
    with smoke_experiment(tmp_path_factory, "robustness") as run:
        yield run


def test_registered_and_profiles_match_clip_small() -> None:
    assert get("robustness") is robustness
    assert {p: s["seeds"] for p, s in robustness.PROFILES.items()} == {"smoke": 1, "cpu": 3, "gpu": 3}
    for profile, spec in robustness.PROFILES.items():
        assert spec["corpus"] == clip_small.PROFILES[profile]["corpus"]  # the corpus the evaluated CLIP trained on
        assert spec["headline"] in spec["models"] and not spec["models"][spec["headline"]].get("reference")
        assert sum(1 for m in spec["models"].values() if m.get("reference")) >= 1
    assert robustness.PROFILES["cpu"]["corpus"] == "large"


def test_narrow_recipe_is_the_headline_scaled_and_fits_the_budget() -> None:
    for profile, spec in robustness.PROFILES.items():
        narrow = robustness_narrow.narrow_train_settings(profile, spec["narrow_fraction"])
        headline = clip_small.PROFILES[profile]["train"]
        assert {k: v for k, v in narrow.items() if k not in ("steps", "warmup_steps")} == \
            {k: v for k, v in headline.items() if k not in ("steps", "warmup_steps")}
        assert 1 <= narrow["steps"] <= headline["steps"] and narrow["warmup_steps"] <= narrow["steps"]
    cpu = robustness_narrow.narrow_train_settings("cpu", robustness.PROFILES["cpu"]["narrow_fraction"])
    assert cpu["steps"] * 0.16 <= 300  # the headline's ≈ 0.16 s per step of 256 on 2 cores: ≤ 5 minutes
    with pytest.raises(ValueError, match="step fraction"):
        robustness_narrow.narrow_train_settings("cpu", 0.0)


def test_snapshot_steps() -> None:
    assert robustness.snapshot_steps(100, (0.25, 0.5, 0.75, 1.0)) == [25, 50, 75, 100]
    assert robustness.snapshot_steps(3, (0.1, 0.2, 1.0)) == [1, 3]  # at least step 1, no duplicates


def test_robustness_metrics_matches_effective_robustness() -> None:  # re-exported from robustness_summary
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
    assert set(m) == {"task", "supervised", "zero_shot", "narrow_clip", "lr_head", "figure5", "effective_robustness"}
    assert m["task"]["prefix"] == spec["prefix"] and m["task"]["in_distribution"] in m["task"]["splits"]
    assert set(m["supervised"]) == set(spec["models"])
    assert set(m["effective_robustness"]["models"]) == {"zero_shot", "narrow_zero_shot", "lr_head", *spec["models"]}
    assert set(record["curves"]) == set(spec["models"])
    for curve in record["curves"].values():
        assert len(curve["loss"]) == len(curve["step"]) > 0 and all(math.isfinite(v) for v in curve["loss"])
    icons = m["task"]["icon_sets"]
    assert icons and all(v["n"] > 0 for v in icons.values())  # smoke: the concept-labelled held-out style
    assert set(icons).isdisjoint(m["task"]["splits"])
    assert set(m["figure5"]["tests"]) == ({m["task"]["splits"][s]["shift"] for s in m["task"]["splits"]}
                                          | {robustness.ICON_SHIFT})
    targets = set(m["effective_robustness"]["trend"])
    assert {robustness.HELD_OUT_MEAN, robustness.ICON_MEAN, *icons} <= targets
    for split in m["zero_shot"]:
        assert m["narrow_clip"]["zero_shot"][split]["n"] == m["zero_shot"][split]["n"]
    narrow = m["narrow_clip"]["train"]
    assert narrow["steps"] == robustness_narrow.narrow_train_settings("smoke", spec["narrow_fraction"])["steps"]


def _accuracies(record: dict):
    m = record["metrics"]
    for model in m["supervised"].values():
        for snap in model["snapshots"]:
            yield from snap["accuracy"].values()
    for r in [*m["zero_shot"].values(), *m["narrow_clip"]["zero_shot"].values()]:
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
    record = smoke_run["record"]
    m = record["metrics"]
    ind = m["task"]["in_distribution"]
    trend = [s["accuracy"] for model in m["supervised"].values() for s in model["snapshots"]]
    models = {"zero_shot": {s: r["top1"] for s, r in m["zero_shot"].items()},
              "narrow_zero_shot": {s: r["top1"] for s, r in m["narrow_clip"]["zero_shot"].items()},
              "resnet101": m["supervised"]["resnet101"]["final"], "lr_head": m["lr_head"]["accuracy"]}
    er = m["effective_robustness"]
    assert er["trend_points"] == len(trend)
    for split in [*(s for s in m["task"]["splits"] if s != ind), *m["task"]["icon_sets"]]:
        fit = effective_robustness([models[n][ind] for n in models], [models[n][split] for n in models],
                                   [p[ind] for p in trend], [p[split] for p in trend])
        assert er["trend"][split]["slope"] == pytest.approx(fit["slope"])
        for i, name in enumerate(models):
            v = er["models"][name][split]
            assert v["effective_robustness"] == pytest.approx(fit["effective_robustness"][i])
            assert v["shifted"] == models[name][split]
            assert v["er_low"] <= v["effective_robustness"] <= v["er_high"]
    # the summary recomputes exactly what the run stored
    again = record_metrics(record)
    for name, by_split in er["models"].items():
        for split, v in by_split.items():
            for key, value in v.items():
                assert again["models"][name][split][key] == pytest.approx(value, nan_ok=True), (name, split, key)
    table = summarize([record])
    assert len(table) == sum(len(v) for v in er["models"].values())


def test_narrow_corpus_holds_exactly_the_supervised_pictures(smoke_run, monkeypatch) -> None:
    monkeypatch.setenv("REPRO_DATA", str(smoke_run["root"] / "data"))
    corpus = smoke_run["corpus"]
    task = shift_task(corpus, robustness.PROFILES["smoke"]["prefix"])
    train, rows, _ = training_rows(task, corpus, 32)
    folder = smoke_run["root"] / "runs" / "robustness" / "smoke" / "narrow_corpus" / f"{corpus.name}-narrow"
    narrow = load_packed(folder / "packed" / "train_32.npz")
    assert np.array_equal(narrow.images, train.images[rows])
    assert narrow.captions == [train.captions[i] for i in rows]
    assert narrow.fields["concept_id"] == [train.fields["concept_id"][i] for i in rows]
    assert not (folder / "packed" / "train_48.npz").exists()  # only the one training split, no other size
    assert (folder / "suites.json").is_file() and (folder / "packed" / "val_32.npz").is_file()
    m = smoke_run["record"]["metrics"]
    assert m["narrow_clip"]["data"]["n_train"] == len(rows) == m["task"]["n_train"]
    before = (folder / "packed" / "train_32.npz").read_bytes()
    robustness_narrow.write_narrow_corpus(train, rows, corpus, folder, 32, task.prefix, task.label)
    assert (folder / "packed" / "train_32.npz").read_bytes() == before  # same rows: not rewritten (resumable)


def test_clip_and_resnets_see_the_same_images(smoke_run) -> None:
    m = smoke_run["record"]["metrics"]
    for split, info in [*m["task"]["splits"].items(), *m["task"]["icon_sets"].items()]:
        assert m["zero_shot"][split]["n"] == info["n"] > 0
        for model in m["supervised"].values():
            assert model["n"][split] == info["n"]
    sizes = {s: v["n"] for s, v in [*m["task"]["splits"].items(), *m["task"]["icon_sets"].items()]}
    for t in m["figure5"]["tests"].values():
        assert t["n"] == sum(sizes[s] for s in t["splits"]) or m["figure5"]["classes_dropped"]


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
