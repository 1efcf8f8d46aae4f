"""repro.claims: every claim computes from the committed results, and the verdict rules on synthetic records."""

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pytest

from repro import claims
from repro.book import ExperimentResults, experiment_results
from repro.stats import KINDS
from repro.views import claims as claims_view

ROOT = Path(__file__).resolve().parents[1] / "results"


def test_every_claim_computes_from_the_committed_results(monkeypatch):
    monkeypatch.delenv("REPRO_PROFILE", raising=False)
    found = claims.collect(lambda name: experiment_results(name, results_root=ROOT))
    assert len(found) >= 12
    assert all(c.verdict.kind in KINDS and c.verdict.text for c in found)
    frame = claims_view.table(found)
    assert list(frame.columns) == ["claim (paper section)", "paper", "test here", "ours", "smallest detectable",
                                   "verdict"]
    fig = claims_view.figure(found)
    assert len(fig.axes) == sum(math.isfinite(c.effect.get("mean", math.nan)) for c in found)


def _clip(finals, lr, warmup, steps):
    records = [{"seed": k, "config": {"lr": lr, "warmup_steps": warmup},
                "metrics": {"train": {"steps": steps}}, "curves": {"logit_scale": [14.3, f]}}
               for k, f in enumerate(finals)]
    return ExperimentResults("clip_small", "cpu", records, ROOT)


def test_logit_scale_claim_needs_a_temperature_free_to_move():
    stuck = claims.temperature_reaches_clamp(_clip([14.4, 14.5, 14.4], 1e-3, 10, 50))
    assert stuck.verdict.kind == "untestable here" and "step bound" in stuck.verdict.text
    free = claims.temperature_reaches_clamp(_clip([30.0, 31.0, 29.0], 1e-3, 100, 10_000))
    assert free.verdict.kind == "not reproduced"
    clipped = claims.temperature_reaches_clamp(_clip([100.0, 100.0, 99.5], 1e-3, 100, 10_000))
    assert clipped.verdict.kind == "reproduced"


def test_above_chance_uses_the_paired_effect():
    up = claims.above_chance("x", "c", "p", "t", [0.20, 0.25, 0.22], chance=0.1, n_items=1000)
    assert up.verdict.kind == "reproduced" and up.effect["mean"] == pytest.approx(0.1233, abs=1e-4)
    at = claims.above_chance("x", "c", "p", "t", [0.09, 0.12, 0.10], chance=0.1, n_items=1000)
    assert at.verdict.kind == "inconclusive"


def test_zero_shot_and_retrieval_claims_read_smoke_results_too(tmp_path_factory):
    from conftest import smoke_experiment

    with smoke_experiment(tmp_path_factory, "clip_small") as run:
        clip = ExperimentResults("clip_small", "smoke", [run["record"]], run["root"] / "results")
        named, unseen = claims.zero_shot(clip)
        assert named.verdict.kind == "inconclusive" and "smoke" not in named.test  # one seed: no interval
        assert claims.retrieval(clip).effect["n"] == 1
        assert claims.temperature_reaches_clamp(clip).verdict.kind in KINDS


@pytest.mark.parametrize("above, kind", [((True, True, True), "reproduced"), ((True, True, False), "reproduced"),
                                         ((False, False, True), "inconclusive"), ((False,) * 3, "inconclusive")])
def test_effective_robustness_inside_the_trend_band_is_inconclusive(monkeypatch, above, kind):
    """The same positive effective robustness (its seeds' interval excludes zero) is "reproduced" only where it lies
    above the supervised trend's 95% band in most seeds: inside the band it is no larger than the trend's noise."""
    import pandas as pd

    from repro.experiments import robustness_summary as rs

    results = experiment_results("robustness", results_root=ROOT)
    rows = [{"seed": k, "shift": shift, "testable": True, "reason": "", "diverse": er, "diverse_above": a,
             "narrow": math.nan, "difference": math.nan}
            for shift in (rs.HELD_OUT_MEAN, rs.ICON_MEAN)
            for k, (er, a) in enumerate(zip((0.05, 0.06, 0.07), above, strict=True))]
    monkeypatch.setattr(rs, "verdicts_inputs", lambda records, level=rs.LEVEL: pd.DataFrame(rows))
    found = claims.effective_robustness(results)
    assert [c.label for c in found] == ["effective robustness, styles", "effective robustness, sets"]
    for c in found:
        assert c.effect["low"] > 0 and c.verdict.kind == kind
        assert c.extra == {"above_band": sum(above), "seeds": 3}
        if kind == "inconclusive":
            assert f"band in {sum(above)} of 3 seeds" in c.verdict.text


def _figure5(wins_per_seed, tests=5):
    """Robustness records where zero-shot beats the supervised probe on the first `wins` of `tests` test sets."""
    import copy

    base = experiment_results("robustness", results_root=ROOT).records[0]
    headline = base["config"]["headline"]
    records = []
    for k, wins in enumerate(wins_per_seed):
        r = copy.deepcopy(base)
        r["seed"] = k
        r["metrics"]["figure5"]["tests"] = {f"t{i}": {"zero_shot": 0.5, f"{headline}_probe": 0.4 if i < wins else 0.6}
                                            for i in range(tests)}
        records.append(r)
    return ExperimentResults("robustness", "cpu", records, ROOT)


@pytest.mark.parametrize("wins, kind", [((4, 5, 4), "reproduced"), ((1, 0, 1), "not reproduced"),
                                        ((1, 3, 1), "inconclusive"), ((3,), "inconclusive")])
def test_the_figure5_share_is_decided_by_its_interval_not_its_mean(wins, kind):
    claim = claims.beats_supervised_probe(_figure5(wins))
    assert claim.verdict.kind == kind
    assert claim.effect["mean"] == pytest.approx(sum(wins) / (5 * len(wins)))
    if len(wins) > 1:
        assert 0 <= claim.effect["low"] <= claim.effect["high"] <= 1  # a share's interval stays inside 0–100%
    if wins == (1, 3, 1):  # the mean (33%) is a minority, but the interval reaches past one half
        assert claim.effect["high"] > 0.5 and "spans one half" in claim.verdict.text


@pytest.mark.parametrize("zero_shot, note", [(0.10, True), (0.50, False)])
def test_mnist_verdict_says_when_zero_shot_is_at_chance(zero_shot, note):
    """Raw pixels beating a zero-shot classifier at chance: a weaker CLIP than the paper's 88%; the verdict says so."""
    import copy

    base = experiment_results("limitations", results_root=ROOT).records
    records = copy.deepcopy(base)
    for k, r in enumerate(records):
        task = r["metrics"]["tasks"]["mnist-test"]
        task["chance"], task["probe_pixels"]["top1"] = 0.1, 0.88
        task["zeroshot"]["top1"] = zero_shot + 0.01 * (k % 2)
    claim = claims.mnist_pixels(ExperimentResults("limitations", "cpu", records, ROOT))
    assert claim.verdict.kind == "reproduced"
    assert ("not above chance (10%)" in claim.verdict.text) == note
