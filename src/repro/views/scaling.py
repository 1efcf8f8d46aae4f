"""Tables and figures of the compute chapter (paper §3.1, Figure 9), from one `scaling` result record (one seed's
study: every profile runs one; `repro.experiments.scaling`): the study's models, the log-log fits of zero-shot error
against counted training FLOPs, the comparison of the two families at equal compute, compute spent on images
instead of parameters, extrapolations to target accuracies, and the choice of the headline model. The headline
runs enter as `scaling.headline_points(clip_small_records, record)`; the verdicts on Figure 9 itself are
`repro.claims.compute_scaling`."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..experiments import clip_small
from ..experiments import scaling as experiment
from ..stats import interval_text

COLOURS = {"ViT": "tab:blue", "ResNet": "tab:orange"}
#: Accuracies the book would like its headline to reach, per suite (for `extrapolation_table`).
TARGETS = {"emoji-concept/named": 0.40, "emoji-category/val": 0.70}


def ladder(record: dict) -> pd.DataFrame:
    """The study's points (`experiment.points_table`) of the two ladders only — every model trained on the same
    images — without the length arm."""
    points = experiment.points_table(record)
    return points[points["arm"] == "size"].reset_index(drop=True)


def _slope_text(slope: float, half: float) -> str:
    return interval_text({"mean": slope, "low": slope - half, "high": slope + half}, scale=1.0, digits=3,
                         signed=True)


def _trend(fit: Mapping) -> str:
    """"falls" / "rises" when the slope's 95% interval excludes 0 on that side, else "shows no trend"."""
    if fit["slope"] + fit["slope_ci95"] < 0:
        return "falls"
    return "rises" if fit["slope"] - fit["slope_ci95"] > 0 else "shows no trend"


def facts(record: dict, headline: pd.DataFrame | None = None, budget_s: float = clip_small.BUDGET_S) -> dict:
    """What the chapter's summary says: the number of models, their families and parameter range, the images each
    saw, the span of their training FLOPs, the chosen headline size, and the headline runs' images seen (0 without
    headline runs)."""
    points = ladder(record)
    train = record["config"]["train"]
    return {"models": len(points), "families": list(dict.fromkeys(points["family"])),
            "params_min": float(points["params"].min()), "params_max": float(points["params"].max()),
            "images": train["steps"] * train["batch_size"],
            "span": float(points["train_flops"].max() / points["train_flops"].min()),
            "chosen": experiment.choose_headline(points, budget_s)["size"],
            "headline_images": int(headline["images_seen"].iloc[0]) if headline is not None and len(headline) else 0}


def models_table(record: dict) -> pd.DataFrame:
    """The study's models: family, size, parameters (M), counted training FLOPs, training throughput, precision."""
    points = ladder(record)
    return pd.DataFrame({"family": points["family"], "size": points["size"],
                         "parameters (M)": (points["params"] / 1e6).round(2),
                         "training FLOPs (counted)": points["train_flops"].map(lambda f: f"{f:.2e}"),
                         "images / s": points["img_s"].round(0).astype(int), "precision": points["precision"]})


def fits_table(record: dict) -> pd.DataFrame:
    """One log-log fit of mean test error against training FLOPs per family (and over both): points, the slope with
    its 95% interval, R², the compute span fitted and whether error falls, rises or shows no trend."""
    fits = experiment.fits_table(ladder(record))
    if fits.empty:
        return pd.DataFrame(columns=["family", "points", "slope of log error [95% interval]", "R²",
                                     "compute span (×)", "error with compute"])
    return pd.DataFrame({"family": fits["family"], "points": fits["points"],
                         "slope of log error [95% interval]": [_slope_text(s, h) for s, h in
                                                               zip(fits["slope"], fits["slope_ci95"], strict=True)],
                         "R²": fits["r2"].round(2), "compute span (×)": fits["span"].round(0).astype(int),
                         "error with compute": [_trend(f) for f in fits["fit"]]})


def family_gap(record: dict) -> dict | None:
    """ResNet against ViT at equal compute (`experiment.family_gap`: the ratio of the two fitted lines' error at the
    middle of the range both cover, with its 95% interval), plus `verdict`: whether the ResNet's error is lower,
    higher or not distinguishable. None where either family has fewer than 3 points."""
    gap = experiment.family_gap(ladder(record))
    if gap is None:
        return None
    verdict = ("lower than the ViT's" if gap["ratio_hi"] < 1 else "higher than the ViT's" if gap["ratio_lo"] > 1
               else "not distinguishable from the ViT's at this precision")
    return gap | {"verdict": verdict}


