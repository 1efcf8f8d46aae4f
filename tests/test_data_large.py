"""The `large` corpus's pieces on small generated inputs: the per-set cap sampled name by name, exact and
perceptual-hash de-duplication, the Hamming index, leak refusal and licence exclusion with the new sources, the
manifest's new statistics, and that `full` keeps its stamp."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from repro.data import build as build_mod
from repro.data.build import BuildConfig, assign_splits
from repro.data.dedup import HammingIndex, PerceptualDeduplicator, hamming, phash, phash_rounding_bits
from repro.data.icons import iter_icons
from repro.data.large import (
    NEAR_DISTANCE,
    PRESET,
    corpus_statistics,
    gpu_subset,
    memory_estimate,
    spread_sample,
)
from repro.data.pack import load_packed, pack
from repro.data.render import dhash, pixel_sha256

SQUARE = '<path fill="currentColor" d="M4 4h16v16H4z"/>'
VARIANTS = ("", "-outline", "-filled", "-solid", "-duotone", "-twotone", "-rounded", "-sharp", "-regular", "-broken")


def _entries(names: dict[str, int]) -> list[tuple[str, str, list[str]]]:
    return sorted((f"{n}-v{i}", n, []) for n, k in names.items() for i in range(k))


def test_spread_sample_keeps_every_name_before_a_second_variant() -> None:
    entries = _entries({"home": 6, "arrow": 4, "star": 1, "bell": 2})
    picked = spread_sample(entries, 6, "0:set")
    per_name = Counter(name for _, name, _ in picked)
    assert len(picked) == 6 and set(per_name) == {"home", "arrow", "star", "bell"}
    assert max(per_name.values()) <= 2  # round 2 only after round 1 gave every name one
    assert picked == sorted(picked) and picked == spread_sample(entries, 6, "0:set")  # order kept, deterministic
    assert picked != spread_sample(entries, 6, "1:set")
    assert spread_sample(entries, 100, "0:set") == entries


def _package(pkg: Path, sets: dict[str, tuple[str, dict[str, int]]]) -> None:
    (pkg / "json").mkdir(parents=True)
    listed = {p: {"name": p.upper(), "total": sum(n.values()), "author": {"name": "A"}, "category": "UI 24px",
                  "license": {"spdx": spdx}, "height": 24} for p, (spdx, n) in sets.items()}
    (pkg / "collections.json").write_text(json.dumps(listed))
    for p, (_, names) in sets.items():
        icons = {f"{name}{v}": {"body": SQUARE} for name, k in names.items() for v in VARIANTS[:k]}
        (pkg / "json" / f"{p}.json").write_text(json.dumps({"prefix": p, "icons": icons, "width": 24, "height": 24}))


def test_per_set_cap_by_name_and_licence_exclusion(tmp_path: Path) -> None:
    _package(tmp_path / "package", {
        "big": ("MIT", {"home": 10, "arrow": 10, "star": 10}),
        "small": ("CC0-1.0", {"bell": 2}),
        "copyleft": ("GPL-3.0", {"dog": 3}),
        "noncommercial": ("CC-BY-NC-4.0", {"cat": 3}),
    })
    items = list(iter_icons(tmp_path, max_per_set=6, by_name=True))
    per_set = Counter(i.subcategory for i in items)
    assert per_set == {"big": 6, "small": 2}  # the cap; GPL and non-commercial sets never enter
    assert Counter(i.name for i in items if i.subcategory == "big") == {"home": 2, "arrow": 2, "star": 2}
    assert {i.licence for i in items} == {"MIT", "CC0-1.0"}
    assert all(i.attribution.endswith(f"({i.licence})") for i in items)


def _drawing(kind: str, shift: int = 0, width: int = 4) -> Image.Image:
    image = Image.new("RGB", (64, 64), "white")
    d = ImageDraw.Draw(image)
    if kind == "house":
        d.polygon([(12 + shift, 32), (32 + shift, 10), (52 + shift, 32)], outline="black", width=width)
        d.rectangle([18 + shift, 32, 46 + shift, 56], outline="black", width=width)
    elif kind == "arrow":
        d.line([(10, 32), (54, 32)], fill="black", width=width)
        d.line([(10, 32), (26, 18)], fill="black", width=width)
        d.line([(10, 32), (26, 46)], fill="black", width=width)
    else:
        d.ellipse([12, 12, 52, 52], outline="black", width=width)
        d.line([(32, 12), (32, 52)], fill="black", width=width)
    return image


def _hashes(image: Image.Image) -> tuple[str, str, int]:
    return pixel_sha256(image), dhash(image), phash(image)


def test_phash_bits_of_a_symmetric_picture_are_decided_by_rounding() -> None:
    """A centred disc's DCT has coefficients that are zero in exact arithmetic; summed in two equal orders they
    come out as different noise, and so do the bits comparing them with the median. A picture of random pixels has
    no such ties."""
    disc = Image.new("L", (32, 32), 255)
    ImageDraw.Draw(disc).ellipse((6, 6, 25, 25), fill=0)
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32), dtype=np.uint8))
    assert phash_rounding_bits(disc) > 0 and phash_rounding_bits(noise) == 0


def test_perceptual_dedup_merges_identical_and_near_identical_not_different() -> None:
    house, same, nudged = _drawing("house"), _drawing("house"), _drawing("house", shift=1)
    assert _hashes(house) == _hashes(same)
    assert pixel_sha256(nudged) != pixel_sha256(house) and hamming(phash(nudged), phash(house)) <= NEAR_DISTANCE
    assert hamming(phash(_drawing("arrow")), phash(house)) > NEAR_DISTANCE
    assert hamming(phash(_drawing("circle")), phash(house)) > NEAR_DISTANCE
    dedup = PerceptualDeduplicator(NEAR_DISTANCE)
    assert dedup.admit(*_hashes(house)[:2], 0, _hashes(house)[2]) is None
    assert dedup.admit(*_hashes(same)[:2], 1, _hashes(same)[2]) == 0  # identical: merged into picture 0
    sha, dh, ph = _hashes(nudged)
    assert dh != dhash(house)  # moved by one pixel: only the perceptual hash sees it
    assert dedup.admit(sha, dh, 1, ph) == 0 and dedup.dropped["near duplicate (perceptual hash)"] == 1
    assert dedup.admit(*_hashes(_drawing("arrow"))[:2], 1, _hashes(_drawing("arrow"))[2]) is None
    assert dedup.admit(*_hashes(_drawing("circle"))[:2], 2, _hashes(_drawing("circle"))[2]) is None
    assert dedup.dropped["exact duplicate"] == 1


def test_perceptual_dedup_drops_pictures_near_an_evaluation_picture() -> None:
    dedup = PerceptualDeduplicator(NEAR_DISTANCE)
    dedup.reserve(*_hashes(_drawing("house")))
    sha, dh, ph = _hashes(_drawing("house", shift=1))
    assert dedup.admit(sha, dh, 0, ph) == -1
    assert dedup.admit(*_hashes(_drawing("arrow"))[:2], 0, _hashes(_drawing("arrow"))[2]) is None
    assert sum(dedup.dropped.values()) == 1


def test_hamming_index_matches_brute_force() -> None:
    rng = random.Random(0)
    stored = [rng.getrandbits(64) for _ in range(300)]
    index = HammingIndex(4)
    for i, h in enumerate(stored):
        index.add(h, i)
    queries = [stored[7] ^ (1 << 3) ^ (1 << 40), stored[200] ^ 0b1111, rng.getrandbits(64), stored[0]]
    for q in queries:
        hits = [i for i, h in enumerate(stored) if hamming(h, q) <= 4]
        assert index.find(q) == (min(hits) if hits else None)
    with pytest.raises(ValueError):
        HammingIndex(40)


def _row(concept: str, name: str, style: str, image: Image.Image, captions: list[str], **kw) -> dict:
    sha, dh, ph = _hashes(image)
    return {"concept_id": concept, "name": name, "style": style, "source": kw.get("source", "iconify"),
            "category": kw.get("category", ""), "subcategory": kw.get("subcategory", ""), "licence": "MIT",
            "attribution": "A (MIT)", "captions": captions, "sha256": sha, "dhash": dh, "phash": ph}


def _emoji_rows() -> list[dict]:
    rows = []
    for i in range(6):  # one subcategory of six concepts: one goes to zeroshot, one to val
        image = Image.new("RGB", (64, 64), (40 * i, 255 - 40 * i, 90))
        ImageDraw.Draw(image).rectangle([5 + 7 * i, 5, 30 + 7 * i, 40 + i], fill=(i * 30, 0, 200))
        rows.append(_row(f"emoji:{i}", f"thing{i}", "noto", image, [f"thing{i}", f"a thing{i}"], source="noto",
                         category="c", subcategory="s"))
    return rows


def test_icon_named_like_a_zero_shot_concept_never_trains_and_leaks_are_refused(monkeypatch) -> None:
    config = BuildConfig.preset("large")
    emoji = _emoji_rows()
    splits, report = assign_splits(emoji, (), config)
    zs = report["zeroshot_concepts"][0]
    icons = [_row("icon:a:x", zs, "icon", _drawing("house"), [zs, f"an icon of {zs}"]),
             _row("icon:b:y", "arrow", "icon", _drawing("arrow"), ["arrow", f"arrow next to a {zs}"]),
             _row("icon:c:z", "circle", "icon", _drawing("circle"), ["circle"])]
    splits, report = assign_splits(emoji + icons, (), config)
    train = {r["concept_id"]: r for r in splits["train"]}
    assert "icon:a:x" not in train and report["dropped"]["names a zero-shot concept"] == 1
    assert train["icon:b:y"]["captions"] == ["arrow"]  # the caption naming it is scrubbed
    monkeypatch.setattr(build_mod, "scrub_captions", lambda captions, pattern: captions)
    with pytest.raises(RuntimeError, match="leaks evaluation data"):
        assign_splits(emoji + icons, (), config)


def test_corpus_statistics_memory_and_gpu_subset() -> None:
    train = [{"name": "Home", "captions": ["home", "a home icon"], "source": "iconify", "licence": "MIT",
              "subcategory": "mdi"},
             {"name": "home", "captions": ["home"], "source": "iconify", "licence": "CC0-1.0", "subcategory": "ph"},
             {"name": "pear", "captions": ["clip art of a pear"], "source": "openclipart-png", "licence": "CC0-1.0",
              "subcategory": "food"}]
    stats = corpus_statistics({"train": train, "val": train[:1]})
    assert stats["vocabulary_size"] == len({"home", "a", "icon", "clip", "art", "of", "pear"})
    assert stats["distinct_names"] == 2 and stats["train_pictures"] == 3 and stats["train_pairs"] == 4
    assert stats["words_per_caption"]["max"] == 5 and stats["captions_per_picture"]["mean"] == 1.33
    assert stats["train_by_source"] == {"iconify": 2, "openclipart-png": 1}
    assert stats["train_by_licence"] == {"CC0-1.0": 2, "MIT": 1} and stats["train_by_icon_set"] == {"mdi": 1, "ph": 1}
    assert stats["by_licence"]["val"] == {"MIT": 1}
    est = memory_estimate({"train": 300_000, "val": 10_000}, (32, 64))
    assert est["64"]["train_gib"] == round(300_000 * 64 * 64 * 3 / 2**30, 2) and est["64"]["fits_24_gib"]
    packed = [{"split": "train", "size": 32, "bytes": 80 * 2**20}, {"split": "val", "size": 32, "bytes": 20 * 2**20},
              {"split": "train", "size": 64, "bytes": 10 * 2**20}, {"split": "val", "size": 64, "bytes": 2**20}]
    gpu = gpu_subset(packed)
    assert gpu["32"]["all_fit"] is False and gpu["32"]["train_share_that_fits"] == 0.5
    assert gpu["64"]["all_fit"] is True and gpu["64"]["all_mib"] == 11.0


def test_full_keeps_its_stamp_and_large_preset() -> None:
    assert BuildConfig().stamp() == BuildConfig.preset("full").stamp() == "6dac8551a53b0dfb"
    large = BuildConfig.preset("large")
    assert large.max_icons is None and large.icons_by_name and large.near_distance == NEAR_DISTANCE
    assert {k: getattr(large, k) for k in PRESET} == PRESET and large.stamp() != BuildConfig().stamp()
    assert BuildConfig.preset("large", max_icons=500).max_icons == 500


def test_pack_in_place_equals_stacked(tmp_path: Path) -> None:
    rows = [{"image": _drawing(k), "captions": [k], "name": k} for k in ("house", "arrow", "circle")]
    a, b = pack(rows, 32, tmp_path / "a.npz"), pack(rows, 32, tmp_path / "b.npz", n=3)
    assert a["n"] == b["n"] == 3
    assert np.array_equal(load_packed(tmp_path / "a.npz").images, load_packed(tmp_path / "b.npz").images)
    with pytest.raises(ValueError, match="told 4 rows"):
        pack(rows, 32, tmp_path / "c.npz", n=4)


def test_smoke_with_near_duplicates_builds_and_records_statistics(tmp_path: Path) -> None:
    manifest = build_mod.build(BuildConfig(corpus="smoke", workers=1, pack_sizes=(32,), near_distance=2),
                               root=tmp_path)
    assert manifest["leak_check"] == "passed"
    assert manifest["dropped"]["near duplicate (perceptual hash)"] > 0
    stats = manifest["statistics"]
    assert stats["train_pictures"] == sum(manifest["counts"]["train"].values())
    assert stats["vocabulary_size"] > 10 and stats["distinct_names"] > 10
    assert set(manifest["memory_estimate_gib"]) == set(manifest["gpu_subset"]) == {"32"}
    assert manifest["peak_memory"]["builder_mib"] > 0


def test_gpu_subset_fits_its_budget_and_keeps_every_evaluation_split(tmp_path: Path) -> None:
    from repro.data.build import corpus_dir
    from repro.data.large import write_gpu_subset
    from repro.data.pack import load_packed

    build_mod.build(BuildConfig(corpus="smoke", workers=1, pack_sizes=(32,)), root=tmp_path)
    src = corpus_dir(tmp_path, "smoke")
    eval_bytes = sum(p.stat().st_size for p in (src / "packed").glob("*_32.npz") if not p.name.startswith("train"))
    budget = (eval_bytes + 0.5 * (src / "packed" / "train_32.npz").stat().st_size) / 2**20
    record = write_gpu_subset(src, tmp_path / "gpu", size=32, budget_mib=budget)
    files = list((tmp_path / "gpu" / "packed").glob("*.npz"))
    mib = sum(f.stat().st_size for f in files) / 2**20
    assert mib <= budget and record["mib"] == round(mib, 2)
    assert 0 < record["train_share"] < 1 and set(record["eval_splits"]) >= {"val", "named", "zeroshot"}
    train = load_packed(tmp_path / "gpu" / "packed" / "train_32.npz")
    full = load_packed(src / "packed" / "train_32.npz")
    assert len(train) == record["train_pictures"] and set(train.fields["concept_id"]) <= set(full.fields["concept_id"])
    manifest = json.loads((tmp_path / "gpu" / "manifest.json").read_text())
    assert manifest["gpu_subset"] == record and (tmp_path / "gpu" / "suites.json").is_file()
    with pytest.raises(ValueError, match="evaluation splits alone"):
        write_gpu_subset(src, tmp_path / "gpu2", size=32, budget_mib=eval_bytes / 2**20 / 2)
