"""Figure 2's efficiency ratios (paper §2.3) on synthetic result records: log-spaced snapshots, the per-seed ratio
of images needed (a curve shifted by 4× in images gives 4), the geometric mean with its interval on the log ratio,
and "untestable" where the slower objective stays at chance. The end-to-end smoke run is in
test_experiments_objectives.py."""

from __future__ import annotations

import math

import numpy as np
import pytest

from repro.experiments import clip_small, objectives
from repro.experiments import objectives_summary as osu
from repro.stats import difference_interval

SUITE = "emoji-category/val"
SEEN = [1000 * 2**k for k in range(8)]  # log-spaced, as `snapshot_steps` spaces them


def test_snapshots_are_log_spaced_and_end_at_the_budget() -> None:
    at = objectives.snapshot_steps(2600, 8)
    assert at[-1] == 2600 and len(at) == 8 and at == sorted(at)
    assert np.allclose(np.diff(np.log2(at)), 1, atol=0.05)
    assert objectives.snapshot_steps(12, 3) == [3, 6, 12] and objectives.snapshot_steps(2, 8) == [1, 2]
    with pytest.raises(ValueError):
        objectives.snapshot_steps(0, 3)


@pytest.mark.parametrize("profile", ["cpu", "gpu"])
def test_profiles_train_the_headline_corpus_with_log_snapshots(profile: str) -> None:
    spec = objectives.PROFILES[profile]
    assert spec["corpus"] == clip_small.PROFILES[profile]["corpus"] and spec["snapshots"] >= 8
    assert spec["train"]["steps"] * spec["train"]["batch_size"] >= 500_000  # room for the predictive objectives
    assert objectives.PROFILES["smoke"]["train"]["steps"] <= 20


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def _curve(images: list[int], speed: float, chance: float = 0.1) -> list[float]:
    """Accuracy rising from chance as a smooth function of log2(images × speed): `speed` 4 needs 4× fewer images."""
    x = np.log2(np.asarray(images, float) * speed)
    return list(chance + 0.6 * _sigmoid(x - np.log2(SEEN[3])))


