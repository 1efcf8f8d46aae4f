"""Iconify icons: licence and set filtering, readable names, alias tags, SVG validity, deterministic subsampling.

Every test builds a tiny @iconify/json tree (collections.json + json/<prefix>.json) in tmp_path; one optional test
reads the real package when it is in the cache."""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from repro.data import icons
from repro.data.icons import iter_icons, list_icon_sets, readable_name

SQUARE = '<path fill="currentColor" d="M4 4h16v16H4z"/>'


def _set(name: str, spdx: str, category: str | None, total: int, palette: bool = False, **extra) -> dict:
    info = {"name": name, "total": total, "author": {"name": f"{name} Author", "url": "https://example.org"},
            "license": {"title": spdx, "spdx": spdx}, "height": 24, "palette": palette, **extra}
    if category is not None:
        info["category"] = category
    return info


def _write(pkg: Path, listed: dict[str, dict], files: dict[str, dict]) -> None:
    (pkg / "json").mkdir(parents=True, exist_ok=True)
    (pkg / "collections.json").write_text(json.dumps(listed))
    for prefix, data in files.items():
        (pkg / "json" / f"{prefix}.json").write_text(json.dumps({"prefix": prefix, **data}))


def _plain(n: int, stem: str = "thing") -> dict:
    return {"icons": {f"{stem}-{chr(97 + i % 26)}{i // 26 or ''}": {"body": SQUARE} for i in range(n)},
            "width": 24, "height": 24}


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    """A raw folder holding an Iconify package with allowed, non-commercial, GPL, emoji, logo and flag sets."""
    pkg = tmp_path / "raw" / "iconify" / "package"
    mdi = {
        "icons": {
            "bicycle": {"body": SQUARE},
            "arrow-left-bold": {"body": SQUARE},
            "arrow-left": {"body": SQUARE},
            "traffic-light": {"body": SQUARE},
            "account-outline": {"body": SQUARE, "width": 32, "height": 16, "left": -2, "top": 1},
            "old-thing": {"body": SQUARE, "hidden": True},
            "24": {"body": SQUARE},
            "github-logo": {"body": SQUARE},
        },
        "aliases": {
            "bike": {"parent": "bicycle"},
            "cycle": {"parent": "bike"},  # an alias of an alias
            "arrow-right-bold": {"parent": "arrow-left-bold", "hFlip": True},  # another picture: no tag
            "gone": {"parent": "missing"},
        },
        "categories": {"Transportation / Road": ["bicycle"]},
        "width": 24, "height": 24,
    }
    listed = {
        "mdi": _set("Material Design Icons", "Apache-2.0", "Material", 6),
        "zero": _set("Zero Icons", "CC0-1.0", "UI 24px", 3),
        "nc": _set("No Commerce", "CC-BY-NC-4.0", "UI 24px", 3),
        "gpl": _set("Copyleft Icons", "GPL-3.0", "UI 24px", 3),
        "ofl": _set("Font Icons", "OFL-1.1", "UI 24px", 3),
        "twemoji": _set("Twitter Emoji", "CC-BY-4.0", "Emoji", 3, palette=True),
        "fluent-emoji": _set("Fluent Emoji", "MIT", None, 3, palette=True, hidden=True),
        "simple-icons": _set("Simple Icons", "CC0-1.0", "Logos", 3),
        "fa6-brands": _set("Font Awesome 6 Brands", "CC-BY-4.0", "Archive / Unmaintained", 3),
        "circle-flags": _set("Circle Flags", "MIT", "Flags / Maps", 3, palette=True),
    }
    files = {p: _plain(3, p) for p in listed if p != "mdi"}
    files["mdi"] = mdi
    files["unlisted"] = {**_plain(2), "info": _set("Unlisted", "MIT", None, 2)}
    _write(pkg, listed, files)
    return tmp_path / "raw"


def test_licence_and_set_filtering(raw: Path) -> None:
    sets = {s["prefix"]: s for s in list_icon_sets(raw)}
    assert {p for p, s in sets.items() if s["allowed"]} == {"mdi", "zero"}
    assert "licence CC-BY-NC-4.0" in sets["nc"]["reason"]
    assert "licence GPL-3.0" in sets["gpl"]["reason"]
    assert "licence OFL-1.1" in sets["ofl"]["reason"]
    assert "emoji" in sets["twemoji"]["reason"] and "emoji" in sets["fluent-emoji"]["reason"]
    assert "brand logos" in sets["simple-icons"]["reason"] and "brand logos" in sets["fa6-brands"]["reason"]
    assert "flags" in sets["circle-flags"]["reason"]
    assert "not listed" in sets["unlisted"]["reason"]
    assert sets["mdi"]["licence"] == "Apache-2.0" and sets["mdi"]["palette"] == "monochrome"
    assert sets["twemoji"]["palette"] == "multicolour"
    assert {i.subcategory for i in iter_icons(raw)} == {"mdi", "zero"}
    assert {"MIT", "CC0-1.0", "Apache-2.0"} <= icons.ALLOWED_LICENCES
    assert not any("NC" in s or "GPL" in s or "SA" in s or "OFL" in s for s in icons.ALLOWED_LICENCES)


