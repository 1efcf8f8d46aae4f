"""repro.views.adaptation: the adaptation chapter's tables, figures and sentences, on the committed cpu results and on
a smoke run's records (which have the few-shot axis that older committed files lack): values equal to a direct
computation from the records, accuracy intervals inside [0, 1], paired differences for gains and drops, the claim's
numbers, figures with the expected axes, and result files without the few-shot axis handled."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from conftest import committed_results, smoke_experiment

from repro import claims
from repro.book import ExperimentResults
from repro.stats import accuracy_interval, difference_interval, interval_text
from repro.views import adaptation as view
from repro.views import adaptation_text as words

ROOT = Path(__file__).resolve().parents[1] / "results"
SCALED = ("in_distribution", "held_out_styles", "zero_shot_concepts", "drop")


@pytest.fixture(scope="module")
def committed() -> list[dict]:
    return committed_results("adaptation")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> list[dict]:
    """One smoke run's records (one seed, with the few-shot axis)."""
    with smoke_experiment(tmp_path_factory, "adaptation") as run:
        return [run["record"]]


def _scaled(entry: dict, factor: float) -> None:
    entry["top1"] = {k: v * factor for k, v in entry["top1"].items()}
    for key in SCALED:
        if key in entry:
            entry[key] *= factor
    entry["wall_time_s"] *= factor


@pytest.fixture(scope="module")
def smoke3(smoke) -> list[dict]:
    """Three seeds made from the smoke record, every accuracy scaled per seed (so the summaries stay consistent)."""
    out = []
    for seed, factor in enumerate((1.0, 0.9, 0.8)):
        record = copy.deepcopy(smoke[0]) | {"seed": seed}
        for entry in record["metrics"]["methods"].values():
            _scaled(entry, factor)
        for by_k in record["metrics"]["few_shot"]["methods"].values():
            for entry in by_k.values():
                _scaled(entry, factor)
        out.append(record)
    return out


@pytest.fixture(scope="module")
def old(smoke3) -> list[dict]:
    """The same records as result files written before the few-shot axis existed."""
    out = copy.deepcopy(smoke3)
    for record in out:
        del record["metrics"]["few_shot"]
    return out


def _direct(records: list[dict], method: str, key: str, k: int | None = None) -> np.ndarray:
    entries = [r["metrics"]["methods"][method] if k is None else r["metrics"]["few_shot"]["methods"][method][str(k)]
               for r in records]
    return np.array([e["top1"][key] if key in e["top1"] else e[key] for e in entries])


@pytest.mark.parametrize("name", ["committed", "smoke", "smoke3", "old"])
def test_setting_and_summary_match_the_records(name, request) -> None:
    records = request.getfixturevalue(name)
    s = view.setting(records)
    assert s["methods"] == ["zeroshot", "linear_probe", "lora", "full_ft"] and s["adapted"] == s["methods"][1:]
    assert s["few_shot"] == all("few_shot" in r["metrics"] for r in records)
    if s["few_shot"]:
        assert s["few_methods"] == ["linear_probe", "coop", "clip_adapter"]
        assert s["shots"] == records[0]["config"]["shots"]
    frame = view.summary(records)
    assert {"method", "k", "measure", "mean", "low", "high", "n", "trainable_params"} <= set(frame.columns)
    cells = len(s["methods"]) + len(s["few_methods"]) * len(s["shots"])
    assert frame.groupby(["method", "k"], dropna=False).ngroups == cells
    accuracies = frame[frame["measure"].isin([*s["splits"], "in_distribution", "held_out_styles"])]
    assert accuracies["mean"].between(0, 1).all()
    bounded = accuracies.dropna(subset=["low", "high"])
    assert len(bounded) == len(accuracies)  # one seed too: the Wilson interval of the images scored
    assert ((bounded["low"] >= 0) & (bounded["high"] <= 1) & (bounded["low"] <= bounded["mean"])
            & (bounded["mean"] <= bounded["high"])).all()
    row = frame[(frame["method"] == "lora") & (frame["measure"] == "gain in_distribution")].iloc[0]
    diff = _direct(records, "lora", "in_distribution") - _direct(records, "zeroshot", "in_distribution")
    assert row["mean"] == pytest.approx(diff.mean())
    if len(records) > 1:
        assert (row["low"], row["high"]) == pytest.approx(
            (difference_interval(diff)["low"], difference_interval(diff)["high"]))
    if s["few_shot"]:
        k = s["shots"][-1]
        row = frame[(frame["method"] == "coop") & (frame["k"] == k) & (frame["measure"] == "held_out_styles")].iloc[0]
        assert row["mean"] == pytest.approx(_direct(records, "coop", "held_out_styles", k).mean())


def test_accuracy_intervals_stay_inside_0_1(committed, smoke) -> None:
    for records in (committed, smoke):
        for method in view.setting(records)["methods"]:
            for key in ("in_distribution", "held_out_styles"):
                stats = view.accuracy(records, method, key)
                assert 0 <= stats["low"] <= stats["mean"] <= stats["high"] <= 1
    direct = _direct(committed, "zeroshot", "in_distribution")
    assert view.accuracy(committed, "zeroshot", "in_distribution") == pytest.approx(accuracy_interval(direct))


def test_the_probe_gain_is_the_claims(committed) -> None:
    gain, drop = claims.adaptation_gain(ExperimentResults("adaptation", "cpu", committed, ROOT))
    mine = view.gain(committed, "linear_probe", "in_distribution")
    assert (mine["mean"], mine["low"], mine["high"]) == pytest.approx(
        (gain.effect["mean"], gain.effect["low"], gain.effect["high"]))
    assert view.gain(committed, "linear_probe", "drop")["mean"] == pytest.approx(drop.effect["mean"])


