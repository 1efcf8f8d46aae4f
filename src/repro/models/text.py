"""CLIP's text encoder (paper §2.4): a 12-layer, 512-wide causal Transformer over byte-pair tokens whose
feature is the final-layer activation at the end-of-text token, layer-normalised and linearly projected."""

from __future__ import annotations

import torch
from torch import nn

from .layers import LayerNorm, Packing, Transformer


class TextTransformer(nn.Module):
    """The text tower, with OpenAI's top-level parameter names (`token_embedding`, `positional_embedding`,
    `transformer`, `ln_final`, `text_projection`).

    Ids are expected as CLIP's tokenizer makes them: the end-of-text token has the largest id in the vocabulary,
    so its position is `text.argmax(-1)`; everything after it (padding) cannot influence the feature because the
    attention is causal.
    """

    def __init__(self, context_length: int, vocab_size: int, width: int, layers: int, embed_dim: int) -> None:
        super().__init__()
        if width % 64:
            raise ValueError(f"text width must be a multiple of 64 (heads = width // 64), got {width}")
        self.context_length = context_length
        self.vocab_size = vocab_size
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.empty(context_length, width))
        self.transformer = Transformer(width, layers, heads=width // 64, causal=True)
        self.ln_final = LayerNorm(width)
        self.text_projection = nn.Parameter(torch.empty(width, embed_dim))
        self.initialize_text_parameters()

    def initialize_text_parameters(self) -> None:
        """OpenAI's initialisation of the text tower (GPT-2 style: residual projections scaled by (2L)^-1/2)."""
        width, layers = self.transformer.width, self.transformer.layers
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        proj_std = width**-0.5 * (2 * layers) ** -0.5
        for block in self.transformer.resblocks:
            nn.init.normal_(block.attn.in_proj_weight, std=width**-0.5)
            nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
            nn.init.normal_(block.mlp.c_fc.weight, std=(2 * width) ** -0.5)
            nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)
        nn.init.normal_(self.text_projection, std=width**-0.5)

    @property
    def text_dtype(self) -> torch.dtype:
        return self.token_embedding.weight.dtype

    def check_text(self, text: torch.Tensor) -> None:
        """Raise a clear error for ids that are not a [batch, length ≤ context_length] integer tensor."""
        if not isinstance(text, torch.Tensor):
            raise TypeError(f"text must be a LongTensor of token ids [batch, length], got {type(text).__name__}")
        if text.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"text must hold integer token ids, got dtype {text.dtype}")
        if text.ndim != 2:
            raise ValueError(f"text must have shape [batch, length], got {tuple(text.shape)}")
        low, high = (int(text.min()), int(text.max())) if text.numel() else (0, 0)
        if low < 0 or high >= self.vocab_size:
            bad = high if high >= self.vocab_size else low
            raise ValueError(
                f"token id {bad} is outside this model's vocabulary of {self.vocab_size} ids: the ids come from "
                "another tokenizer (repro.tokenize is OpenAI's, 49,408 ids); tokenize with the model's own, "
                "model.tokenizer(texts)"
            )
        if not 0 < text.shape[1] <= self.context_length:
            raise ValueError(
                f"text must have shape [batch, length] with length <= context_length {self.context_length}, "
                f"got {tuple(text.shape)} (model.tokenizer(texts) gives rows of the model's context length)"
            )

    def embed_text(self, text: torch.Tensor) -> torch.Tensor:
        """Token plus positional embeddings [batch, length, width] in the Transformer's dtype (input checked)."""
        self.check_text(text)
        dtype = self.transformer.resblocks[0].attn.in_proj_weight.dtype if self.transformer.layers else None
        x = self.token_embedding(text)
        x = x + self.positional_embedding[: text.shape[1]].to(x.dtype)
        return x if dtype is None else x.to(dtype)

    def encode_tokens(self, text: torch.Tensor) -> torch.Tensor:
        """Per-position final-layer activations after `ln_final`: [batch, length, width] (no projection)."""
        return self.ln_final(self.transformer(self.embed_text(text)))

    def encode_text(self, text: torch.Tensor) -> torch.Tensor:
        """Text features [batch, embed_dim]: activation at the end token (argmax of ids) @ text_projection (§2.4).

        Equal to `encode_tokens(text)[rows, end] @ text_projection`, computed with less work: every position after
        a row's end token is dropped — the mask is causal, so padding cannot reach the end token — by packing the
        rows' real tokens into one matrix (`Packing`: per-token layers see no padding, attention unpacks them), and
        the last block runs only at each row's end token (`Transformer.forward_at`)."""
        self.check_text(text)
        if not len(text):
            return self.text_projection.new_zeros(0, self.text_projection.shape[1])
        end = text.argmax(dim=-1)
        text = text[:, : int(end.max()) + 1]
        packing = Packing(end + 1, text.shape[1])
        x = self.transformer.forward_at(packing.pack(self.embed_text(text)), packing.last, packing=packing)
        return self.ln_final(x).to(self.text_projection.dtype) @ self.text_projection

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        return self.encode_text(text)
