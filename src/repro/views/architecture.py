"""Tables and figures of the architecture chapter (paper §2.4): the state dict of a preset, and the parameter counts
of every preset (`repro.models.PRESETS`) beside the rounded sizes the paper and OpenAI's model card publish. Models
are built on PyTorch's `meta` device: shapes only, no memory."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from ..models import CLIP, PRESETS, CLIPConfig, parameter_counts

#: Rounded sizes published for these models (millions: image encoder, text encoder); the others have none.
PAPER_SIZES = {"ViT-B/32": (86, 63), "ViT-B/16": (86, 63), "ViT-L/14": (304, 123)}


def state_dict_table(config: CLIPConfig, head: int = 6, tail: int = 8) -> pd.DataFrame:
    """The first `head` and last `tail` entries of the state dict of a CLIP of `config`: key and shape."""
    import torch

    with torch.device("meta"):
        state = CLIP(config).state_dict()
    rows = [(k, tuple(v.shape)) for k, v in state.items()]
    shown = rows if len(rows) <= head + tail else rows[:head] + [("…", "…")] + rows[-tail:]
    return pd.DataFrame(shown, columns=["key", "shape"])


def sizes_table(presets: Mapping[str, CLIPConfig] = PRESETS, paper: Mapping = PAPER_SIZES) -> pd.DataFrame:
    """One row per preset: image size, image- and text-encoder parameters (millions; the image encoder is
    everything under `visual`, projection included; the text encoder the rest but the temperature) beside the
    published figures ("—" where none is given), embedding width, context length and vocabulary."""
    rows = []
    for name, config in presets.items():
        counts = parameter_counts(config)
        paper_image, paper_text = paper.get(name, ("—", "—"))
        rows.append({"model": name, "image px": config.image_resolution,
                     "image encoder (M)": round(counts["image"] / 1e6, 2), "paper image (M)": paper_image,
                     "text encoder (M)": round(counts["text"] / 1e6, 2), "paper text (M)": paper_text,
                     "embed dim": config.embed_dim, "context": config.context_length, "vocabulary": config.vocab_size})
    return pd.DataFrame(rows)


def sizes_figure(sizes: pd.DataFrame):
    """Image- and text-encoder parameters of each preset (`sizes_table`), stacked, on a log scale."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    sizes.set_index("model")[["image encoder (M)", "text encoder (M)"]].plot.barh(ax=ax, stacked=True,
                                                                                 color=["#4c72b0", "#dd8452"])
    ax.set_xscale("log")
    ax.set_xlabel("parameters (millions, log scale)")
    ax.set_ylabel("")
    ax.invert_yaxis()
    fig.tight_layout()
    return fig
