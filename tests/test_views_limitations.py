"""repro.views.limitations: the limitations chapter's tables, figures and facts, over the committed result records."""

import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from conftest import committed_results

from repro.stats import accuracy_interval, difference_interval, interval_text
from repro.views import limitations as view

ROOT = Path(__file__).resolve().parents[1] / "results"
INTERVAL = re.compile(r"^([-+]?[\d.]+) \[([-+]?[\d.]+), ([-+]?[\d.]+)\]$")


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return committed_results("limitations")


def test_top1_and_scores_are_the_recorded_numbers(records) -> None:
    task = view.tasks(records)[0]
    assert view.tasks(records) == list(records[0]["metrics"]["tasks"])
    values = [r["metrics"]["tasks"][task]["probe_clip"]["top1"] for r in records]
    assert view.top1(records, task, "probe_clip").tolist() == values
    frame = view.scores(records)
    assert len(frame) == len(view.tasks(records)) * len(view.METHODS)
    row = frame[(frame["task"] == task) & (frame["method"] == "probe_clip")].iloc[0]
    stats = accuracy_interval(values)
    assert (row["mean"], row["low"], row["high"]) == (stats["mean"], stats["low"], stats["high"])


def test_photos_table_intervals_stay_inside_0_100(records) -> None:
    table = view.photos_table(records)
    assert len(table) == len(view.tasks(records))
    assert list(table.columns[-4:]) == list(view.METHODS.values())
    for label in view.METHODS.values():
        for text in table[label]:
            mean, low, high = (float(g) for g in INTERVAL.match(text).groups())
            assert 0 <= low <= high <= 100 and low - 0.05 <= mean <= high + 0.05
    task = view.tasks(records)[0]
    assert table.iloc[0]["zero-shot"] == interval_text(accuracy_interval(view.top1(records, task, "zeroshot")))


def test_confusion_rows_sum_to_100(records) -> None:
    task = view.confusion_task(records)
    assert task == "mnist-test" if "mnist-test" in view.tasks(records) else task == view.tasks(records)[0]
    matrix = view.confusion(records, task)
    n = records[0]["metrics"]["tasks"][task]["n_classes"]
    assert matrix.shape == (n, n)
    assert np.allclose(matrix.sum(axis=1), 100)
    # the diagonal is the recall: its mean over classes is the mean per-class recall, averaged over seeds
    recall = np.mean([r["metrics"]["tasks"][task]["zeroshot"]["mean_per_class_recall"] for r in records])
    assert np.diag(matrix).mean() == pytest.approx(100 * recall)


def test_collapse_names_the_most_predicted_class(records) -> None:
    table = view.collapse_table(records)
    task = view.tasks(records)[0]
    entry = records[0]["metrics"]["tasks"][task]
    counts = sum(np.array(r["metrics"]["tasks"][task]["zeroshot"]["confusion"]).sum(axis=0) for r in records)
    assert table.iloc[0]["zero-shot: most predicted"] == entry["classnames"][int(np.argmax(counts))]
    assert table.iloc[0]["uniform share (%)"] == f"{100 / entry['n_classes']:.1f}"


def test_gaps_are_paired_differences_with_their_sign(records) -> None:
    frame = view.gaps(records)
    assert len(frame) == len(view.tasks(records)) * len(view.GAPS)
    for _, row in frame.iterrows():
        a, b = view.GAPS[row["gap"]]
        stats = difference_interval(view.top1(records, row["task"], a) - view.top1(records, row["task"], b))
        assert row["mean"] == pytest.approx(stats["mean"])
        assert row["sign"] == (1 if stats["low"] > 0 else -1 if stats["high"] < 0 else 0)
    table = view.gaps_table(records)
    assert len(table) == len(view.tasks(records))


def test_closed_share_and_findings(records) -> None:
    found = view.findings(records)
    assert found["tasks"] == len(view.tasks(records))
    for task in view.tasks(records):
        zs, px, pr = (view.top1(records, task, m) for m in ("zeroshot", "probe_pixels", "probe_clip"))
        share = view.closed_share(records, task)
        if np.all(px > zs):
            assert share == pytest.approx(float(np.mean((pr - zs) / (px - zs))))
        else:
            assert math.isnan(share)
    assert set(found["beaten"]) <= {view.task_name(t) for t in view.tasks(records)}
    if found["beaten"]:
        assert found["share_text"].endswith("%")


def test_pooled_recall_weights_by_images(records) -> None:
    title, names = view.class_views(records)[0]
    frame = view.pooled_recall(records, names)
    cls = frame.iloc[0]["class"]
    correct = count = 0
    for r in records:
        for name in names:
            e = r["metrics"]["per_class"][name]
            if cls in e["classes"]:
                i = e["classes"].index(cls)
                correct += e["per_class_recall"][i] * e["count"][i] if e["count"][i] else 0
                count += e["count"][i]
    assert frame.iloc[0]["recall"] == pytest.approx(correct / count)
    table = view.class_table(records)
    assert set(table["rank"]) <= {"weakest", "strongest"}
    assert table.groupby("suite").size().max() <= 10
    summary = view.class_summary(records)
    assert (summary["never"] <= summary["ranked"]).all()


def test_granularity_is_coarse_to_fine_and_inside_0_1(records) -> None:
    frame = view.granularity(records)
    assert list(frame["label"]) == sorted(frame["label"], key=view.LEVELS.index)
    assert ((0 <= frame["low"]) & (frame["high"] <= 1)).all()
    assert np.allclose(frame["times_chance"], frame["mean"] * frame["classes"])
    levels = view.granularity_levels(records)
    for _, g in levels.groupby("shift"):
        assert g["falls"].nunique() == 1
        assert bool(g["falls"].iloc[0]) == bool(np.all(np.diff(g["mean"].to_numpy()) < 0))


def test_model_facts_describe_the_evaluated_clip(records) -> None:
    facts = view.model_facts(records)
    assert facts["params"] > 0 and facts["times_fewer"] == pytest.approx(facts["b32_params"] / facts["params"])


def test_figures(records) -> None:
    import matplotlib.pyplot as plt

    fig = view.methods_figure(records)
    [ax] = fig.axes
    assert len(ax.get_yticklabels()) == len(view.tasks(records))
    assert ax.get_xlim() == (0, 100)
    plt.close(fig)
    fig = view.confusion_figure(records)
    heatmaps = [ax for ax in fig.axes if ax.get_xlabel() == "predicted class"]
    assert len(heatmaps) == 2
    plt.close(fig)
