"""repro.data.byo: bring-your-own captioned data from image folders, CSV files, WebDataset shards and (mocked) Hub
datasets, into exactly the corpus schema; every kind of bad input is an error naming file and line, or with
skip_bad=True a counted, reported skip. Fixtures are generated in tmp_path (no network, no data cache)."""

from __future__ import annotations

import io
import json
import logging
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

datasets = pytest.importorskip("datasets")

from repro.data import byo  # noqa: E402 - after the importorskip
from repro.data.render import dhash, pixel_sha256  # noqa: E402
from repro.data.schema import features  # noqa: E402


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (12, 8), colour: tuple = (200, 30, 30),
                mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, colour).save(buffer, format=fmt)
    return buffer.getvalue()


def folder_with(tmp_path: Path, records: list, files: dict[str, bytes] | None = None, raw: bytes | None = None) -> Path:
    folder = tmp_path / "pics"
    folder.mkdir(exist_ok=True)
    for name, data in (files or {"a.png": image_bytes(), "b.jpg": image_bytes("JPEG", (10, 20))}).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    text = raw if raw is not None else "\n".join(r if isinstance(r, str) else json.dumps(r) for r in records).encode()
    (folder / "metadata.jsonl").write_bytes(text + b"\n")
    return folder


def shard(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


# ---------------------------------------------------------------------------------------------- image folders
def test_imagefolder_schema_grouping_and_columns(tmp_path: Path) -> None:
    files = {"a.png": image_bytes(), "sub/b.jpg": image_bytes("JPEG", (10, 20)),
             "c.png": image_bytes(size=(7, 5), colour=(0, 0, 255, 0), mode="RGBA")}
    folder = folder_with(tmp_path, [
        {"file_name": "a.png", "text": " a red box ", "license": "CC0-1.0", "attribution": "me"},
        {"file_name": "sub/b.jpg", "captions": ["first", "second"]},
        {"file_name": "a.png", "caption": "red again"},
        "",
        {"file_name": "c.png", "caption": "nothing to see"},
    ], files)
    ds = byo.load_imagefolder(folder)
    assert ds.features == features() and ds.column_names == list(features())
    assert len(ds) == 3
    assert ds["captions"] == [["a red box", "red again"], ["first", "second"], ["nothing to see"]]
    assert ds["concept_id"] == ["byo:0", "byo:1", "byo:2"] and ds["name"] == ["a red box", "first", "nothing to see"]
    assert set(ds["style"]) == {"byo"} and set(ds["source"]) == {str(folder)}
    assert ds["licence"] == ["CC0-1.0", "", ""] and ds["attribution"] == ["me", "", ""]
    assert set(ds["category"]) == set(ds["subcategory"]) == {""}
    images = ds["image"]
    assert [im.mode for im in images] == ["RGB"] * 3
    assert [im.size for im in images] == [(12, 8), (10, 20), (7, 5)]  # native size
    assert images[2].getpixel((3, 3)) == (255, 255, 255)  # transparent → white
    assert ds["sha256"] == [pixel_sha256(im) for im in images] and ds["dhash"] == [dhash(im) for im in images]
    assert byo.BadRows.of(ds) == []
    assert byo.load_imagefolder(folder, style="photo")["style"] == ["photo"] * 3


def test_imagefolder_alpha_composited_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 128  # half-transparent red
    buffer = io.BytesIO()
    Image.fromarray(rgba).save(buffer, format="PNG")
    folder = folder_with(tmp_path, [{"file_name": "x.png", "text": "pink"}], {"x.png": buffer.getvalue()})
    assert byo.load_imagefolder(folder)["image"][0].getpixel((0, 0)) == (255, 127, 127)


@pytest.mark.parametrize("records, reason", [
    ([{"file_name": "a.png"}],
     "missing caption (no 'captions' or 'caption' or 'text' field; fields present: file_name)"),
    ([{"file_name": "a.png", "text": "   "}], "empty caption in 'text'"),
    ([{"file_name": "a.png", "captions": []}], "empty caption in 'captions'"),
    ([{"file_name": "a.png", "captions": ["ok", 3]}], "caption field 'captions' holds int, not text"),
    ([{"text": "no file"}], "no 'file_name' field; fields present: text"),
    (["[1, 2]"], "expected a JSON object, got list"),
    (['{"file_name": "a.png", "text": '], "invalid JSON: Expecting value (column 32)"),
    ([{"file_name": "gone.png", "text": "x"}], "image file not found: gone.png ({folder}/gone.png)"),
    ([{"file_name": "bad.png", "text": "x"}], "cannot decode image bad.png: not a known image format"),
    ([{"file_name": "cut.png", "text": "x"}], "cannot decode image cut.png: "),
])
def test_imagefolder_errors_name_file_and_line(tmp_path: Path, records: list, reason: str) -> None:
    files = {"a.png": image_bytes(), "bad.png": b"not an image at all", "cut.png": image_bytes(size=(64, 64))[:60]}
    folder = folder_with(tmp_path, [{"file_name": "a.png", "text": "fine"}, *records], files)
    reason = reason.format(folder=folder)
    with pytest.raises(byo.ByoError) as e:
        byo.load_imagefolder(folder)
    assert str(e.value).startswith(f"{folder}/metadata.jsonl:2: {reason}")
    ds = byo.load_imagefolder(folder, skip_bad=True)
    assert len(ds) == 1 and len(byo.BadRows.of(ds)) == 1
    bad = byo.BadRows.of(ds)[0]
    assert (bad.file, bad.row) == (f"{folder}/metadata.jsonl", 2) and bad.reason.startswith(reason)


def test_imagefolder_non_utf8_and_skip_report(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    lines = [json.dumps({"file_name": "a.png", "text": "fine"}).encode(),
             b'{"file_name": "b.jpg", "text": "caf\xe9"}',
             json.dumps({"file_name": "b.jpg", "text": "also fine"}).encode(),
             json.dumps({"file_name": "nope.png", "text": "x"}).encode()]
    folder = folder_with(tmp_path, [], raw=b"\n".join(lines))
    meta = folder / "metadata.jsonl"
    with pytest.raises(byo.ByoError, match=re.escape(f"{meta}:2: line is not valid UTF-8 (invalid continuation byte "
                                                     "at byte 35)")):
        byo.load_imagefolder(folder)
    with caplog.at_level(logging.WARNING, logger="repro.data.byo_rows"):
        ds = byo.load_imagefolder(folder, skip_bad=True)
    assert ds["captions"] == [["fine"], ["also fine"]]
    report = byo.BadRows.of(ds)
    assert [str(b) for b in report] == [
        f"{meta}:2: line is not valid UTF-8 (invalid continuation byte at byte 35)",
        f"{meta}:4: image file not found: nope.png ({folder}/nope.png)",
    ]
    assert "2 bad rows skipped" in ds.info.description and f"{meta}:4: image file not found" in ds.info.description
    assert "2 bad rows skipped" in caplog.text and f"{meta}:2:" in caplog.text
    assert "2 bad rows skipped" in report.summary()


def test_imagefolder_empty_or_all_bad(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, [], raw=b"")
    with pytest.raises(byo.ByoError, match=re.escape(f"{folder}: no usable rows")):
        byo.load_imagefolder(folder)
    folder = folder_with(tmp_path, [{"file_name": "a.png", "text": ""}])
    with pytest.raises(byo.ByoError, match=re.escape(f"{folder}: no usable rows; 1 bad rows skipped")):
        byo.load_imagefolder(folder, skip_bad=True)
    with pytest.raises(FileNotFoundError, match="no metadata.jsonl"):
        byo.load_imagefolder(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        byo.load_imagefolder(tmp_path / "absent")


# ------------------------------------------------------------------------------------------------------- CSV
def write_csv(tmp_path: Path, text: str | bytes, name: str = "data.csv") -> Path:
    (tmp_path / "img").mkdir(exist_ok=True)
    (tmp_path / "img/a.png").write_bytes(image_bytes())
    (tmp_path / "img/b.webp").write_bytes(image_bytes("WEBP", (16, 16), (10, 200, 10)))
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def test_csv_groups_captions_and_resolves_relative_paths(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "path,caption,licence\nimg/a.png,a red box,CC-BY-4.0\nimg/b.webp,green\n"
                               'img/a.png,"a box, red",\n./img/a.png,third\n')
    ds = byo.load_csv(path)
    assert ds.features == features() and len(ds) == 2
    assert ds["captions"] == [["a red box", "a box, red", "third"], ["green"]]
    assert ds["licence"] == ["CC-BY-4.0", ""] and set(ds["source"]) == {str(path)}
    assert [im.size for im in ds["image"]] == [(12, 8), (16, 16)]


def test_csv_custom_columns_tsv_and_bom(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "\ufefffile\ttext\nimg/a.png\thello\n", name="data.tsv")
    ds = byo.load_csv(path, image_column="file", caption_column="text")
    assert ds["captions"] == [["hello"]]


@pytest.mark.parametrize("text, message", [
    ("image,caption\nimg/a.png,x\n", "{path}: no column 'path'; available columns: image, caption"),
    ("path,text\nimg/a.png,x\n", "{path}: no column 'caption'; available columns: path, text"),
    ("", "{path}: empty file (no header row)"),
    ("path,caption\n", "{path}: no usable rows"),
    ("path,caption\nimg/a.png,ok\nimg/a.png,\n", "{path}:3: missing or empty caption in column 'caption'"),
    ("path,caption\nimg/a.png,ok\n,orphan caption\n", "{path}:3: empty 'path'"),
    ("path,caption\nimg/a.png,ok\nimg/zz.png,x\n", "{path}:3: image file not found: img/zz.png"),
    (b"path,caption\nimg/a.png,ok\nimg/a.png,na\xefve\n", "{path}:3: line is not valid UTF-8"),
    (b"pa\xffth,caption\nimg/a.png,ok\n", "{path}:1: line is not valid UTF-8"),
])
def test_csv_errors(tmp_path: Path, text: str | bytes, message: str) -> None:
    path = write_csv(tmp_path, text)
    with pytest.raises(byo.ByoError) as e:
        byo.load_csv(path)
    assert str(e.value).startswith(message.format(path=path))


def test_csv_skip_bad_counts_rows(tmp_path: Path) -> None:
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    path = write_csv(tmp_path, b"path,caption\nimg/a.png,one\nbad.png,two\nimg/b.webp,\nbad.png,three\n"
                               b"img/b.webp,four\nmissing.png,five\nimg/a.png,na\xefve\nimg/a.png,nine\n")
    ds = byo.load_csv(path, skip_bad=True)
    assert ds["captions"] == [["one", "nine"], ["four"]]
    report = byo.BadRows.of(ds)
    assert [(b.row, b.reason.split(" (")[0].split(":")[0]) for b in report] == [
        (3, "cannot decode image bad.png"), (4, "missing or empty caption in column 'caption'"),
        (5, "cannot decode image bad.png"), (7, "image file not found"), (8, "line is not valid UTF-8")]
    assert ds.info.description.startswith(f"bring-your-own CSV from {path}: 2 images; 5 bad rows skipped")
    with pytest.raises(FileNotFoundError, match="no such file"):
        byo.load_csv(tmp_path / "absent.csv")


# --------------------------------------------------------------------------------------------------- WebDataset
def test_webdataset_reads_shards_in_memory(tmp_path: Path) -> None:
    before = set(tmp_path.iterdir())
    one = shard(tmp_path / "shard-000.tar", {
        "s1.jpg": image_bytes("JPEG", (20, 10)), "s1.txt": b"a jpeg\n",
        "d/s2.png": image_bytes(), "d/s2.json": json.dumps({"caption": ["png one", "png two"],
                                                            "license": "MIT"}).encode(),
    })
    two = shard(tmp_path / "shard-001.tar", {"s1.webp": image_bytes("WEBP"), "s1.json": b'{"text": "webp"}',
                                             "s1.cls": b"3"})
    for spec in ([one, two], str(tmp_path / "shard-{000..001}.tar"), str(tmp_path / "shard-*.tar"), tmp_path):
        ds = byo.load_webdataset(spec)
        assert ds.features == features()
        assert ds["captions"] == [["a jpeg"], ["png one", "png two"], ["webp"]]
        assert ds["source"] == [str(one), str(one), str(two)] and ds["licence"] == ["", "MIT", ""]
        assert [im.size for im in ds["image"]] == [(20, 10), (12, 8), (12, 8)]
    assert set(tmp_path.iterdir()) == before | {one, two}  # nothing extracted


def test_webdataset_bad_samples(tmp_path: Path) -> None:
    path = shard(tmp_path / "s.tar", {
        "ok.png": image_bytes(), "ok.txt": b"fine",
        "nocap.png": image_bytes(),
        "noimg.txt": b"lonely caption",
        "latin.png": image_bytes(), "latin.txt": b"caf\xe9",
        "broken.jpg": b"\xff\xd8\xff garbage", "broken.txt": b"x",
        "empty.png": image_bytes(), "empty.json": b'{"caption": ""}',
    })
    with pytest.raises(byo.ByoError, match=re.escape(f"{path}:nocap: missing caption (no nocap.txt or nocap.json)")):
        byo.load_webdataset(path)
    ds = byo.load_webdataset(path, skip_bad=True)
    assert ds["captions"] == [["fine"]]
    assert [str(b) for b in byo.BadRows.of(ds)][:4] == [
        f"{path}:nocap: missing caption (no nocap.txt or nocap.json)",
        f"{path}:noimg: no image (.jpg, .jpeg, .png, .webp); members: txt",
        f"{path}:latin: latin.txt is not valid UTF-8 (unexpected end of data at byte 3)",
        f"{path}:empty: empty caption in 'caption'",
    ]
    assert str(byo.BadRows.of(ds)[4]) == f"{path}:broken: cannot decode image broken.jpg: not a known image format"


@pytest.mark.parametrize("cut", [700, 4700, 5220, 6144])  # mid data, mid header, no end marker
def test_webdataset_truncated_shard(tmp_path: Path, cut: int) -> None:
    good = shard(tmp_path / "good.tar", {"a.png": image_bytes(), "a.txt": b"kept"})
    full = shard(tmp_path / "full.tar", {f"k{i}.{e}": image_bytes() if e == "png" else b"cap"
                                         for i in range(3) for e in ("png", "txt")})
    path = tmp_path / "cut.tar"
    path.write_bytes(full.read_bytes()[:cut])
    with pytest.raises(byo.ByoError, match=re.escape(f"{path}: cannot read tar shard")):
        byo.load_webdataset(path)
    ds = byo.load_webdataset([good, path], skip_bad=True)
    assert ds["captions"] == [["kept"]] and len(byo.BadRows.of(ds)) == 1
    assert byo.BadRows.of(ds)[0].row is None and "the whole shard is skipped" in byo.BadRows.of(ds)[0].reason


def test_webdataset_missing_shards(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such shard"):
        byo.load_webdataset(tmp_path / "x.tar")
    with pytest.raises(FileNotFoundError, match="no shards match"):
        byo.load_webdataset(str(tmp_path / "*.tar"))
    with pytest.raises(FileNotFoundError, match="no .tar shards in this folder"):
        byo.load_webdataset(tmp_path)


# ---------------------------------------------------------------------------------------------- Hub (mocked)
def test_hub_offline_error_is_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach the Hub")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(byo.ByoError, match=re.escape("hf:someone/pics: cannot load split 'train' from the Hugging "
                                                     "Face Hub (online only): ConnectionError: Couldn't reach")):
        byo.load_hub("someone/pics")


def test_hub_conversion_and_column_guessing(monkeypatch: pytest.MonkeyPatch) -> None:
    hub = datasets.Dataset.from_dict(
        {"img": [Image.new("RGB", (9, 9), "red"), Image.new("RGBA", (5, 5), (0, 0, 0, 0))],
         "caption": ["red square", "clear square"], "id": ["1", "2"]},
        features=datasets.Features({"img": datasets.Image(), "caption": datasets.Value("string"),
                                    "id": datasets.Value("string")}))
    monkeypatch.setattr(datasets, "load_dataset", lambda name, split, **kw: hub)
    ds = byo.load_hub("someone/pics")
    assert ds.features == features() and ds["captions"] == [["red square"], ["clear square"]]
    assert set(ds["source"]) == {"hf:someone/pics"} and ds["image"][1].getpixel((0, 0)) == (255, 255, 255)
    assert byo.load_captioned("hf:someone/pics")["name"] == ["red square", "clear square"]
    two_texts = datasets.Features({"img": datasets.Image(), "title": datasets.Value("string"),
                                   "alt": datasets.Value("string")})
    with pytest.raises(byo.ByoError, match=re.escape("hf:x: cannot guess the caption column; pass image_column= and "
                                                     "caption_column=; available columns: img, title, alt")):
        byo.guess_columns(two_texts, origin="hf:x")
    assert byo.guess_columns(two_texts, caption_column="alt") == ("img", "alt")
    with pytest.raises(byo.ByoError, match="no column 'nope'; available columns: img, title, alt"):
        byo.guess_columns(two_texts, caption_column="nope")


# -------------------------------------------------------------------------------------------------- dispatch
def test_load_captioned_dispatch(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, [{"file_name": "a.png", "text": "folder"}])
    assert byo.load_captioned(folder)["captions"] == [["folder"]]
    path = write_csv(tmp_path, "path,caption\nimg/a.png,csv\n")
    assert byo.load_captioned(path)["captions"] == [["csv"]]
    hf_csv = tmp_path / "hf_csv"
    hf_csv.mkdir()
    (hf_csv / "x.png").write_bytes(image_bytes())
    (hf_csv / "metadata.csv").write_text("file_name,text\nx.png,imagefolder csv\n")
    assert byo.load_captioned(hf_csv)["captions"] == [["imagefolder csv"]]
    assert byo.load_captioned(folder / "metadata.jsonl")["captions"] == [["folder"]]
    tar = shard(tmp_path / "w.tar", {"a.png": image_bytes(), "a.txt": b"tar"})
    assert byo.load_captioned(tar)["captions"] == [["tar"]]
    assert byo.load_captioned([tar, tar])["captions"] == [["tar"], ["tar"]]
    shards = tmp_path / "shards"
    shards.mkdir()
    shard(shards / "0.tar", {"a.png": image_bytes(), "a.txt": b"dir"})
    assert byo.load_captioned(shards)["captions"] == [["dir"]]
    with pytest.raises(FileNotFoundError, match="for a Hub dataset write hf:owner/name"):
        byo.load_captioned("someone/pics")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(byo.ByoError, match="cannot tell the format"):
        byo.load_captioned(tmp_path / "notes.txt")


def test_exif_orientation_and_grey_images_are_stored_as_rgb(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    buffer = io.BytesIO()
    Image.new("RGB", (30, 10), (0, 90, 0)).save(buffer, format="JPEG", exif=exif)
    files = {"phone.jpg": buffer.getvalue(), "grey.png": image_bytes(size=(6, 6), colour=128, mode="L")}
    folder = folder_with(tmp_path, [{"file_name": "phone.jpg", "text": "upright"},
                                    {"file_name": "grey.png", "text": "grey"}], files)
    ds = byo.load_imagefolder(folder)
    phone, grey = ds["image"]
    assert phone.size == (10, 30) and phone.mode == "RGB"
    assert grey.mode == "RGB" and grey.getpixel((0, 0)) == (128, 128, 128)
    assert ds["sha256"] == [pixel_sha256(phone), pixel_sha256(grey)]
