"""The Open Clip Art Library (public domain), from Debian's openclipart-png and openclipart-svg packages.

Both packages hold the same tree (usr/share/openclipart/{png,svg}/<category>/.../<stem>.{png,svg}, 22 top-level
categories); Debian replaced byte-identical PNGs by symlinks. The PNG is the picture (faster than rendering the
SVG), the SVG's RDF metadata the text: dc:title and the dc:subject keywords. The SVGs are parsed as untrusted
input with expat, with defusedxml's default policy: a DOCTYPE may name an external DTD (3,586 files do; it is
never fetched) and declare attribute defaults (82 Sodipodi files), but any entity or notation declaration or
external entity reference is refused (6 Adobe Illustrator files), and every refused or broken file is counted.
The library is noisy, so pictures are dropped, with a count per reason, for: broken / unsafe XML, duplicate bytes,
placeholder or blank renders, collection titles shared by many pictures, empty or very short titles, titles that
are file names or ids, and titles that are not English (`non_english` and `_drop_non_english`).
"""

from __future__ import annotations

import hashlib
import html
import re
import struct
import xml.parsers.expat
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from repro.data.schema import RawItem

DC = "http://purl.org/dc/elements/1.1/ "
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns# "
#: sha256[:16] of PNGs that are not pictures: "Linked Image Not Found" renders (SVGs linking a missing bitmap;
#: found by viewing all 86 SVGs with an external <image>) and blank renders (every pixel one colour).
PLACEHOLDER_PNGS = frozenset({
    "fe313847b1f4b328", "7a0c00181a57fd0d", "6bd71279c3cb5ac0", "c03b4b363db38cf5", "bbb7c2b9c9041d17",
    "cb094f2c8b8bcb97", "9247e3d9ef183447", "dd3a4efcf49a6e1b", "60b1a3127c7a41e6", "de92eba08394d445",
})
BLANK_PNGS = frozenset({
    "a9fede43c90282aa", "0efbdc23d8480f6f", "9c722db0eccb30fb", "fa93e8fc133c7161", "75bd185bdae36a5d",
    "e2e865bb105e0cf6", "0c262ccfb64414ae", "fa6cf83170f56b9d",
})
PLACEHOLDER_TITLE = re.compile(r"(linked )?image not found|placeholder|missing image|no image|untitled", re.I)
#: Titles naming a collection or a theme rather than the picture ("Lemon SVG theme"); the weaker words only where
#: at least 3 different pictures share the title ("AIGA_Symbol_Signs"), and any title shared by 50 ("gramastar").
COLLECTION_TITLE = re.compile(r"\b(collection|theme|icon ?set|icons|cliparts|s[iu]bmission|various)\b", re.I)
COLLECTION_WEAK = re.compile(r"\b(clip ?art|signs|symbols|maps|advertising)\b", re.I)
COLLECTION_MIN_PICTURES = 50
BYLINE = re.compile(r"^clip\s*art by [^-]+-\s*", re.I)  # "Clipart by Nicu Buculei - smiley111"
ID_TITLE = re.compile(r"(svg|path|g|layer|rect|image|text|use|group|drawing|untitled|new document|document)"
                      r"[\s_#-]*\d*|[0-9a-f]{8,}|[\W\d_]*", re.I)
FILE_TITLE = re.compile(r"\.(svg|png|jpe?g|gif|ai|eps|wmf|xcf|pdf|odg)$|^[a-z]:\\|^/|\\|@|https?:|www\.", re.I)
#: Keywords that describe the library or the file, not the picture.
NOISE_KEYWORDS = frozenset({
    "clip art", "clipart", "openclipart", "open clip art", "open clip art library", "open clip art project",
    "public domain", "svg", "image", "media", "png", "hash", "unsorted", "special", "inkscape", "drawing", "icon",
    "icons", "logo",
})
#: Frequent function words of Italian, Spanish, French, German, Dutch and Portuguese that are not English words.
FOREIGN_WORDS = frozenset(
    "di del della dello dei delle degli il lo gli con per uno una che nel nella sul sulla al alla da dal dalla "
    "el los las y para por le les des du et avec pour une au aux sur de der das und mit ein eine einen von zum "
    "zur het een van met dos das com em e ed d l bianco bianca bianchi nero nera neri rosso rossa giallo gialla "
    "azzurro blu blanc blanche noir noire vert verte jaune bleu blanco negro rojo amarillo azul weiss schwarz rot "
    "gelb blau".split())
ENGLISH_WORDS = frozenset("the of and with for on in an to from at by my his her its".split())
NON_ENGLISH_AUTHOR_SHARE, NON_ENGLISH_AUTHOR_MIN = 0.05, 10
PLACE_FOLDERS = ("geography", "signs_and_symbols/flags")
REASONS = ("unsafe_xml", "parse_error", "no_svg", "duplicate", "placeholder", "blank_png", "collection_title",
           "short_title", "filename_title", "non_english")


