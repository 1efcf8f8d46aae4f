"""One module per experiment (a figure or table of the book). Each defines `PROFILES` (smoke | cpu | gpu: sizes
only — the same code runs all three) and `run(profile, seed, out) -> dict`; `repro run NAME --profile P` writes
its result files under results/NAME/PROFILE/ with provenance (`repro.experiments.results`)."""

from __future__ import annotations

import importlib

EXPERIMENTS = {
    "clip_small": "the default small CLIP trained on the corpus: zero-shot on every suite, retrieval, temperature",
    "prompts": "zero-shot with the class name, one template, the ensemble, and templates chosen on validation (Fig. 4)",
    "longtext": "text longer than the context: truncation vs chunk-and-average vs sliding windows in retrieval (§2.4)",
    "fewshot": "zero-shot vs a full linear probe and k-shot probes on the same features (paper Figures 5–7)",
    "limitations": "where zero-shot is weak (§6): real photos vs raw-pixel logistic regression and a CLIP probe",
    "search": "retrieval and semantic search: top images for text queries and top captions for images (§3.1)",
    "objectives": "zero-shot accuracy vs images seen for four training objectives, same image encoder (Figure 2)",
    "temperature": "temperature fixed at five values vs learnable (clamped, unclamped): accuracy, stability",
    "robustness": "supervised ResNets vs diverse and narrow CLIP, held-out styles and icon sets (Figs 13–14)",
    "scaling": "zero-shot error vs counted training FLOPs for five ViTs and five modified ResNets (Figure 9)",
    "adaptation": "adapting CLIP: zero-shot, probe, CoOp, CLIP-Adapter (1–16 shots), LoRA, fine-tuning; robustness",
}


def get(name: str):
    """The experiment module `name`."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; known: {', '.join(EXPERIMENTS)}")
    return importlib.import_module(f"{__name__}.{name}")
