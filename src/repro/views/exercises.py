"""Figures and tables of the exercises, which run the shipped model (`repro.load("clip-small")`) on the evaluation
sample that ships beside it (`repro.data.sample`): what the model predicts for a few pictures, what it retrieves for
a few queries, and its accuracy on the sample now against what the shipped file records."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ..stats import interval_text, wilson


def predictions_figure(images: np.ndarray, names: Sequence[str], probs, classes: Sequence[str],
                       shown: Sequence[int]):
    """The pictures `shown`, each titled with its most probable class in `classes` and that probability (`probs`:
    [pictures, classes], an array or tensor), with the picture's own name below it."""
    import matplotlib.pyplot as plt

    probs = np.asarray(probs.detach() if hasattr(probs, "detach") else probs, dtype=float)
    fig, axes = plt.subplots(1, len(shown), figsize=(2 * len(shown), 2.6), squeeze=False)
    for ax, i in zip(axes[0], shown, strict=True):
        ax.imshow(images[i], interpolation="nearest")
        ax.set_title(f"{classes[int(probs[i].argmax())]}\n{probs[i].max():.0%}", fontsize=10)
        ax.set_xlabel(str(names[i])[:18], fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("zero-shot prediction (title) and the picture's own name (below)", fontsize=11)
    fig.tight_layout()
    return fig


def search_figure(images: np.ndarray, queries: Sequence[str], hits: Sequence[Sequence[tuple[int, float]]]):
    """For each query (a row), its top images (`hits`: (index, cosine similarity) pairs, best first)."""
    import matplotlib.pyplot as plt

    k = max((len(h) for h in hits), default=1)
    fig, axes = plt.subplots(len(queries), k, figsize=(2 * k, 2.3 * len(queries)), squeeze=False)
    for row, (query, found) in enumerate(zip(queries, hits, strict=True)):
        for col in range(k):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            if col < len(found):
                index, score = found[col]
                ax.imshow(images[index], interpolation="nearest")
                ax.set_title(f"{score:.2f}", fontsize=9)
        axes[row, 0].set_ylabel(query, fontsize=10)
    fig.suptitle(f"top-{k} images per query (cosine similarity above each)", fontsize=11)
    fig.tight_layout()
    return fig


def check_table(measured: Mapping[str, Mapping], recorded: Mapping) -> pd.DataFrame:
    """Per suite of the sample (`repro.evaluate.runner.sample_accuracies`): images; correct answers as the shipped
    file records them (`recorded`: the card's "sample" entry) before its weights were rounded to float16 and as
    shipped; as measured now, with top-1 and its 95% Wilson interval over the images (inside 0–100%); and whether
    the shipped and the measured counts agree."""
    shipped, fp32 = recorded.get("accuracies", {}), recorded.get("fp32_accuracies", {})
    rows = []
    for name, r in measured.items():
        low, high = wilson(r["correct"], r["n"])
        then = shipped.get(name, {}).get("correct")
        rows.append({"suite": name, "images": r["n"], "recorded, float32": fp32.get(name, {}).get("correct"),
                     "recorded, as shipped": then, "measured now": r["correct"],
                     "top-1 now (%)": interval_text({"mean": r["top1"], "low": low, "high": high}),
                     "same": "yes" if then == r["correct"] else "no"})
    return pd.DataFrame(rows)