@pytest.mark.parametrize("name, siblings, expected", [
    ("arrow-left-bold", None, ("arrow left", ["bold"])),
    ("arrow-left-bold", {"arrow-left", "arrow-left-bold"}, ("arrow left", ["bold"])),
    ("format-bold", {"format-bold"}, ("format bold", [])),  # "bold" is the meaning here, not a variant
    ("traffic-light", {"traffic-light"}, ("traffic light", [])),
    ("mic_20_filled", None, ("mic", ["filled"])),
    ("baseline-notifications-active", None, ("notifications active", ["baseline"])),
    ("outline-person-outline", None, ("person", ["outline"])),
    ("3d-glasses", None, ("3d glasses", [])),
    ("rank-3", None, ("rank 3", [])),
    ("outline", None, ("outline", [])),
])
def test_readable_name(name: str, siblings: set[str] | None, expected: tuple[str, list[str]]) -> None:
    assert readable_name(name, siblings) == expected


def test_declared_suffix_is_a_variant() -> None:
    assert readable_name("sun-light", {"sun-light"}, suffixes=["light"]) == ("sun", ["light"])


def test_items_names_tags_and_aliases(raw: Path) -> None:
    stats: Counter = Counter()
    items = {i.concept_id: i for i in iter_icons(raw, stats=stats)}
    bike = items["icon:mdi:bicycle"]
    assert bike.name == "bicycle" and bike.style == "icon" and bike.source == "iconify" and bike.kind == "svg"
    assert bike.tags[:2] == ["bike", "cycle"]  # alias names (also of an alias of an alias)
    assert {"transportation", "road", "material design icons", "material"} <= set(bike.tags)
    assert bike.licence == "Apache-2.0" and bike.category == "Material" and bike.subcategory == "mdi"
    assert bike.attribution == "Material Design Icons by Material Design Icons Author (Apache-2.0)"
    bold = items["icon:mdi:arrow-left-bold"]
    assert bold.name == "arrow left" and "bold" in bold.tags
    assert items["icon:mdi:traffic-light"].name == "traffic light"
    assert not any("arrow right" in t for i in items.values() for t in i.tags)  # flipped alias: not a tag
    for absent in ("old-thing", "24", "github-logo", "bike", "arrow-right-bold"):
        assert f"icon:mdi:{absent}" not in items
    assert stats["hidden"] == 1 and stats["bad_name"] == 1 and stats["brand_name"] == 1
    assert stats["alias_tags"] == 2 and stats["alias_transformed"] == 1 and stats["alias_other"] == 1
    assert stats["icons"] == len(items) == 5 + 3


def test_svg_is_standalone_and_renders(raw: Path) -> None:
    items = {i.concept_id: i for i in iter_icons(raw)}
    account = items["icon:mdi:account-outline"]
    root = ET.fromstring(account.data)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("viewBox") == "-2 1 32 16" and root.get("width") == "32" and root.get("height") == "16"
    assert b"currentColor" not in account.data and b'fill="#000"' in account.data
    assert ET.fromstring(items["icon:mdi:bicycle"].data).get("viewBox") == "0 0 24 24"  # the set's defaults
    try:
        import cairosvg  # noqa: F401
    except (ImportError, OSError):
        pytest.skip("cairosvg (libcairo) is not available")
    from repro.data.render import is_blank, render

    for item in items.values():
        image = render(item.kind, item.data, 32, item.concept_id)
        assert image.size == (32, 32) and not is_blank(image)
        assert int(np.asarray(image.convert("L")).min()) < 64  # black, not an invisible currentColor


def test_subsampling_is_deterministic_and_spread(tmp_path: Path) -> None:
    pkg = tmp_path / "package"
    sizes = {"aa": 5, "bb": 40, "cc": 40, "dd": 40, "ee": 200}
    listed = {p: _set(p.upper(), "MIT", "UI 24px", n) for p, n in sizes.items()}
    _write(pkg, listed, {p: _plain(n, p) for p, n in sizes.items()})

    def take(**kw) -> list[str]:
        return [i.concept_id for i in iter_icons(tmp_path, **kw)]

    assert len(take()) == sum(sizes.values())
    first = take(max_total=50, seed=1)
    assert first == take(max_total=50, seed=1)
    assert first != take(max_total=50, seed=2)
    per_set = Counter(c.split(":")[1] for c in first)
    assert len(first) == 50 and set(per_set) == set(sizes)  # every set represented, not just the first ones
    assert per_set["aa"] == 5 and max(per_set.values()) - min(per_set[p] for p in "bb cc dd ee".split()) <= 1
    capped = Counter(c.split(":")[1] for c in take(max_per_set=7, seed=0))
    assert capped == {"aa": 5, "bb": 7, "cc": 7, "dd": 7, "ee": 7}
    both = take(max_per_set=3, max_total=100)
    assert len(both) == 15


REAL = Path.home() / ".cache" / "clip-repro" / "raw"


@pytest.mark.skipif(not (REAL / "iconify" / "package" / "collections.json").is_file(), reason="no Iconify cache")
def test_real_package_counts() -> None:
    sets = list_icon_sets(REAL)
    allowed = [s for s in sets if s["allowed"]]
    assert 100 <= len(allowed) <= len(sets) - 40
    assert not any(s["category"] in ("Emoji", "Logos") for s in allowed)
    assert {"mdi", "lucide", "tabler"} <= {s["prefix"] for s in allowed}
    assert {"noto", "twemoji", "openmoji", "fluent-emoji-flat", "simple-icons"}.isdisjoint(s["prefix"] for s in allowed)
    start = time.perf_counter()
    n = sum(1 for _ in iter_icons(REAL))
    assert 200_000 <= n <= 400_000 and time.perf_counter() - start < 60