def test_tables_hold_the_records_numbers(committed) -> None:
    s = view.setting(committed)
    splits = view.splits_table(committed)
    assert list(splits["method"]) == [view.NAMES[m] for m in s["methods"]]
    split = s["in_distribution"]
    column = next(c for c in splits.columns if c.startswith(f"{split} ("))
    assert splits[column].iloc[1] == interval_text(accuracy_interval(_direct(committed, "linear_probe", split)))
    robust = view.robustness_table(committed)
    assert robust["gain in-dist."].iloc[0] == "—"
    diff = _direct(committed, "full_ft", "held_out_styles") - _direct(committed, "zeroshot", "held_out_styles")
    assert robust["gain held-out"].iloc[3] == interval_text(difference_interval(diff), signed=True)
    verdict = view.verdict_table(committed)
    for m, pattern in zip(s["adapted"], verdict["Figure 14's pattern"], strict=True):
        expected = (view.sign(view.gain(committed, m, "in_distribution")) > 0
                    and view.sign(view.gain(committed, m, "drop")) > 0)
        assert pattern == ("yes" if expected else "no")
    lr = view.lr_table(committed)
    rates = [float(c[3:]) for c in lr.columns if c.startswith("lr ")]
    assert rates == sorted(rates) and list(lr.columns)[-1] == "chosen" and len(lr) == 2 * len(committed)
    settings = view.settings_table(committed)
    assert list(settings["trainable parameters"]) == [f"{view.params(committed, m):,}" for m in ("lora", "full_ft")]
    task = view.task_table(committed)
    assert list(task["split"])[:-1] == s["splits"] and task["images"].iloc[-1] == s["task"]["n_train"]


def test_fewshot_table_and_text(smoke3, old) -> None:
    s = view.setting(smoke3)
    table = view.fewshot_table(smoke3)
    assert len(table) == 1 + len(s["few_methods"]) * len(s["shots"])
    assert list(table["k"]) == [0] + s["shots"] * len(s["few_methods"])
    k = s["shots"][0]
    row = table[(table["method"] == "CoOp") & (table["k"] == k)].iloc[0]
    assert row["in-distribution"] == interval_text(accuracy_interval(_direct(smoke3, "coop", "in_distribution", k)))
    assert row["trainable parameters"] == f"{view.params(smoke3, 'coop', k):,}"
    assert row["wall time (s)"] == f"{_direct(smoke3, 'coop', 'wall_time_s', k).mean():.1f}"
    text = words.fewshot_text(smoke3)
    assert all(f"**{view.NAMES[m]}**" in text for m in s["few_methods"])
    assert view.fewshot_table(old).empty and words.fewshot_text(old) == view.NO_FEW
    assert view.classes_short(old) == {}


def test_figures_have_their_axes(committed, smoke3, old) -> None:
    for records in (committed, smoke3):
        fig = view.params_figure(records)
        assert len(fig.axes) == 2 and all(ax.get_xscale() == "log" for ax in fig.axes)
        assert fig.axes[0].get_ylim()[0] == 0
        assert view.shift_figure(records).axes[0].get_xlabel().startswith("in-distribution top-1")
        assert [ax.get_xlabel() for ax in view.curves_figure(records).axes] == ["fine-tuning step"] * 2
        assert view.walltime_figure(records).axes[0].get_yscale() == "log"
        plt.close("all")
    fig = view.fewshot_figure(smoke3)
    s = view.setting(smoke3)
    assert len(fig.axes) == 2 and fig.axes[0].get_xscale() == "log"
    lines = [line for line in fig.axes[0].get_lines() if len(line.get_xdata()) == len(s["shots"])]
    assert {line.get_label() for line in lines} >= {view.NAMES[m] for m in s["few_methods"]}
    missing = view.fewshot_figure(old)
    assert len(missing.axes) == 1 and "few-shot axis" in missing.axes[0].texts[0].get_text()
    plt.close("all")


def test_walltime_is_the_records(smoke3, committed) -> None:
    for records in (smoke3, committed):
        frame = view.walltime(records)
        s = view.setting(records)
        assert len(frame) == len(s["methods"]) + len(s["few_methods"]) * len(s["shots"])
        full = frame[frame["k"].isna()].set_index("method")
        for m in s["methods"]:
            t = _direct(records, m, "wall_time_s")
            assert (full.loc[m, "mean"], full.loc[m, "min"], full.loc[m, "max"]) == pytest.approx(
                (t.mean(), t.min(), t.max()))


def test_sentences(committed, smoke) -> None:
    for records in (committed, smoke):
        text = words.verdict_text(records)
        best = max(view.setting(records)["methods"], key=lambda m: _direct(records, m, "in_distribution").mean())
        assert f"comes from **{view.NAMES[best]}**" in text
        assert f"capped at {records[0]['config']['probe_max_iter']:,} iterations" in words.selection_text(records)
    floors = words.floors_text(committed)
    s = view.setting(committed)
    weak = [h for h in s["held"] if _direct(committed, "zeroshot", h).mean() < 2 * s["chance"]]
    assert (floors == "") == (not weak) and all(f"`{w}`" in floors for w in weak)


def test_sign_and_join() -> None:
    assert view.sign({"mean": 1.0, "low": 0.5, "high": 1.5}) == 1
    assert view.sign({"mean": -1.0, "low": -1.5, "high": -0.5}) == -1
    assert view.sign({"mean": 1.0, "low": -0.5, "high": 1.5}) == 0
    assert view.sign({"mean": 1.0, "low": math.nan, "high": math.nan}) == 0  # one seed: no interval, no verdict
    assert [view.join(x) for x in ([], ["a"], ["a", "b"], ["a", "b", "c"])] == ["", "a", "a and b", "a, b and c"]
