"""repro.views.fewshot: the few-shot chapter's tables, figures and facts, over the committed result records."""

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from conftest import committed_results

from repro.experiments.fewshot import shots_to_match
from repro.stats import accuracy_interval, difference_interval, interval_text
from repro.views import fewshot as view

ROOT = Path(__file__).resolve().parents[1] / "results"
INTERVAL = re.compile(r"^(-?[\d.]+) \[(-?[\d.]+), (-?[\d.]+)\]$")


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return committed_results("fewshot")


def _parsed(text: str) -> tuple[float, float, float]:
    match = INTERVAL.match(text)
    assert match, text
    return tuple(float(g) for g in match.groups())


def test_pairs_and_shots_follow_the_result_file(records) -> None:
    metrics = records[0]["metrics"]
    assert view.pairs(records) == [(t, s) for t, e in metrics.items() for s in e["tests"]]
    assert view.shots(records) == [int(k) for k in records[0]["config"]["shots"]]


def test_scores_are_the_recorded_numbers(records) -> None:
    frame = view.scores(records)
    assert len(frame) == len(records) * len(view.pairs(records))
    row = frame.iloc[-1]
    run = records[-1]["metrics"][row["task"]]["tests"][row["test set"]]
    assert row["zero_shot"] == run["zero_shot"] and row["linear_probe"] == run["linear_probe"]
    assert all(row[f"shots_{k}"] == run["few_shot"][str(k)] for k in view.shots(records))


def test_curve_has_seeds_in_rows_and_shots_in_columns(records) -> None:
    task, test = view.pairs(records)[0]
    c = view.curve(records, task, test)
    assert c.shape == (len(records), len(view.shots(records)))
    assert c[1, 2] == records[1]["metrics"][task]["tests"][test]["few_shot"][str(view.shots(records)[2])]


def test_accuracy_table_intervals_stay_inside_0_100_and_match_stats(records) -> None:
    table = view.accuracy_table(records)
    assert list(table.columns[:4]) == ["task", "test set", "zero-shot", "full probe"]
    assert [c for c in table.columns if c.endswith("-shot") and c != "zero-shot"] == \
        [f"{k}-shot" for k in view.shots(records)]
    for column in table.columns[2:]:
        for text in table[column]:
            mean, low, high = _parsed(text)
            assert 0 <= low <= mean <= high <= 100
    task, test = view.pairs(records)[0]
    zero = [r["metrics"][task]["tests"][test]["zero_shot"] for r in records]
    assert table.loc[0, "zero-shot"] == interval_text(accuracy_interval(zero))


def test_versus_probe_difference_is_paired_over_seeds(records) -> None:
    table = view.versus_probe_table(records)
    task, test = view.pairs(records)[-1]
    runs = [r["metrics"][task]["tests"][test] for r in records]
    diff = [run["zero_shot"] - run["linear_probe"] for run in runs]
    assert table.iloc[-1]["zero-shot − probe (points)"] == interval_text(difference_interval(diff), signed=True)


def test_match_value_reads_the_seed_averaged_curve(records) -> None:
    for task, test in view.pairs(records):
        runs = [r["metrics"][task]["tests"][test] for r in records]
        ks = view.shots(records)
        mean = [np.mean([run["few_shot"][str(k)] for run in runs]) for k in ks]
        expected = shots_to_match(ks, mean, float(np.mean([run["zero_shot"] for run in runs])))
        assert view.match_value(records, task, test) == expected
    table = view.match_table(records)
    assert table.iloc[0]["per seed"].count(",") == len(records) - 1


def test_match_order_counts_out_of_range_as_the_claim_does(records) -> None:
    ks = view.shots(records)
    assert view.match_order(records, f"< {ks[0]}") == ks[0] / 2
    assert view.match_order(records, f"> {ks[-1]}") == 2 * ks[-1]
    assert view.match_order(records, 3.5) == 3.5


def test_summary_partitions_the_pairs(records) -> None:
    found = view.summary(records)
    assert found["pairs"] == len(view.pairs(records))
    assert len(found["inside"]) + len(found["under"]) + len(found["over"]) == found["pairs"]
    assert found["n_photo"] == len(found["photo_rows"]) == len(view.setting(records)["photos"])
    for row in found["photo_rows"]:
        assert 0 <= row["zero_shot"] <= 1 and 0 <= row["one_shot"] <= 1 and 0 < row["chance"] < 1


def test_tables_have_one_row_per_pair(records) -> None:
    n = len(view.pairs(records))
    for table in (view.tasks_table(records), view.accuracy_table(records), view.match_table(records),
                  view.versus_probe_table(records)):
        assert len(table) == n


def test_figures_have_a_panel_per_pair_and_a_bar_per_pair(records) -> None:
    import matplotlib.pyplot as plt

    fig = view.curves_figure(records)
    panels = [ax for ax in fig.axes if ax.axison]
    assert len(panels) == len(view.pairs(records))
    assert panels[0].get_xscale() == "log"
    plt.close(fig)
    fig = view.match_figure(records)
    [ax] = fig.axes
    assert len(ax.patches) == len(view.pairs(records))
    assert len(ax.get_yticklabels()) == len(view.pairs(records))
    plt.close(fig)
