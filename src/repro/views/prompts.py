"""Tables and figures of the zero-shot chapter's prompt experiment (paper §3.1.4, Figure 4), from the `prompts`
result records (`repro.experiments.prompts`): one function per table or figure, each a few lines over the
experiment's `summarize`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..book import ci_text
from ..experiments import prompts as experiment
from ..stats import difference_interval, interval_text

#: How the book names the modes.
MODE_NAMES = {"classname": "class name", "single": "one template", "ensemble": "ensemble",
              "chosen": "chosen on val"}


def modes(records: Sequence[dict]) -> list[str]:
    """The modes present in every record (old results have no "chosen")."""
    frame = experiment.summarize(records)
    return [m for m in experiment.MODES if m in set(frame["mode"])]


def suite_table(records: Sequence[dict]) -> pd.DataFrame:
    """Top-1 (%) per suite and mode, mean [95% interval] over seeds, with classes and chance; validation suites
    (where the templates were chosen) are marked."""
    frame = experiment.summarize(records)
    rows = []
    for suite, group in frame.groupby("suite", sort=False):
        first = group.iloc[0]
        row = {"suite": suite + (" (selection)" if first["selected_on"] else ""), "kind": first["shift"],
               "classes": int(first["n_classes"])}
        for mode, g in group.groupby("mode", sort=False):
            row[MODE_NAMES[mode]] = ci_text(g["top1"])
        row["chance"] = f"{100 / first['n_classes']:.2g}"
        rows.append(row)
    return pd.DataFrame(rows)


def gains(records: Sequence[dict], over: str = "classname") -> pd.DataFrame:
    """Per suite and mode: the top-1 gain over `over` (points), mean and 95% interval over seeds (paired)."""
    frame = experiment.summarize(records)
    wide = frame.pivot_table(index=["suite", "seed"], columns="mode", values="top1", sort=False)
    rows = []
    for suite, g in wide.groupby(level="suite", sort=False):
        for mode in (m for m in experiment.MODES if m != over and m in g and g[m].notna().all()):
            stats = difference_interval(g[mode] - g[over])
            rows.append({"suite": suite, "mode": MODE_NAMES[mode], "gain": 100 * stats["mean"],
                         "low": 100 * stats["low"], "high": 100 * stats["high"], "n": stats["n"]})
    return pd.DataFrame(rows)


def gain_figure(records: Sequence[dict]):
    """Figure 4 in miniature: per suite, the gain of each prompt mode over the bare class name, with 95% intervals
    over seeds (paired)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    table = gains(records)
    suites = list(dict.fromkeys(table["suite"]))
    hue = list(dict.fromkeys(table["mode"]))
    fig, ax = plt.subplots(figsize=(9, 0.5 * len(suites) + 1.2))
    sns.barplot(table, y="suite", x="gain", hue="mode", hue_order=hue, order=suites, errorbar=None, ax=ax,
                palette="colorblind")
    offsets = np.linspace(-0.4, 0.4, 2 * len(hue) + 1)[1::2]
    for k, mode in enumerate(hue):
        part = table[table["mode"] == mode].set_index("suite").reindex(suites)
        y = np.arange(len(suites)) + offsets[k]
        ok = part["low"].notna().to_numpy()
        ax.errorbar(part["gain"][ok], y[ok], xerr=[(part["gain"] - part["low"])[ok], (part["high"] - part["gain"])[ok]],
                    fmt="none", ecolor="black", elinewidth=0.8, capsize=2)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("top-1 gain over the class name alone (percentage points)")
    ax.set_ylabel("")
    ax.legend(fontsize=9, loc="lower right")
    fig.tight_layout()
    return fig


def selection_table(records: Sequence[dict]) -> pd.DataFrame:
    """The templates chosen on each family's validation suite, per seed, with the validation top-1 after each
    addition."""
    rows = []
    for record in records:
        for family, chosen in record["metrics"].get("selection", {}).items():
            rows.append({"seed": record["seed"], "family": family, "chosen on": chosen["suite"],
                         "templates (in order added)": " · ".join(f"`{t}`" for t in chosen["templates"]),
                         "val top-1 (%)": " → ".join(f"{100 * v:.1f}" for v in chosen["val_top1"])})
    return pd.DataFrame(rows)


def paired_table(records: Sequence[dict], suites: Sequence[str], mode: str = "chosen",
                 over: str = "classname") -> pd.DataFrame:
    """Image by image on the same pictures (`experiment.paired_tests`): per suite, the mean gain over seeds and, for
    each seed, whether McNemar's test finds the two prompt modes different (p < 0.05) and in which direction."""
    if not suites:
        return pd.DataFrame()
    tests = experiment.paired_tests(records, mode, suites, over)
    rows = []
    for suite, g in tests.groupby("suite", sort=False):
        better = int(((g["p_mcnemar"] < 0.05) & (g["diff"] > 0)).sum())
        worse = int(((g["p_mcnemar"] < 0.05) & (g["diff"] < 0)).sum())
        rows.append({"suite": suite, "images": int(g["n"].iloc[0]),
                     "gain (points)": interval_text(difference_interval(g["diff"]), signed=True),
                     "seeds: better / worse / no difference (McNemar, p < 0.05)":
                     f"{better} / {worse} / {len(g) - better - worse}"})
    return pd.DataFrame(rows)


def template_table(records: Sequence[dict]) -> pd.DataFrame:
    """Each template alone: its top-1 gain over the class name, averaged over the suites that use it (mean and 95%
    interval over seeds), sorted by gain."""
    per: dict[str, list[np.ndarray]] = {}
    for suite, m in experiment.suite_metrics(records[0]).items():
        base = np.array([experiment.suite_metrics(r)[suite]["classname"]["top1"] for r in records])
        for t in m["templates"]:
            acc = np.array([experiment.suite_metrics(r)[suite]["ensemble"]["per_template"][t] for r in records])
            per.setdefault(t, []).append(acc - base)
    rows = []
    for t, g in per.items():
        stats = difference_interval(np.mean(g, axis=0))
        rows.append({"template": f"`{t}`", "suites": len(g), "gain over class name (points)":
                     interval_text(stats, signed=True), "_sort": stats["mean"]})
    return pd.DataFrame(rows).sort_values("_sort", ascending=False).drop(columns="_sort")


def in_short(records: Sequence[dict], claim, zero, model: str) -> str:
    """The chapter's opening summary from the zero-shot and prompt claims (`repro.claims`)."""
    return (f"**In short.** Our CLIP ({model}) classifies emoji it never saw by their names alone at {zero.ours} on "
            f"the headline test (*{zero.verdict.text}*). Prompts chosen on validation data change its accuracy on "
            f"the zero-shot suites by {claim.ours} over the bare class name, against the paper's +~5 points "
            f"({{numref}}`fig-prompts-gain`): *{claim.verdict.text}*. All numbers are from {len(records)} seed(s) of "
            "a model millions of times smaller than the paper's, trained on drawings; the paper's absolute "
            "accuracies are not comparable, its effects are.")
