"""The temperature ablation's design and its summaries (paper §2.5), on synthetic result records: the budgets that
let a learnable τ reach the clip, the tidy table, the best fixed τ chosen on validation and scored elsewhere, and
the clamped-versus-unclamped comparison. The end-to-end smoke run is in test_experiments_objectives.py."""

from __future__ import annotations

import math

import numpy as np
import pytest

from repro.experiments import clip_small, temperature
from repro.experiments import temperature_summary as ts
from repro.optim import logit_scale_reach

VAL, SCORE = "emoji-subcategory/val", "emoji-subcategory/zeroshot"


@pytest.mark.parametrize("profile", ["cpu", "gpu"])
def test_budget_lets_the_learnable_logit_scale_reach_the_clip_with_margin(profile: str) -> None:
    spec, train = temperature.PROFILES[profile], temperature.PROFILES[profile]["train"]
    reach = logit_scale_reach(train["lr"], train["warmup_steps"], train["steps"])
    assert temperature.REACH_MARGIN > 1 and reach >= temperature.REACH_MARGIN * temperature.CLAMP
    assert temperature.reach(profile) == pytest.approx(reach)
    assert spec["corpus"] == clip_small.PROFILES[profile]["corpus"]  # the headline's corpus
    assert spec["select"] in spec["suites"] and spec["score"] in spec["suites"] and spec["select"] != spec["score"]
    assert spec["select"].endswith("/val") and not spec["score"].endswith("/val")


def test_the_grid_keeps_the_paper_s_neighbourhood_and_both_learnable_settings() -> None:
    assert {0.01, 0.03, 0.07, 0.1, 0.3} <= set(temperature.FIXED)
    assert temperature.SETTINGS["learnable"] == {"temperature": "learnable"}
    assert temperature.SETTINGS["learnable, unclamped"] == {"temperature": "unclamped"}
    smoke = temperature.PROFILES["smoke"]
    assert smoke["train"]["steps"] <= 20 and set((smoke["select"], smoke["score"])) <= set(smoke["suites"])


def test_reached_clip_step_is_the_first_logged_step_at_the_clip() -> None:
    assert temperature.reached_clip_step([10, 20, 30, 40], [50.0, 99.4, 99.6, 100.0]) == 30
    assert temperature.reached_clip_step([10, 20], [14.3, 21.0]) is None


def _record(seed: int, top1: dict[str, dict[str, float]], tail: dict[str, float] | None = None,
            scale: dict[str, list[float]] | None = None, diverged: tuple[str, ...] = (),
            noise: float = 0.01) -> dict:
    """A result record as `temperature.run` writes it: `top1[setting][suite]`, the level of each setting's logged
    loss (`tail`, 4.0 by default) with a little batch noise, and each learnable setting's logit-scale curve."""
    rng = np.random.default_rng(seed)
    suites = sorted({s for v in top1.values() for s in v})
    steps = list(range(10, 410, 10))
    settings, curves = {}, {}
    for name, fields in temperature.SETTINGS.items():
        if name in diverged:
            settings[name] = {"diverged": True, "config": fields, "error": "loss is nan at step 7"}
            continue
        level = (tail or {}).get(name, 4.0)
        loss = list(level + 1.0 * np.exp(-np.arange(len(steps)) / 5) + noise * rng.standard_normal(len(steps)))
        fixed = fields.get("fixed_temperature")
        scales = (scale or {}).get(name, [1 / fixed if fixed else 14.3] * len(steps))
        curves[name] = {"step": steps, "loss": loss, "logit_scale": scales, "temperature": [1 / v for v in scales]}
        settings[name] = {"diverged": False, "config": fields, "zeroshot": top1[name], "final_loss": loss[-1],
                          "final_temperature": 1 / scales[-1], "final_logit_scale": scales[-1]}
    config = {"suites": suites, "settings": temperature.SETTINGS, "train": {"batch_size": 256, "lr": 1e-3}}
    return {"seed": seed, "config": config, "metrics": {"settings": settings}, "curves": curves}


def _accuracies(val: dict[str, float], score: dict[str, float], shift: float = 0.0) -> dict[str, dict[str, float]]:
    return {name: {VAL: val.get(name, 0.1) + shift, SCORE: score.get(name, 0.05) + shift}
            for name in temperature.SETTINGS}


