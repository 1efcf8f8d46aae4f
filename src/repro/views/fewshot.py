"""Tables and figures of the few-shot chapter (paper §3.2, Figures 5–7), from the `fewshot` result records
(`repro.experiments.fewshot`): the tasks, zero-shot against the full and k-shot linear probes on the same CLIP
features, the k-shot curves (Figure 6), the labelled examples per class that zero-shot is worth (Figure 7), and the
facts the chapter's prose cites. Accuracies carry 95% intervals inside [0, 1] over seeds
(`repro.stats.accuracy_interval`), differences paired intervals (`repro.stats.difference_interval`); the verdict on
the paper's claim is `repro.claims.few_shot_equivalence`."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..book import ci_text
from ..experiments.fewshot import shots_to_match
from ..stats import accuracy_interval, difference_interval, interval_text

#: The paper's median of the shots a probe on CLIP's features needs to match zero-shot (Figure 7, 27 datasets).
PAPER_MEDIAN = 5.4
#: The pool of an emoji label family (the pictures CLIP was trained on); every other task splits its own suite.
TRAIN_POOL = "train split"


def shots(records: Sequence[dict]) -> list[int]:
    """The k of the k-shot probes (labelled examples per class), as configured."""
    return [int(k) for k in records[0]["config"]["shots"]]


def pairs(records: Sequence[dict]) -> list[tuple[str, str]]:
    """Every (task, test set) pair, in the order of the result file."""
    return [(task, test) for task, entry in records[0]["metrics"].items() for test in entry["tests"]]


def pair_label(task: str, test: str) -> str:
    return f"{task} · {test}"


def is_family(records: Sequence[dict], task: str) -> bool:
    """Whether `task` is an emoji label family, whose probes are trained on CLIP's own training pictures."""
    return records[0]["metrics"][task]["pool"] == TRAIN_POOL


def scores(records: Sequence[dict]) -> pd.DataFrame:
    """Tidy numbers, one row per seed and (task, test set): zero-shot, full-probe and k-shot top-1 (`shots_<k>`:
    the mean over the draws), the classes, test images and the recorded shots to match zero-shot."""
    rows = []
    for record in records:
        for task, test in pairs(records):
            entry = record["metrics"][task]
            run = entry["tests"][test]
            rows.append({"seed": record["seed"], "task": task, "test set": test, "n_classes": entry["n_classes"],
                         "n_test": run["n"], "zero_shot": run["zero_shot"], "linear_probe": run["linear_probe"],
                         **{f"shots_{k}": run["few_shot"][str(k)] for k in shots(records)},
                         "shots_to_match": run["shots_to_match"]})
    return pd.DataFrame(rows)


def _values(records: Sequence[dict], task: str, test: str, key: str) -> np.ndarray:
    """One recorded accuracy of a (task, test set) per seed: "zero_shot" or "linear_probe"."""
    return np.array([r["metrics"][task]["tests"][test][key] for r in records], dtype=float)


def _values_raw(records: Sequence[dict], task: str, test: str) -> list[float | str]:
    """The recorded shots to match zero-shot, per seed."""
    return [r["metrics"][task]["tests"][test]["shots_to_match"] for r in records]


def curve(records: Sequence[dict], task: str, test: str) -> np.ndarray:
    """k-shot top-1 per seed (rows) and k (columns), each the mean over the draws."""
    return np.array([[r["metrics"][task]["tests"][test]["few_shot"][str(k)] for k in shots(records)]
                     for r in records], dtype=float)


def setting(records: Sequence[dict]) -> dict:
    """The experiment's sizes (pool and test caps, draws, folds, L-BFGS iterations), its tasks by kind and its
    seeds, for the chapter's prose."""
    config = records[0]["config"]
    n = len(records)
    tasks = list(records[0]["metrics"])
    return {key: config[key] for key in ("per_class", "min_per_class", "test_per_class", "draws", "max_folds",
                                         "max_iter")} | {
        "shots": shots(records), "seeds": n, "seeds_text": f"{n} seed{'s' * (n != 1)}",
        "families": [t for t in tasks if is_family(records, t)],
        "photos": [t for t in tasks if not is_family(records, t)]}


def tasks_table(records: Sequence[dict]) -> pd.DataFrame:
    """One row per (task, test set): where the probes' labelled pictures come from and what they are tested on
    (sizes of the first seed; they are the same for every seed)."""
    rows = []
    for task, test in pairs(records):
        entry = records[0]["metrics"][task]
        run = entry["tests"][test]
        rows.append({"task": task, "label": entry["label"], "probe training pool": entry["pool"],
                     "classes": entry["n_classes"], "pool images": entry["n_pool"],
                     "dropped classes": len(entry["classes_dropped"]), "test set": test,
                     "test suites": ", ".join(run["suites"]), "test images": run["n"]})
    return pd.DataFrame(rows)


