"""What every experiment shares: finding (or building) the corpus of a profile, training a run, evaluating it."""

from __future__ import annotations

import logging
from pathlib import Path

from ..data.build import BuildConfig, build, corpus_dir
from ..data.sources import data_dir

log = logging.getLogger(__name__)


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
