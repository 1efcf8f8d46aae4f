"""Tables, figures and sentences of the robustness chapter (paper §3.3, Figures 13–14 and Figure 5's supervised
half; Fang et al. 2022's narrow CLIP), from the `robustness` result records (`repro.experiments.robustness`), over
the experiment's tidy summaries (`robustness_summary.summarize`, `verdicts_inputs`, `head_effect`), which recompute
effective robustness and the trend's band from the stored accuracies — for result files of every age.

Accuracies get intervals inside [0, 1] over seeds (`accuracy_interval`); drops, effective robustness and differences
between models are paired over seeds (`difference_interval`). Files written before the narrow CLIP and the held-out
icon sets lack them: their tables are then empty and `NOT_HERE` says why."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..evaluate.robustness import EPS, trend_band
from ..experiments import robustness_summary as rs
from ..models.naming import baseline_names, resnet_parameters
from ..stats import accuracy_interval, difference_interval, interval_text

MEAN, ICON_MEAN = rs.HELD_OUT_MEAN, rs.ICON_MEAN
#: What the chapter says where result files lack a part of the experiment.
NOT_HERE = ("not in these results (they were written before this part of the experiment existed; its next run "
            "adds it)")
CLIP_NAMES = {"zero_shot": "zero-shot CLIP, diverse", "narrow_zero_shot": "zero-shot CLIP, narrow",
              "lr_head": "logistic head on the diverse CLIP"}
#: Ticks of the logit axes (accuracies).
TICKS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 0.9, 0.95, 0.99)
MARKERS = {"zero_shot": ("*", "C3", 15), "narrow_zero_shot": ("X", "C1", 10), "lr_head": ("P", "C4", 10)}


def setting(records: Sequence[dict]) -> dict:
    """What the records share: the task and its splits (`in`, `held` styles, `shifted` — held-out styles first —,
    `icons`), the `averaged` shifts and all `targets` of effective robustness in the book's order, the headline and
    other supervised models, the models' display names, and whether the narrow CLIP is there."""
    first, n = records[0]["metrics"], len(records)
    task = first["task"]
    icons = [s for s, v in (task.get("icon_sets") or {}).items() if v["n"] > 0]
    resnets = baseline_names(first["supervised"])
    shifted = [*task["held_out"], *(k for k in task["splits"] if k not in [task["in_distribution"], *task["held_out"]])]
    averaged = [MEAN] + ([ICON_MEAN] if icons else [])
    return {"task": task, "in": task["in_distribution"], "held": list(task["held_out"]), "icons": icons,
            "shifted": shifted, "averaged": averaged, "targets": [*shifted, *icons, *averaged],
            "head": records[0]["config"]["headline"],
            "supervised": list(first["supervised"]), "resnets": resnets,
            "names": CLIP_NAMES | {m: f"{name}, final" for m, name in resnets.items()},
            "narrow": all("narrow_clip" in r["metrics"] for r in records), "seeds_text": f"{n} seed{'s' * (n != 1)}",
            "chance": 1 / task["n_classes"]}


def values(frame: pd.DataFrame, model: str, shift: str, column: str) -> np.ndarray:
    """Per seed (sorted): one column of a `summarize` frame for a model and a shift (empty when absent)."""
    part = frame[(frame["model"] == model) & (frame["shift"] == shift)].sort_values("seed")
    return part[column].to_numpy(dtype=float)


def acc_text(x: Sequence[float]) -> str:
    """An accuracy over seeds in percent with its interval inside [0, 100]; "—" when missing."""
    x = np.asarray(x, dtype=float)
    return interval_text(accuracy_interval(x)) if len(x) and np.isfinite(x).all() else "—"


def diff_text(x: Sequence[float], scale: float = 100.0) -> str:
    """A paired difference over seeds, signed, with its t interval; "—" when missing or undefined for a seed."""
    x = np.asarray(x, dtype=float)
    return interval_text(difference_interval(x), scale, signed=True) if len(x) and np.isfinite(x).all() else "—"


def shift_label(records: Sequence[dict], shift: str) -> str:
    kind = setting(records)["task"]["splits"].get(shift, {}).get("shift", "held-out icon set")
    return shift if shift in (MEAN, ICON_MEAN) else f"{shift} ({kind})"


