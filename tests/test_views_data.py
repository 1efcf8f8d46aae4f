"""repro.views.data: the data chapter's tables and figure, on the committed corpus summaries and clip_small runs and
on synthetic records."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from repro.book import ExperimentResults, results_in
from repro.data.summary import read_summary
from repro.stats import accuracy_interval, difference_interval, interval_text
from repro.views import data as view

ROOT = Path(__file__).resolve().parents[1] / "results"


@pytest.fixture(scope="module")
def summary() -> dict:
    if not (ROOT / "data" / "full" / "manifest.json").is_file():
        pytest.skip("no committed corpus summary")
    return read_summary(ROOT / "data" / "full")


@pytest.fixture(scope="module")
def manifest(summary) -> dict:
    return summary["manifest"]


def _interval(text: str) -> tuple[float, float, float]:
    mean, low, high = (float(x) for x in re.fullmatch(r"([-+\d.]+) \[([-\d.]+), ([-\d.]+)\]", text).groups())
    return mean, low, high


def test_facts_count_the_training_split(summary, manifest) -> None:
    facts = view.facts(manifest, summary["suites"])
    train = manifest["counts_by_source"]["train"]
    assert facts["train"] == sum(train.values()) == sum(manifest["counts"]["train"].values())
    emoji = sum(v for k, v in train.items() if k not in ("iconify", "openclipart-png"))
    assert facts["emoji_share"] == pytest.approx(emoji / sum(train.values()))
    assert facts["suites"] == len(summary["suites"]["suites"]) and facts["sources"] == len(manifest["sources"])
    assert facts["eval_splits"] == len(manifest["counts"]) - 1 and facts["leak_check"] == manifest["leak_check"]


def test_sources_and_licences(manifest) -> None:
    sources = view.sources_table(manifest)
    assert list(sources.columns) == ["package", "licence", "attribution"] and len(sources) == len(manifest["sources"])
    first = manifest["sources"][0]
    assert sources["package"][0] == f"{first['package']} {first['version']} ({first['client']})"
    licences = view.licence_table(manifest)
    assert licences["pictures"].sum() == sum(s["images"] for s in manifest["licences"])
    assert licences["pictures"].is_monotonic_decreasing
    assert "CC-BY-SA-4.0" in set(licences["licence"])  # OpenMoji


def test_split_and_dropped_tables(manifest) -> None:
    splits = view.split_table(manifest).set_index("split")
    for split, parts in manifest["counts"].items():
        assert splits.loc[split, "pictures"] == sum(parts.values())
        assert all(f"{k} {v:,}" in splits.loc[split, "by style"] for k, v in parts.items())
        by_source = manifest["counts_by_source"][split]
        assert all(f"{k} {v:,}" in splits.loc[split, "by source"] for k, v in by_source.items())
    dropped = view.dropped_table(manifest)
    assert dropped["pictures"].sum() == sum(manifest["dropped"].values())
    assert dropped["pictures"].is_monotonic_decreasing


def test_caption_and_suite_tables(summary) -> None:
    captions = view.caption_table(summary["captions"], rows=5)
    assert len(captions) <= 5 and not captions.duplicated(["split", "style"]).any()
    assert set(captions["split"]) <= {"train", "val"}
    suites = view.suite_table(summary["suites"])
    assert len(suites) == len(summary["suites"]["suites"])
    assert suites["classes"].tolist() == [len(s["classes"]) for s in summary["suites"]["suites"]]


def test_packed_table_and_what_the_gpu_can_carry(manifest) -> None:
    table = view.packed_table(manifest).set_index("split")
    body = table.drop(index="all splits")
    assert np.allclose(table.loc["all splits"], body.sum(), atol=0.1 * len(body))
    size = view.gpu_size(manifest)
    totals = {s: sum(p["bytes"] for p in manifest["packed"] if p["size"] == s) / 2**20 for s in (32, 48, 64)}
    assert size == max((s for s, v in totals.items() if v <= view.GPU_DATA_MIB), default=None)
    assert view.gpu_size(manifest, limit_mib=0) is None


def test_corpus_table_sets_builds_side_by_side(manifest) -> None:
    table = view.corpus_table({"full": manifest, "copy": manifest}).set_index("")
    assert list(table.columns) == ["full", "copy"]
    assert table.loc["training pictures", "full"] == f"{view.facts(manifest, {'suites': []})['train']:,}"


def test_style_grid_frames_the_held_out_styles(summary, manifest) -> None:
    import matplotlib.pyplot as plt

    grid = summary["grid"]
    fig = view.style_grid(grid, manifest["held_out_styles"])
    assert len(fig.axes) == len(grid["names"]) * len(grid["styles"])
    for ax, style in zip(fig.axes[: len(grid["styles"])], grid["styles"], strict=True):
        assert ax.spines["left"].get_visible() == (style in manifest["held_out_styles"])
    plt.close(fig)


def _runs(values: dict[str, list[float]]) -> ExperimentResults:
    records = [{"seed": k, "metrics": {"train": {"steps": 10 * (k + 1)},
                                       **{s: {"top1": v[k], "n_classes": 9} for s, v in values.items()}}}
               for k in range(len(next(iter(values.values()))))]
    return ExperimentResults("clip_small", "cpu", records, ROOT)


def test_corpus_effect_intervals_stay_inside_0_100_and_are_paired() -> None:
    before = _runs({"emoji-a/val": [0.0, 0.001, 0.002], "mnist": [0.1, 0.11, 0.12]})
    after = _runs({"emoji-a/val": [0.01, 0.0, 0.003], "mnist": [0.2, 0.19, 0.25]})
    suites = [{"name": "emoji-a/val", "classes": ["x", "y"]}, {"name": "mnist", "classes": ["0"]}]
    other = [{"name": "emoji-a/val", "classes": ["x", "z"]}, {"name": "mnist", "classes": ["0"]}]
    effect = view.corpus_effect(before, after, suites, other, ("full", "large")).set_index("suite")
    for suite in effect.index:
        for column in ("full (%)", "large (%)"):
            _, low, high = _interval(effect.loc[suite, column])
            assert 0 <= low <= high <= 100
    assert effect.loc["emoji-a/val", "full (%)"] == interval_text(accuracy_interval([0.0, 0.001, 0.002]))
    assert effect.loc["mnist", "difference (points)"] == interval_text(
        difference_interval(np.array([0.2, 0.19, 0.25]) - np.array([0.1, 0.11, 0.12])), signed=True)
    assert effect["same classes"].tolist() == ["no", "yes"]
    moved = view.effect_facts(before, after)
    assert moved["suites"] == 1 and moved["mean"] == pytest.approx(100 * (np.mean([0.01, 0, 0.003]) - 0.001))
    assert (moved["steps_before"], moved["higher"], moved["lower"]) == (10, 1, 0)


def test_corpus_effect_on_the_committed_runs() -> None:
    folder = ROOT / "clip_small" / "cpu"
    before, after = (results_in(folder / f"corpus-{c}", "clip_small", "cpu") for c in ("full", "large"))
    if not (before.records and after.records):
        pytest.skip("no committed corpus runs")
    effect = view.corpus_effect(before, after)
    assert len(effect) and set(effect["same classes"]) == {"—"}
    for text in effect["before (%)"].tolist() + effect["after (%)"].tolist():
        _, low, high = _interval(text)
        assert 0 <= low <= high <= 100


def test_the_shipped_sample_table() -> None:
    from repro.data.sample import load_sample

    sample = load_sample()
    table = view.sample_table(sample)
    assert table.loc["all", "all"] == len(sample)
    assert table.drop(index="all")["all"].sum() == len(sample)
