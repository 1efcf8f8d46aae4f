"""repro.data.emoji on tiny fixture trees laid out like the real npm packages (no network, no cache needed)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from repro.data import emoji
from repro.data.schema import EMOJI_STYLES
from repro.data.sources import SOURCES, data_dir

DOG, HEART, RAINBOW, WAVE, BIKE = (
    "emoji:1f436", "emoji:2764", "emoji:1f3f3-200d-1f308", "emoji:1f44b", "emoji:1f6b2")
ALL = [DOG, HEART, RAINBOW, WAVE, BIKE]


def _write(path: Path, content) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content))


def _ds(unified, name, short_names, category, subcategory, **extra) -> dict:
    entry = {"name": name, "unified": unified, "non_qualified": None, "image": unified.lower() + ".png",
             "short_name": short_names[0], "short_names": short_names, "category": category,
             "subcategory": subcategory, "has_img_apple": True, "has_img_google": True, "has_img_twitter": True,
             "has_img_facebook": True}
    return entry | extra


def _svg(colour: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 72 72">'
            f'<circle cx="36" cy="36" r="30" fill="{colour}"/></svg>')


@pytest.fixture()
def raw(tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    _write(raw / "emoji-datasource/package/emoji.json", [
        _ds("1F436", "DOG FACE", ["dog"], "Animals & Nature", "animal-mammal"),
        _ds("2764-FE0F", "HEAVY BLACK HEART", ["heart"], "Smileys & Emotion", "heart", non_qualified="2764"),
        _ds("1F3F3-FE0F-200D-1F308", "RAINBOW FLAG", ["rainbow-flag"], "Flags", "flag"),
        _ds("1F44B", "WAVING HAND SIGN", ["wave", "+1"], "People & Body", "hand-fingers-open", skin_variations={
            "1F3FB": {"unified": "1F44B-1F3FB", "image": "1f44b-1f3fb.png", "has_img_apple": True}}),
        _ds("1F6B2", "BICYCLE", ["bike"], "Travel & Places", "transport-ground", has_img_google=False),
        _ds("1F3FB", "EMOJI MODIFIER FITZPATRICK TYPE-1-2", ["skin-tone-2"], "Component", "skin-tone"),
    ])
    _write(raw / "emojibase/package/en/data.json", [
        {"label": "dog face", "hexcode": "1F436", "tags": ["animal", "Dog", "face", "pet", "puppy", ""]},
        {"label": "red heart", "hexcode": "2764-FE0F", "tags": ["heart", "love", "<3", "✓"]},
        {"label": "rainbow flag", "hexcode": "1F3F3-FE0F-200D-1F308", "tags": ["pride", "rainbow"]},
        {"label": "waving hand", "hexcode": "1F44B", "tags": ["wave", "hello"],
         "skins": [{"label": "waving hand: light skin tone", "hexcode": "1F44B-1F3FB", "tags": ["skin"]}]},
        {"label": "regional indicator A", "hexcode": "1F1E6"},
    ])
    _write(raw / "openmoji/package/data/openmoji.json", [
        {"hexcode": "1F436", "group": "animals-nature", "annotation": "dog face", "tags": "animal, dog, puppies",
         "openmoji_tags": "friend, Puppy, doggy", "skintone": ""},
        {"hexcode": "1F44B-1F3FB", "group": "people-body", "annotation": "waving hand: light skin tone",
         "tags": "hand", "openmoji_tags": "skin-only", "skintone": "1", "skintone_base_hexcode": "1F44B"},
        {"hexcode": "1F6B2", "group": "travel-places", "annotation": "bicycle", "tags": "bike, cycle",
         "openmoji_tags": "", "skintone": ""},
        {"hexcode": "E000", "group": "extras-openmoji", "annotation": "goldfish", "tags": "",
         "openmoji_tags": "goldfish, fish", "skintone": ""},
    ])
    files = ["1f436", "2764-fe0f", "1f3f3-fe0f-200d-1f308", "1f44b", "1f44b-1f3fb", "1f3fb", "1f6b2"]
    for folder in ("noto/package/img/google/64", "twemoji/package/img/twitter/64"):
        for f in files:
            _write(raw / folder / f"{f}.png", f"{folder}:{f}".encode())
    _write(raw / "emoji-datasource/package/img/apple/64/1f436.png", b"apple, never used")
    for colour, folder in (("#fc0", "color"), ("#000", "black")):
        for f in [*files, "e000"]:
            _write(raw / "openmoji/package" / folder / "svg" / f"{f.upper()}.svg", _svg(colour))
    for f in ["1f436", "2764", "2764-fe0f", "1f3f3-fe0f-200d-1f308", "1f44b", "1f44b-1f3fb"]:  # no bicycle
        _write(raw / "fluent-3d/package/assets" / f"{f}.webp", f"3d:{f}".encode())
    body = '<path fill="#f00" d="M4 4h12v24H4z"/>'
    icons = {"dog-face": {"body": body}, "red-heart": {"body": body, "width": 33}, "rainbow-flag": {"body": body},
             "waving-hand-left": {"body": body}, "waving-hand-light": {"body": body}, "bicycle": {"body": body}}
    aliases = {"waving-hand": {"parent": "waving-hand-left", "hFlip": True}}
    chars = {"1f436": "dog-face", "2764": "red-heart", "1f3f3-200d-1f308": "rainbow-flag", "1f44b": "waving-hand",
             "1f44b-1f3fb": "waving-hand-light", "1f6b2": "bicycle"}
    for key in ("fluent-flat", "fluent-color", "fluent-high-contrast"):
        _write(raw / key / "package/icons.json", {"prefix": key, "icons": icons, "aliases": aliases, "width": 32,
                                                  "height": 32})
        _write(raw / key / "package/chars.json", {} if key == "fluent-color" else chars)  # colour borrows flat's
    return raw


@pytest.mark.parametrize("spelling, expected", [
    ("1F436", "1f436"), ("1f436", "1f436"), ("1f436.png", "1f436"), ("1F436.svg", "1f436"),
    ("1F3F3-FE0F-200D-1F308", "1f3f3-200d-1f308"), ("1f3f3-200d-1f308", "1f3f3-200d-1f308"),
    ("2764-FE0F", "2764"), ("0023-FE0F-20E3", "0023-20e3"), ("23-20e3", "0023-20e3"), ("emoji_u1f436.png", "1f436"),
    ("U+1F436", "1f436"), ("img/google/64/1f44b-1f3fb.png", "1f44b-1f3fb"), ("🐶", "1f436"), ("❤️", "2764"),
])
def test_normalise_codepoints(spelling: str, expected: str) -> None:
    assert emoji.normalise_codepoints(spelling) == expected
    assert emoji.concept_id(spelling) == "emoji:" + expected


@pytest.mark.parametrize("bad", ["", "fe0f", "dog", "1f436-zz", "110000", "README.md"])
def test_normalise_codepoints_rejects_non_code_points(bad: str) -> None:
    with pytest.raises(ValueError):
        emoji.normalise_codepoints(bad)


def test_metadata_merge(raw: Path) -> None:
    meta = emoji.load_emoji_metadata(raw)
    assert list(meta) == sorted(ALL)  # no Component, no skin tones, no regional indicator, no OpenMoji extras
    assert meta[DOG] == {"name": "dog face", "tags": ["animal", "dog", "face", "pet", "puppy", "puppies", "friend",
                                                      "doggy"],
                         "category": "Animals & Nature", "subcategory": "animal-mammal", "codepoints": "1F436"}
    assert meta[HEART]["name"] == "red heart" and meta[HEART]["codepoints"] == "2764-FE0F"
    assert meta[HEART]["tags"] == ["heart", "love", "<3"]  # the short name "heart" is not repeated; no bare "✓"
    assert meta[RAINBOW]["tags"] == ["pride", "rainbow", "rainbow-flag"]
    assert meta[WAVE]["tags"] == ["wave", "hello"]  # nothing from skin-tone variants; "+1" is no word
    assert meta[BIKE]["name"] == "bicycle" and meta[BIKE]["tags"] == ["bike", "cycle"]  # emojibase lacks it
    for m in meta.values():
        assert m["name"] and m["name"] == m["name"].lower() and m["name"] not in m["tags"]
        assert all(t and t == t.lower() for t in m["tags"]) and len(set(m["tags"])) == len(m["tags"])


def test_metadata_without_optional_sources(raw: Path) -> None:
    (raw / "emojibase/package/en/data.json").unlink()
    (raw / "openmoji/package/data/openmoji.json").unlink()
    meta = emoji.load_emoji_metadata(raw)
    assert meta[HEART]["name"] == "heavy black heart" and meta[DOG]["tags"] == ["dog"]
    with pytest.raises(FileNotFoundError, match="emoji-datasource"):
        emoji.load_emoji_metadata(raw.parent / "nowhere")


def test_iter_emoji_pairs_kinds_and_licences(raw: Path) -> None:
    items = list(emoji.iter_emoji(raw))
    pairs = [(it.concept_id, it.style) for it in items]
    expected = [(c, s) for c in sorted(ALL) for s in EMOJI_STYLES if (c, s) != (BIKE, "fluent-3d")]
    assert pairs == expected, "sorted by concept, then style order; bicycle has no Fluent 3D picture"
    # the "has_img_google": false column is ignored: Noto's bicycle file is there, so it is used
    kinds = {"noto": "png", "twemoji": "png", "fluent-3d": "webp"}
    for it in items:
        assert it.kind == kinds.get(it.style, "svg")
        assert it.source == emoji.STYLE_SOURCES[it.style][0] and it.source in SOURCES
        assert (it.licence, it.attribution) == (SOURCES[it.source].licence, SOURCES[it.source].attribution)
        assert b"apple" not in it.data and it.source not in ("emoji-datasource", "emojibase")
    by = {(it.concept_id, it.style): it for it in items}
    assert by[DOG, "noto"].data == b"noto/package/img/google/64:1f436"
    assert by[RAINBOW, "twemoji"].data == b"twemoji/package/img/twitter/64:1f3f3-fe0f-200d-1f308"
    assert by[HEART, "fluent-3d"].data == b"3d:2764-fe0f"  # fully qualified spelling wins a collision
    assert by[DOG, "openmoji-black"].data.decode() == _svg("#000")
    assert by[DOG, "noto"].licence == "Apache-2.0" and by[DOG, "openmoji-color"].licence == "CC-BY-SA-4.0"
    assert (by[WAVE, "fluent-color"].name, by[WAVE, "fluent-color"].category) == ("waving hand", "People & Body")
    assert [it.style for it in emoji.iter_emoji(raw, ["fluent-3d", "noto"]) if it.concept_id == DOG] == [
        "noto", "fluent-3d"]
    with pytest.raises(ValueError, match="unknown emoji styles"):
        list(emoji.iter_emoji(raw, ["apple"]))


def test_iconify_svg_documents(raw: Path) -> None:
    by = {(it.concept_id, it.style): it.data.decode() for it in emoji.iter_emoji(raw) if it.kind == "svg"}
    dog = by[DOG, "fluent-flat"]
    assert dog == ('<svg xmlns="http://www.w3.org/2000/svg" width="32" height="32" viewBox="0 0 32 32">'
                   '<path fill="#f00" d="M4 4h12v24H4z"/></svg>')
    assert 'viewBox="0 0 33 32"' in by[HEART, "fluent-color"]  # the icon's own width overrides the set's
    assert '<g transform="translate(32 0) scale(-1 1)">' in by[WAVE, "fluent-high-contrast"]  # alias, mirrored
    assert emoji.iconify_svg({"icons": {"a": {"body": "<g/>"}}, "aliases": {"b": {"parent": "a", "rotate": 1}}},
                             "b") == ('<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" '
                                      'viewBox="0 0 16 16"><g transform="rotate(90 8 8)"><g/></g></svg>')
    assert emoji.iconify_svg({"icons": {}, "aliases": {"x": {"parent": "y"}, "y": {"parent": "x"}}}, "x") is None


def test_iconify_svg_renders(raw: Path) -> None:
    try:
        import cairosvg  # noqa: F401
    except (ImportError, OSError) as e:  # OSError: cairocffi finds no libcairo
        pytest.skip(f"cairosvg cannot import: {e}")
    import numpy as np

    from repro.data.render import is_blank, render

    by = {(it.concept_id, it.style): it for it in emoji.iter_emoji(raw, ["fluent-flat"])}
    image = render("svg", by[WAVE, "fluent-flat"].data, 32)
    assert image.size == (32, 32) and not is_blank(image)
    red = np.asarray(image)[:, :, 1] < 128  # the bar sits at x 4..16 of 32, mirrored to 16..28
    assert red[:, 20:26].any() and not red[:, 2:7].any()


def test_coverage_and_shared(raw: Path) -> None:
    coverage = emoji.style_coverage(raw)
    assert list(coverage) == list(EMOJI_STYLES)
    assert coverage["noto"] == coverage["openmoji-black"] == coverage["fluent-color"] == set(ALL)
    assert coverage["fluent-3d"] == set(ALL) - {BIKE}
    assert emoji.shared_concepts(raw) == sorted(set(ALL) - {BIKE})
    assert emoji.shared_concepts(raw, ["noto", "twemoji"]) == sorted(ALL)
    os.remove(raw / "fluent-flat/package/chars.json")  # colour then borrows high contrast's map
    assert emoji.style_coverage(raw, ["fluent-color"])["fluent-color"] == set(ALL)


def test_missing_style_source_is_an_error(raw: Path) -> None:
    import shutil

    shutil.rmtree(raw / "fluent-3d")
    with pytest.raises(FileNotFoundError, match="fluent-3d"):
        list(emoji.iter_emoji(raw))
    assert len(list(emoji.iter_emoji(raw, ["noto"]))) == len(ALL)


REAL = data_dir() / "raw"


@pytest.mark.skipif(not all((REAL / k).is_dir() for k in {s for s, _ in emoji.STYLE_SOURCES.values()}
                            | {"emoji-datasource"}), reason="the real emoji sources are not fetched")
def test_real_sources_counts_are_plausible() -> None:
    meta = emoji.load_emoji_metadata(REAL)
    assert 1800 < len(meta) < 2100 and meta[DOG]["name"] == "dog face" and "puppy" in meta[DOG]["tags"]
    coverage = emoji.style_coverage(REAL)
    assert all(len(coverage[s]) == len(meta) for s in ("noto", "twemoji", "openmoji-color", "openmoji-black"))
    assert all(1500 < len(coverage[s]) < len(meta) for s in ("fluent-flat", "fluent-color", "fluent-high-contrast"))
    shared = emoji.shared_concepts(REAL)
    assert 1500 < len(shared) < 1650 and {DOG, BIKE, "emoji:1f355", "emoji:1f449"} <= set(shared)
