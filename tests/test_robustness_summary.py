"""The pieces of the `robustness` experiment that need no training (paper §3.3; Taori et al., 2020; Fang et al.,
2022): the trend's prediction interval, the icon-set relabelling, and the summary tables on synthetic records."""

from __future__ import annotations

import math

import numpy as np
import pytest

from repro.data.pack import PackedSplit
from repro.evaluate.robustness import effective_robustness, logit, sigmoid, trend_band
from repro.evaluate.shift import concept_label_map, normalise_name, relabel_by_concept
from repro.experiments.robustness_summary import (
    HELD_OUT_MEAN,
    ICON_MEAN,
    MIN_ICON_PICTURES,
    head_effect,
    icon_precondition,
    robustness_metrics,
    summarize,
    verdicts_inputs,
)

# --- the trend's band ----------------------------------------------------------------------------------------------


def test_trend_band_is_the_ols_prediction_interval() -> None:
    rng = np.random.default_rng(1)
    x_acc = np.linspace(0.1, 0.8, 9)
    y_acc = sigmoid(0.8 * logit(x_acc) - 0.7 + rng.normal(0, 0.2, 9))
    at = np.array([0.05, 0.3, 0.9])
    band = trend_band(x_acc, y_acc, at)
    fit = effective_robustness(at, at, x_acc, y_acc)
    assert band["slope"] == pytest.approx(fit["slope"]) and band["intercept"] == pytest.approx(fit["intercept"])
    assert np.allclose(band["predicted"], fit["predicted"])
    # by hand: fit(x0) ± t_{n-2} s sqrt(1 + 1/n + (x0 - x̄)² / Sxx), on the logit scale
    from scipy.stats import t

    x, y = logit(x_acc), logit(y_acc)
    resid = y - (band["slope"] * x + band["intercept"])
    s = math.sqrt(np.sum(resid ** 2) / 7)
    x0 = logit(at)
    half = t.ppf(0.975, 7) * s * np.sqrt(1 + 1 / 9 + (x0 - x.mean()) ** 2 / np.sum((x - x.mean()) ** 2))
    centre = band["slope"] * x0 + band["intercept"]
    assert np.allclose(band["low"], sigmoid(centre - half)) and np.allclose(band["high"], sigmoid(centre + half))
    assert band["residual_sd"] == pytest.approx(s) and band["dof"] == 7
    assert np.all(band["low"] < band["predicted"]) and np.all(band["predicted"] < band["high"])
    # wider away from the points' centre, and at a lower level narrower
    widths = logit(band["high"]) - logit(band["low"])
    assert widths[0] > widths[1] and widths[2] > widths[1]
    narrow = trend_band(x_acc, y_acc, at, level=0.5)
    assert np.all(logit(narrow["high"]) - logit(narrow["low"]) < widths)


def test_trend_band_covers_new_points_at_its_level() -> None:
    rng = np.random.default_rng(0)
    x_acc = np.linspace(0.1, 0.7, 8)
    hits = 0
    trials = 400
    for _ in range(trials):
        y = sigmoid(logit(x_acc) - 1.0 + rng.normal(0, 0.3, 8))
        x0 = rng.uniform(0.1, 0.7)
        new = sigmoid(logit(x0) - 1.0 + rng.normal(0, 0.3))
        band = trend_band(x_acc, y, [x0])
        hits += bool(band["low"][0] <= new <= band["high"][0])
    assert 0.9 <= hits / trials <= 0.99


def test_trend_band_edge_cases() -> None:
    two = trend_band([0.2, 0.6], [0.1, 0.3], [0.4])
    assert np.isnan(two["low"]).all() and np.isnan(two["high"]).all() and two["dof"] == 0
    exact = trend_band([0.2, 0.4, 0.6], sigmoid(logit([0.2, 0.4, 0.6]) - 1), [0.5])
    assert exact["low"][0] == pytest.approx(exact["high"][0]) == pytest.approx(sigmoid(logit(0.5) - 1))
    with pytest.raises(ValueError, match="2 distinct"):
        trend_band([0.3, 0.3, 0.3], [0.1, 0.2, 0.3], [0.3])
    with pytest.raises(ValueError, match="level"):
        trend_band([0.2, 0.4, 0.6], [0.1, 0.2, 0.3], [0.3], level=1.5)
    with pytest.raises(ValueError, match="fractions"):
        trend_band([0.2, 0.4, 60], [0.1, 0.2, 0.3], [0.3])


# --- relabelling icons by concept ----------------------------------------------------------------------------------


def _packed(names: list[str], labels: list[str], field: str = "subcategory") -> PackedSplit:
    n = len(names)
    images = np.arange(n * 2 * 2 * 3, dtype=np.uint8).reshape(n, 2, 2, 3)
    return PackedSplit(images, [[f"caption {i}"] for i in range(n)],
                       {"name": list(names), field: list(labels), "concept_id": [f"c{i}" for i in range(n)]},
                       {"split": "x"})


