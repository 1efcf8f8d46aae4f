"""Tables and figures of the temperature chapter (paper §2.5), from the `temperature` result records
(`repro.experiments.temperature`): the settings, accuracy and retrieval per setting, zero-shot accuracy against a
fixed τ beside the learnable settings, stability (divergence, roughness, under-fitting), the trajectories of the
learnable logit scale against the clip at 100 and Adam's bound, and the paired comparisons the verdict reads
(`repro.experiments.temperature_summary`). Accuracies carry 95% intervals inside [0, 1] over seeds
(`repro.stats.accuracy_interval`), differences paired intervals (`repro.stats.difference_interval`); the verdict
on the paper's claim is `repro.claims.learnable_temperature`. Every setting, suite and τ is read from the records,
so result files of every format the experiment has written work."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..experiments import temperature_summary as ts
from ..experiments.temperature import AT_CLIP, CLAMP
from ..models.naming import describe
from ..optim import logit_scale_reach, lr_lambda, lr_sum
from ..stats import accuracy_interval, difference_interval, interval_text

#: The paper's initial temperature (§2.5).
INIT_TAU = 0.07


def settings(records: Sequence[dict]) -> list[str]:
    """The settings as the result files recorded them (fixed τ first, then the learnable ones)."""
    return list(records[0]["config"]["settings"])


def fixed_settings(records: Sequence[dict]) -> list[str]:
    return [s for s, f in records[0]["config"]["settings"].items() if f.get("temperature") == "fixed"]


def learned_settings(records: Sequence[dict]) -> list[str]:
    fixed = set(fixed_settings(records))
    return [s for s in settings(records) if s not in fixed]


def tau_of(records: Sequence[dict], setting: str) -> float:
    """The fixed τ of a fixed setting (NaN for a learnable one)."""
    fields = records[0]["config"]["settings"][setting]
    return float(fields["fixed_temperature"]) if fields.get("temperature") == "fixed" else math.nan


def runs(records: Sequence[dict]) -> pd.DataFrame:
    """One row per (seed, setting): kind, tau, diverged, zero-shot top-1 per suite (columns named by suite),
    retrieval recall@1 on the validation split (i2t_r1, t2i_r1), final loss, loss roughness, final temperature and
    logit scale, the largest logged logit scale and the first logged step at the clip. NaN where a run diverged."""
    clip_steps = ts.summarize(records).drop_duplicates(["seed", "setting"]).set_index(["seed", "setting"])
    suites = records[0]["config"]["suites"]
    rows = []
    for r in records:
        for name, entry in r["metrics"]["settings"].items():
            row = {"seed": r["seed"], "setting": name, "kind": clip_steps.loc[(r["seed"], name), "kind"],
                   "tau": tau_of(records, name), "diverged": bool(entry["diverged"])}
            ok = not entry["diverged"]
            curve = r.get("curves", {}).get(name) or {}
            scales = curve.get("logit_scale") or []
            row |= {s: float(entry["zeroshot"][s]) if ok else math.nan for s in suites}
            row |= {k: float(entry["retrieval"][k]) if ok and k in entry.get("retrieval", {}) else math.nan
                    for k in ("i2t_r1", "t2i_r1")}
            row |= {k: float(entry[k]) if ok else math.nan
                    for k in ("final_loss", "loss_roughness", "final_temperature", "final_logit_scale")}
            row["max_logit_scale"] = float(entry.get("max_logit_scale", max(scales) if scales else math.nan)) \
                if ok else math.nan
            step = clip_steps.loc[(r["seed"], name), "reached_clip_step"]
            row["reached_clip_step"] = None if pd.isna(step) else int(step)
            rows.append(row)
    return pd.DataFrame(rows)


def _seeds(records: Sequence[dict]) -> str:
    return f"{len(records)} seed{'s' * (len(records) != 1)}"


def _acc(values) -> str:
    v = np.asarray(values, dtype=float)
    return interval_text(accuracy_interval(v[np.isfinite(v)])) if np.isfinite(v).any() else "diverged"


def _num(values, digits: int) -> str:
    v = np.asarray(values, dtype=float)
    return interval_text(difference_interval(v[np.isfinite(v)]), scale=1.0, digits=digits) \
        if np.isfinite(v).any() else "diverged"


def _positive(values, digits: int) -> str:
    """A positive quantity over seeds: geometric mean [95% interval of the mean log], so the interval stays > 0."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    if not len(v):
        return "diverged" if not np.isfinite(np.asarray(values, dtype=float)).any() else f"{0:.{digits}f}"
    logs = difference_interval(np.log(v))
    back = {k: math.exp(logs[k]) if math.isfinite(logs[k]) else math.nan for k in ("mean", "low", "high")}
    return interval_text(back, scale=1.0, digits=digits)


