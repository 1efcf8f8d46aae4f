"""repro.views.temperature: the temperature chapter's tables, figures and facts, over the committed result records
(an older format: no `select`/`score`, no `max_logit_scale`, no `reached_clip_step`) and over a smoke run of the
experiment (the current format)."""

import math
import re

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from conftest import committed_results, smoke_experiment

from repro.experiments import temperature
from repro.experiments import temperature_summary as ts
from repro.optim import logit_scale_reach, lr_sum
from repro.stats import accuracy_interval, difference_interval, interval_text
from repro.views import temperature as view

INTERVAL = re.compile(r"^([+-]?[\d.]+)(?: \[([+-]?[\d.]+), ([+-]?[\d.]+)\])?$")


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return committed_results("temperature")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> list[dict]:
    with smoke_experiment(tmp_path_factory, "temperature") as run:
        yield [run["record"]]


@pytest.fixture(params=["committed", "smoke"])
def any_records(request) -> list[dict]:
    return request.getfixturevalue("records" if request.param == "committed" else "smoke")


def _parsed(text: str) -> tuple[float, float, float]:
    match = INTERVAL.match(text)
    assert match, text
    mean, low, high = match.groups()
    return float(mean), float(low if low is not None else mean), float(high if high is not None else mean)


def test_settings_are_read_from_the_records(records) -> None:
    recorded = records[0]["config"]["settings"]
    assert view.settings(records) == list(recorded)
    assert view.fixed_settings(records) + view.learned_settings(records) == list(recorded)
    assert all(recorded[s]["temperature"] == "fixed" for s in view.fixed_settings(records))
    assert view.tau_of(records, view.fixed_settings(records)[0]) == recorded[view.fixed_settings(records)[0]][
        "fixed_temperature"]
    assert math.isnan(view.tau_of(records, "learnable"))


def test_runs_are_the_recorded_numbers(any_records) -> None:
    frame = view.runs(any_records)
    assert len(frame) == len(any_records) * len(view.settings(any_records))
    row = frame.iloc[-1]
    entry = any_records[-1]["metrics"]["settings"][row["setting"]]
    suite = any_records[0]["config"]["suites"][0]
    assert row[suite] == entry["zeroshot"][suite] and row["i2t_r1"] == entry["retrieval"]["i2t_r1"]
    assert row["loss_roughness"] == entry["loss_roughness"] and row["final_logit_scale"] == entry["final_logit_scale"]
    curve = any_records[-1]["curves"][row["setting"]]
    assert row["max_logit_scale"] == pytest.approx(entry.get("max_logit_scale", max(curve["logit_scale"])))


def test_accuracy_table_intervals_stay_inside_0_100_and_match_stats(any_records) -> None:
    table = view.accuracy_table(any_records)
    suites = any_records[0]["config"]["suites"]
    assert list(table.columns) == ["setting", *suites, "val i→t R@1", "val t→i R@1", "diverged"]
    assert list(table["setting"]) == view.settings(any_records)
    for column in [*suites, "val i→t R@1", "val t→i R@1"]:
        for text in table[column]:
            if text != "diverged":
                mean, low, high = _parsed(text)
                assert 0 <= low <= mean <= high <= 100
    values = [r["metrics"]["settings"]["learnable"]["zeroshot"][suites[0]] for r in any_records]
    row = table.set_index("setting").loc["learnable"]
    assert row[suites[0]] == interval_text(accuracy_interval(values))
    assert row["diverged"] == f"0/{len(any_records)}"


def test_stability_table_keeps_positive_quantities_positive(records) -> None:
    table = view.stability_table(records).set_index("setting")
    assert list(table.index) == view.settings(records)
    for text in table["roughness"]:
        _, low, _ = _parsed(text)
        assert low > 0
    for s in view.fixed_settings(records):
        assert table.loc[s, "final τ"] == f"{view.tau_of(records, s):g} (fixed)"
        assert table.loc[s, "at the clip from step"] == "—"
    reached = [r["metrics"]["settings"]["learnable"]["final_logit_scale"] for r in records]
    assert table.loc["learnable", "final logit scale"] == interval_text(difference_interval(reached), scale=1.0,
                                                                        digits=2)
    assert table.loc["learnable", "at the clip from step"] == "never"  # the old runs end near 14


def test_accuracy_figure_has_a_log_tau_panel_per_suite(any_records) -> None:
    import matplotlib.pyplot as plt

    panels = view.panels(any_records)
    assert panels[:2] == [ts.default_select(any_records), ts.default_score(any_records)]
    fig = view.accuracy_figure(any_records)
    axes = [ax for ax in fig.axes if ax.axison]
    assert len(axes) == len(panels) and all(ax.get_xscale() == "log" for ax in axes)
    assert [ax.get_title() for ax in axes] == panels
    plt.close(fig)


