"""Reading the objectives experiment's results (paper §2.3, Figure 2): the sample efficiency of one objective over
another as the paper measures it — how many times more images the slower objective needs to reach the same zero-shot
accuracy, at the highest accuracy both reach (the slower one's final accuracy, or the faster one's where that is
lower), the crossing interpolated log-linearly between snapshots (`objectives.sample_efficiency`) — per seed, and
its geometric mean over seeds with a 95% interval computed on the log ratio. A ratio is only defined where the
slower objective rises above chance; elsewhere it is reported as untestable, with the reason."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..stats import accuracy_interval, difference_interval
from .objectives import PAIRS, PAPER_RATIOS, base_kind, monotone_curve, sample_efficiency

if TYPE_CHECKING:
    import pandas as pd

MEASURED = ("exact", "matched")  # the bounds of `efficiency_ratios` that give a ratio


def with_objectives(records: Sequence[dict], *kinds: str) -> list[dict]:
    """The records (seeds) that hold every objective of `kinds` — a longer budget may exist for fewer seeds."""
    return [r for r in records if all(k in r["metrics"]["objectives"] for k in kinds)]


def pairs_for(records: Sequence[dict], pairs: Sequence[tuple[str, str]] = PAIRS) -> list[tuple[str, str]]:
    """`pairs`, then each of them again with its slower objective at a longer budget ("caption-lm-x4") where some
    record holds one: the paper's ratios read against a budget where the slow objective can leave chance."""
    found = {k for r in records for k in r["metrics"]["objectives"]}
    longer = sorted(k for k in found if base_kind(k) != k)
    return [*pairs, *((f, k) for f, s in pairs for k in longer if base_kind(k) == s and f in found)]


def precisions(records: Sequence[dict]) -> dict[str, str]:
    """The precision each objective trained in (its last log row's; `precision="auto"` chooses per run, and the
    choice is cached so that every seed repeats it), which must be the same in every seed that holds it: otherwise a
    one-line error naming the objective and each seed's precision, since such seeds are not averaged."""
    used: dict[str, dict[int, str]] = {}
    for r in records:
        configured = r["config"].get("train", {}).get("precision", "not recorded")
        for kind, metrics in r["metrics"]["objectives"].items():
            used.setdefault(kind, {})[r["seed"]] = (metrics.get("final_loss") or {}).get("precision", configured)
    for kind, seeds in used.items():
        if len(set(seeds.values())) > 1:
            raise ValueError(f"objective {kind!r} trained in different precisions across seeds: {seeds}")
    return {kind: next(iter(seeds.values())) for kind, seeds in used.items()}


def curve(records: Sequence[dict], kind: str, suite: str) -> tuple[list[int], np.ndarray]:
    """Images seen at each snapshot and zero-shot top-1 of objective `kind` on `suite`, one row per seed."""
    missing = [r["seed"] for r in records if kind not in r["metrics"]["objectives"]]
    if missing:
        raise ValueError(f"objective {kind!r} is not in the results of seeds {missing}")
    rows = [r["metrics"]["objectives"][kind]["snapshots"] for r in records]
    return [s["images_seen"] for s in rows[0]], np.array([[s[suite] for s in row] for row in rows], dtype=float)


def _facts(records: Sequence[dict], suite: str, chance: float | None) -> tuple[float, int | None]:
    facts = records[0]["metrics"].get("suites", {}).get(suite, {})
    chance = facts.get("chance") if chance is None else chance
    if chance is None:
        raise ValueError(f"the results record no chance level for {suite!r}: pass chance=")
    return float(chance), facts.get("n")


def above_chance(records: Sequence[dict], kind: str, suite: str, chance: float | None = None) -> tuple[bool, str]:
    """Whether objective `kind` ends above chance on `suite`: the 95% interval of its final accuracy over seeds
    (`repro.stats.accuracy_interval`; one seed: the Wilson interval of the images scored, when recorded) lies
    above the chance level; with a sentence saying so."""
    chance, n_items = _facts(records, suite, chance)
    stats = accuracy_interval(curve(records, kind, suite)[1][:, -1], n_items)
    text = (f"{kind} ends at {100 * stats['mean']:.1f}% [{100 * stats['low']:.1f}, {100 * stats['high']:.1f}] "
            f"against chance {100 * chance:.1f}%" if math.isfinite(stats["low"]) else
            f"{kind} ends at {100 * stats['mean']:.1f}% (no interval: one seed) against chance {100 * chance:.1f}%")
    return bool(math.isfinite(stats["low"]) and stats["low"] - chance > 1e-9), text  # not rounding error


