"""What the book shows of a built corpus, as small files under results/data/<corpus>/: the manifest (sources,
licences, counts, drops, packed sizes), the suites, a grid of the same concepts in every style, and caption
examples. The chapter reads these; it never needs the corpus itself."""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..files import atomic_write, atomic_write_text
from .build import corpus_dir
from .schema import EMOJI_STYLES

GRID_CONCEPTS = ("emoji:1f436", "emoji:1f6b2", "emoji:1f355", "emoji:1f98b", "emoji:2602", "emoji:1f3b8",
                 "emoji:1f680", "emoji:1f333")


def concept_grid(dd, styles: tuple[str, ...], wanted: tuple[str, ...], n: int = 8) -> dict:
    """Images [concepts, styles, H, W, 3] of concepts present in every style (the wanted ones first)."""
    found: dict[str, dict[str, np.ndarray]] = defaultdict(dict)
    names: dict[str, str] = {}
    for split in dd.values():
        cols = split.remove_columns([c for c in split.column_names if c not in ("concept_id", "style", "name")])
        for i, row in enumerate(cols):
            if row["style"] in styles:
                found[row["concept_id"]].setdefault(row["style"], (split, i))
                names[row["concept_id"]] = row["name"]
    complete = [c for c in found if len(found[c]) == len(styles)]
    order = [c for c in wanted if c in complete] + sorted(c for c in complete if c not in wanted)
    chosen = order[:n]
    images = np.stack([
        np.stack([np.asarray(found[c][s][0][found[c][s][1]]["image"].convert("RGB")) for s in styles]) for c in chosen
    ]) if chosen else np.zeros((0, len(styles), 1, 1, 3), np.uint8)
    return {"images": images, "concepts": chosen, "names": [names[c] for c in chosen], "styles": list(styles)}


def write_summary(root: Path, corpus: str, out: Path) -> Path:
    """Write results/data/<corpus>/: manifest.json, suites.json, grid.npz, captions.json."""
    from datasets import load_from_disk

    src = corpus_dir(root, corpus)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("manifest.json", "suites.json"):
        shutil.copyfile(src / name, out / f".{name}.tmp")
        (out / f".{name}.tmp").replace(out / name)
    dd = load_from_disk(str(src / "datasets"))
    if corpus == "smoke":
        from .smoke import SMOKE_STYLES

        styles: tuple[str, ...] = SMOKE_STYLES
        wanted: tuple[str, ...] = ()
    else:
        styles, wanted = EMOJI_STYLES, GRID_CONCEPTS
    grid = concept_grid(dd, styles, wanted)
    blob = np.frombuffer(json.dumps({k: grid[k] for k in ("concepts", "names", "styles")}).encode(), np.uint8)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, images=grid["images"], text=blob)

    atomic_write(out / "grid.npz", write)
    examples: dict[str, list[dict]] = {}
    for split_name, split in dd.items():
        cols = split.remove_columns("image")
        by_source: dict[str, list[dict]] = defaultdict(list)
        picks = np.random.default_rng(0).permutation(len(cols))[:400]  # a fixed, varied sample
        for row in cols.select(sorted(int(i) for i in picks)):
            if len(by_source[row["source"]]) < 3:
                by_source[row["source"]].append({k: row[k] for k in ("concept_id", "name", "style", "captions")})
        examples[split_name] = [r for rows in by_source.values() for r in rows]
    atomic_write_text(out / "captions.json", json.dumps(examples, indent=1, ensure_ascii=False))
    write_names(src, out)
    return out


def write_names(corpus: Path, out: Path) -> Path:
    """names.json: for every suite of `corpus`, how often its class names and template words occur in the training
    captions (`repro.data.vocabulary.name_occurrence`)."""
    from .pack import load_packed
    from .suites import Suite
    from .vocabulary import name_occurrence

    suites = [Suite.from_dict(s) for s in json.loads((corpus / "suites.json").read_text())["suites"]]
    train = min((corpus / "packed").glob("train_*.npz"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))
    record = name_occurrence(load_packed(train), suites)
    atomic_write_text(out / "names.json", json.dumps(record, ensure_ascii=False, separators=(",", ":")))
    return out / "names.json"


def read_summary(path: Path) -> dict:
    """The files written by `write_summary`, loaded (grid images as an array)."""
    path = Path(path)
    with np.load(path / "grid.npz", allow_pickle=False) as z:
        grid = json.loads(z["text"].tobytes().decode()) | {"images": z["images"]}
    return {
        "path": path,
        "manifest": json.loads((path / "manifest.json").read_text()),
        "suites": json.loads((path / "suites.json").read_text()),
        "captions": json.loads((path / "captions.json").read_text()),
        "names": json.loads((path / "names.json").read_text()) if (path / "names.json").is_file() else None,
        "grid": grid,
    }


def summary_or_smoke(results: Path, corpus: str = "full") -> dict:
    """`results/data/<corpus>` if it was committed; otherwise build the smoke corpus now (seconds, offline) and
    summarise it — the returned dict's `fallback` is True then, and the chapter must say so."""
    path = Path(results) / "data" / corpus
    if (path / "manifest.json").is_file():
        return read_summary(path) | {"fallback": False}
    import tempfile

    from .build import BuildConfig, build

    tmp = Path(tempfile.mkdtemp(prefix="repro-smoke-"))
    build(BuildConfig(corpus="smoke", workers=1), root=tmp)
    return read_summary(write_summary(tmp, "smoke", tmp / "summary")) | {"fallback": True}
