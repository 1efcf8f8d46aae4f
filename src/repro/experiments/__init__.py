"""One module per experiment (a figure or table of the book). Each defines `PROFILES` (smoke | cpu | gpu: sizes
only — the same code runs all three) and `run(profile, seed, out) -> dict`; `repro run NAME --profile P` writes
its result files under results/NAME/PROFILE/ with provenance (`repro.experiments.results`)."""

from __future__ import annotations

import importlib

EXPERIMENTS = {
    "clip_small": "the default small CLIP trained on the corpus: zero-shot on every suite, retrieval, temperature",
}


def get(name: str):
    """The experiment module `name`."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; known: {', '.join(EXPERIMENTS)}")
    return importlib.import_module(f"{__name__}.{name}")
