"""Text longer than the context (Radford et al., 2021, §2.4: a fixed text context, longer text truncated): text→image
retrieval with long queries, each an image's own caption hidden among distractor text at the beginning, middle or
end of a text 2× or 4× the context, embedded by truncation, chunk-and-average or sliding windows
(`repro.longtext`). The same captions alone (short, fitting the context) give the baseline.

The model is not trained here: `common.trained_clip` loads the `clip_small` run of the same profile and seed.
Each seed draws its own queries and distractors (from its own generator), so the confidence intervals over seeds
cover both the model's training seed and the draw of queries.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from .. import longtext
from ..data.pack import PackedSplit, load_packed
from ..evaluate.features import encode_images
from . import clip_small
from .common import corpus_for, trained_clip
from .results import write_result

NAME = "longtext"

POSITIONS = ("beginning", "middle", "end")
STRATEGIES = ("truncate", "chunks", "sliding")
KS = (1, 5, 10)
SEPARATOR = ". "
#: Generic sentences that describe no image: the neutral distractor. Words that occur in our captions, so the
#: tokenizer trained on them spells them in few tokens.
FILLER = ("this is a picture", "there is more text here", "the text goes on", "it is one of many images",
          "some words follow", "an image with a caption")
#: The fixed draw of training images used as a gallery (the same for every model seed).
GALLERY_SEED = 0

#: The corpus of each profile's headline model (`clip_small`), whose trained weights this experiment evaluates.
_CORPUS = {profile: spec["corpus"] for profile, spec in clip_small.PROFILES.items()}

_COMMON = {"splits": ("val", "train"), "factors": (2, 4), "distractors": ("captions", "filler"), "stride": "half"}
#: smoke: seconds on the generated corpus. cpu: the trained cpu models, a few minutes per seed on 2 cores. gpu: the
#: same test with every query and an 8× length.
PROFILES = {
    "smoke": {"corpus": "smoke", "seeds": 1, **_COMMON, "splits": ("val",), "queries": 24, "train_gallery": 0},
    "cpu": {"corpus": _CORPUS["cpu"], "seeds": 5, **_COMMON, "queries": 300, "train_gallery": 1000},
    "gpu": {"corpus": _CORPUS["gpu"], "seeds": 3, **_COMMON, "factors": (2, 4, 8), "queries": 1000,
            "train_gallery": 1000},
}


def own_rank(queries: torch.Tensor, gallery: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
    """0-based rank of each query's own gallery image (`own[q]`) by cosine similarity; ties count against it."""
    scores = queries @ gallery.t()
    return (scores >= scores.gather(1, own.unsqueeze(1))).sum(dim=1) - 1


def recall(ranks: torch.Tensor, n_gallery: int, ks: Sequence[int] = KS) -> dict:
    """Recall@k, mean rank (1-based) and mean rank percentile (0 = always first, 0.5 = chance) of own images."""
    ranks = ranks.double()
    out = {f"r{k}": float((ranks < k).double().mean()) for k in ks}
    return out | {"mean_rank": float(ranks.mean() + 1), "rank_pct": float((ranks / max(n_gallery - 1, 1)).mean()),
                  "n": len(ranks)}


def chance(n_gallery: int, ks: Sequence[int] = KS) -> dict:
    """The same measures for a random ranking of `n_gallery` images with one correct image."""
    return {f"r{k}": min(1.0, k / n_gallery) for k in ks} | {"mean_rank": (n_gallery + 1) / 2, "rank_pct": 0.5}


