"""Leak-free splits (paper §3.1's zero-shot transfer asks for classes and images never seen in training).

- Concepts (emoji, by code point) are split once, deterministically and stratified by subcategory, into `train`,
  `val` (validation and in-distribution test: the same styles, unseen pictures) and `zeroshot` (concepts whose
  pictures AND names never occur in training, in any style or source: "unseen words"). Then `named` takes some
  training concepts whose names other sources' captions contain (`named_concepts`): zero-shot as the paper
  defines it, the headline test.
- Held-out styles (schema.HELD_OUT_STYLES) never occur in training at all.
- Training pictures are de-duplicated (exact pixels, then near duplicates by difference hash), and any training
  picture equal or near-equal to an evaluation picture is removed.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping

#: Concept splits whose concepts never occur in training (held-out styles hold training concepts by design).
HELD_OUT_CONCEPT_SPLITS = ("val", "named", "zeroshot")


def concept_splits(
    subcategory_of: Mapping[str, str], seed: int = 0, val_frac: float = 0.1, zeroshot_frac: float = 0.1
) -> dict[str, str]:
    """concept id -> "train" | "val" | "zeroshot": within each subcategory, concepts are ordered by a seeded hash;
    the first `zeroshot_frac` go to zeroshot, the next `val_frac` to val (at least one each where the stratum has
    three or more concepts)."""
    strata: dict[str, list[str]] = defaultdict(list)
    for concept, sub in subcategory_of.items():
        strata[sub].append(concept)
    out = {}
    for members in strata.values():
        members.sort(key=lambda c: hashlib.sha256(f"{seed}:{c}".encode()).hexdigest())
        n = len(members)
        n_zs = max(1, round(n * zeroshot_frac)) if n >= 3 else 0
        n_val = max(1, round(n * val_frac)) if n >= 3 else 0
        for i, concept in enumerate(members):
            out[concept] = "zeroshot" if i < n_zs else "val" if i < n_zs + n_val else "train"
    return out


def named_concepts(candidates: Mapping[str, int], n: int, seed: int = 0, min_pictures: int = 3) -> list[str]:
    """The zero-shot concepts as the paper means them (§3.1): `n` of the `candidates` (concept id -> how many
    training pictures of *other* sources — icons, clip art — have its name in a caption) with at least
    `min_pictures`, taken in a seeded hash order. Their own pictures are then held out in every style, so the
    model learns the word from other pictures and is tested on pictures it never saw."""
    eligible = sorted((c for c, k in candidates.items() if k >= min_pictures),
                      key=lambda c: hashlib.sha256(f"named:{seed}:{c}".encode()).hexdigest())
    return sorted(eligible[:n])


def phrase_pattern(phrases: Iterable[str]) -> re.Pattern | None:
    """One regex matching any of `phrases` as whole words (case-insensitive), longest first."""
    words = sorted({p.strip().lower() for p in phrases if p.strip()}, key=len, reverse=True)
    if not words:
        return None
    return re.compile(r"(?<!\w)(?:" + "|".join(re.escape(w) for w in words) + r")(?!\w)", re.IGNORECASE)


def scrub_captions(captions: list[str], pattern: re.Pattern | None) -> list[str]:
    """The captions that do not mention any held-out concept name."""
    return captions if pattern is None else [c for c in captions if not pattern.search(c)]


class Deduplicator:
    """Keeps the first picture of each exact (pixel sha256) and near (dhash) duplicate group; remembers
    evaluation pictures so that no training picture equal or near-equal to one is kept."""

    def __init__(self) -> None:
        self.reserved_sha: set[str] = set()
        self.reserved_dhash: set[str] = set()
        self.seen_sha: dict[str, int] = {}
        self.seen_dhash: dict[str, int] = {}
        self.dropped: dict[str, int] = defaultdict(int)

    def reserve(self, sha: str, dh: str, ph: int | None = None) -> None:
        """Mark an evaluation picture: training may not contain it (`ph`, a perceptual hash, is not used here)."""
        self.reserved_sha.add(sha)
        self.reserved_dhash.add(dh)

    def admit(self, sha: str, dh: str, index: int, ph: int | None = None) -> int | None:
        """None if the picture may be kept as new; else the index it duplicates (-1 for an evaluation picture)."""
        if sha in self.reserved_sha or dh in self.reserved_dhash:
            self.dropped["equals an evaluation picture"] += 1
            return -1
        if sha in self.seen_sha:
            self.dropped["exact duplicate"] += 1
            return self.seen_sha[sha]
        if dh in self.seen_dhash:
            self.dropped["near duplicate"] += 1
            return self.seen_dhash[dh]
        self.seen_sha[sha] = index
        self.seen_dhash[dh] = index
        return None


def find_leaks(train_rows: Iterable[Mapping], eval_rows: Iterable[Mapping], zeroshot_names: Iterable[str],
               held_out_styles: Iterable[str]) -> list[str]:
    """Every way the training rows leak evaluation data: a shared pixel hash, a held-out style, an icon of a
    held-out icon set, a concept id of a held-out concept split (val, named, zeroshot), or a caption naming a
    zero-shot ("unseen words") concept. Empty means leak-free."""
    from .schema import held_out_icon_family

    eval_rows = list(eval_rows)
    eval_sha = {r["sha256"] for r in eval_rows}
    held_ids = {r["concept_id"]: r["split"] for r in eval_rows if r.get("split") in HELD_OUT_CONCEPT_SPLITS}
    styles = set(held_out_styles)
    pattern = phrase_pattern(zeroshot_names)
    problems = []
    for i, r in enumerate(train_rows):
        if r["sha256"] in eval_sha:
            problems.append(f"train row {i} ({r['concept_id']}): same pixels as an evaluation picture")
        if r["style"] in styles:
            problems.append(f"train row {i} ({r['concept_id']}): held-out style {r['style']}")
        if r["concept_id"].startswith("icon:") and held_out_icon_family(r.get("subcategory", "")):
            problems.append(f"train row {i} ({r['concept_id']}): held-out icon set {r['subcategory']}")
        if r["concept_id"] in held_ids:
            problems.append(f"train row {i}: {held_ids[r['concept_id']]} concept {r['concept_id']}")
        if pattern is not None:
            for c in r["captions"]:
                if pattern.search(c):
                    problems.append(f"train row {i} ({r['concept_id']}): caption {c!r} names a zero-shot concept")
    return problems
