"""Reading the temperature ablation's results (paper §2.5): one tidy table of every run, the learnable τ against
the best fixed τ — chosen on a validation suite and scored on a different one, so the comparison is not selected on
the data it is scored on — and the clamped against the unclamped recipe, both paired over seeds. Works on result
files of every format the experiment has written (settings, suites and τ values are read from the records)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .temperature import AT_CLIP, reached_clip_step

if TYPE_CHECKING:
    import pandas as pd

#: The last fraction of the logged training loss that `tail_loss` averages (the schedule has decayed there).
TAIL = 0.1
#: A run under-fits when its tail loss exceeds the best setting's (same seed) by more than UNDERFIT_Z standard errors
#: of the difference (not batch noise) and by more than UNDERFIT_REL of what the best setting gained over the loss
#: of chance, ln(batch size) (not a negligible gap): "clearly above".
UNDERFIT_Z = 3.0
UNDERFIT_REL = 0.1


def tail_loss(loss: Sequence[float], fraction: float = TAIL) -> tuple[float, float]:
    """Mean of the logged training loss over the last `fraction` of the log points and its standard error (the
    batch-to-batch spread / √n; NaN for fewer than two points)."""
    x = np.asarray(loss, dtype=float)
    x = x[len(x) - max(1, math.ceil(len(x) * fraction)):]
    if len(x) == 0:
        return math.nan, math.nan
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else math.nan


def _kind(fields: dict) -> str:
    return {"fixed": "fixed", "learnable": "learnable", "unclamped": "unclamped"}[fields.get("temperature",
                                                                                            "learnable")]


def _settings(record: dict) -> dict[str, dict]:
    """Setting name -> its TrainConfig fields, as the record wrote them."""
    return record["config"]["settings"]


def summarize(records: Sequence[dict]) -> pd.DataFrame:
    """One row per (seed, setting, suite): seed, setting, kind (fixed | learnable | unclamped), tau (the fixed τ;
    NaN when learned), suite, top1, final_loss (last logged), tail_loss (`tail_loss`), final_temperature,
    reached_clip_step (first logged step with logit scale ≥ 99.5, learnable settings only; <NA> if never),
    diverged (stopped by a non-finite loss) and under_fit (tail loss clearly above the best setting's of the same
    seed: `UNDERFIT_Z`, `UNDERFIT_REL`; False where the log is too short to estimate the noise). A diverged run has
    NaN accuracy and losses."""
    import pandas as pd

    rows = []
    for r in records:
        chance_loss = math.log(r["config"]["train"]["batch_size"])
        fits: dict[str, tuple[float, float]] = {}
        for name, entry in r["metrics"]["settings"].items():
            curve = r.get("curves", {}).get(name) or {}
            if not entry["diverged"]:
                fits[name] = tail_loss(curve["loss"]) if curve.get("loss") else (entry["final_loss"], math.nan)
        best = min(fits, key=lambda s: fits[s][0]) if fits else None
        for name, entry in r["metrics"]["settings"].items():
            fields = _settings(r).get(name, entry.get("config", {}))
            kind = _kind(fields)
            diverged = bool(entry["diverged"])
            reached = None
            if kind != "fixed" and not diverged:
                curve = r.get("curves", {}).get(name) or {}
                reached = entry.get("reached_clip_step") if "reached_clip_step" in entry else (
                    reached_clip_step(curve["step"], curve["logit_scale"], AT_CLIP) if curve.get("logit_scale")
                    else None)
            under = False
            if not diverged and best is not None and name != best:
                (mean, se), (b_mean, b_se) = fits[name], fits[best]
                se_diff = math.hypot(se, b_se)  # NaN without two tail points: no noise estimate, no verdict
                under = math.isfinite(se_diff) and \
                    mean - b_mean > max(UNDERFIT_Z * se_diff, UNDERFIT_REL * (chance_loss - b_mean), 0.0)
            for suite in r["config"]["suites"]:
                rows.append({
                    "seed": r["seed"], "setting": name, "kind": kind,
                    "tau": float(fields["fixed_temperature"]) if kind == "fixed" else math.nan, "suite": suite,
                    "top1": math.nan if diverged else float(entry["zeroshot"][suite]),
                    "final_loss": math.nan if diverged else float(entry["final_loss"]),
                    "tail_loss": fits[name][0] if name in fits else math.nan,
                    "final_temperature": math.nan if diverged else float(entry["final_temperature"]),
                    "reached_clip_step": reached, "diverged": diverged, "under_fit": under})
    table = pd.DataFrame(rows, columns=["seed", "setting", "kind", "tau", "suite", "top1", "final_loss", "tail_loss",
                                        "final_temperature", "reached_clip_step", "diverged", "under_fit"])
    table["reached_clip_step"] = table["reached_clip_step"].astype("Int64")
    return table


def default_select(records: Sequence[dict]) -> str:
    """The validation suite the best fixed τ is chosen on: the profile's `select`, else (older result files) the
    first recorded suite of a validation split."""
    config = records[0]["config"]
    return config.get("select") or next((s for s in config["suites"] if s.endswith("/val")), config["suites"][0])


def default_score(records: Sequence[dict]) -> str:
    """The suite the learnable-versus-best-fixed comparison is reported on first: the profile's `score`, else
    (older result files) the first recorded suite not of a validation split."""
    config = records[0]["config"]
    return config.get("score") or next(s for s in config["suites"] if not s.endswith("/val"))


def best_fixed(records: Sequence[dict], select: str | None = None) -> str:
    """The fixed-τ setting with the highest mean zero-shot top-1 over seeds on the validation suite `select`
    (default `default_select`), among those that diverged in no seed."""
    select = select or default_select(records)
    table = summarize(records)
    fixed = table[(table["kind"] == "fixed") & (table["suite"] == select)]
    stable = fixed.groupby("setting")["diverged"].any()
    means = fixed[fixed["setting"].isin(stable[~stable].index)].groupby("setting")["top1"].mean()
    if means.empty:
        raise ValueError(f"no fixed τ trained without diverging in every seed on {select!r}")
    return str(means.idxmax())


def _paired(records: Sequence[dict], a: str, b: str, suite: str) -> pd.DataFrame:
    table = summarize(records)
    on = table[table["suite"] == suite].set_index(["seed", "setting"])["top1"]
    if on.empty:
        raise ValueError(f"suite {suite!r} is not in the results; they have {list(records[0]['config']['suites'])}")
    import pandas as pd

    seeds = sorted({r["seed"] for r in records})
    first, second = [on.get((s, a), math.nan) for s in seeds], [on.get((s, b), math.nan) for s in seeds]
    return pd.DataFrame({"seed": seeds, a: first, b: second, "difference": np.subtract(first, second)})


def learnable_vs_best_fixed(records: Sequence[dict], suite: str, select: str | None = None,
                            setting: str = "learnable") -> pd.DataFrame:
    """Per seed: zero-shot top-1 on `suite` of the learnable `setting` and of the best fixed τ chosen on the
    *validation* suite `select` (`best_fixed`), and their difference (learnable − best fixed). Columns: seed,
    setting, best_fixed, tau, select, suite, learnable, fixed, difference. `suite` must differ from `select`."""
    select = select or default_select(records)
    if suite == select:
        raise ValueError(f"the best fixed τ is chosen on {select!r}; score the comparison on another suite")
    best = best_fixed(records, select)
    pairs = _paired(records, setting, best, suite)
    tau = float(_settings(records[0])[best]["fixed_temperature"])
    return pairs.rename(columns={setting: "learnable", best: "fixed"}).assign(
        setting=setting, best_fixed=best, tau=tau, select=select, suite=suite)[
        ["seed", "setting", "best_fixed", "tau", "select", "suite", "learnable", "fixed", "difference"]]


def clamped_vs_unclamped(records: Sequence[dict], suite: str, clamped: str = "learnable",
                         unclamped: str = "learnable, unclamped") -> pd.DataFrame:
    """Per seed: zero-shot top-1 on `suite` of the clamped (paper) and unclamped learnable τ and their difference
    (clamped − unclamped); clamp_acted says whether the clamped run's logit scale reached the clip (else the clamp
    never changed a step and the two runs train alike), identical whether their logged losses are equal."""
    pairs = _paired(records, clamped, unclamped, suite).rename(columns={clamped: "clamped", unclamped: "unclamped"})
    table = summarize(records)
    steps = table[(table["setting"] == clamped) & (table["suite"] == suite)].set_index("seed")["reached_clip_step"]
    pairs["clamp_acted"] = [s in steps.index and not bool(_isna(steps[s])) for s in pairs["seed"]]
    curves = {r["seed"]: r.get("curves", {}) for r in records}
    pairs["identical"] = [bool(curves[s].get(clamped, {}).get("loss")) and
                          curves[s][clamped]["loss"] == curves[s].get(unclamped, {}).get("loss") for s in pairs["seed"]]
    return pairs.assign(suite=suite)[["seed", "suite", "clamped", "unclamped", "difference", "clamp_acted",
                                      "identical"]]


def _isna(value: object) -> bool:
    """True for None, NaN and pandas' NA."""
    import pandas as pd

    return value is None or bool(pd.isna(value))
