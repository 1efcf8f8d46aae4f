"""Robustness to distribution shift (Radford et al., 2021, §3.3; Taori et al., 2020): *effective robustness* is
the accuracy a model gains under a shift beyond what the trend of reference (supervised) models predicts from its
in-distribution accuracy. The trend is a straight line fitted to logit-transformed accuracies, the scaling of the
axes of the paper's Figures 13–14 and of Taori et al. All accuracies here are fractions in [0, 1]."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["effective_robustness", "logit", "relative_robustness_gap_reduction", "sigmoid", "trend_band"]

#: Accuracies are clipped to [EPS, 1 - EPS] before the logit, so 0 % and 100 % stay finite.
EPS = 1e-3

ArrayLike = float | Sequence[float] | np.ndarray


def _accuracies(values: ArrayLike, name: str) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64)
    if a.size and (np.isnan(a).any() or a.min() < 0 or a.max() > 1):
        raise ValueError(
            f"{name} must hold accuracies as fractions in [0, 1] (divide percentages by 100), got {a.tolist()}"
        )
    return a


def logit(p: ArrayLike, eps: float = EPS) -> np.ndarray:
    """log(p / (1 - p)) of accuracies clipped to [eps, 1 - eps]."""
    p = np.clip(np.asarray(p, dtype=np.float64), eps, 1 - eps)
    return np.log(p) - np.log1p(-p)


def sigmoid(z: ArrayLike) -> np.ndarray:
    """The inverse of `logit`."""
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))


def effective_robustness(
    in_dist: ArrayLike, shifted: ArrayLike, ref_in: ArrayLike, ref_shifted: ArrayLike, eps: float = EPS
) -> dict:
    """Effective robustness of models with accuracies `in_dist` (in distribution) and `shifted` (under the shift)
    relative to reference models' (`ref_in`, `ref_shifted`) (Taori et al., 2020; paper §3.3, Figure 13).

    Fits logit(ref_shifted) ≈ slope · logit(ref_in) + intercept by least squares (accuracies of 0 or 1 are
    clipped to [eps, 1 - eps] first), predicts each model's shifted accuracy from its in-distribution accuracy,
    `predicted = sigmoid(slope · logit(in_dist) + intercept)`, and returns `predicted`, `effective_robustness`
    = shifted − predicted (fractions: ×100 for accuracy points; > 0 means more robust than the trend), their
    mean `mean_effective_robustness`, and the fit's `slope`, `intercept`, `n_ref`.
    """
    in_dist, shifted = _accuracies(in_dist, "in_dist"), _accuracies(shifted, "shifted")
    ref_in, ref_shifted = _accuracies(ref_in, "ref_in").ravel(), _accuracies(ref_shifted, "ref_shifted").ravel()
    if in_dist.shape != shifted.shape:
        raise ValueError(f"in_dist {in_dist.shape} and shifted {shifted.shape} must have the same shape")
    if len(ref_in) != len(ref_shifted):
        raise ValueError(f"ref_in ({len(ref_in)}) and ref_shifted ({len(ref_shifted)}) differ in length")
    x = logit(ref_in, eps)
    if len(np.unique(x)) < 2:
        raise ValueError(f"the trend needs reference models with at least 2 distinct in-distribution accuracies, "
                         f"got {ref_in.tolist()}")
    slope, intercept = np.polyfit(x, logit(ref_shifted, eps), 1)
    predicted = sigmoid(slope * logit(in_dist, eps) + intercept)
    gain = shifted - predicted
    return {
        "predicted": predicted, "effective_robustness": gain,
        "mean_effective_robustness": float(np.mean(gain)) if gain.size else float("nan"),
        "slope": float(slope), "intercept": float(intercept), "n_ref": len(ref_in),
    }


def relative_robustness_gap_reduction(in_dist: ArrayLike, shifted: ArrayLike, baseline_shifted: ArrayLike) -> dict:
    """How much of a baseline's robustness gap a model closes at matched in-distribution accuracy (paper §3.3,
    Figure 13: zero-shot CLIP "reduces this gap by up to 75%").

    For a model with in-distribution accuracy a and shifted accuracy s, and a baseline with the *same*
    in-distribution accuracy a and shifted accuracy b (a measured model, e.g. the paper's ResNet-101 against
    CLIP at 76.2% ImageNet accuracy, or the reference trend's prediction — pass
    `effective_robustness(...)["predicted"]`):

        baseline_gap = a − b,   gap = a − s,   reduction = (baseline_gap − gap) / baseline_gap = (s − b) / (a − b).

    reduction = 1 is an ideal robust model (no drop, the y = x line), 0 is no better than the baseline, < 0 is
    worse; it is NaN where the baseline has no gap (baseline_gap ≤ 0). Arrays broadcast: one entry per model (the
    paper's Figure 13 left: each model's shifted accuracy averaged over the 7 shifted datasets, against the trend)
    or per shifted dataset. Returns `baseline_gap`, `gap`, `reduction` (arrays), and `max_reduction` ("up to" in
    the paper) and `mean_reduction` over the finite entries.
    """
    a, s = _accuracies(in_dist, "in_dist"), _accuracies(shifted, "shifted")
    b = _accuracies(baseline_shifted, "baseline_shifted")
    baseline_gap, gap = a - b, a - s
    reduction = (baseline_gap - gap) / np.where(baseline_gap > 0, baseline_gap, np.nan)
    finite = reduction[np.isfinite(reduction)]
    return {
        "baseline_gap": baseline_gap, "gap": gap, "reduction": reduction,
        "max_reduction": float(finite.max()) if finite.size else float("nan"),
        "mean_reduction": float(finite.mean()) if finite.size else float("nan"),
    }


def trend_band(ref_in: ArrayLike, ref_shifted: ArrayLike, at_in: ArrayLike, level: float = 0.95,
               eps: float = EPS) -> dict:
    """The logit-linear trend of reference models (as in `effective_robustness`) with its `level` prediction
    interval at in-distribution accuracies `at_in`: where a further reference model of that in-distribution accuracy
    would lie under the shift (Taori et al., 2020; paper §3.3, Figure 13's shaded band).

    On the logit scale the least-squares line has residual standard deviation s = sqrt(Σ r² / (n − 2)); at
    x0 = logit(at_in) the interval is fit(x0) ± t_{n−2} · s · sqrt(1 + 1/n + (x0 − x̄)² / Σ (x − x̄)²), mapped back
    through `sigmoid`. A model whose shifted accuracy lies above `high` is above the trend beyond its uncertainty.
    Points of one model's training run (snapshots) are not independent, so the interval is somewhat too narrow when
    the trend is drawn through a few models' snapshots. Needs 3 or more reference points with 2 or more distinct
    in-distribution accuracies (`low`, `high` are NaN for exactly 2 points). Returns `predicted`, `low`, `high`
    (accuracies, arrays like `at_in`), `slope`, `intercept`, `residual_sd` (logit units), `dof`, `t`, `level`.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    ref_in, ref_shifted = _accuracies(ref_in, "ref_in").ravel(), _accuracies(ref_shifted, "ref_shifted").ravel()
    at = _accuracies(at_in, "at_in")
    if len(ref_in) != len(ref_shifted):
        raise ValueError(f"ref_in ({len(ref_in)}) and ref_shifted ({len(ref_shifted)}) differ in length")
    x, y = logit(ref_in, eps), logit(ref_shifted, eps)
    if len(np.unique(x)) < 2:
        raise ValueError(f"the trend needs reference models with at least 2 distinct in-distribution accuracies, "
                         f"got {ref_in.tolist()}")
    slope, intercept = np.polyfit(x, y, 1)
    x0 = logit(at, eps)
    centre = slope * x0 + intercept
    n, dof = len(x), len(x) - 2
    if dof < 1:
        nan = np.full_like(centre, np.nan, dtype=np.float64)
        return {"predicted": sigmoid(centre), "low": nan, "high": nan.copy(), "slope": float(slope),
                "intercept": float(intercept), "residual_sd": float("nan"), "dof": dof, "t": float("nan"),
                "level": level}
    from scipy.stats import t as student_t

    resid = y - (slope * x + intercept)
    sd = float(np.sqrt(np.sum(resid ** 2) / dof))
    sxx = float(np.sum((x - x.mean()) ** 2))
    half = float(student_t.ppf(0.5 + level / 2, dof)) * sd * np.sqrt(1 + 1 / n + (x0 - x.mean()) ** 2 / sxx)
    return {"predicted": sigmoid(centre), "low": sigmoid(centre - half), "high": sigmoid(centre + half),
            "slope": float(slope), "intercept": float(intercept), "residual_sd": sd, "dof": dof,
            "t": float(student_t.ppf(0.5 + level / 2, dof)), "level": level}
