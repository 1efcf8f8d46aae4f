"""Effective robustness of the `robustness` experiment's models with the trend's uncertainty, and tidy tables of it
(Radford et al., 2021, §3.3, Figures 13–14; Taori et al., 2020; Fang et al., 2022).

Effective robustness is a model's accuracy under a shift minus the logit-linear trend of supervised models at the
model's in-distribution accuracy; `robustness_metrics` adds the trend's 95% prediction interval
(`repro.evaluate.robustness.trend_band`), so a point can be read as above the trend *beyond* its uncertainty, and
the ratio held-out / in-distribution accuracy (an absolute drop near the floor means little). `summarize` recomputes
all of it from the accuracies stored in result records — old records (without the narrow CLIP or icon sets) too —
and `verdicts_inputs` gives the per-seed numbers the claims rest on: the effective robustness of the *diverse* CLIP
(the headline, trained on the whole corpus) and of the *narrow* CLIP (the same recipe trained on exactly the
supervised models' pictures and their captions — Fang et al.'s ablation), and their paired difference.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from ..evaluate.robustness import effective_robustness, relative_robustness_gap_reduction, trend_band

__all__ = ["HELD_OUT_MEAN", "ICON_MEAN", "compared_models", "head_effect", "icon_precondition", "record_metrics",
           "robustness_metrics", "summarize", "verdicts_inputs"]

#: The held-out-style average's key (paper Figure 13 left averages each model over its 7 shifted datasets).
HELD_OUT_MEAN = "held-out styles (mean)"
#: The held-out icon sets' average (unweighted over the sets, like HELD_OUT_MEAN over the styles).
ICON_MEAN = "held-out icon sets (mean)"
#: The trend's prediction interval.
LEVEL = 0.95
#: Below these the icon-set shift is reported with its size but its verdict is "untestable here".
MIN_ICON_PICTURES = 300
MIN_ICON_CLASSES = 15
#: The models compared with the trend, in display order: zero-shot CLIP trained on the whole corpus (diverse), the
#: same recipe trained on the supervised models' pictures (narrow), the logistic head on the diverse CLIP's
#: features (Figure 14), then each supervised model's final snapshot.
CLIP_MODELS = ("zero_shot", "narrow_zero_shot", "lr_head")

_COLUMNS = ["seed", "model", "shift", "in_distribution", "held_out", "effective_robustness", "er_low", "er_high",
            "ratio", "predicted"]


def robustness_metrics(trend: list[dict[str, float]], models: dict[str, dict[str, float]], in_split: str,
                       shifted: Sequence[str], held_out: Sequence[str], icon_sets: Sequence[str] = (),
                       level: float = LEVEL) -> dict:
    """Effective robustness (Taori et al., 2020; paper §3.3) of each of `models` ({name: {split: accuracy}})
    against the logit-linear trend of the supervised points `trend` ([{split: accuracy}]) per shifted split, for the
    mean accuracy over the held-out styles (`HELD_OUT_MEAN`, the trend fitted to the points' means), per held-out
    icon set and for their mean (`ICON_MEAN`). Per model and target: accuracies, the trend's prediction with its
    `level` prediction interval (`predicted_low`, `predicted_high`), effective robustness with the interval it
    implies (`er_low` = shifted − predicted_high, `er_high` = shifted − predicted_low), `ratio` = shifted /
    in-distribution, and the share of the trend's gap closed (`relative_robustness_gap_reduction`)."""

    def column(points: list[dict[str, float]], split: str) -> np.ndarray:
        if split == HELD_OUT_MEAN:
            return np.array([np.mean([p[s] for s in held_out]) for p in points])
        if split == ICON_MEAN:
            return np.array([np.mean([p[s] for s in icon_sets]) for p in points])
        return np.array([p[split] for p in points])

    targets = ([*shifted] + ([HELD_OUT_MEAN] if held_out else []) + [*icon_sets]
               + ([ICON_MEAN] if icon_sets else []))
    out: dict = {"trend": {}, "models": {name: {} for name in models}}
    names = list(models)
    points = [models[n] for n in names]
    x = column(points, in_split)
    for split in targets:
        y = column(points, split)
        fit = effective_robustness(x, y, column(trend, in_split), column(trend, split))
        band = trend_band(column(trend, in_split), column(trend, split), x, level)
        out["trend"][split] = {"slope": fit["slope"], "intercept": fit["intercept"], "n_ref": fit["n_ref"],
                               "residual_sd": band["residual_sd"], "dof": band["dof"], "level": level}
        gap = relative_robustness_gap_reduction(x, y, fit["predicted"])
        for i, name in enumerate(names):
            out["models"][name][split] = {
                "in_distribution": float(x[i]), "shifted": float(y[i]), "predicted": float(fit["predicted"][i]),
                "predicted_low": float(band["low"][i]), "predicted_high": float(band["high"][i]),
                "effective_robustness": float(fit["effective_robustness"][i]),
                "er_low": float(y[i] - band["high"][i]), "er_high": float(y[i] - band["low"][i]),
                "ratio": float(y[i] / x[i]) if x[i] > 0 else math.nan,
                "gap_reduction": float(gap["reduction"][i]),
            }
    return out


def _icon_sets(metrics: dict) -> list[str]:
    return [s for s, info in (metrics["task"].get("icon_sets") or {}).items() if info.get("n", 0) > 0]


def compared_models(metrics: dict) -> dict[str, dict[str, float]]:
    """{model: {split: accuracy}} of a record's metrics: diverse and narrow zero-shot CLIP, the logistic head and
    each supervised model's final snapshot (the narrow CLIP only where the record has it)."""
    models = {"zero_shot": {s: r["top1"] for s, r in metrics["zero_shot"].items()}}
    if "narrow_clip" in metrics:
        models["narrow_zero_shot"] = {s: r["top1"] for s, r in metrics["narrow_clip"]["zero_shot"].items()}
    models["lr_head"] = dict(metrics["lr_head"]["accuracy"])
    models |= {name: dict(m["final"]) for name, m in metrics["supervised"].items()}
    return models


def record_metrics(record: dict, level: float = LEVEL) -> dict:
    """`robustness_metrics` recomputed from the accuracies a result record stores (its supervised snapshots are the
    trend) — the same numbers `robustness.run` stores, and bands for records written before they were stored."""
    m = record["metrics"]
    task = m["task"]
    in_split = task["in_distribution"]
    trend = [snap["accuracy"] for model in m["supervised"].values() for snap in model["snapshots"]]
    shifted = [s for s in task["splits"] if s != in_split]
    return robustness_metrics(trend, compared_models(m), in_split, shifted, task["held_out"], _icon_sets(m), level)


def summarize(records: Iterable[dict], level: float = LEVEL) -> pd.DataFrame:
    """One row per seed, model and shift (every shifted split, `HELD_OUT_MEAN`, each icon set, `ICON_MEAN`):
    in-distribution and held-out accuracy, effective robustness with its interval from the trend's `level` band
    (`er_low`, `er_high`), the ratio held-out / in-distribution and the trend's prediction; fractions, not percent."""
    rows = []
    for record in records:
        for model, by_shift in record_metrics(record, level)["models"].items():
            for shift, v in by_shift.items():
                rows.append({"seed": record["seed"], "model": model, "shift": shift,
                             "in_distribution": v["in_distribution"], "held_out": v["shifted"],
                             "effective_robustness": v["effective_robustness"], "er_low": v["er_low"],
                             "er_high": v["er_high"], "ratio": v["ratio"], "predicted": v["predicted"]})
    return pd.DataFrame(rows, columns=_COLUMNS)


def icon_precondition(metrics: dict) -> tuple[bool, str]:
    """Whether the held-out icon sets pose the task on enough pictures and classes to be tested (at least
    `MIN_ICON_PICTURES` pictures and `MIN_ICON_CLASSES` classes over the sets), and the reason when not."""
    sets = _icon_sets(metrics)
    if not sets:
        return False, "not in these results"
    info = metrics["task"].get("icon_relabel") or {}
    n = sum(metrics["task"]["icon_sets"][s]["n"] for s in sets)
    k = int(info.get("n_classes", 0))
    if n < MIN_ICON_PICTURES or k < MIN_ICON_CLASSES:
        return False, (f"untestable here: too few pictures ({n} pictures of {k} classes; needs ≥ "
                       f"{MIN_ICON_PICTURES} and ≥ {MIN_ICON_CLASSES})")
    return True, ""


def verdicts_inputs(records: Iterable[dict], level: float = LEVEL) -> pd.DataFrame:
    """Per seed and averaged shift (`HELD_OUT_MEAN`, `ICON_MEAN`): effective robustness of the diverse CLIP
    (`diverse`, zero-shot, trained on the whole corpus) and of the narrow CLIP (`narrow`, Fang et al.'s ablation:
    the same recipe on the supervised models' pictures), their paired difference (`difference` = diverse − narrow),
    each one's interval from the trend's band and whether it lies above the band (`*_above`: er_low > 0), the
    shift's size (`n_pictures`, `n_classes`) and whether it can be tested (`testable`, `reason`). NaN where a
    record lacks the model or the shift."""
    records = list(records)
    table = summarize(records, level)
    rows = []
    for record in records:
        m = record["metrics"]
        ours = table[table["seed"] == record["seed"]]
        for shift in (HELD_OUT_MEAN, ICON_MEAN):
            if shift == HELD_OUT_MEAN:
                n = sum(m["task"]["splits"][s]["n"] for s in m["task"]["held_out"])
                k = m["task"]["n_classes"]
                ok, reason = (True, "") if m["task"]["held_out"] else (False, "not in these results")
            else:
                sets = _icon_sets(m)
                n = sum(m["task"]["icon_sets"][s]["n"] for s in sets)
                k = int((m["task"].get("icon_relabel") or {}).get("n_classes", 0))
                ok, reason = icon_precondition(m)
            row = {"seed": record["seed"], "shift": shift, "n_pictures": n, "n_classes": k, "testable": ok,
                   "reason": reason}
            for label, model in (("diverse", "zero_shot"), ("narrow", "narrow_zero_shot")):
                hit = ours[(ours["model"] == model) & (ours["shift"] == shift)]
                er, lo, hi = ((float(hit.iloc[0][c]) for c in ("effective_robustness", "er_low", "er_high"))
                              if len(hit) else (math.nan,) * 3)
                row |= {label: er, f"{label}_low": lo, f"{label}_high": hi,
                        f"{label}_above": bool(lo > 0) if math.isfinite(lo) else False}
            row["difference"] = row["diverse"] - row["narrow"]
            rows.append(row)
    return pd.DataFrame(rows)


def head_effect(records: Iterable[dict], level: float = LEVEL) -> pd.DataFrame:
    """Figure 14 per seed: what fitting a logistic head on the diverse CLIP's features of the labelled training
    pictures changes against zero-shot — in-distribution accuracy (`d_in_distribution`) and, per averaged shift,
    effective robustness (`d_effective_robustness`, head − zero-shot; the paper: + accuracy, − robustness)."""
    table = summarize(records, level)
    rows = []
    for (seed, shift), part in table.groupby(["seed", "shift"], sort=False):
        if shift not in (HELD_OUT_MEAN, ICON_MEAN):
            continue
        by = part.set_index("model")
        if not {"zero_shot", "lr_head"} <= set(by.index):
            continue
        rows.append({"seed": seed, "shift": shift,
                     "zero_shot_in": by.at["zero_shot", "in_distribution"],
                     "lr_head_in": by.at["lr_head", "in_distribution"],
                     "d_in_distribution": by.at["lr_head", "in_distribution"] - by.at["zero_shot", "in_distribution"],
                     "zero_shot_er": by.at["zero_shot", "effective_robustness"],
                     "lr_head_er": by.at["lr_head", "effective_robustness"],
                     "d_effective_robustness": by.at["lr_head", "effective_robustness"]
                     - by.at["zero_shot", "effective_robustness"]})
    return pd.DataFrame(rows)
