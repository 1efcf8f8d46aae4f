"""Training precision: the explicit attention that bf16 uses on a CPU equals SDPA; bf16 training follows the fp32
loss curve within bf16 noise with the loss itself in fp32; `precision="auto"` picks the fastest candidate from its
measurement and never changes what the chosen precision trains (weights equal an explicit run's, bit for bit), and a
resumed run keeps the precision it chose. Nothing here times anything: timings are injected."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from conftest import build_smoke, tiny_config

import repro.train as train_module
from repro.losses import clip_loss
from repro.models import layers
from repro.models.layers import attention, fused_math_attention, math_attention
from repro.precision import choose_precision, resolve_precision
from repro.train import load_state, read_log, train
from repro.train_config import TrainConfig


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    return build_smoke(tmp_path_factory.mktemp("data"))


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch) -> None:
    """Each test gets an empty choice cache of its own."""
    monkeypatch.setattr(train_module, "precision_cache", lambda: tmp_path / "precision.json")


def qkv(b: int, h: int, n: int, s: int, d: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(b, h, m, d, generator=g, requires_grad=True) for m in (n, s, s))


def grads(out: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return torch.autograd.grad(out, inputs, torch.ones_like(out).mul_(0.1).cos_())


CASES = ["plain", "causal", "causal-rectangular", "key-mask", "full-mask", "one-query"]


def case_inputs(case: str, dtype: torch.dtype = torch.float32) -> tuple[tuple[torch.Tensor, ...], dict]:
    """q, k, v (leaves that require grad) and the mask arguments of each way the model calls attention."""
    n, s = (5, 9) if case == "causal-rectangular" else (1, 9) if case == "one-query" else (9, 9)
    q, k, v = (t.detach().to(dtype).requires_grad_() for t in qkv(3, 2, n, s, 16))
    kw: dict = {"is_causal": case.startswith("causal")}
    if case == "key-mask":  # Packing.key_mask(): [batch, 1, 1, keys], at least one key per row
        kw["attn_mask"] = torch.arange(s) < torch.tensor([3, 9, 1]).view(3, 1, 1, 1)
    elif case == "full-mask":
        mask = torch.rand(3, 1, n, s, generator=torch.Generator().manual_seed(1)) < 0.6
        mask[..., 0] = True
        kw["attn_mask"] = mask
    elif case == "one-query":  # forward_at with a causal index per row
        kw["attn_mask"] = torch.arange(s) <= torch.tensor([0, 4, 8]).view(3, 1, 1, 1)
    return (q, k, v), kw


@pytest.mark.parametrize("fn", [math_attention, fused_math_attention], ids=["plain", "fused"])
@pytest.mark.parametrize("case", CASES)
def test_math_attention_equals_sdpa_in_fp32(case: str, fn) -> None:
    """Values and gradients of q, k, v agree with SDPA to ~1e-6 for every way the model calls attention."""
    (q, k, v), kw = case_inputs(case)
    ours, ref = fn(q, k, v, **kw), F.scaled_dot_product_attention(q, k, v, **kw)
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
    for a, b in zip(grads(ours, (q, k, v)), grads(ref, (q, k, v)), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", CASES)
def test_fused_math_attention_in_bf16(case: str) -> None:
    """The same bf16 forward as the plain form, bit for bit; gradients within bf16 rounding of the plain form's and
    of fp32 SDPA's on the same (bf16) inputs."""
    (q, k, v), kw = case_inputs(case, torch.bfloat16)
    fused, plain = fused_math_attention(q, k, v, **kw), math_attention(q, k, v, **kw)
    assert fused.dtype == torch.bfloat16 and torch.equal(fused, plain)
    (q32, k32, v32) = (t.detach().float().requires_grad_() for t in (q, k, v))
    ref = F.scaled_dot_product_attention(q32, k32, v32, **kw)
    for a, b, c in zip(grads(fused, (q, k, v)), grads(plain, (q, k, v)), grads(ref, (q32, k32, v32)), strict=True):
        assert a.dtype == torch.bfloat16
        torch.testing.assert_close(a.float(), b.float(), rtol=2e-2, atol=2e-2)
        torch.testing.assert_close(a.float(), c, rtol=2e-2, atol=2e-2)


