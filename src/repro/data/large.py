"""The `large` corpus: every allowed Iconify icon set, all usable clip art and the emoji (issue 15).

It differs from `full` only in how icons are chosen and de-duplicated; emoji, clip art, the concept split, the
held-out styles and icon sets and the leak checks are the same, so the evaluation suites stay comparable — except
`named`, whose concepts each corpus picks from its own training text (repro.data.splits.named_concepts).

- Per-set cap: a set gives at most `SET_CAP` pictures. Big sets are mostly variants of one drawing ("home-outline",
  "home-bold", "home-duotone-thin"): iconmind has 31,722 icons but 5,286 names, fluent 19,876 icons and 2,972
  names. So a capped set is sampled name by name (`spread_sample`): first one variant of every name, then a second
  of every name, and so on, until the cap — the cap removes variants before it removes names. With 10,000, no set
  is more than about 4% of the icons (uncapped, iconmind alone would be 11%).
- Near duplicates across sets: besides equal pixels and an equal dHash (as in `full`), a 64-bit perceptual hash
  (`repro.data.dedup.phash`) within `NEAR_DISTANCE` bits of a kept training picture or of any evaluation picture.
  The hashes of 32-px greyscale renders always differ in an even number of bits. Chosen by looking at 7,028
  icons (20 common names across all sets plus 25 random per set): at distance ≤ 2, 88% of the 1,103 pairs share a
  name and nearly all others are the same drawing under another name ("check" / "checkmark", "search" /
  "magnifying glass"), with a few different drawings ("help" / "circle number 7"); at ≤ 4 about a third of the
  differently-named pairs are different drawings ("calendar" / "trash", "heart" / "label"). Only 0.4% of
  same-name pairs from different sets are within 2 bits: the rule removes copies, not styles.

Built on the 2-core Intel Xeon: 19.6 min wall on a quiet machine (36.7 min while a test run shared the cores), 3.9
GiB peak;
159,573 training pictures (1.05M picture–caption pairs), 14,627 caption words, 56,202 names; 461 training concepts
have names that at least 3 icons or clip art name, of which 191 form `named`. The packed training split is 88 /
155 / 208 MiB at 32 / 48 / 64 px (1.8 GiB in memory at 64 px), so no size travels whole in 60 MiB;
`write_gpu_subset` (`repro data gpu-subset`) keeps every evaluation split and 37% of the training pictures at
32 px in 59 MiB. Greyscale perceptual hashing also drops some training emoji: a training-style picture within 2
bits of the same concept in a held-out style (the fluent-color duck of the fluent-3d duck, openmoji-color
toothbrush of openmoji-black) is dropped, and the greyscale hash merges colour variants (the blue, red and orange
circles) and flat/colour Fluent pairs (violin).
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..files import atomic_write_text
from .pack import PackedSplit
from .vocabulary import words

SET_CAP = 10_000
NEAR_DISTANCE = 2
#: BuildConfig values of the `large` corpus (the rest as `full`).
PRESET = {"max_icons": None, "max_icons_per_set": SET_CAP, "icons_by_name": True, "near_distance": NEAR_DISTANCE}
GPU_BUDGET_MIB = 60
MEMORY_BUDGET_GIB = 24


def _order(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def spread_sample(entries: Sequence[tuple[str, str, list[str]]], quota: int, key: str) -> list:
    """`quota` of a set's (icon name, readable name, tags) entries, spread over readable names: round r takes the
    r-th variant (in a seeded order) of every name (in a seeded order) until the quota is met; the kept entries
    keep their original order. Deterministic for `key` (seed and set prefix)."""
    if quota >= len(entries):
        return list(entries)
    by_name: dict[str, list[int]] = defaultdict(list)
    for i, (_icon, name, _tags) in enumerate(entries):
        by_name[name].append(i)
    for members in by_name.values():
        members.sort(key=lambda i: _order(f"{key}:{entries[i][0]}"))
    names = sorted(by_name, key=lambda n: _order(f"{key}:{n}"))
    chosen: list[int] = []
    for r in range(max(len(m) for m in by_name.values())):
        for name in names:
            if len(by_name[name]) > r:
                chosen.append(by_name[name][r])
                if len(chosen) == quota:
                    return [entries[i] for i in sorted(chosen)]
    return [entries[i] for i in sorted(chosen)]


def _quantiles(values: Sequence[int]) -> dict:
    if not values:
        return {"mean": 0.0, "median": 0.0, "p95": 0.0, "max": 0}
    arr = np.asarray(values)
    return {"mean": round(float(arr.mean()), 2), "median": float(np.median(arr)),
            "p95": float(np.percentile(arr, 95)), "max": int(arr.max())}


def corpus_statistics(splits: Mapping[str, Sequence[Mapping]]) -> dict:
    """What the training text and pictures are made of: vocabulary size (distinct caption words), distinct names,
    caption lengths (words per caption, captions per picture), training pictures per source, per licence and per
    icon set; and, for every split, pictures per licence."""
    train = splits.get("train", [])
    vocabulary: Counter = Counter()
    lengths: list[int] = []
    for r in train:
        for c in r["captions"]:
            tokens = words(c)
            vocabulary.update(tokens)
            lengths.append(len(tokens))
    return {
        "train_pictures": len(train),
        "train_pairs": len(lengths),
        "vocabulary_size": len(vocabulary),
        "words_seen_5_times": sum(n >= 5 for n in vocabulary.values()),
        "distinct_names": len({r["name"].strip().lower() for r in train}),
        "words_per_caption": _quantiles(lengths),
        "captions_per_picture": _quantiles([len(r["captions"]) for r in train]),
        "train_by_source": dict(Counter(r["source"] for r in train).most_common()),
        "train_by_licence": dict(Counter(r["licence"] for r in train).most_common()),
        "train_by_icon_set": dict(Counter(r["subcategory"] for r in train if r["source"] == "iconify").most_common()),
        "by_licence": {s: dict(Counter(r["licence"] for r in rs).most_common()) for s, rs in sorted(splits.items())},
    }


def memory_estimate(counts: Mapping[str, int], sizes: Sequence[int]) -> dict:
    """GiB that the packed uint8 arrays take in memory (N × size² × 3 bytes), per size for the training split and
    for all splits, and whether all splits take at most half of a 24 GiB machine (the rest: model, process)."""
    out = {}
    total = sum(counts.values())
    for size in sizes:
        per = size * size * 3 / 2**30
        out[str(size)] = {"train_gib": round(counts.get("train", 0) * per, 2), "all_gib": round(total * per, 2),
                          "fits_24_gib": total * per <= MEMORY_BUDGET_GIB / 2}  # half: room for the model
    return out


def gpu_subset(packed: Sequence[Mapping], budget_mib: float = GPU_BUDGET_MIB) -> dict:
    """Which packed files travel to the GPU machine within `budget_mib`: per size, the MiB of all splits and of the
    evaluation splits, whether all fit, and the share of the training split that fits beside the evaluation ones."""
    out = {}
    for size in sorted({p["size"] for p in packed}):
        files = [p for p in packed if p["size"] == size]
        mib = {p["split"]: p["bytes"] / 2**20 for p in files}
        train = mib.get("train", 0.0)
        evaluation = sum(v for s, v in mib.items() if s != "train")
        room = max(0.0, budget_mib - evaluation)
        out[str(size)] = {"all_mib": round(train + evaluation, 1), "train_mib": round(train, 1),
                          "eval_mib": round(evaluation, 1), "all_fit": train + evaluation <= budget_mib,
                          "train_share_that_fits": round(min(1.0, room / train), 3) if train else 1.0}
    return out


def peak_memory_mib() -> dict:
    """Peak resident memory so far of this process and of its largest finished child (the render workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"builder_mib": round(own), "largest_worker_mib": round(children)}