def _record(seed: int, speeds: dict[str, float], flat: tuple[str, ...] = (), chance: float = 0.1) -> dict:
    objs = {}
    for kind in objectives.OBJECTIVES:
        acc = [chance] * len(SEEN) if kind in flat else _curve(SEEN, speeds.get(kind, 1.0), chance)
        rows = [{"step": s // 100, "images_seen": s, SUITE: a} for s, a in zip(SEEN, acc, strict=True)]
        objs[kind] = {"snapshots": rows}
    facts = {SUITE: {"split": "val", "label": "category", "n_classes": 10, "chance": chance, "n": 1000}}
    return {"seed": seed, "config": {"suites": [SUITE]}, "metrics": {"objectives": objs, "suites": facts}}


PAIR = (("bow-predict", "caption-lm"),)


def test_a_curve_shifted_by_four_times_in_images_gives_ratio_four() -> None:
    records = [_record(s, {"bow-predict": 4.0}) for s in range(3)]
    per_seed = osu.efficiency_ratios(records, SUITE, PAIR)
    assert list(per_seed.columns[:4]) == ["pair", "faster", "slower", "seed"]
    assert {"ratio", "reached"} <= set(per_seed.columns)
    assert np.allclose(per_seed["ratio"], 4.0) and per_seed["reached"].all() and set(per_seed["bound"]) == {"exact"}
    (row,) = osu.efficiency_summary(records, SUITE, pairs=PAIR).to_dict("records")
    assert row["pair"] == "bow-predict>caption-lm" and row["paper"] == 3.0 and row["status"] == "measured"
    assert row["ratio"] == pytest.approx(4.0) and row["low"] == pytest.approx(4.0) and row["high"] == pytest.approx(4.0)
    assert row["n_seeds"] == 3 and row["n_reached"] == 3 and row["result"].startswith("4.0×")
    given = osu.efficiency_summary(records, SUITE, pairs=PAIR, per_seed=per_seed).to_dict("records")
    assert given == [row]  # the caller's per-seed table gives the summary it computes itself


def test_a_shift_between_snapshots_is_interpolated_in_log_images() -> None:
    # a curve linear in log2(images) and a faster copy shifted by 3× (between two snapshots)
    def linear(speed: float) -> list[float]:
        return list(0.1 + 0.05 * np.log2(np.asarray(SEEN, float) * speed / SEEN[0]))

    record = _record(0, {})
    for kind, speed in (("caption-lm", 1.0), ("bow-predict", 3.0)):
        for row, a in zip(record["metrics"]["objectives"][kind]["snapshots"], linear(speed), strict=True):
            row[SUITE] = a
    assert osu.efficiency_ratios([record], SUITE, PAIR)["ratio"].iloc[0] == pytest.approx(3.0)


def test_the_mean_is_geometric_with_the_interval_on_log_ratios() -> None:
    records = [_record(s, {"bow-predict": r}) for s, r in enumerate((2.0, 4.0, 8.0))]
    (row,) = osu.efficiency_summary(records, SUITE, pairs=PAIR).to_dict("records")
    logs = difference_interval(np.log([2.0, 4.0, 8.0]))
    assert row["ratio"] == pytest.approx(4.0)  # (2 · 4 · 8)^(1/3)
    assert row["low"] == pytest.approx(math.exp(logs["low"])) and row["high"] == pytest.approx(math.exp(logs["high"]))
    assert row["low"] < 4 < row["high"]


def test_a_slower_objective_at_chance_makes_the_ratio_untestable() -> None:
    records = [_record(s, {"bow-predict": 4.0}, flat=("caption-lm",)) for s in range(3)]
    (row,) = osu.efficiency_summary(records, SUITE, pairs=PAIR).to_dict("records")
    assert row["status"] == "untestable" and row["result"] == "untestable" and math.isnan(row["ratio"])
    assert "chance" in row["reason"] and "caption-lm" in row["reason"]
    above, why = osu.above_chance(records, "bow-predict", SUITE)
    assert above and "bow-predict" in why


def test_bounds_when_the_crossing_is_outside_the_snapshots() -> None:
    early = [_record(s, {"bow-predict": 1000.0}) for s in range(2)]  # already there at the first snapshot
    (row,) = osu.efficiency_summary(early, SUITE, pairs=PAIR).to_dict("records")
    assert row["status"] == "lower bound" and row["n_lower_bound"] == 2 and row["result"] == f"≥ {2 ** 7}×"
    flat = [_record(s, {}, flat=("bow-predict",)) for s in range(2)]  # the "faster" one never leaves chance
    (row,) = osu.efficiency_summary(flat, SUITE, pairs=PAIR).to_dict("records")
    assert row["status"] == "not reached" and row["n_not_reached"] == 2 and math.isnan(row["ratio"])
    assert row["result"] == "< 1×"  # equal budgets: not faster at all
    mixed = [_record(0, {"bow-predict": 4.0}), _record(1, {}, flat=("bow-predict",))]
    (row,) = osu.efficiency_summary(mixed, SUITE, pairs=PAIR).to_dict("records")
    assert row["status"] == "partly measured" and row["n_reached"] == 1 and row["ratio"] == pytest.approx(4.0)


def test_a_faster_objective_that_ends_lower_is_compared_at_its_own_final_accuracy() -> None:
    """Figure 2's measure at the highest accuracy both reach: a "faster" curve shifted to need 2× the images (speed
    0.5) ends where the other stood at SEEN[6], so the other needs SEEN[6] images to its SEEN[7]: ratio 0.5."""
    slow = [_record(s, {"bow-predict": 0.5}) for s in range(2)]
    per_seed = osu.efficiency_ratios(slow, SUITE, PAIR)
    assert (per_seed["bound"] == "matched").all() and (per_seed["at"] == "faster final").all()
    assert per_seed["ratio"].to_numpy() == pytest.approx(SEEN[6] / SEEN[7])
    (row,) = osu.efficiency_summary(slow, SUITE, pairs=PAIR).to_dict("records")
    assert row["status"] == "measured" and row["n_matched"] == 2 and row["ratio"] == pytest.approx(0.5)
    assert "own final accuracy" in row["reason"]
    lm = [0.1] * (len(SEEN) + 1) + [0.95]  # a longer budget ending above anything bow-predict reaches
    records = [_with_longer(_record(s, {}, flat=("caption-lm",)), "caption-lm", lm) for s in range(2)]
    per_seed = osu.efficiency_ratios(records, SUITE, [("bow-predict", "caption-lm-x4")])
    fast_final = _curve(SEEN, 1.0)[-1]
    t = (fast_final - 0.1) / (0.95 - 0.1)  # the crossing, log-linear between 2× and 4× the budget
    assert per_seed["ratio"].to_numpy() == pytest.approx(2 * 2**t)
    unrecorded = [_record(s, {"bow-predict": 0.5}) for s in range(2)]
    for r in unrecorded:
        del r["metrics"]["suites"]  # no chance level to judge the faster one's final accuracy against
    assert (osu.efficiency_ratios(unrecorded, SUITE, PAIR)["bound"] == "none").all()


def test_chance_comes_from_the_records_or_the_caller() -> None:
    record = _record(0, {"bow-predict": 4.0})
    del record["metrics"]["suites"]
    with pytest.raises(ValueError, match="chance"):
        osu.efficiency_summary([record], SUITE, pairs=PAIR)
    (row,) = osu.efficiency_summary([record], SUITE, chance=0.1, pairs=PAIR).to_dict("records")
    assert row["status"] == "untestable" and "one seed" in row["reason"]  # no image count: no interval on one seed


def test_images_to_leave_chance_is_the_first_snapshot_from_which_it_stays_above() -> None:
    rec = _record(0, {}, flat=("caption-lm",))
    rows = rec["metrics"]["objectives"]["bow-predict"]["snapshots"]
    for row, acc in zip(rows, [0.1, 0.2, 0.1, 0.1, 0.2, 0.3, 0.3, 0.4], strict=True):  # a lucky blip at the second
        row[SUITE] = acc
    assert osu.images_to_leave_chance([rec], "bow-predict", SUITE) == [SEEN[4]]
    assert osu.images_to_leave_chance([rec], "caption-lm", SUITE) == [None]  # at chance to the end
    rows[-1][SUITE] = 0.1  # back at chance at the end: it never stays above
    assert osu.images_to_leave_chance([rec], "bow-predict", SUITE) == [None]
    del rec["metrics"]["suites"][SUITE]["n"]
    with pytest.raises(ValueError, match="no image count"):
        osu.images_to_leave_chance([rec], "bow-predict", SUITE)


def test_the_budget_note_reads_the_papers_ratio_against_the_budget() -> None:
    from repro.views import objectives as view

    records = [_record(s, {}, flat=("caption-lm",)) for s in range(3)]
    for rec in records:  # bag-of-words prediction stays above chance from the 6th snapshot (index 5) on
        for i, row in enumerate(rec["metrics"]["objectives"]["bow-predict"]["snapshots"]):
            row[SUITE] = 0.1 if i < 5 else 0.3
    note = view.budget_note(records)
    # 3 × SEEN[4] = 48k and 3 × SEEN[5] = 96k around the budget SEEN[-1] = 128k: "within"
    assert f"{view.compact(3 * SEEN[4])}–{view.compact(3 * SEEN[5])} images: within this budget" in note
    for rec in records:  # from the last snapshot only: 3 × 64k = 192k > 128k, beyond the budget
        for i, row in enumerate(rec["metrics"]["objectives"]["bow-predict"]["snapshots"]):
            row[SUITE] = 0.1 if i < 7 else 0.3
    assert "beyond this budget" in view.budget_note(records)
    learned = [_record(s, {}) for s in range(3)]  # the language model leaves chance: no note
    assert view.budget_note(learned) == ""


def test_a_longer_budget_is_named_by_its_factor() -> None:
    assert objectives.longer_name("caption-lm", 4) == "caption-lm-x4" and objectives.longer_name("clip", 1) == "clip"
    assert objectives.base_kind("caption-lm-x4") == "caption-lm"
    assert objectives.base_kind("bow-predict") == "bow-predict" and objectives.base_kind("clip-xl") == "clip-xl"
    for bad in (0, 3, 6):
        with pytest.raises(ValueError, match="power of two"):
            objectives.longer_name("caption-lm", bad)


def _with_longer(record: dict, kind: str, accuracies: list[float], factor: int = 4) -> dict:
    """`record` plus `kind` trained `factor`× longer: the same log2 grid continued to factor × the budget."""
    seen = [SEEN[0] * 2**k for k in range(len(SEEN) + int(math.log2(factor)))]
    rows = [{"step": s // 100, "images_seen": s, SUITE: a} for s, a in zip(seen, accuracies, strict=True)]
    record["metrics"]["objectives"][objectives.longer_name(kind, factor)] = {"snapshots": rows, "budget_factor": 4}
    return record


def test_a_longer_slow_budget_is_the_numerator_of_the_ratio() -> None:
    fast = _curve(SEEN, 1.0)
    lm = [0.1] * (len(SEEN) + 1) + [fast[5]]  # at chance until 4× the budget, then bow-predict's accuracy at SEEN[5]
    records = [_with_longer(_record(s, {}, flat=("caption-lm",)), "caption-lm", lm) for s in range(2)]
    records.append(_record(2, {}, flat=("caption-lm",)))  # a seed without the longer budget
    pairs = osu.pairs_for(records, PAIR)
    assert pairs == [("bow-predict", "caption-lm"), ("bow-predict", "caption-lm-x4")]
    assert osu.pairs_for([_record(0, {})], PAIR) == list(PAIR)
    assert [r["seed"] for r in osu.with_objectives(records, "caption-lm-x4")] == [0, 1]
    per_seed = osu.efficiency_ratios(records, SUITE, pairs)
    longer = per_seed[per_seed["pair"] == "bow-predict>caption-lm-x4"]
    assert list(longer["seed"]) == [0, 1] and (longer["slower_budget"] == 4 * SEEN[-1]).all()
    assert longer["ratio"].to_numpy() == pytest.approx(4 * SEEN[-1] / SEEN[5])
    rows = osu.efficiency_summary(records, SUITE, pairs=pairs).set_index("pair")
    assert rows.loc["bow-predict>caption-lm", "status"] == "untestable"
    assert rows.loc["bow-predict>caption-lm-x4", "status"] == "measured"
    assert rows.loc["bow-predict>caption-lm-x4", "n_seeds"] == 2
    assert rows.loc["bow-predict>caption-lm-x4", "paper"] == 3.0  # the paper's ratio of the objective's kind
    with pytest.raises(ValueError, match="not in the results of seeds \\[2\\]"):
        osu.curve(records, "caption-lm-x4", SUITE)


def test_a_faster_curve_that_never_reaches_a_longer_budget_bounds_the_ratio_above() -> None:
    lm = [0.1] * (len(SEEN) + 1) + [0.95]  # beyond anything bow-predict reaches in its shorter budget
    records = [_with_longer(_record(s, {}, flat=("caption-lm", "bow-predict")), "caption-lm", lm) for s in range(2)]
    pair = [("bow-predict", "caption-lm-x4")]  # bow-predict at chance: no accuracy of its own to compare at
    per_seed = osu.efficiency_ratios(records, SUITE, pair)
    assert (per_seed["bound"] == "none").all() and (per_seed["ratio_below"] == 4).all()
    (row,) = osu.efficiency_summary(records, SUITE, pairs=pair).to_dict("records")
    assert row["status"] == "not reached" and row["result"] == "< 4×"


def test_the_longer_note_says_where_the_longer_budget_ends() -> None:
    from repro.views import objectives as view

    records = [_record(s, {}, flat=("caption-lm",)) for s in range(2)]
    assert view.longer_note(records) == "" and view.longer_runs(records) == {}
    flat = [_with_longer(r, "caption-lm", [0.1] * (len(SEEN) + 2)) for r in records]
    assert view.longer_runs(flat) == {"caption-lm-x4": [0, 1]}
    assert view.kinds(flat) == ["caption-lm", "caption-lm-x4", "bow-predict", "bow-contrastive", "clip"]
    assert view.label("caption-lm-x4").endswith(", 4× budget") and view.short("caption-lm-x4").endswith("(4× budget)")
    note = view.longer_note(flat)
    assert note.startswith(f"Given 4× the budget ({view.compact(4 * SEEN[-1])} images; seeds 0, 1)")
    assert "still at chance in every seed" in note
    ends = (0.1, 0.3)
    one = [_with_longer(r, "caption-lm", [0.1] * (len(SEEN) + 1) + [a]) for r, a in zip(records, ends, strict=True)]
    note = view.longer_note(one)  # one seed ends above chance on its own images, the two together do not
    assert f"1 of 2 seeds end above it on their own images (staying above from never, {view.compact(4 * SEEN[-1])}" \
        in note and "untestable" in note
    fast = _curve(SEEN, 1.0)
    learned = [_with_longer(_record(s, {}, flat=("caption-lm",)), "caption-lm", [0.1] * 6 + [0.5] * 3 + [fast[5]])
               for s in range(2)]
    note = view.longer_note(learned)
    assert f"stays above chance from {view.compact(SEEN[6])}, {view.compact(SEEN[6])} images on" in note
    assert f"{4 * SEEN[-1] / SEEN[5]:.1f}× [" in note and "the paper: 3×" in note


def test_monotone_curve_pools_a_dip_and_keeps_a_rising_curve() -> None:
    rising = _curve(SEEN, 1.0)
    assert objectives.monotone_curve(SEEN, rising) == pytest.approx(rising)
    fit = objectives.monotone_curve([1, 2, 4, 8], [0.1, 0.4, 0.2, 0.5])
    assert fit == pytest.approx([0.1, 0.3, 0.3, 0.5]) and fit == sorted(fit)


def test_one_lucky_snapshot_does_not_decide_the_crossing() -> None:
    """A slower curve with one early spike to the faster one's final accuracy: the raw first crossing would put the
    match at that spike; the monotone fit pools it with the dip after it, so the match comes later."""
    record = _record(0, {})
    fast = [r[SUITE] for r in record["metrics"]["objectives"]["bow-predict"]["snapshots"]]
    spiky = [0.1] * 3 + [fast[-1], 0.1, 0.1, 0.1, 0.9]
    for row, a in zip(record["metrics"]["objectives"]["caption-lm"]["snapshots"], spiky, strict=True):
        row[SUITE] = a
    (row,) = osu.efficiency_ratios([record], SUITE, PAIR).to_dict("records")
    # pooled, the spike no longer reaches it: the match lies after SEEN[6] (the raw curve: at SEEN[3], ratio 1/16)
    assert row["bound"] == "matched" and SEEN[6] / SEEN[7] < row["ratio"] < 1


def test_precisions_are_each_objectives_and_must_agree_across_seeds() -> None:
    records = [_record(s, {}) for s in range(3)]
    for r in records:
        r["config"]["train"] = {"precision": "auto"}
        for kind, m in r["metrics"]["objectives"].items():
            m["final_loss"] = {"loss": 1.0, "precision": "bf16" if kind == "clip" else "fp32"}
    assert osu.precisions(records) == {k: "bf16" if k == "clip" else "fp32" for k in objectives.OBJECTIVES}
    del records[0]["metrics"]["objectives"]["bow-predict"]["final_loss"]["precision"]  # a log row without it
    with pytest.raises(ValueError, match=r"'bow-predict' trained in different precisions across seeds: \{0: 'auto'"):
        osu.precisions(records)
    records[0]["metrics"]["objectives"]["bow-predict"]["final_loss"]["precision"] = "fp32"
    records[2]["metrics"]["objectives"]["clip"]["final_loss"]["precision"] = "fp32"
    with pytest.raises(ValueError, match=r"'clip' .* seeds: \{0: 'bf16', 1: 'bf16', 2: 'fp32'\}"):
        osu.precisions(records)
