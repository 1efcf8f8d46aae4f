"""The exact shortcuts of `repro.models` (issue 5): QuickGELU's hand-written backward, the last block evaluated only
at the pooled token (`Transformer.forward_at`) and text packed without padding (`Packing`). Each must give
the same features *and the same parameter gradients* as the plain full computation, and as OpenAI's model."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from test_models import SMALL_VIT, make_text, openai_clip
from torch import nn

from repro.losses import clip_loss
from repro.models import CLIP, QuickGELU, Transformer, build_model
from repro.models.layers import Packing, _QuickGELUFunction


def gradients(model: nn.Module, fn: Callable[[], torch.Tensor], seed: int = 1) -> tuple[torch.Tensor, dict]:
    """fn()'s output and the gradient of a fixed random projection of it w.r.t. every parameter (zeros if unused)."""
    model.zero_grad(set_to_none=True)
    out = fn()
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=out.dtype)
    (out * weights).sum().backward()
    grads = {n: torch.zeros_like(p) if p.grad is None else p.grad.clone() for n, p in model.named_parameters()}
    return out.detach(), grads


def assert_same(a: tuple[torch.Tensor, dict], b: tuple[torch.Tensor, dict], rtol: float, atol: float) -> None:
    torch.testing.assert_close(a[0], b[0], rtol=rtol, atol=atol)
    assert a[1].keys() == b[1].keys()
    for name in a[1]:
        torch.testing.assert_close(a[1][name], b[1][name], rtol=rtol, atol=atol, msg=lambda m, n=name: f"{n}: {m}")


def test_quick_gelu_function_values_and_gradient() -> None:
    x = torch.randn(64, 96, dtype=torch.float64) * 4
    plain = x * torch.sigmoid(1.702 * x)
    xg = x.clone().requires_grad_()
    y = QuickGELU()(xg)
    assert y.grad_fn is not None and "QuickGELU" in type(y.grad_fn).__name__
    assert torch.equal(y.detach(), plain)  # the forward is OpenAI's arithmetic, bit for bit
    x32 = x.float().requires_grad_()
    assert torch.equal(QuickGELU()(x32).detach(), x32.detach() * torch.sigmoid(1.702 * x32.detach()))
    assert torch.autograd.gradcheck(_QuickGELUFunction.apply, (xg[:4, :8].detach().clone().requires_grad_(),))
    xr = x.clone().requires_grad_()
    g = torch.randn_like(x)
    (xr * torch.sigmoid(1.702 * xr)).backward(g)
    y.backward(g)
    torch.testing.assert_close(xg.grad, xr.grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("causal", [False, True], ids=["bidirectional", "causal"])
def test_transformer_forward_at_equals_full(causal: bool) -> None:
    torch.manual_seed(0)
    model = Transformer(128, 3, heads=2, causal=causal).double()
    x = torch.randn(5, 11, 128, dtype=torch.float64)
    rows = torch.arange(5)
    for index in (0, 10, torch.tensor([0, 3, 10, 7, 7])):
        full = gradients(model, lambda i=index: model(x)[rows, i])
        pooled = gradients(model, lambda i=index: model.forward_at(x, i))
        assert_same(pooled, full, rtol=1e-5, atol=1e-7)  # fp32-level: LayerNorm runs in fp32 for any input
    empty = Transformer(128, 0, heads=2, causal=causal)
    assert torch.equal(empty.forward_at(x, 3), x[:, 3])


def test_packed_transformer_equals_padded() -> None:
    """Causal blocks on packed rows give the padded computation's values at every kept position, and its gradients."""
    torch.manual_seed(0)
    model = Transformer(128, 3, heads=2, causal=True).double()
    lengths = torch.tensor([1, 11, 4, 7, 2])
    x = torch.randn(5, 11, 128, dtype=torch.float64)
    packing = Packing(lengths, 11)
    kept = torch.arange(11) < lengths[:, None]
    assert torch.equal(packing.pack(x), x[kept]) and torch.equal(packing.unpack(x[kept])[kept], x[kept])
    assert not packing.unpack(x[kept])[~kept].any()
    padded = gradients(model, lambda: model(x)[kept])
    packed = gradients(model, lambda: model(packing.pack(x), packing=packing))
    assert_same(packed, padded, rtol=1e-5, atol=1e-6)  # fp32-level: LayerNorm runs in fp32, sums in another order
    padded = gradients(model, lambda: model.forward_at(x, lengths - 1))
    packed = gradients(model, lambda: model.forward_at(packing.pack(x), packing.last, packing=packing))
    assert_same(packed, padded, rtol=1e-5, atol=1e-6)


def test_packing_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="lengths in"):
        Packing(torch.tensor([3, 0]), 4)
    with pytest.raises(ValueError, match="lengths in"):
        Packing(torch.tensor([5]), 4)
    with pytest.raises(ValueError, match="non-empty"):
        Packing(torch.tensor([], dtype=torch.long), 4)
    bidirectional = Transformer(64, 1, heads=1)
    packing = Packing(torch.tensor([2, 3]), 3)
    with pytest.raises(ValueError, match="causal"):
        bidirectional(torch.randn(5, 64), packing=packing)
    with pytest.raises(ValueError, match="causal"):
        bidirectional.forward_at(torch.randn(5, 64), packing.last, packing=packing)


