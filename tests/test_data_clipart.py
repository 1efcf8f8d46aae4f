"""Open Clip Art: metadata parsing, refusal of unsafe XML, PNG/SVG pairing and the noise filters.

Every test builds a tiny copy of the two Debian packages' layout (usr/share/openclipart/{png,svg}/<category>/...)
in tmp_path; one optional test reads the real packages when they are in the cache."""

from __future__ import annotations

import hashlib
import io
import shutil
import time
from pathlib import Path

import pytest
from PIL import Image

from repro.data import clipart
from repro.data.clipart import UnsafeXML, clean_title, clipart_report, iter_clipart, non_english, svg_metadata

PNG_DIR, SVG_DIR = "openclipart-png/usr/share/openclipart/png", "openclipart-svg/usr/share/openclipart/svg"
BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE svg [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;">]>
<svg xmlns="http://www.w3.org/2000/svg"><title>&c;</title></svg>"""
EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<svg xmlns="http://www.w3.org/2000/svg"><title>&x;</title></svg>"""


def svg(title: str, keywords: list[str] = (), creator: str = "Jane Painter", doctype: str = "") -> bytes:
    """An SVG with Open Clip Art's RDF metadata (publisher before creator, as in the real files)."""
    items = "".join(f"<rdf:li>{k}</rdf:li>" for k in keywords)
    return f"""<?xml version="1.0" encoding="UTF-8" standalone="no"?>
{doctype}<svg xmlns="http://www.w3.org/2000/svg" xmlns:cc="http://web.resource.org/cc/"
 xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
 width="40" height="40" viewBox="0 0 40 40">
  <metadata><rdf:RDF><cc:Work rdf:about="">
    <dc:title>{title}</dc:title>
    <dc:subject><rdf:Bag>{items}</rdf:Bag></dc:subject>
    <dc:publisher><cc:Agent><dc:title>Open Clip Art Library</dc:title></cc:Agent></dc:publisher>
    <dc:creator><cc:Agent><dc:title>{creator}</dc:title></cc:Agent></dc:creator>
  </cc:Work></rdf:RDF></metadata>
  <rect x="5" y="5" width="30" height="30" fill="#c00"/>
</svg>""".encode()


def png(colour: tuple[int, int, int], size: tuple[int, int] = (80, 80)) -> bytes:
    buf = io.BytesIO()
    image = Image.new("RGBA", size, (0, 0, 0, 0))
    image.paste(colour + (255,), (size[0] // 4, size[1] // 4, size[0] * 3 // 4, size[1] * 3 // 4))
    image.save(buf, "PNG")
    return buf.getvalue()


class Tree:
    """Writes pictures into both package trees under `raw`."""

    def __init__(self, raw: Path) -> None:
        self.raw, self.n = raw, 0

    def add(self, rel: str, svg_bytes: bytes | None, png_bytes: bytes | None = None) -> None:
        self.n += 1
        for folder, data in ((SVG_DIR, svg_bytes), (PNG_DIR, png_bytes)):
            if data is not None:
                path = self.raw / folder / f"{rel}.{folder[-3:]}"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)

    def picture(self, rel: str, title: str, **kw) -> None:
        self.add(rel, svg(title, **kw), png((self.n * 7 % 256, self.n * 13 % 256, 200)))


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    tree = Tree(raw)
    tree.picture("animals/birds/robin", "Robin Bird",
                 keywords=["bird", "animal", "Jane Painter", "clip art", "Public Domain", "svg",
                           "Open Clip Art Library", "hash", "Robin Bird", "jane@example.org", "hash(0x8561edc)"])
    tree.picture("food/fruit/apple_01", "Red_Apple2", keywords=["fruit", "food, red", "Other Artist"])
    tree.picture("food/pear", "PointingPear #3", creator="Other Artist")
    tree.picture("geography/spain_map", "Castilla y León")  # a place name with an accent: still not English
    tree.picture("signs_and_symbols/flags/foix", "France - Comte de Foix")  # a place name: "de" is fine
    tree.picture("animals/gatto", "Gatto nero")
    tree.picture("animals/toro", "Toro al tramonto")
    tree.picture("computer/lemon_1", "Lemon SVG theme")
    tree.picture("computer/blank", "")
    tree.picture("computer/file", "books-aj.svg")
    tree.picture("computer/svgid", "svg8145")
    tree.picture("special/missing", "Linked Image Not Found")
    tree.add("animals/evil", BOMB, png((1, 2, 3)))
    tree.add("animals/leak", EXTERNAL, png((4, 5, 6)))
    tree.add("animals/broken", b"<svg><metadata></svg>", png((7, 8, 9)))
    tree.add("office/pen", svg("Fountain Pen", keywords=["office"]), None)  # no PNG: the SVG is the picture
    tree.add("office/stamp", svg("Rubber Stamp"), png((10, 200, 30), size=(3, 2)))  # too tiny: the SVG instead
    tree.add("shapes/old_dtd", svg("Blue Star", doctype='<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 20010904//EN" '
                                   '"http://www.w3.org/TR/2001/REC-SVG-20010904/DTD/svg10.dtd" [\n <!ATTLIST svg '
                                   'xmlns:xlink CDATA #FIXED "http://www.w3.org/1999/xlink">\n]>\n'), png((0, 0, 255)))
    # The same picture in a second category (Debian symlinks these): kept once, in its real location.
    shutil.copy(raw / PNG_DIR / "animals/birds/robin.png", raw / PNG_DIR / "food/robin_copy.png")
    (raw / SVG_DIR / "food/robin_copy.svg").write_bytes(svg("Robin Bird again"))
    return raw


def test_svg_metadata() -> None:
    meta = svg_metadata(svg("Saturn", keywords=["planet", "space"], creator="Dan G."))
    assert meta == {"title": "Saturn", "keywords": ["planet", "space"], "author": "Dan G.",
                    "agents": ["Open Clip Art Library", "Dan G."]}
    assert svg_metadata(b'<svg xmlns="http://www.w3.org/2000/svg"/>')["title"] is None


@pytest.mark.parametrize("doc", [BOMB, EXTERNAL])
def test_entities_are_refused(doc: bytes) -> None:
    with pytest.raises(UnsafeXML):
        svg_metadata(doc)


def test_not_well_formed_raises_value_error() -> None:
    with pytest.raises(ValueError):
        svg_metadata(b"<svg><metadata></svg>")


@pytest.mark.parametrize("title, name", [
    ("Red_Apple2", "red apple"), ("PointingHand2", "pointing hand"), ("Clipart by Nicu Buculei - smiley111", "smiley"),
    ("horse#2", "horse"), ("Switch_Cisco_3750_2", "switch cisco"), ("eBuild", "ebuild"),
    ("05_fullmoon_openclipart", "fullmoon"), ("Radio/Wireless Tower", "radio wireless tower"),
    ("L&Atilde;&copy;zard", "lézard"), ("8 ball", "8 ball"),
])
def test_clean_title(title: str, name: str) -> None:
    assert clean_title(title) == name


@pytest.mark.parametrize("title, expected", [
    ("Toro al tramonto", True), ("defense de fumer", True), ("Aragón", True), ("Cubo giallo", True),
    ("Chodovian's Dog by Mikoláš Aleš", False), ("naval semaphore flag e", False), ("Saturn", False),
    ("Ice Cream Cone (B and W)", False), ("rondelle d'orange", True), ("3D glasses", False),
])
def test_non_english(title: str, expected: bool) -> None:
    assert non_english(title) is expected
    assert non_english("france comte de foix", place=True) is False


def test_iter_clipart_pairs_filters_and_cleans(raw: Path) -> None:
    items = {i.name: i for i in iter_clipart(raw)}
    assert set(items) == {"robin bird", "red apple", "pointing pear", "france comte de foix", "fountain pen",
                          "rubber stamp", "blue star"}
    robin = items["robin bird"]
    assert robin.kind == "png" and robin.data == (raw / PNG_DIR / "animals/birds/robin.png").read_bytes()
    assert robin.tags == ["bird", "animal"]  # no author, library words, "svg", "hash" or the name itself
    assert robin.category == "animals" and robin.subcategory == "birds"
    assert robin.concept_id == "clipart:" + hashlib.sha1(b"animals/birds/robin").hexdigest()[:12]
    assert (robin.style, robin.source, robin.licence) == ("clipart", "openclipart-png", "CC0-1.0")
    assert robin.attribution == "Open Clip Art Library, public domain"
    assert items["red apple"].tags == ["fruit", "food", "red"]  # another file's author is not a keyword either
    assert items["fountain pen"].kind == "svg" and items["fountain pen"].data.startswith(b"<?xml")
    assert items["rubber stamp"].kind == "svg"
    assert items["blue star"].kind == "png" and items["blue star"].category == "shapes"


def test_report_counts_every_reason(raw: Path) -> None:
    report = clipart_report(raw, examples=2)
    assert report["kept"] == 7
    assert report["dropped"] == {
        "unsafe_xml": 2, "parse_error": 1, "no_svg": 0, "duplicate": 1, "placeholder": 1, "blank_png": 0,
        "collection_title": 1, "short_title": 1, "filename_title": 2, "non_english": 3}
    assert report["examples"]["duplicate"] == [("food/robin_copy", None)]
    assert report["categories"] == {"animals": 1, "food": 2, "office": 2, "shapes": 1, "signs_and_symbols": 1}


def test_known_placeholder_and_blank_hashes(raw: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def digest(rel: str) -> str:
        return hashlib.sha256((raw / PNG_DIR / f"{rel}.png").read_bytes()).hexdigest()[:16]

    monkeypatch.setattr(clipart, "PLACEHOLDER_PNGS", frozenset({digest("food/pear")}))
    monkeypatch.setattr(clipart, "BLANK_PNGS", frozenset({digest("shapes/old_dtd")}))
    report = clipart_report(raw)
    assert report["dropped"]["placeholder"] == 2 and report["dropped"]["blank_png"] == 1 and report["kept"] == 5


def test_collection_titles_shared_by_many_pictures(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    for i in range(clipart.COLLECTION_MIN_PICTURES):
        tree.picture(f"shapes/stars/star_{i}", "gramastar")
    for i in range(3):
        tree.picture(f"transportation/sign_{i}", "AIGA_Symbol_Signs")
    tree.picture("recreation/golf", "Golf Symbols")  # one picture: a description, not a collection
    for stem in ("building_zazou", "phone_zazou", "server_zazou"):
        tree.picture(f"computer/{stem}", "Sallite")  # shared, and no path mentions it: a template
    for i in range(3):
        tree.picture(f"people/stickmen/sm_00{i}", "stick man")  # shared, but the folder mentions it
    report = clipart_report(tmp_path)
    assert report["dropped"]["collection_title"] == clipart.COLLECTION_MIN_PICTURES + 3 + 3 and report["kept"] == 4


def test_template_byline_titles_are_replaced_by_the_file_name(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    for stem in ("apple", "banana", "lemon1"):
        tree.picture(f"food/fruit/{stem}", "Clipart by Nicu Buculei - pear")
    tree.picture("signs_and_symbols/money/piggybank", "Clipart by Nicu Buculei - piggybank_2")
    assert sorted(i.name for i in iter_clipart(tmp_path)) == ["apple", "banana", "lemon", "piggybank"]
    assert clipart_report(tmp_path)["named_from_file"] == 3


def test_author_writing_in_another_language(tmp_path: Path) -> None:
    """An author whose titles are often flagged loses the titles whose words no English title uses."""
    tree = Tree(tmp_path)
    for i, title in enumerate(["Coccinella", "Farfalla", "Libellula", "Zanzara", "Lumaca", "Cavalletta", "Tigre",
                               "Orso", "Cubo giallo", "Uccello bianco e nero", "Butterfly"]):
        tree.picture(f"animals/it_{i}", title, creator="Architetto")
    tree.picture("animals/en", "Butterfly", creator="Someone Else")
    names = sorted(i.name for i in iter_clipart(tmp_path))
    assert names == ["butterfly", "butterfly"]


def test_missing_packages_raise(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        clipart_report(tmp_path)


REAL = Path.home() / ".cache" / "clip-repro" / "raw"


@pytest.mark.skipif(not (REAL / SVG_DIR).is_dir() or not (REAL / PNG_DIR).is_dir(), reason="no Open Clip Art cache")
def test_real_packages_counts() -> None:
    start = time.perf_counter()
    report = clipart_report(REAL)
    assert 2000 <= report["kept"] <= 4500 and time.perf_counter() - start < 120
    assert len(report["categories"]) == 22
    dropped = report["dropped"]
    assert dropped["duplicate"] > 1000 and dropped["placeholder"] >= 10 and 1 <= dropped["unsafe_xml"] <= 10
    assert dropped["parse_error"] == 0 and dropped["non_english"] > 100
