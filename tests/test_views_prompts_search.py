"""repro.views.prompts and repro.views.search on smoke runs of their experiments (the format the code writes now):
tables equal direct computations from the records, intervals stay inside 0–100%, figures have their axes."""

import copy

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from conftest import smoke_experiment

from repro.experiments import prompts
from repro.stats import accuracy_interval, difference_interval, interval_text
from repro.views import prompts as pview
from repro.views import search as sview


def _seeds(record: dict, n: int = 3) -> list[dict]:
    """`n` records that differ only in their seed (enough for intervals)."""
    return [copy.deepcopy(record) | {"seed": k} for k in range(n)]


@pytest.fixture(scope="module")
def prompt_records(tmp_path_factory):
    with smoke_experiment(tmp_path_factory, "prompts") as run:
        yield [run["record"]]


@pytest.fixture(scope="module")
def search_records(tmp_path_factory):
    with smoke_experiment(tmp_path_factory, "search") as run:
        yield [run["record"]], run


def test_prompt_tables(prompt_records):
    table = pview.suite_table(prompt_records)
    m = prompts.suite_metrics(prompt_records[0])
    first = next(iter(m))
    row = table[table["suite"].str.startswith(first)].iloc[0]
    assert row["class name"] == interval_text(accuracy_interval([m[first]["classname"]["top1"]]))
    gains = pview.gains(_seeds(prompt_records[0]))
    one = gains[(gains["suite"] == first) & (gains["mode"] == "ensemble")].iloc[0]
    assert one["gain"] == pytest.approx(100 * (m[first]["ensemble"]["top1"] - m[first]["classname"]["top1"]))
    assert one["low"] == pytest.approx(one["gain"]) and one["n"] == 3  # identical seeds: a zero-width interval
    assert set(pview.selection_table(prompt_records)["family"]) == set(prompt_records[0]["metrics"]["selection"])
    fig = pview.gain_figure(prompt_records)
    assert fig.axes[0].get_xlabel().startswith("top-1 gain")


def test_prompt_paired_table_counts_seeds(prompt_records):
    suites = [s for s, m in prompts.suite_metrics(prompt_records[0]).items() if "chosen" in m]
    table = pview.paired_table(_seeds(prompt_records[0]), suites)
    assert len(table) == len(suites)
    assert all(sum(int(x) for x in cell.split(" / ")) == 3 for cell in table.iloc[:, -1])


def test_search_recall_and_hubness(search_records):
    records, _ = search_records
    tidy = sview.recall(_seeds(records[0]))
    m = records[0]["metrics"]
    row = tidy[(tidy["split"] == "val") & (tidy["direction"] == "t2i") & (tidy["k"] == 1)].iloc[0]
    assert row["mean"] == pytest.approx(m["retrieval/val"]["t2i_r1"])
    assert ((0 <= tidy["low"]) & (tidy["high"] <= 1)).all()
    assert row["times_chance"] == pytest.approx(row["mean"] / m["chance/val"]["t2i_r1"])
    hubs = sview.hubness_table(records)
    assert set(hubs["ranking"]) == {"CLIP", "random ranking"}
    clip = hubs[(hubs["split"] == "val") & (hubs["ranking"] == "CLIP")].iloc[0]
    assert clip["never retrieved (%)"] == pytest.approx(round(100 * m["hubness/val"]["never_retrieved"], 1))
    assert "In short" in sview.setting_text(records, "a model", "smoke")
    assert "chance" in sview.verdict_text(records)
    assert len(sview.recall_figure(records).axes) == 2


def test_search_gallery_views(search_records):
    records, run = search_records
    from repro.experiments import search

    gallery = records[0]["metrics"]["gallery"]
    arrays = search.load_gallery(run["path"].with_name(gallery["file"]))
    assert len(sview.query_table(gallery)) == len(gallery["text_to_image"])
    hits = sview.query_hits(records)
    assert (hits["correct"] <= hits["shown"]).all()
    fig = sview.query_figure(gallery, arrays)
    assert len(fig.axes) == arrays["query_images"].shape[0] * arrays["query_images"].shape[1]
    assert sview.thumbnail(np.zeros((2, 2, 3), np.uint8), 3).shape == (6, 6, 3)
    assert difference_interval([0.1, 0.1])["low"] == pytest.approx(0.1)
