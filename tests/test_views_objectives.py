"""repro.views.objectives: the objectives chapter's tables and Figure 2, over the committed result records (an older
format that records no suite facts: chance comes from the corpus summary) and over a smoke run of the experiment
(the current format, with the facts and log-spaced snapshots recorded)."""

import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from conftest import committed_results, smoke_experiment

from repro.book import ExperimentResults
from repro.experiments import objectives_summary as osu
from repro.experiments.objectives import OBJECTIVES, PAIRS, PAPER_RATIOS, base_kind
from repro.stats import accuracy_interval, difference_interval, interval_text
from repro.views import objectives as view

ROOT = Path(__file__).resolve().parents[1] / "results"
INTERVAL = re.compile(r"^([+-]?[\d.]+)(?: \[([+-]?[\d.]+), ([+-]?[\d.]+)\])?")


@pytest.fixture(scope="module")
def committed() -> tuple[list[dict], dict]:
    records = committed_results("objectives")
    return records, ExperimentResults("objectives", "cpu", records, ROOT).suite_facts()


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> tuple[list[dict], None]:
    with smoke_experiment(tmp_path_factory, "objectives") as run:
        yield [run["record"]], None  # the facts are in the record


@pytest.fixture(params=["committed", "smoke"])
def both(request) -> tuple[list[dict], dict | None]:
    return request.getfixturevalue(request.param)


def _parsed(text: str) -> tuple[float, float, float]:
    match = INTERVAL.match(text)
    assert match, text
    mean, low, high = match.groups()
    return float(mean), float(low if low is not None else mean), float(high if high is not None else mean)


def test_suite_facts_come_from_the_records_or_the_caller(committed, smoke) -> None:
    records, facts = committed
    if not records[0]["metrics"].get("suites"):
        with pytest.raises(ValueError, match="facts="):
            view.suite_facts(records)
    info = view.suite_facts(records, facts)
    assert list(info) == view.suites(records) and all(0 < f["chance"] < 1 for f in info.values())
    [record], _ = smoke
    assert view.suite_facts([record]) == {s: record["metrics"]["suites"][s] for s in view.suites([record])}


def test_curves_are_tidy_and_the_recorded_numbers(both) -> None:
    records, _ = both
    frame = view.curves(records)
    expected = sum(len(o["snapshots"]) for r in records for o in r["metrics"]["objectives"].values())
    assert len(frame) == expected * len(view.suites(records))
    assert view.kinds(records, longer=False) == list(OBJECTIVES)
    assert [base_kind(k) for k in view.kinds(records)] == sorted(
        (base_kind(k) for k in view.kinds(records)), key=list(OBJECTIVES).index)  # a longer budget after its kind
    suite = view.suites(records)[-1]
    row = frame[(frame["objective"] == "caption-lm") & (frame["suite"] == suite)].iloc[-1]
    assert row["top1"] == records[-1]["metrics"]["objectives"]["caption-lm"]["snapshots"][-1][suite]
    common = frame[frame["objective"].isin(list(OBJECTIVES))]
    assert list(common["images_seen"].drop_duplicates()) == view.images_seen(records)


def test_bands_stay_inside_0_1(both) -> None:
    records, facts = both
    bands = view.bands(records, facts)
    finite = bands.dropna(subset=["low", "high"])
    assert ((0 <= finite["low"]) & (finite["low"] <= finite["mean"]) & (finite["mean"] <= finite["high"])
            & (finite["high"] <= 1)).all()
    if len(records) == 1 and view.suite_facts(records, facts)[view.suites(records)[0]].get("n"):
        assert len(finite) == len(bands)  # one seed: the Wilson interval of the images scored


def test_figure_is_figure_2_per_suite(both) -> None:
    import matplotlib.pyplot as plt

    records, facts = both
    fig = view.figure(records, facts)
    axes = [ax for ax in fig.axes if ax.axison]
    assert [ax.get_title() for ax in axes] == view.suites(records)
    for ax, suite in zip(axes, view.suites(records), strict=True):
        assert ax.get_xscale() == "log"
        assert len(ax.get_lines()) == len(view.kinds(records)) + 1  # one curve per objective and budget, and chance
        assert [line.get_linestyle() for line in ax.get_lines()[:-1]] == [
            "--" if view.factor(k) > 1 else "-" for k in view.kinds(records)]
        chance = view.suite_facts(records, facts)[suite]["chance"]
        assert ax.get_lines()[-1].get_ydata()[0] == pytest.approx(100 * chance)
    plt.close(fig)


def test_final_table_matches_the_intervals_of_the_final_snapshots(both) -> None:
    records, facts = both
    table = view.final_table(records, facts)
    assert list(table["objective"]) == [*map(view.label, view.kinds(records)), "chance"]
    suite = view.suites(records)[0]
    n = view.suite_facts(records, facts)[suite].get("n")
    finals = [r["metrics"]["objectives"]["clip"]["snapshots"][-1][suite] for r in records]
    clip = table[table["objective"] == OBJECTIVES["clip"]].iloc[0]
    assert clip[f"{suite} (%)"] == interval_text(accuracy_interval(finals, n)) and clip["seeds"] == len(records)
    for text in table[f"{suite} (%)"].iloc[:-1]:
        mean, low, high = _parsed(text)
        assert 0 <= low <= mean <= high <= 100
    assert np.allclose(view.final_means(records)[suite],
                       [np.mean(view.finals(records, k, suite)) for k in view.kinds(records)])


