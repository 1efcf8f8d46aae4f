"""repro.views.scaling: the compute chapter's tables and figures, on the committed study and on synthetic records."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from repro import claims
from repro.book import ExperimentResults
from repro.experiments import scaling
from repro.experiments.results import load_results
from repro.views import scaling as view

ROOT = Path(__file__).resolve().parents[1] / "results"
STUDY = ROOT / "scaling" / "cpu" / "seed0.json"


@pytest.fixture(scope="module")
def record() -> dict:
    if not STUDY.is_file():
        pytest.skip("no committed scaling results")
    return json.loads(STUDY.read_text())


@pytest.fixture(scope="module")
def headline(record) -> pd.DataFrame:
    return scaling.headline_points(load_results("clip_small", "cpu", ROOT), record)


def _point(family, size, flops, error, validation=0.2, arm="size", steps=100, wall=10.0, params=1e6):
    return {"family": family, "size": size, "arm": arm, "steps": steps, "images_seen": steps * 8, "params": params,
            "train_flops": flops, "train_wall_time_s": wall, "img_s": 100.0, "precision": "fp32",
            "final_logit_scale": 14.3, "zeroshot": {"val": validation, "test": 1 - error}}


def _record(points) -> dict:
    config = {"select": ["val"], "suites": ["val", "test"], "train": {"steps": 100, "batch_size": 8}}
    return {"seed": 0, "config": config, "metrics": {"points": points}}


def test_ladder_keeps_the_size_arm_only(record) -> None:
    ladder = view.ladder(record)
    assert set(ladder["arm"]) == {"size"}
    assert len(ladder) == sum(p.get("arm", "size") == "size" for p in record["metrics"]["points"])


def test_models_table_reports_each_model(record) -> None:
    table = view.models_table(record)
    assert list(table.columns) == ["family", "size", "parameters (M)", "training FLOPs (counted)", "images / s",
                                   "precision"]
    points = [p for p in record["metrics"]["points"] if p.get("arm", "size") == "size"]
    assert table["parameters (M)"].tolist() == [round(p["params"] / 1e6, 2) for p in points]
    assert table["training FLOPs (counted)"].tolist() == [f"{p['train_flops']:.2e}" for p in points]


def test_fits_agree_with_a_direct_fit_and_with_the_claims(record) -> None:
    table = view.fits_table(record).set_index("family")
    ladder = view.ladder(record)
    found = {c.label.split(", ")[1]: c for c in claims.compute_scaling(ExperimentResults("scaling", "cpu", [record],
                                                                                         ROOT))}
    for family, group in ladder.groupby("family"):
        fit = scaling.fit_log_linear(group["train_flops"], group["test_error"])
        low, high = fit["slope"] - fit["slope_ci95"], fit["slope"] + fit["slope_ci95"]
        assert table.loc[family, "slope of log error [95% interval]"] == \
            f"{fit['slope']:+.3f} [{low:.3f}, {high:.3f}]"
        assert table.loc[family, "points"] == len(group)
        expected = "falls" if high < 0 else "rises" if low > 0 else "shows no trend"
        assert table.loc[family, "error with compute"] == expected
        assert found[family].effect["mean"] == pytest.approx(fit["slope"])


def test_family_gap_verdict_follows_its_interval(record) -> None:
    gap = view.family_gap(record)
    assert gap is not None and gap["ratio_lo"] <= gap["ratio"] <= gap["ratio_hi"]
    if gap["ratio_hi"] < 1:
        assert gap["verdict"].startswith("lower")
    elif gap["ratio_lo"] > 1:
        assert gap["verdict"].startswith("higher")
    else:
        assert gap["verdict"].startswith("not distinguishable")


def test_facts_and_headline_gain(record, headline) -> None:
    facts = view.facts(record, headline)
    train = record["config"]["train"]
    ladder = view.ladder(record)
    assert facts["images"] == train["steps"] * train["batch_size"]
    assert facts["span"] == pytest.approx(ladder["train_flops"].max() / ladder["train_flops"].min())
    assert facts["chosen"] == scaling.choose_headline(ladder, view.clip_small.BUDGET_S)["size"]
    if len(headline):
        gain = view.headline_gain(record, headline)
        assert gain["size"] == facts["chosen"] and gain["runs"] == len(headline)
        assert gain["error_after"] == pytest.approx(headline["test_error"].mean())
    assert view.headline_gain(record, headline.iloc[0:0]) is None


def test_error_figure_has_two_log_axes(record, headline) -> None:
    import matplotlib.pyplot as plt

    fig = view.error_figure(record, headline)
    left, right = fig.axes
    assert left.get_xscale() == left.get_yscale() == "log" and right.get_xscale() == "log"
    assert left.get_ylabel() == "mean zero-shot error (test suites)"
    assert {t.get_text() for t in left.get_legend().get_texts()} >= {"ViT", "ResNet"}
    plt.close(fig)


def test_length_fit_is_the_direct_fit_of_the_series(record, headline) -> None:
    import matplotlib.pyplot as plt

    fit = view.length_fit(record, headline)
    series = view.length_series(record, headline)
    if fit is None:
        assert len(series) < 3 or series["source"].nunique() < 2
        return
    direct = scaling.fit_log_linear(series["train_flops"], series["test_error"])
    assert fit["slope"] == pytest.approx(direct["slope"]) and fit["n"] == len(series)
    assert fit["images_min"] == series["images_seen"].min() and fit["images_max"] == series["images_seen"].max()
    fig = view.length_figure(record, headline)
    assert fig.axes[0].get_xscale() == "log"
    plt.close(fig)


def test_extrapolation_only_where_a_line_falls(record, headline) -> None:
    table = view.extrapolation_table(record, headline)
    assert list(table.columns) == ["suite", "target top-1 (%)", "series", "slope [95% interval]",
                                   "best reached (%)", "FLOPs the line needs", "× the largest point"]
    for _, row in table.iterrows():
        high = float(row["slope [95% interval]"].split(", ")[1].rstrip("]"))
        assert (row["FLOPs the line needs"] == "no falling line to extrapolate") == (high >= 0)
        assert 0 <= row["best reached (%)"] <= 100


def test_choice_table_marks_the_eligible_and_the_choice(record) -> None:
    table = view.choice_table(record)
    ladder = view.ladder(record)
    fast = ladder["train_wall_time_s"] * scaling.HEADLINE_MIN_PASSES <= view.clip_small.BUDGET_S
    small = ladder["params"] <= scaling.SHIP_MAX_PARAMS
    assert (table["eligible"] == "yes").tolist() == (fast & small).tolist()
    eligible = table[table["eligible"] == "yes"]
    chosen = eligible.loc[eligible["validation top-1 (%)"].idxmax(), "size"]
    assert chosen == view.facts(record)["chosen"]
    assert table["validation top-1 (%)"].between(0, 100).all()


def test_a_falling_power_law_is_found_and_extrapolated() -> None:
    flops = [1e12, 3e12, 1e13, 3e13, 1e14]
    points = [_point("ViT", f"V{i}", f, 2.0 * f ** -0.02 * (1 + 0.001 * (-1) ** i), wall=1.0)
              for i, f in enumerate(flops)]
    points += [_point("ResNet", f"R{i}", f, 0.9, wall=1.0) for i, f in enumerate(flops[:2])]
    record = _record(points)
    table = view.fits_table(record).set_index("family")
    assert table.loc["ViT", "error with compute"] == "falls" and "ResNet" not in table.index
    assert view.family_gap(record) is None  # the ResNets have too few points
    far = view.extrapolation_table(record, targets={"test": 0.5})
    vit = far[far["series"] == "ViT"].iloc[0]
    need = scaling.compute_for(scaling.fit_log_linear(flops, [1 - view.ladder(record).loc[i, "test"]
                                                              for i in range(5)]), 0.5)
    assert vit["FLOPs the line needs"] == f"{need:.1e}" and math.isfinite(need)


def test_too_few_points_give_empty_tables_and_no_fits() -> None:
    record = _record([_point("ViT", "V0", 1e12, 0.9), _point("ViT", "V1", 2e12, 0.8)])
    fits = view.fits_table(record)
    assert fits.empty and "slope of log error [95% interval]" in fits.columns
    assert view.length_fit(record) is None and view.length_figure(record) is None
    assert view.extrapolation_table(record).empty
    assert np.isfinite(view.facts(record)["span"])