def test_attention_keeps_sdpa_in_fp32_and_uses_math_attention_in_bf16_on_cpu() -> None:
    q, k, v = (t.detach() for t in qkv(2, 2, 7, 7, 16))
    assert torch.equal(attention(q, k, v, is_causal=True), F.scaled_dot_product_attention(q, k, v, is_causal=True))
    qb, kb, vb = q.bfloat16(), k.bfloat16(), v.bfloat16()
    out = attention(qb, kb, vb, is_causal=True)
    assert out.dtype == torch.bfloat16 and torch.equal(out, math_attention(qb, kb, vb, is_causal=True))
    # bf16 rounding of the inputs and the probabilities: ~1e-2 of values of size ~1
    torch.testing.assert_close(out.float(), F.scaled_dot_product_attention(q, k, v, is_causal=True), atol=3e-2,
                               rtol=3e-2)


def test_the_model_uses_math_attention_under_bf16_autocast(monkeypatch) -> None:
    from conftest import TINY

    from repro.models import CLIP, PRESETS, CLIPConfig

    calls = []
    real = layers.BF16_CPU_ATTENTION
    assert real is fused_math_attention
    monkeypatch.setattr(layers, "BF16_CPU_ATTENTION", lambda *a, **kw: calls.append(kw) or real(*a, **kw))
    model = CLIP(CLIPConfig.from_dict(PRESETS["ViT-T/4@32px"].to_dict() | TINY | {"transformer_layers": 2}))
    text = torch.tensor([[598, 5, 6, 599, 0], [598, 7, 599, 0, 0]])
    model.encode_image(torch.randn(2, 3, 32, 32)), model.encode_text(text)
    assert calls == []  # fp32: SDPA
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model.encode_image(torch.randn(2, 3, 32, 32)), model.encode_text(text)
    assert calls  # the image tower (forward and forward_at) and the packed text tower
    assert any(kw.get("is_causal") for kw in calls) and any(kw.get("attn_mask") is not None for kw in calls)


