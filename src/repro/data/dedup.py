"""Near-duplicate pictures across sources: a 64-bit perceptual hash and a Hamming-radius index.

Many icon sets draw the same "home" or "arrow left"; rendered at 32 px they are often the same picture up to a
stroke width. `phash` is the DCT hash of Zauner (2010), as in the imagehash package but with an orthonormal
DCT, of the 32 px greyscale picture: the 8×8 lowest frequencies of its 2-D DCT, each compared with their median.
Two pictures are near duplicates when their hashes differ in at most `k` bits (`PerceptualDeduplicator`; the
`large` corpus uses `repro.data.large.NEAR_DISTANCE`). `HammingIndex` finds a stored hash within `k` bits by
multi-index hashing (Norouzi et al. 2012): the 64 bits are cut into k+1 blocks, and any hash within k bits agrees
exactly on one block.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from PIL import Image

from .splits import Deduplicator

HASH_SIZE, THUMB = 8, 32


def _dct_matrix(n: int) -> np.ndarray:
    """The orthonormal DCT-II matrix: `m @ x` is the DCT of the column vector x."""
    k, i = np.arange(n)[:, None], np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2 / n)
    m[0] /= np.sqrt(2)
    return m


_DCT = _dct_matrix(THUMB)


def _thumbnail(image: Image.Image) -> np.ndarray:
    """The 32×32 greyscale thumbnail `phash` hashes, as float64."""
    return np.asarray(image.convert("L").resize((THUMB, THUMB), Image.LANCZOS), dtype=np.float64)


def phash(image: Image.Image) -> int:
    """64-bit perceptual hash of `image` (any size; hashed as its 32×32 greyscale thumbnail), as an int."""
    grey = _thumbnail(image)
    low = (_DCT @ grey @ _DCT.T)[:HASH_SIZE, :HASH_SIZE].flatten()
    bits = low > np.median(low)
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def phash_rounding_bits(image: Image.Image) -> int:
    """How many of `phash`'s 64 bits flip when the same DCT is summed in another order, `_DCT @ (grey @ _DCT.T)`
    instead of `(_DCT @ grey) @ _DCT.T`: equal in exact arithmetic, so a flipped bit is decided by rounding, and
    another processor's matrix kernels may decide it the other way. A symmetric picture has DCT coefficients that are
    exactly zero, computed as noise of about 1e-30 and compared with a median that is itself such noise."""
    grey = _thumbnail(image)
    a = ((_DCT @ grey) @ _DCT.T)[:HASH_SIZE, :HASH_SIZE].flatten()
    b = (_DCT @ (grey @ _DCT.T))[:HASH_SIZE, :HASH_SIZE].flatten()
    return int(((a > np.median(a)) != (b > np.median(b))).sum())


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


class HammingIndex:
    """64-bit hashes with a payload; `find(h)` returns the payload of the first stored hash within `k` bits."""

    def __init__(self, k: int) -> None:
        if not 0 <= k < 32:
            raise ValueError(f"Hamming radius {k} must be in 0..31")
        self.k = k
        n = k + 1
        cuts = [round(64 * i / n) for i in range(n + 1)]
        self.blocks = [(cuts[i], cuts[i + 1] - cuts[i]) for i in range(n)]
        self.tables: list[dict[int, list[tuple[int, int]]]] = [defaultdict(list) for _ in self.blocks]

    def _keys(self, h: int) -> list[int]:
        return [(h >> start) & ((1 << width) - 1) for start, width in self.blocks]

    def add(self, h: int, payload: int) -> None:
        for table, key in zip(self.tables, self._keys(h), strict=True):
            table[key].append((h, payload))

    def find(self, h: int) -> int | None:
        """The payload of the earliest-added hash within `k` bits of `h`, or None."""
        best = None
        for table, key in zip(self.tables, self._keys(h), strict=True):
            for other, payload in table.get(key, ()):
                if (h ^ other).bit_count() <= self.k:  # a bucket is in insertion order: its first match is earliest
                    best = payload if best is None else min(best, payload)
                    break
        return best


class PerceptualDeduplicator(Deduplicator):
    """`Deduplicator` (exact pixels, equal dHash) plus a third rule: a perceptual hash within `k` bits of a kept
    training picture (near duplicate) or of an evaluation picture (dropped, like an equal one)."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.reserved = HammingIndex(k)
        self.kept = HammingIndex(k)

    def reserve(self, sha: str, dh: str, ph: int | None = None) -> None:
        super().reserve(sha, dh)
        if ph is not None:
            self.reserved.add(ph, -1)

    def admit(self, sha: str, dh: str, index: int, ph: int | None = None) -> int | None:
        known = sha in self.reserved_sha or sha in self.seen_sha or dh in self.reserved_dhash or dh in self.seen_dhash
        if known or ph is None:  # the exact rules decide (and count) first
            return super().admit(sha, dh, index)
        if self.reserved.find(ph) is not None:
            self.dropped["near an evaluation picture (perceptual hash)"] += 1
            return -1
        near = self.kept.find(ph)
        if near is not None:
            self.dropped["near duplicate (perceptual hash)"] += 1
            return near
        self.kept.add(ph, index)
        return super().admit(sha, dh, index)
