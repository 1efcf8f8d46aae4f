"""repro.views.robustness: the robustness chapter's tables, figures and sentences — over the committed result records
(written before the narrow CLIP and the held-out icon sets existed) and over one smoke run, which has them."""

import copy
import re

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from conftest import committed_results, smoke_experiment

from repro.book import ExperimentResults
from repro.evaluate.robustness import effective_robustness, trend_band
from repro.experiments.robustness_summary import HELD_OUT_MEAN, ICON_MEAN, summarize, verdicts_inputs
from repro.stats import accuracy_interval, difference_interval, interval_text
from repro.views import robustness as view
from repro.views import robustness_verdicts as verdicts

INTERVAL = re.compile(r"^([+-]?[\d.]+)(?: \[([+-]?[\d.]+), ([+-]?[\d.]+)\])?$")


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return committed_results("robustness")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> list[dict]:
    """One smoke run of the experiment (new format: narrow CLIP, icon sets)."""
    with smoke_experiment(tmp_path_factory, "robustness") as run:
        yield [run["record"]]


@pytest.fixture(scope="module")
def older(records) -> list[dict]:
    """The committed records in the older format: without the held-out icon sets and the narrow CLIP."""
    out = copy.deepcopy(records)
    for r in out:
        r["metrics"]["task"].pop("icon_sets", None)
        r["metrics"].pop("narrow_clip", None)
    return out


def test_the_older_format_says_what_is_missing(older) -> None:
    s = view.setting(older)
    assert s["icons"] == [] and s["averaged"] == [HELD_OUT_MEAN] and not s["narrow"]
    assert s["targets"] == [*s["shifted"], HELD_OUT_MEAN]
    assert "not in these results" in view.icon_text(older) and "not in these results" in view.narrow_text(older)
    results = _results(older)
    found = verdicts.chapter_claims(results)
    assert found["icons"] is None and found["narrow"] is None
    table = verdicts.verdict_table(results)
    assert len(table) == len(found) and (table["ours"] == view.NOT_HERE).sum() == 2
    assert view.narrow_table(older).empty


def _parsed(text: str) -> tuple[float, ...]:
    match = INTERVAL.match(text)
    assert match, text
    return tuple(float(g) for g in match.groups() if g is not None)


def _accuracies_inside(table, columns) -> None:
    for column in columns:
        for text in table[column]:
            if text != "—":
                mean, *bounds = _parsed(text)
                assert all(0 <= v <= 100 for v in (mean, *bounds)), (column, text)
                if bounds:
                    assert bounds[0] <= mean <= bounds[1], (column, text)


def _results(records: list[dict]) -> ExperimentResults:
    return ExperimentResults("robustness", records[0]["profile"], records, root=None)


def test_setting_orders_the_shifts_and_sees_what_is_missing(records) -> None:
    s = view.setting(records)
    task = records[0]["metrics"]["task"]
    assert s["shifted"][:len(task["held_out"])] == task["held_out"] and s["in"] not in s["shifted"]
    assert set(s["shifted"]) == set(task["splits"]) - {s["in"]}
    icons = [k for k, v in (task.get("icon_sets") or {}).items() if v["n"] > 0]
    assert s["icons"] == icons and s["averaged"] == [HELD_OUT_MEAN] + ([ICON_MEAN] if icons else [])
    assert s["narrow"] == all("narrow_clip" in r["metrics"] for r in records)
    assert s["targets"] == [*s["shifted"], *icons, *s["averaged"]]


def test_task_and_models_tables_follow_the_record(records) -> None:
    task = records[0]["metrics"]["task"]
    table = view.task_table(records)
    assert list(table["split"]) == [*task["splits"], *view.setting(records)["icons"], "train (labelled)"]
    assert table["images"].iloc[-1] == f"{task['n_train']:,}"
    models = view.models_table(records)
    assert len(models) == len(records[0]["metrics"]["supervised"])
    _accuracies_inside(models, [c for c in models.columns if c.startswith("final")])
    missing = not view.setting(records)["narrow"]  # the older format has neither icon sets nor the narrow CLIP
    assert ("not in these results" in view.icon_text(records)) == missing
    assert ("not in these results" in view.narrow_text(records)) == missing


def test_trend_points_are_every_snapshot(records) -> None:
    pts = view.trend_points(records, HELD_OUT_MEAN)
    held = records[0]["metrics"]["task"]["held_out"]
    snaps = [s for m in records[0]["metrics"]["supervised"].values() for s in m["snapshots"]]
    first = pts[pts["seed"] == records[0]["seed"]]
    assert len(first) == len(snaps)
    assert np.allclose(first["shifted"], [np.mean([s["accuracy"][k] for k in held]) for s in snaps])


def test_shift_table_effective_robustness_is_the_trend_residual(records) -> None:
    table = view.shift_table(records)
    s = view.setting(records)
    assert len(table) == len(s["targets"])
    _accuracies_inside(table, [c for c in table.columns if c.endswith("(%)") and not c.startswith("gap")])
    split = s["held"][0]
    per_seed = []
    for r in records:
        snaps = [p["accuracy"] for m in r["metrics"]["supervised"].values() for p in m["snapshots"]]
        fit = effective_robustness([r["metrics"]["zero_shot"][s["in"]]["top1"]],
                                   [r["metrics"]["zero_shot"][split]["top1"]],
                                   [p[s["in"]] for p in snaps], [p[split] for p in snaps])
        per_seed.append(fit["effective_robustness"][0])
    assert table.loc[0, "zero-shot eff. rob."] == interval_text(difference_interval(per_seed), signed=True)