def accuracy_table(records: Sequence[dict]) -> pd.DataFrame:
    """Top-1 (%) of zero-shot, the full probe and every k-shot probe per (task, test set): mean [95% interval]
    over seeds (k-shot: each seed's mean over its draws)."""
    rows = []
    for task, test in pairs(records):
        row = {"task": task, "test set": test, "zero-shot": ci_text(_values(records, task, test, "zero_shot")),
               "full probe": ci_text(_values(records, task, test, "linear_probe"))}
        c = curve(records, task, test)
        row.update({f"{k}-shot": ci_text(c[:, j]) for j, k in enumerate(shots(records))})
        rows.append(row)
    return pd.DataFrame(rows)


def versus_probe_table(records: Sequence[dict]) -> pd.DataFrame:
    """Zero-shot against the full linear probe on the same features: top-1 (%) of each, with 95% intervals, and
    their difference in points (paired over seeds)."""
    rows = []
    for task, test in pairs(records):
        zero, full = _values(records, task, test, "zero_shot"), _values(records, task, test, "linear_probe")
        rows.append({"task": task, "test set": test, "zero-shot": ci_text(zero), "full probe": ci_text(full),
                     "zero-shot − probe (points)": interval_text(difference_interval(zero - full), signed=True)})
    return pd.DataFrame(rows)


def match_value(records: Sequence[dict], task: str, test: str) -> float | str:
    """Shots to match zero-shot on the seed-averaged k-shot curve (Figure 7's estimate, `shots_to_match`)."""
    return shots_to_match(shots(records), curve(records, task, test).mean(axis=0),
                          float(_values(records, task, test, "zero_shot").mean()))


def match_order(records: Sequence[dict], value: float | str) -> float:
    """A number for a shots-to-match value: "< 1" as half the smallest k, "> 16" as twice the largest (as
    `repro.claims.few_shot_equivalence` counts them)."""
    ks = shots(records)
    if isinstance(value, str):
        return ks[0] / 2 if value.startswith("<") else ks[-1] * 2
    return float(value)


def match_text(value: float | str) -> str:
    return value if isinstance(value, str) else f"{value:.1f}"


def _median_text(records: Sequence[dict], values: Sequence[float | str]) -> str:
    if not values:
        return "—"
    ks = shots(records)
    median = float(np.median([match_order(records, v) for v in values]))
    return f"below {ks[0]}" if median < ks[0] else f"above {ks[-1]}" if median > ks[-1] else f"{median:.1f}"


def match_table(records: Sequence[dict]) -> pd.DataFrame:
    """Labelled examples per class a k-shot probe needs to match zero-shot, per (task, test set): on the
    seed-averaged curve and for each seed (as recorded)."""
    rows = []
    for task, test in pairs(records):
        seeds = _values_raw(records, task, test)
        rows.append({"task": task, "test set": test,
                     "zero-shot (%)": ci_text(_values(records, task, test, "zero_shot")),
                     "shots to match (seed-mean curve)": match_text(match_value(records, task, test)),
                     "per seed": ", ".join(match_text(v) for v in seeds)})
    return pd.DataFrame(rows)


def summary(records: Sequence[dict]) -> dict:
    """What the verdict says: the median shots to match over all pairs and by kind of task (text: "4.2", "below 1",
    "above 16", "—" for none), the pairs matched inside the range of k (with their value), below it (a 1-shot probe
    already wins) and above it, the pairs where zero-shot beats the full probe, and per photo-suite pair its
    zero-shot, chance and 1-shot top-1."""
    values = {pair: match_value(records, *pair) for pair in pairs(records)}
    family = [p for p in values if is_family(records, p[0])]
    photo_rows = []
    for task, test in (p for p in values if p not in family):
        photo_rows.append({"pair": pair_label(task, test), "zero_shot": float(_values(records, task, test,
                                                                                     "zero_shot").mean()),
                           "chance": 1 / records[0]["metrics"][task]["n_classes"],
                           "one_shot": float(curve(records, task, test).mean(axis=0)[0])})
    return {
        "pairs": len(values),
        "median": _median_text(records, list(values.values())),
        "median_family": _median_text(records, [values[p] for p in family]),
        "median_photos": _median_text(records, [v for p, v in values.items() if p not in family]),
        "inside": [f"{pair_label(*p)} ({v:.1f})" for p, v in values.items() if not isinstance(v, str)],
        "under": [pair_label(*p) for p, v in values.items() if isinstance(v, str) and v.startswith("<")],
        "over": [pair_label(*p) for p, v in values.items() if isinstance(v, str) and v.startswith(">")],
        "photo_under": [p for p in values if p not in family and isinstance(values[p], str)
                        and values[p].startswith("<")],
        "n_photo": len(values) - len(family),
        "beaten": [pair_label(*p) for p in values
                   if _values(records, *p, "zero_shot").mean() > _values(records, *p, "linear_probe").mean()],
        "photo_rows": photo_rows,
    }


