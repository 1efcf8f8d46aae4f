"""Tables, figures and sentences of the adaptation chapter (paper §3.3, Figure 14), from the `adaptation` result
records (`repro.experiments.adaptation`): zero-shot, linear probe, LoRA and full fine-tuning on all labelled
pictures, and the few-shot axis (probe, CoOp, CLIP-Adapter at k pictures per class, `adaptation_fewshot`).

Accuracies get intervals inside [0, 1] over seeds (`accuracy_interval`; one seed: the Wilson interval of the images
scored); gains and drops are paired over seeds (`difference_interval`). Result files written before the few-shot
axis lack `few_shot`: the few-shot functions then return an empty frame or a figure that says so (`NO_FEW`)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..stats import accuracy_interval, difference_interval, interval_text

#: How the book names the methods, and their colours (the same in every figure).
NAMES = {"zeroshot": "zero-shot", "linear_probe": "linear probe", "lora": "LoRA", "full_ft": "full fine-tuning",
         "coop": "CoOp", "clip_adapter": "CLIP-Adapter"}
COLOURS = {"zeroshot": "C3", "linear_probe": "C0", "lora": "C2", "full_ft": "C1", "coop": "C4", "clip_adapter": "C5"}
#: What the chapter says where the few-shot parts would be, for result files without them.
NO_FEW = ("These result files were written before the experiment had its few-shot axis, so they hold no CoOp, "
          "CLIP-Adapter or k-shot probe numbers; `repro run adaptation --profile cpu` writes them.")
HELD = "held-out style"
#: The summary keys of every method's entry that are accuracies (besides the splits' own top-1).
SUMMARY = ("in_distribution", "held_out_styles", "zero_shot_concepts")
PANELS = ("in_distribution", "held_out_styles")


def setting(records: Sequence[dict]) -> dict:
    """What the records share: the task, its splits (`held`: the held-out styles), chance, the methods (`adapted`:
    all but zero-shot), the few-shot methods and shots (empty without the axis), seeds and the run's config."""
    first = records[0]["metrics"]
    task = first["task"]
    few = all("few_shot" in r["metrics"] for r in records)
    return {"task": task, "splits": list(task["splits"]), "in_distribution": task["in_distribution"],
            "held": [s for s, v in task["splits"].items() if v["shift"] == HELD], "n_classes": task["n_classes"],
            "chance": 1 / task["n_classes"], "methods": list(first["methods"]), "adapted": list(first["methods"])[1:],
            "few_shot": few, "few_methods": list(first["few_shot"]["methods"]) if few else [],
            "shots": [int(k) for k in first["few_shot"]["shots"]] if few else [], "seeds": [r["seed"] for r in records],
            "config": records[0]["config"]}


def _entry(record: dict, method: str, k: int | None) -> dict:
    m = record["metrics"]
    return m["methods"][method] if k is None else m["few_shot"]["methods"][method][str(k)]


def values(records: Sequence[dict], method: str, key: str, k: int | None = None) -> np.ndarray:
    """One number per seed of a method (at k shots per class when `k` is given): a split's top-1, or a key of its
    entry ("in_distribution", "held_out_styles", "drop", "wall_time_s", …); NaN where the entry lacks it."""
    out = []
    for r in records:
        entry = _entry(r, method, k)
        out.append(entry["top1"][key] if key in entry["top1"] else entry.get(key, math.nan))
    return np.asarray(out, dtype=float)


def _n_items(task: dict, key: str) -> int | None:
    """The images behind an accuracy key (for the single-seed Wilson interval)."""
    splits = task["splits"]
    if key in splits:
        return splits[key]["n"]
    shift = {"in_distribution": "in-distribution", "held_out_styles": HELD,
             "zero_shot_concepts": "zero-shot concepts"}.get(key)
    n = sum(v["n"] for v in splits.values() if v["shift"] == shift)
    return n or None


def accuracy(records: Sequence[dict], method: str, key: str, k: int | None = None) -> dict:
    """Mean accuracy over seeds with its 95% interval inside [0, 1] (`accuracy_interval`)."""
    x = values(records, method, key, k)
    if not np.isfinite(x).all():
        return {"mean": math.nan, "low": math.nan, "high": math.nan, "n": 0}
    n_items = _n_items(records[0]["metrics"]["task"], key) if len(x) == 1 else None
    return accuracy_interval(x, n_items)


def gain(records: Sequence[dict], method: str, key: str, k: int | None = None, over: str = "zeroshot") -> dict:
    """`key` of `method` (at k shots) minus `key` of `over` (all data), paired over seeds (`difference_interval`)."""
    return difference_interval(values(records, method, key, k) - values(records, over, key))


