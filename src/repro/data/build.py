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
from ..provenance import cpu_record
from . import sources
from .captions import make_captions, readable
from .classnames import (
    CATEGORY_CANDIDATES,
    SUBCATEGORY_CANDIDATES,
    all_candidates,
    candidates_of,
    choose_classnames,
)
from .dedup import PerceptualDeduplicator, phash
from .large import corpus_statistics, gpu_subset, memory_estimate, peak_memory_mib
from .pack import pack
from .render import RenderError, dhash, is_blank, pixel_sha256, render
from .schema import HELD_OUT_ICON_SETS, HELD_OUT_STYLES, TRAIN_EMOJI_STYLES, RawItem, features, held_out_icon_family
from .splits import Deduplicator, concept_splits, find_leaks, named_concepts, phrase_pattern, scrub_captions
from .suites import EMOJI_TEMPLATES, ICON_TEMPLATES, SMOKE_TEMPLATES, Suite, classname, label_suites, shift_of
from .vocabulary import phrase_counts

log = logging.getLogger(__name__)
BUILD_VERSION = 4
MAX_CAPTIONS = 10
EVAL_PREFIXES = ("val", "named", "zeroshot", "test-")


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
    named_frac: float = 0.1  # share of concepts held out as `named` (zero-shot with names in training text)

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
    from .emoji import iter_emoji, load_emoji_metadata
    from .icons import iter_icons

    keys = list(sources.SOURCES)
    for key in tqdm(keys, desc="fetch sources", unit="source"):
        sources.fetch(key, raw.parent)

    def chain() -> Iterator[RawItem]:
        yield from iter_emoji(raw)
        yield from iter_clipart(raw)
        concept_names = {readable(m["name"]) for m in load_emoji_metadata(raw).values()}
        yield from iter_icons(raw, max_per_set=config.max_icons_per_set, max_total=config.max_icons, seed=config.seed,
                              stats=stats, by_name=config.icons_by_name, held_out_names=concept_names)

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


#: Other-source training pictures whose captions must name a concept for it to be a `named` zero-shot concept.
NAMED_MIN_PICTURES = 3


def _is_concept(row: dict) -> bool:
    return row["concept_id"].startswith(("emoji:", "smoke:"))


def _icon_family(row: dict) -> str | None:
    return held_out_icon_family(row["subcategory"]) if row["concept_id"].startswith("icon:") else None


def assign_splits(rows: list[dict], held_out: tuple[str, ...], config: BuildConfig) -> tuple[dict, dict]:
    """Put every row in its split (see repro.data.splits); returns ({split: rows}, report of what was dropped and
    how the `named` concepts were chosen)."""
    concept_rows = [r for r in rows if _is_concept(r)]
    icon_eval = [r for r in rows if not _is_concept(r) and _icon_family(r)]
    other_rows = [r for r in rows if not _is_concept(r) and not _icon_family(r)]
    strata = {r["concept_id"]: r["subcategory"] or r["category"] for r in concept_rows}
    csplit = concept_splits(strata, config.seed, config.val_frac, config.zeroshot_frac)
    zs_names = sorted({readable(r["name"]) for r in concept_rows if csplit[r["concept_id"]] == "zeroshot"})
    pattern = phrase_pattern(zs_names)
    train_names = {r["concept_id"]: readable(r["name"]) for r in concept_rows if csplit[r["concept_id"]] == "train"}
    other_pictures = pictures_naming([scrub_captions(r["captions"], pattern) for r in other_rows],
                                     train_names.values())
    candidates = {c: other_pictures[n] for c, n in train_names.items()}
    named = named_concepts(candidates, round(config.named_frac * len(strata)), config.seed, NAMED_MIN_PICTURES)
    csplit |= dict.fromkeys(named, "named")
    splits: dict[str, list[dict]] = defaultdict(list)
    train_candidates = []
    for r in concept_rows:
        s = csplit[r["concept_id"]]
        if s == "zeroshot":
            splits["zeroshot"].append(r)
        elif r["style"] in held_out:
            splits[f"test-{r['style']}"].append(r)
        elif s in ("val", "named"):
            splits[s].append(r)
        else:
            train_candidates.append(r)
    eval_names = {readable(r["name"]) for r in concept_rows} - set(zs_names)
    for r in icon_eval:
        if r["name"] in eval_names:
            splits[f"test-icons-{_icon_family(r)}"].append(r)
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
    eligible = sum(k >= NAMED_MIN_PICTURES for k in candidates.values())
    named_report = {"min_pictures": NAMED_MIN_PICTURES, "candidates": len(candidates), "eligible": eligible,
                    "concepts": len(named), "rule": "training concepts whose name at least min_pictures other-source "
                    "training pictures have in a caption, taken in a seeded hash order"}
    return dict(splits), {"dropped": dict(dropped), "zeroshot_concepts": zs_names, "named": named_report}


