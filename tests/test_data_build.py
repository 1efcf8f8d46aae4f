"""The corpus builder, end to end on the generated smoke corpus (no network): splits are leak-free, the stored
datasets have the schema, packed arrays load without pickle, and a second build does nothing."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from repro.data.build import BuildConfig, build, corpus_dir
from repro.data.captions import make_captions, readable, with_article
from repro.data.pack import load_packed, pack
from repro.data.render import RenderError, dhash, is_blank, pixel_sha256, render
from repro.data.schema import RawItem, features
from repro.data.splits import concept_splits, find_leaks, phrase_pattern
from repro.data.suites import Suite

datasets = pytest.importorskip("datasets", reason="the corpus is stored with Hugging Face datasets")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    manifest = build(BuildConfig(corpus="smoke", workers=1, pack_sizes=(32, 64)), root=root)
    return root, manifest


def stored(root):
    return datasets.load_from_disk(str(corpus_dir(root, "smoke") / "datasets"))


def test_splits_and_schema(smoke) -> None:
    root, manifest = smoke
    dd = stored(root)
    assert set(dd) == {"train", "val", "named", "zeroshot", "test-outline"}
    for split in dd.values():
        assert split.features == features()
        assert all(len(c) >= 1 for c in split["captions"])
    assert dd["train"][0]["image"].size == (64, 64) and dd["train"][0]["image"].mode == "RGB"
    assert manifest["leak_check"] == "passed" and manifest["held_out_styles"] == ["outline"]


def test_summary_records_what_drew_and_hashed_the_pictures(smoke) -> None:
    """A rebuild on another machine can differ (`dedup.phash_rounding_bits`): the summary says where it was built."""
    import numpy

    _, manifest = smoke
    assert manifest["versions"]["numpy"] == numpy.__version__ and "pillow" in manifest["versions"]
    assert {"machine", "cpus", "python"} <= set(manifest["hardware"])


def test_no_held_out_picture_style_or_concept_in_training(smoke) -> None:
    root, manifest = smoke
    dd = stored(root)
    train = dd["train"]
    eval_rows = [r for s in ("val", "named", "zeroshot", "test-outline") for r in dd[s]]
    assert not {r["sha256"] for r in train} & {r["sha256"] for r in eval_rows}
    assert "outline" not in set(train["style"])
    zs_ids, zs_names = set(dd["zeroshot"]["concept_id"]), set(dd["zeroshot"]["name"])
    assert zs_ids and not zs_ids & set(train["concept_id"])
    assert not zs_ids & set(dd["val"]["concept_id"]) and not zs_ids & set(dd["test-outline"]["concept_id"])
    for captions in train["captions"]:
        for caption in captions:
            assert not any(name in caption for name in zs_names), caption
    assert sorted(zs_names) == manifest["zeroshot_concepts"]


def test_find_leaks_catches_planted_leaks(smoke) -> None:
    root, manifest = smoke
    dd = stored(root)
    train = [dict(r) for r in dd["train"].remove_columns("image")]
    evals = [dict(r) | {"split": s} for s in ("zeroshot", "test-outline") for r in dd[s].remove_columns("image")]
    assert find_leaks(train, evals, manifest["zeroshot_concepts"], ["outline"]) == []
    planted = train + [evals[0], dict(train[0], captions=[f"a {manifest['zeroshot_concepts'][0]}"])]
    problems = find_leaks(planted, evals, manifest["zeroshot_concepts"], ["outline"])
    assert any("same pixels" in p for p in problems) and any("names a zero-shot concept" in p for p in problems)


def test_packed_arrays_load_without_pickle(smoke) -> None:
    root, manifest = smoke
    dd = stored(root)
    for split in dd:
        for size in (32, 64):
            p = load_packed(corpus_dir(root, "smoke") / "packed" / f"{split}_{size}.npz")
            assert p.images.shape == (len(dd[split]), size, size, 3) and p.images.dtype == np.uint8
            assert p.fields["concept_id"] == dd[split]["concept_id"] and p.captions == dd[split]["captions"]
    first = np.asarray(dd["val"][0]["image"])
    assert np.array_equal(load_packed(corpus_dir(root, "smoke") / "packed" / "val_64.npz").images[0], first)


def test_suites_match_their_splits(smoke) -> None:
    root, _ = smoke
    data = json.loads((corpus_dir(root, "smoke") / "suites.json").read_text())
    dd = stored(root)
    suites = [Suite.from_dict(s) for s in data["suites"]]
    assert {s.name for s in suites} >= {"smoke-category/val", "smoke-concept/zeroshot", "smoke-concept/test-outline"}
    for s in suites:
        assert set(s.classes) == set(dd[s.split][s.label]) and len(s.classnames) == len(s.classes)
        assert all("{}" in t for t in s.templates)
    assert data["supervised"]["classes"] and data["supervised"]["label"] == "category"


def test_second_build_does_nothing(smoke) -> None:
    root, manifest = smoke
    path = corpus_dir(root, "smoke") / "manifest.json"
    mtime = path.stat().st_mtime_ns
    again = build(BuildConfig(corpus="smoke", workers=1, pack_sizes=(32, 64)), root=root)
    assert again == manifest and path.stat().st_mtime_ns == mtime


def test_build_is_deterministic(smoke, tmp_path) -> None:
    root, manifest = smoke
    other = build(BuildConfig(corpus="smoke", workers=1, pack_sizes=(32, 64)), root=tmp_path)
    assert other["counts"] == manifest["counts"] and other["zeroshot_concepts"] == manifest["zeroshot_concepts"]
    a, b = stored(root)["train"]["sha256"], stored(tmp_path)["train"]["sha256"]
    assert a == b


# --- the parts ----------------------------------------------------------------------------------------------

def test_concept_splits_are_stratified_and_deterministic() -> None:
    strata = {f"c{i}": f"s{i % 4}" for i in range(200)}
    a, b = concept_splits(strata, seed=0), concept_splits(strata, seed=0)
    assert a == b and a != concept_splits(strata, seed=1)
    for s in ("s0", "s1", "s2", "s3"):
        members = [c for c in strata if strata[c] == s]
        assert sum(a[c] == "zeroshot" for c in members) == 5 and sum(a[c] == "val" for c in members) == 5


def test_phrase_pattern_matches_whole_words_only() -> None:
    p = phrase_pattern(["dog", "hot dog", "cat"])
    assert p.search("a hot dog") and p.search("Dog face") and not p.search("a doghouse") and not p.search("category")


def test_captions() -> None:
    item = RawItem("emoji:1f989", "owl", "fluent-flat", "fluent-flat", "svg", b"", tags=["bird", "owl", "wise"])
    caps = make_captions(item)
    assert caps[:2] == ["owl", "an owl"] and any("emoji" in c for c in caps) and any("bird" in c for c in caps)
    held_out = make_captions(RawItem("emoji:1f989", "owl", "fluent-3d", "fluent-3d", "webp", b""))
    assert not any("3d" in c or "emoji" in c for c in held_out)  # held-out styles are never named
    assert with_article("umbrella") == "an umbrella" and with_article("people hugging") == "people hugging"
    assert with_article("OpenMoji emoji") == "an OpenMoji emoji" and with_article("dice") == "a dice"
    assert with_article("flag of solomon islands") == "a flag of solomon islands"
    assert with_article("globe showing americas") == "a globe showing americas" and with_article("boots") == "boots"
    assert readable("flag: Japan") == "flag of japan" and readable("arrow-left") == "arrow left"
    assert make_captions(RawItem("x", "  ", "noto", "noto", "png", b"")) == []


def test_render_composites_on_white_and_keeps_aspect() -> None:
    rgba = Image.new("RGBA", (40, 20), (255, 0, 0, 255))
    buf = io.BytesIO()
    rgba.save(buf, format="PNG")
    out = np.asarray(render("png", buf.getvalue(), 32))
    assert out.shape == (32, 32, 3)
    assert (out[0, 0] == 255).all() and tuple(out[16, 16]) == (255, 0, 0)  # white margin, red centre
    assert is_blank(Image.new("RGB", (8, 8), (3, 3, 3))) and not is_blank(Image.fromarray(out))
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><circle cx="5" cy="5" r="4" fill="#00f"/></svg>'
    try:
        circle = render("svg", svg, 32)
    except RenderError as e:  # libcairo missing
        pytest.skip(str(e))
    assert tuple(np.asarray(circle)[16, 16]) == (0, 0, 255) and tuple(np.asarray(circle)[0, 0]) == (255, 255, 255)


def test_hashes_and_render_errors() -> None:
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8))
    assert pixel_sha256(img) == pixel_sha256(img.copy()) and len(dhash(img)) == 16
    brighter = Image.fromarray(np.clip(np.asarray(img, dtype=np.int16) + 3, 0, 255).astype(np.uint8))
    assert dhash(brighter) == dhash(img) and pixel_sha256(brighter) != pixel_sha256(img)
    with pytest.raises(RenderError, match="cannot decode png picture 'emoji:bad'"):
        render("png", b"not a png", 32, "emoji:bad")


def test_pack_round_trip_and_bad_file(tmp_path) -> None:
    rows = [{"image": Image.new("RGB", (28, 28), (i, i, i)), "captions": [f"c{i}", "x"], "concept_id": f"k{i}",
             "name": "n", "style": "photo"} for i in range(3)]
    info = pack(rows, 16, tmp_path / "p.npz", {"split": "t"})
    p = load_packed(tmp_path / "p.npz")
    assert info["n"] == 3 and p.images.shape == (3, 16, 16, 3) and p.captions[2] == ["c2", "x"]
    assert p.fields["concept_id"] == ["k0", "k1", "k2"] and p.fields["category"] == ["", "", ""]
    assert p.meta["split"] == "t" and p.meta["size"] == 16
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(ValueError, match="bad.npz is not a packed split"):
        load_packed(tmp_path / "bad.npz")


def test_summary_for_the_book(smoke, tmp_path) -> None:
    from repro.data.summary import read_summary, summary_or_smoke, write_summary

    root, manifest = smoke
    s = read_summary(write_summary(root, "smoke", tmp_path / "data" / "smoke"))
    assert set(s["names"]["suites"]) == {suite["name"] for suite in s["suites"]["suites"]}
    assert s["manifest"] == manifest and s["suites"]["suites"]
    assert s["grid"]["images"].shape[1:] == (3, 64, 64, 3) and s["grid"]["styles"] == ["filled", "striped", "outline"]
    assert set(s["captions"]) == {"train", "val", "named", "zeroshot", "test-outline"}
    assert summary_or_smoke(tmp_path, "smoke")["fallback"] is False  # found under tmp_path/data/smoke


def test_named_concepts_are_unseen_pictures_of_words_in_training_text(smoke) -> None:
    """The headline zero-shot split (paper §3.1): no picture of a `named` concept is trained on, while other
    pictures' captions (the smoke corpus's icons) name every one of them."""
    root, manifest = smoke
    dd = stored(root)
    train, named = dd["train"], dd["named"]
    named_ids, names = set(named["concept_id"]), set(named["name"])
    assert named_ids and not named_ids & set(train["concept_id"])
    assert not named_ids & (set(dd["val"]["concept_id"]) | set(dd["zeroshot"]["concept_id"]))
    assert not {r for r in named["sha256"]} & set(train["sha256"])
    for name in names:
        icons = [c for cid, c in zip(train["concept_id"], train["captions"], strict=True)
                 if not cid.startswith("smoke:") and any(name in x for x in c)]
        assert len(icons) >= manifest["named_concepts"]["min_pictures"], name
    assert manifest["named_concepts"]["concepts"] == len(named_ids)
    suites = {s["name"]: s for s in json.loads((corpus_dir(root, "smoke") / "suites.json").read_text())["suites"]}
    assert suites["smoke-concept/named"]["shift"] == "zero-shot concepts"
    assert suites["smoke-concept/zeroshot"]["shift"] == "unseen words"
    assert "never saw the words" in suites["smoke-concept/zeroshot"]["description"]


def test_find_leaks_catches_named_concepts_and_held_out_icon_sets(smoke) -> None:
    root, manifest = smoke
    dd = stored(root)
    train = [dict(r) for r in dd["train"].remove_columns("image")]
    evals = [dict(r) | {"split": s} for s in ("named", "val") for r in dd[s].remove_columns("image")]
    assert find_leaks(train, evals, [], []) == []
    named_row = dict(train[0], concept_id=evals[0]["concept_id"])
    icon_row = dict(train[0], concept_id="icon:game-icons:giraffe", subcategory="game-icons")
    problems = find_leaks(train + [named_row, icon_row], evals, [], [])
    assert any("named concept" in p for p in problems) and any("held-out icon set game-icons" in p for p in problems)


def test_named_concepts_rule() -> None:
    from repro.data.splits import named_concepts

    counts = {f"emoji:{k}": k % 5 for k in range(40)}
    chosen = named_concepts(counts, 5, seed=0, min_pictures=3)
    assert len(chosen) == 5 and all(counts[c] >= 3 for c in chosen)
    assert chosen == named_concepts(counts, 5, seed=0, min_pictures=3) != named_concepts(counts, 5, seed=1,
                                                                                             min_pictures=3)
    assert len(named_concepts(counts, 100, min_pictures=3)) == sum(v >= 3 for v in counts.values())


def test_held_out_icon_families() -> None:
    from repro.data.schema import held_out_icon_family

    assert held_out_icon_family("icon-park-outline") == held_out_icon_family("icon-park") == "icon-park"
    assert held_out_icon_family("game-icons") == "game-icons"
    assert held_out_icon_family("mdi") is None and held_out_icon_family("icon") is None
