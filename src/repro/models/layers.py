"""Building blocks shared by CLIP's text and image Transformers (paper §2.4; OpenAI's `clip/model.py`).

Parameter names follow OpenAI's released checkpoints exactly (`attn.in_proj_weight`, `mlp.c_fc`, `ln_1`, ...), so a
state dict from `openai/CLIP` loads into these modules without renaming. Attention is computed with
`torch.nn.functional.scaled_dot_product_attention` on batch-first tensors instead of `nn.MultiheadAttention`, except in
bf16 on a CPU, where `math_attention` trains faster.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import FunctionCtx, once_differentiable


class LayerNorm(nn.LayerNorm):
    """LayerNorm computed in fp32 whatever the input dtype (OpenAI's fp16 checkpoints rely on this).

    Not torch's mixed-dtype kernel (bf16 input, fp32 weights) on a CPU, although its forward is one pass instead of
    three: in torch 2.13 its weight and bias gradients are 5% off (accumulated in bf16, it seems)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = None if self.weight is None else self.weight.float()
        bias = None if self.bias is None else self.bias.float()
        out = F.layer_norm(x.float(), self.normalized_shape, weight, bias, self.eps)
        return out.to(x.dtype)


class _QuickGELUFunction(torch.autograd.Function):
    """x · σ(1.702 x) with a hand-written backward: autograd's own graph of `x * sigmoid(1.702 * x)` keeps x and σ
    and runs five elementwise passes backward (two products, sigmoid_backward, the 1.702 product, a sum); this keeps
    z = 1.702 x alone and runs one: d/dx [x σ(1.702 x)] = σ(z) + z σ(z)(1 − σ(z)) = silu'(z), `aten.silu_backward`.
    The forward is the same arithmetic as OpenAI's, bit for bit."""

    @staticmethod
    def forward(ctx: FunctionCtx, x: torch.Tensor) -> torch.Tensor:
        z = x * 1.702
        ctx.save_for_backward(z)
        return torch.sigmoid(z).mul_(x)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad: torch.Tensor) -> torch.Tensor:
        (z,) = ctx.saved_tensors
        return torch.ops.aten.silu_backward(grad, z)


class QuickGELU(nn.Module):
    """The GELU approximation CLIP was trained with: x · σ(1.702 x) (paper §2.4 / OpenAI's `clip/model.py`).

    When a gradient is needed it runs as `_QuickGELUFunction` (same values, one elementwise pass backward)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return _QuickGELUFunction.apply(x)
        return x * torch.sigmoid(1.702 * x)


class Packing:
    """Rows of different lengths packed into one [tokens, width] matrix, padding removed: row i keeps its first
    `lengths[i]` positions of `length`. Per-token layers (LayerNorm, projections, MLP) then run on real tokens only;
    causal attention unpacks to [batch, length, ·] with zeros at the padding, which no kept position can attend to,
    so the kept positions get exactly the values a padded batch would give them."""

    def __init__(self, lengths: torch.Tensor, length: int) -> None:
        if lengths.ndim != 1 or not len(lengths) or int(lengths.min()) < 1 or int(lengths.max()) > length:
            raise ValueError(f"Packing needs a non-empty 1-d tensor of lengths in [1, {length}], got {lengths}")
        self.batch, self.length = len(lengths), length
        self.kept = torch.arange(length, device=lengths.device) < lengths.view(-1, 1)  # [batch, length]
        self.index = self.kept.flatten().nonzero().squeeze(1)  # kept tokens' places in the flattened grid
        self.last = lengths.cumsum(0) - 1  # each row's last kept token, in packed order

    def pack(self, x: torch.Tensor) -> torch.Tensor:
        """[batch, length, c] → [tokens, c]."""
        return x.reshape(self.batch * self.length, -1).index_select(0, self.index)

    def unpack(self, x: torch.Tensor) -> torch.Tensor:
        """[tokens, c] → [batch, length, c], zeros at the padding."""
        grid = x.new_zeros(self.batch * self.length, x.shape[-1])
        return grid.index_copy(0, self.index, x).view(self.batch, self.length, -1)

    def key_mask(self) -> torch.Tensor:
        """[batch, 1, 1, length]: True at each row's kept positions (the keys its last token may attend to)."""
        return self.kept.view(self.batch, 1, 1, self.length)