def test_normalise_name() -> None:
    assert normalise_name("  Alarm\tClock ") == normalise_name("alarm clock") == "alarm clock"
    assert normalise_name("alarm-clock") != "alarm clock"  # exact match, not fuzzy


def test_concept_label_map_keeps_unambiguous_names_of_the_task() -> None:
    emoji = _packed(["Dog Face", "cat", "cat", "bat", "bat", "flag of x"],
                    ["animal-mammal", "animal-mammal", "animal-mammal", "animal-mammal", "sport", "country-flag"])
    labels = concept_label_map([emoji], "subcategory", ["animal-mammal", "sport"])
    assert labels == {"dog face": "animal-mammal", "cat": "animal-mammal"}  # bat: ambiguous; flag: not a task class
    with pytest.raises(ValueError, match="no field 'category'"):
        concept_label_map([emoji], "category", ["x"])
    # only concepts of the given kinds: clip art filed in a folder named like a class does not make "cat" ambiguous
    mixed = _packed(["cat", "cat"], ["animal-mammal", "sport"])
    mixed.fields["concept_id"] = ["emoji:1f431", "clipart:abc"]
    assert concept_label_map([mixed], "subcategory", ["animal-mammal", "sport"]) == {}
    assert concept_label_map([mixed], "subcategory", ["animal-mammal", "sport"], id_prefixes=("emoji:",)) == \
        {"cat": "animal-mammal"}


def test_relabel_by_concept_on_a_synthetic_split() -> None:
    icons = _packed(["dog  face", "CAT", "robot", "cat"], ["mdi", "game-icons", "game-icons", "icon-park"])
    labels = {"dog face": "animal-mammal", "cat": "animal-mammal", "ball": "sport"}
    out, rows = relabel_by_concept(icons, labels, "subcategory")
    assert rows.tolist() == [0, 1, 3]
    assert out.fields["subcategory"] == ["animal-mammal"] * 3  # the set name replaced by the emoji's subcategory
    assert out.fields["name"] == ["dog  face", "CAT", "cat"] and out.fields["concept_id"] == ["c0", "c1", "c3"]
    assert np.array_equal(out.images, icons.images[[0, 1, 3]]) and out.captions == [["caption 0"], ["caption 1"],
                                                                                     ["caption 3"]]
    assert len(out) == 3 and out.meta["relabelled"]["of"] == 4
    none, rows = relabel_by_concept(icons, {"ball": "sport"}, "subcategory")
    assert len(none) == 0 and rows.size == 0 and none.images.shape[1:] == (2, 2, 3)
    with pytest.raises(ValueError, match="no field 'title'"):
        relabel_by_concept(icons, labels, "subcategory", name_field="title")


# --- the summary tables --------------------------------------------------------------------------------------------

STYLES = ["s1", "s2"]
ICONS = ["i1", "i2"]


def _point(a: float, drop: float, icons: bool = True) -> dict[str, float]:
    p = {"val": a, "s1": a * drop, "s2": a * drop * 0.8, "zeroshot": a * 0.9}
    return p | ({"i1": a * drop * 0.7, "i2": a * drop * 0.5} if icons else {})


