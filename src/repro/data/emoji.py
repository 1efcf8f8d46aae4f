"""Emoji in eight openly licensed art styles, as `RawItem`s sharing one concept id per emoji across styles.

Names, tags and categories come from emoji-datasource's emoji.json (the set of base emoji: no skin-tone variants,
no "Component" entries), emojibase-data (English label and tags) and OpenMoji's data/openmoji.json (annotation and
tags). Pictures come from Noto and Twemoji (64 px PNG), OpenMoji colour and black (SVG), the three Iconify Fluent
sets (flat, colour, high contrast: SVG bodies in icons.json, built into standalone SVG documents here) and Fluent
3D (256 px WebP). Apple's and Facebook's images, which emoji-datasource's metadata mentions, are never read.

Every source spells code points its own way ("1F3F3-FE0F-200D-1F308", "1f3f3-200d-1f308.png", "2764"); all are
normalised to lower-case hex joined by "-" with every FE0F (variation selector 16) removed: "emoji:1f3f3-200d-1f308".
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from repro.data.iconify import iconify_svg
from repro.data.schema import EMOJI_STYLES, RawItem
from repro.data.sources import SOURCES

log = logging.getLogger(__name__)
T = TypeVar("T")

#: style -> (SOURCES key of its images, picture kind)
STYLE_SOURCES: dict[str, tuple[str, str]] = {
    "noto": ("noto", "png"),
    "twemoji": ("twemoji", "png"),
    "openmoji-color": ("openmoji", "svg"),
    "openmoji-black": ("openmoji", "svg"),
    "fluent-flat": ("fluent-flat", "svg"),
    "fluent-color": ("fluent-color", "svg"),
    "fluent-high-contrast": ("fluent-high-contrast", "svg"),
    "fluent-3d": ("fluent-3d", "webp"),
}
#: Folders of the file-per-emoji styles, relative to raw/<source>; files are named by code points.
IMAGE_FOLDERS = {
    "noto": "package/img/google/64",
    "twemoji": "package/img/twitter/64",
    "openmoji-color": "package/color/svg",
    "openmoji-black": "package/black/svg",
    "fluent-3d": "package/assets",
}
METADATA_FILES = {
    "emoji-datasource": "emoji-datasource/package/emoji.json",
    "emojibase": "emojibase/package/en/data.json",
    "openmoji": "openmoji/package/data/openmoji.json",
}
#: An Iconify Fluent set whose chars.json is empty (fluent-emoji 1.2.7) borrows the code point -> icon name map of
#: these sets: all Fluent sets name their icons alike ("dog-face"); only names the set itself has are used.
CHARS_FALLBACK = ("fluent-flat", "fluent-high-contrast")
SKIN_TONES = frozenset({"1f3fb", "1f3fc", "1f3fd", "1f3fe", "1f3ff"})
_EXTENSION = re.compile(r"\.(png|svg|webp|gif|jpe?g)$")
_HEX = re.compile(r"[0-9a-f]{1,6}")
_SHORT_NAME = re.compile(r"[a-z0-9][a-z0-9 '&.-]*")


def normalise_codepoints(s: str) -> str:
    """The concept-id part of a code-point sequence in any source's spelling ("1F436", "1f3f3-200d-1f308",
    "2764-FE0F.svg", "emoji_u1f436.png", "U+1F436", or the emoji itself): lower-case hex of at least 4 digits
    joined by "-", every FE0F removed. Raises ValueError if `s` is not a code-point sequence."""
    text = s.strip()
    if text and not text.isascii():
        values = [ord(c) for c in text]
    else:
        stem = _EXTENSION.sub("", text.replace("\\", "/").rsplit("/", 1)[-1].lower())
        parts = [p.removeprefix("u+").removeprefix("u") for p in re.split(r"[-_\s]+", stem.removeprefix("emoji_"))]
        if not all(_HEX.fullmatch(p) for p in parts):
            raise ValueError(f"not a code-point sequence: {s!r}")
        values = [int(p, 16) for p in parts]
    values = [v for v in values if v != 0xFE0F]
    if not values or max(values) > 0x10FFFF:
        raise ValueError(f"not a code-point sequence: {s!r}")
    return "-".join(f"{v:04x}" for v in values)


def concept_id(s: str) -> str:
    """"emoji:" + normalise_codepoints(s)."""
    return "emoji:" + normalise_codepoints(s)


def _read_json(path: Path):
    return json.loads(path.read_bytes())


def _clean(text: str) -> str:
    return " ".join(str(text).lower().split())


def _split_tags(text) -> list[str]:
    return text if isinstance(text, list) else str(text or "").split(",")


def _by_concept(pairs: Iterable[tuple[str, T]]) -> dict[str, T]:
    """concept id -> value from (code-point spelling, value) pairs, skipping spellings that are no code points.
    Where spellings collide once FE0F is removed, the fully qualified one (most FE0F) wins, then the first sorted."""
    best: dict[str, tuple[tuple[int, str], T]] = {}
    for spelling, value in pairs:
        try:
            cid = concept_id(spelling)
        except ValueError:
            continue
        rank = (-spelling.lower().count("fe0f"), spelling.lower())
        if cid not in best or rank < best[cid][0]:
            best[cid] = (rank, value)
    return {cid: value for cid, (_, value) in best.items()}


def load_emoji_metadata(raw: Path) -> dict[str, dict]:
    """concept id -> {"name", "tags", "category", "subcategory", "codepoints"} for every base emoji of
    emoji-datasource (sorted by concept id), with emojibase's English label as the name (else emoji-datasource's
    name, lower-cased) and tags merged from emojibase, OpenMoji (tags, openmoji_tags) and emoji-datasource's short
    names: lower-case, de-duplicated, never the name, each with a letter or digit. `codepoints` is the fully
    qualified sequence ("1F3F3-FE0F-200D-1F308"). emoji-datasource is required; emojibase and OpenMoji are optional
    enrichments (a warning is logged where one is missing)."""
    raw = Path(raw)
    path = raw / METADATA_FILES["emoji-datasource"]
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: fetch it first with repro.data.sources.fetch('emoji-datasource')")
    meta: dict[str, dict] = {}
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    tags: dict[str, list[str]] = {}
    short_names: dict[str, list[str]] = {}
    for entry in _read_json(path):  # skin-tone variants are nested under "skin_variations": never read
        unified = entry.get("unified") or ""
        if entry.get("category") == "Component" or not unified:
            continue
        cid = concept_id(unified)
        if cid in meta or SKIN_TONES.intersection(cid[6:].split("-")):
            continue
        meta[cid] = {"name": _clean(entry.get("name") or ""), "tags": [], "category": entry.get("category") or "",
                     "subcategory": entry.get("subcategory") or "", "codepoints": unified.upper()}
        tags[cid] = []
        short_names[cid] = [s for s in map(_clean, (n.replace("_", " ") for n in entry.get("short_names") or []))
                            if _SHORT_NAME.fullmatch(s)]
    for key in ("emojibase", "openmoji"):
        path = raw / METADATA_FILES[key]
        if not path.is_file():
            log.warning("%s not found: emoji names and tags are made without %s", path, key)
            continue
        for entry in _read_json(path):
            if not entry.get("hexcode") or entry.get("skintone"):  # OpenMoji lists skin-tone variants flat
                continue
            try:
                cid = concept_id(entry["hexcode"])
            except ValueError:
                continue
            if cid not in meta:  # regional indicators, components, OpenMoji's extras: no base emoji
                continue
            if key == "emojibase":
                labels.setdefault(cid, _clean(entry.get("label") or ""))
                tags[cid] += _split_tags(entry.get("tags"))
            else:
                annotations.setdefault(cid, _clean(entry.get("annotation") or ""))
                tags[cid] += _split_tags(entry.get("tags")) + _split_tags(entry.get("openmoji_tags"))
    for cid, m in meta.items():
        m["name"] = labels.get(cid) or m["name"] or annotations.get(cid, "")
        seen = {m["name"], ""}
        for tag in map(_clean, tags[cid] + short_names[cid]):
            if tag not in seen and any(c.isalnum() for c in tag):  # no bare "!", "?", "✓"
                seen.add(tag)
                m["tags"].append(tag)
    return dict(sorted(meta.items()))


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _iconify_images(raw: Path, key: str, meta: Mapping[str, dict]) -> dict[str, bytes]:
    """concept id -> SVG bytes of Iconify set `key` (raw/<key>/package/{icons,chars}.json), for concepts in `meta`.
    Icons are found through chars.json; aliases, which chars.json never lists (Fluent's mirrored
    "backhand-index-pointing-right"), are matched to a still unmapped emoji whose name they spell."""
    package = raw / key / "package"
    if not (package / "icons.json").is_file():
        raise FileNotFoundError(f"{package / 'icons.json'} not found: fetch it with repro.data.sources.fetch({key!r})")
    icon_set = _read_json(package / "icons.json")
    icons, aliases = icon_set.get("icons") or {}, icon_set.get("aliases") or {}
    chars = _read_json(package / "chars.json") if (package / "chars.json").is_file() else {}
    if not chars:
        for other in (k for k in CHARS_FALLBACK if k != key and (raw / k / "package/chars.json").is_file()):
            for cp, name in _read_json(raw / other / "package/chars.json").items():
                chars.setdefault(cp, name)
        if not chars:
            log.warning("%s has no chars.json mapping and no Fluent set to borrow one from: no images", key)
    names = _by_concept((cp, name) for cp, name in chars.items() if name in icons or name in aliases)
    by_slug = {_slug(m["name"]): cid for cid, m in meta.items() if cid not in names}
    listed = set(chars.values())
    names.update({by_slug[a]: a for a in sorted(aliases) if a not in listed and a in by_slug})
    out = {}
    for cid in sorted(set(meta).intersection(names)):
        svg = iconify_svg(icon_set, names[cid])
        if svg is not None:
            out[cid] = svg.encode()
    return out


def _file_images(raw: Path, style: str, meta: Mapping[str, dict]) -> dict[str, Path]:
    """concept id -> image file of a file-per-emoji style, for concepts in `meta`."""
    folder = raw / STYLE_SOURCES[style][0] / IMAGE_FOLDERS[style]
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} not found: fetch it with repro.data.sources.fetch("
                                f"{STYLE_SOURCES[style][0]!r})")
    suffix = "." + STYLE_SOURCES[style][1]
    with os.scandir(folder) as entries:
        files = [(e.name, Path(e.path)) for e in entries if e.name.lower().endswith(suffix) and e.is_file()]
    return {cid: path for cid, path in _by_concept(files).items() if cid in meta}


def _styles(styles: Sequence[str]) -> list[str]:
    unknown = [s for s in styles if s not in STYLE_SOURCES]
    if unknown:
        raise ValueError(f"unknown emoji styles {unknown}; known: {', '.join(EMOJI_STYLES)}")
    return [s for s in EMOJI_STYLES if s in styles]


def _style_images(raw: Path, style: str, meta: Mapping[str, dict]) -> Mapping[str, Path | bytes]:
    if style in IMAGE_FOLDERS:
        return _file_images(raw, style, meta)
    return _iconify_images(raw, STYLE_SOURCES[style][0], meta)


def iter_emoji(raw: Path, styles: Sequence[str] = EMOJI_STYLES) -> Iterator[RawItem]:
    """One `RawItem` per (base emoji, style) that has a picture, sorted by concept id, then in EMOJI_STYLES order.
    `raw` is the folder holding the unpacked sources (data_dir() / "raw"). File pictures are read as each item is
    yielded; Iconify sets are loaded once and only the SVGs of base emoji are kept."""
    raw = Path(raw)
    styles = _styles(styles)
    meta = load_emoji_metadata(raw)
    images = {style: _style_images(raw, style, meta) for style in styles}
    for cid, m in meta.items():
        for style in styles:
            image = images[style].get(cid)
            if image is None:
                continue
            key, kind = STYLE_SOURCES[style]
            source = SOURCES[key]
            yield RawItem(concept_id=cid, name=m["name"], style=style, source=key, kind=kind,
                          data=image.read_bytes() if isinstance(image, Path) else image, tags=list(m["tags"]),
                          category=m["category"], subcategory=m["subcategory"], licence=source.licence,
                          attribution=source.attribution)


def style_coverage(raw: Path, styles: Sequence[str] = EMOJI_STYLES) -> dict[str, set[str]]:
    """style -> the base-emoji concept ids it has a picture of."""
    raw = Path(raw)
    meta = load_emoji_metadata(raw)
    return {style: set(_style_images(raw, style, meta)) for style in _styles(styles)}


def shared_concepts(raw: Path, styles: Sequence[str] = EMOJI_STYLES) -> list[str]:
    """The concept ids (sorted) that every one of `styles` (default: all eight) has a picture of."""
    coverage = style_coverage(raw, styles)
    return sorted(set.intersection(*coverage.values())) if coverage else []