def sign(stats: dict) -> int:
    """+1 / −1 when an effect's 95% interval excludes 0 above / below, else 0 (also for one seed: no interval)."""
    low, high = stats.get("low", math.nan), stats.get("high", math.nan)
    return 1 if low > 0 else -1 if high < 0 else 0  # comparisons with NaN are False


def join(names: Sequence[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    names = list(names)
    return " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


def _text(stats: dict, signed: bool = False) -> str:
    return "—" if not math.isfinite(stats["mean"]) else interval_text(stats, signed=signed)


def params(records: Sequence[dict], method: str, k: int | None = None) -> int:
    """Trainable parameters of a method (seed 0's; they are the same in every seed)."""
    return int(_entry(records[0], method, k)["trainable_params"])


def _cells(s: dict) -> list[tuple[str, int | None]]:
    """(method, k) of every entry: the all-data methods (k None), then each few-shot method at each k."""
    return [(m, None) for m in s["methods"]] + [(m, k) for m in s["few_methods"] for k in s["shots"]]


def summary(records: Sequence[dict]) -> pd.DataFrame:
    """Every method (k = 0 for zero-shot, NaN for all labelled pictures, else the shots) and measure: accuracies
    (each split, in-distribution, held-out styles, unseen concepts) with `accuracy` intervals, the drop and the
    gains over zero-shot with paired ones; columns method, k, measure, mean, low, high, n, trainable_params."""
    s = setting(records)
    rows = []
    for method, k in _cells(s):
        base = {"method": method, "k": 0 if method == "zeroshot" else (math.nan if k is None else k),
                "trainable_params": params(records, method, k)}
        measures = {key: accuracy(records, method, key, k) for key in (*s["splits"], *SUMMARY)}
        measures["drop"] = difference_interval(values(records, method, "drop", k))
        if method != "zeroshot":
            measures |= {f"gain {key}": gain(records, method, key, k) for key in (*SUMMARY, "drop")}
        rows += [base | {"measure": name} | {c: st[c] for c in ("mean", "low", "high", "n")}
                 for name, st in measures.items()]
    return pd.DataFrame(rows)


def task_table(records: Sequence[dict]) -> pd.DataFrame:
    """The task's splits: what distribution each is, its images; and the labelled training images."""
    task = records[0]["metrics"]["task"]
    rows = [{"split": s, "distribution": v["shift"], "images": v["n"]} for s, v in task["splits"].items()]
    return pd.DataFrame(rows + [{"split": "train (labelled)", "images": task["n_train"],
                                 "distribution": "training styles (CLIP's own pre-training pictures)"}])


def settings_table(records: Sequence[dict]) -> pd.DataFrame:
    """LoRA's and full fine-tuning's settings: trainable parameters, seed 0's learning rate, weight decay, steps ×
    batch, warmup and what is trained."""
    config, lora = records[0]["config"], records[0]["metrics"]["methods"]["lora"]
    towers = lora.get("towers", ["image", "text"])
    what = {"lora": f"rank {lora['rank']}, α = {lora['alpha']:g} on {lora['adapted_weights']} weights "
                    f"({join(towers)} tower{'s' * (len(towers) > 1)}), + the temperature",
            "full_ft": "every parameter of both encoders and the temperature"}
    return pd.DataFrame([{"method": NAMES[m], "trainable parameters": f"{params(records, m):,}",
                          "learning rate": f"{_entry(records[0], m, None)['lr']:g}",
                          "weight decay": f"{_entry(records[0], m, None)['weight_decay']:g}",
                          "steps × batch": f"{config['steps']} × {config['batch_size']}",
                          "warmup steps": config["warmup_steps"], "what is trained": what[m]} for m in what])


def lr_table(records: Sequence[dict]) -> pd.DataFrame:
    """Per fine-tuning method and seed: held-out training accuracy (%) after the short selection run at each rate of
    the grid, and the rate chosen."""
    rows = []
    for method in ("lora", "full_ft"):
        for r in records:
            entry = r["metrics"]["methods"][method]
            rows.append({"method": NAMES[method], "seed": r["seed"], "chosen": f"{entry['lr']:g}"}
                        | {f"lr {k}": f"{100 * v:.1f}" for k, v in entry.get("lr_selection", {}).items()})
    frame = pd.DataFrame(rows).fillna("—")
    rates = sorted((c for c in frame.columns if c.startswith("lr ")), key=lambda c: float(c[3:]))
    return frame[["method", "seed", *rates, "chosen"]]


def splits_table(records: Sequence[dict]) -> pd.DataFrame:
    """Top-1 (%) of every all-data method on every split, mean [95% interval] over seeds."""
    s = setting(records)
    return pd.DataFrame([{"method": NAMES[m], "trainable parameters": f"{params(records, m):,}"}
                         | {f"{sp} ({s['task']['splits'][sp]['shift']})": _text(accuracy(records, m, sp))
                            for sp in s["splits"]} for m in s["methods"]])


def _row(records: Sequence[dict], m: str, k: int | None = None) -> dict:
    return {"in-distribution": _text(accuracy(records, m, "in_distribution", k)),
            "held-out styles": _text(accuracy(records, m, "held_out_styles", k)),
            "drop (points)": _text(difference_interval(values(records, m, "drop", k)), True)}


def robustness_table(records: Sequence[dict]) -> pd.DataFrame:
    """Per all-data method: in-distribution, held-out-style and unseen-concept top-1 (%), the drop from
    in-distribution to the held-out styles, and the gains over zero-shot (points, paired over seeds)."""
    rows = []
    for m in setting(records)["methods"]:
        gains = {label: "—" if m == "zeroshot" else _text(gain(records, m, key), signed=True)
                 for key, label in (("in_distribution", "gain in-dist."), ("held_out_styles", "gain held-out"),
                                    ("zero_shot_concepts", "gain unseen concepts"))}
        rows.append({"method": NAMES[m]} | _row(records, m)
                    | {"unseen concepts": _text(accuracy(records, m, "zero_shot_concepts"))} | gains)
    return pd.DataFrame(rows)


def verdict_table(records: Sequence[dict]) -> pd.DataFrame:
    """Each adaptation against zero-shot, paired over seeds: does it raise or lower in-distribution and held-out
    accuracy, is its drop under the shift larger, and so does it show Figure 14's pattern."""
    moves = {1: "raises", -1: "lowers", 0: "does not clearly change"}
    sizes = {1: "larger", -1: "smaller", 0: "not clearly different"}
    rows = []
    for m in setting(records)["adapted"]:
        d_in, d_held, d_drop = (gain(records, m, key) for key in ("in_distribution", "held_out_styles", "drop"))
        rows.append({"method": NAMES[m], "trainable parameters": f"{params(records, m):,}",
                     "in-distribution accuracy": f"{moves[sign(d_in)]} it ({_text(d_in, True)})",
                     "held-out-style accuracy": f"{moves[sign(d_held)]} it ({_text(d_held, True)})",
                     "drop under the shift": f"{sizes[sign(d_drop)]} than zero-shot's ({_text(d_drop, True)})",
                     "Figure 14's pattern": "yes" if sign(d_in) > 0 and sign(d_drop) > 0 else "no"})
    return pd.DataFrame(rows)


def _chosen(method: str, entry: dict) -> str:
    if method == "linear_probe":
        return f"C = {entry['C']:.3g}"
    if method == "coop":
        return f"M = {entry['n_ctx']}, lr {entry['lr']:g}"
    return f"α = {entry['alpha']:g}, r = {entry['reduction']}, lr {entry['lr']:g}"


def fewshot_table(records: Sequence[dict]) -> pd.DataFrame:
    """The few-shot methods at each k (zero-shot as k = 0): trainable parameters, in-distribution and held-out top-1
    (%), the drop (points), seed 0's chosen hyper-parameters and the wall time per seed; empty without the axis."""
    s = setting(records)
    if not s["few_shot"]:
        return pd.DataFrame()
    rows = [{"method": NAMES["zeroshot"], "k": 0, "trainable parameters": "0"} | _row(records, "zeroshot")
            | {"chosen (seed 0)": "—", "wall time (s)": "—"}]
    rows += [{"method": NAMES[m], "k": k, "trainable parameters": f"{params(records, m, k):,}"} | _row(records, m, k)
             | {"chosen (seed 0)": _chosen(m, _entry(records[0], m, k)),
                "wall time (s)": f"{values(records, m, 'wall_time_s', k).mean():.1f}"}
             for m, k in _cells(s) if k is not None]
    return pd.DataFrame(rows)


def classes_short(records: Sequence[dict]) -> dict[int, int]:
    """Seed 0's classes with fewer than k pictures outside the selection set, for the k where there are any."""
    few = records[0]["metrics"].get("few_shot", {})
    return {int(k): n for k, n in few.get("classes_short", {}).items() if n}


def _bar(stats: Sequence[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Means (%) and asymmetric error bars (%) of intervals; no bar where there is no interval."""
    mean = np.array([100 * st["mean"] for st in stats])
    return mean, np.nan_to_num([mean - [100 * st["low"] for st in stats], [100 * st["high"] for st in stats] - mean])


def _panels(records: Sequence[dict], zero_label: str):
    """Two panels (in distribution, held-out styles) with zero-shot (line and band) and chance drawn."""
    import matplotlib.pyplot as plt

    s = setting(records)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, key in zip(axes, PANELS, strict=True):
        z = accuracy(records, "zeroshot", key)
        ax.axhline(100 * z["mean"], color=COLOURS["zeroshot"], label=zero_label)
        if math.isfinite(z["low"]):
            ax.axhspan(100 * z["low"], 100 * z["high"], color=COLOURS["zeroshot"], alpha=0.15)
        ax.axhline(100 * s["chance"], color="0.5", linestyle=":", label="chance")
        ax.set_title(f"in-distribution ({s['in_distribution']})" if key == "in_distribution" else
                     f"held-out styles (mean of {len(s['held'])})")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("top-1 accuracy (%)")
    return s, fig, axes


def _legend_below(fig, ax, ncol: int = 4) -> None:
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=ncol, frameon=False, fontsize=9)
    fig.tight_layout(rect=(0, 0.06 * (len(labels) // ncol + 1), 1, 1))


def params_figure(records: Sequence[dict]):
    """Top-1 (%) against trainable parameters (log), in distribution and over the held-out styles: every all-data
    method with its 95% interval (filled), the few-shot methods at the largest k (open), zero-shot as a line."""
    s, fig, axes = _panels(records, "zero-shot (0 parameters)")
    points = [(m, None) for m in s["adapted"]] + [(m, s["shots"][-1]) for m in s["few_methods"]]
    xs = [params(records, m, k) for m, k in points]
    for ax, key in zip(axes, PANELS, strict=True):
        for (m, k), x in zip(points, xs, strict=True):
            mean, err = _bar([accuracy(records, m, key, k)])
            ax.errorbar([x], mean, yerr=err, fmt="o", markersize=8, capsize=4, color=COLOURS[m],
                        label=NAMES[m] + ("" if k is None else f", k = {k}"),
                        markerfacecolor=COLOURS[m] if k is None else "white")
            if k is None:
                ax.annotate(f"{x:,}", (x, mean[0]), textcoords="offset points", xytext=(8, -14), fontsize=9)
        ax.set(xscale="log", xlim=(min(xs) / 2, max(xs) * 5), xlabel="trainable parameters")
    axes[0].set_ylim(bottom=0)
    _legend_below(fig, axes[0])
    return fig


def shift_figure(records: Sequence[dict]):
    """Figure 14's picture: in-distribution top-1 (x) against the mean over the held-out styles (y), per all-data
    method with 95% intervals, arrows from zero-shot, y = x and chance."""
    import matplotlib.pyplot as plt

    s = setting(records)
    fig, ax = plt.subplots(figsize=(6.2, 5.4))
    points = {}
    for m in s["methods"]:
        (x,), xerr = _bar([accuracy(records, m, "in_distribution")])
        (y,), yerr = _bar([accuracy(records, m, "held_out_styles")])
        points[m] = (x, y)
        ax.errorbar([x], [y], xerr=xerr, yerr=yerr, fmt="o", markersize=9, capsize=4, color=COLOURS[m],
                    label=NAMES[m], zorder=3)
    for m in s["adapted"]:
        ax.annotate("", xy=points[m], xytext=points["zeroshot"],
                    arrowprops={"arrowstyle": "->", "color": COLOURS[m], "alpha": 0.6, "lw": 1.5})
    top = 1.15 * max(max(p) for p in points.values())
    ax.plot([0, top], [0, top], "--", color="0.4", label="y = x")
    ax.axvline(100 * s["chance"], color="0.6", linestyle=":")
    ax.axhline(100 * s["chance"], color="0.6", linestyle=":")
    ax.set(xlim=(0, top), ylim=(0, top), xlabel=f"in-distribution top-1 (%) — {s['in_distribution']}",
           ylabel=f"held-out styles top-1 (%), mean of {len(s['held'])}")
    ax.legend(loc="upper left", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def curves_figure(records: Sequence[dict]):
    """LoRA's and full fine-tuning's training cross-entropy (t interval over seeds) and training-batch top-1
    (interval inside [0, 1]) against steps, with ln C, the loss of a uniform guess."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for m in ("lora", "full_ft"):
        steps = records[0]["curves"][m]["step"]
        for ax, key, band, scale in zip(axes, ("loss", "accuracy"), (difference_interval, accuracy_interval),
                                        (1, 100), strict=True):
            seeds = np.array([r["curves"][m][key] for r in records], dtype=float)
            stats = pd.DataFrame([band(seeds[:, j]) for j in range(seeds.shape[1])]) * scale
            ax.plot(steps, stats["mean"], color=COLOURS[m], label=NAMES[m])
            ax.fill_between(steps, stats["low"], stats["high"], color=COLOURS[m], alpha=0.2)
    n = records[0]["metrics"]["task"]["n_classes"]
    axes[0].axhline(math.log(n), color="0.5", linestyle=":", label=f"ln {n}")
    for ax, label in zip(axes, ("training cross-entropy", "training-batch top-1 (%)"), strict=True):
        ax.set(xlabel="fine-tuning step", ylabel=label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=9)
    fig.tight_layout()
    return fig


def fewshot_figure(records: Sequence[dict]):
    """Top-1 (%) against k labelled pictures per class (log 2), in distribution and over the held-out styles: one
    line per few-shot method with its 95% band, zero-shot (band) and the probe on all labelled pictures (dashed)
    as references, chance dotted. Without the few-shot axis: a figure that says so (`NO_FEW`)."""
    import textwrap

    import matplotlib.pyplot as plt

    if not setting(records)["few_shot"]:
        fig, ax = plt.subplots(figsize=(11, 1.2))
        ax.text(0.5, 0.5, textwrap.fill(NO_FEW, 100), ha="center", va="center", fontsize=11)
        ax.axis("off")
        return fig
    s, fig, axes = _panels(records, "zero-shot")
    for ax, key in zip(axes, PANELS, strict=True):
        ax.axhline(100 * accuracy(records, "linear_probe", key)["mean"], color=COLOURS["linear_probe"],
                   linestyle="--", label="linear probe, all labelled pictures")
        for m in s["few_methods"]:
            stats = pd.DataFrame([accuracy(records, m, key, k) for k in s["shots"]]) * 100
            ax.plot(s["shots"], stats["mean"], "o-", color=COLOURS[m], label=NAMES[m])
            ax.fill_between(s["shots"], stats["low"], stats["high"], color=COLOURS[m], alpha=0.2)
        ax.set_xscale("log", base=2)
        ax.set_xticks(s["shots"], [str(k) for k in s["shots"]])
        ax.set_xlabel("labelled training pictures per class (k)")
    axes[0].set_ylim(bottom=0)
    _legend_below(fig, axes[0])
    return fig


def walltime(records: Sequence[dict]) -> pd.DataFrame:
    """Wall time per seed (s) of every method and k (NaN: all labelled pictures), with its range over seeds; each
    entry's time includes its hyper-parameter selection (the few-shot feature views are counted separately)."""
    rows = []
    for m, k in _cells(setting(records)):
        t = values(records, m, "wall_time_s", k)
        rows.append({"method": m, "k": math.nan if k is None else k, "trainable_params": params(records, m, k),
                     "mean": t.mean(), "min": t.min(), "max": t.max()})
    return pd.DataFrame(rows)


def walltime_figure(records: Sequence[dict]):
    """Wall time per seed (s, log) against k for the few-shot methods, the all-data methods at "all" and zero-shot
    (which trains nothing) as a line; markers: mean over seeds, bars: the range over seeds."""
    import matplotlib.pyplot as plt

    s, frame = setting(records), walltime(records)
    ticks = s["shots"] + [2 * s["shots"][-1] if s["shots"] else 1]
    frame["all"] = frame["k"].isna()
    trained = frame[frame["method"] != "zeroshot"].copy()
    full = trained.index[trained["all"]]  # "all", spread a little so that the markers do not hide each other
    trained.loc[full, "k"] = ticks[-1] * 1.08 ** (np.arange(len(full)) - (len(full) - 1) / 2)
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for (m, everything), g in trained.groupby(["method", "all"], sort=False):
        ax.errorbar(g["k"], g["mean"], yerr=[g["mean"] - g["min"], g["max"] - g["mean"]], capsize=3,
                    color=COLOURS[m], **({"fmt": "s", "markersize": 8} if everything else {"fmt": "o-"}),
                    label=NAMES[m] + (", all pictures" if everything else ""))
    zero = frame.loc[frame["method"] == "zeroshot", "mean"].iloc[0]
    ax.axhline(zero, color=COLOURS["zeroshot"], linestyle=":", label="zero-shot (evaluation only)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks, [str(k) for k in s["shots"]] + ["all"])
    ax.set(xlim=(ticks[0] / 1.5, ticks[-1] * 1.5), yscale="log", ylabel="wall time per seed (s)",
           xlabel="labelled training pictures per class (k)")
    ax.grid(alpha=0.3, which="both")
    _legend_below(fig, ax, ncol=3)
    return fig
