"""Text longer than the context: three ways to embed it with a fixed-context CLIP text encoder.

CLIP's text encoder reads rows of a fixed length — 77 tokens including the start and end tokens in the released
models, with a maximum sequence length of 76 during training (Radford et al., 2021, §2.4) — and OpenAI's
tokenizer either refuses longer text or, with ``truncate=True``, keeps its beginning. This module embeds a text of
any length in three ways, all with the unchanged model:

* :func:`embed_truncate` — the released behaviour: keep the first ``context_length - 2`` tokens.
* :func:`embed_chunks` — cut the token sequence into consecutive, non-overlapping pieces of ``context_length - 2``
  tokens, give each its own start and end token, embed each, average the L2-normalised embeddings and
  renormalise.
* :func:`embed_sliding` — the same with overlapping windows (a ``window`` of tokens every ``stride`` tokens, the
  last window aligned to the end of the text so every token is read).

A text that fits in the context is one piece under every strategy, so all three give the same embedding for it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from .evaluate.features import model_device, normalize

__all__ = ["body_length", "chunk_spans", "embed_by_spans", "embed_chunks", "embed_pieces", "embed_sliding",
           "embed_truncate", "piece_rows", "sliding_spans"]


def body_length(context_length: int) -> int:
    """Tokens of text one row can hold: the context minus the start and end tokens (75 for CLIP's 77)."""
    if isinstance(context_length, bool) or not isinstance(context_length, int) or context_length < 3:
        raise ValueError(f"context_length must be an int >= 3 (start, one token, end), got {context_length!r}")
    return context_length - 2


def chunk_spans(n_tokens: int, window: int) -> list[tuple[int, int]]:
    """Consecutive ``(start, end)`` spans of at most ``window`` tokens covering ``0..n_tokens`` once each; an empty
    text is one empty span, so that it is still embedded (as start + end tokens, like the tokenizer does)."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if n_tokens < 0:
        raise ValueError(f"n_tokens must be >= 0, got {n_tokens}")
    return [(s, min(s + window, n_tokens)) for s in range(0, n_tokens, window)] or [(0, 0)]


def sliding_spans(n_tokens: int, window: int, stride: int) -> list[tuple[int, int]]:
    """Windows of ``window`` tokens starting every ``stride`` tokens (``stride <= window``, so consecutive windows
    overlap by ``window - stride`` tokens or touch); the last window is aligned to the end of the text, so every
    token is covered. A text of at most ``window`` tokens is a single span."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if not 1 <= stride <= window:
        raise ValueError(f"stride must be between 1 and the window ({window}) so that no token is skipped, "
                         f"got {stride}")
    if n_tokens <= window:
        return [(0, n_tokens)]
    starts = list(range(0, n_tokens - window + 1, stride))
    if starts[-1] + window < n_tokens:
        starts.append(n_tokens - window)
    return [(s, s + window) for s in starts]


def piece_rows(pieces: Sequence[Sequence[int]], tokenizer: object, context_length: int) -> torch.Tensor:
    """Token rows ``[start] + piece + [end]`` zero-padded to ``context_length`` (the layout of ``tokenizer(...)``)."""
    window = body_length(context_length)
    rows = torch.full((len(pieces), context_length), tokenizer.pad_id, dtype=torch.long)
    for r, piece in enumerate(pieces):
        if len(piece) > window:
            raise ValueError(f"piece {r} has {len(piece)} tokens, more than the {window} a row can hold")
        ids = [tokenizer.start_id, *piece, tokenizer.end_id]
        rows[r, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return rows


@torch.no_grad()
def embed_pieces(model: torch.nn.Module, tokenizer: object, pieces: Sequence[Sequence[int]], owners: Sequence[int],
                 n_texts: int, context_length: int, batch_size: int = 256,
                 cache: dict[tuple[int, ...], torch.Tensor] | None = None) -> torch.Tensor:
    """Embed token pieces (each one row with its own start and end token) and average them per text: text ``t``
    gets the renormalised mean of the L2-normalised embeddings of the pieces whose owner is ``t``. Float32
    ``[n_texts, embed_dim]`` on the CPU.

    Each distinct piece is encoded once; ``cache`` (a dict from piece to embedding, shared between calls with the
    same model and context) keeps them, so strategies that share pieces — the first chunk *is* the truncated
    text — do not encode them twice."""
    if len(pieces) != len(owners):
        raise ValueError(f"{len(pieces)} pieces but {len(owners)} owners")
    cache = {} if cache is None else cache
    keys = [tuple(int(i) for i in piece) for piece in pieces]
    todo = [key for key in dict.fromkeys(keys) if key not in cache]
    device = model_device(model)
    was_training = bool(getattr(model, "training", False))
    model.eval()
    try:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            rows = piece_rows(batch, tokenizer, context_length).to(device)
            cache.update(zip(batch, normalize(model.encode_text(rows)).cpu(), strict=True))
    finally:
        model.train(was_training)
    dim = int(model.config.embed_dim)
    features = torch.stack([cache[key] for key in keys]) if keys else torch.zeros(0, dim)
    owner = torch.as_tensor(list(owners), dtype=torch.long)
    return normalize(torch.zeros(n_texts, dim).index_add_(0, owner, features))


def embed_by_spans(model: torch.nn.Module, tokenizer: object, texts: Sequence[str], context_length: int | None,
                   spans: Callable[[int, int], list[tuple[int, int]]], batch_size: int = 256,
                   cache: dict | None = None) -> torch.Tensor:
    """What the three strategies share: tokenise each text (no start/end tokens), cut its ids into the ``(start,
    end)`` spans that ``spans(n_tokens, context_length)`` returns, and embed the text as the renormalised mean of its
    pieces' normalised embeddings (:func:`embed_pieces`)."""
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise TypeError("texts must be a list of str")
    context_length = int(context_length if context_length is not None else model.context_length)
    body_length(context_length)
    pieces, owners = [], []
    for t, text in enumerate(texts):
        ids = tokenizer.encode(text)
        for s, e in spans(len(ids), context_length):
            pieces.append(ids[s:e])
            owners.append(t)
    return embed_pieces(model, tokenizer, pieces, owners, len(texts), context_length, batch_size, cache)


def embed_truncate(model: torch.nn.Module, tokenizer: object, texts: Sequence[str], context_length: int | None = None,
                   batch_size: int = 256, cache: dict | None = None) -> torch.Tensor:
    """The paper's behaviour: embed the first ``context_length - 2`` tokens of each text, drop the rest (the same
    rows as ``tokenizer(texts, context_length, truncate=True)``). Normalised, ``[len(texts), embed_dim]``."""
    return embed_by_spans(model, tokenizer, texts, context_length, lambda n, c: [(0, min(n, body_length(c)))],
                  batch_size, cache)


def embed_chunks(model: torch.nn.Module, tokenizer: object, texts: Sequence[str], context_length: int | None = None,
                 batch_size: int = 256, cache: dict | None = None) -> torch.Tensor:
    """Chunk and average: consecutive non-overlapping chunks of ``context_length - 2`` tokens, each embedded with its
    own start and end token; the normalised chunk embeddings are averaged (equal weights) and renormalised."""
    return embed_by_spans(model, tokenizer, texts, context_length, lambda n, c: chunk_spans(n, body_length(c)),
                  batch_size, cache)


def embed_sliding(model: torch.nn.Module, tokenizer: object, texts: Sequence[str], context_length: int | None = None,
                  stride: int | None = None, window: int | None = None, batch_size: int = 256,
                  cache: dict | None = None) -> torch.Tensor:
    """Sliding windows: ``window`` tokens (default ``context_length - 2``) every ``stride`` tokens (default half a
    window), the last window aligned to the text's end; window embeddings are averaged like :func:`embed_chunks`."""
    context_length = int(context_length if context_length is not None else model.context_length)
    size = body_length(context_length) if window is None else window
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= body_length(context_length):
        raise ValueError(f"window must be an int between 1 and context_length - 2 = {body_length(context_length)}, "
                         f"got {window!r}")
    step = max(1, size // 2) if stride is None else stride
    if isinstance(step, bool) or not isinstance(step, int):
        raise ValueError(f"stride must be an int, got {stride!r}")
    sliding_spans(size + 1, size, step)  # validate once, before any work
    return embed_by_spans(model, tokenizer, texts, context_length, lambda n, c: sliding_spans(n, size, step),
                  batch_size, cache)