class UnsafeXML(ValueError):
    """The document declares entities or notations, or references an external entity."""


class _Done(Exception):
    pass


def svg_metadata(data: bytes) -> dict:
    """title, keywords, author (dc:creator) and agents (creator, publisher, rights) of an SVG's cc:Work, parsed with
    expat; raises UnsafeXML for any entity or notation declaration or external entity reference (before it is
    expanded: no entity bomb, no file or network access), ValueError if the file is not well formed."""
    parser = xml.parsers.expat.ParserCreate(namespace_separator=" ")
    parser.SetParamEntityParsing(xml.parsers.expat.XML_PARAM_ENTITY_PARSING_NEVER)
    out: dict = {"title": None, "keywords": [], "author": "", "agents": []}
    stack: list[str] = []
    text: list[str] = []

    def refuse(*_args) -> None:
        raise UnsafeXML("entity declaration or reference")

    def start(name: str, _attrs) -> None:
        stack.append(name)
        text.clear()

    def end(name: str) -> None:
        value, parents = " ".join("".join(text).split()), stack[:-1]
        stack.pop()
        text.clear()
        if name == DC + "title" and parents and parents[-1].endswith(" Work"):
            out["title"] = value
        elif name == DC + "title" and any(p in (DC + "creator", DC + "publisher", DC + "rights") for p in parents):
            out["agents"].append(value)
            out["author"] = value if DC + "creator" in parents else out["author"]
        elif name == RDF + "li" and DC + "subject" in parents or name == DC + "subject" and not out["keywords"]:
            out["keywords"].append(value)
        elif name.endswith(" Work") or name.endswith(" metadata") and out["title"] is not None:
            raise _Done

    parser.EntityDeclHandler = parser.UnparsedEntityDeclHandler = parser.NotationDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.StartElementHandler, parser.EndElementHandler = start, end
    parser.CharacterDataHandler = text.append
    try:
        parser.Parse(data, True)
    except _Done:
        pass
    except xml.parsers.expat.ExpatError as e:
        raise ValueError(f"not well-formed XML: {e}") from e
    out["keywords"] = [k for k in out["keywords"] if k]
    return out


def _unmangle(text: str) -> str:
    """HTML entities decoded and UTF-8 read as Latin-1 repaired ("L&Atilde;&copy;zard" → "Lézard")."""
    text = html.unescape(html.unescape(text or ""))
    if re.search("[ÃÂ][\x80-\xbf]", text):
        try:
            text = text.encode("latin-1").decode("utf-8")
        except UnicodeError:
            pass
    return text.strip()


def clean_title(title: str) -> str:
    """Lower case, "Clipart by X - " and file extensions removed, camelCase / underscores / dashes / "#" to spaces,
    trailing numbers removed: "Clipart by Nicu Buculei - smiley111" → "smiley", "PointingHand2" → "pointing hand"."""
    title = BYLINE.sub("", _unmangle(title))
    title = re.sub(r"\.(svg|png)$", "", title, flags=re.I)
    title = re.sub(r"(?<=[a-z]{2})(?=[A-Z][a-z])", " ", title).lower()
    title = re.sub(r"[_\-#/]+", " ", title)
    title = re.sub(r"\b(open ?clip ?art|clip ?art|svg)\b|^0\d*\s", " ", title).strip()
    while True:
        shorter = re.sub(r"(\s+\d+|(?<=[a-z]{3})\d+)\s*$", "", title).strip(" .,;:")
        if shorter == title:
            break
        title = shorter
    return " ".join(title.split())


def _clean_keyword(word: str) -> str:
    return " ".join(re.sub(r"[_\-]+", " ", _unmangle(word)).lower().split())


def non_english(title: str, place: bool = False) -> bool:
    """The text-only part of the heuristic: no English function word ("the", "of", "by", ...) and a non-ASCII letter
    ("Aragón", "à suivre") or, unless the title is a `place` name ("France - Comte de Foix"), a frequent Italian /
    Spanish / French / German / Dutch / Portuguese function or colour word ("Toro al tramonto", "Cubo giallo")."""
    words = re.findall(r"[^\W\d_]+", title.lower())
    if ENGLISH_WORDS.intersection(words):  # "Chodovian's Dog by Mikoláš Aleš"
        return False
    if any(not w.isascii() for w in words):
        return True
    joining = [w for i, w in enumerate(words) if len(w) > 1 or 0 < i < len(words) - 1]  # "flag e" is English
    return not place and any(w in FOREIGN_WORDS for w in joining)


