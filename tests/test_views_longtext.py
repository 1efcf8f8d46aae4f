"""repro.views.longtext: the long-text chapter's tables, figure and verdict, over the committed result records."""

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from conftest import committed_results

from repro.experiments import longtext as experiment
from repro.stats import accuracy_interval, difference_interval, interval_text
from repro.views import longtext as view

ROOT = Path(__file__).resolve().parents[1] / "results"


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return committed_results("longtext")


def test_setting_reads_the_shared_configuration(records) -> None:
    s = view.setting(records)
    model = records[0]["metrics"]["model"]
    assert (s["context"], s["window"], s["stride"]) == (model["context_length"], model["window"], model["stride"])
    assert s["factors"] == [f"{f}x" for f in records[0]["config"]["factors"]] and s["long"] == s["factors"][-1]
    assert s["seeds"] == [r["seed"] for r in records]


def test_rank_score_is_one_minus_the_rank_percentile(records) -> None:
    s = view.setting(records)
    split, kind = s["splits"][0], s["kinds"][0]
    got = view.values(records, split, "chunks", kind, s["long"], "end")
    want = [1 - r["metrics"][split]["long"][kind][s["long"]]["end"]["chunks"]["rank_pct"] for r in records]
    assert np.allclose(got, want)
    assert np.allclose(view.values(records, split, "short", key="r1"), [r["metrics"][split]["short"]["r1"]
                                                                        for r in records])
    assert np.allclose(view.values(records, split, "chance"), 0.5)


def test_results_table_has_a_row_per_strategy_and_interval_text_per_position(records) -> None:
    s = view.setting(records)
    frame = view.results_table(records)
    assert list(frame.columns) == ["split", "distractors", "strategy", *experiment.POSITIONS]
    assert len(frame) == len(s["splits"]) * (len(s["kinds"]) * len(experiment.STRATEGIES) + 2)
    split, kind = s["splits"][0], s["kinds"][0]
    want = interval_text(accuracy_interval(view.values(records, split, "truncate", kind, s["long"], "middle")))
    assert frame.iloc[0]["middle"] == want and frame.iloc[0]["strategy"] == "truncate"
    assert set(frame[frame["strategy"] == "chance"]["beginning"]) == {"50.0"}


def test_summary_intervals_of_shares_stay_inside_zero_and_one(records) -> None:
    frame = view.summary(records)
    for key in ("r1", "r5", "r10", "rank_score"):
        assert ((frame[f"{key}_low"] >= 0) & (frame[f"{key}_high"] <= 1)).all(), key
    rank = frame[frame["strategy"] != "chance"]
    assert ((rank["rank_score_low"] <= rank["rank_score_mean"]) & (rank["rank_score_mean"]
                                                                   <= rank["rank_score_high"])).all()
    s = view.setting(records)
    assert len(frame) == len(s["splits"]) * (len(s["kinds"]) * len(s["factors"]) * 9 + 2)


def test_examples_put_the_own_caption_in_bold_where_it_sits(records) -> None:
    frame = view.examples(records[0]).set_index("position")
    for kind, group in frame.groupby("distractors"):
        begin, end = group.loc["beginning", "text"], group.loc["end", "text"]
        caption = begin[2:begin.index("**", 2)]
        assert begin.startswith(f"**{caption}**") and end.endswith(f"**{caption}**"), kind
        assert f"**{caption}**" in group.loc["middle", "text"]
        assert group.loc["beginning", "caption_start"] == 0


def test_position_figure_has_a_panel_per_split_and_distractor_kind(records) -> None:
    s = view.setting(records)
    fig = view.position_figure(records)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert len(panels) == len(s["splits"]) * len(s["kinds"])
    assert [t.get_text() for t in panels[0].get_xticklabels()] == list(experiment.POSITIONS)
    matplotlib.pyplot.close(fig)


def test_findings_count_what_the_intervals_say(records) -> None:
    s, f = view.setting(records), view.findings(records)
    cases = [(sp, k) for sp in s["splits"] for k in s["kinds"]]
    begin = [accuracy_interval(view.values(records, sp, "truncate", k, s["long"], "beginning")) for sp, k in cases]
    assert f["begin_above"] == sum(b["low"] > 0.5 for b in begin) and f["n_cases"] == len(cases)
    sp, k = cases[0]
    d = difference_interval(view.values(records, sp, "truncate", k, s["long"], "beginning")
                            - view.values(records, sp, "chunks", k, s["long"], "beginning"))
    assert d == view.gap(records, (sp, "truncate", k, s["long"], "beginning"), (sp, "chunks", k, s["long"],
                                                                                    "beginning"))
    assert 0 <= f["begin_cost"]["chunks"] <= len(cases) and max(f["wins"].values()) == f["best_wins"]
    assert f["short"][sp] == pytest.approx(float(np.mean(view.values(records, sp, "short"))))
    assert all(math.isfinite(v) for v in f["recovered"].values())


def test_verdict_reads_the_tables_and_says_when_one_seed_decides_nothing(records) -> None:
    text = view.verdict(records)
    assert "{numref}`tab-longtext-rank`" in text and "**Truncation works only" in text
    one = view.verdict(records[:1])
    assert "decide nothing" in one and "undecided with one seed" in one
