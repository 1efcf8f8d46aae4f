"""repro.views.training: the training chapter's recipe table, curves and temperature numbers, over the committed
clip_small result records."""

import copy
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from conftest import committed_results

from repro.optim import adam_settings, logit_scale_reach, lr_sum
from repro.views import training as view

ROOT = Path(__file__).resolve().parents[1] / "results"


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return committed_results("clip_small")


def test_the_seeds_share_one_recipe_and_a_different_one_is_refused(records) -> None:
    config = view.train_config(records)
    assert (config.lr, config.batch_size, config.warmup_steps) == tuple(records[0]["config"][k] for k in
                                                                         ("lr", "batch_size", "warmup_steps"))
    changed = copy.deepcopy(records)
    changed[-1]["config"]["lr"] *= 2
    if len(changed) > 1:
        with pytest.raises(ValueError, match="different configurations"):
            view.train_config(changed)


def test_seeds_may_reach_one_precision_by_auto_or_by_setting_it_but_not_train_in_two(records) -> None:
    mixed = [copy.deepcopy(records[0]) for _ in range(2)]
    mixed[0]["config"]["precision"], mixed[1]["config"]["precision"] = "auto", "fp32"
    mixed[1]["seed"] = mixed[0]["seed"] + 1
    for r in mixed:
        r["metrics"]["train"]["final"]["precision"] = "fp32"
    view.train_config(mixed)  # one precision, reached two ways: accepted
    assert view.precision_choice(mixed) == (f' (chosen by precision="auto" for seeds {mixed[0]["seed"]}; set for '
                                            f'seeds {mixed[1]["seed"]})')
    assert view.precision_choice(mixed[:1]) == ' (chosen by precision="auto")'
    mixed[1]["metrics"]["train"]["final"]["precision"] = "bf16"
    with pytest.raises(ValueError, match="different precisions"):
        view.train_config(mixed)


def test_run_facts_read_the_result_files(records) -> None:
    run = view.run_facts(records)
    assert run["steps"] == records[0]["metrics"]["train"]["steps"]
    assert run["chance"] == pytest.approx(math.log(records[0]["config"]["batch_size"]))
    assert run["img_s"]["mean"] == pytest.approx(np.mean([r["metrics"]["train"]["img_s"] for r in records]))


def test_decay_exempts_the_temperature_gains_and_biases(records) -> None:
    groups = view.decay_groups(view.train_config(records))
    assert "model.logit_scale" in groups["exempt"] and "model.logit_scale" not in groups["decayed"]
    assert all(n.endswith("weight") or "proj" in n or "embedding" in n for n in groups["decayed"])
    assert groups["init_scale"] == pytest.approx(1 / 0.07, rel=1e-5) and groups["clamp"] == 100.0


def test_recipe_table_puts_the_paper_beside_the_runs(records, tmp_path) -> None:
    frame = view.recipe_table(records, ROOT)
    assert list(frame.columns) == ["hyperparameter", "paper", "paper ref.", "ours (clip_small)"]
    betas, eps = adam_settings(view.train_config(records))
    rows = frame.set_index("hyperparameter")["ours (clip_small)"]
    assert rows["Adam β1, β2"].startswith(f"{betas[0]}, {betas[1]}") and rows["Adam ε"] == f"{eps:g}"
    assert rows["batch size"] == f"{records[0]['config']['batch_size']:,}"
    assert "≥" in view.training_data(records, tmp_path)  # no committed manifest: what one epoch covers


def test_no_checkpoint_at_hand_is_none(records, tmp_path) -> None:
    elsewhere = copy.deepcopy(records)
    for r in elsewhere:
        r["config"]["out_dir"] = str(tmp_path / "absent")
    assert view.checkpoint_checked(elsewhere, tmp_path) is None


def test_loss_facts_give_an_accuracy_interval_inside_zero_and_one(records) -> None:
    loss = view.loss_facts(records)
    acc = loss["final_accuracy"]
    assert acc["mean"] == pytest.approx(np.mean([r["metrics"]["train"]["final"]["accuracy"] for r in records]))
    assert 0 <= acc["low"] <= acc["mean"] <= acc["high"] <= 1 or len(records) == 1
    assert loss["first_loss"] == pytest.approx(np.mean([r["curves"]["loss"][0] for r in records]))


def test_temperature_facts_follow_lr_sum_and_logit_scale_reach(records) -> None:
    t, config = view.temperature_facts(records), view.train_config(records)
    steps = records[0]["metrics"]["train"]["steps"]
    assert t["budget"] == pytest.approx(lr_sum(config.lr, config.warmup_steps, steps))
    assert t["reach"] == pytest.approx(logit_scale_reach(config.lr, config.warmup_steps, steps, t["init"]))
    assert t["needed"] == pytest.approx(math.log(100 * 0.07), rel=1e-5)
    finals = [r["metrics"]["train"]["final"]["logit_scale"] for r in records]
    assert t["final"]["mean"] == pytest.approx(np.mean(finals)) and t["rose"] == (np.mean(finals) >= t["init"])


def test_figures_draw_one_curve_per_seed(records) -> None:
    n = len(records)
    fig = view.loss_figure(records)
    assert len(fig.axes) == 1 and len(fig.axes[0].lines) == n + 1  # the seeds and the chance level
    fig = view.lr_figure(records)
    assert "lr_lambda × peak lr" in [line.get_label() for line in fig.axes[0].lines]
    fig = view.logit_scale_figure(records)
    assert len(fig.axes) == 2 and fig.axes[0].get_yscale() == "log"
    fig = view.throughput_figure(records)
    assert len(fig.axes[0].lines) == n
    plt.close("all")


def test_speed_table_has_a_row_per_seed(records) -> None:
    frame = view.speed_table(records)
    assert list(frame["seed"]) == [r["seed"] for r in records]
    assert list(frame.columns) == ["seed", "steps", "pictures / s", "training (min)", "training + evaluation (min)"]
