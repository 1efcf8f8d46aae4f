"""repro.views.exercises: the exercises' figures and their check of the shipped model, on synthetic inputs."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from repro.stats import wilson
from repro.views import exercises as view


def test_check_table_compares_counts_and_bounds_its_intervals() -> None:
    measured = {"a": {"correct": 0, "n": 50, "top1": 0.0}, "b": {"correct": 50, "n": 50, "top1": 1.0},
                "c": {"correct": 7, "n": 20, "top1": 0.35}}
    recorded = {"accuracies": {"a": {"correct": 0}, "b": {"correct": 49}, "c": {"correct": 7}},
                "fp32_accuracies": {"a": {"correct": 1}}}
    table = view.check_table(measured, recorded).set_index("suite")
    assert table["same"].tolist() == ["yes", "no", "yes"]
    assert table.loc["a", "recorded, float32"] == 1 and table.loc["a", "recorded, as shipped"] == 0
    low, high = wilson(7, 20)
    assert table.loc["c", "top-1 now (%)"] == f"35.0 [{100 * low:.1f}, {100 * high:.1f}]"
    for text in table["top-1 now (%)"]:
        lo, hi = (float(x) for x in text.split("[")[1].rstrip("]").split(", "))
        assert 0 <= lo <= hi <= 100


def test_predictions_figure_titles_the_most_probable_class() -> None:
    import matplotlib.pyplot as plt
    import torch

    images = np.zeros((4, 8, 8, 3), np.uint8)
    probs = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.5, 0.5], [0.3, 0.7]])
    fig = view.predictions_figure(images, ["w", "x", "y", "z"], probs, ["cat", "dog"], [0, 1])
    assert [ax.get_title() for ax in fig.axes] == ["dog\n90%", "cat\n80%"]
    assert [ax.get_xlabel() for ax in fig.axes] == ["w", "x"]
    plt.close(fig)


@pytest.mark.parametrize("k", [1, 3])
def test_search_figure_has_a_row_per_query(k) -> None:
    import matplotlib.pyplot as plt

    images = np.zeros((5, 8, 8, 3), np.uint8)
    hits = [[(i, 0.5 - 0.1 * i) for i in range(k)], [(4, 0.3)]]
    fig = view.search_figure(images, ["q1", "q2"], hits)
    assert len(fig.axes) == 2 * k and fig.axes[0].get_ylabel() == "q1" and fig.axes[k].get_ylabel() == "q2"
    assert fig.axes[0].get_title() == "0.50"
    plt.close(fig)
