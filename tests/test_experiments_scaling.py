"""The compute study (`scaling`, paper Figure 9): counted training FLOPs, the log-log fit and its interval, the
choice of the headline model on validation suites only, and the experiment end to end at the smoke profile."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from repro import flops
from repro.experiments import scaling
from repro.experiments.common import corpus_for
from repro.train import TrainConfig, train


def test_steps_to_count_spreads_over_the_run() -> None:
    assert flops.steps_to_count(0, 10) == {0, 3, 6, 9}
    assert flops.steps_to_count(5, 7) == {5, 6}
    assert flops.steps_to_count(3, 3) == set()
    assert flops.total_flops([10, 20], 6) == 90 and flops.total_flops([], 6) is None


def test_counting_includes_the_backward_pass() -> None:
    layer = torch.nn.Linear(16, 8, bias=False)
    x = torch.randn(4, 16, requires_grad=True)
    with flops.counting(True) as counted:
        layer(x).sum().backward()
    assert counted.total == 3 * 2 * 4 * 16 * 8  # forward, input gradient, weight gradient
    with flops.counting(False) as nothing:
        layer(x).sum().backward()
    assert nothing.total is None


def test_train_reports_counted_flops(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("REPRO_DATA", str(tmp_path / "data"))
    corpus = corpus_for("smoke")
    kw = dict(corpus_dir=str(corpus), model="ViT-XS/8@32px", batch_size=8, steps=5, warmup_steps=1,
              precision="fp32", progress=False, model_overrides={"vision_layers": 1, "transformer_layers": 1,
                                                                   "context_length": 16, "vocab_size": 600})
    small = train(TrainConfig(out_dir=str(tmp_path / "a"), **kw))["flops"]
    assert len(small["per_step_counted"]) == 4 and all(f > 0 for f in small["per_step_counted"])
    assert small["total"] == pytest.approx(np.mean(small["per_step_counted"]) * 5)
    wider = train(TrainConfig(out_dir=str(tmp_path / "b"), **(kw | {"model_overrides": kw["model_overrides"] | {
        "vision_layers": 2}})))["flops"]
    assert wider["total"] > small["total"]  # one more image block, the same captions


def test_fit_recovers_a_power_law() -> None:
    compute = np.array([1e12, 3e12, 1e13, 3e13, 1e14])
    error = 2.0 * compute ** -0.05
    fit = scaling.fit_log_linear(compute, error)
    assert fit["slope"] == pytest.approx(-0.05) and fit["r2"] == pytest.approx(1.0)
    assert fit["slope_ci95"] == pytest.approx(0.0, abs=1e-9)
    predicted, half = scaling.predict(fit, 5e12)
    assert predicted == pytest.approx(2.0 * 5e12 ** -0.05) and half == pytest.approx(0.0, abs=1e-9)
    assert scaling.compute_for(fit, 2.0 * 1e15 ** -0.05) == pytest.approx(1e15, rel=1e-6)


def test_fit_interval_covers_the_true_slope_usually() -> None:
    rng = np.random.default_rng(0)
    compute = np.logspace(12, 14, 5)
    covered = 0
    for _ in range(400):
        error = 0.9 * compute ** -0.04 * 10 ** rng.normal(0, 0.01, 5)
        fit = scaling.fit_log_linear(compute, error)
        covered += abs(fit["slope"] + 0.04) <= fit["slope_ci95"]
    assert 0.91 <= covered / 400 <= 0.99


def test_fit_rejects_too_few_or_bad_points() -> None:
    with pytest.raises(ValueError, match="3 or more"):
        scaling.fit_log_linear([1e12, 1e13], [0.5, 0.4])
    with pytest.raises(ValueError, match="two or more distinct compute values"):
        scaling.fit_log_linear([1e12, 1e12, 1e12], [0.5, 0.4, 0.3])
    with pytest.raises(ValueError, match="must be finite and > 0"):
        scaling.fit_log_linear([1e12, 1e13, 1e14], [0.5, 0.0, 0.3])


def _table(**validation) -> pd.DataFrame:
    return pd.DataFrame([{"size": k, "validation": v, "train_wall_time_s": 100.0 * (i + 1), "params": 1e6 * (i + 1),
                          "emoji-concept/named": 1 - v} for i, (k, v) in enumerate(validation.items())])


def test_headline_is_chosen_on_validation_within_the_budget() -> None:
    table = _table(a=0.2, b=0.4, c=0.5)  # c takes 300 s: 3 passes need 900 s
    assert scaling.choose_headline(table, budget_s=900)["size"] == "c"
    assert scaling.choose_headline(table, budget_s=899)["size"] == "b"  # the best test score (a) plays no part
    assert scaling.choose_headline(table, budget_s=900, max_params=2e6)["size"] == "b"  # c would not ship
    with pytest.raises(ValueError, match="no point of the study"):
        scaling.choose_headline(table, budget_s=100)


def test_ladders_span_the_compute_the_study_needs() -> None:
    """Five sizes per family; the rungs share text Transformers; parameters grow along each ladder."""
    from repro.models.clip import CLIP

    for family, sizes in scaling.LADDERS.items():
        assert len(sizes) == 5
        params = [sum(p.numel() for p in CLIP(TrainConfig(**m).clip_config()).visual.parameters())
                  for m in sizes.values()]
        assert params == sorted(params), family
    text = [[(m["model_overrides"]["transformer_width"], m["model_overrides"]["transformer_layers"])
             for m in sizes.values()] for sizes in scaling.LADDERS.values()]
    assert text[0] == text[1]


def test_smoke_study_end_to_end(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("REPRO_DATA", str(tmp_path / "data"))
    path = scaling.run("smoke", 0, tmp_path / "runs", tmp_path / "results")
    record = json.loads(path.read_text())
    table = scaling.points_table(record)
    assert len(table) == 5 and set(table["family"]) == {"ViT", "ResNet"}
    longer = table[table["arm"] == "length"]  # RN 8 trained for 6 steps besides the ladder's 12
    assert list(longer["size"]) == ["RN 8"] and list(longer["steps"]) == [6]
    ladder = table[table["arm"] == "size"]
    for _, family in ladder.groupby("family"):
        assert family["train_flops"].is_monotonic_increasing
    short = ladder[ladder["size"] == "RN 8"].iloc[0]
    assert longer.iloc[0]["train_flops"] < short["train_flops"] and longer.iloc[0]["images_seen"] == 6 * 32
    assert set(scaling.fits_table(table)["points"]) <= {2, 4}  # the length arm is not a ladder point
    assert table["test_error"].between(0, 1).all() and table["validation"].between(0, 1).all()
    assert set(record["config"]["suite_facts"]) == set(scaling.PROFILES["smoke"]["suites"])
    stored = sorted((tmp_path / "runs").rglob("point.json"))
    before = [p.stat().st_mtime_ns for p in stored]
    again = json.loads(scaling.run("smoke", 0, tmp_path / "runs", tmp_path / "results").read_text())
    assert [p.stat().st_mtime_ns for p in stored] == before  # finished points are read back, not retrained
    assert again["metrics"]["points"] == record["metrics"]["points"]
    assert math.isfinite(scaling.fit_log_linear(table["train_flops"], table["test_error"])["slope"])


def test_every_point_shares_the_text_settings() -> None:
    """Only the encoders' sizes differ between points: one context length and one vocabulary for all."""
    configs = [TrainConfig(**m).clip_config() for sizes in scaling.LADDERS.values() for m in sizes.values()]
    assert {(c.context_length, c.vocab_size) for c in configs} == {(32, 8192)}