def test_curves_figure_draws_the_clip_and_adam_s_bound(any_records) -> None:
    import matplotlib.pyplot as plt

    train = any_records[0]["config"]["train"]
    steps, bound = view.adam_bound(any_records)
    assert len(steps) == train["steps"] + 1 and bound[0] == pytest.approx(1 / 0.07)
    assert bound[-1] == pytest.approx(logit_scale_reach(train["lr"], train["warmup_steps"], train["steps"]))
    fig = view.curves_figure(any_records)
    left, right = fig.axes
    assert right.get_yscale() == "log"
    levels = {round(float(line.get_ydata()[0]), 6) for line in right.get_lines() if len(set(line.get_ydata())) == 1}
    assert temperature.CLAMP in levels
    assert len(left.get_lines()) == len(view.settings(any_records))
    plt.close(fig)


def test_comparison_table_pairs_seeds_on_every_other_suite(records) -> None:
    table = view.comparison_table(records)
    select = ts.default_select(records)
    assert list(table["suite"]) == [s for s in records[0]["config"]["suites"] if s != select]
    best = ts.best_fixed(records, select)
    suite = table["suite"].iloc[0]
    expected = difference_interval(ts.learnable_vs_best_fixed(records, suite, select=select)["difference"])
    assert table[f"learnable − {best}"].iloc[0] == interval_text(expected, signed=True)
    assert set(table["unclamped − learnable"]) == {"+0.0 [0.0, 0.0]"}  # the old runs are identical


def test_facts_agree_with_the_summaries_and_the_optimiser(any_records) -> None:
    f = view.facts(any_records)
    train = any_records[0]["config"]["train"]
    assert f["select"] == ts.default_select(any_records) and f["score"] == ts.default_score(any_records)
    assert f["best_fixed"] == ts.best_fixed(any_records, f["select"])
    assert f["lr_sum"] == pytest.approx(lr_sum(train["lr"], train["warmup_steps"], train["steps"]))
    assert f["can_reach_clip"] == (f["reach"] >= temperature.CLAMP - 1e-9)
    best = [r["metrics"]["settings"][f["best_fixed"]]["zeroshot"][f["select"]] for r in any_records]
    worst = [r["metrics"]["settings"][f["worst_fixed"]]["zeroshot"][f["select"]] for r in any_records]
    assert f["spread"]["mean"] == pytest.approx(np.mean(best) - np.mean(worst))
    assert f["best_text"] == interval_text(accuracy_interval(best))


def test_findings_say_what_the_clamp_did(records) -> None:
    found = view.findings(records)
    assert set(found) == {"spread", "clamp", "diverged", "under_fit"}
    assert "identical in every seed" in found["clamp"]  # the committed clamped and unclamped runs are the same
    assert found["diverged"] == "No run diverged."


def test_new_format_records_carry_the_selection_and_the_clip_readings(smoke) -> None:
    config = smoke[0]["config"]
    assert view.facts(smoke)["select"] == config["select"] and view.facts(smoke)["score"] == config["score"]
    frame = view.runs(smoke).set_index("setting")
    entry = smoke[0]["metrics"]["settings"]["learnable"]
    assert frame.loc["learnable", "max_logit_scale"] == entry["max_logit_scale"]
    assert (frame.loc["learnable", "reached_clip_step"] is None) == (entry["reached_clip_step"] is None)
    assert view.setup_table(smoke).iloc[-1]["training configuration"].endswith(", 1 seed")


def test_diverged_runs_are_counted_and_left_out(records) -> None:
    import copy

    import matplotlib.pyplot as plt

    broken = copy.deepcopy(records)
    for seed, name in ((1, "fixed 0.01"), (0, "learnable, unclamped")):
        broken[seed]["metrics"]["settings"][name] = {"diverged": True, "config": {}, "error": "non-finite loss"}
        del broken[seed]["curves"][name]
    table = view.accuracy_table(broken).set_index("setting")
    assert table.loc["fixed 0.01", "diverged"] == f"1/{len(broken)}"
    suite = broken[0]["config"]["suites"][0]
    kept = [r["metrics"]["settings"]["fixed 0.01"]["zeroshot"][suite] for r in broken if r["seed"] != 1]
    assert table.loc["fixed 0.01", suite] == interval_text(accuracy_interval(kept))
    f = view.facts(broken)
    assert f["diverged"] == ["fixed 0.01", "learnable, unclamped"] and f["best_fixed"] != "fixed 0.01"
    assert "fixed 0.01, learnable, unclamped" in view.findings(broken)["diverged"]
    assert len(view.stability_table(broken)) == len(view.settings(broken))
    plt.close(view.accuracy_figure(broken))
    plt.close(view.curves_figure(broken))