class MultiheadSelfAttention(nn.Module):
    """Self-attention with `nn.MultiheadAttention`'s parameter layout (packed `in_proj_weight` [3w, w],
    `in_proj_bias`, `out_proj`) and its default initialisation, computed with scaled_dot_product_attention (in bf16
on a CPU with `math_attention`, see `attention`)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        self.width, self.heads = width, heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * width))
        self.out_proj = nn.Linear(width, width)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.in_proj_bias)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: torch.Tensor, causal: bool = False, packing: Packing | None = None) -> torch.Tensor:
        """x: [batch, length, width] -> [batch, length, width]; `causal` masks attention to later positions.
        With `packing` (causal only), x and the result are packed [tokens, width]."""
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        if packing is not None:
            _check_packed(causal)
            return self.out_proj(packing.pack(self._attend(packing.unpack(qkv), causal)))
        return self.out_proj(self._attend(qkv, causal))

    def _attend(self, qkv: torch.Tensor, causal: bool) -> torch.Tensor:
        """Fused q/k/v projections [batch, length, 3 · width] → attention output [batch, length, width]."""
        b, n, _ = qkv.shape
        q, k, v = qkv.view(b, n, 3, self.heads, self.width // self.heads).permute(2, 0, 3, 1, 4)
        out = attention(q, k, v, is_causal=causal)
        return out.transpose(1, 2).reshape(b, n, self.width)

    def forward_at(self, x: torch.Tensor, index: torch.Tensor | int, causal: bool = False,
                   packing: Packing | None = None) -> torch.Tensor:
        """`forward(x, causal)[rows, index]` ([batch, width]) computed for that one position of each row: its query
        only, keys and values over all positions (with `causal`, row i attends to positions ≤ index[i]). With
        `packing`, x is packed [tokens, width] and `index` is `packing.last`."""
        w, mask = self.width, None
        if packing is not None:
            _check_packed(causal)
            kv = packing.unpack(F.linear(x, self.in_proj_weight[w:], self.in_proj_bias[w:]))
            mask = packing.key_mask()
        else:
            if causal and isinstance(index, int):  # one position for all rows: drop the keys after it
                x, index = x[:, : index % x.shape[1] + 1], -1
            elif causal:
                mask = torch.arange(x.shape[1], device=x.device) <= index.view(-1, 1, 1, 1)
            kv = F.linear(x, self.in_proj_weight[w:], self.in_proj_bias[w:])
        b, n, _ = kv.shape
        d = w // self.heads
        q = F.linear(_at(x, index), self.in_proj_weight[:w], self.in_proj_bias[:w]).view(b, self.heads, 1, d)
        k, v = kv.view(b, n, 2, self.heads, d).permute(2, 0, 3, 1, 4)
        out = attention(q, k, v, attn_mask=mask)
        return self.out_proj(out.reshape(b, w))


def math_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None = None,
                   is_causal: bool = False) -> torch.Tensor:
    """softmax(q kᵀ / √d) v ("Attention Is All You Need", eq. 1) as three plain operations: the products in the
    inputs' dtype, the softmax in fp32 (its result cast back). q [..., L, d], k and v [..., S, d]; `attn_mask`
    (boolean, True = may attend) broadcasts to [..., L, S]; `is_causal` masks keys after each query's position.

    The same function as `F.scaled_dot_product_attention` with those arguments (every query must see a key). Under
    bf16 on a CPU it is much faster to train through: there SDPA's flash kernel has a slow backward (1.48 s of a
    3.0 s step at width 256 on AMX), while these products run as bf16 GEMMs."""
    return torch.matmul(_scores(q, k, attn_mask, is_causal).softmax(-1).to(v.dtype), v)


def _scores(q: torch.Tensor, k: torch.Tensor, attn_mask: torch.Tensor | None, is_causal: bool) -> torch.Tensor:
    """q kᵀ / √d in fp32, -inf where a key is masked."""
    scores = torch.matmul(q, k.transpose(-2, -1)).float().mul_(q.shape[-1] ** -0.5)
    if is_causal:
        length, keys = scores.shape[-2:]
        scores.masked_fill_(torch.ones(length, keys, dtype=torch.bool, device=q.device).triu_(1), -math.inf)
    if attn_mask is not None:
        scores.masked_fill_(~attn_mask, -math.inf)
    return scores


class _MathAttentionFunction(torch.autograd.Function):
    """`math_attention` with a hand-written backward that keeps only q, k, v and the probabilities P (in the inputs'
    dtype): dV = Pᵀ dO, dS = P ⊙ (dP − rowsum(dP ⊙ P)) with dP = dO Vᵀ (`aten._softmax_backward_data`), dQ = dS K/√d,
    dK = dSᵀ Q/√d. Autograd's own graph of the plain form also keeps the fp32 probabilities and runs four more
    elementwise passes over the [.., L, S] scores backward (two casts, the mask, the scale)."""

    @staticmethod
    def forward(ctx: FunctionCtx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None,
                is_causal: bool) -> torch.Tensor:
        probs = _scores(q, k, attn_mask, is_causal).softmax(-1).to(v.dtype)
        ctx.save_for_backward(q, k, v, probs)
        return torch.matmul(probs, v)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        q, k, v, probs = ctx.saved_tensors
        grad = grad.to(v.dtype)
        dv = torch.matmul(probs.transpose(-2, -1), grad)
        ds = torch._softmax_backward_data(torch.matmul(grad, v.transpose(-2, -1)), probs, -1, probs.dtype)
        scale = q.shape[-1] ** -0.5
        dq = torch.matmul(ds, k).mul_(scale)
        dk = torch.matmul(ds.transpose(-2, -1), q).mul_(scale)
        return dq, dk, dv, None, None


def fused_math_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None = None,
                         is_causal: bool = False) -> torch.Tensor:
    """`math_attention` (same forward, bit for bit) with `_MathAttentionFunction`'s lighter backward, whose
    softmax gradient runs in the inputs' dtype."""
    if torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v)):
        return _MathAttentionFunction.apply(q, k, v, attn_mask, is_causal)
    return math_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal)