def test_fits_per_family_and_the_gap_at_equal_compute() -> None:
    compute = np.logspace(12, 14, 5)
    rows = [{"family": "ResNet", "train_flops": c, "test_error": 0.8 * (c / 1e12) ** -0.05} for c in compute]
    rows += [{"family": "ViT", "train_flops": c, "test_error": 0.9 * (c / 1e12) ** -0.05} for c in compute[:2]]
    table = pd.DataFrame(rows)
    fits = scaling.fits_table(table).set_index("family")
    assert list(fits.index) == ["ResNet", "both"]  # two ViT points are too few for a line
    assert fits.loc["ResNet", "slope"] == pytest.approx(-0.05) and fits.loc["ResNet", "span"] == pytest.approx(100)
    assert scaling.family_gap(table) is None
    table = pd.concat([table, pd.DataFrame([{"family": "ViT", "train_flops": c,
                                             "test_error": 0.9 * (c / 1e12) ** -0.05} for c in compute[2:]])])
    gap = scaling.family_gap(table)
    assert gap["ratio"] == pytest.approx(0.8 / 0.9) and gap["ratio_lo"] == pytest.approx(gap["ratio_hi"])


def test_the_cpu_headline_is_the_studys_choice() -> None:
    """clip_small's cpu profile trains the model the committed study chooses, with the study's recipe."""
    from pathlib import Path

    from repro.experiments import clip_small
    from repro.experiments.results import load_results

    records = load_results("scaling", "cpu", root=Path(__file__).resolve().parents[1] / "results")
    if not records:
        pytest.skip("no committed cpu results of the compute study")
    chosen = scaling.choose_headline(scaling.points_table(records[0]), clip_small.BUDGET_S)
    assert (chosen["family"], chosen["size"]) == clip_small.HEADLINE
    headline = clip_small.PROFILES["cpu"]["train"]
    model = scaling.LADDERS[chosen["family"]][chosen["size"]]
    assert headline["model"] == model["model"] and headline["model_overrides"] == model["model_overrides"]
    study = records[0]["config"]["train"]
    assert all(headline[k] == study[k] for k in ("batch_size", "lr", "data_size"))
    assert headline["steps"] >= scaling.HEADLINE_MIN_PASSES * study["steps"]


def test_headline_points_use_the_studys_suites() -> None:
    study = {"config": {"select": ["v"], "suites": ["v", "a", "b"]}}
    run = {"seed": 1, "config": {"batch_size": 4}, "metrics": {
        "train": {"train_flops": 5e12, "steps": 10}, "v": {"top1": 0.5}, "a": {"top1": 0.2}, "b": {"top1": 0.4}}}
    old = {"seed": 0, "config": {"batch_size": 4}, "metrics": {"train": {"steps": 3}, "v": {"top1": 0.1}}}
    table = scaling.headline_points([old, run], study)
    assert table.to_dict("records") == [{"seed": 1, "train_flops": 5e12, "images_seen": 40, "validation": 0.5,
                                         "test_error": pytest.approx(0.7), "v": 0.5, "a": 0.2, "b": 0.4}]
    points = pd.DataFrame([{"size": "m", "arm": "size", "train_flops": 1e12, "test_error": 0.9},
                           {"size": "m", "arm": "length", "train_flops": 2e12, "test_error": 0.8},
                           {"size": "other", "arm": "size", "train_flops": 3e12, "test_error": 0.85}])
    series = scaling.length_series(points, "m", table)
    assert list(series["source"]) == ["study", "length arm", "headline"]
    assert list(series["train_flops"]) == [1e12, 2e12, 5e12]