def test_the_clip_loss_is_computed_in_fp32_under_bf16_autocast() -> None:
    g = torch.Generator().manual_seed(0)
    image, text = torch.randn(8, 16, generator=g).bfloat16(), torch.randn(8, 16, generator=g).bfloat16()
    scale = torch.tensor(100.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = clip_loss(image, text, scale)
    assert loss.dtype == torch.float32
    assert torch.equal(loss, clip_loss(image.float(), text.float(), scale))


def test_bf16_training_follows_the_fp32_loss_curve(corpus, tmp_path) -> None:
    """20 steps of the tiny model, same seed and data. Tolerance: every step's loss within 2% of fp32's and the
    mean |difference| under 0.01 (bf16 keeps 8 significant bits, 0.4%; measured here: at most 0.011 at a loss of
    3.4 during warmup, mean 0.0014)."""
    curves = {}
    for precision in ("fp32", "bf16"):
        summary = train(tiny_config(corpus, tmp_path / precision, precision=precision, steps=20))
        rows = read_log(summary["log"])
        assert summary["precision"] == precision and {r["precision"] for r in rows} == {precision}
        curves[precision] = [r["loss"] for r in rows]
    diffs = [abs(a - b) for a, b in zip(curves["fp32"], curves["bf16"], strict=True)]
    assert len(diffs) == 20
    assert all(d <= 0.02 * a for d, a in zip(diffs, curves["fp32"], strict=True)), diffs
    assert sum(diffs) / len(diffs) < 0.01, diffs
    assert max(diffs) > 0  # bf16 really ran


@pytest.mark.parametrize(("seconds", "chosen"), [
    ({"fp32": 1.0, "bf16": 0.4}, "bf16"),
    ({"fp32": 0.4, "bf16": 1.0}, "fp32"),
    ({"fp32": 1.0, "bf16": 0.95}, "fp32"),  # within the margin: the exact one
    ({"fp32": 1.0, "bf16": 0.89}, "bf16"),
    ({"fp32": 1.0, "bf16": 0.5, "other": 0.3}, "other"),
    ({"bf16": 2.0}, "bf16"),
])
def test_choose_precision_picks_the_fastest(seconds: dict, chosen: str) -> None:
    assert choose_precision(seconds) == chosen


def test_choose_precision_without_margin_is_the_plain_minimum() -> None:
    assert choose_precision({"fp32": 1.0, "bf16": 0.99}, margin=1.0) == "bf16"
    with pytest.raises(ValueError):
        choose_precision({})


def test_resolve_precision_measures_once_per_key_and_never_for_explicit_or_resumed(tmp_path) -> None:
    cpu, cache, calls = torch.device("cpu"), tmp_path / "choices.json", []

    def measure() -> dict[str, list[float]]:
        calls.append(1)
        return {"fp32": [0.3, 0.2, 0.25], "bf16": [0.1, 0.5, 0.12]}

    auto = TrainConfig(precision="auto")
    first = resolve_precision(auto, cpu, None, measure, key="a", cache=cache)
    assert first["used"] == "bf16" and first["how"] == "measured" and calls == [1]
    assert first["seconds_per_step"] == {"fp32": 0.25, "bf16": 0.12}  # medians
    again = resolve_precision(auto, cpu, None, measure, key="a", cache=cache)
    assert again["used"] == "bf16" and again["how"] == "cached" and calls == [1]
    assert json.loads(cache.read_text())["a"]["used"] == "bf16"
    resolve_precision(auto, cpu, None, measure, key="b", cache=cache)
    assert calls == [1, 1] and set(json.loads(cache.read_text())) == {"a", "b"}

    def never() -> dict:
        raise AssertionError("must not measure")

    assert resolve_precision(TrainConfig(precision="fp32"), cpu, None, never, key="c", cache=cache)["used"] == "fp32"
    resumed = resolve_precision(auto, cpu, {"precision": {"requested": "auto", "used": "fp32", "how": "measured"}},
                                never, key="a", cache=cache)
    assert resumed["used"] == "fp32" and resumed["how"] == "resumed"


def inject(monkeypatch, seconds: dict[str, float]) -> list[str]:
    """Run the real measurement steps (on the copy) but report `seconds` for each candidate; returns the order in
    which candidates were measured."""
    real, seen = train_module.measure_precisions, []

    def fake(*args, **kw) -> dict[str, list[float]]:
        samples = real(*args, **kw)
        seen.extend(samples)
        return {p: [seconds[p]] * len(t) for p, t in samples.items()}

    monkeypatch.setattr(train_module, "measure_precisions", fake)
    return seen


@pytest.mark.parametrize("fastest", ["fp32", "bf16"])
def test_auto_trains_exactly_what_the_chosen_precision_trains(corpus, tmp_path, monkeypatch, fastest) -> None:
    """The measurement runs on a copy with a throw-away optimiser and restores the RNG: weights, curve and
    checkpointed RNG state of the auto run equal an explicit run's of the precision it chose."""
    seen = inject(monkeypatch, {"fp32": 1.0, "bf16": 0.3} if fastest == "bf16" else {"fp32": 0.3, "bf16": 1.0})
    auto = train(tiny_config(corpus, tmp_path / "auto", steps=3, checkpoint_every=3))
    assert seen == ["fp32", "bf16"]
    assert auto["precision"] == fastest and auto["precision_choice"]["how"] == "measured"
    assert auto["precision_choice"]["seconds_per_step"][fastest] == 0.3
    explicit = train(tiny_config(corpus, tmp_path / "explicit", steps=3, checkpoint_every=3, precision=fastest))
    wa, wb = auto["objective"].state_dict(), explicit["objective"].state_dict()
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert [r["loss"] for r in read_log(auto["log"])] == [r["loss"] for r in read_log(explicit["log"])]
    ta, ma = load_state(tmp_path / "auto" / "checkpoint.safetensors")
    tb, _ = load_state(tmp_path / "explicit" / "checkpoint.safetensors")
    assert torch.equal(ta["rng.cpu"], tb["rng.cpu"])
    assert ma["precision"]["used"] == fastest and ma["train_config"]["precision"] == "auto"


def test_a_resumed_auto_run_keeps_its_precision(corpus, tmp_path, monkeypatch) -> None:
    """Interrupted after bf16 was chosen, resumed where fp32 would now measure faster (and with an empty cache):
    the run continues in bf16, on the curve of an uninterrupted bf16 run."""
    inject(monkeypatch, {"fp32": 1.0, "bf16": 0.3})
    train(tiny_config(corpus, tmp_path / "run"), stop_after=5)  # checkpoint at step 4
    (tmp_path / "precision.json").unlink()
    seen = inject(monkeypatch, {"fp32": 0.3, "bf16": 1.0})
    resumed = train(tiny_config(corpus, tmp_path / "run"), resume=True)
    assert seen == [] and resumed["precision"] == "bf16" and resumed["precision_choice"]["how"] == "resumed"
    full = train(tiny_config(corpus, tmp_path / "full", precision="bf16"))
    assert [r["loss"] for r in read_log(resumed["log"])] == [r["loss"] for r in read_log(full["log"])]
    assert {r["precision"] for r in read_log(resumed["log"])} == {"bf16"}


def test_auto_is_the_default_and_a_bad_precision_is_refused() -> None:
    assert TrainConfig().precision == "auto"
    with pytest.raises(ValueError, match="precision must be one of"):
        TrainConfig(precision="fp16")
