"""The claims table and the one-page summary figure of the introduction, over `repro.claims.collect()`: each claim's
effect with its 95% interval, coloured by its verdict, beside the paper's effect where it is in our units."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from ..claim import Claim
from ..stats import KINDS


def table(claims: Sequence[Claim]) -> pd.DataFrame:
    """The claims table: claim, the paper's finding, our test, our effect, the smallest detectable effect, verdict."""
    def detectable(c: Claim) -> str:
        return "—" if not math.isfinite(c.mde) else f"{c.mde * c.scale:.2g} {c.unit}".strip()

    return pd.DataFrame([{"claim (paper section)": c.claim, "paper": c.paper,
                          "test here": c.test + (f" ([chapter]({c.chapter}))" if c.chapter else ""), "ours": c.ours,
                          "smallest detectable": detectable(c), "verdict": c.verdict.text} for c in claims])


def figure(claims: Sequence[Claim]):
    """One row per claim with a measured effect: ours as a dot with its 95% interval (colour: the verdict), the
    paper's effect where it is in our units (black diamond) and the no-effect line; each row on its own scale."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    claims = [c for c in claims if math.isfinite(c.effect.get("mean", math.nan))]
    palette = dict(zip(KINDS, sns.color_palette("colorblind", len(KINDS)), strict=True))
    height = 0.55 * len(claims) + 0.9
    fig, axes = plt.subplots(len(claims), 1, figsize=(7.5, height), squeeze=False)
    for ax, c in zip(axes[:, 0], claims, strict=True):
        s = c.scale
        mean, low, high = (c.effect.get(k, math.nan) * s for k in ("mean", "low", "high"))
        colour = palette.get(c.verdict.kind, "grey")
        xs = [mean]
        if math.isfinite(low) and math.isfinite(high):
            ax.plot([low, high], [0, 0], color=colour, lw=3, solid_capstyle="butt")
            xs += [low, high]
        ax.plot([mean], [0], "o", color=colour, ms=7)
        if c.paper_effect is not None:
            ax.plot([c.paper_effect * s], [0], "D", color="black", ms=6)
            xs.append(c.paper_effect * s)
        if c.unit == "shots":
            ax.set_xscale("log", base=2)
        elif c.unit != "logit scale":
            ax.axvline(0, color="0.6", lw=0.8, ls="--")
            xs.append(0.0)
        ax.set_xlim(*_padded(xs, log=c.unit == "shots"))
        ax.set_yticks([])
        ax.set_ylabel(c.label, rotation=0, ha="right", va="center", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        ax.text(1.01, 0.5, c.unit, transform=ax.transAxes, fontsize=7, va="center")
        sns.despine(ax=ax, left=True)
    handles = [plt.Line2D([], [], color=palette[k], marker="o", lw=3, label=k) for k in KINDS]
    handles.append(plt.Line2D([], [], color="black", marker="D", lw=0, label="the paper"))
    fig.legend(handles=handles, loc="upper center", ncol=3, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.55 / height))
    return fig


def _padded(xs: Sequence[float], log: bool = False, pad: float = 0.08) -> tuple[float, float]:
    xs = [x for x in xs if math.isfinite(x) and (x > 0 or not log)]
    lo, hi = (math.log2(min(xs)), math.log2(max(xs))) if log else (min(xs), max(xs))
    span = (hi - lo) or max(abs(hi), 1.0)
    lo, hi = lo - pad * span, hi + pad * span
    return (2 ** lo, 2 ** hi) if log else (lo, hi)