def write_gpu_subset(corpus_dir: str | os.PathLike, out_dir: str | os.PathLike, size: int = 32,
                     budget_mib: float = GPU_BUDGET_MIB, splits: Sequence[str] | None = None, seed: int = 0) -> dict:
    """A corpus folder at `out_dir` that travels to the GPU machine within `budget_mib`: the evaluation splits
    `splits` (default: all) whole, and as many training pictures, drawn at random with `seed`, as fit beside
    them, packed at `size`; its manifest and suites are the corpus's, with a `gpu_subset` record of what was
    kept. Returns that record. Compressed sizes are measured, not estimated: the training share is shrunk until
    the files fit."""
    from .pack import load_packed, save_packed

    src, out = Path(corpus_dir), Path(out_dir)
    manifest = json.loads((src / "manifest.json").read_text(encoding="utf-8"))
    chosen = [p["split"] for p in manifest["packed"] if p["size"] == size and p["split"] != "train"
              and (splits is None or p["split"] in splits)]
    (out / "packed").mkdir(parents=True, exist_ok=True)
    for split in chosen:
        shutil.copyfile(src / "packed" / f"{split}_{size}.npz", out / "packed" / f"{split}_{size}.npz")
    eval_mib = sum((out / "packed" / f"{s}_{size}.npz").stat().st_size for s in chosen) / 2**20
    if eval_mib >= budget_mib:
        raise ValueError(f"the evaluation splits alone take {eval_mib:.1f} MiB at {size} px, over the "
                         f"{budget_mib} MiB budget: pass fewer splits")
    train = load_packed(src / "packed" / f"train_{size}.npz")
    order = np.random.default_rng(seed).permutation(len(train))
    path = out / "packed" / f"train_{size}.npz"
    share = min(1.0, (budget_mib - eval_mib) / (src / "packed" / f"train_{size}.npz").stat().st_size * 2**20)
    while True:
        rows = np.sort(order[:max(1, int(share * len(train)))])
        save_packed(path, PackedSplit(train.images[rows], [train.captions[i] for i in rows],
                                      {k: [v[i] for i in rows] for k, v in train.fields.items()},
                                      train.meta | {"n": len(rows), "subset_of": len(train), "subset_seed": seed}))
        total = eval_mib + path.stat().st_size / 2**20
        if total <= budget_mib or share < 0.01:
            break
        share *= 0.97 * budget_mib / total
    record = {"size": size, "budget_mib": budget_mib, "mib": round(total, 2), "eval_splits": chosen,
              "train_pictures": len(rows), "train_share": round(len(rows) / len(train), 4), "seed": seed}
    packed = [p for p in manifest["packed"] if p["size"] == size and p["split"] in chosen] + [
        {"split": "train", "size": size, "n": len(rows), "path": str(path.relative_to(out)),
         "bytes": path.stat().st_size}]
    atomic_write_text(out / "manifest.json", json.dumps(manifest | {"packed": packed, "gpu_subset": record,
                                                                     "subset_of": str(src)}, indent=1))
    shutil.copyfile(src / "suites.json", out / "suites.json")
    return record
