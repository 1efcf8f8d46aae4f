"""The statistics behind every number and verdict of the book, in one place.

- `accuracy_interval`: mean accuracy over seeds with a 95% interval that stays inside [0, 1] (a t interval on the
  log-odds of the per-seed accuracies, mapped back) — a plain t interval over 3 seeds can reach below 0%.
- `difference_interval`: mean of per-seed differences (paired over seeds) with its t interval (differences are
  unbounded, so the plain t interval is the right one).
- `wilson`: the Wilson score interval of one proportion (one run, n images).
- `paired_bootstrap` and `mcnemar`: two classifiers scored on the *same* images, compared image by image.
- `min_detectable_effect`: the smallest true mean effect that an experiment with this seed-to-seed spread detects
  with 80% power at the 5% level (two-sided t test over seeds).
- `verdict`: a claim's verdict from our effect, its interval, the experiment's power and its preconditions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

LEVEL = 0.95
POWER = 0.80


def _t(q: float, dof: int) -> float:
    from scipy.stats import t

    return float(t.ppf(q, dof))


def _clean(values: Sequence[float]) -> np.ndarray:
    x = np.asarray([float(v) for v in values], dtype=float)
    return x[np.isfinite(x)]


def wilson(successes: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """The Wilson score interval of a proportion `successes / n` (Wilson, 1927): inside [0, 1] by construction."""
    if n <= 0:
        raise ValueError(f"wilson: n must be positive, got {n}")
    if not 0 <= successes <= n:
        raise ValueError(f"wilson: successes must lie in [0, {n}], got {successes}")
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + level / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def difference_interval(values: Sequence[float], level: float = LEVEL) -> dict:
    """Mean, sample std and the t interval of per-seed values (e.g. paired differences): {"mean", "std", "low",
    "high", "n"}; for one value the interval is undefined (NaN)."""
    x = _clean(values)
    n = len(x)
    if n == 0:
        return {"mean": math.nan, "std": math.nan, "low": math.nan, "high": math.nan, "n": 0}
    mean = float(x.mean())
    if n == 1:
        return {"mean": mean, "std": math.nan, "low": math.nan, "high": math.nan, "n": 1}
    std = float(x.std(ddof=1))
    half = _t(0.5 + level / 2, n - 1) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "low": mean - half, "high": mean + half, "n": n}


def accuracy_interval(values: Sequence[float], n_items: int | None = None, level: float = LEVEL) -> dict:
    """Mean accuracy over seeds and a `level` interval inside [0, 1]: the t interval of the per-seed log-odds,
    mapped back through the logistic function. Accuracies of exactly 0 or 1 are moved in by half an item
    (`n_items`, the images scored; 1e-4 when not given). One seed: the Wilson interval of its `n_items` images
    when given, else no interval. Returns {"mean", "std", "low", "high", "n"}."""
    x = _clean(values)
    n = len(x)
    if n and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"accuracy_interval: accuracies must lie in [0, 1], got {x.min():.4g} … {x.max():.4g}")
    out = difference_interval(x, level)
    if n == 0:
        return out
    if n == 1:
        if n_items:
            out["low"], out["high"] = wilson(round(float(x[0]) * n_items), n_items, level)
        return out
    eps = 0.5 / n_items if n_items else 1e-4
    p = np.clip(x, eps, 1 - eps)
    logits = difference_interval(np.log(p / (1 - p)), level)
    # the interval of the clipped log-odds, widened to hold the mean itself (all seeds at 0 or 1: the clip moved them)
    out["low"] = min(float(1 / (1 + math.exp(-logits["low"]))), out["mean"])
    out["high"] = max(float(1 / (1 + math.exp(-logits["high"]))), out["mean"])
    return out


def _as_correct(name: str, values) -> np.ndarray:
    x = np.asarray(values)
    if x.ndim != 1 or not np.isin(x, (0, 1)).all():
        raise ValueError(f"{name}: expected a 1-D array of 0/1 (or bool) per image, got shape {x.shape}")
    return x.astype(bool)


def paired_bootstrap(a, b, n_boot: int = 10_000, seed: int = 0, level: float = LEVEL) -> dict:
    """Accuracy difference a − b of two classifiers scored on the same images (`a`, `b`: correct or not, per image)
    with a percentile bootstrap interval over images (images resampled together, so the pairing is kept):
    {"diff", "low", "high", "n"}."""
    a, b = _as_correct("paired_bootstrap a", a), _as_correct("paired_bootstrap b", b)
    if len(a) != len(b) or len(a) == 0:
        raise ValueError(f"paired_bootstrap: a and b must score the same non-empty images, got {len(a)} and {len(b)}")
    d = a.astype(float) - b.astype(float)
    rng = np.random.default_rng(seed)
    boots = d[rng.integers(0, len(d), size=(n_boot, len(d)))].mean(axis=1)
    low, high = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
    return {"diff": float(d.mean()), "low": float(low), "high": float(high), "n": len(d)}


def mcnemar(a, b) -> dict:
    """McNemar's exact test of two classifiers on the same images: the images only `a` gets right (`only_a`), only
    `b` gets right (`only_b`) and the two-sided binomial p-value of that split under "equally accurate"."""
    a, b = _as_correct("mcnemar a", a), _as_correct("mcnemar b", b)
    if len(a) != len(b):
        raise ValueError(f"mcnemar: a and b must score the same images, got {len(a)} and {len(b)}")
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    discordant = only_a + only_b
    if discordant == 0:
        return {"only_a": 0, "only_b": 0, "p": 1.0}
    from scipy.stats import binomtest

    return {"only_a": only_a, "only_b": only_b, "p": float(binomtest(only_a, discordant, 0.5).pvalue)}


def min_detectable_effect(std: float, n: int, level: float = LEVEL, power: float = POWER) -> float:
    """The smallest true mean effect a two-sided t test over `n` seeds (one-sample or paired) detects with
    probability `power` at significance 1 − `level`, given seed-to-seed standard deviation `std`:
    (t_{1−α/2} + t_{power}) · std / √n with n − 1 degrees of freedom. Infinite for fewer than 2 seeds."""
    if n < 2 or not math.isfinite(std):
        return math.inf
    return (_t(0.5 + level / 2, n - 1) + _t(power, n - 1)) * std / math.sqrt(n)


#: The kinds of verdict, in the order the claims figure lists them.
KINDS = ("reproduced", "contradicted", "not reproduced", "inconclusive", "untestable here")


@dataclass(frozen=True)
class Verdict:
    """A claim's verdict: its `kind` (one of KINDS) and the sentence the book prints."""

    kind: str
    text: str

    def __str__(self) -> str:
        return self.text


