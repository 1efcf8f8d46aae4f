"""The first experiment: train the default small CLIP on the captioned corpus, then evaluate it zero-shot on every
suite (in-distribution, held-out styles, zero-shot concepts, real photos) and in retrieval, and record how the
learnable temperature moves (paper §2.5, §3.1)."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

from ..evaluate import run_suites
from ..train import TrainConfig, read_log
from . import scaling
from .common import corpus_for, curves_from_log, shared_tokenizer, train_run
from .results import write_result

NAME = "clip_small"

#: the smoke model: ViT-XS/8@32px with half its layers, a 16-token context and a 1,024-entry vocabulary
_TINY = {"vision_layers": 2, "transformer_layers": 2, "context_length": 16, "vocab_size": 1024}

#: The headline model, chosen by the compute study (`repro.experiments.scaling.choose_headline` on its committed cpu
#: results: the best validation accuracy among the models this budget can train 3× the study's images, ≤ 10 MB).
HEADLINE = ("ResNet", "RN 16")
#: Training seconds per seed the cpu profile is sized for on a 2-core laptop (the profile's ceiling is 45 minutes).
BUDGET_S = 900
_HEADLINE_MODEL = scaling.LADDERS[HEADLINE[0]][HEADLINE[1]]

#: Sizes per profile; the code path is the same. smoke: seconds on the generated corpus (CI). cpu: the headline,
#: the study's recipe trained for about BUDGET_S on 2 cores (steps = budget × the study's measured images per
#: second / batch). gpu: one H200 in a short lease (`repro.gpu`), the study's largest ResNet, on the copy of the
#: corpus that travels.
PROFILES = {
    "smoke": {"corpus": "smoke", "seeds": 1, "train": dict(model="ViT-XS/8@32px", model_overrides=_TINY, data_size=32,
                                                           batch_size=32, steps=40, warmup_steps=5, lr=1e-3)},
    "cpu": {"corpus": "large", "seeds": 5, "train": dict(**_HEADLINE_MODEL, data_size=32, batch_size=256, steps=5360,
                                                         warmup_steps=500, lr=1e-3)},
    "gpu": {"corpus": "large", "seeds": 3, "train": dict(**scaling.LADDERS["ResNet"]["RN 32"], data_size=32,
                                                         batch_size=1024, steps=2000, warmup_steps=200, lr=2e-3)},
}


def run(profile: str, seed: int, workdir: Path, results_root: Path | None = None,
        corpus_name: str | None = None) -> Path:
    """Train and evaluate one seed; returns the result file's path. `corpus_name` trains the profile's recipe on
    another built corpus (e.g. "large", to measure what the data alone changes); runs go to a folder of their own."""
    spec = PROFILES[profile]
    corpus_name = corpus_name or spec["corpus"]
    corpus = corpus_for(corpus_name)
    where = profile if corpus_name == spec["corpus"] else f"{profile}-{corpus_name}"
    vocab = TrainConfig(**spec["train"]).clip_config().vocab_size
    tokenizer = shared_tokenizer(corpus, vocab, Path(workdir), size=spec["train"]["data_size"])  # learned once
    config = TrainConfig(corpus_dir=str(corpus), out_dir=str(workdir / NAME / where / f"seed{seed}"), seed=seed,
                         tokenizer=tokenizer, **spec["train"])
    start = time.time()
    summary = train_run(config)
    model = summary["objective"].model.eval()
    metrics = run_suites(model, summary["tokenizer"], corpus, config.data_size)
    metrics["train"] = {"steps": summary["steps"], "img_s": summary["img_s"], "final": summary["final"],
                        "train_wall_time_s": summary["wall_time_s"], "train_flops": summary["flops"]["total"],
                        "precision": summary["precision"], "corpus": summary["corpus"]}  # the build trained on
    curves = curves_from_log(read_log(summary["log"]))
    return write_result(NAME, profile, seed, asdict(config) | {"corpus": corpus_name}, metrics,
                        time.time() - start, curves, results_root)