def test_differences_are_paired_over_seeds(committed) -> None:
    records, _ = committed
    frame = view.differences(records)
    suite = view.suites(records)[1]
    row = frame[(frame["suite"] == suite) & (frame["a"] == "bow-contrastive") & (frame["b"] == "bow-predict")].iloc[0]
    per_seed = [r["metrics"]["objectives"]["bow-contrastive"]["snapshots"][-1][suite]
                - r["metrics"]["objectives"]["bow-predict"]["snapshots"][-1][suite] for r in records]
    stats = difference_interval(per_seed)
    assert (row["mean"], row["low"], row["high"]) == pytest.approx((stats["mean"], stats["low"], stats["high"]))
    assert row["direction"] == ("higher" if stats["low"] > 0 else "lower" if stats["high"] < 0 else
                                "not distinguishable")
    table = view.differences_table(records)
    assert len(table) == len(frame) // len(view.suites(records)) and list(table.columns[1:]) == view.suites(records)


def test_central_claim_needs_every_contrastive_above_every_predictive(both) -> None:
    records, _ = both
    claim = view.central_claim(records)
    assert list(claim) == view.suites(records)
    frame = view.differences(records, [(c, p) for c in view.CONTRASTIVE for p in view.PREDICTIVE])
    for suite, verdict in claim.items():
        part = frame[frame["suite"] == suite]
        if len(records) < 2:
            assert verdict == "not tested (one seed)"
        else:
            assert (verdict == "reproduced") == (part["direction"] == "higher").all()


def test_standings_order_by_final_accuracy_and_flag_chance(both) -> None:
    records, facts = both
    table = view.standings(records, facts)
    for _, row in table.iterrows():
        means = {k: view.finals(records, k, row["suite"]).mean() for k in OBJECTIVES}
        assert row["ranking"].split(" > ")[0] == view.SHORT[max(means, key=means.get)]
        assert row["at chance"] == [k for k in OBJECTIVES if not osu.above_chance(records, k, row["suite"],
                                                                                   row["chance"])[0]]


def test_efficiency_table_has_the_paper_s_ratios_beside_ours(both) -> None:
    records, facts = both
    table = view.efficiency_table(records, facts)
    pairs = osu.pairs_for(records)
    assert pairs[: len(PAIRS)] == list(PAIRS) and len(table) == len(view.suites(records)) * len(pairs)
    first = table.iloc[: len(pairs)]
    for (fast, slow), (_, row) in zip(pairs, first.iterrows(), strict=True):
        paper = PAPER_RATIOS.get((fast, base_kind(slow)))
        assert row["paper"] == (f"{paper:g}×" if paper else "—")
        assert row["faster"] == view.short(fast) and row["than"] == view.short(slow)
        assert row["per seed"].count(",") == len(osu.with_objectives(records, fast, slow)) - 1


def test_setup_table_reads_the_recipe(both) -> None:
    records, facts = both
    table = view.setup_table(records, facts).set_index("")
    train = records[0]["config"]["train"]
    assert f"{train['steps'] * train['batch_size']:,} images" in table.loc["budget", "setting"]
    assert table.loc["seeds", "setting"].startswith(f"{len(records)}:")
    spaced = "log-spaced" if records[0]["config"].get("spacing") == "log2" else "evenly spaced"
    assert spaced in table.loc["snapshots", "setting"]
    for kind, used in osu.precisions(records).items():
        assert f"{view.short(kind)} {used}" in table.loc["precision", "setting"]
    assert view.compact(12_800) == "12.8k" and view.compact(1_310_720) == "1.31M" and view.compact(96) == "96"
    assert not math.isnan(float(view.suite_facts(records, facts)[view.suites(records)[0]]["n_classes"]))


def test_added_note_reads_each_added_runs_own_provenance() -> None:
    prov = {"git_revision": "e" * 40 + "+dirty", "created": "2026-12-03T19:00:00Z", "wall_time_s": 5430.0,
            "hardware": {"cpu": "AMD EPYC", "cores": 2, "torch_threads": 2}, "versions": {}}
    records = [{"seed": 0, "metrics": {"objectives": {"caption-lm-x4": {"provenance": prov}}}},
               {"seed": 1, "metrics": {"objectives": {"caption-lm-x4": {}}}}]
    note = view.added_note(records, "caption-lm-x4")
    assert note == ("; added to the result files later (seed 0: revision eeeeeeeeee+dirty, AMD EPYC, 2 threads, "
                    "90 min, 2026-12-03)")
    assert view.added_note(records, "clip") == "" and view.added_note(records[1:], "caption-lm-x4") == ""
