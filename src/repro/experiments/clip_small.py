"""The first experiment: train the default small CLIP on the captioned corpus, then evaluate it zero-shot on every
suite (in-distribution, held-out styles, zero-shot concepts, real photos) and in retrieval, and record how the
learnable temperature moves (paper §2.5, §3.1)."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

from ..evaluate import run_suites
from ..train import TrainConfig, read_log
from .common import corpus_for, curves_from_log, train_run
from .results import write_result

NAME = "clip_small"

#: the smoke model: ViT-XS/8@32px with half its layers, a 16-token context and a 1,024-entry vocabulary
_TINY = {"vision_layers": 2, "transformer_layers": 2, "context_length": 16, "vocab_size": 1024}

#: Sizes per profile; the code path is the same. smoke: seconds on the generated corpus (CI). cpu: a 2-core laptop,
#: about ten minutes per seed (2 epochs). gpu: one H100, the book's headline.
PROFILES = {
    "smoke": {"corpus": "smoke", "seeds": 1, "train": dict(model="ViT-XS/8@32px", model_overrides=_TINY, data_size=32,
                                                           batch_size=32, steps=40, warmup_steps=5, lr=1e-3)},
    "cpu": {"corpus": "full", "seeds": 3, "train": dict(model="ViT-XS/8@32px", data_size=32,
                                                        batch_size=256, epochs=2, warmup_steps=50, lr=1e-3)},
    "gpu": {"corpus": "full", "seeds": 3, "train": dict(model="ViT-S/8@64px", data_size=32, batch_size=1024,
                                                        epochs=30, warmup_steps=200, lr=1e-3, precision="bf16")},
}


def run(profile: str, seed: int, workdir: Path, results_root: Path | None = None,
        corpus_name: str | None = None) -> Path:
    """Train and evaluate one seed; returns the result file's path. `corpus_name` trains the profile's recipe on
    another built corpus (e.g. "large", to measure what the data alone changes); runs go to a folder of their own."""
    spec = PROFILES[profile]
    corpus_name = corpus_name or spec["corpus"]
    corpus = corpus_for(corpus_name)
    where = profile if corpus_name == spec["corpus"] else f"{profile}-{corpus_name}"
    config = TrainConfig(corpus_dir=str(corpus), out_dir=str(workdir / NAME / where / f"seed{seed}"), seed=seed,
                         **spec["train"])
    start = time.time()
    summary = train_run(config)
    model = summary["objective"].model.eval()
    metrics = run_suites(model, summary["tokenizer"], corpus, config.data_size)
    metrics["train"] = {"steps": summary["steps"], "img_s": summary["img_s"], "final": summary["final"],
                        "train_wall_time_s": summary["wall_time_s"]}
    curves = curves_from_log(read_log(summary["log"]))
    return write_result(NAME, profile, seed, asdict(config) | {"corpus": corpus_name}, metrics,
                        time.time() - start, curves, results_root)