@dataclass
class _Entry:
    rel: str  # relative path without suffix, e.g. "animals/birds/penguin/tux_01"
    png: Path | None
    svg: Path
    digest: str = ""
    meta: dict = field(default_factory=dict)
    name: str = ""
    reason: str = ""  # why it was dropped; "" if kept


def find_roots(raw: Path) -> tuple[Path, Path]:
    """The png/ and svg/ folders of the two unpacked packages, given the raw folder or either package's folder."""
    raw = Path(raw)
    for base in (raw, raw.parent):
        png = base / "openclipart-png" / "usr/share/openclipart/png"
        svg = base / "openclipart-svg" / "usr/share/openclipart/svg"
        if png.is_dir() and svg.is_dir():
            return png, svg
    raise FileNotFoundError(f"no openclipart-png + openclipart-svg under {raw}; fetch both sources")


def _entries(png_root: Path, svg_root: Path) -> list[_Entry]:
    """Every picture path of either tree, real files before symlinks, so a duplicate keeps its real location."""
    rels = {p.relative_to(png_root).with_suffix("").as_posix() for p in png_root.rglob("*.png")}
    rels |= {p.relative_to(svg_root).with_suffix("").as_posix() for p in svg_root.rglob("*.svg")}
    out = []
    for rel in rels:
        png, svg = png_root / f"{rel}.png", svg_root / f"{rel}.svg"
        out.append(_Entry(rel, png if png.exists() else None, svg))
    return sorted(out, key=lambda e: (e.png is None or e.png.is_symlink(), e.svg.is_symlink(), e.rel))


def _scan(raw: Path) -> list[_Entry]:
    """Every picture path with its cleaned name and tags or the reason it was dropped."""
    out: list[_Entry] = []
    seen: set[str] = set()
    for entry in _entries(*find_roots(raw)):
        out.append(entry)
        if not entry.svg.is_file():
            entry.reason = "no_svg"
            continue
        svg_bytes = entry.svg.read_bytes()
        entry.digest = hashlib.sha256(entry.png.read_bytes() if entry.png else svg_bytes).hexdigest()[:16]
        if entry.digest in seen:
            entry.reason = "duplicate"
            continue
        seen.add(entry.digest)
        try:
            entry.meta = svg_metadata(svg_bytes)
        except UnsafeXML:
            entry.reason = "unsafe_xml"
        except ValueError:
            entry.reason = "parse_error"
        else:
            entry.name = clean_title(entry.meta["title"] or "")
    parsed = [e for e in out if not e.reason]
    pictures_per_title = Counter(e.meta["title"] for e in parsed)
    for e in parsed:
        # "Clipart by Nicu Buculei - pear" is on apple.svg, banana.svg, ...: a template; the file is named right
        if BYLINE.match(_unmangle(e.meta["title"] or "")) and pictures_per_title[e.meta["title"]] >= 2:
            e.name, e.meta["named_from_file"] = clean_title(e.rel.rpartition("/")[2]), True
        e.reason = _reason(e, pictures_per_title)
    _drop_non_english([e for e in parsed if not e.reason])
    agents = {_clean_keyword(c) for e in parsed for c in e.meta["agents"]} - {""}
    for e in parsed:
        if not e.reason:
            e.meta["tags"] = _tags(e, agents)
    return out


def _drop_non_english(entries: list[_Entry]) -> None:
    """Mark non-English titles: those `non_english` finds, and, of authors with 10+ titles of which 5% or more are
    such, every title with a word that no other author uses (in a title or keyword) in an English title. Flags and
    maps are place names, used as they are in English: for them only non-ASCII letters count."""
    flags: dict[str, list[bool]] = {}
    for e in entries:
        e.meta["place"] = e.rel.startswith(PLACE_FOLDERS)
        e.meta["foreign"] = non_english(e.name, e.meta["place"])
        if not e.meta["place"]:
            flags.setdefault(_clean_keyword(e.meta["author"]), []).append(e.meta["foreign"])
    foreign_authors = {a for a, f in flags.items()
                       if a and len(f) >= NON_ENGLISH_AUTHOR_MIN and sum(f) >= NON_ENGLISH_AUTHOR_SHARE * len(f)}
    english = [e for e in entries if _clean_keyword(e.meta["author"]) not in foreign_authors and not e.meta["foreign"]]
    vocabulary = {w for e in english for text in [e.name, *e.meta["keywords"]]
                  for w in re.findall(r"[a-z]+", text.lower())}
    for e in entries:
        words = set(re.findall(r"[a-z]+", e.name))
        suspect = _clean_keyword(e.meta["author"]) in foreign_authors and not e.meta["place"]
        if e.meta["foreign"] or suspect and not words <= vocabulary:
            e.reason = "non_english"