def task_table(records: Sequence[dict]) -> pd.DataFrame:
    """The task's test splits, the held-out icon sets posed as the same task (pictures kept of those in the set)
    and the labelled training pictures."""
    s = setting(records)
    task = s["task"]
    rows = [{"split": k, "distribution": v["shift"], "images": f"{v['n']:,}"} for k, v in task["splits"].items()]
    rows += [{"split": k, "distribution": "held-out icon set (relabelled by concept)",
              "images": f"{v['n']:,} of {v['of']:,} ({v['n_classes']} classes)"}
             for k, v in task.get("icon_sets", {}).items() if k in s["icons"]]
    return pd.DataFrame(rows + [{"split": "train (labelled)", "distribution": "training",
                                 "images": f"{task['n_train']:,}"}])


def icon_text(records: Sequence[dict]) -> str:
    """How many icons the relabelling keeps, and whether that is enough to test a verdict on them."""
    s = setting(records)
    if not s["icons"]:
        return f"Held-out icon sets posed as the same task: {NOT_HERE}."
    info, (ok, reason) = s["task"]["icon_relabel"], rs.icon_precondition(records[0]["metrics"])
    return (f"The relabelling keeps {info['n']:,} icons of {info['n_classes']} classes in all"
            + ("." if ok else f"; they are reported with their size, but their verdicts are {reason}."))


def models_table(records: Sequence[dict]) -> pd.DataFrame:
    """The supervised models: size, training length, snapshots, how often trained, final in-distribution top-1."""
    s = setting(records)
    rows = []
    for m in s["supervised"]:
        e = records[0]["metrics"]["supervised"][m]
        final = [r["metrics"]["supervised"][m]["final"][s["in"]] for r in records]
        rows.append({"model": s["resnets"][m], "parameters": f"{e['parameters']:,}", "epochs": e["epochs"],
                     "batch": e["batch_size"], "steps": e["total_steps"], "snapshots": len(e["snapshots"]),
                     "trained": f"once (seed {e['seed']}), shared by all seeds" if e["shared"]
                     else f"per seed ({s['seeds_text']})", f"final {s['in']} top-1 (%)": acc_text(final)})
    return pd.DataFrame(rows)


def models_text(records: Sequence[dict]) -> str:
    """The headline baseline beside torchvision's, the trend's points per seed and the models trained once."""
    s, sup = setting(records), records[0]["metrics"]["supervised"]
    depth = sup[s["head"]]["depth"]
    return (f"The headline baseline is the {s['resnets'][s['head']]}, trained once per seed; torchvision's "
            f"ResNet-{depth} has base width 64 and {resnet_parameters(depth, 64, 1000, small_input=False) / 1e6:.1f}M "
            f"parameters. Every snapshot of every supervised model is a point of the trend — "
            f"{sum(len(m['snapshots']) for m in sup.values())} points per seed. The "
            f"{' and '.join(s['resnets'][m] for m in sup if sup[m]['shared'])} were trained **with one seed only** and "
            "are shared by every seed's trend, to keep the experiment cheap; only the headline varies with the seed.")


def trend_points(records: Sequence[dict], shift: str) -> pd.DataFrame:
    """The supervised snapshots as the trend sees them: seed, model, in-distribution accuracy, accuracy on `shift`
    (a split or an average); a shared model's points appear under every seed."""
    s = setting(records)
    members = {MEAN: s["held"], ICON_MEAN: s["icons"]}.get(shift, [shift])
    return pd.DataFrame([{"seed": r["seed"], "model": s["resnets"][m], "shared": e["shared"],
                          "in": snap["accuracy"][s["in"]],
                          "shifted": float(np.mean([snap["accuracy"][k] for k in members]))}
                         for r in records for m, e in r["metrics"]["supervised"].items() for snap in e["snapshots"]])


