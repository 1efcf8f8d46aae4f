"""repro.views.architecture: the preset sizes and state-dict tables of the architecture chapter."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from repro.models import PRESETS, parameter_counts
from repro.views import architecture as view


def test_sizes_table_counts_every_preset() -> None:
    sizes = view.sizes_table().set_index("model")
    assert list(sizes.index) == list(PRESETS)
    counts = parameter_counts(PRESETS["ViT-B/16"])
    assert sizes.loc["ViT-B/16", "image encoder (M)"] == round(counts["image"] / 1e6, 2)
    assert sizes.loc["ViT-B/16", "text encoder (M)"] == round(counts["text"] / 1e6, 2)
    assert sizes.loc["ViT-B/32", "image encoder (M)"] > 87 > sizes.loc["ViT-B/16", "image encoder (M)"]
    assert sizes.loc["ViT-B/32", "paper image (M)"] == 86 and sizes.loc["RN50", "paper image (M)"] == "—"
    assert sizes.loc["ViT-XS/8@32px", "context"] == PRESETS["ViT-XS/8@32px"].context_length


def test_state_dict_table_shows_openai_names() -> None:
    table = view.state_dict_table(PRESETS["ViT-B/32"], head=3, tail=2)
    assert len(table) == 6 and table["key"][3] == "…"
    assert table["key"][0] == "positional_embedding" and table["shape"][0] == (77, 512)
    assert table["key"].iloc[-1] == "visual.ln_post.bias"


def test_sizes_figure_is_on_a_log_scale() -> None:
    import matplotlib.pyplot as plt

    fig = view.sizes_figure(view.sizes_table())
    assert fig.axes[0].get_xscale() == "log" and len(fig.axes[0].get_yticklabels()) == len(PRESETS)
    plt.close(fig)
