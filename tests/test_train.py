"""The training loop: runs end to end on the smoke corpus, resumes to the identical loss curve, keeps the last good
checkpoint, stops on divergence with a clear message, and gives the same curve on 2 gloo ranks as on 1 process."""

from __future__ import annotations

import json
import math
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from conftest import TINY, build_smoke, tiny_config

import repro
from repro.train import TrainConfig, TrainingDiverged, load_state, lr_lambda, param_groups, read_log, train


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    return build_smoke(tmp_path_factory.mktemp("data"))


def config(corpus: str, out, **kw) -> TrainConfig:
    return tiny_config(corpus, out, **kw)


def test_trains_end_to_end_and_saves_a_loadable_model(corpus, tmp_path) -> None:
    summary = train(config(corpus, tmp_path / "run"))
    rows = read_log(summary["log"])
    assert [r["step"] for r in rows] == list(range(1, 9))
    assert all(math.isfinite(r["loss"]) and r["logit_scale"] <= 100 for r in rows)
    assert rows[0]["lr"] < rows[1]["lr"]  # warmup
    model, preprocess = repro.load(tmp_path / "run" / "model.safetensors")
    assert model.tokenizer is not None and preprocess.n_px == 32
    text = model.tokenizer(["a red circle"], context_length=16)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32), text)[0].shape == (1, 1)


def test_resume_gives_the_identical_loss_curve(corpus, tmp_path) -> None:
    full = read_log(train(config(corpus, tmp_path / "a"))["log"])
    train(config(corpus, tmp_path / "b"), stop_after=5)  # interrupted after step 5; last checkpoint at step 4
    resumed = read_log(train(config(corpus, tmp_path / "b"), resume=True)["log"])
    assert [r["step"] for r in resumed] == [r["step"] for r in full]
    for a, b in zip(full, resumed, strict=True):
        assert a["loss"] == b["loss"] and a["lr"] == b["lr"] and a["logit_scale"] == b["logit_scale"]


def test_a_crash_while_checkpointing_keeps_the_previous_checkpoint(corpus, tmp_path, monkeypatch) -> None:
    import repro.checkpoint as ck

    real = ck.save_file
    calls = {"n": 0}

    def flaky(tensors, path, metadata=None):
        calls["n"] += 1
        if calls["n"] == 2:
            real(dict(list(tensors.items())[:3]), path, metadata=metadata)  # a partial file, then the "kill"
            raise KeyboardInterrupt
        real(tensors, path, metadata=metadata)

    monkeypatch.setattr(ck, "save_file", flaky)
    with pytest.raises(KeyboardInterrupt):
        train(config(corpus, tmp_path / "c"))
    _, meta = load_state(tmp_path / "c" / "checkpoint.safetensors")
    assert meta["step"] == 4
    assert sorted(p.name for p in (tmp_path / "c").iterdir() if p.name.startswith(".")) == []


def test_divergence_stops_with_a_clear_message(corpus, tmp_path) -> None:
    with pytest.raises(TrainingDiverged, match=r"loss is (nan|inf) at step \d+"):
        train(config(corpus, tmp_path / "d", lr=1e12, warmup_steps=1, steps=30, temperature="unclamped"))


def test_bad_config() -> None:
    with pytest.raises(ValueError, match=r"unknown training config keys: \['lr_max'\]"):
        TrainConfig.from_dict({"lr_max": 1})
    with pytest.raises(ValueError, match="unknown model preset 'ViT-Z'"):
        TrainConfig(model="ViT-Z").clip_config()


def test_weight_decay_spares_gains_biases_and_temperature() -> None:
    from repro.models import CLIP, CLIPConfig

    model = CLIP(CLIPConfig(**{"image_resolution": 32, **TINY}))
    decay, no_decay = param_groups(model, 0.2)
    names = {id(p): n for n, p in model.named_parameters()}
    no = {names[id(p)] for p in no_decay["params"]}
    yes = {names[id(p)] for p in decay["params"]}
    assert "logit_scale" in no and "ln_final.weight" in no and "visual.transformer.resblocks.0.attn.in_proj_bias" in no
    assert "visual.conv1.weight" in yes and "text_projection" in yes and not yes & no


