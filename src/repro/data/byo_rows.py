"""The rows of a bring-your-own load (`repro.data.byo`): the errors and bad-row reports, the checks every loader
applies to a row's captions and image, and the `datasets.Dataset` of `repro.data.schema.features()` the rows become."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image, ImageOps, UnidentifiedImageError

from repro.data.render import WHITE, dhash, pixel_sha256

if TYPE_CHECKING:
    from datasets import Dataset

log = logging.getLogger(__name__)

CAPTION_FIELDS = ("captions", "caption", "text")  # looked for in this order
LICENCE_FIELDS = ("licence", "license")
REPORT_TAG = "bad_rows_json: "
CHUNK = 1000  # rows encoded per Arrow chunk


class ByoError(ValueError):
    """Bad bring-your-own input; the message starts with "<file>:<line>: " (or "<file>: " for whole-file faults)."""


@dataclass(frozen=True)
class BadRow:
    """One skipped row: the file, its 1-based line (a sample key for tar shards, None for a whole file), why."""

    file: str
    row: int | str | None
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.reason}" if self.row is None else f"{self.file}:{self.row}: {self.reason}"


class BadRows(list[BadRow]):
    """The rows a `skip_bad=True` load left out."""

    def summary(self, limit: int = 20) -> str:
        more = [f"  … and {len(self) - limit} more"] if len(self) > limit else []
        return "\n".join([f"{len(self)} bad rows skipped", *(f"  {b}" for b in self[:limit]), *more])

    @classmethod
    def of(cls, dataset: Dataset) -> BadRows:
        """The bad rows recorded in a loaded dataset's `info.description` (empty if none were skipped)."""
        for line in (dataset.info.description or "").splitlines():
            if line.startswith(REPORT_TAG):
                return cls(BadRow(**b) for b in json.loads(line[len(REPORT_TAG):]))
        return cls()


class RowFault(Exception):
    """A row-level fault; the loader adds the file and line."""


class Collector(BadRows):
    def __init__(self, skip_bad: bool) -> None:
        super().__init__()
        self.skip_bad = skip_bad

    def __call__(self, file: str | Path, row: int | str | None, reason: str) -> None:
        bad = BadRow(str(file), row, reason)
        if not self.skip_bad:
            raise ByoError(str(bad))
        self.append(bad)


@dataclass
class Sample:
    image: bytes | Path  # the image file's bytes, or its path (read when the rows are built)
    image_name: str
    source: str
    rows: list[tuple[str, int | str]] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)
    licence: str = ""
    attribution: str = ""

    def add(self, file: str, row: int | str, captions: list[str], record: dict) -> Sample:
        self.rows.append((file, row))
        self.captions.extend(captions)
        if not (self.licence or self.attribution):
            self.licence = next((str(record[k]) for k in LICENCE_FIELDS if record.get(k)), "")
            self.attribution = str(record.get("attribution") or "")
        return self