def _direction(stats: dict) -> str:
    """"higher" / "lower" where the paired 95% interval excludes 0, else "not distinguishable"."""
    if stats["n"] < 2 or not math.isfinite(stats["low"]):
        return "not tested (fewer than two seeds)"
    return "higher" if stats["low"] > 0 else "lower" if stats["high"] < 0 else "not distinguishable"


def setup_table(records: Sequence[dict]) -> pd.DataFrame:
    """The settings (their training-configuration fields) and the recipe every setting shares."""
    train = records[0]["config"]["train"]
    rows = [(name, ", ".join(f"{k}={v}" for k, v in fields.items()))
            for name, fields in records[0]["config"]["settings"].items()]
    rows.append(("all settings", f"{describe(train)}, {train['steps']:,} steps × batch {train['batch_size']}, "
                                 f"lr {train['lr']:g}, {train['warmup_steps']} warmup steps, {_seeds(records)}"))
    return pd.DataFrame(rows, columns=["setting", "training configuration"])


def accuracy_table(records: Sequence[dict]) -> pd.DataFrame:
    """One row per setting: zero-shot top-1 (%) per suite and validation retrieval R@1 (%), mean [95% interval]
    over the seeds that did not diverge, and how many seeds diverged."""
    frame = runs(records)
    suites = records[0]["config"]["suites"]
    rows = []
    for name, g in frame.groupby("setting", sort=False):
        rows.append({"setting": name, **{s: _acc(g[s]) for s in suites}, "val i→t R@1": _acc(g["i2t_r1"]),
                     "val t→i R@1": _acc(g["t2i_r1"]), "diverged": f"{int(g['diverged'].sum())}/{len(g)}"})
    return pd.DataFrame(rows)


def accuracy_means(records: Sequence[dict]) -> pd.DataFrame:
    """The unrounded means over seeds behind `accuracy_table` (a CSV for download)."""
    columns = [*records[0]["config"]["suites"], "i2t_r1", "t2i_r1"]
    return runs(records).groupby("setting", sort=False)[columns].mean().reset_index()


def panels(records: Sequence[dict], n: int = 3) -> list[str]:
    """The suites a figure shows: the selection suite, the scored one, then the others in recorded order."""
    suites = records[0]["config"]["suites"]
    first = [ts.default_select(records), ts.default_score(records)]
    return list(dict.fromkeys([*first, *suites]))[:n]


def accuracy_figure(records: Sequence[dict], suites: Sequence[str] | None = None):
    """Zero-shot top-1 against a fixed τ (log axis; error bars: 95% intervals over seeds), with each learnable
    setting as a horizontal line and band at its mean; one panel per suite (`panels`)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    frame = runs(records)
    suites = list(suites or panels(records))
    colours = sns.color_palette("colorblind")
    fixed, learned = fixed_settings(records), learned_settings(records)
    taus = [tau_of(records, s) for s in fixed]
    fig, axes = plt.subplots(1, len(suites), figsize=(4.4 * len(suites), 3.6), squeeze=False)
    for ax, suite in zip(axes.flat, suites, strict=True):
        stats = [accuracy_interval(frame.loc[frame["setting"] == s, suite].dropna()) for s in fixed]
        mean = np.array([100 * st["mean"] for st in stats])
        low = np.array([100 * st["low"] if math.isfinite(st["low"]) else 100 * st["mean"] for st in stats])
        high = np.array([100 * st["high"] if math.isfinite(st["high"]) else 100 * st["mean"] for st in stats])
        ax.errorbar(taus, mean, yerr=[mean - low, high - mean], marker="o", color=colours[0], capsize=3,
                    label="fixed τ")
        for i, s in enumerate(learned):
            st = accuracy_interval(frame.loc[frame["setting"] == s, suite].dropna())
            if st["n"]:
                ax.axhline(100 * st["mean"], color=colours[i + 1], ls="--" if i else "-", label=s)
                if math.isfinite(st["low"]):
                    ax.axhspan(100 * st["low"], 100 * st["high"], color=colours[i + 1], alpha=0.12)
        ax.set_xscale("log")
        ax.set_xlabel("fixed temperature τ")
        ax.set_ylabel("zero-shot top-1 (%)")
        ax.set_title(suite, fontsize=10)
        ax.grid(alpha=0.3)
        sns.despine(ax=ax)
    fig.legend(*axes.flat[0].get_legend_handles_labels(), loc="lower center", ncol=1 + len(learned), frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


def stability_table(records: Sequence[dict]) -> pd.DataFrame:
    """One row per setting: final training loss (mean [95% interval] over seeds), loss roughness
    (`temperature.roughness`; geometric mean [95% interval]), final τ and logit scale (learnable settings: mean
    [95% interval]; fixed: the value), seeds that under-fit (`temperature_summary.summarize`), and, for the learnable
    settings, the first logged step at the clip per seed that reached it."""
    frame = runs(records)
    per_run = ts.summarize(records).drop_duplicates(["seed", "setting"])
    under = per_run.groupby("setting", sort=False)["under_fit"].sum()
    rows = []
    for name, g in frame.groupby("setting", sort=False):
        fixed = g["kind"].iloc[0] == "fixed"
        steps = [int(v) for v in g["reached_clip_step"] if v is not None and not pd.isna(v)]
        clip = "—" if fixed else \
            (", ".join(f"{v:,}" for v in steps) + f" ({len(steps)}/{len(g)})" if steps else "never")
        rows.append({"setting": name, "final loss": _num(g["final_loss"], 3),
                     "roughness": _positive(g["loss_roughness"], 3),
                     "final τ": f"{g['tau'].iloc[0]:g} (fixed)" if fixed else _num(g["final_temperature"], 4),
                     "final logit scale": f"{1 / g['tau'].iloc[0]:.2f}" if fixed else
                     _num(g["final_logit_scale"], 2),
                     "under-fits": f"{int(under.get(name, 0))}/{len(g)}", "at the clip from step": clip})
    return pd.DataFrame(rows)


def adam_bound(records: Sequence[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Steps 0…steps and the largest logit scale Adam can have reached by each (from 1/0.07: log(scale) grows by
    at most the learning rate per step, `repro.optim.lr_sum`)."""
    train = records[0]["config"]["train"]
    f = lr_lambda(min(train["warmup_steps"], train["steps"]), train["steps"])
    rates = train["lr"] * np.array([f(t) for t in range(train["steps"])])
    return np.arange(train["steps"] + 1), np.exp(np.log(1 / INIT_TAU) + np.concatenate([[0.0], np.cumsum(rates)]))


