"""repro.claims: every claim computes from the committed results, and the verdict rules on synthetic records."""

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pytest

from repro import claims
from repro.book import ExperimentResults, experiment_results
from repro.stats import KINDS

ROOT = Path(__file__).resolve().parents[1] / "results"


def test_every_claim_computes_from_the_committed_results(monkeypatch):
    monkeypatch.delenv("REPRO_PROFILE", raising=False)
    found = claims.collect(lambda name: experiment_results(name, results_root=ROOT))
    assert len(found) >= 12
    assert all(c.verdict.kind in KINDS and c.verdict.text for c in found)
    frame = claims.table(found)
    assert list(frame.columns) == ["claim (paper section)", "paper", "test here", "ours", "smallest detectable",
                                   "verdict"]
    fig = claims.figure(found)
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
