"""Tables and figures of the limitations chapter (paper §6), from the `limitations` result records
(`repro.experiments.limitations`): zero-shot against logistic regression on raw pixels and a linear probe on the
CLIP features on the real-photo sets, where the gap lies (features or text-derived classifier), zero-shot's
confusion matrices, the classes zero-shot gets right and never gets right on the emoji suites, and accuracy from
coarse to fine labels. Accuracies carry 95% intervals inside [0, 1] over seeds (`repro.stats.accuracy_interval`),
differences paired intervals (`repro.stats.difference_interval`); the verdict on the paper's MNIST claim is
`repro.claims.mnist_pixels`."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..book import ci_text
from ..stats import accuracy_interval, difference_interval, interval_text

#: The four classifiers compared on every real-photo set, as the book names them.
METHODS = {"zeroshot": "zero-shot", "zeroshot_inverted": "zero-shot, inverted images",
           "probe_pixels": "logistic regression on raw pixels", "probe_clip": "linear probe on CLIP features"}
TASK_NAMES = {"fashion-mnist-test": "Fashion-MNIST", "mnist-test": "MNIST", "digits": "UCI digits (8×8)"}
#: Label levels from coarse to fine, and the two kinds of emoji suite whose per-class recall is ranked.
LEVELS = ("category", "subcategory", "name")
SHIFTS = ("held-out style", "zero-shot concepts")


def task_name(task: str) -> str:
    return TASK_NAMES.get(task, task)


def tasks(records: Sequence[dict]) -> list[str]:
    """The real-photo sets compared with the supervised baselines, in the order of the result file."""
    return list(records[0]["metrics"]["tasks"])


def top1(records: Sequence[dict], task: str, method: str) -> np.ndarray:
    """One method's top-1 on one task, per seed."""
    return np.array([r["metrics"]["tasks"][task][method]["top1"] for r in records], dtype=float)


def scores(records: Sequence[dict]) -> pd.DataFrame:
    """Tidy numbers, one row per task and method: top-1 mean and 95% interval over seeds (fractions), chance."""
    rows = []
    for task in tasks(records):
        entry = records[0]["metrics"]["tasks"][task]
        for method, label in METHODS.items():
            stats = accuracy_interval(top1(records, task, method))
            rows.append({"task": task, "name": task_name(task), "method": method, "label": label,
                         "mean": stats["mean"], "low": stats["low"], "high": stats["high"], "n_seeds": stats["n"],
                         "chance": entry["chance"], "n_train": entry["n_train"], "n_test": entry["n_test"]})
    return pd.DataFrame(rows)


