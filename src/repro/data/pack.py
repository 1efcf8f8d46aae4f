"""Packed splits: every image of a split pre-decoded into one uint8 array [N, H, W, 3] plus its text, in one
compressed `.npz` file that loads straight into (GPU) memory — training never waits on image decoding, and the
`gpu` profile's data travels to the GPU machine as a few files. Text is stored as a UTF-8 JSON blob, so loading
needs no pickle (`np.load(..., allow_pickle=False)`)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..files import atomic_write

TEXT_FIELDS = ("concept_id", "name", "style", "source", "category", "subcategory")


@dataclass
class PackedSplit:
    """A split in memory: `images` uint8 [N, H, W, 3]; `captions[i]` the captions of image i; `fields[f][i]` its
    text fields (concept_id, name, style, source, category, subcategory); `meta` what the builder recorded."""

    images: np.ndarray
    captions: list[list[str]]
    fields: dict[str, list[str]]
    meta: dict

    def __len__(self) -> int:
        return len(self.images)


def resize(image: Image.Image, size: int) -> np.ndarray:
    """RGB uint8 [size, size, 3]: Lanczos when shrinking, bicubic when enlarging (e.g. 28 px photos)."""
    image = image.convert("RGB")
    if image.size != (size, size):
        method = Image.LANCZOS if image.size[0] > size else Image.BICUBIC
        image = image.resize((size, size), method)
    return np.asarray(image, dtype=np.uint8)


def pack(rows: Iterable[Mapping], size: int, path: str | os.PathLike, meta: Mapping | None = None,
         n: int | None = None) -> dict:
    """Write rows (with a PIL `image`, `captions` and the TEXT_FIELDS) as a packed split; returns its summary.
    With `n`, the number of rows, the array is filled in place (one copy of the pixels in memory, not two)."""
    images: list[np.ndarray] = []
    array = np.zeros((n, size, size, 3), np.uint8) if n is not None else None
    captions, fields = [], {f: [] for f in TEXT_FIELDS}
    for i, row in enumerate(rows):
        if array is not None:
            array[i] = resize(row["image"], size)
        else:
            images.append(resize(row["image"], size))
        captions.append(list(row["captions"]))
        for f in TEXT_FIELDS:
            fields[f].append(row.get(f, "") or "")
    if array is not None and len(captions) != n:
        raise ValueError(f"pack was told {n} rows but got {len(captions)}")
    if array is None:
        array = np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8)
    save_packed(path, PackedSplit(array, captions, fields, dict(meta or {}, size=size, n=len(captions))))
    return {"path": str(path), "n": len(captions), "size": size, "bytes": Path(path).stat().st_size}


def save_packed(path: str | os.PathLike, split: PackedSplit) -> None:
    """Write a packed split atomically (the inverse of `load_packed`): its images and, as one UTF-8 JSON blob,
    its captions, fields and meta."""
    text = {"captions": split.captions, "fields": split.fields, "meta": split.meta}
    blob = np.frombuffer(json.dumps(text, ensure_ascii=False).encode("utf-8"), dtype=np.uint8)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, images=split.images, text=blob)

    atomic_write(path, write)


def _members(path: str | os.PathLike, *names: str) -> list[np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return [z[name] for name in names]
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"{path} is not a packed split: {e}") from e


def _decode_text(path: str | os.PathLike, blob: np.ndarray) -> dict:
    try:
        return json.loads(blob.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: its text is not valid JSON ({e})") from e


def load_packed(path: str | os.PathLike) -> PackedSplit:
    """Read a packed split (no pickle); a file that is not one raises ValueError naming it."""
    images, blob = _members(path, "images", "text")
    text = _decode_text(path, blob)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8 or len(text["captions"]) != len(images):
        raise ValueError(f"{path}: images {images.shape} {images.dtype} do not match {len(text['captions'])} rows")
    return PackedSplit(images, text["captions"], text["fields"], text["meta"])


def load_text(path: str | os.PathLike) -> dict:
    """The text of a packed split ({"captions", "fields", "meta"}) without decompressing its images."""
    return _decode_text(path, _members(path, "text")[0])