def _band(ax, fit: Mapping, lo: float, hi: float, colour: str) -> None:
    grid = np.logspace(np.log10(lo), np.log10(hi), 50)
    line, half = experiment.predict(fit, grid)
    ax.plot(grid, line, color=colour, lw=1)
    ax.fill_between(grid, line / 10**half, line * 10**half, color=colour, alpha=0.15)


def error_figure(record: dict, headline: pd.DataFrame | None = None, budget_s: float = clip_small.BUDGET_S):
    """Figure 9 in miniature: mean zero-shot test error against counted training FLOPs (log-log, each family's fit
    with its 95% band) beside the validation accuracy that chooses the headline; the headline runs as stars."""
    import matplotlib.pyplot as plt

    points = ladder(record)
    fits = experiment.fits_table(points).set_index("family")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for family, group in points.groupby("family", sort=False):
        for ax, column in zip(axes, ("test_error", "validation"), strict=True):
            ax.plot(group["train_flops"], group[column], "o", color=COLOURS.get(family), label=family)
        if family in fits.index:
            _band(axes[0], fits.loc[family, "fit"], group["train_flops"].min(), group["train_flops"].max(),
                  COLOURS.get(family, "grey"))
    if headline is not None and len(headline):
        chosen = experiment.choose_headline(points, budget_s)["size"]
        label = f"headline ({chosen}, {headline['images_seen'].iloc[0]:,} images)"
        for ax, column in zip(axes, ("test_error", "validation"), strict=True):
            ax.plot(headline["train_flops"], headline[column], "*", ms=12, color="tab:red", label=label)
    axes[0].set(xscale="log", yscale="log", xlabel="training FLOPs (counted)",
                ylabel="mean zero-shot error (test suites)", title="Error against compute (log-log), 95% bands")
    axes[1].set(xscale="log", xlabel="training FLOPs (counted)", ylabel="mean top-1 (validation suites)",
                title="Validation accuracy (chooses the headline)")
    for ax in axes:
        ax.legend(fontsize=9)
    fig.tight_layout()
    return fig


def headline_gain(record: dict, headline: pd.DataFrame, budget_s: float = clip_small.BUDGET_S) -> dict | None:
    """The headline size's study point against its headline runs (the same model on more images): images seen
    (× the study's), mean test error and validation accuracy before and after. None without headline runs."""
    if headline is None or not len(headline):
        return None
    points = ladder(record)
    chosen = experiment.choose_headline(points, budget_s)
    same = points[points["size"] == chosen["size"]].iloc[0]
    return {"size": chosen["size"], "runs": len(headline),
            "times": float(headline["images_seen"].iloc[0] / same["images_seen"]),
            "error_before": float(same["test_error"]), "error_after": float(headline["test_error"].mean()),
            "validation_before": float(same["validation"]), "validation_after": float(headline["validation"].mean())}


def length_series(record: dict, headline: pd.DataFrame | None = None,
                  budget_s: float = clip_small.BUDGET_S) -> pd.DataFrame:
    """The headline's size trained for different numbers of images: its ladder point, the length arm and the
    headline runs (`experiment.length_series`), sorted by training FLOPs."""
    points = experiment.points_table(record)
    return experiment.length_series(points, experiment.choose_headline(points, budget_s)["size"], headline)


def length_fit(record: dict, headline: pd.DataFrame | None = None, budget_s: float = clip_small.BUDGET_S,
               column: str = "test_error") -> dict | None:
    """The log-log fit of `column` along the number of images (`length_series`) with its `trend` ("falls", "rises"
    or "shows no trend"), the images range, and the headline family's ladder slope to compare; None when there are
    fewer than 3 runs or one source only."""
    series = length_series(record, headline, budget_s)
    if len(series) < 3 or series["source"].nunique() < 2 or column not in series:
        return None
    fit = experiment.fit_log_linear(series["train_flops"], series[column])
    chosen = experiment.choose_headline(experiment.points_table(record), budget_s)
    ladders = experiment.fits_table(ladder(record), column).set_index("family")
    family = ladders.loc[chosen["family"]] if chosen["family"] in ladders.index else None
    return fit | {"trend": _trend(fit), "size": chosen["size"], "family": chosen["family"],
                  "slope_text": _slope_text(fit["slope"], fit["slope_ci95"]),
                  "images_min": int(series["images_seen"].min()), "images_max": int(series["images_seen"].max()),
                  "ladder_slope_text": None if family is None else _slope_text(family["slope"], family["slope_ci95"])}