def test_schedule_warms_up_then_decays_to_zero() -> None:
    f = lr_lambda(10, 100)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0) and f(10) == pytest.approx(1.0)
    assert f(55) == pytest.approx(0.5) and f(100) == pytest.approx(0.0, abs=1e-12)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, world: int, port: int, cfg: dict) -> None:
    os.environ.update(WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    try:
        train(TrainConfig(**cfg))
    finally:
        torch.distributed.destroy_process_group()


def test_two_gloo_ranks_follow_the_single_process_curve(corpus, tmp_path) -> None:
    # one precision for both: `auto` would measure anew for each batch shape (per rank: 16 rows, then 8)
    single = read_log(train(config(corpus, tmp_path / "one", steps=6, precision="fp32"))["log"])
    cfg = json.loads(json.dumps(config(corpus, tmp_path / "two", steps=6, precision="fp32").__dict__))
    mp.spawn(_rank, args=(2, _free_port(), cfg), nprocs=2, join=True)
    double = read_log(tmp_path / "two" / "metrics.jsonl")
    assert [r["step"] for r in double] == [r["step"] for r in single]
    for a, b in zip(single, double, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("objective", ["bow-contrastive", "bow-predict", "caption-lm", "supervised"])
def test_every_objective_trains(corpus, tmp_path, objective) -> None:
    """The Figure-2 objectives and the supervised baseline run through the same loop."""
    kw = {"label": "category", "baseline_width": 4} if objective == "supervised" else {}
    summary = train(config(corpus, tmp_path / objective, objective=objective, steps=3, **kw))
    rows = read_log(summary["log"])
    assert len(rows) == 3 and all(math.isfinite(r["loss"]) for r in rows)


def test_logit_scale_reach_is_the_sum_of_the_schedule() -> None:
    from repro.train import logit_scale_reach, lr_lambda

    f = lr_lambda(10, 100)
    assert logit_scale_reach(1e-3, 10, 100) == pytest.approx(math.exp(1e-3 * sum(f(t) for t in range(100))) / 0.07)
    assert logit_scale_reach(1e-3, 50, 274) < 20  # a few hundred steps cannot move the scale far from 1/0.07
    assert logit_scale_reach(1e-3, 100, 5000) > 100  # thousands can reach the clamp


def test_the_logit_scale_never_outruns_adams_bound(corpus, tmp_path) -> None:
    from repro.train import logit_scale_reach

    cfg = config(corpus, tmp_path / "run")
    rows = read_log(train(cfg)["log"])
    bound = logit_scale_reach(cfg.lr, cfg.warmup_steps, cfg.steps)
    assert max(r["logit_scale"] for r in rows) <= bound * 1.01


def test_an_interrupted_run_reports_the_same_training_flops(corpus, tmp_path) -> None:
    whole = train(config(corpus, tmp_path / "a"))["flops"]
    train(config(corpus, tmp_path / "b"), stop_after=5)
    resumed = train(config(corpus, tmp_path / "b"), resume=True)["flops"]
    assert resumed == whole and whole["total"] > 0


def test_descend_refuses_a_non_finite_loss_and_steps_otherwise():
    import torch

    from repro.optim import descend

    w = torch.nn.Parameter(torch.tensor([1.0]))
    opt = torch.optim.SGD([w], lr=0.5)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    with pytest.raises(RuntimeError, match="probe, step 3: the loss is nan"):
        descend(opt, sched, (w * float("nan")).sum(), "probe, step 3")
    descend(opt, sched, (w ** 2).sum(), "probe, step 4")  # d/dw w² = 2: w ← 1 − 0.5 · 2
    assert w.item() == pytest.approx(0.0)
