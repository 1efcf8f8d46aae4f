"""The narrow CLIP of the `robustness` experiment: Fang et al.'s (2022) ablation of the paper's robustness claim.

The paper (§3.3, Figure 13) finds zero-shot CLIP far above the trend of supervised ImageNet models and cautions that
this may come from its large and diverse pre-training data rather than from language supervision or zero-shot
transfer. Fang et al. ("Data Determines Distributional Robustness in Contrastive Language Image Pre-training",
ICML 2022) tested it: CLIP trained on ImageNet's own pictures with captions lies on the supervised trend — language
supervision on the *same* images adds "little to no" robustness. Ours: the headline `clip_small` recipe (the same
model, vocabulary and optimiser) trained on exactly the pictures the supervised ResNets learn from
(`repro.evaluate.shift.training_rows`), with their captions instead of their labels. The trainer is not changed: the
pictures are written as a derived corpus whose packed training split holds only those rows.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path

import numpy as np

from ..data.pack import PackedSplit, load_text, save_packed
from ..files import atomic_write_text
from ..train import TrainConfig
from . import clip_small
from .common import train_run

__all__ = ["narrow_train_settings", "train_narrow_clip", "write_narrow_corpus"]


def narrow_train_settings(profile: str, fraction: float) -> dict:
    """The headline recipe (`clip_small.PROFILES[profile]["train"]`) with its steps and warmup scaled by
    `fraction` (the narrow corpus is a few thousand pictures; the budget, not the epochs, sets its length)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"profile {profile!r}: the narrow CLIP's step fraction must be in (0, 1], got {fraction!r}")
    base = dict(clip_small.PROFILES[profile]["train"])
    return base | {"steps": max(1, round(base["steps"] * fraction)),
                   "warmup_steps": round(base["warmup_steps"] * fraction)}


def _key(source_train: Path, train: PackedSplit, rows: np.ndarray, prefix: str, label: str) -> dict:
    stat = source_train.stat()
    digest = hashlib.sha256(json.dumps([train.fields["concept_id"][i] for i in rows]).encode("utf-8"))
    digest.update(np.ascontiguousarray(rows, dtype="<i8").tobytes())
    return {"source": str(source_train.resolve()), "source_size": stat.st_size, "source_mtime_ns": stat.st_mtime_ns,
            "task": prefix, "label": label, "n": len(rows), "rows_sha256": digest.hexdigest()}


def write_narrow_corpus(train: PackedSplit, rows: np.ndarray, source: Path, out: Path, size: int, prefix: str,
                        label: str) -> dict:
    """A corpus folder `out` whose `packed/train_<size>.npz` holds rows `rows` of the source corpus's packed
    training split `train` (images, captions, fields; written atomically by `save_packed`: numpy, no pickle), with
    the source's `suites.json` and evaluation splits linked in (so `run_suites` and `SplitCache` can read it too; the
    trainer reads only the training split). The file is rewritten only when the rows or the source changed — the
    same bytes let an interrupted narrow run resume (the trainer checks the split's SHA-256). Returns a summary."""
    source, out = Path(source), Path(out)
    path = out / "packed" / f"train_{size}.npz"
    key = _key(source / "packed" / f"train_{size}.npz", train, rows, prefix, label)
    current = None
    if path.is_file():
        try:
            current = load_text(path)["meta"].get("derived")
        except ValueError:
            current = None  # unreadable: rewritten below
    if current != key:
        meta = dict(train.meta, n=len(rows), corpus=out.name, derived=key)
        save_packed(path, PackedSplit(train.images[rows], [list(train.captions[i]) for i in rows],
                                      {f: [v[i] for i in rows] for f, v in train.fields.items()}, meta))
    for item in [source / "suites.json", *sorted((source / "packed").glob("*.npz"))]:
        if item.name.startswith("train_"):
            continue  # every other packed size of the training split would be the whole corpus
        link = out / item.relative_to(source)
        if not link.exists() and not link.is_symlink():
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(item.resolve(), link)
    styles = Counter(train.fields["style"][i] for i in rows)
    summary = {"dir": str(out), "source": source.name, "n_train": len(rows),
               "n_captions": sum(len(train.captions[i]) for i in rows), "styles": dict(styles.most_common()),
               "rule": f"the rows of {source.name}'s training split labelled with a class of {prefix} "
                       f"(training_rows: the supervised models' pictures), with their captions"}
    atomic_write_text(out / "derived.json", json.dumps(summary | {"key": key}, indent=1))
    return summary


def train_narrow_clip(profile: str, seed: int, corpus_dir: Path, out_dir: Path, tokenizer_path: Path,
                      fraction: float) -> tuple[object, object, dict]:
    """Train (or resume, `common.train_run`) the headline recipe on the narrow corpus with the headline CLIP's
    tokenizer — only the pictures and their captions differ from the diverse CLIP. Returns (model in eval mode,
    tokenizer, training facts)."""
    settings = narrow_train_settings(profile, fraction)
    config = TrainConfig(corpus_dir=str(corpus_dir), out_dir=str(out_dir), seed=seed, tokenizer=str(tokenizer_path),
                         progress=False, **settings)
    summary = train_run(config)
    facts = {"steps": summary["steps"], "batch_size": config.batch_size, "warmup_steps": config.warmup_steps,
             "step_fraction": fraction, "img_s": summary["img_s"], "train_wall_time_s": summary["wall_time_s"],
             "final": summary["final"], "precision": summary["precision"],
             "epochs": round(summary["steps"] * config.batch_size / max(1, _n_rows(corpus_dir, config)), 2)}
    return summary["objective"].model.eval(), summary["tokenizer"], facts


def _n_rows(corpus_dir: Path, config: TrainConfig) -> int:
    return int(load_text(Path(corpus_dir) / "packed" / f"{config.train_split}_{config.data_size}.npz")["meta"]["n"])
