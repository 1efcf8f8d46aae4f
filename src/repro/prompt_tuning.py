"""Prompt tuning as in CoOp, "Context Optimization" (Zhou et al., 2022, "Learning to Prompt for Vision-Language
Models" — not part of the CLIP paper), for this package's CLIP.

CoOp replaces the words of a hand-written prompt ("a photo of a {}.") by M learnable context vectors in the text
encoder's input space. The text input of class c is

    [SOS] ctx_1 … ctx_M  <tokens of class name c> . [EOS]

where [SOS], the class-name tokens, "." and [EOS] are the frozen `token_embedding` of their ids and ctx_1 … ctx_M
(width = the text Transformer's width) are shared by all classes ("unified context"). It goes through the frozen
text encoder exactly as token ids would — positional embedding, the causal Transformer, `ln_final` at the end-of-text
position, `text_projection` — so the class features are differentiable in the context vectors and nothing else
trains (image encoder, text encoder and logit_scale stay frozen). `encode_text_embeddings` is that encoder, written
with the model's own modules (no weights are copied); when the context vectors are the token embeddings of a
template's words, the class features equal `model.encode_text` of the filled template's ids
(tests/test_prompt_tuning.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .models.layers import Packing

__all__ = ["PromptLearner", "encode_text_embeddings"]


def encode_text_embeddings(model: nn.Module, embeddings: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """Text features [B, embed_dim] from token *embeddings* [B, L, width] (L ≤ context_length) whose end-of-text
    token sits at position `end[b]`: what `model.encode_text(ids)` computes after its `token_embedding(ids)` —
    + positional embedding, the causal Transformer (rows packed up to their end token, the last block evaluated
    there only, as `TextTransformer.encode_text` does), `ln_final`, `text_projection`."""
    if embeddings.ndim != 3 or embeddings.shape[1] > model.context_length:
        raise ValueError(f"embeddings must be [batch, length <= {model.context_length}, width], "
                         f"got {tuple(embeddings.shape)}")
    end = torch.as_tensor(end, device=embeddings.device)
    length = int(end.max()) + 1
    x = embeddings[:, :length] + model.positional_embedding[:length].to(embeddings.dtype)
    if model.transformer.layers:
        x = x.to(model.transformer.resblocks[0].attn.in_proj_weight.dtype)
    packing = Packing(end + 1, length)
    x = model.transformer.forward_at(packing.pack(x), packing.last, packing=packing)
    return model.ln_final(x).to(model.text_projection.dtype) @ model.text_projection


class PromptLearner(nn.Module):
    """CoOp's learnable context (Zhou et al., 2022, §3.2) for `classnames`: `forward()` returns the class text
    features [C, embed_dim] (not normalised) of "[SOS] ctx_1 … ctx_M <class name> . [EOS]".

    The context [M, width] starts as the token embeddings of `ctx_init`'s words when given (M is then their token
    count, as CoOp's "a photo of a" initialisation), else random normal with std 0.02 (CoOp's generic
    initialisation) drawn from a generator seeded with `seed`. Its only parameter is `ctx`: the CLIP model is
    referenced, not registered as a submodule, so `parameters()` / `state_dict()` hold the context alone and the
    model's weights are used (frozen, never copied) at every call."""

    def __init__(self, model: nn.Module, tokenizer, classnames: Sequence[str], n_ctx: int = 4,
                 ctx_init: str | None = None, seed: int = 0) -> None:
        super().__init__()
        classnames = list(classnames)
        if not classnames:
            raise ValueError("at least one class name is needed")
        object.__setattr__(self, "clip", model)  # a reference, not a submodule (its parameters are not ours)
        embedding = model.token_embedding
        if ctx_init is not None:
            ids = torch.tensor(tokenizer.encode(ctx_init), dtype=torch.long, device=embedding.weight.device)
            if not len(ids):
                raise ValueError(f"ctx_init {ctx_init!r} has no tokens")
            with torch.no_grad():
                ctx = embedding(ids).detach().clone()
        else:
            if n_ctx < 1:
                raise ValueError(f"n_ctx must be >= 1, got {n_ctx}")
            generator = torch.Generator().manual_seed(seed)
            ctx = torch.randn(n_ctx, embedding.embedding_dim, generator=generator) * 0.02
            ctx = ctx.to(device=embedding.weight.device, dtype=embedding.weight.dtype)
        self.n_ctx = len(ctx)
        if self.n_ctx + 3 > model.context_length:
            raise ValueError(f"n_ctx {self.n_ctx} leaves no room for a class name in a context of "
                             f"{model.context_length} tokens")
        self.ctx = nn.Parameter(ctx)
        # "[SOS] <class name> . [EOS]" with room for the context: CoOp's token_prefix / token_suffix, as ids
        tokens = tokenizer([f"{name}." for name in classnames], context_length=model.context_length - self.n_ctx,
                           truncate=True)
        self.register_buffer("tokens", tokens.to(embedding.weight.device), persistent=False)
        self.classnames = tuple(classnames)

    def forward(self) -> torch.Tensor:
        """Class text features [C, embed_dim] through the frozen text encoder (`encode_text_embeddings`)."""
        embedded = self.clip.token_embedding(self.tokens)  # [C, L - M, width]; frozen
        ctx = self.ctx.to(embedded.dtype).unsqueeze(0).expand(len(embedded), -1, -1)
        x = torch.cat([embedded[:, :1], ctx, embedded[:, 1:]], dim=1)  # [SOS] ctx … <name> . [EOS] (padding)
        return encode_text_embeddings(self.clip, x, self.tokens.argmax(dim=-1) + self.n_ctx)

    def extra_repr(self) -> str:
        return f"n_ctx={self.n_ctx}, width={self.ctx.shape[1]}, classes={len(self.classnames)}"