def verdict(effect: dict, paper_effect: float | None, mde: float,
            preconditions: Sequence[tuple[bool, str]] = (), direction: int = 1, unit: str = "points",
            scale: float = 100.0) -> Verdict:
    """The verdict on a claim that predicts an effect of sign `direction` (size `paper_effect` in our units when
    the paper gives one), from our `effect` ({"mean", "low", "high", "n"}, as `difference_interval`), the
    experiment's minimum detectable effect `mde` and its preconditions ((holds, reason) pairs):

    - a failed precondition: "untestable here", with its reason;
    - the interval excludes 0 on the predicted side: "reproduced"; on the other side: "contradicted";
    - otherwise, if the experiment could not detect an effect of the paper's size (mde > |paper_effect|, or any
      effect when there is no paper size and fewer than 2 seeds): "inconclusive", saying so;
    - otherwise: "not reproduced" (an effect of the paper's size would have been detected).
    """
    for holds, reason in preconditions:
        if not holds:
            return Verdict("untestable here", f"untestable here: {reason}")
    if effect.get("n", 0) < 2 or not (math.isfinite(effect.get("low", math.nan))
                                      and math.isfinite(effect.get("high", math.nan))):
        return Verdict("inconclusive", "inconclusive: one seed, no interval")
    low, high = sorted((effect["low"] * direction, effect["high"] * direction))
    detect = f"smallest detectable effect {mde * scale:.2g} {unit}".rstrip()
    if low > 0:
        return Verdict("reproduced", "reproduced: the 95% interval excludes zero")
    if high < 0:
        return Verdict("contradicted", "contradicted: the 95% interval excludes zero on the other side")
    if paper_effect is None:
        return Verdict("inconclusive", f"inconclusive: no significant effect ({detect})")
    if mde > abs(paper_effect):
        return Verdict("inconclusive", "inconclusive: our experiment could not detect an effect of the paper's size "
                                       f"({detect}, the paper's {abs(paper_effect) * scale:.2g})")
    return Verdict("not reproduced", f"not reproduced: an effect of the paper's size would have been detected "
                                     f"({detect})")


def beyond_spread(result: Verdict, beyond: int, n: int, spread: str) -> Verdict:
    """Qualify a "reproduced" verdict by the noise of the reference the effect is measured against (§3.3's
    effective robustness is a distance from a fitted trend; a further reference model strays from it too): when the
    effect lies beyond the reference's own `spread` (e.g. the trend's 95% prediction band) in no more than half of
    the `n` seeds, the effect is no larger than that noise, and the verdict is "inconclusive", saying in how many
    seeds it was beyond. Any other verdict is returned unchanged."""
    if n < 1 or not 0 <= beyond <= n:
        raise ValueError(f"beyond_spread: beyond={beyond} must lie in [0, n={n}] with n >= 1")
    if result.kind != "reproduced" or 2 * beyond > n:
        return result
    return Verdict("inconclusive", f"inconclusive: the seeds' interval excludes zero, but the effect lies beyond "
                                   f"{spread} in {beyond} of {n} seeds")


def interval_text(stats: dict, scale: float = 100.0, digits: int = 1, signed: bool = False) -> str:
    """"12.3 [8.1, 17.9]" — a mean and its interval (as returned above), scaled (e.g. to percent); just the mean
    when there is no interval."""
    fmt = f"{{:{'+' if signed else ''}.{digits}f}}"
    mean = fmt.format(stats["mean"] * scale)
    if not (math.isfinite(stats.get("low", math.nan)) and math.isfinite(stats.get("high", math.nan))):
        return mean
    return f"{mean} [{stats['low'] * scale:.{digits}f}, {stats['high'] * scale:.{digits}f}]"