#: what `attention` runs for bf16 tensors on a CPU (benchmarks/bench_mfu.py --bf16-attention swaps it)
BF16_CPU_ATTENTION = fused_math_attention


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None = None,
              is_causal: bool = False) -> torch.Tensor:
    """Scaled dot-product attention: `BF16_CPU_ATTENTION` for bf16 tensors on a CPU, `F.scaled_dot_product_attention`
    (bit for bit what this module always computed) otherwise."""
    if q.dtype == torch.bfloat16 and q.device.type == "cpu":
        return BF16_CPU_ATTENTION(q, k, v, attn_mask=attn_mask, is_causal=is_causal)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal)


def _check_packed(causal: bool) -> None:
    if not causal:
        raise ValueError("packed rows need causal attention (padding is only invisible under a causal mask)")


def _at(x: torch.Tensor, index: torch.Tensor | int) -> torch.Tensor:
    """Row i's position index[i] of x [batch, length, width] → [batch, width] (an int: the same position in all);
    of packed x [tokens, width], the tokens at `index`."""
    if x.ndim == 2:
        return x[index]
    if isinstance(index, int):
        return x[:, index]
    return x[torch.arange(x.shape[0], device=x.device), index]


class ResidualAttentionBlock(nn.Module):
    """A pre-LN Transformer block: x + attn(ln_1(x)), then x + mlp(ln_2(x)), MLP ratio 4 with QuickGELU."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.attn = MultiheadSelfAttention(width, heads)
        self.ln_1 = LayerNorm(width)
        self.mlp = nn.Sequential(
            OrderedDict(
                [("c_fc", nn.Linear(width, width * 4)), ("gelu", QuickGELU()), ("c_proj", nn.Linear(width * 4, width))]
            )
        )
        self.ln_2 = LayerNorm(width)

    def forward(self, x: torch.Tensor, causal: bool = False, packing: Packing | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), causal=causal, packing=packing)
        return x + self.mlp(self.ln_2(x))

    def forward_at(self, x: torch.Tensor, index: torch.Tensor | int, causal: bool = False,
                   packing: Packing | None = None) -> torch.Tensor:
        """`forward(x, causal)[rows, index]` ([batch, width]): attention's query, the residual and the MLP are only
        evaluated at that position of each row; keys and values still come from every position."""
        y = _at(x, index) + self.attn.forward_at(self.ln_1(x), index, causal=causal, packing=packing)
        return y + self.mlp(self.ln_2(y))


class Transformer(nn.Module):
    """A stack of `layers` residual attention blocks of one `width`; heads = width // 64 as in every CLIP model."""

    def __init__(self, width: int, layers: int, heads: int, causal: bool = False) -> None:
        super().__init__()
        self.width, self.layers, self.causal = width, layers, causal
        self.resblocks = nn.ModuleList([ResidualAttentionBlock(width, heads) for _ in range(layers)])

    def forward(self, x: torch.Tensor, packing: Packing | None = None) -> torch.Tensor:
        """[batch, length, width] → the same shape; with `packing` (causal stacks), packed [tokens, width]."""
        for block in self.resblocks:
            x = block(x, causal=self.causal, packing=packing)
        return x

    def forward_at(self, x: torch.Tensor, index: torch.Tensor | int, packing: Packing | None = None) -> torch.Tensor:
        """`forward(x)[rows, index]` ([batch, width]), the final activation at one position per row — the pooled
        token of §2.4 (ViT: class token 0; text: the end token) — with the last block evaluated only there.

        Exact (the same function; only floating-point rounding may differ). It saves the last block's queries,
        attention output, out-projection and MLP at every other position, forward and backward. `forward` keeps
        every position. With `packing`, x is packed [tokens, width] and `index` is `packing.last`."""
        if not self.layers:
            return _at(x, index)
        for block in self.resblocks[:-1]:
            x = block(x, causal=self.causal, packing=packing)
        return self.resblocks[-1].forward_at(x, index, causal=self.causal, packing=packing)