def test_image_tower_pooled_equals_full() -> None:
    torch.manual_seed(0)
    model = CLIP(SMALL_VIT).double()
    image = torch.randn(3, 3, 32, 32, dtype=torch.float64)
    visual = model.visual
    full = gradients(model, lambda: visual.encode_tokens(image)[:, 0] @ visual.proj)
    pooled = gradients(model, lambda: model.encode_image(image))
    assert_same(pooled, full, rtol=1e-5, atol=1e-7)


def test_text_tower_packed_pooled_equals_full() -> None:
    torch.manual_seed(0)
    model = CLIP(SMALL_VIT).double()
    end = torch.tensor([9, 2, 5, 1, 7, 0, 3])  # the batch's last end token at 9 of a 16-token context
    text = torch.randint(1, SMALL_VIT.vocab_size - 2, (7, SMALL_VIT.context_length))
    text[torch.arange(SMALL_VIT.context_length) > end[:, None]] = 0
    text[torch.arange(7), end] = SMALL_VIT.vocab_size - 1
    rows = torch.arange(7)
    full = gradients(model, lambda: model.encode_tokens(text)[rows, end] @ model.text_projection)
    pooled = gradients(model, lambda: model.encode_text(text))
    trimmed = gradients(model, lambda: model.encode_text(text[:, :10]))
    assert_same(pooled, full, rtol=1e-5, atol=1e-6)  # fp32-level (LayerNorm runs in fp32, sums in another order)
    assert_same(trimmed, pooled, rtol=0, atol=0)  # trimming and packing happen inside encode_text
    assert model.encode_text(text[:0]).shape == (0, SMALL_VIT.embed_dim)


def test_gradients_equal_openai_reference(openai_model) -> None:
    """OpenAI's own model and ours, same weights, same batch: the CLIP loss and every parameter's gradient agree."""
    torch.manual_seed(0)
    reference = openai_clip(openai_model, SMALL_VIT).train()  # fp32: OpenAI's LayerNorm cannot run in float64
    ours = build_model(reference.state_dict()).train()
    image = torch.randn(4, 3, 32, 32)
    text = make_text(4, SMALL_VIT)

    def loss(model: nn.Module) -> Callable[[], torch.Tensor]:
        return lambda: clip_loss(model.encode_image(image), model.encode_text(text), model.logit_scale.exp())

    assert_same(gradients(ours, loss(ours)), gradients(reference, loss(reference)), rtol=1e-4, atol=1e-5)


def test_encode_text_rejects_ids_outside_the_vocabulary() -> None:
    """Ids of another tokenizer (e.g. OpenAI's 49,408 for a 300-id model) are a ValueError that says so."""
    model = CLIP(SMALL_VIT).eval()
    good = make_text(2, SMALL_VIT)
    model.encode_text(good)
    for bad_id in (SMALL_VIT.vocab_size, 49407, -1):
        bad = good.clone()
        bad[0, 1] = bad_id
        with pytest.raises(ValueError, match=rf"token id {bad_id} is outside this model's vocabulary of "
                                             rf"{SMALL_VIT.vocab_size} ids.*model.tokenizer\(texts\)"):
            model.encode_text(bad)