def curves_figure(records: Sequence[dict]):
    """Left: the training loss of every setting (seed of the first record). Right: the logit scale 1/τ of the
    learnable settings over training, every seed, on a log axis, against the clip at 100, the initial 1/0.07 and
    the largest scale Adam's step bound allows at each step (`adam_bound`)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    names, learned = settings(records), learned_settings(records)
    colours = sns.color_palette("colorblind")
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.9))
    shades = plt.cm.viridis(np.linspace(0, 0.9, max(2, len(names))))
    for i, s in enumerate(names):
        c = records[0].get("curves", {}).get(s)
        if c and c.get("loss"):
            left.plot(c["step"], c["loss"], color=shades[i], label=s)
    left.set_xlabel("step")
    left.set_ylabel("training loss")
    left.legend(fontsize=7, ncol=2)
    left.grid(alpha=0.3)
    for i, s in enumerate(learned):
        for j, r in enumerate(records):
            c = r.get("curves", {}).get(s)
            if c and c.get("logit_scale"):
                right.plot(c["step"], c["logit_scale"], color=colours[i + 1], ls="--" if i else "-", alpha=0.8,
                           label=s if j == 0 else None)
    steps, bound = adam_bound(records)
    right.plot(steps, bound, color="0.5", lw=1, label="Adam's bound")
    right.axhline(1 / INIT_TAU, color="0.4", ls=":", label="initial 1/0.07")
    right.axhline(CLAMP, color=colours[3], ls="-.", label=f"clip at {CLAMP:g}")
    right.set_yscale("log")
    drawn = [v for line in right.get_lines() for v in line.get_ydata() if v > 0]
    low, high = min([1 / INIT_TAU, *drawn]) / 1.3, 1.3 * max([CLAMP, *drawn])
    right.set_ylim(low, high)
    right.set_yticks([t for t in (1, 2, 5, 10, 1 / INIT_TAU, 20, 50, 100, 200, 500) if low <= t <= high])
    right.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.3g}"))
    right.yaxis.set_minor_formatter(plt.NullFormatter())
    right.set_xlabel("step")
    right.set_ylabel("logit scale 1/τ")
    right.legend(fontsize=8)
    right.grid(alpha=0.3)
    sns.despine(fig)
    fig.tight_layout()
    return fig


def comparison_table(records: Sequence[dict]) -> pd.DataFrame:
    """Per suite other than the selection suite: the learnable τ minus the best fixed τ (chosen on the selection
    suite, `temperature_summary.learnable_vs_best_fixed`) and the unclamped minus the clamped learnable τ
    (`clamped_vs_unclamped`), in points, mean [95% interval] paired over seeds."""
    select = ts.default_select(records)
    best = ts.best_fixed(records, select)
    rows = []
    for suite in (s for s in records[0]["config"]["suites"] if s != select):
        learn = difference_interval(ts.learnable_vs_best_fixed(records, suite, select=select)["difference"])
        clamp = difference_interval(-ts.clamped_vs_unclamped(records, suite)["difference"])
        rows.append({"suite": suite, f"learnable − {best}": interval_text(learn, signed=True),
                     "unclamped − learnable": interval_text(clamp, signed=True)})
    return pd.DataFrame(rows)


def facts(records: Sequence[dict]) -> dict:
    """The numbers the chapter's prose cites: seeds, the selection and scored suites, the best and worst fixed τ
    on the selection suite and their paired difference, the learnable τ's final value and drift, the clamp's
    comparison (scored suite), Adam's budget (`lr_sum`, `logit_scale_reach`), the largest logged learnable logit
    scale, and the settings that diverged or under-fit."""
    frame = runs(records)
    train = records[0]["config"]["train"]
    select, score = ts.default_select(records), ts.default_score(records)
    fixed = fixed_settings(records)
    stable = [s for s in fixed if not frame.loc[frame["setting"] == s, "diverged"].any()]
    means = frame[frame["setting"].isin(stable)].groupby("setting")[select].mean()
    best, worst = ts.best_fixed(records, select), str(means.idxmin())
    on = frame.set_index(["setting", "seed"])[select]
    spread = difference_interval((on[best] - on[worst]).to_numpy(float))
    learnable = frame[frame["setting"] == "learnable"]
    finals = learnable["final_temperature"].dropna().to_numpy(float)
    moved = np.abs(np.log(finals / INIT_TAU))
    clamp = ts.clamped_vs_unclamped(records, score)
    unclamped = difference_interval(-clamp["difference"])
    budget = lr_sum(train["lr"], train["warmup_steps"], train["steps"])
    under = ts.summarize(records)
    n = len(records)
    return {
        "n_seeds": n, "seeds_text": _seeds(records), "select": select, "score": score,
        "best_fixed": best, "best_tau": tau_of(records, best),
        "worst_fixed": worst, "worst_tau": tau_of(records, worst),
        "best_text": _acc(frame.loc[frame["setting"] == best, select]),
        "worst_text": _acc(frame.loc[frame["setting"] == worst, select]),
        "spread": spread, "spread_direction": _direction(spread),
        "final_tau": _num(learnable["final_temperature"], 4),
        "moved": float(np.mean(moved)) if len(moved) else math.nan,
        "unclamped": unclamped, "unclamped_direction": _direction(unclamped),
        "clamp_identical": bool(clamp["identical"].all()), "clamp_acted": bool(clamp["clamp_acted"].any()),
        "max_logit_scale": float(frame.loc[frame["kind"] != "fixed", "max_logit_scale"].max()),
        "steps": int(train["steps"]), "lr": float(train["lr"]), "warmup": int(train["warmup_steps"]),
        "lr_sum": budget, "reach": logit_scale_reach(train["lr"], train["warmup_steps"], train["steps"]),
        "needed": math.log(CLAMP * INIT_TAU), "can_reach_clip": budget >= math.log(CLAMP * INIT_TAU),
        "at_clip": AT_CLIP,
        "diverged": [s for s in settings(records) if frame.loc[frame["setting"] == s, "diverged"].any()],
        "under_fit": [s for s in settings(records) if under.loc[under["setting"] == s, "under_fit"].any()],
    }


def findings(records: Sequence[dict]) -> dict[str, str]:
    """The verdict's sentences beside the claim (`repro.claims.learnable_temperature`): the spread between the best
    and worst fixed τ, what the clamp did, and which settings diverged or under-fit."""
    f = facts(records)
    spread = interval_text(f["spread"], signed=True)
    unclamped = interval_text(f["unclamped"], signed=True)
    if f["clamp_identical"]:
        clamp = (f"**The clamp:** the clamped and unclamped runs are identical in every seed — the logit scale never "
                 f"exceeded {f['max_logit_scale']:.2f}, so the clamp never acted.")
    elif not f["clamp_acted"]:
        clamp = (f"**The clamp** never acted (largest logit scale {f['max_logit_scale']:.2f}); unclamped minus "
                 f"clamped is {unclamped} points, run-to-run noise.")
    else:
        clamp = (f"**The clamp:** without it, accuracy on `{f['score']}` is {f['unclamped_direction']} (unclamped "
                 f"minus clamped {unclamped} points, paired over seeds).")
    return {
        "spread": f"On `{f['select']}` the best fixed τ = {f['best_tau']:g} reaches {f['best_text']}% and the worst, "
                  f"τ = {f['worst_tau']:g}, {f['worst_text']}%: a paired difference of {spread} points "
                  f"({f['spread_direction']}; picking the extremes after the fact inflates it).",
        "clamp": clamp,
        "diverged": f"Runs that diverged: {', '.join(f['diverged'])}." if f["diverged"] else "No run diverged.",
        "under_fit": f"Settings that under-fit in at least one seed: {', '.join(f['under_fit'])}." if f["under_fit"]
        else "No setting under-fits clearly.",
    }