def photos_table(records: Sequence[dict]) -> pd.DataFrame:
    """One row per real-photo set: classes, training and test images, chance, and each method's top-1 (%, mean
    [95% interval] over seeds)."""
    rows = []
    for task in tasks(records):
        entry = records[0]["metrics"]["tasks"][task]
        row = {"task": task_name(task), "classes": entry["n_classes"],
               "train / test images": f"{entry['n_train']:,} / {entry['n_test']:,}",
               "chance": f"{100 * entry['chance']:.1f}"}
        row.update({label: ci_text(top1(records, task, method))
                    for method, label in METHODS.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def methods_figure(records: Sequence[dict]):
    """Per real-photo set, each method's top-1 (bars) with its 95% interval over seeds and chance (dashed)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    frame = scores(records).assign(top1=lambda d: 100 * d["mean"])
    names = list(dict.fromkeys(frame["name"]))
    fig, ax = plt.subplots(figsize=(9, 0.9 * len(names) + 1.6))
    sns.barplot(frame, y="name", x="top1", hue="label", order=names, hue_order=list(METHODS.values()),
                errorbar=None, palette="colorblind", ax=ax)
    offsets = np.linspace(-0.4, 0.4, 2 * len(METHODS) + 1)[1::2]
    for k, method in enumerate(METHODS):
        part = frame[frame["method"] == method].set_index("name").reindex(names)
        ok = part["low"].notna().to_numpy()
        y = np.arange(len(names)) + offsets[k]
        below = np.maximum(part["top1"] - 100 * part["low"], 0)[ok]  # a zero-width interval can round below 0
        above = np.maximum(100 * part["high"] - part["top1"], 0)[ok]
        ax.errorbar(part["top1"][ok], y[ok], xerr=[below, above], fmt="none", ecolor="black", elinewidth=0.8,
                    capsize=2)
    chance = frame.drop_duplicates("name").set_index("name").reindex(names)["chance"]
    for i, c in enumerate(chance):
        ax.vlines(100 * c, i - 0.45, i + 0.45, colors="black", linestyles="--", lw=1,
                  label="chance" if i == 0 else None)
    ax.set(xlabel="top-1 accuracy (%)", ylabel="", xlim=(0, 100))
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3, frameon=False)
    sns.despine(ax=ax)
    fig.tight_layout()
    return fig


def confusion(records: Sequence[dict], task: str, method: str = "zeroshot") -> np.ndarray:
    """Zero-shot's confusion matrix on `task`, row-normalised (each true class sums to 100%), mean over seeds."""
    mats = [np.array(r["metrics"]["tasks"][task][method]["confusion"], dtype=float) for r in records]
    return 100 * np.mean([m / np.maximum(m.sum(axis=1, keepdims=True), 1) for m in mats], axis=0)


def confusion_task(records: Sequence[dict]) -> str:
    """The task whose confusion matrices the chapter shows: MNIST where there is one, else the first."""
    return next((t for t in tasks(records) if "mnist" in t and "fashion" not in t), tasks(records)[0])


def confusion_figure(records: Sequence[dict], task: str | None = None):
    """Zero-shot's confusion matrices on one real-photo set as packed (left) and inverted (right): rows true
    classes, columns predicted, row-normalised and averaged over seeds; cells of at least 5% are labelled."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    task = task or confusion_task(records)
    labels = records[0]["metrics"]["tasks"][task]["classnames"]
    long = max(map(len, labels)) > 3
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.8), layout="constrained")
    for ax, method in zip(axes, ("zeroshot", "zeroshot_inverted"), strict=True):
        mean = confusion(records, task, method)
        annot = np.where(mean >= 5, np.vectorize(lambda v: f"{v:.0f}")(mean), "")
        sns.heatmap(mean, ax=ax, cmap="Blues", vmin=0, vmax=100, annot=annot, fmt="", square=True,
                    xticklabels=labels, yticklabels=labels, cbar=method == "zeroshot_inverted",
                    cbar_kws={"label": "share of the true class (%)", "shrink": 0.8}, annot_kws={"fontsize": 9})
        ax.tick_params(axis="x", labelrotation=45 if long else 0)
        ax.tick_params(axis="y", labelrotation=0)
        accuracy = ci_text(top1(records, task, method))
        ax.set(xlabel="predicted class", ylabel="true class" if method == "zeroshot" else "",
               title=f"{task_name(task)}: {METHODS[method]}\n(top-1 {accuracy}%)")
    return fig


def collapse_table(records: Sequence[dict]) -> pd.DataFrame:
    """Per real-photo set: the class zero-shot predicts most often (over all seeds) and its share of the
    predictions, on the images as packed and inverted, beside the share a uniform spread would give."""
    rows = []
    for task in tasks(records):
        entry = records[0]["metrics"]["tasks"][task]
        row = {"task": task_name(task)}
        for method in ("zeroshot", "zeroshot_inverted"):
            shares = []
            for r in records:
                m = np.array(r["metrics"]["tasks"][task][method]["confusion"], dtype=float)
                shares.append(m.sum(axis=0) / m.sum())
            mean = np.mean(shares, axis=0)
            row[f"{METHODS[method]}: most predicted"] = entry["classnames"][int(mean.argmax())]
            row[f"{METHODS[method]}: share (%)"] = f"{100 * mean.max():.1f}"
        row["uniform share (%)"] = f"{100 / entry['n_classes']:.1f}"
        rows.append(row)
    return pd.DataFrame(rows)


#: The differences (a − b, paired over seeds) that locate zero-shot's failure.
GAPS = {"pixels − zero-shot": ("probe_pixels", "zeroshot"), "CLIP probe − zero-shot": ("probe_clip", "zeroshot"),
        "pixels − CLIP probe": ("probe_pixels", "probe_clip"), "inverted − zero-shot": ("zeroshot_inverted",
                                                                                         "zeroshot")}


def gaps(records: Sequence[dict]) -> pd.DataFrame:
    """Tidy differences per task and gap (`GAPS`): mean, 95% interval (fractions) and its sign (+1 / −1 when the
    interval excludes 0 on that side, else 0; for one seed the sign of the mean)."""
    rows = []
    for task in tasks(records):
        for gap, (a, b) in GAPS.items():
            stats = difference_interval(top1(records, task, a) - top1(records, task, b))
            low = stats["low"] if math.isfinite(stats["low"]) else stats["mean"]
            high = stats["high"] if math.isfinite(stats["high"]) else stats["mean"]
            rows.append({"task": task, "gap": gap, "mean": stats["mean"], "low": stats["low"],
                         "high": stats["high"], "sign": 1 if low > 0 else -1 if high < 0 else 0})
    return pd.DataFrame(rows)


def gaps_table(records: Sequence[dict]) -> pd.DataFrame:
    """One row per real-photo set: each gap of `GAPS` in points (mean [95% interval], paired over seeds) and the
    share of the pixels − zero-shot gap that the probe on CLIP features closes."""
    frame = gaps(records)
    rows = []
    for task, g in frame.groupby("task", sort=False):
        row = {"task": task_name(task)}
        row.update({f"{gap} (points)": interval_text(r, signed=True) for gap, r in g.set_index("gap").iterrows()})
        row["share of the gap the CLIP probe closes"] = _closed_text(closed_share(records, task))
        rows.append(row)
    return pd.DataFrame(rows)


def _closed_text(share: float) -> str:
    return "—" if not math.isfinite(share) else f"{100 * share:.0f}%"


def closed_share(records: Sequence[dict], task: str) -> float:
    """(CLIP probe − zero-shot) / (pixels − zero-shot), mean over seeds: how much of the raw-pixel baseline's lead
    the probe on CLIP features recovers (NaN when pixels are not ahead)."""
    zs, px, pr = (top1(records, task, m) for m in ("zeroshot", "probe_pixels", "probe_clip"))
    if np.any(px - zs <= 0):
        return math.nan
    return float(np.mean((pr - zs) / (px - zs)))


def findings(records: Sequence[dict]) -> dict:
    """What the summary and the verdict say: the tasks where pixels beat zero-shot beyond the interval (names), the
    tasks where zero-shot is not above chance, where the CLIP probe is below pixels / above zero-shot, where
    inverting helps, the mean share of the gap the probe closes over the beaten tasks (`share`, NaN when none, and
    as text) and the number of seeds as text."""
    frame = gaps(records)

    def where(gap: str, sign: int = 1) -> list[str]:
        return [task_name(t) for t in frame[(frame["gap"] == gap) & (frame["sign"] == sign)]["task"]]

    beaten = where("pixels − zero-shot")
    at_chance = []
    for task in tasks(records):
        chance = records[0]["metrics"]["tasks"][task]["chance"]
        above = difference_interval(top1(records, task, "zeroshot") - chance)
        if not (above["low"] if math.isfinite(above["low"]) else above["mean"]) > 0:  # one seed: its sign
            at_chance.append(task_name(task))
    shares = [closed_share(records, t) for t in tasks(records) if task_name(t) in beaten]
    shares = [s for s in shares if math.isfinite(s)]
    share = float(np.mean(shares)) if shares else math.nan
    return {"tasks": len(tasks(records)), "seeds_text": f"{len(records)} seed{'s' * (len(records) != 1)}",
            "beaten": beaten, "at_chance": at_chance, "share": share,
            "share_text": f"{100 * share:.0f}%" if shares else "no measurable share",
            "features_weaker": where("pixels − CLIP probe"), "classifier_weaker": where("CLIP probe − zero-shot"),
            "inverting_helps": where("inverted − zero-shot")}


def model_facts(records: Sequence[dict]) -> dict:
    """The evaluated CLIP: its description, parameters, how many times fewer than the paper's ViT-B/32, training
    length and picture size."""
    from ..models import PRESETS, parameter_counts
    from ..models.naming import describe
    from ..train import TrainConfig

    clip = TrainConfig.from_dict(records[0]["config"]["clip"])
    ours = parameter_counts(clip.clip_config())["total"]
    b32 = parameter_counts(PRESETS["ViT-B/32"])["total"]
    return {"model": describe(clip), "params": ours, "times_fewer": b32 / ours, "b32_params": b32,
            "length": f"{clip.steps} steps" if clip.steps else f"{clip.epochs:g} epochs", "size": clip.data_size}


def _suites(records: Sequence[dict], label: str, shift: str) -> list[str]:
    return [n for n, e in records[0]["metrics"]["per_class"].items() if e["label"] == label and e["shift"] == shift]


def pooled_recall(records: Sequence[dict], names: Sequence[str]) -> pd.DataFrame:
    """Per class (by label value): zero-shot recall pooled over the suites `names` and the seeds, weighted by
    images, and the images per seed."""
    correct: dict[str, float] = {}
    count: dict[str, int] = {}
    for r in records:
        for name in names:
            e = r["metrics"]["per_class"][name]
            for cls, rec, n in zip(e["classes"], e["per_class_recall"], e["count"], strict=True):
                if n:
                    correct[cls] = correct.get(cls, 0.0) + rec * n
                    count[cls] = count.get(cls, 0) + n
    return pd.DataFrame({"class": list(count), "recall": [correct[c] / count[c] for c in count],
                         "images": [count[c] // len(records) for c in count]})


def class_views(records: Sequence[dict]) -> list[tuple[str, list[str]]]:
    """The two rankings of classes: the finest label below concepts on the held-out styles (subcategory where
    recorded, else category), and the concepts of the zero-shot split — as (title, suite names), where present."""
    held = "subcategory" if _suites(records, "subcategory", SHIFTS[0]) else "category"
    out = [(f"{held}, held-out styles", _suites(records, held, SHIFTS[0])),
           ("concept, zero-shot split", _suites(records, "name", SHIFTS[1]))]
    return [(title, names) for title, names in out if names]


def class_table(records: Sequence[dict], min_images: int = 5, top: int = 5) -> pd.DataFrame:
    """Per ranking of `class_views`: the `top` weakest and strongest classes by zero-shot recall (%, pooled over
    its suites and the seeds) among classes with at least `min_images` images per seed."""
    rows = []
    for title, names in class_views(records):
        ranked = pooled_recall(records, names).query("images >= @min_images")
        worst = ranked.sort_values(["recall", "images"], ascending=[True, False]).head(min(top, len(ranked) // 2))
        best = ranked.drop(worst.index).sort_values(["recall", "images"], ascending=[False, False]).head(top)
        for kind, part in (("weakest", worst), ("strongest", best)):
            rows.extend({"suite": title, "rank": kind, "class": r["class"],
                         "zero-shot recall (%)": f"{100 * r['recall']:.1f}", "images": r["images"]}
                        for _, r in part.iterrows())
    return pd.DataFrame(rows, columns=["suite", "rank", "class", "zero-shot recall (%)", "images"])


def class_summary(records: Sequence[dict], min_images: int = 5) -> pd.DataFrame:
    """Per ranking of `class_views`: ranked classes, how many are never recognised, mean per-class recall and
    chance (one over the classes), as fractions."""
    rows = []
    for title, names in class_views(records):
        frame = pooled_recall(records, names)
        ranked = frame[frame["images"] >= min_images]
        rows.append({"suite": title, "suites": len(names), "ranked": len(ranked),
                     "never": int((ranked["recall"] == 0).sum()), "mean_recall": float(frame["recall"].mean()),
                     "chance": 1 / len(frame) if len(frame) else math.nan})
    return pd.DataFrame(rows)


def granularity(records: Sequence[dict]) -> pd.DataFrame:
    """Tidy zero-shot top-1 of every held-out-style and zero-shot-concept emoji suite, coarse to fine: suite,
    shift, label, classes, images, mean and 95% interval over seeds, chance and accuracy / chance."""
    rows = []
    for label in LEVELS:
        for shift in SHIFTS:
            for name in _suites(records, label, shift):
                e = records[0]["metrics"]["per_class"][name]
                stats = accuracy_interval([r["metrics"]["per_class"][name]["top1"] for r in records], e["n"])
                rows.append({"suite": name, "shift": shift, "label": label, "classes": e["n_classes"],
                             "images": e["n"], "mean": stats["mean"], "low": stats["low"], "high": stats["high"],
                             "chance": 1 / e["n_classes"], "times_chance": stats["mean"] * e["n_classes"]})
    return pd.DataFrame(rows, columns=["suite", "shift", "label", "classes", "images", "mean", "low", "high",
                                       "chance", "times_chance"])


def granularity_table(records: Sequence[dict]) -> pd.DataFrame:
    """`granularity` as the book shows it: top-1 (%, mean [95% interval]), chance (%) and × chance."""
    frame = granularity(records)
    return pd.DataFrame({"suite": frame["suite"], "shift": frame["shift"], "classes": frame["classes"],
                         "images": frame["images"],
                         "zero-shot top-1": [interval_text(r) for _, r in frame.iterrows()],
                         "chance": [f"{100 * c:.1f}" for c in frame["chance"]],
                         "× chance": [f"{t:.1f}" for t in frame["times_chance"]]})


def granularity_levels(records: Sequence[dict]) -> pd.DataFrame:
    """Per shift and label level (coarse to fine), the mean over its suites of zero-shot top-1 and of accuracy /
    chance, and whether accuracy falls at every finer level of that shift."""
    frame = granularity(records)
    levels = frame.groupby(["shift", "label"], sort=False)[["mean", "times_chance"]].mean().reset_index()
    levels = levels.assign(s=levels["shift"].map(SHIFTS.index), l=levels["label"].map(LEVELS.index))
    levels = levels.sort_values(["s", "l"]).drop(columns=["s", "l"]).reset_index(drop=True)
    levels["falls"] = [bool(np.all(np.diff(levels.loc[levels["shift"] == s, "mean"].to_numpy()) < 0))
                       for s in levels["shift"]]
    return levels
