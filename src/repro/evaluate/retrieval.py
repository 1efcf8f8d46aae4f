"""Zero-shot retrieval (Radford et al., 2021, §3.1 and Table 13): rank captions for each image and images for each
caption by the cosine similarity of their CLIP embeddings, and report recall@k in both directions — as for
Flickr30k and MSCOCO, where every image has several captions."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..data.pack import PackedSplit
from .features import encode_images, encode_texts, normalize

__all__ = ["hubness", "image_to_text", "retrieval_eval", "semantic_search", "text_to_image_hubness"]


def _image_features(
    model: torch.nn.Module, packed: PackedSplit, image_features: torch.Tensor | None, **kw
) -> torch.Tensor:
    if image_features is None:
        return encode_images(model, packed.images, **kw)
    if len(image_features) != len(packed):
        raise ValueError(f"image_features has {len(image_features)} rows but the split has {len(packed)} images")
    return normalize(torch.as_tensor(image_features))


def retrieval_eval(
    model: torch.nn.Module,
    tokenizer: object,
    packed: PackedSplit,
    max_captions_per_image: int | None = None,
    image_features: torch.Tensor | None = None,
    ks: Sequence[int] = (1, 5, 10),
    batch_size: int = 256,
    device: str | torch.device | None = None,
    bf16: bool = False,
    chunk: int = 1024,
) -> dict:
    """Image→text and text→image recall@k on a split whose images carry several captions (paper Table 13).

    Each image keeps its first `max_captions_per_image` captions (all by default). Image→text: the candidates are
    the split's *distinct* caption strings (a string shared by two images is one candidate, correct for both); an
    image scores a hit at k when one of its own captions is in the top k. Text→image: every (image, caption) pair
    is a query whose only correct answer is its own image. Ties count against the query: a wrong candidate scoring
    the same as the best correct one ranks above it, so a collapsed model gets no credit. Images without captions
    are candidates for text→image only. Returns `n_images` (with captions), `n_captions` (queries),
    `n_texts` (distinct captions), `i2t_r{k}` and `t2i_r{k}` for each k, as fractions.
    """
    if max_captions_per_image is not None and max_captions_per_image < 1:
        raise ValueError(f"max_captions_per_image must be >= 1 or None, got {max_captions_per_image}")
    if len(packed.captions) != len(packed):
        raise ValueError(f"the split has {len(packed.captions)} caption lists for {len(packed)} images")
    captions = [list(c)[:max_captions_per_image] for c in packed.captions]
    owners = np.array([i for i, caps in enumerate(captions) for _ in caps], dtype=np.int64)
    queries = [text for caps in captions for text in caps]
    if not queries:
        raise ValueError("the split has no captions to retrieve")
    texts = list(dict.fromkeys(queries))
    column = {text: j for j, text in enumerate(texts)}
    query_text = torch.tensor([column[t] for t in queries])
    images = _image_features(model, packed, image_features, batch_size=batch_size, device=device, bf16=bf16)
    text_features = encode_texts(model, tokenizer, texts, device=device, bf16=bf16)
    ks = sorted({int(k) for k in ks})

    # image -> text: rank of the best-scoring own caption among the distinct captions
    with_captions = torch.tensor([i for i, caps in enumerate(captions) if caps])
    i2t_rank = []
    for start in range(0, len(with_captions), chunk):
        rows = with_captions[start : start + chunk]
        scores = images[rows] @ text_features.t()
        positive = torch.zeros_like(scores, dtype=torch.bool)
        for r, i in enumerate(rows.tolist()):
            positive[r, [column[t] for t in captions[i]]] = True
        best = scores.masked_fill(~positive, float("-inf")).max(dim=1, keepdim=True).values
        i2t_rank.append(((scores >= best) & ~positive).sum(dim=1))
    i2t = torch.cat(i2t_rank)

    # text -> image: rank of the caption's own image among all images
    t2i_rank = []
    for start in range(0, len(queries), chunk):
        scores = text_features[query_text[start : start + chunk]] @ images.t()
        own = scores.gather(1, torch.from_numpy(owners[start : start + chunk]).unsqueeze(1))
        t2i_rank.append((scores >= own).sum(dim=1) - 1)
    t2i = torch.cat(t2i_rank)

    result: dict = {"n_images": len(with_captions), "n_captions": len(queries), "n_texts": len(texts)}
    result |= {f"i2t_r{k}": float((i2t < k).float().mean()) for k in ks}
    result |= {f"t2i_r{k}": float((t2i < k).float().mean()) for k in ks}
    return result


def _top_k(scores: torch.Tensor, k: int) -> list[list[tuple[int, float]]]:
    """Per row, the k best (column, score) pairs, best first; ties keep column order (stable sort)."""
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]
    return [[(int(j), float(s[j])) for j in row] for row, s in zip(order, scores, strict=True)]


def semantic_search(
    model: torch.nn.Module,
    tokenizer: object,
    packed: PackedSplit,
    queries: Sequence[str],
    k: int = 5,
    image_features: torch.Tensor | None = None,
    device: str | torch.device | None = None,
    bf16: bool = False,
) -> list[list[tuple[int, float]]]:
    """Text→image search: for each query, the k images of `packed` most similar to it, as (image index, cosine
    similarity) pairs, best first."""
    if isinstance(queries, str):
        raise TypeError("queries must be a list of str")
    images = _image_features(model, packed, image_features, device=device, bf16=bf16)
    query_features = encode_texts(model, tokenizer, list(queries), device=device, bf16=bf16)
    return _top_k(query_features @ images.t(), min(k, len(images)))


def image_to_text(
    model: torch.nn.Module,
    tokenizer: object,
    packed: PackedSplit,
    indices: Sequence[int],
    candidates: Sequence[str],
    k: int = 5,
    image_features: torch.Tensor | None = None,
    device: str | torch.device | None = None,
    bf16: bool = False,
) -> list[list[tuple[int, float]]]:
    """Image→text: for each image `indices[i]` of `packed`, the k candidate texts most similar to it, as
    (candidate index, cosine similarity) pairs, best first (zero-shot captioning by ranking, paper §3.1)."""
    indices = [int(i) for i in indices]
    bad = [i for i in indices if not 0 <= i < len(packed)]
    if bad:
        raise IndexError(f"image indices {bad[:5]} are out of range for a split of {len(packed)} images")
    if isinstance(candidates, str) or not candidates:
        raise ValueError("candidates must be a non-empty list of str")
    if image_features is None:
        images = encode_images(model, packed.images[indices], device=device, bf16=bf16)
    else:
        images = _image_features(model, packed, image_features)[indices]
    text_features = encode_texts(model, tokenizer, list(candidates), device=device, bf16=bf16)
    return _top_k(images @ text_features.t(), min(k, len(candidates)))


def hubness(top: torch.Tensor, n_candidates: int) -> dict:
    """How unevenly the candidates answer the queries (Radovanović et al., 2010), from `top` [Q, k], each query's k
    best candidates: N_k(x), the number of queries that have candidate x in their top k, summarised by its
    skewness (0 for an even spread; large when a few "hubs" answer many queries), the share of candidates that
    answer no query (`never_retrieved`), the most queries one candidate answers (`max_occurrence`, with the even
    share `k · Q / n_candidates` beside it) and the share of all top-k answers given by the 1% most frequent
    candidates (`top1pct_share`; 0.01 for an even spread)."""
    if top.ndim != 2 or len(top) == 0:
        raise ValueError(f"hubness: expected a [queries, k] tensor of candidate indices, got shape {tuple(top.shape)}")
    if int(top.max()) >= n_candidates or int(top.min()) < 0:
        raise ValueError(f"hubness: candidate indices must lie in [0, {n_candidates}), got {int(top.min())} … "
                         f"{int(top.max())}")
    counts = np.bincount(top.reshape(-1).numpy(), minlength=n_candidates).astype(float)
    std = counts.std()
    skew = float(((counts - counts.mean()) ** 3).mean() / std ** 3) if std > 0 else 0.0
    hubs = max(1, int(round(0.01 * n_candidates)))
    return {"k": int(top.shape[1]), "queries": int(len(top)), "candidates": int(n_candidates),
            "skewness": skew, "never_retrieved": float((counts == 0).mean()), "max_occurrence": int(counts.max()),
            "even_occurrence": float(top.numel() / n_candidates),
            "top1pct_share": float(np.sort(counts)[::-1][:hubs].sum() / counts.sum())}


def text_to_image_hubness(model: torch.nn.Module, tokenizer: object, packed: PackedSplit, k: int = 10,
                          image_features: torch.Tensor | None = None, chunk: int = 1024) -> dict:
    """`hubness` of text→image retrieval: every distinct caption of the split a query, every image a candidate."""
    texts = list(dict.fromkeys(t for caps in packed.captions for t in caps))
    if not texts:
        raise ValueError("the split has no captions to retrieve with")
    images = _image_features(model, packed, image_features)
    text_features = encode_texts(model, tokenizer, texts)
    k = min(k, len(images))
    top = torch.cat([(text_features[s : s + chunk] @ images.t()).topk(k, dim=1).indices
                     for s in range(0, len(texts), chunk)])
    return hubness(top, len(images))
