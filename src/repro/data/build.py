"""`repro data build`: fetch → render → caption → split → de-duplicate → store (Arrow) → pack (.npz) → manifest.

The corpus is built once into the data directory; a second build with the same configuration and sources does
nothing. `corpus="smoke"` builds the tiny generated corpus (no network, seconds) through the very same steps.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import multiprocessing as mp
import os
import platform
import shutil
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image
from tqdm.auto import tqdm

from ..files import atomic_write_text
from . import sources
from .captions import make_captions, readable, with_article
from .dedup import PerceptualDeduplicator, phash
from .large import corpus_statistics, gpu_subset, memory_estimate, peak_memory_mib
from .pack import pack
from .render import RenderError, dhash, is_blank, pixel_sha256, render
from .schema import HELD_OUT_STYLES, TRAIN_EMOJI_STYLES, RawItem, features
from .splits import Deduplicator, concept_splits, find_leaks, phrase_pattern, scrub_captions
from .suites import EMOJI_TEMPLATES, SMOKE_TEMPLATES, Suite, label_suites

log = logging.getLogger(__name__)
BUILD_VERSION = 3
MAX_CAPTIONS = 10
EVAL_PREFIXES = ("val", "zeroshot", "test-")


@dataclass(frozen=True)
class BuildConfig:
    """What to build. `max_icons` caps the icons taken (spread over the allowed sets); `size` is the stored
    resolution; `pack_sizes` the packed resolutions."""

    corpus: str = "full"  # "full" | "large" | "smoke"
    size: int = 64
    pack_sizes: tuple[int, ...] = (32, 48, 64)
    max_icons: int | None = 30_000
    max_icons_per_set: int | None = 400
    seed: int = 0
    val_frac: float = 0.1
    zeroshot_frac: float = 0.1
    workers: int = 0  # 0: one per CPU core
    icons_by_name: bool = False  # a capped icon set is sampled name by name (repro.data.large.spread_sample)
    near_distance: int | None = None  # also drop perceptual-hash near duplicates within this many bits

    @classmethod
    def preset(cls, corpus: str, **overrides) -> BuildConfig:
        """The configuration of a named corpus (`large`: repro.data.large.PRESET), with `overrides`."""
        from .large import PRESET

        return cls(corpus=corpus, **(PRESET if corpus == "large" else {}) | overrides)

    def stamp(self) -> str:
        keys = ["smoke"] if self.corpus == "smoke" else sorted(sources.SOURCES)
        digests = [sources.SOURCES[k].digest for k in keys if k in sources.SOURCES]
        config = {k: v for k, v in asdict(self).items() if k not in _LATER_FIELDS or v != _LATER_FIELDS[k]}
        payload = json.dumps([BUILD_VERSION, config | {"workers": None}, digests], sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


#: Fields added after BUILD_VERSION 3, with their defaults: at a default they stay out of the stamp, so a corpus
#: that does not use them (`full`, `smoke`) keeps its stamp.
_LATER_FIELDS = {"icons_by_name": False, "near_distance": None}


def corpus_dir(root: Path, corpus: str) -> Path:
    return root / "build" / corpus


def _raw_items(config: BuildConfig, raw: Path, stats: Counter) -> tuple[Iterator[RawItem], tuple[str, ...], list[str]]:
    """The source pictures, the held-out styles and the source keys used; `stats` counts the icons skipped."""
    if config.corpus == "smoke":
        from .smoke import SMOKE_HELD_OUT_STYLES, iter_smoke

        return iter_smoke(seed=config.seed), SMOKE_HELD_OUT_STYLES, []
    from .clipart import iter_clipart
    from .emoji import iter_emoji
    from .icons import iter_icons

    keys = list(sources.SOURCES)
    for key in tqdm(keys, desc="fetch sources", unit="source"):
        sources.fetch(key, raw.parent)

    def chain() -> Iterator[RawItem]:
        yield from iter_emoji(raw)
        yield from iter_clipart(raw)
        yield from iter_icons(raw, max_per_set=config.max_icons_per_set, max_total=config.max_icons, seed=config.seed,
                              stats=stats, by_name=config.icons_by_name)

    return chain(), HELD_OUT_STYLES, keys


def _render_one(args: tuple[RawItem, int]) -> dict:
    item, size = args
    row = {k: v for k, v in asdict(item).items() if k not in ("data", "kind", "tags")}
    row["captions"] = make_captions(item)
    try:
        image = render(item.kind, item.data, size, item.concept_id)
    except RenderError as e:
        return row | {"error": str(e)}
    if is_blank(image):
        return row | {"error": f"blank render of {item.concept_id} ({item.style})"}
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return row | {"png": buf.getvalue(), "sha256": pixel_sha256(image), "dhash": dhash(image), "phash": phash(image)}


def render_all(items: Iterable[RawItem], size: int, workers: int) -> tuple[list[dict], list[str]]:
    """Render every item in parallel (order kept); returns the rows and the failures (each named)."""
    rows, failures = [], []
    jobs = ((item, size) for item in items)
    workers = workers or os.cpu_count() or 1
    with mp.get_context("spawn").Pool(workers) if workers > 1 else _Serial() as pool:
        for row in tqdm(pool.imap(_render_one, jobs, chunksize=64), desc="render", unit="img"):
            (failures.append(row["error"]) if "error" in row else rows.append(row))
    return rows, failures


class _Serial:
    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    @staticmethod
    def imap(fn, it, chunksize: int = 1):
        return map(fn, it)


def assign_splits(rows: list[dict], held_out: tuple[str, ...], config: BuildConfig) -> tuple[dict, dict]:
    """Put every row in its split (see repro.data.splits); returns ({split: rows}, report of what was dropped)."""
    concept_rows = [r for r in rows if r["concept_id"].startswith(("emoji:", "smoke:"))]
    other_rows = [r for r in rows if not r["concept_id"].startswith(("emoji:", "smoke:"))]
    strata = {r["concept_id"]: r["subcategory"] or r["category"] for r in concept_rows}
    csplit = concept_splits(strata, config.seed, config.val_frac, config.zeroshot_frac)
    splits: dict[str, list[dict]] = defaultdict(list)
    train_candidates = []
    for r in concept_rows:
        s = csplit[r["concept_id"]]
        if s == "zeroshot":
            splits["zeroshot"].append(r)
        elif r["style"] in held_out:
            splits[f"test-{r['style']}"].append(r)
        elif s == "val":
            splits["val"].append(r)
        else:
            train_candidates.append(r)
    zs_names = sorted({readable(r["name"]) for r in splits["zeroshot"]})
    pattern = phrase_pattern(zs_names)
    near = config.near_distance is not None
    dedup = PerceptualDeduplicator(config.near_distance) if near else Deduplicator()
    for split_rows in splits.values():
        for r in split_rows:
            dedup.reserve(r["sha256"], r["dhash"], r["phash"] if near else None)
    train: list[dict] = []
    dropped: Counter = Counter()
    for r in train_candidates + other_rows:
        if pattern is not None and pattern.search(readable(r["name"])):
            dropped["names a zero-shot concept"] += 1
            continue
        captions = scrub_captions(r["captions"], pattern)
        if not captions:
            dropped["every caption names a zero-shot concept"] += 1
            continue
        dup = dedup.admit(r["sha256"], r["dhash"], len(train), r["phash"] if near else None)
        if dup is None:
            train.append(r | {"captions": captions})
        elif dup >= 0:
            merged = train[dup]["captions"] + [c for c in captions if c not in train[dup]["captions"]]
            train[dup]["captions"] = merged[:MAX_CAPTIONS]
    dropped.update(dedup.dropped)
    splits["train"] = train
    leaks = find_leaks(train, [r | {"split": s} for s, rs in splits.items() if s != "train" for r in rs], zs_names,
                       held_out)
    if leaks:
        raise RuntimeError("the split leaks evaluation data into training:\n" + "\n".join(leaks[:20]))
    return dict(splits), {"dropped": dict(dropped), "zeroshot_concepts": zs_names}


def _photo_rows(raw: Path) -> dict[str, tuple[list[dict], Suite]]:
    """Real labelled photos as rows in the corpus schema, with their suites."""
    from . import photos

    out = {}
    loaders = {
        "fashion-mnist-test": (lambda: photos.load_fashion_mnist(raw / "fashion-mnist", "test"),
                               photos.FASHION_MNIST_CLASSES, photos.FASHION_MNIST_TEMPLATES, "fashion-mnist"),
        "mnist-test": (lambda: photos.load_mnist(raw / "mnist"), photos.MNIST_CLASSES, photos.MNIST_TEMPLATES,
                       "mnist"),
        "digits": (lambda: photos.load_digits(raw / "sklearn-digits"), photos.DIGITS_CLASSES,
                   photos.DIGITS_TEMPLATES, "sklearn-digits"),
    }
    for split, (load, classes, templates, key) in loaders.items():
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
        suite = Suite(split, split, "name", tuple(classes), tuple(classes), tuple(templates), "real photos",
                      f"{len(classes)}-way classification of real {key} images")
        out[split] = (rows, suite)
    return out


def make_suites(splits: dict[str, list[dict]], config: BuildConfig) -> dict:
    """Suites over the emoji (or smoke) splits, plus the supervised label set of the training styles."""
    smoke = config.corpus == "smoke"
    templates = SMOKE_TEMPLATES if smoke else EMOJI_TEMPLATES
    fields = ("category", "name") if smoke else ("category", "subcategory", "name")
    prefix = "smoke" if smoke else "emoji"
    suites: list[Suite] = []
    for split in sorted(splits):
        if not split.startswith(EVAL_PREFIXES) or not splits[split]:
            continue
        shift = {"val": "in-distribution", "zeroshot": "zero-shot concepts"}.get(split, "held-out style")
        values = {f: [r[f] for r in splits[split]] for f in fields}
        suites += label_suites(split, values, shift, templates, prefix, fields)
    label = "category" if smoke else "subcategory"
    train_styles = None if smoke else TRAIN_EMOJI_STYLES
    supervised_rows = [r for r in splits["train"] if r["concept_id"].startswith(("emoji:", "smoke:"))
                       and (train_styles is None or r["style"] in train_styles)]
    classes = sorted({r[label] for r in supervised_rows} - {""})
    supervised = {"split": "train", "label": label, "classes": classes, "styles": list(train_styles or []),
                  "n": len(supervised_rows),
                  "description": f"{label} labels of the training styles' emoji: the supervised baseline's data"}
    return {"suites": [s.to_dict() for s in suites], "supervised": supervised}


def store(splits: dict[str, list[dict]], out: Path) -> None:
    """Save the splits as a Hugging Face DatasetDict (Arrow), replacing any previous one only once complete."""
    from datasets import Dataset, DatasetDict

    cols = list(features())
    dd = DatasetDict({
        name: Dataset.from_list(
            [{c: ({"bytes": r["png"], "path": None} if c == "image" else r.get(c, "")) for c in cols} for r in rows],
            features=features(),
        )
        for name, rows in splits.items()
    })
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    dd.save_to_disk(str(tmp))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def _pil_rows(rows: list[dict]) -> Iterator[dict]:
    for r in rows:
        yield r | {"image": Image.open(io.BytesIO(r["png"]))}


def build(config: BuildConfig = BuildConfig(), root: Path | None = None, force: bool = False) -> dict:
    """Build the corpus under `root` (default: the data directory) and return its manifest."""
    start = time.time()
    root = Path(root or sources.data_dir())
    out = corpus_dir(root, config.corpus)
    manifest_path = out / "manifest.json"
    if not force and manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("stamp") == config.stamp() and all((out / p["path"]).is_file() for p in manifest["packed"]):
            log.info("corpus %s is up to date at %s", config.corpus, out)
            return manifest
    raw = root / "raw"
    icon_stats: Counter = Counter()
    items, held_out, keys = _raw_items(config, raw, icon_stats)
    rows, failures = render_all(items, config.size, config.workers)
    splits, report = assign_splits(rows, held_out, config)
    suites = make_suites(splits, config)
    if config.corpus != "smoke":
        for split, (photo_rows, suite) in _photo_rows(raw).items():
            splits[split] = photo_rows
            suites["suites"].append(suite.to_dict())
    out.mkdir(parents=True, exist_ok=True)
    store(splits, out / "datasets")
    atomic_write_text(out / "suites.json", json.dumps(suites, indent=1, ensure_ascii=False))
    packed = []
    for split, split_rows in tqdm(sorted(splits.items()), desc="pack", unit="split"):
        for size in config.pack_sizes:
            path = out / "packed" / f"{split}_{size}.npz"
            info = pack(_pil_rows(split_rows), size, path, {"split": split, "corpus": config.corpus}, len(split_rows))
            packed.append(info | {"split": split, "path": str(path.relative_to(out))})
    counts = {s: dict(Counter(r["style"] for r in rs)) for s, rs in splits.items()}
    by_source = {s: dict(Counter(r["source"] for r in rs)) for s, rs in splits.items()}
    licences = Counter((r["source"], r["licence"], r["attribution"]) for rs in splits.values() for r in rs)
    manifest = {
        "corpus": config.corpus, "stamp": config.stamp(), "config": asdict(config),
        "sources": sources.manifest(keys) if keys else [],
        "licences": [{"source": s, "licence": lic, "attribution": a, "images": n}
                     for (s, lic, a), n in sorted(licences.items())],
        "counts": counts, "counts_by_source": by_source, "held_out_styles": list(held_out),
        "dropped": report["dropped"] | {"render failures": len(failures)}, "render_failures": failures[:50],
        "zeroshot_concepts": report["zeroshot_concepts"], "leak_check": "passed", "packed": packed,
        "caption_examples": {s: rs[0]["captions"] for s, rs in sorted(splits.items()) if rs},
        "icons_skipped": dict(icon_stats), "statistics": corpus_statistics(splits),
        "memory_estimate_gib": memory_estimate({s: len(rs) for s, rs in splits.items()}, config.pack_sizes),
        "gpu_subset": gpu_subset(packed), "peak_memory": peak_memory_mib(),
        "wall_time_s": round(time.time() - start, 1), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "hardware": {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version()},
    }
    text = json.dumps(manifest, indent=1, ensure_ascii=False)
    atomic_write_text(manifest_path, text)
    return json.loads(text)
