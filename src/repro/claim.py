"""One claim of the paper as tested here (`Claim`), and the small tests several claims share: the smallest
detectable effect from the seeds' spread, and "above chance" for an accuracy over seeds. The claims themselves are
in `repro.claims` (the table's order, `collect`) and `repro.claims_robustness` (Figures 5, 13 and 14)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .stats import Verdict, accuracy_interval, difference_interval, interval_text, min_detectable_effect, verdict


@dataclass
class Claim:
    """One claim of the paper as tested here. `effect` ({"mean", "low", "high", "n"}) and `paper_effect` are in the
    same units (fractions for accuracies, shown × `scale` in `unit`); `mde` is the smallest detectable effect."""

    label: str
    claim: str
    paper: str
    test: str
    ours: str
    effect: dict
    verdict: Verdict
    paper_effect: float | None = None
    mde: float = math.nan
    unit: str = "points"
    scale: float = 100.0
    chapter: str = ""
    extra: dict = field(default_factory=dict)


def seed_mde(values: Sequence[float]) -> float:
    """The smallest effect detectable from these per-seed values (`repro.stats.min_detectable_effect` of their
    spread; NaN for one seed)."""
    x = np.asarray(values, dtype=float)
    return min_detectable_effect(float(x.std(ddof=1)) if len(x) > 1 else math.nan, len(x))


def above_chance(label: str, claim: str, paper: str, test: str, values: Sequence[float], chance: float,
                 n_items: int | None = None, chapter: str = "", paper_effect: float | None = None) -> Claim:
    """A claim that an accuracy is above `chance`: effect = accuracy − chance per seed, shown as the accuracy with
    its range-respecting interval (`accuracy_interval`)."""
    acc = accuracy_interval(values, n_items)
    effect = difference_interval([v - chance for v in values])
    mde = seed_mde(values)
    result = verdict(effect, paper_effect, mde)
    text = {"reproduced": "reproduced: above chance", "contradicted": "below chance"}.get(result.kind, result.text)
    return Claim(label, claim, paper, test, f"{interval_text(acc)}% (chance {100 * chance:.2g}%)", effect,
                 Verdict(result.kind, text), paper_effect, mde, chapter=chapter)