def curves_figure(records: Sequence[dict]):
    """Figure 6 in miniature, one panel per (task, test set): k-shot top-1 against k (log scale) with its 95%
    band over seeds, zero-shot (horizontal line and band) and the full probe (dashed)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    ks, todo = shots(records), pairs(records)
    colours = sns.color_palette("colorblind")
    cols = min(3, len(todo))
    rows = math.ceil(len(todo) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows + 0.5), squeeze=False)
    for ax, (task, test) in zip(axes.flat, todo, strict=False):
        bands = [accuracy_interval(col) for col in curve(records, task, test).T]
        ax.plot(ks, [100 * b["mean"] for b in bands], marker="o", color=colours[0], label="k-shot probe")
        if all(math.isfinite(b["low"]) for b in bands):
            ax.fill_between(ks, [100 * b["low"] for b in bands], [100 * b["high"] for b in bands],
                            color=colours[0], alpha=0.2)
        zero = accuracy_interval(_values(records, task, test, "zero_shot"))
        ax.axhline(100 * zero["mean"], color=colours[3], label="zero-shot")
        if math.isfinite(zero["low"]):
            ax.axhspan(100 * zero["low"], 100 * zero["high"], color=colours[3], alpha=0.15)
        ax.axhline(100 * _values(records, task, test, "linear_probe").mean(), color="0.3", linestyle="--",
                   label="full probe")
        ax.set_xscale("log", base=2)
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set(title=f"{task}\n{test}", ylabel="top-1 accuracy (%)", xlabel="labelled examples per class (k)")
        ax.title.set_fontsize(10)
        ax.grid(alpha=0.3)
        sns.despine(ax=ax)
    for ax in axes.flat[len(todo):]:
        ax.axis("off")
    fig.legend(*axes.flat[0].get_legend_handles_labels(), loc="lower center", ncol=3, frameon=False)
    fig.tight_layout(rect=(0, 0.5 / (3.4 * rows + 0.5), 1, 1))
    return fig


def match_figure(records: Sequence[dict]):
    """Figure 7 in miniature: per (task, test set), sorted, the shots a k-shot probe needs to match zero-shot on
    the seed-averaged curve (bars; grey: outside the measured k, drawn at the edge), each seed's value (dots) and
    the paper's median (dotted)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    ks, todo = shots(records), pairs(records)
    colours = sns.color_palette("colorblind")
    low, high = ks[0] / 2, ks[-1] * 2
    order = sorted(todo, key=lambda p: match_order(records, match_value(records, *p)))
    fig, ax = plt.subplots(figsize=(7.5, 0.55 * len(todo) + 1.2))
    for y, (task, test) in enumerate(order):
        value = match_value(records, task, test)
        shown = min(max(match_order(records, value), low), high)
        ax.barh(y, shown, color="0.7" if isinstance(value, str) else colours[0])
        ax.text(shown * 1.08, y, match_text(value), va="center", fontsize=9)
        seeds = [min(max(match_order(records, v), low), high) for v in _values_raw(records, task, test)]
        ax.plot(seeds, [y] * len(seeds), "o", color=colours[3], markersize=4,
                label="single seeds" if y == 0 else None)
    ax.axvline(PAPER_MEDIAN, color="0.3", linestyle=":", label=f"paper's median ({PAPER_MEDIAN})")
    ax.set_xscale("log", base=2)
    ax.set_xlim(low / 1.2, high * 2.5)
    ax.set_xticks([low, *ks, high], [f"< {ks[0]}", *map(str, ks), f"> {ks[-1]}"])
    ax.set_yticks(range(len(order)), [pair_label(*p) for p in order])
    ax.set_xlabel("labelled examples per class to match zero-shot")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    sns.despine(ax=ax)
    fig.tight_layout()
    return fig