def trend_figure(records: Sequence[dict]):
    """Figure 13 in miniature, one panel per averaged shift: the supervised snapshots, each seed's logit-linear
    trend (line) with its 95% prediction band (shaded), y = x, and each seed's zero-shot CLIPs and logistic head."""
    import matplotlib.pyplot as plt
    import seaborn as sns
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    s, frame = setting(records), rs.summarize(records)
    fig, axes = plt.subplots(1, len(s["averaged"]), figsize=(6.5 * len(s["averaged"]) + 1, 6.6), squeeze=False)
    for ax, shift in zip(axes[0], s["averaged"], strict=True):
        pts = trend_points(records, shift)
        ours = frame[(frame["shift"] == shift) & frame["model"].isin(list(CLIP_NAMES))]
        xs = np.clip(np.r_[pts["in"], ours["in_distribution"]], EPS, 1 - EPS)
        grid = np.geomspace(max(xs.min() / 1.5, EPS), min(xs.max() * 1.3, 0.99), 60)
        for i, (_, part) in enumerate(pts.groupby("seed")):
            band = trend_band(part["in"], part["shifted"], grid)
            ax.fill_between(grid, band["low"], band["high"], color="0.5", alpha=0.12, lw=0,
                            label="trend's 95% band (per seed)" if i == 0 else None)
            ax.plot(grid, band["predicted"], color="0.3", lw=1.1, label="supervised trend" if i == 0 else None)
        shown = pts[~pts["shared"] | (pts["seed"] == pts["seed"].min())]
        shown = shown.assign(**{k: np.clip(shown[k], EPS, 1 - EPS) for k in ("in", "shifted")})
        sns.scatterplot(shown, x="in", y="shifted", hue="model", style="model", s=30, alpha=0.7,
                        palette="colorblind", ax=ax)
        for model, part in ours.groupby("model", sort=False):
            marker, colour, size = MARKERS[model]
            ax.plot(*np.clip([part["in_distribution"], part["held_out"]], EPS, 1 - EPS), marker, color=colour,
                    ms=size, ls="none", mec="black", mew=0.5, label=f"{CLIP_NAMES[model]} (per seed)")
        ax.plot(grid, grid, ":", color="0.5", label="y = x (no drop)")
        ys = np.clip(np.r_[pts["shifted"], ours["held_out"]], EPS, 1 - EPS)
        ax.set(xscale="logit", yscale="logit", xlim=(grid[0], grid[-1]),
               ylim=(ys.min() / 1.6, min(ys.max() * 1.6, 0.99)), title=shift,
               xlabel=f"in-distribution top-1, {s['in']} (%, logit scale)",
               ylabel=f"top-1 on the {shift} (%, logit scale)")
        for axis, (a, b) in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
            axis.set_major_locator(FixedLocator([t for t in TICKS if a <= t <= b]))
            axis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 * v:g}"))
            axis.set_minor_formatter(NullFormatter())
        ax.grid(alpha=0.3)
        ax.get_legend().remove()
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2 * len(s["averaged"]), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.22 / len(s["averaged"]), 1, 1))
    return fig


def shift_table(records: Sequence[dict]) -> pd.DataFrame:
    """Per shift: the trend's slope, the headline supervised model's and zero-shot CLIP's accuracy and effective
    robustness, the trend's prediction at zero-shot's in-distribution accuracy, the share of the trend's gap zero-shot
    closes (`relative_robustness_gap_reduction`: ER / (in − predicted), "—" where the trend predicts no drop) and,
    where the records have it, the narrow CLIP's effective robustness."""
    s, frame = setting(records), rs.summarize(records)
    head, trends = s["head"], [rs.record_metrics(r)["trend"] for r in records]
    rows = []
    for shift in s["targets"]:
        v = {(m, c): values(frame, m, shift, c) for m in ("zero_shot", "narrow_zero_shot", head)
             for c in ("held_out", "effective_robustness", "predicted", "in_distribution")}
        slope = [trend[shift]["slope"] for trend in trends]
        gap = v["zero_shot", "in_distribution"] - v["zero_shot", "predicted"]
        row = {"shift": shift_label(records, shift), "trend slope": f"{np.mean(slope):.2f}",
               f"{s['resnets'][head]} (%)": acc_text(v[head, "held_out"]),
               "its eff. rob.": diff_text(v[head, "effective_robustness"]),
               "zero-shot (%)": acc_text(v["zero_shot", "held_out"]),
               "trend at zero-shot's in-dist. (%)": acc_text(v["zero_shot", "predicted"]),
               "zero-shot eff. rob.": diff_text(v["zero_shot", "effective_robustness"]),
               "gap closed by zero-shot (%)": diff_text(np.where(gap > 0, v["zero_shot", "effective_robustness"]
                                                                 / np.where(gap > 0, gap, 1), np.nan))}
        if s["narrow"]:
            row["narrow CLIP eff. rob."] = diff_text(v["narrow_zero_shot", "effective_robustness"])
        rows.append(row)
    return pd.DataFrame(rows)