def pictures_naming(captions: list[list[str]], phrases: Iterable[str]) -> dict[str, int]:
    """phrase -> how many pictures (`captions[i]`: picture i's captions) have it in a caption, as whole words
    (repro.data.vocabulary.phrase_counts)."""
    counts = phrase_counts(captions, set(phrases))
    return {p: pictures for p, (_captions, pictures) in counts.items()}


def choose_label_names(splits: dict[str, list[dict]], pictures: dict[str, int]) -> dict[str, dict[str, str]]:
    """field -> label -> class name, for the category and subcategory labels of the concept rows."""
    rows = [r for name, rs in splits.items() if name != "train" for r in rs if _is_concept(r)]
    out = {}
    for field, table in (("category", CATEGORY_CANDIDATES), ("subcategory", SUBCATEGORY_CANDIDATES)):
        labels = sorted({r[field] for r in rows} - {""})
        out[field] = choose_classnames(candidates_of(labels, table, lambda x, f=field: classname(x, f)), pictures)
    return out


def make_suites(splits: dict[str, list[dict]], config: BuildConfig, pictures: dict[str, int]) -> dict:
    """Suites over the evaluation splits, plus the supervised label set of the training styles; `pictures` counts
    the candidate class names in the training captions (`pictures_naming`)."""
    smoke = config.corpus == "smoke"
    templates = SMOKE_TEMPLATES if smoke else EMOJI_TEMPLATES
    fields = ("category", "name") if smoke else ("category", "subcategory", "name")
    prefix = "smoke" if smoke else "emoji"
    names = choose_label_names(splits, pictures)
    suites: list[Suite] = []
    for split in sorted(splits):
        if not split.startswith(EVAL_PREFIXES) or not splits[split]:
            continue
        shift, note = shift_of(split)
        icons = split.startswith("test-icons-")
        split_fields = ("name",) if icons else fields
        values = {f: [r[f] for r in splits[split]] for f in split_fields}
        suites += label_suites(split, values, shift, ICON_TEMPLATES if icons else templates,
                               "icons" if icons else prefix, split_fields, names, note)
    label = "category" if smoke else "subcategory"
    train_styles = None if smoke else TRAIN_EMOJI_STYLES
    supervised_rows = [r for r in splits["train"] if _is_concept(r)
                       and (train_styles is None or r["style"] in train_styles)]
    classes = sorted({r[label] for r in supervised_rows} - {""})
    supervised = {"split": "train", "label": label, "classes": classes, "styles": list(train_styles or []),
                  "n": len(supervised_rows),
                  "description": f"{label} labels of the training styles' emoji: the supervised baseline's data"}
    chosen = {field: {label: {"name": n, "training_pictures": pictures.get(n, 0)} for label, n in m.items()}
              for field, m in names.items()}
    return {"suites": [s.to_dict() for s in suites], "supervised": supervised, "classnames": chosen}


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


def render_versions() -> dict[str, str]:
    """The versions of what draws and hashes the pictures (numpy, Pillow, CairoSVG and the cairo library), which a
    rebuild needs to match to give the same pictures; a package that is missing is left out."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("numpy", "pillow", "cairosvg"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    try:
        import cairocffi

        found["cairo"] = cairocffi.cairo_version_string()
    except (ImportError, OSError):
        pass
    return found


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
    fallbacks = {classname(r[f], f) for rs in splits.values() for r in rs if _is_concept(r)
                 for f in ("category", "subcategory")}  # the names of labels the candidate tables do not know
    pictures = pictures_naming([r["captions"] for r in splits["train"]], all_candidates() | fallbacks)
    suites = make_suites(splits, config, pictures)
    if config.corpus != "smoke":
        from .photos import photo_splits

        for split, (photo_rows, suite) in photo_splits(raw, pictures).items():
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
        "zeroshot_concepts": report["zeroshot_concepts"], "named_concepts": report["named"], "leak_check": "passed",
        "held_out_icon_sets": {f: HELD_OUT_ICON_SETS[f] for f in HELD_OUT_ICON_SETS}, "packed": packed,
        "caption_examples": {s: rs[0]["captions"] for s, rs in sorted(splits.items()) if rs},
        "icons_skipped": dict(icon_stats), "statistics": corpus_statistics(splits),
        "memory_estimate_gib": memory_estimate({s: len(rs) for s, rs in splits.items()}, config.pack_sizes),
        "gpu_subset": gpu_subset(packed), "peak_memory": peak_memory_mib(),
        "wall_time_s": round(time.time() - start, 1), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "hardware": {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
                     **cpu_record()},  # perceptual hashes can depend on the CPU's kernels (dedup.phash_rounding_bits)
        "versions": render_versions(),
    }
    text = json.dumps(manifest, indent=1, ensure_ascii=False)
    atomic_write_text(manifest_path, text)
    return json.loads(text)