def length_figure(record: dict, headline: pd.DataFrame | None = None, budget_s: float = clip_small.BUDGET_S):
    """The headline's size on more images: each run's mean test error against its training FLOPs (study point,
    length arm, headline runs) with the log-log fit and its 95% band. None when `length_fit` is."""
    import matplotlib.pyplot as plt

    fit = length_fit(record, headline, budget_s)
    if fit is None:
        return None
    series = length_series(record, headline, budget_s)
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for source, marker in (("study", "o"), ("length arm", "s"), ("headline", "*")):
        part = series[series["source"] == source]
        ax.plot(part["train_flops"], part["test_error"], marker, ms=10 if marker == "*" else 7, label=source)
    _band(ax, fit, series["train_flops"].min(), series["train_flops"].max(), "black")
    ax.set(xscale="log", yscale="log", xlabel="training FLOPs (counted)", ylabel="mean zero-shot error (test suites)",
           title=f"{fit['size']} trained on more images")
    ax.legend()
    fig.tight_layout()
    return fig


def extrapolation_table(record: dict, headline: pd.DataFrame | None = None, budget_s: float = clip_small.BUDGET_S,
                        targets: Mapping[str, float] = TARGETS) -> pd.DataFrame:
    """Per target suite (those the study evaluated) and series (each family's ladder; the headline's size on more
    images): the slope of log error, the best top-1 reached and the training FLOPs at which the series' log-log
    line reaches the target — only where the line falls (its interval excludes 0)."""
    points = ladder(record)
    series = length_series(record, headline, budget_s)
    rows = []
    for suite, target in targets.items():
        if suite not in points:
            continue
        per_suite = points.assign(error=1 - points[suite])
        lines = [(family, f["fit"], f["flops_max"], points.loc[points["family"] == family, suite].max())
                 for family, f in experiment.fits_table(per_suite, "error").set_index("family").iterrows()
                 if family != "both"]
        if suite in series and len(series) >= 3 and series["source"].nunique() > 1:
            fit = experiment.fit_log_linear(series["train_flops"], 1 - series[suite])
            lines.append((f"{series['size'].iloc[0]}, more images", fit, series["train_flops"].max(),
                          series[suite].max()))
        for name, fit, flops_max, best in lines:
            need = experiment.compute_for(fit, 1 - target) if _trend(fit) == "falls" else None
            rows.append({"suite": suite, "target top-1 (%)": round(100 * target), "series": name,
                         "slope [95% interval]": _slope_text(fit["slope"], fit["slope_ci95"]),
                         "best reached (%)": round(100 * best, 1),
                         "FLOPs the line needs": f"{need:.1e}" if need else "no falling line to extrapolate",
                         "× the largest point": f"{need / flops_max:.1e}" if need else "—"})
    return pd.DataFrame(rows, columns=["suite", "target top-1 (%)", "series", "slope [95% interval]",
                                       "best reached (%)", "FLOPs the line needs", "× the largest point"])


def choice_table(record: dict, budget_s: float = clip_small.BUDGET_S) -> pd.DataFrame:
    """Every model of the ladders with what chooses the headline: parameters, study training time, validation
    top-1 (%), final logit scale, and whether it is eligible (trainable `HEADLINE_MIN_PASSES` times over within
    `budget_s`, and small enough to ship)."""
    points = ladder(record)
    eligible = ((points["train_wall_time_s"] * experiment.HEADLINE_MIN_PASSES <= budget_s)
                & (points["params"] <= experiment.SHIP_MAX_PARAMS))
    return pd.DataFrame({"family": points["family"], "size": points["size"],
                         "parameters (M)": (points["params"] / 1e6).round(2),
                         "study training (s)": points["train_wall_time_s"].round(0).astype(int),
                         "validation top-1 (%)": (100 * points["validation"]).round(1),
                         "final logit scale": points["final_logit_scale"].astype(float).round(1),
                         "eligible": eligible.map({True: "yes", False: "no"})})
