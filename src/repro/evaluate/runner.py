"""Run every evaluation suite of a built corpus (Radford et al., 2021, §3.1): zero-shot classification per suite
and caption retrieval on the in-distribution (`val`) and zero-shot-concept (`zeroshot`) splits. Splits are loaded
once and their images encoded once, however many suites read them."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from ..data.pack import PackedSplit, load_packed
from ..data.suites import Suite
from .features import encode_images
from .retrieval import retrieval_eval
from .zeroshot import zeroshot_eval

__all__ = ["SplitCache", "evaluated_splits", "load_suites", "run_suites", "select_suites"]

RETRIEVAL_SPLITS = ("val", "named", "zeroshot")


def load_suites(corpus_dir: str | os.PathLike) -> list[Suite]:
    """The suites of `corpus_dir/suites.json` (written by `repro data build`)."""
    path = Path(corpus_dir) / "suites.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is {corpus_dir} a built corpus directory (with packed/)?")
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("suites"), list):
        raise ValueError(f"{path}: expected an object with a 'suites' list")
    return [Suite.from_dict(s) for s in data["suites"]]


def select_suites(corpus_dir: str | os.PathLike, suites: Sequence[str] | None = None) -> list[Suite]:
    """The suites of `corpus_dir` named in `suites` (all when None); an unknown name is an error."""
    available = load_suites(corpus_dir)
    if suites is None:
        return available
    by_name = {s.name: s for s in available}
    unknown = [name for name in suites if name not in by_name]
    if unknown:
        raise ValueError(f"unknown suites {unknown}; {corpus_dir} has {sorted(by_name)}")
    return [by_name[name] for name in suites]


def evaluated_splits(corpus_dir: str | os.PathLike, size: int, suites: Sequence[str] | None = None,
                     retrieval_splits: Sequence[str] = RETRIEVAL_SPLITS) -> list[str]:
    """The splits `run_suites` with these arguments reads."""
    cache = SplitCache(None, corpus_dir, size)
    return list(dict.fromkeys([s.split for s in select_suites(corpus_dir, suites)] +
                              [split for split in retrieval_splits if cache.has(split)]))


class SplitCache:
    """Packed splits of one corpus at one resolution and their image features, each loaded / encoded once."""

    def __init__(
        self, model: torch.nn.Module, corpus_dir: str | os.PathLike, size: int, batch_size: int = 256,
        device: str | torch.device | None = None, bf16: bool = False,
    ) -> None:
        self.model, self.dir, self.size = model, Path(corpus_dir), size
        self.encode_kw = dict(batch_size=batch_size, device=device, bf16=bf16)
        self._splits: dict[str, PackedSplit] = {}
        self._features: dict[str, torch.Tensor] = {}

    def path(self, split: str) -> Path:
        return self.dir / "packed" / f"{split}_{self.size}.npz"

    def has(self, split: str) -> bool:
        return self.path(split).is_file()

    def split(self, split: str) -> PackedSplit:
        if split not in self._splits:
            path = self.path(split)
            if not path.is_file():
                sizes = sorted(p.stem.rsplit("_", 1)[-1] for p in path.parent.glob(f"{split}_*.npz"))
                raise FileNotFoundError(f"split {split!r} is not packed at {self.size} px: {path} is missing "
                                        f"(packed sizes of this split: {sizes or 'none'})")
            self._splits[split] = load_packed(path)
        return self._splits[split]

    def features(self, split: str) -> torch.Tensor:
        if split not in self._features:
            self._features[split] = encode_images(self.model, self.split(split).images, **self.encode_kw)
        return self._features[split]


def run_suites(
    model: torch.nn.Module,
    tokenizer: object,
    corpus_dir: str | os.PathLike,
    size: int,
    suites: Sequence[str] | None = None,
    retrieval_splits: Sequence[str] = RETRIEVAL_SPLITS,
    per_template: bool = False,
    max_captions_per_image: int | None = None,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    bf16: bool = False,
) -> dict[str, dict]:
    """Zero-shot results (`zeroshot_eval`) for each suite of `corpus_dir/suites.json` (all, or those named in
    `suites`), keyed by suite name, plus `retrieval_eval` results keyed `"retrieval/<split>"` for each of
    `retrieval_splits` packed at `size` px. Images come from `corpus_dir/packed/<split>_<size>.npz`; the model
    sees them resized to its own resolution. A suite whose split is not packed at `size` is an error."""
    available = select_suites(corpus_dir, suites)
    cache = SplitCache(model, corpus_dir, size, batch_size=batch_size, device=device, bf16=bf16)
    results: dict[str, dict] = {}
    for suite in available:
        results[suite.name] = zeroshot_eval(
            model, tokenizer, cache.split(suite.split), suite, image_features=cache.features(suite.split),
            per_template=per_template, device=device, bf16=bf16,
        )
    for split in retrieval_splits:
        if cache.has(split):
            results[f"retrieval/{split}"] = retrieval_eval(
                model, tokenizer, cache.split(split), max_captions_per_image=max_captions_per_image,
                image_features=cache.features(split), device=device, bf16=bf16,
            ) | {"split": split}
    return results


def sample_accuracies(model: torch.nn.Module, tokenizer: object, sample: PackedSplit,
                      batch_size: int = 256) -> dict[str, dict]:
    """Zero-shot results on a sample of several splits (`repro.data.sample`): for each suite recorded with it,
    {"correct", "n", "top1"} over the sample's images of the suite's split — counts, so two runs can be compared
    image by image."""
    from ..data.sample import sample_split, sample_suites

    features = encode_images(model, sample.images, batch_size=batch_size, progress=False)
    splits = sample.fields["split"]
    parts = {split: sample_split(sample, split) for split in dict.fromkeys(splits)}
    out: dict[str, dict] = {}
    for suite in sample_suites(sample):
        rows = [i for i, s in enumerate(splits) if s == suite.split]
        r = zeroshot_eval(model, tokenizer, parts[suite.split], suite, image_features=features[rows],
                          batch_size=batch_size)
        out[suite.name] = {"correct": round(r["top1"] * r["n"]), "n": r["n"], "top1": r["top1"]}
    return out
