"""Iconify icon sets as image–text pairs: "mdi:bicycle" is an SVG of a bicycle named "bicycle".

@iconify/json ships `collections.json` (one entry per set: name, author, licence, category, palette) and
`json/<prefix>.json` (the icons: SVG bodies without the `<svg>` wrapper, plus aliases). Only sets whose licence
asks for attribution at most are used, and never emoji sets (emoji art styles are evaluated separately and some
are held out), brand-logo sets (trademarks) or country-flag sets (their names are ISO codes, not words). Each set
is read on its own, so the ~460 MB of JSON is never held at once.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path

from repro.data.iconify import iconify_svg, monochrome_black
from repro.data.large import spread_sample
from repro.data.schema import RawItem, held_out_icon_family

#: Licences (SPDX, as collections.json spells them) that need attribution at most. Seen in 2.2.535 and excluded:
#: OFL-1.1 (font licence: the glyphs may not be sold alone), CC-BY-SA-3.0/-4.0 and MPL-2.0 (share-alike / file
#: copyleft), GPL-2.0-only/-or-later, GPL-3.0/-or-later, CC-BY-NC-4.0 and CC-BY-NC-SA-4.0 (non-commercial).
ALLOWED_LICENCES = frozenset({
    "MIT", "Apache-2.0", "CC0-1.0", "CC-BY-4.0", "CC-BY-3.0", "ISC", "BSD-2-Clause", "BSD-3-Clause", "Unlicense",
})
#: collections.json categories never used: emoji (art styles evaluated, some held out) and brand logos.
EXCLUDED_CATEGORIES = frozenset({"Emoji", "Logos"})
#: Emoji sets, also where their category is missing (hidden sets) or different.
EMOJI_PREFIXES = frozenset({
    "noto", "noto-v1", "twemoji", "openmoji", "fluent-emoji", "fluent-emoji-flat", "fluent-emoji-high-contrast",
    "emojione", "emojione-monotone", "emojione-v1", "fxemoji", "streamline-emojis",
})
#: Brand / technology-logo sets outside the "Logos" category (programming-language, product and file-type logos).
LOGO_PREFIXES = frozenset({
    "devicon", "devicon-plain", "devicon-line", "devicon-original", "skill-icons", "unjs", "vscode-icons",
    "material-icon-theme", "catppuccin", "file-icons", "fa-brands", "fa6-brands", "fa7-brands", "bxl",
    "entypo-social", "simple-icons", "logos", "cib", "brandico", "cbi", "token-branded", "thesvg", "thesvg-color",
})
#: Country-flag sets: allowed by licence, but their icon names are ISO codes ("jp", "gb-ukm"), not words.
FLAG_PREFIXES = frozenset({"circle-flags", "flag", "flagpack", "cif"})
#: Style words that name a variant of an icon, not what it shows: dropped from the name, kept as tags.
VARIANT_TOKENS = frozenset({
    "outline", "outlined", "filled", "fill", "solid", "bold", "duotone", "twotone", "rounded", "round", "sharp",
    "alt", "line", "regular", "light", "thin", "baseline", "duo", "flat", "broken", "stroke", "remix",
})
#: Variant words that are often part of the meaning ("traffic-light", "format-bold"): dropped only when the set
#: has the shorter name too, or declares the word as one of its variant suffixes.
AMBIGUOUS_VARIANTS = frozenset({"light", "line", "bold", "fill", "thin", "round", "flat", "stroke"})
SIZE_TOKENS = frozenset({"8", "10", "12", "14", "16", "18", "20", "24", "28", "32", "36", "40", "48", "64", "96"})
BRAND_TOKENS = frozenset({"logo", "logos", "brand", "brands"})
ICON_STATS = ("icons", "hidden", "brand_name", "bad_name", "alias_tags", "alias_transformed", "alias_other")


def find_package(raw: Path) -> Path:
    """The folder holding collections.json and json/: `raw` itself, raw/package, or raw/iconify/package."""
    raw = Path(raw)
    for cand in (raw, raw / "package", raw / "iconify" / "package", raw / "iconify"):
        if (cand / "collections.json").is_file() and (cand / "json").is_dir():
            return cand
    raise FileNotFoundError(f"no Iconify package (collections.json + json/) under {raw}; fetch source 'iconify'")


def exclusion_reasons(prefix: str, info: dict) -> list[str]:
    """Why set `prefix` may not be used (empty if it may)."""
    reasons = []
    spdx = (info.get("license") or {}).get("spdx") or "unknown"
    if spdx not in ALLOWED_LICENCES:
        reasons.append(f"licence {spdx}")
    name, category = str(info.get("name", "")), info.get("category") or ""
    if category == "Emoji" or prefix in EMOJI_PREFIXES or "emoji" in prefix or "emoji" in name.lower():
        reasons.append("emoji set")
    if category == "Logos" or prefix in LOGO_PREFIXES or re.search(r"\b(brands?|logos?|social)\b", name, re.I):
        reasons.append("brand logos")
    if prefix in FLAG_PREFIXES:
        reasons.append("country flags named by ISO code")
    if info.get("hidden"):
        reasons.append("hidden (deprecated) set")
    return reasons


def _set_row(prefix: str, info: dict, listed: bool) -> dict:
    reasons = exclusion_reasons(prefix, info) + ([] if listed else ["not listed in collections.json"])
    author = info.get("author") or {}
    return {
        "prefix": prefix, "name": info.get("name", prefix), "licence": (info.get("license") or {}).get("spdx", ""),
        "author": author.get("name", ""), "url": author.get("url", ""), "total": int(info.get("total", 0)),
        "category": info.get("category") or "", "palette": "multicolour" if info.get("palette") else "monochrome",
        "allowed": not reasons, "reason": "; ".join(reasons),
    }


def list_icon_sets(raw: Path) -> list[dict]:
    """Every set in the package (collections.json, plus set files it does not list), with whether it is allowed
    and, if not, why: prefix, name, licence, author, url, total, category, palette, allowed, reason."""
    pkg = find_package(raw)
    listed = json.loads((pkg / "collections.json").read_text(encoding="utf-8"))
    rows = {p: _set_row(p, info, True) for p, info in listed.items() if (pkg / "json" / f"{p}.json").is_file()}
    for path in sorted((pkg / "json").glob("*.json")):
        if path.stem not in rows:
            info = json.loads(path.read_text(encoding="utf-8")).get("info") or {}
            rows[path.stem] = _set_row(path.stem, info, False)
    return [rows[p] for p in sorted(rows)]


def readable_name(name: str, siblings: Collection[str] | None = None,
                  suffixes: Iterable[str] = ()) -> tuple[str, list[str]]:
    """("arrow-left-bold") → ("arrow left", ["bold"]): split on "-"/"_", strip variant words and size numbers from
    both ends (they become tags; sizes are dropped). With `siblings` (the set's icon names), an ambiguous word
    ("light", "bold") is stripped only if the shorter name exists or is one of the set's declared `suffixes`."""
    tokens = [t for t in re.split(r"[-_\s]+", name.lower()) if t]
    known = siblings if siblings is None or isinstance(siblings, (set, frozenset, dict)) else set(siblings)
    declared = {t for s in suffixes for t in re.split(r"[-_]+", s.lower()) if t}
    tags: list[str] = []

    def strippable(tok: str, rest: list[str]) -> bool:
        if tok in SIZE_TOKENS or re.fullmatch(r"\d+px|\d+x\d+", tok):
            return True
        if tok not in VARIANT_TOKENS:
            return False
        return tok not in AMBIGUOUS_VARIANTS or known is None or tok in declared or "-".join(rest) in known

    while len(tokens) > 1 and strippable(tokens[-1], tokens[:-1]):
        tok = tokens.pop()
        if not tok[0].isdigit():
            tags.insert(0, tok)
    while len(tokens) > 1 and tokens[0] in VARIANT_TOKENS and strippable(tokens[0], tokens[1:]):
        tags.insert(0, tokens.pop(0))
    return " ".join(tokens), list(dict.fromkeys(tags))


def _valid_name(name: str) -> bool:
    return bool(name) and not re.fullmatch(r"[\d\s]+", name)


def _set_entries(data: dict, stats: Counter) -> list[tuple[str, str, list[str]]]:
    """(icon name, readable name, tags) of every usable icon in one set file, sorted by icon name."""
    icons: dict = data.get("icons") or {}
    aliases: dict = data.get("aliases") or {}
    names = set(icons)
    suffixes = list((data.get("suffixes") or {}).keys()) + list((data.get("prefixes") or {}).keys())
    alias_tags: dict[str, list[str]] = {}
    for alias, spec in sorted(aliases.items()):
        root, chain, transformed = alias, 0, False
        while root in aliases and chain < 20:  # aliases may point at aliases
            transformed |= any(k in aliases[root] for k in ("rotate", "hFlip", "vFlip"))
            root, chain = aliases[root].get("parent", ""), chain + 1
        if transformed:  # a flipped / rotated picture: its name does not describe the parent
            stats["alias_transformed"] += 1
        elif root in icons and not spec.get("hidden"):
            alias_tags.setdefault(root, []).append(readable_name(alias, names, suffixes)[0])
            stats["alias_tags"] += 1
        else:
            stats["alias_other"] += 1
    in_set_categories: dict[str, list[str]] = {}
    for title, members in (data.get("categories") or {}).items():
        for member in members:
            in_set_categories.setdefault(member, []).extend(t.strip().lower() for t in title.split("/") if t.strip())
    out = []
    for icon_name in sorted(icons):
        if icons[icon_name].get("hidden"):
            stats["hidden"] += 1
            continue
        if BRAND_TOKENS & set(re.split(r"[-_]+", icon_name.lower())):
            stats["brand_name"] += 1
            continue
        name, variant_tags = readable_name(icon_name, names, suffixes)
        if not _valid_name(name):
            stats["bad_name"] += 1
            continue
        tags = alias_tags.get(icon_name, []) + variant_tags + in_set_categories.get(icon_name, [])
        out.append((icon_name, name, tags))
    return out


def iter_icons(raw: Path, max_per_set: int | None = None, max_total: int | None = None, seed: int = 0,
               stats: Counter | None = None, by_name: bool = False,
               held_out_names: Collection[str] | None = None) -> Iterator[RawItem]:
    """One RawItem (kind "svg") per visible icon of every allowed set. `max_per_set` / `max_total` subsample
    deterministically for `seed`: sets are visited from smallest to largest and each takes at most an equal share
    of what is left of `max_total`, so every set is represented; `by_name` samples a capped set name by name
    (`repro.data.large.spread_sample`) instead of uniformly. `stats`, if given, counts what was skipped.

    The sets of held-out families (schema.HELD_OUT_ICON_SETS) come first, uncapped and outside `max_total`: with
    `held_out_names`, only their icons whose readable name is one of those names (the evaluation concepts)."""
    pkg = find_package(raw)
    stats = stats if stats is not None else Counter()
    allowed = [s for s in list_icon_sets(pkg) if s["allowed"]]
    for meta in (s for s in allowed if held_out_icon_family(s["prefix"])):
        data = json.loads((pkg / "json" / f"{meta['prefix']}.json").read_text(encoding="utf-8"))
        entries = [e for e in _set_entries(data, Counter()) if held_out_names is None or e[1] in held_out_names]
        stats["held_out_icons"] += len(entries)
        yield from _items(meta, data, entries)
    sets = sorted((s for s in allowed if not held_out_icon_family(s["prefix"])),
                  key=lambda s: (s["total"], s["prefix"]))
    remaining = max_total
    for i, meta in enumerate(sets):
        if remaining is not None and remaining <= 0:
            break
        data = json.loads((pkg / "json" / f"{meta['prefix']}.json").read_text(encoding="utf-8"))
        entries = _set_entries(data, stats)
        quota = len(entries) if max_per_set is None else min(len(entries), max_per_set)
        if remaining is not None:
            quota = min(quota, -(-remaining // (len(sets) - i)))  # ceil: an equal share of what is left
            remaining -= quota
        if quota < len(entries) and by_name:
            entries = spread_sample(entries, quota, f"{seed}:{meta['prefix']}")
        elif quota < len(entries):
            keep = sorted(random.Random(f"{seed}:{meta['prefix']}").sample(range(len(entries)), quota))
            entries = [entries[k] for k in keep]
        yield from _items(meta, data, entries)
        stats["icons"] += len(entries)


def _items(meta: dict, data: dict, entries: list[tuple[str, str, list[str]]]) -> Iterator[RawItem]:
    prefix, spdx = meta["prefix"], meta["licence"]
    set_tags = [meta["name"].lower()] + ([meta["category"].lower()] if meta["category"] else [])
    attribution = f"{meta['name']} by {meta['author']} ({spdx})"
    for icon_name, name, tags in entries:
        svg = monochrome_black(iconify_svg(data, icon_name)).encode()
        tags = [t for t in dict.fromkeys(tags + set_tags) if t and t != name]
        yield RawItem(concept_id=f"icon:{prefix}:{icon_name}", name=name, style="icon", source="iconify", kind="svg",
                      data=svg, tags=tags, category=meta["category"], subcategory=prefix, licence=spdx,
                      attribution=attribution)