def images_to_leave_chance(records: Sequence[dict], kind: str, suite: str,
                           chance: float | None = None) -> list[int | None]:
    """Per seed, the images seen at the first snapshot from which objective `kind` stays above chance on `suite`
    to the end of the budget: the Wilson 95% interval of the images scored (`repro.stats.wilson`) lies above
    chance there and at every later snapshot; None where the last snapshot is not above chance."""
    from ..stats import wilson

    chance, n_items = _facts(records, suite, chance)
    if not n_items:
        raise ValueError(f"the results record no image count for {suite!r}: no interval for one snapshot")
    seen, accuracies = curve(records, kind, suite)
    out: list[int | None] = []
    for row in accuracies:
        above = [wilson(round(a * n_items), n_items)[0] > chance for a in row]
        first = None
        for i in range(len(above) - 1, -1, -1):  # walk back from the end while it stays above chance
            if not above[i]:
                break
            first = seen[i]
        out.append(first)
    return out


def efficiency_ratios(records: Sequence[dict], suite: str, pairs: Sequence[tuple[str, str]] = PAIRS,
                      chance: float | None = None) -> pd.DataFrame:
    """One row per (pair, seed holding both objectives): how many times more images the slower objective needs
    than the faster one to reach the same zero-shot accuracy — Figure 2's measure — at the highest accuracy both
    reach, read off each seed's curves made non-decreasing (`objectives.monotone_curve`; `slower_final` and
    `faster_final` are those curves' ends). Normally that is the slower one's final accuracy: ratio = the slower
    one's budget / the images the faster one needs to reach it (`at` "slower final"). Where the faster curve never
    gets there but ends above chance (the Wilson 95% interval of its final accuracy, when the results record the
    chance level and image count), the target is the faster one's final accuracy: ratio = the images the slower one
    needs to reach it / the faster one's budget (`at` "faster final", `bound` "matched"; below 1 where the "faster"
    objective is the slower). `bound`: "exact" or "matched" (a ratio), "lower" (reached already at the first
    snapshot: ratio ≥ `ratio_at_least`) or "none" (never reached, and no match at the faster one's final accuracy:
    ratio < `ratio_below`, the slower budget over the faster one); ratio is NaN unless exact or matched."""
    import pandas as pd

    from ..stats import wilson

    try:
        chance, n_items = _facts(records, suite, chance)
    except ValueError:  # no chance level recorded or given: no matching at the faster one's accuracy
        chance, n_items = math.nan, None
    rows = []
    for fast, slow in pairs:
        both = with_objectives(records, fast, slow)
        if not both:
            continue
        seen, fast_curve = curve(both, fast, suite)
        slow_seen, slow_curve = curve(both, slow, suite)
        for i, r in enumerate(both):
            fast_fit, slow_fit = monotone_curve(seen, fast_curve[i]), monotone_curve(slow_seen, slow_curve[i])
            fast_final, slow_final = fast_fit[-1], slow_fit[-1]
            got = sample_efficiency(seen, fast_fit, slow_final, slow_seen[-1])
            bound = "exact" if got["ratio"] is not None else "lower" if "ratio_at_least" in got else "none"
            ratio, images, at = got["ratio"], got["images"], "slower final"
            if bound == "none" and n_items and wilson(round(fast_final * n_items), n_items)[0] > chance:
                back = sample_efficiency(slow_seen, slow_fit, fast_final, seen[-1])
                if back["ratio"] is not None:  # the slower one reaches the faster one's final accuracy
                    bound, ratio, images, at = "matched", 1 / back["ratio"], seen[-1], "faster final"
            rows.append({"pair": f"{fast}>{slow}", "faster": fast, "slower": slow, "seed": r["seed"],
                         "slower_final": slow_final, "faster_final": fast_final, "slower_budget": slow_seen[-1],
                         "at": at, "images": images if bound in MEASURED else math.nan,
                         "ratio": ratio if bound in MEASURED else math.nan,
                         "ratio_at_least": got.get("ratio_at_least", math.nan),
                         "ratio_below": got.get("ratio_below", math.nan),
                         "reached": bound != "none", "bound": bound})
    return pd.DataFrame(rows, columns=["pair", "faster", "slower", "seed", "slower_final", "faster_final",
                                       "slower_budget", "at", "images", "ratio", "ratio_at_least", "ratio_below",
                                       "reached", "bound"])