def _reason(e: _Entry, pictures_per_title: Counter) -> str:
    """The first text or picture problem of a parsed entry ("" if none), language aside."""
    raw_title = _unmangle(e.meta["title"] or "")
    if e.digest in PLACEHOLDER_PNGS or PLACEHOLDER_TITLE.search(raw_title):
        return "placeholder"
    if e.digest in BLANK_PNGS:
        return "blank_png"
    if len(re.sub(r"[^a-z]", "", e.name)) < 3 and e.name not in ("tv", "pc", "cd", "ox"):
        return "short_title"
    shared, loose = pictures_per_title[e.meta["title"]], re.sub(r"[_-]", " ", BYLINE.sub("", raw_title))
    if (COLLECTION_TITLE.search(e.name) or shared >= 3 and COLLECTION_WEAK.search(loose)
            or shared >= COLLECTION_MIN_PICTURES or shared >= 3 and not _path_mentions(e.rel, e.name)):
        return "collection_title"
    if FILE_TITLE.search(raw_title) or ID_TITLE.fullmatch(raw_title.strip()) or ID_TITLE.fullmatch(e.name):
        return "filename_title"
    return ""


def _path_mentions(rel: str, name: str) -> bool:
    """Whether a word of `name` starts like a word of the path ("stick man" ~ people/stickmen/sm_001): a title
    shared by several pictures that no path mentions is a template ("Sallite" on computer/building_zazou.svg)."""
    path_words = [w for w in re.findall(r"[a-z]+", rel.lower()) if len(w) >= 3]
    return any(p.startswith(w[:4]) or w.startswith(p[:4]) for w in re.findall(r"[a-z]+", name) if len(w) >= 3
               for p in path_words)


def _tags(e: _Entry, authors: set[str]) -> list[str]:
    """Cleaned keywords: no author names (of this file or any other), library words, foreign words or the name."""
    own = {_clean_keyword(c) for c in e.meta["agents"]}
    tags = []
    for word in e.meta["keywords"]:
        if _clean_keyword(word) in NOISE_KEYWORDS or _clean_keyword(word) in authors:
            continue
        parts = re.split(r"[,;]", word)
        for part in parts if all(len(p.split()) <= 3 for p in parts) else word.replace(",", " ").split():
            kw = _clean_keyword(part)
            if (len(kw) < 2 or kw.isdigit() or kw == e.name or kw in NOISE_KEYWORDS or kw in ENGLISH_WORDS
                    or max(map(len, kw.split())) > 20 or ID_TITLE.fullmatch(kw) or "0x" in kw or FILE_TITLE.search(kw)
                    or kw in authors
                    or any(a and a in kw for a in own) or non_english(kw) or COLLECTION_TITLE.search(kw)):
                continue
            tags.append(kw)
    return list(dict.fromkeys(tags))


def _png_size(path: Path) -> tuple[int, int]:
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return 0, 0
    return struct.unpack(">II", head[16:24])


def iter_clipart(raw: Path, min_png_side: int = 64, max_png_pixels: int = 2048 * 2048) -> Iterator[RawItem]:
    """One RawItem per kept picture: the PNG (kind "png"), or the SVG where there is no PNG or the PNG is tinier
    than `min_png_side` on its longer side or larger than `max_png_pixels` (some are 20,990×29,700)."""
    for e in _scan(raw):
        if e.reason:
            continue
        w, h = _png_size(e.png) if e.png else (0, 0)
        use_png = max(w, h) >= min_png_side and w * h <= max_png_pixels
        category, _, rest = e.rel.partition("/")
        yield RawItem(
            concept_id=f"clipart:{hashlib.sha1(e.rel.encode()).hexdigest()[:12]}", name=e.name, style="clipart",
            source="openclipart-png", kind="png" if use_png else "svg",
            data=(e.png if use_png else e.svg).read_bytes(), tags=e.meta["tags"], category=category,
            subcategory=rest.rpartition("/")[0], licence="CC0-1.0", attribution="Open Clip Art Library, public domain")


def clipart_report(raw: Path, examples: int = 0) -> dict:
    """Counts of kept pictures, of dropped ones per reason (REASONS), of kept ones named from their file (template
    titles) and of kept ones per category; with
    `examples`, up to that many (path, title) pairs per reason too."""
    entries = _scan(raw)
    kept = [e for e in entries if not e.reason]
    report = {"kept": len(kept), "dropped": {r: sum(e.reason == r for e in entries) for r in REASONS},
              "named_from_file": sum(bool(e.meta.get("named_from_file")) for e in kept),
              "categories": dict(sorted(Counter(e.rel.partition("/")[0] for e in kept).items()))}
    if examples:
        report["examples"] = {r: [(e.rel, e.meta.get("title")) for e in entries if e.reason == r][:examples]
                              for r in REASONS}
    return report
