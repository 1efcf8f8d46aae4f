"""Bring your own captioned images: image folders, CSV files, WebDataset tar shards or a Hub dataset, converted to
the corpus schema (`repro.data.schema.features()`), so they train and evaluate like the built-in data.

Every loader returns a `datasets.Dataset` with exactly the columns of `features()`: the image at native size (RGB;
pictures with alpha composited on white), all of its captions (rows naming the same image are grouped), concept_id
"byo:<row>", name = first caption, style "byo" unless `style=` says otherwise, source = the input path, licence
and attribution from optional "licence"/"license" and "attribution" fields, sha256/dhash of the RGB pixels.

Bad input is never skipped silently. By default the first bad row raises `ByoError` naming the file and the line
(tar shards: the sample key) and what is wrong. With `skip_bad=True` bad rows are left out, logged as a warning and
recorded in the dataset's `info.description`; `BadRows.of(dataset)` gives them back as a list of `BadRow`s. The
checks and the Dataset the rows become are shared by every loader (`repro.data.byo_rows`).
"""

from __future__ import annotations

import csv
import glob
import io
import re
import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from repro.data.byo_rows import (
    CAPTION_FIELDS,
    BadRow,
    BadRows,
    ByoError,
    Collector,
    RowFault,
    Sample,
    build_dataset,
    caption_list,
    json_object,
    read_lines,
    utf8_text,
)

if TYPE_CHECKING:
    from datasets import Dataset

__all__ = ["BadRow", "BadRows", "ByoError", "guess_columns", "load_captioned", "load_csv", "load_hub",
           "load_imagefolder", "load_webdataset"]

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
_TAR = re.compile(r"\.(tar|tar\.gz|tgz)$")


def load_imagefolder(folder: str | Path, caption_column: str | None = None, style: str = "byo",
                     skip_bad: bool = False) -> Dataset:
    """A folder with `metadata.jsonl` (Hugging Face imagefolder): one JSON object a line with `file_name` (relative
    to the folder) and `captions` (list), `caption` or `text`; a folder with `metadata.csv` goes to `load_csv`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    meta = folder / "metadata.jsonl"
    if not meta.is_file():
        if (folder / "metadata.csv").is_file():
            return load_csv(folder / "metadata.csv", image_column="file_name", caption_column=caption_column or "text",
                            style=style, skip_bad=skip_bad)
        raise FileNotFoundError(f"{folder}: no metadata.jsonl (or metadata.csv) with file_name and caption fields")
    bad, groups = Collector(skip_bad), {}
    for number, line in read_lines(meta, bad):
        if not line.strip():
            continue
        try:
            record = json_object(line)
            name = record.get("file_name")
            if not isinstance(name, str) or not name:
                raise RowFault(f"no 'file_name' field; fields present: {', '.join(record) or 'none'}")
            captions = caption_list(record, caption_column)
        except RowFault as e:
            bad(meta, number, str(e))
            continue
        image = (folder / name).resolve()
        groups.setdefault(image, Sample(image, name, str(folder))).add(str(meta), number, captions, record)
    return build_dataset(groups.values(), bad, "image folder", str(folder), style)


def load_csv(path: str | Path, image_column: str = "path", caption_column: str = "caption", style: str = "byo",
             skip_bad: bool = False, delimiter: str | None = None) -> Dataset:
    """A CSV (or .tsv) with a header: image paths relative to the CSV's folder (or absolute) and one caption per
    row; several rows naming the same image give it several captions. Errors name the CSV's line."""
    path = Path(path)
    bad, groups = Collector(skip_bad), {}
    lines = read_lines(path, bad)
    if lines and lines[0][0] != 1:
        raise ByoError(f"{path}:1: the header line is not valid UTF-8")
    delimiter = delimiter or ("\t" if path.suffix.lower() == ".tsv" else ",")
    reader = csv.DictReader(io.StringIO("\n".join(t for _, t in lines), newline=""), delimiter=delimiter)
    columns = reader.fieldnames or []
    if not columns:
        raise ByoError(f"{path}: empty file (no header row)")
    for column in (image_column, caption_column):
        if column not in columns:
            raise ByoError(f"{path}: no column {column!r}; available columns: {', '.join(columns)}")
    for record in reader:
        number = lines[reader.line_num - 1][0]  # the file's own line number, bad lines included
        try:
            name = (record.get(image_column) or "").strip()
            if not name:
                raise RowFault(f"empty {image_column!r}")
            if not (record.get(caption_column) or "").strip():
                raise RowFault(f"missing or empty caption in column {caption_column!r}")
            captions = caption_list(record, caption_column)
        except RowFault as e:
            bad(path, number, str(e))
            continue
        image = (path.parent / name).resolve()
        groups.setdefault(image, Sample(image, name, str(path))).add(str(path), number, captions, record)
    return build_dataset(groups.values(), bad, "CSV", str(path), style)