def utf8_text(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        raise RowFault(f"{what} is not valid UTF-8 ({e.reason} at byte {e.start})") from e


def json_object(text: str, what: str = "") -> dict:
    try:
        record = json.loads(text)
    except json.JSONDecodeError as e:
        raise RowFault(f"invalid JSON{what}: {e.msg} (column {e.colno})") from e
    if not isinstance(record, dict):
        raise RowFault(f"expected a JSON object{what}, got {type(record).__name__}")
    return record


def caption_list(record: dict, column: str | None) -> list[str]:
    """The non-empty, stripped captions in `column`, else in the first of CAPTION_FIELDS present (str or list)."""
    wanted = [column] if column else list(CAPTION_FIELDS)
    name = next((n for n in wanted if record.get(n) is not None), None)
    if name is None:
        raise RowFault(f"missing caption (no {' or '.join(map(repr, wanted))} field; fields present: "
                   f"{', '.join(map(str, record)) or 'none'})")
    items = record[name] if isinstance(record[name], list) else [record[name]]
    if not all(isinstance(item, str) for item in items):
        raise RowFault(f"caption field {name!r} holds {type(next(i for i in items if not isinstance(i, str))).__name__}"
                   ", not text")
    if not items or not all(item.strip() for item in items):
        raise RowFault(f"empty caption in {name!r}")
    return [item.strip() for item in items]


def decode_image(data: bytes, name: str) -> tuple[Image.Image, bytes]:
    """The RGB picture (alpha composited on white, EXIF orientation applied) and the bytes to store: the file's own
    when they decode to exactly that picture, else a lossless PNG of it."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Exception as e:  # noqa: BLE001 - decoders raise many types (OSError, SyntaxError, struct.error…)
        why = "not a known image format" if isinstance(e, UnidentifiedImageError) else f"{type(e).__name__}: {e}"
        raise RowFault(f"cannot decode image {name}: {why}") from e
    keep = image.mode == "RGB" and "transparency" not in image.info and image.format in ("JPEG", "PNG", "WEBP")
    if image.getexif().get(0x0112, 1) not in (None, 1):  # EXIF orientation (phone photos)
        image, keep = ImageOps.exif_transpose(image), False
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        canvas = Image.new("RGBA", image.size, WHITE + (255,))
        canvas.alpha_composite(image.convert("RGBA"))
        rgb = canvas.convert("RGB")
    else:
        rgb = image.convert("RGB")
    if keep:
        return rgb, data
    buffer = io.BytesIO()
    rgb.save(buffer, format="PNG", compress_level=1)
    return rgb, buffer.getvalue()


def build_dataset(samples: Iterable[Sample], bad: Collector, what: str, origin: str, style: str) -> Dataset:
    """Decode every sample's image, report bad ones, and write the rows as a Dataset of `features()`."""
    from datasets import Dataset, DatasetInfo, concatenate_datasets

    from repro.data.schema import features

    schema, chunks, rows, count = features(), [], [], 0
    for sample in samples:
        if not sample.captions:
            continue  # every caption row was bad and is already reported
        try:
            data = sample.image
            if isinstance(data, Path):
                if not data.is_file():
                    shown = "" if Path(sample.image_name) == data else f" ({data})"
                    raise RowFault(f"image file not found: {sample.image_name}{shown}")
                data = data.read_bytes()
            rgb, stored = decode_image(data, sample.image_name)
        except RowFault as e:
            for file, row in sample.rows:
                bad(file, row, str(e))
            continue
        rows.append({
            "image": {"bytes": stored, "path": sample.image_name}, "captions": sample.captions,
            "concept_id": f"byo:{count}", "name": sample.captions[0], "style": style, "source": sample.source,
            "licence": sample.licence, "attribution": sample.attribution, "category": "", "subcategory": "",
            "sha256": pixel_sha256(rgb), "dhash": dhash(rgb),
        })
        count += 1
        if len(rows) == CHUNK:
            chunks.append(Dataset.from_list(rows, features=schema))
            rows = []
    if rows:
        chunks.append(Dataset.from_list(rows, features=schema))
    report = BadRows(sorted(bad, key=lambda b: (b.file, b.row if isinstance(b.row, int) else -1)))
    if report:
        log.warning("%s %s: %s", what, origin, report.summary())
    if not count:
        raise ByoError(f"{origin}: no usable rows" + (f"; {report.summary()}" if report else ""))
    description = f"bring-your-own {what} from {origin}: {count} images; {len(report)} bad rows skipped"
    if report:
        description += "\n" + "\n".join(map(str, report)) + f"\n{REPORT_TAG}{json.dumps([asdict(b) for b in report])}"
    return concatenate_datasets(chunks, info=DatasetInfo(description=description, features=schema))


def read_lines(path: Path, bad: Collector) -> list[tuple[int, str]]:
    """(line number, text) of each line of `path`, each decoded strictly; undecodable lines are reported."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    out = []
    for number, raw in enumerate(path.read_bytes().split(b"\n"), 1):
        try:
            out.append((number, utf8_text(raw, "line")))
        except RowFault as e:
            bad(path, number, str(e))
    return out
