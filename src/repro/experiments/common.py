"""What every experiment shares: finding (or building) the corpus of a profile, training a run, evaluating it."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import torch

from ..data.build import BuildConfig, build, corpus_dir
from ..data.sources import data_dir

log = logging.getLogger(__name__)


@contextlib.contextmanager
def limited_threads(threads: int | None) -> Iterator[None]:
    """torch and BLAS/OpenMP (scikit-learn's L-BFGS) limited to `threads` inside the block; None changes nothing."""
    if threads is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        torch.set_num_threads(before)


def corpus_for(corpus: str) -> Path:
    """The built corpus directory. The smoke corpus is built on demand (seconds, offline); the full corpus must
    have been built with `repro data build` (it needs the registries), else a clear error says so."""
    root = Path(data_dir())
    path = corpus_dir(root, corpus)
    if corpus == "smoke":
        build(BuildConfig(corpus="smoke", workers=1), root=root)
    elif not (path / "manifest.json").is_file():
        raise FileNotFoundError(
            f"the {corpus!r} corpus is not built at {path}: run `repro data build --corpus {corpus}` first "
            "(or `make data`), or set REPRO_DATA to where it was built"
        )
    return path


def suite_facts(suites: Iterable) -> dict[str, dict]:
    """What a chapter needs to know about each suite without the corpus — its split, label, class count and chance
    level — keyed by suite name; recorded in the result files of experiments that keep only accuracies."""
    return {s.name: {"split": s.split, "label": s.label, "n_classes": len(s.classes), "chance": 1 / len(s.classes)}
            for s in suites}


def curves_from_log(rows: list[dict], keys: tuple[str, ...] = ("loss", "lr", "logit_scale", "img_s")) -> dict:
    """Columns of the JSONL log: {"step": [...], key: [...]} for the keys present."""
    out: dict[str, list] = {"step": [r["step"] for r in rows]}
    for k in keys:
        if rows and k in rows[0]:
            out[k] = [r[k] for r in rows]
    return out


def trained_clip(profile: str, seed: int, workdir: Path, results_root: Path | None = None):
    """The `clip_small` model of `profile` and `seed` (model, tokenizer, train config) from `workdir`, training it
    first (through `clip_small.run`, which also writes its result file) when its weights are not there.

    Experiments that only *evaluate* the trained CLIP (prompts, search, probes …) share its training this way."""
    import json

    from ..loading import load
    from ..train import TrainConfig
    from . import clip_small

    run_dir = Path(workdir) / clip_small.NAME / profile / f"seed{seed}"
    if not (run_dir / "model.safetensors").is_file():
        log.info("no trained clip_small at %s: training it now (profile %s, seed %d)", run_dir, profile, seed)
        clip_small.run(profile, seed, Path(workdir), results_root)
    model, _ = load(run_dir / "model.safetensors")
    config = TrainConfig.from_dict(json.loads((run_dir / "config.json").read_text(encoding="utf-8")))
    return model.eval(), model.tokenizer, config


def trained_clip_with_corpus(profile: str, seed: int, workdir: Path, results_root: Path | None = None):
    """`trained_clip` plus the profile's corpus and a `SplitCache` over it at the model's training resolution:
    (model, tokenizer, train config, corpus directory, cache) — what every evaluation-only experiment starts from."""
    from ..evaluate.runner import SplitCache
    from . import clip_small

    model, tokenizer, config = trained_clip(profile, seed, Path(workdir), results_root)
    corpus = corpus_for(clip_small.PROFILES[profile]["corpus"])
    return model, tokenizer, config, corpus, SplitCache(model, corpus, config.data_size)


def shared_tokenizer(corpus: Path, vocab_size: int, workdir: Path, train_split: str = "train", size: int = 32) -> str:
    """Path of the BPE tokenizer learned on `corpus`'s training captions (as `TrainConfig(tokenizer="train")` learns
    it), learned once under `workdir/tokenizers/` and shared by every run of a sweep — the same vocabulary for every
    setting, and seconds saved per run."""
    from ..data.pack import load_packed
    from ..tokenizer import Tokenizer

    path = Path(workdir) / "tokenizers" / f"{Path(corpus).name}_{train_split}_{vocab_size}.json"
    if not path.is_file():
        packed = load_packed(Path(corpus) / "packed" / f"{train_split}_{size}.npz")
        tokenizer = Tokenizer.train([c for cs in packed.captions for c in cs], vocab_size)
        path.parent.mkdir(parents=True, exist_ok=True)
        tokenizer.save(path)  # atomic
    return str(path)


def train_run(config, callback=None) -> dict:
    """`train(config)` into an out_dir that the experiment owns: a run of the same settings that an interrupted
    experiment left there is resumed (when no `callback` has to see every step); any other run there is replaced,
    with a warning in the log."""
    from ..runs import resumable
    from ..train import train

    if callback is None and resumable(config):
        log.info("resuming the run in %s", config.out_dir)
        return train(config, resume=True)
    return train(config, callback=callback, replace=True)


def train_with_snapshots(config, snapshots: int, evaluate) -> tuple[dict, list[dict]]:
    """Train `config` (a `TrainConfig` with `steps` set), calling `evaluate(objective)` -> dict at `snapshots`
    evenly spaced steps (the last is the end of training); returns the training summary and one row per snapshot
    {"step", "images_seen", **evaluate(...)} — curves of accuracy against images seen (paper Figure 2)."""
    if not config.steps:
        raise ValueError("train_with_snapshots needs config.steps")
    at = {max(1, round(config.steps * (k + 1) / snapshots)) for k in range(snapshots)}
    rows: list[dict] = []

    def callback(step: int, objective) -> None:
        if step in at:
            rows.append({"step": step, "images_seen": step * config.batch_size, **evaluate(objective)})
            log.info("step %d: %s", step, {k: v for k, v in rows[-1].items() if isinstance(v, float)})

    return train_run(config, callback=callback), rows


def cached_json(path: Path, key: object, compute: Callable[[], object]) -> object:
    """`compute()`'s JSON-able result, stored atomically at `path` with `key` (e.g. the run's configuration) and
    returned from there on a later call with an equal key — a finished run is not repeated when an interrupted
    experiment is run again; a different key recomputes and overwrites."""
    from ..files import atomic_write_text

    key = json.loads(json.dumps(key, default=float))
    if path.is_file():
        stored = json.loads(path.read_text(encoding="utf-8"))
        if stored.get("key") == key:
            return stored["value"]
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({"key": key, "value": value}, default=float))
    return value