def long_query(caption: str, distractors: Sequence[str], position: str) -> tuple[str, int]:
    """The caption placed among the distractor texts (joined by ". "): first, after half of them, or last.
    Returns the text and how many distractors precede the caption."""
    if position not in POSITIONS:
        raise ValueError(f"position must be one of {POSITIONS}, got {position!r}")
    before = {"beginning": 0, "middle": len(distractors) // 2, "end": len(distractors)}[position]
    parts = [*distractors[:before], caption, *distractors[before:]]
    return SEPARATOR.join(parts), before


def fill(count: Callable[[str], int], caption: str, pool: Callable[[], str], target: int) -> list[str]:
    """Distractor texts drawn from `pool()` until caption + distractors, joined, are at least `target` tokens."""
    out: list[str] = []
    while count(SEPARATOR.join([caption, *out])) < target:
        out.append(pool())
    return out


def build_queries(packed: PackedSplit, gallery: np.ndarray, tokenizer: object, context_length: int, spec: dict,
                  rng: np.random.Generator) -> dict:
    """Draw query images from `gallery` (indices into `packed`), one caption each, and for every distractor kind
    and length factor the distractor texts (a prefix of one draw per query, so a longer text extends a shorter)."""
    with_caps = [g for g, i in enumerate(gallery) if packed.captions[i]]
    chosen = sorted(rng.choice(with_caps, size=min(spec["queries"], len(with_caps)), replace=False).tolist())
    names = np.array(packed.fields["name"])[gallery]
    captions = [packed.captions[gallery[g]][rng.integers(len(packed.captions[gallery[g]]))] for g in chosen]

    def count(text: str) -> int:
        return len(tokenizer.encode(text))

    out: dict = {"own": chosen, "captions": captions, "distractors": {}}
    for kind in spec["distractors"]:
        per_factor: dict[int, list[list[str]]] = {f: [] for f in spec["factors"]}
        for g, caption in zip(chosen, captions, strict=True):
            if kind == "captions":  # captions of other gallery images, of other concepts
                others = np.flatnonzero((names != names[g]) & np.array([bool(packed.captions[i]) for i in gallery]))
                order = iter(rng.permutation(others).tolist())

                def pool(order=order) -> str:
                    caps = packed.captions[gallery[next(order)]]
                    return caps[rng.integers(len(caps))]
            else:
                start = int(rng.integers(len(FILLER)))
                order = iter(range(start, start + 10_000))

                def pool(order=order) -> str:
                    return FILLER[next(order) % len(FILLER)]
            longest = fill(count, caption, pool, max(spec["factors"]) * context_length)
            for f in spec["factors"]:
                n = len(fill(count, caption, iter(longest).__next__, f * context_length))
                per_factor[f].append(longest[:n])
        out["distractors"][kind] = per_factor
    return out


def _embed(strategy: str, model, tokenizer, texts: list[str], stride: int, cache: dict) -> torch.Tensor:
    if strategy == "truncate":
        return longtext.embed_truncate(model, tokenizer, texts, cache=cache)
    if strategy == "chunks":
        return longtext.embed_chunks(model, tokenizer, texts, cache=cache)
    return longtext.embed_sliding(model, tokenizer, texts, stride=stride, cache=cache)


def pieces_per_text(strategy: str, n_tokens: int, context_length: int, stride: int) -> int:
    """How many rows the encoder reads for a text of `n_tokens` under `strategy`."""
    window = longtext.body_length(context_length)
    if strategy == "truncate":
        return 1
    if strategy == "chunks":
        return len(longtext.chunk_spans(n_tokens, window))
    return len(longtext.sliding_spans(n_tokens, window, stride))


def evaluate_split(model, tokenizer, packed: PackedSplit, gallery: np.ndarray, spec: dict,
                   rng: np.random.Generator) -> dict:
    """Short-caption baseline, chance, and every strategy × distractor kind × length × position on one gallery."""
    context = int(model.context_length)
    window = longtext.body_length(context)
    stride = max(1, window // 2) if spec["stride"] == "half" else int(spec["stride"])
    images = encode_images(model, packed.images[gallery])
    queries = build_queries(packed, gallery, tokenizer, context, spec, rng)
    own = torch.tensor(queries["own"])
    cache: dict = {}
    short = longtext.embed_truncate(model, tokenizer, queries["captions"], cache=cache)
    caption_tokens = [len(tokenizer.encode(c)) for c in queries["captions"]]
    out: dict = {
        "n_gallery": len(gallery), "n_queries": len(own), "chance": chance(len(gallery)),
        "short": recall(own_rank(short, images, own), len(gallery)),
        "caption_tokens": float(np.mean(caption_tokens)),
        "caption_fits": float(np.mean([n <= window for n in caption_tokens])),
        "long": {},
    }
    for kind, per_factor in queries["distractors"].items():
        for factor, distractors in per_factor.items():
            for position in POSITIONS:
                built = [long_query(c, d, position) for c, d in zip(queries["captions"], distractors, strict=True)]
                texts = [t for t, _ in built]
                tokens = [len(tokenizer.encode(t)) for t in texts]
                starts = [len(tokenizer.encode(SEPARATOR.join(d[:before]) + SEPARATOR)) if before else 0
                          for (_, before), d in zip(built, distractors, strict=True)]
                cell: dict = {"tokens": float(np.mean(tokens)), "caption_start": float(np.mean(starts)),
                              "caption_in_first_window": float(np.mean(
                                  [s + n <= window for s, n in zip(starts, caption_tokens, strict=True)]))}
                for strategy in STRATEGIES:
                    features = _embed(strategy, model, tokenizer, texts, stride, cache)
                    cell[strategy] = recall(own_rank(features, images, own), len(gallery)) | {
                        "pieces": float(np.mean([pieces_per_text(strategy, n, context, stride) for n in tokens]))}
                out["long"].setdefault(kind, {}).setdefault(f"{factor}x", {})[position] = cell
    out["example"] = {kind: {position: long_query(queries["captions"][0], per_factor[max(per_factor)][0],
                                                  position)[0] for position in POSITIONS}
                      for kind, per_factor in queries["distractors"].items()}
    out["encoded_pieces"] = len(cache)
    return out


def galleries(splits: dict[str, PackedSplit], spec: dict) -> dict[str, np.ndarray]:
    """Gallery image indices per split: every image of `val` (as in the `search` experiment), and a fixed draw of
    `train_gallery` training images — images the model was trained on, its best case."""
    out = {}
    for split, packed in splits.items():
        if split == "train":
            n = min(spec["train_gallery"], len(packed))
            out[split] = np.sort(np.random.default_rng(GALLERY_SEED).choice(len(packed), size=n, replace=False))
        else:
            out[split] = np.arange(len(packed))
    return out


def run(profile: str, seed: int, workdir: Path, results_root: Path | None = None) -> Path:
    """Evaluate one seed's trained `clip_small` model on long queries; returns the result file's path."""
    spec = PROFILES[profile]
    start = time.time()
    model, tokenizer, train_config = trained_clip(profile, seed, Path(workdir), results_root)
    corpus = corpus_for(spec["corpus"])
    size = train_config.data_size
    splits = {s: load_packed(corpus / "packed" / f"{s}_{size}.npz") for s in spec["splits"]}
    rng = np.random.default_rng(1000 + seed)
    context = int(model.context_length)
    window = longtext.body_length(context)
    metrics: dict = {"model": {"name": train_config.model, "context_length": context, "window": window,
                               "stride": max(1, window // 2) if spec["stride"] == "half" else int(spec["stride"]),
                               "vocab_size": tokenizer.vocab_size}}
    with torch.no_grad():
        for split, gallery in galleries(splits, spec).items():
            metrics[split] = evaluate_split(model, tokenizer, splits[split], gallery, spec, rng)
    run_dir = Path(workdir) / clip_small.NAME / profile / f"seed{seed}"
    config = {key: list(value) if isinstance(value, tuple) else value for key, value in spec.items()} | {
        "clip_small_run": str(run_dir), "model": train_config.model, "data_size": size, "ks": list(KS),
        "positions": list(POSITIONS), "strategies": list(STRATEGIES), "separator": SEPARATOR,
        "filler": list(FILLER), "query_seed": 1000 + seed, "gallery_seed": GALLERY_SEED}
    json.dumps(metrics)  # fail here, not half-way through writing, if anything is not JSON
    return write_result(NAME, profile, seed, config, metrics, time.time() - start, None, results_root)