def band_table(records: Sequence[dict]) -> pd.DataFrame:
    """Per averaged shift and model: in-distribution and shifted top-1, the drop (paired), the ratio shifted /
    in-distribution, effective robustness (over seeds), its interval from the trend's 95% band (seeds' mean) and in
    how many seeds the model lies above the band."""
    s, frame = setting(records), rs.summarize(records)
    rows = []
    for shift in s["averaged"]:
        for model in [m for m in s["names"] if len(values(frame, m, shift, "held_out"))]:
            x, y, er, lo, hi, ratio = (values(frame, model, shift, c) for c in (
                "in_distribution", "held_out", "effective_robustness", "er_low", "er_high", "ratio"))
            rows.append({"shift": shift, "model": s["names"][model], "in-dist. (%)": acc_text(x),
                         "under the shift (%)": acc_text(y), "drop (points)": diff_text(x - y),
                         "shifted / in-dist.": f"{np.nanmean(ratio):.2f}" if np.isfinite(ratio).any() else "—",
                         "eff. robustness (points)": diff_text(er),
                         "band's interval (points)": f"[{100 * np.nanmean(lo):+.1f}, {100 * np.nanmean(hi):+.1f}]"
                         if np.isfinite(lo).any() else "—",
                         "above the band": f"{int(np.sum(lo > 0))} of {len(lo)} seeds"})
    return pd.DataFrame(rows)


def narrow_table(records: Sequence[dict]) -> pd.DataFrame:
    """Fang et al.'s test per averaged shift (`verdicts_inputs`): effective robustness of the diverse and the narrow
    CLIP, their paired difference, seeds above the band and whether the shift is testable; empty without it."""
    if not setting(records)["narrow"]:
        return pd.DataFrame()
    rows = []
    for shift, part in rs.verdicts_inputs(records).groupby("shift", sort=False):
        if part["diverse"].isna().all():
            continue
        rows.append({"shift": shift, "pictures": f"{int(part['n_pictures'].iloc[0]):,}",
                     "diverse CLIP (points)": diff_text(part["diverse"]), "narrow CLIP (points)": diff_text(
                         part["narrow"]), "diverse − narrow (points, paired)": diff_text(part["difference"]),
                     "above the band: diverse / narrow": f"{int(part['diverse_above'].sum())} / "
                                                         f"{int(part['narrow_above'].sum())} of {len(part)} seeds",
                     "testable": "yes" if part["testable"].all() else part["reason"].iloc[0]})
    return pd.DataFrame(rows)


def narrow_text(records: Sequence[dict]) -> str:
    """What the narrow CLIP trained on and how it scores in distribution, beside the diverse CLIP."""
    s = setting(records)
    if not s["narrow"]:
        return f"The narrow CLIP (the headline recipe trained on the supervised models' pictures): {NOT_HERE}."
    nc, frame = records[0]["metrics"]["narrow_clip"], rs.summarize(records)
    return (f"The narrow CLIP trained on {nc['data']['n_train']:,} pictures ({nc['data']['n_captions']:,} captions) — "
            f"the supervised models' — for {nc['train']['steps']:,} steps of {nc['train']['batch_size']} "
            f"(≈ {nc['train']['epochs']:g} epochs), against the diverse CLIP's whole corpus. Zero-shot on `{s['in']}` "
            f"it scores {acc_text(values(frame, 'narrow_zero_shot', MEAN, 'in_distribution'))} %, the diverse CLIP "
            f"{acc_text(values(frame, 'zero_shot', MEAN, 'in_distribution'))} %.")