def test_summarize_is_tidy_and_flags_clip_divergence_and_under_fitting() -> None:
    climb = [14.3 + 3 * i for i in range(40)]  # reaches 99.5 at the 30th log point: step 300
    records = [_record(s, _accuracies({}, {}), tail={"fixed 0.3": 4.6, "fixed 0.03": 4.005},
                       scale={"learnable": [min(v, 100.0) for v in climb], "learnable, unclamped": climb},
                       diverged=("fixed 0.01",) if s == 1 else ()) for s in range(2)]
    table = ts.summarize(records)
    assert list(table.columns[:8]) == ["seed", "setting", "kind", "tau", "suite", "top1", "final_loss", "tail_loss"]
    assert {"reached_clip_step", "diverged", "under_fit"} <= set(table.columns)
    assert len(table) == 2 * len(temperature.SETTINGS) * 2
    row = table.set_index(["seed", "setting", "suite"])
    assert row.loc[(0, "fixed 0.07", VAL), "tau"] == pytest.approx(0.07)
    assert math.isnan(row.loc[(0, "learnable", VAL), "tau"])
    assert row.loc[(0, "learnable", VAL), "reached_clip_step"] == 300
    assert row.loc[(0, "learnable, unclamped", VAL), "reached_clip_step"] == 300
    assert table[table["kind"] == "fixed"]["reached_clip_step"].isna().all()  # fixed 0.01 sits at 100: not "reached"
    assert row.loc[(1, "fixed 0.01", VAL), "diverged"] and math.isnan(row.loc[(1, "fixed 0.01", VAL), "top1"])
    assert not row.loc[(0, "fixed 0.01", VAL), "diverged"]
    assert row.loc[(0, "fixed 0.3", VAL), "under_fit"] and row.loc[(1, "fixed 0.3", SCORE), "under_fit"]
    assert not table[table["setting"] != "fixed 0.3"]["under_fit"].any()  # 0.005 above the best is noise


def test_learnable_is_compared_with_the_fixed_tau_best_on_validation_on_another_suite() -> None:
    # fixed 0.03 is best on validation, fixed 0.1 on the scored suite, fixed 0.01 looks best but diverged once
    val = {"fixed 0.03": 0.30, "fixed 0.1": 0.20, "fixed 0.01": 0.40}
    score = {"fixed 0.03": 0.10, "fixed 0.1": 0.50, "learnable": 0.12}
    records = [_record(s, _accuracies(val, score, shift=0.01 * s), diverged=("fixed 0.01",) if s == 2 else ())
               for s in range(3)]
    assert ts.best_fixed(records, VAL) == "fixed 0.03"
    pairs = ts.learnable_vs_best_fixed(records, SCORE, select=VAL)
    assert list(pairs["seed"]) == [0, 1, 2] and set(pairs["best_fixed"]) == {"fixed 0.03"}
    assert pairs["tau"].iloc[0] == pytest.approx(0.03) and set(pairs["select"]) == {VAL}
    assert np.allclose(pairs["difference"], 0.02) and np.allclose(pairs["learnable"] - pairs["fixed"], 0.02)
    with pytest.raises(ValueError, match="another suite"):
        ts.learnable_vs_best_fixed(records, VAL, select=VAL)
    # the defaults for result files without `select`/`score`: the first validation and first other suite
    assert ts.default_select(records) == VAL and ts.default_score(records) == SCORE


def test_clamped_versus_unclamped_pairs_seeds_and_says_whether_the_clamp_acted() -> None:
    climb = [14.3 + 3 * i for i in range(40)]
    score = {"learnable": 0.20, "learnable, unclamped": 0.15}
    acted = _record(0, _accuracies({}, score), scale={"learnable": [min(v, 100.0) for v in climb],
                                                      "learnable, unclamped": climb})
    idle = _record(1, _accuracies({}, {"learnable": 0.2, "learnable, unclamped": 0.2}))
    idle["curves"]["learnable, unclamped"] = idle["curves"]["learnable"]  # the clamp never acted: the same run
    pairs = ts.clamped_vs_unclamped([acted, idle], SCORE)
    assert list(pairs["seed"]) == [0, 1] and np.allclose(pairs["difference"], [0.05, 0.0])
    assert list(pairs["clamp_acted"]) == [True, False] and list(pairs["identical"]) == [False, True]
    with pytest.raises(ValueError, match="not in the results"):
        ts.clamped_vs_unclamped([acted], "nope/val")


def test_tail_loss_averages_the_end_of_the_log() -> None:
    mean, se = ts.tail_loss([9.0] * 90 + [1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 2.0])
    assert mean == pytest.approx(2.0) and se == pytest.approx(np.std([1, 2, 3] * 3 + [2], ddof=1) / math.sqrt(10))