def test_band_table_reads_the_band_and_pairs_the_drop(records) -> None:
    table = view.band_table(records)
    s = view.setting(records)
    frame = summarize(records)
    assert set(table["model"]) == {view.CLIP_NAMES["zero_shot"], view.CLIP_NAMES["lr_head"],
                                   *([view.CLIP_NAMES["narrow_zero_shot"]] if s["narrow"] else []),
                                   *(s["names"][m] for m in s["supervised"])}
    _accuracies_inside(table, ["in-dist. (%)", "under the shift (%)"])
    row = table[table["model"] == view.CLIP_NAMES["zero_shot"]].iloc[0]
    x, y, lo = (view.values(frame, "zero_shot", HELD_OUT_MEAN, c) for c in ("in_distribution", "held_out", "er_low"))
    assert row["drop (points)"] == interval_text(difference_interval(x - y), signed=True)
    assert row["in-dist. (%)"] == interval_text(accuracy_interval(x))
    assert row["above the band"] == f"{int(np.sum(lo > 0))} of {len(records)} seeds"
    # the band's lower end is the trend's upper prediction limit, from trend_band directly
    r = records[0]
    pts = view.trend_points([r], HELD_OUT_MEAN)
    band = trend_band(pts["in"], pts["shifted"], [x[0]])
    assert lo[0] == pytest.approx(y[0] - band["high"][0])


def test_head_and_figure5_tables_are_paired_over_seeds(records) -> None:
    s = view.setting(records)
    head = view.head_table(records)
    assert len(head) == 1 + len(s["targets"])
    _accuracies_inside(head, ["zero-shot (%)", "head (%)"])
    val = [r["metrics"]["lr_head"]["accuracy"][s["in"]] - r["metrics"]["zero_shot"][s["in"]]["top1"] for r in records]
    assert head.loc[0, "change (points)"] == interval_text(difference_interval(val), signed=True)
    f5 = view.figure5_table(records)
    assert list(f5["test set"]) == list(records[0]["metrics"]["figure5"]["tests"])
    _accuracies_inside(f5, [c for c in f5.columns if c.endswith("(%)")])
    t = f5["test set"].iloc[0]
    diff = [r["metrics"]["figure5"]["tests"][t]["zero_shot"] - r["metrics"]["figure5"]["tests"][t]["resnet101_probe"]
            for r in records]
    assert f5.loc[0, "zero-shot − probe (points)"] == interval_text(difference_interval(diff), signed=True)


def test_verdicts_come_from_the_claims_and_say_what_is_missing(records) -> None:
    from repro import claims

    results = _results(records)
    found = verdicts.chapter_claims(results)
    new = view.setting(records)["narrow"]  # results with the icon sets and the narrow CLIP, or the older format
    assert (found["icons"] is None and found["narrow"] is None) != new
    assert found["styles"].ours == claims.effective_robustness(results)[0].ours
    assert found["probe"].ours == claims.beats_supervised_probe(results).ours
    table = verdicts.verdict_table(results)
    assert len(table) == len(found) and (table["ours"] == view.NOT_HERE).sum() == (0 if new else 2)
    assert view.narrow_table(records).empty != new


def test_figures_have_their_panels(records) -> None:
    import matplotlib.pyplot as plt

    fig = view.trend_figure(records)
    ax = fig.axes[0]
    assert len(fig.axes) == len(view.setting(records)["averaged"])
    assert ax.get_xscale() == "logit" and ax.get_yscale() == "logit" and ax.get_title() == HELD_OUT_MEAN
    plt.close(fig)
    fig = view.head_figure(records)
    assert len(fig.axes) == 2 and len(fig.axes[0].get_yticklabels()) == 1 + len(view.setting(records)["targets"])
    plt.close(fig)
    text = verdicts.discussion(records)
    assert text.count("\n\n") == 2 and "R²" in text


def test_smoke_run_has_the_new_parts(smoke) -> None:
    import matplotlib.pyplot as plt

    s = view.setting(smoke)
    assert s["narrow"] and s["icons"] and s["averaged"] == [HELD_OUT_MEAN, ICON_MEAN]
    narrow = view.narrow_table(smoke)
    inputs = verdicts_inputs(smoke)
    assert list(narrow["shift"]) == [HELD_OUT_MEAN, ICON_MEAN]
    row = inputs[inputs["shift"] == HELD_OUT_MEAN].iloc[0]
    assert narrow.loc[0, "diverse − narrow (points, paired)"] == f"{100 * row['difference']:+.1f}"
    assert "narrow CLIP eff. rob." in view.shift_table(smoke).columns
    assert view.CLIP_NAMES["narrow_zero_shot"] in set(view.band_table(smoke)["model"])
    assert "held-out icon set" in " ".join(view.task_table(smoke)["distribution"])
    assert "icons of" in view.icon_text(smoke) and "pictures" in view.narrow_text(smoke)
    found = verdicts.chapter_claims(_results(smoke))
    assert found["narrow"] is not None and found["icons"] is not None
    assert not (verdicts.verdict_table(_results(smoke))["ours"] == view.NOT_HERE).any()
    fig = view.trend_figure(smoke)
    assert [ax.get_title() for ax in fig.axes] == [HELD_OUT_MEAN, ICON_MEAN]
    plt.close(fig)
