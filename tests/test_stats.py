"""repro.stats: intervals against reference values, their range, paired tests, power and verdicts."""

import math

import numpy as np
import pytest

from repro import stats


def test_wilson_reference_values():
    low, high = stats.wilson(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-4) and high == pytest.approx(0.7634, abs=1e-4)
    low, high = stats.wilson(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)


@pytest.mark.parametrize("k, n", [(-1, 10), (11, 10), (0, 0)])
def test_wilson_rejects_bad_counts(k, n):
    with pytest.raises(ValueError, match="wilson"):
        stats.wilson(k, n)


def test_difference_interval_is_the_t_interval():
    values = [0.1, 0.3, 0.2]
    out = stats.difference_interval(values)
    half = 4.302653 * np.std(values, ddof=1) / math.sqrt(3)
    assert out["mean"] == pytest.approx(0.2)
    assert out["low"] == pytest.approx(0.2 - half, rel=1e-5) and out["high"] == pytest.approx(0.2 + half, rel=1e-5)


def test_accuracy_interval_stays_in_range_where_a_t_interval_does_not():
    values = [0.01, 0.002, 0.03]  # near the floor: the t interval's low end is below 0
    t = stats.difference_interval(values)
    assert t["low"] < 0
    out = stats.accuracy_interval(values, n_items=1000)
    assert 0 < out["low"] < out["high"] < 1
    assert out["low"] <= min(values) + 1e-12 or out["low"] < out["mean"]
    assert out["mean"] == pytest.approx(np.mean(values))


def test_accuracy_interval_one_seed_is_wilson_and_range_checked():
    out = stats.accuracy_interval([0.5], n_items=10)
    assert (out["low"], out["high"]) == pytest.approx(stats.wilson(5, 10))
    assert math.isnan(stats.accuracy_interval([0.5])["low"])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        stats.accuracy_interval([0.5, 1.2])


def test_paired_bootstrap_keeps_the_pairing():
    rng = np.random.default_rng(0)
    a = rng.random(400) < 0.6
    same = stats.paired_bootstrap(a, a)
    assert same["diff"] == 0 and same["low"] == 0 and same["high"] == 0
    b = a.copy()
    b[:40] = False  # b is a with 40 fewer correct (of those a had right)
    out = stats.paired_bootstrap(a, b, seed=1)
    assert out["diff"] == pytest.approx((a[:40].sum()) / 400)
    assert 0 <= out["low"] <= out["diff"] <= out["high"]


def test_paired_tests_reject_bad_input():
    with pytest.raises(ValueError, match="same"):
        stats.paired_bootstrap([1, 0], [1, 0, 1])
    with pytest.raises(ValueError, match="0/1"):
        stats.mcnemar([0.5, 1], [1, 0])


def test_mcnemar_exact_binomial():
    a = np.array([1] * 9 + [0] * 1 + [1] * 50)
    b = np.array([0] * 9 + [1] * 1 + [1] * 50)
    out = stats.mcnemar(a, b)
    assert (out["only_a"], out["only_b"]) == (9, 1)
    assert out["p"] == pytest.approx(2 * sum(math.comb(10, k) for k in (0, 1, 10, 9)) / 2 ** 10 / 2)
    assert stats.mcnemar(a, a)["p"] == 1.0


def test_min_detectable_effect_formula_and_limits():
    assert stats.min_detectable_effect(1.0, 3) == pytest.approx((4.302653 + 1.060660) / math.sqrt(3), rel=1e-5)
    assert stats.min_detectable_effect(1.0, 1) == math.inf
    assert stats.min_detectable_effect(1.0, 10) < stats.min_detectable_effect(1.0, 3)


def test_verdict_kinds():
    up = {"mean": 0.05, "low": 0.02, "high": 0.08, "n": 3}
    flat = {"mean": 0.01, "low": -0.02, "high": 0.04, "n": 3}
    down = {"mean": -0.05, "low": -0.08, "high": -0.02, "n": 3}
    assert stats.verdict(up, 0.05, 0.03).kind == "reproduced"
    assert stats.verdict(down, 0.05, 0.03).kind == "contradicted"
    assert stats.verdict(down, -0.05, 0.03, direction=-1).kind == "reproduced"
    assert stats.verdict(flat, 0.05, 0.03).kind == "not reproduced"
    weak = stats.verdict(flat, 0.05, 0.2)
    assert weak.kind == "inconclusive" and "could not detect an effect of the paper's size" in weak.text
    untestable = stats.verdict(up, 0.05, 0.03, preconditions=[(True, "ok"), (False, "zero-shot is at chance")])
    assert untestable.kind == "untestable here" and "zero-shot is at chance" in untestable.text
    assert stats.verdict({"mean": 0.1, "low": math.nan, "high": math.nan, "n": 1}, 0.05, math.inf).kind == \
        "inconclusive"
    assert set(stats.KINDS) >= {stats.verdict(x, 0.05, 0.03).kind for x in (up, flat, down)}


def test_interval_text():
    assert stats.interval_text({"mean": 0.123, "low": 0.081, "high": 0.179}) == "12.3 [8.1, 17.9]"
    assert stats.interval_text({"mean": 0.02, "low": -0.01, "high": 0.05}, signed=True) == "+2.0 [-1.0, 5.0]"
    assert stats.interval_text({"mean": 0.5, "low": math.nan, "high": math.nan}) == "50.0"


def test_accuracy_interval_holds_the_mean_when_every_seed_is_at_the_floor():
    out = stats.accuracy_interval([0.0, 0.0, 0.0], n_items=300)
    assert out["low"] == 0.0 <= out["mean"] == 0.0 <= out["high"] < 0.01


def test_beyond_spread_qualifies_only_a_reproduced_verdict():
    yes = stats.Verdict("reproduced", "reproduced: the 95% interval excludes zero")
    assert stats.beyond_spread(yes, 3, 3, "the band") is yes
    assert stats.beyond_spread(yes, 2, 3, "the band") is yes  # a majority of seeds beyond the spread
    for beyond, n in ((0, 3), (1, 3), (2, 4)):
        got = stats.beyond_spread(yes, beyond, n, "the band")
        assert got.kind == "inconclusive" and f"the band in {beyond} of {n} seeds" in got.text
    for kind in ("contradicted", "not reproduced", "inconclusive", "untestable here"):
        other = stats.Verdict(kind, kind)
        assert stats.beyond_spread(other, 0, 3, "the band") is other
    for beyond, n in ((4, 3), (-1, 3), (0, 0)):
        with pytest.raises(ValueError, match="beyond_spread"):
            stats.beyond_spread(yes, beyond, n, "the band")
