"""repro.data.photos: IDX parsing with validation, the three labelled-image loaders on tiny generated fixtures
(CI has an empty data cache), to_rgb, class names, templates and emoji counterparts; the real sources when cached."""

from __future__ import annotations

import gzip
import json
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from repro.data import photos
from repro.data.sources import data_dir

RAW = data_dir() / "raw"


def idx_bytes(array: np.ndarray, code: int | None = None) -> bytes:
    codes = {"uint8": 0x08, "int8": 0x09, "int16": 0x0B, "int32": 0x0C, "float32": 0x0D, "float64": 0x0E}
    code = codes[array.dtype.name] if code is None else code
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write(path: Path, data: bytes, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def fashion_tree(root: Path, n_train: int = 20, n_test: int = 10, gz: bool = True) -> Path:
    rng = np.random.default_rng(0)
    folder = root / "usr/share/datasets/fashion-mnist"
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        suffix = ".gz" if gz else ""
        write(folder / f"{prefix}-images-idx3-ubyte{suffix}", idx_bytes(images), gz)
        write(folder / f"{prefix}-labels-idx1-ubyte{suffix}", idx_bytes(labels), gz)
    return root


# ---------------------------------------------------------------------------------------------------- read_idx
@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trips_every_type(tmp_path: Path, dtype: str, gz: bool) -> None:
    array = (np.arange(2 * 3 * 4) - 5).astype(dtype).reshape(2, 3, 4)
    if dtype == "uint8":
        array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    got = photos.read_idx(write(tmp_path / "x.idx", idx_bytes(array), gz))
    assert got.dtype == np.dtype(dtype) and got.dtype.isnative and got.shape == (2, 3, 4)
    np.testing.assert_array_equal(got, array)
    got[0, 0, 0] = 1  # writable


@pytest.mark.parametrize("data, message", [
    (b"\0\0", "not an IDX file: 2 bytes, shorter than the 4-byte magic number"),
    (b"\x01\0\x08\x01" + b"\0\0\0\0", "not an IDX file: magic number 01000801 does not start with 0000"),
    (b"\0\0\x07\x01" + b"\0\0\0\0", "unknown IDX data type code 0x07 (known: 08, 09, 0b, 0c, 0d, 0e)"),
    (b"\0\0\x08\x00", "IDX header declares 0 dimensions"),
    (b"\0\0\x08\x03" + b"\0\0\0\x02", "truncated IDX header: 3 dimensions need 16 bytes, file has 8"),
    (b"\0\0\x08\x01\0\0\0\x05" + b"abc",
     "size does not match the header (truncated): (5,) × uint8 needs 13 bytes, file has 11"),
    (b"\0\0\x0c\x01\0\0\0\x01" + b"abcdef",
     "size does not match the header (trailing bytes): (1,) × int32 needs 12 bytes, file has 14"),
])
def test_read_idx_rejects_bad_files_naming_them(tmp_path: Path, data: bytes, message: str) -> None:
    path = write(tmp_path / "bad-idx", data)
    with pytest.raises(ValueError) as e:
        photos.read_idx(path)
    assert str(e.value) == f"{path}: {message}"


def test_read_idx_truncated_gzip_and_missing_file(tmp_path: Path) -> None:
    good = gzip.compress(idx_bytes(np.zeros((100, 28, 28), np.uint8)))
    path = write(tmp_path / "cut.gz", good[: len(good) // 2])
    with pytest.raises(ValueError, match=re.escape(f"{path}: corrupt or truncated gzip data")):
        photos.read_idx(path)
    with pytest.raises(FileNotFoundError, match="no such IDX file"):
        photos.read_idx(tmp_path / "absent")


# ------------------------------------------------------------------------------------------------ Fashion-MNIST
@pytest.mark.parametrize("gz", [True, False])
def test_load_fashion_mnist_fixture(tmp_path: Path, gz: bool) -> None:
    raw = fashion_tree(tmp_path, gz=gz)
    for split, n in (("train", 20), ("test", 10)):
        images, labels = photos.load_fashion_mnist(raw, split)
        assert images.shape == (n, 28, 28) and images.dtype == np.uint8
        assert labels.shape == (n,) and labels.dtype == np.int64 and set(labels) <= set(range(10))
    flat = tmp_path / "usr/share/datasets/fashion-mnist"  # the folder itself works too
    assert len(photos.load_fashion_mnist(flat, "test")[0]) == 10


def test_load_fashion_mnist_errors(tmp_path: Path) -> None:
    raw = fashion_tree(tmp_path)
    folder = raw / "usr/share/datasets/fashion-mnist"
    with pytest.raises(ValueError, match="split must be 'train' or 'test', not 'val'"):
        photos.load_fashion_mnist(raw, "val")
    labels = folder / "t10k-labels-idx1-ubyte.gz"
    write(labels, idx_bytes(np.arange(9, dtype=np.uint8)), gz=True)
    with pytest.raises(ValueError, match=re.escape(f"has 10 images but {labels} has 9 labels")):
        photos.load_fashion_mnist(raw, "test")
    write(labels, idx_bytes(np.full(10, 10, dtype=np.uint8)), gz=True)
    with pytest.raises(ValueError, match=re.escape(f"{labels}: labels outside 0..9 (min 10, max 10)")):
        photos.load_fashion_mnist(raw, "test")
    images = folder / "t10k-images-idx3-ubyte.gz"
    write(images, idx_bytes(np.zeros((10, 32, 32), np.uint8)), gz=True)
    with pytest.raises(ValueError, match=re.escape(f"{images}: expected uint8 images of shape [N, 28, 28]")):
        photos.load_fashion_mnist(raw, "test")
    images.unlink()
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte.gz"):
        photos.load_fashion_mnist(raw, "test")


# ------------------------------------------------------------------------------------------------------ MNIST
def mnist_tree(root: Path, per_digit: int = 3) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (10, per_digit, 784))
    folder = root / "package/src/digits"
    folder.mkdir(parents=True)
    for d in range(10):
        values = [0 if p == 0 else round(p / 255, 3) for p in pixels[d].ravel().tolist()]  # npm's own rounding
        (folder / f"{d}.json").write_text(json.dumps({"data": values}))
    return root, pixels.reshape(-1, 28, 28).astype(np.uint8)


def test_load_mnist_recovers_bytes_exactly(tmp_path: Path) -> None:
    raw, expected = mnist_tree(tmp_path)
    images, labels = photos.load_mnist(raw)
    assert images.shape == (30, 28, 28) and images.dtype == np.uint8 and labels.dtype == np.int64
    np.testing.assert_array_equal(images, expected)
    np.testing.assert_array_equal(labels, np.repeat(np.arange(10), 3))


@pytest.mark.parametrize("content, message", [
    (json.dumps({"data": [0.5] * 783}).encode(), "'data' has 783 values, not a multiple of 784 (28×28)"),
    (json.dumps({"data": [1.5] * 784}).encode(), "pixel values outside [0, 1]"),
    (json.dumps({"data": ["x"] * 784}).encode(), "'data' holds a value that is not a number"),
    (json.dumps([0] * 784).encode(), "expected an object with a 'data' list of pixel values"),
    (b'{"data": [0, 0,', "1: invalid JSON: Expecting value"),
    (b'{"data": [0\xff]}', "not UTF-8 text (invalid start byte at byte 11)"),
])
def test_load_mnist_errors_name_the_file(tmp_path: Path, content: bytes, message: str) -> None:
    raw, _ = mnist_tree(tmp_path)
    bad = raw / "package/src/digits/7.json"
    bad.write_bytes(content)
    with pytest.raises(ValueError) as e:
        photos.load_mnist(raw)
    assert str(e.value).startswith(f"{bad}:") and message in str(e.value)


def test_load_mnist_missing_digit(tmp_path: Path) -> None:
    raw, _ = mnist_tree(tmp_path)
    (raw / "package/src/digits/4.json").unlink()
    with pytest.raises(FileNotFoundError, match="4.json"):
        photos.load_mnist(raw)


# ----------------------------------------------------------------------------------------------------- digits
def digits_file(root: Path, lines: list[str]) -> Path:
    path = root / "sklearn/datasets/data/digits.csv.gz"
    return write(path, ("\n".join(lines) + "\n").encode(), gz=True)


def test_load_digits_scales_to_bytes(tmp_path: Path) -> None:
    rows = [",".join(map(str, [v % 17 for v in range(i, i + 64)] + [i % 10])) for i in range(12)]
    digits_file(tmp_path, rows)
    images, labels = photos.load_digits(tmp_path)
    assert images.shape == (12, 8, 8) and images.dtype == np.uint8 and labels.dtype == np.int64
    assert labels.tolist() == [i % 10 for i in range(12)]
    ink = np.array([[v % 17 for v in range(i, i + 64)] for i in range(12)])
    assert images.max() == 255 and images.min() == 0
    np.testing.assert_array_equal(images.reshape(12, 64), (ink * 255 + 8) // 16)


@pytest.mark.parametrize("line, message", [
    ("1,2,3", "expected 65 values (64 pixels and a label), got 3"),
    (",".join(["17"] * 64 + ["1"]), "pixel values outside 0..16"),
    (",".join(["0"] * 64 + ["10"]), "label 10 outside 0..9"),
    (",".join(["a"] * 65), "not a comma-separated list of integers"),
])
def test_load_digits_errors_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = digits_file(tmp_path, [",".join(["0"] * 65), line])
    with pytest.raises(ValueError, match=re.escape(f"{path}:2: {message}")):
        photos.load_digits(tmp_path)


# ----------------------------------------------------------------------------------------------------- to_rgb
def test_to_rgb_shapes_resampling_and_invert() -> None:
    grey = np.random.default_rng(2).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    rgb = photos.to_rgb(grey, 64)
    assert rgb.shape == (3, 64, 64, 3) and rgb.dtype == np.uint8
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
    expected = np.asarray(Image.fromarray(grey[1]).resize((64, 64), Image.BICUBIC))
    np.testing.assert_array_equal(rgb[1, ..., 0], expected)
    same = photos.to_rgb(grey, 28)
    np.testing.assert_array_equal(same[..., 2], grey)  # no resize: pixels kept as they are
    np.testing.assert_array_equal(photos.to_rgb(grey, 28, invert=True)[..., 0], 255 - grey)
    assert photos.to_rgb(grey[0], 32).shape == (1, 32, 32, 3)
    with pytest.raises(ValueError, match="expects uint8 grey images"):
        photos.to_rgb(grey.astype(np.float32), 32)


# ------------------------------------------------------------------------------------------- names and prompts
def test_classes_templates_and_emoji() -> None:
    assert len(photos.FASHION_MNIST_CLASSES) == len(photos.FASHION_MNIST_LABELS) == 10
    assert photos.MNIST_CLASSES == tuple("0123456789") == photos.DIGITS_CLASSES
    assert photos.MNIST_TEMPLATES[0] == 'a photo of the number: "{}".'  # CLIP's prompts.md
    for templates in (photos.FASHION_MNIST_TEMPLATES, photos.MNIST_TEMPLATES, photos.DIGITS_TEMPLATES):
        assert len(set(templates)) == len(templates) and all(t.count("{}") == 1 for t in templates)
    assert len(photos.FASHION_MNIST_TEMPLATES) >= 8
    assert set(photos.EMOJI_COUNTERPARTS) == set(photos.FASHION_MNIST_CLASSES)
    assert photos.EMOJI_COUNTERPARTS["pullover"] == () and photos.EMOJI_COUNTERPARTS["shirt"] == ()
    codes = [h for hs in (*photos.EMOJI_COUNTERPARTS.values(), *photos.EMOJI_NEAR_MISSES.values()) for h in hs]
    assert all(re.fullmatch(r"[0-9a-f]{4,6}", h) for h in codes)
    assert photos.emoji_concept_ids("sandal") == ["emoji:1f461", "emoji:1fa74"]
    assert set(photos.SUITES) == {"fashion-mnist", "mnist", "digits"}
    with pytest.raises(KeyError, match="unknown suite"):
        photos.load_labelled("cifar10")


def test_load_labelled_with_explicit_raw(tmp_path: Path) -> None:
    images, labels = photos.load_labelled("fashion-mnist", "train", fashion_tree(tmp_path))
    assert images.shape == (20, 28, 28) and len(labels) == 20


# ---------------------------------------------------------------------------------------- the real sources
@pytest.mark.skipif(not (RAW / "emoji-datasource/package/emoji.json").is_file(), reason="emoji-datasource not cached")
def test_emoji_counterparts_are_real_emoji() -> None:
    names = {e["unified"].lower().replace("-fe0f", ""): e["name"]
             for e in json.loads((RAW / "emoji-datasource/package/emoji.json").read_text())}
    expected = {"1f455": "T-SHIRT", "1f456": "JEANS", "1f457": "DRESS", "1f9e5": "COAT", "1f461": "WOMANS SANDAL",
                "1fa74": "THONG SANDAL", "1f45f": "ATHLETIC SHOE", "1f45c": "HANDBAG", "1f45d": "POUCH",
                "1f45b": "PURSE", "1f392": "SCHOOL SATCHEL", "1f462": "WOMANS BOOTS", "1f97e": "HIKING BOOT",
                "1f454": "NECKTIE", "1f45a": "WOMANS CLOTHES", "1f97c": "LAB COAT"}
    codes = {h for hs in (*photos.EMOJI_COUNTERPARTS.values(), *photos.EMOJI_NEAR_MISSES.values()) for h in hs}
    assert codes == set(expected)
    assert {h: names[h] for h in codes} == expected


@pytest.mark.skipif(not all((RAW / k).is_dir() for k in ("fashion-mnist", "mnist", "sklearn-digits")),
                    reason="real Fashion-MNIST / MNIST / digits sources not cached")
def test_real_sources() -> None:
    train_x, train_y = photos.load_fashion_mnist(RAW / "fashion-mnist", "train")
    test_x, test_y = photos.load_fashion_mnist(RAW / "fashion-mnist", "test")
    assert train_x.shape == (60_000, 28, 28) and test_x.shape == (10_000, 28, 28)
    assert np.bincount(train_y).tolist() == [6000] * 10 and np.bincount(test_y).tolist() == [1000] * 10
    mnist_x, mnist_y = photos.load_mnist(RAW / "mnist")
    assert mnist_x.shape == (10_000, 28, 28) and mnist_x.max() == 255
    assert np.bincount(mnist_y).tolist() == [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]
    digits_x, digits_y = photos.load_digits(RAW / "sklearn-digits")
    assert digits_x.shape == (1797, 8, 8) and digits_x.max() == 255
    assert np.bincount(digits_y).min() >= 174 and np.bincount(digits_y).max() <= 183
    for x in (train_x, mnist_x, digits_x):  # white ink on a black ground: the corners are dark
        assert x[:, [0, 0, -1, -1], [0, -1, 0, -1]].mean() < 10