def _ratio_text(ratio: float, low: float, high: float) -> str:
    return f"{ratio:.1f}×" + (f" [{low:.1f}, {high:.1f}]" if math.isfinite(low) else "")


def efficiency_summary(records: Sequence[dict], suite: str, chance: float | None = None,
                       pairs: Sequence[tuple[str, str]] = PAIRS, per_seed: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per pair that some seed holds both objectives of (`with_objectives`; a longer budget of the slower
    objective keeps the paper's ratio of its kind): the paper's ratio (`PAPER_RATIOS`; NaN where it states none),
    the seeds it is over (`n_seeds`), our geometric mean over the seeds with a ratio (`efficiency_ratios`: exact or
    matched at the faster one's final accuracy) and its 95% interval (the t interval of the mean log ratio,
    `difference_interval`, mapped back with exp), how many seeds gave a ratio (`n_reached`, of which `n_matched`
    matched) / only a lower bound / none, a `result` to print and a `status`: "measured" (a ratio in every seed),
    "partly measured" (the mean is over the exact seeds only), "lower bound", "not reached" (`result` "< r×": r is
    the slower budget over the faster one), or "untestable" where the slower objective does not end above chance
    (`above_chance`) — there is then no accuracy to match; `reason` says why. `per_seed`: the caller's
    `efficiency_ratios(records, suite, pairs, chance)`, computed here when not given."""
    import pandas as pd

    per_seed = efficiency_ratios(records, suite, pairs, chance) if per_seed is None else per_seed
    rows = []
    for fast, slow in pairs:
        seeds = per_seed[per_seed["pair"] == f"{fast}>{slow}"]
        if seeds.empty:  # no seed holds both objectives
            continue
        exact = seeds[seeds["bound"].isin(MEASURED)]
        logs = difference_interval(np.log(exact["ratio"].to_numpy(float)))
        mean, low, high = (math.exp(logs[k]) if math.isfinite(logs[k]) else math.nan for k in ("mean", "low", "high"))
        above, why = above_chance(with_objectives(records, fast, slow), slow, suite, chance)
        counts = {b: int((seeds["bound"] == b).sum()) for b in ("exact", "matched", "lower", "none")}
        matched = counts.pop("matched")
        counts["exact"] += matched
        at_own = f"; {matched} at {fast}'s own final accuracy, below {slow}'s" if matched else ""
        if not above:
            status, reason, result, mean, low, high = "untestable", f"{why}: no accuracy to match", "untestable", \
                math.nan, math.nan, math.nan
        elif counts["exact"] == len(seeds):
            status, reason, result = "measured", at_own[2:], _ratio_text(mean, low, high)
        elif counts["exact"]:
            status = "partly measured"
            reason = (f"exact in {counts['exact']} of {len(seeds)} seeds; {counts['lower']} only a lower bound, "
                      f"{counts['none']} never reached{at_own}")
            result = f"{_ratio_text(mean, low, high)} ({counts['exact']} of {len(seeds)} seeds)"
        elif counts["lower"]:
            first = float(seeds["ratio_at_least"].min())
            status, reason, result = "lower bound", "reached at the first snapshot", f"≥ {first:.0f}×"
        else:
            below = float(seeds["ratio_below"].max())
            status, reason, result = "not reached", f"{fast} never reaches {slow}'s final accuracy", f"< {below:g}×"
        rows.append({"pair": f"{fast}>{slow}", "faster": fast, "slower": slow,
                     "paper": PAPER_RATIOS.get((fast, base_kind(slow)), math.nan), "ratio": mean, "low": low,
                     "high": high,
                     "n_seeds": len(seeds), "n_reached": counts["exact"], "n_matched": matched,
                     "n_lower_bound": counts["lower"],
                     "n_not_reached": counts["none"], "result": result, "status": status, "reason": reason})
    return pd.DataFrame(rows)