def _record(seed: int, narrow: bool = True, icons: bool = True, icon_n: int = 400, icon_classes: int = 40) -> dict:
    rng = np.random.default_rng(seed)
    snaps = [{"accuracy": _point(a, 0.5 + rng.uniform(-0.03, 0.03), icons)} for a in (0.2, 0.35, 0.5, 0.65, 0.8)]
    splits = {s: {"shift": "held-out style", "n": 100} for s in STYLES}
    splits |= {"val": {"shift": "in-distribution", "n": 50}, "zeroshot": {"shift": "unseen words", "n": 60}}
    task = {"in_distribution": "val", "held_out": STYLES, "splits": splits, "n_classes": 98}
    if icons:
        task["icon_sets"] = {s: {"n": icon_n // 2, "n_classes": icon_classes} for s in ICONS}
        task["icon_relabel"] = {"n": icon_n, "n_classes": icon_classes}

    def top1(acc: dict) -> dict:
        return {s: {"top1": v} for s, v in acc.items()}

    metrics = {"task": task,
               "supervised": {"resnet101": {"snapshots": snaps[2:], "final": snaps[-1]["accuracy"]},
                              "resnet18": {"snapshots": snaps[:2], "final": snaps[1]["accuracy"]}},
               "zero_shot": top1(_point(0.3, 0.9 + 0.01 * seed, icons)),
               "lr_head": {"accuracy": _point(0.6, 0.55, icons)}}
    if narrow:
        metrics["narrow_clip"] = {"zero_shot": top1(_point(0.4, 0.5, icons))}
    return {"seed": seed, "metrics": metrics}


def test_robustness_metrics_band_and_ratio() -> None:
    trend = [s["accuracy"] for s in _record(0)["metrics"]["supervised"]["resnet18"]["snapshots"]
             + _record(0)["metrics"]["supervised"]["resnet101"]["snapshots"]]
    models = {"clip": _point(0.3, 0.9)}
    out = robustness_metrics(trend, models, "val", ["s1", "s2", "zeroshot"], STYLES, ICONS)
    assert list(out["trend"]) == ["s1", "s2", "zeroshot", HELD_OUT_MEAN, "i1", "i2", ICON_MEAN]
    v = out["models"]["clip"][ICON_MEAN]
    assert v["shifted"] == pytest.approx(0.3 * 0.9 * 0.6)  # the icon sets' mean
    assert v["ratio"] == pytest.approx(v["shifted"] / 0.3)
    band = trend_band([p["val"] for p in trend], [np.mean([p[s] for s in ICONS]) for p in trend], [0.3])
    assert v["er_low"] == pytest.approx(v["shifted"] - band["high"][0])
    assert v["er_high"] == pytest.approx(v["shifted"] - band["low"][0])
    assert v["er_low"] > 0  # far above a tight trend: beyond its uncertainty


def test_summarize_is_tidy_and_reads_old_records() -> None:
    records = [_record(0), _record(1)]
    table = summarize(records)
    assert list(table.columns[:9]) == ["seed", "model", "shift", "in_distribution", "held_out",
                                       "effective_robustness", "er_low", "er_high", "ratio"]
    assert set(table["model"]) == {"zero_shot", "narrow_zero_shot", "lr_head", "resnet101", "resnet18"}
    assert set(table["shift"]) == {"s1", "s2", "zeroshot", HELD_OUT_MEAN, "i1", "i2", ICON_MEAN}
    assert len(table) == 2 * 5 * 7
    row = table[(table.seed == 1) & (table.model == "zero_shot") & (table["shift"] == HELD_OUT_MEAN)].iloc[0]
    assert row["held_out"] == pytest.approx(0.3 * 0.91 * 0.9) and row["in_distribution"] == pytest.approx(0.3)
    assert row["ratio"] == pytest.approx(row["held_out"] / row["in_distribution"])
    assert (table["er_low"] <= table["effective_robustness"]).all()
    assert (table["effective_robustness"] <= table["er_high"]).all()
    old = summarize([_record(0, narrow=False, icons=False)])  # written before the narrow CLIP and icon sets
    assert "narrow_zero_shot" not in set(old["model"]) and ICON_MEAN not in set(old["shift"])
    assert old["er_low"].notna().all()  # bands recomputed from the stored snapshots


def test_verdicts_inputs_pairs_diverse_and_narrow_per_seed() -> None:
    records = [_record(0), _record(1)]
    v = verdicts_inputs(records)
    assert len(v) == 4 and set(v["shift"]) == {HELD_OUT_MEAN, ICON_MEAN}
    table = summarize(records)
    for _, row in v.iterrows():
        pick = table[(table.seed == row["seed"]) & (table["shift"] == row["shift"])].set_index("model")
        assert row["diverse"] == pytest.approx(pick.at["zero_shot", "effective_robustness"])
        assert row["narrow"] == pytest.approx(pick.at["narrow_zero_shot", "effective_robustness"])
        assert row["difference"] == pytest.approx(row["diverse"] - row["narrow"])
        assert row["diverse_above"] == (row["diverse_low"] > 0)
    styles = v[v["shift"] == HELD_OUT_MEAN].iloc[0]
    assert styles["n_pictures"] == 200 and styles["testable"]
    assert v[v["shift"] == ICON_MEAN]["testable"].all()
    assert (v["diverse"] > v["narrow"]).all()  # the synthetic diverse CLIP drops far less


def test_icon_precondition_marks_too_few_pictures_untestable() -> None:
    few = _record(0, icon_n=MIN_ICON_PICTURES - 2)
    ok, reason = icon_precondition(few["metrics"])
    assert not ok and reason.startswith("untestable here: too few pictures")
    row = verdicts_inputs([few]).set_index("shift").loc[ICON_MEAN]
    assert not row["testable"] and row["reason"] == reason and math.isfinite(row["diverse"])  # still reported
    assert not icon_precondition(_record(0, icon_classes=5)["metrics"])[0]
    assert icon_precondition(_record(0, icons=False)["metrics"]) == (False, "not in these results")
    old = verdicts_inputs([_record(0, narrow=False, icons=False)]).set_index("shift")
    assert math.isnan(old.at[HELD_OUT_MEAN, "narrow"]) and math.isnan(old.at[ICON_MEAN, "diverse"])


def test_head_effect_per_seed() -> None:
    effect = head_effect([_record(0), _record(1)])
    assert len(effect) == 4
    row = effect[(effect.seed == 0) & (effect["shift"] == HELD_OUT_MEAN)].iloc[0]
    assert row["d_in_distribution"] == pytest.approx(0.6 - 0.3)
    assert row["d_effective_robustness"] == pytest.approx(row["lr_head_er"] - row["zero_shot_er"])
    assert row["d_effective_robustness"] < 0  # the head lies closer to the trend than zero-shot