def head_changes(records: Sequence[dict]) -> pd.DataFrame:
    """Tidy top-1 of zero-shot CLIP (`zero_shot`) and of the logistic head (`lr_head`) per split (in-distribution
    first, then every target) and seed, with `change` = head − zero-shot."""
    s, frame = setting(records), rs.summarize(records)
    seeds = sorted(r["seed"] for r in records)
    rows = [{"split": k, "seed": seed, "zero_shot": z, "lr_head": h, "change": h - z} for k in [s["in"], *s["targets"]]
            for seed, z, h in zip(seeds, *(values(frame, m, MEAN if k == s["in"] else k, "in_distribution" if
                                                  k == s["in"] else "held_out") for m in ("zero_shot", "lr_head")),
                                  strict=True)]
    return pd.DataFrame(rows)


def head_table(records: Sequence[dict]) -> pd.DataFrame:
    """Figure 14 in miniature: zero-shot against the logistic head per split and average: top-1, the change
    (paired) and, under the shifts, effective robustness zero-shot → head."""
    s, frame = setting(records), rs.summarize(records)
    rows = []
    for split, g in head_changes(records).groupby("split", sort=False):
        rows.append({"split": shift_label(records, split), "zero-shot (%)": acc_text(g["zero_shot"]),
                     "head (%)": acc_text(g["lr_head"]), "change (points)": diff_text(g["change"]),
                     "eff. rob.: zero-shot → head (points)": "" if split == s["in"] else " → ".join(
                         diff_text(values(frame, m, split, "effective_robustness")) for m in ("zero_shot", "lr_head"))})
    return pd.DataFrame(rows)


def head_figure(records: Sequence[dict]):
    """Figure 14, right, in miniature. Left: top-1 change when zero-shot is replaced by the logistic head, per split
    (bars: mean, whiskers: 95% interval, dots: seeds). Right: effective robustness of zero-shot and of the head on
    each averaged shift, one line per seed (`head_effect`)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    tidy = head_changes(records).assign(change=lambda d: 100 * d["change"])
    splits = list(dict.fromkeys(tidy["split"]))
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 0.42 * len(splits) + 2.2),
                                      gridspec_kw={"width_ratios": [1.6, 1]})
    sns.barplot(tidy, y="split", x="change", order=splits, errorbar=None, color="C0", alpha=0.55, ax=left)
    sns.stripplot(tidy, y="split", x="change", order=splits, color="black", size=4, ax=left)
    stats = pd.DataFrame([difference_interval(tidy[tidy["split"] == k]["change"]) for k in splits])
    ok = np.isfinite(stats["low"]).to_numpy()
    left.errorbar(stats["mean"][ok], np.arange(len(splits))[ok], fmt="none", ecolor="black", capsize=3,
                  xerr=[(stats["mean"] - stats["low"])[ok], (stats["high"] - stats["mean"])[ok]])
    left.axvline(0, color="0.2", lw=0.8)
    left.set(xlabel="top-1 change: head − zero-shot (points)", ylabel="")
    for i, (shift, part) in enumerate(rs.head_effect(records).groupby("shift", sort=False)):
        for j, (_, r) in enumerate(part.iterrows()):
            right.plot([0, 1], [100 * r["zero_shot_er"], 100 * r["lr_head_er"]], "o-", color=f"C{i}", alpha=0.8,
                       label=shift if j == 0 else None)
    right.axhline(0, color="0.2", lw=0.8)
    right.set(xticks=[0, 1], xticklabels=["zero-shot", "logistic head"], xlim=(-0.3, 1.3),
              ylabel="effective robustness (points)")
    right.legend(fontsize=8)
    fig.tight_layout()
    return fig


def figure5_table(records: Sequence[dict]) -> pd.DataFrame:
    """Figure 5's supervised half per test set (splits pooled by shift): zero-shot CLIP, the probe on the headline
    ResNet's features, their paired difference and the probe on CLIP's own features."""
    s = setting(records)
    first = records[0]["metrics"]["figure5"]
    rows = []
    for t, info in first["tests"].items():
        zs, rn, cp = (np.array([r["metrics"]["figure5"]["tests"][t][k] for r in records])
                      for k in ("zero_shot", f"{s['head']}_probe", "clip_probe"))
        rows.append({"test set": t, "splits": ", ".join(info["splits"]), "images": f"{info['n']:,}",
                     "zero-shot CLIP (%)": acc_text(zs), f"probe on {s['resnets'][s['head']]} (%)": acc_text(rn),
                     "zero-shot − probe (points)": diff_text(zs - rn), "probe on CLIP features (%)": acc_text(cp)})
    return pd.DataFrame(rows)