def _expand_shards(shards: str | Path | list) -> list[Path]:
    """A list, a folder (its .tar/.tar.gz/.tgz files), "name-{000..009}.tar", a glob, or one file."""
    if isinstance(shards, (list, tuple)):
        return [p for s in shards for p in _expand_shards(s)]
    text, brace = str(shards), re.search(r"\{(\d+)\.\.(\d+)\}", str(shards))
    if brace:
        lo, hi = brace.group(1), brace.group(2)
        return [p for i in range(int(lo), int(hi) + 1)
                for p in _expand_shards(text[:brace.start()] + str(i).zfill(len(lo)) + text[brace.end():])]
    if Path(text).is_dir() or any(c in text for c in "*?["):
        found = (sorted(p for p in Path(text).iterdir() if _TAR.search(p.name)) if Path(text).is_dir()
                 else sorted(map(Path, glob.glob(text))))
        if not found:
            raise FileNotFoundError(f"{text}: no .tar shards in this folder" if Path(text).is_dir()
                                    else f"{text}: no shards match this pattern")
        return found
    if not Path(text).is_file():
        raise FileNotFoundError(f"{text}: no such shard")
    return [Path(text)]


def _read_shard(shard: Path, bad: Collector) -> list[Sample]:
    """The samples of one shard, read in memory (nothing is extracted to disk; only regular files are read)."""
    members: dict[str, dict[str, bytes]] = {}
    try:
        with tarfile.open(shard, "r:*") as tar:
            for member in tar:
                folder, _, base = member.name.rpartition("/")
                stem, _, ext = base.partition(".")
                key = f"{folder}/{stem}" if folder else stem
                if member.isdir():
                    continue
                if not member.isfile():
                    bad(shard, key, f"member {member.name} is not a regular file")
                    continue
                data = tar.extractfile(member).read()
                if len(data) != member.size:
                    raise tarfile.ReadError(f"member {member.name} is truncated")
                members.setdefault(key, {})[ext.lower()] = data
            tar.fileobj.seek(tar.offset)  # tarfile takes a cut-off header for the end: demand the end marker
            end = tar.fileobj.read(512)
            if len(end) < 512 or end.strip(b"\0"):
                raise tarfile.ReadError(f"truncated: no end-of-archive marker after {len(members)} samples")
    except (tarfile.TarError, EOFError, OSError) as e:
        bad(shard, None, f"cannot read tar shard ({type(e).__name__}: {e}); the whole shard is skipped")
        return []
    samples = []
    for key, files in members.items():
        image_ext = next((e for e in IMAGE_EXTENSIONS if e in files), None)
        try:
            if image_ext is None:
                raise RowFault(f"no image (.{', .'.join(IMAGE_EXTENSIONS)}); members: {', '.join(sorted(files))}")
            if "txt" in files:
                column: str | None = f"{key}.txt"
                record = {column: utf8_text(files["txt"], column)}
            elif "json" in files:
                column, record = None, json_object(utf8_text(files["json"], f"{key}.json"), f" in {key}.json")
            else:
                raise RowFault(f"missing caption (no {key}.txt or {key}.json)")
            captions = caption_list(record, column)
        except RowFault as e:
            bad(shard, key, str(e))
            continue
        samples.append(Sample(files[image_ext], f"{key}.{image_ext}", str(shard)).add(str(shard), key, captions,
                                                                                          record))
    return samples


def load_webdataset(shards: str | Path | list, style: str = "byo", skip_bad: bool = False) -> Dataset:
    """WebDataset tar shards (a file, a list, a folder, a glob or "shard-{000..009}.tar"): members <key>.jpg /
    .jpeg / .png / .webp with <key>.txt (one caption) or <key>.json ("captions", "caption" or "text"). Read with
    `tarfile` in memory, never extracted; errors name the shard and the sample key."""
    paths, bad = _expand_shards(shards), Collector(skip_bad)
    samples = (s for shard in paths for s in _read_shard(shard, bad))
    origin = str(paths[0]) if len(paths) == 1 else f"{paths[0]} … {paths[-1]} ({len(paths)} shards)"
    return build_dataset(samples, bad, "WebDataset", origin, style)


def guess_columns(features: dict[str, Any], image_column: str | None = None, caption_column: str | None = None,
                  origin: str = "dataset") -> tuple[str, str]:
    """(image column, caption column) of a `datasets.Features`, each as given or guessed: the only Image column;
    the first of "captions", "caption", "text", "sentences", "alt_text", else the only text column."""
    from datasets import Image as HFImage
    from datasets import Value

    images = [n for n, f in features.items() if isinstance(f, HFImage)]
    texts = [n for n, f in features.items() if isinstance(f, Value) and f.dtype in ("string", "large_string")]
    named = [n for n in (*CAPTION_FIELDS, "sentences", "alt_text") if n in features]
    image = image_column or (images[0] if len(images) == 1 else None)
    caption = caption_column or (named[0] if named else texts[0] if len(texts) == 1 else None)
    available = ", ".join(features)
    if image is None or caption is None:
        which = " and ".join(w for w, c in (("image", image), ("caption", caption)) if c is None)
        raise ByoError(f"{origin}: cannot guess the {which} column; pass image_column= and caption_column=; "
                       f"available columns: {available}")
    for column in (image, caption):
        if column not in features:
            raise ByoError(f"{origin}: no column {column!r}; available columns: {available}")
    return image, caption


def load_hub(name: str, split: str = "train", image_column: str | None = None, caption_column: str | None = None,
             style: str = "byo", skip_bad: bool = False, **load_kw: Any) -> Dataset:
    """A Hugging Face Hub dataset via `datasets.load_dataset` (ONLINE ONLY: needs network access and the Hub).
    Columns are guessed (`guess_columns`) unless given; a row's index is its "line" in error messages."""
    import datasets

    origin = f"hf:{name}"
    try:
        data = datasets.load_dataset(name, split=split, **load_kw)
    except Exception as e:  # noqa: BLE001 - network, auth and missing-dataset errors all end up here
        raise ByoError(f"{origin}: cannot load split {split!r} from the Hugging Face Hub (online only): "
                       f"{type(e).__name__}: {e}") from e
    image_column, caption_column = guess_columns(data.features, image_column, caption_column, origin)
    data = data.cast_column(image_column, datasets.Image(decode=False))
    bad = Collector(skip_bad)

    def samples() -> Iterable[Sample]:
        for index, record in enumerate(data):
            try:
                captions = caption_list(record, caption_column)
                image = record[image_column] or {}
                if image.get("bytes") is None and not image.get("path"):
                    raise RowFault(f"no image in column {image_column!r}")
            except RowFault as e:
                bad(origin, index, str(e))
                continue
            content = image["bytes"] if image.get("bytes") is not None else Path(image["path"])
            yield Sample(content, image.get("path") or str(index), origin).add(origin, index, captions, record)

    return build_dataset(samples(), bad, "Hub dataset", origin, style)


def load_captioned(path_or_name: str | Path | list, **kw: Any) -> Dataset:
    """Dispatch on what the input is: a folder with metadata.jsonl/.csv → image folder; a folder of .tar files,
    a .tar/.tgz file, a glob, brace pattern or list → WebDataset; a .csv/.tsv → CSV; "hf:owner/name" → Hub."""
    if isinstance(path_or_name, (list, tuple)):
        return load_webdataset(list(path_or_name), **kw)
    text, path = str(path_or_name), Path(path_or_name)
    if text.startswith("hf:"):
        return load_hub(text.removeprefix("hf://datasets/").removeprefix("hf:"), **kw)
    if path.is_dir() and any((path / m).is_file() for m in ("metadata.jsonl", "metadata.csv")):
        return load_imagefolder(path, **kw)
    if path.name == "metadata.jsonl" and path.is_file():
        return load_imagefolder(path.parent, **kw)
    if path.suffix.lower() in (".csv", ".tsv"):
        return load_csv(path, **kw)
    if path.is_dir() or _TAR.search(text) or re.search(r"[*?\[]|\{\d+\.\.\d+\}", text):
        return load_webdataset(text, **kw)
    if not path.exists():
        raise FileNotFoundError(f"{text}: no such file or folder (for a Hub dataset write hf:owner/name)")
    raise ByoError(f"{text}: cannot tell the format; expected a folder with metadata.jsonl, a .csv/.tsv, .tar "
                   "shards, or hf:owner/name")
