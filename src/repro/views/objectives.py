"""Tables and figures of the objectives chapter (paper §2.3, Figure 2), from the `objectives` result records
(`repro.experiments.objectives`): the common setting, zero-shot accuracy against images seen for the four
objectives (Figure 2 in miniature), the accuracy each reaches with the whole budget, the paired differences between
them, and the sample-efficiency ratios beside the paper's (`repro.experiments.objectives_summary`). Accuracies carry
95% intervals inside [0, 1] over seeds (`repro.stats.accuracy_interval`), differences paired intervals
(`repro.stats.difference_interval`); the verdicts on the paper's 3× and 4× are `repro.claims.objectives_order`.

Class counts and chance levels come from the records (`metrics["suites"]`) or, for result files written before
they were recorded, from the `facts` argument (`repro.book.ExperimentResults.suite_facts`)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..experiments import objectives_summary as osu
from ..experiments.objectives import OBJECTIVES, base_kind
from ..experiments.results import added_runs
from ..models.naming import describe, effective_config
from ..stats import accuracy_interval, difference_interval, interval_text
from .reproducibility import short_revision

#: The objectives that predict the text and those that contrast it (the paper's central comparison, §2.3).
PREDICTIVE = ("caption-lm", "bow-predict")
CONTRASTIVE = ("bow-contrastive", "clip")
#: Short names for tables.
SHORT = {"caption-lm": "language model", "bow-predict": "BoW prediction", "bow-contrastive": "BoW contrastive",
         "clip": "CLIP"}
#: Neighbours in the paper's order, each compared with the next slower one.
STEPS = (("bow-predict", "caption-lm"), ("bow-contrastive", "bow-predict"), ("clip", "bow-contrastive"))


def kinds(records: Sequence[dict], longer: bool = True) -> list[str]:
    """The objectives in the result files, in the paper's order (slowest first); with `longer`, each longer budget
    that some seed holds ("caption-lm-x4") after its objective."""
    found = records[0]["metrics"]["objectives"]
    extra = sorted({k for r in records for k in r["metrics"]["objectives"] if base_kind(k) != k}) if longer else []
    return [n for k in OBJECTIVES if k in found for n in (k, *(e for e in extra if base_kind(e) == k))]


def factor(kind: str) -> int:
    """How many times the common budget objective `kind` trained for (1, or N of "caption-lm-xN")."""
    return 1 if base_kind(kind) == kind else int(kind.rpartition("-x")[2])


def label(kind: str) -> str:
    """The legend's name: "Transformer language model (predict the caption), 4× budget"."""
    return OBJECTIVES[base_kind(kind)] + (f", {factor(kind)}× budget" if factor(kind) > 1 else "")


def short(kind: str) -> str:
    """The tables' name: "language model (4× budget)"."""
    return SHORT[base_kind(kind)] + (f" ({factor(kind)}× budget)" if factor(kind) > 1 else "")


def suites(records: Sequence[dict]) -> list[str]:
    return list(records[0]["config"]["suites"])


def suite_facts(records: Sequence[dict], facts: dict | None = None) -> dict[str, dict]:
    """Per suite: n_classes, chance and (when recorded) n, the images scored."""
    recorded = records[0]["metrics"].get("suites") or {}
    out = {}
    for s in suites(records):
        entry = dict((facts or {}).get(s, {})) | dict(recorded.get(s, {}))
        if "chance" not in entry:
            raise ValueError(f"no chance level for {s!r}: pass facts= (ExperimentResults.suite_facts())")
        out[s] = entry
    return out


def curves(records: Sequence[dict]) -> pd.DataFrame:
    """Tidy zero-shot accuracy: one row per objective, suite, seed and snapshot (step, images_seen, top1)."""
    rows = []
    for r in records:
        for kind in (k for k in kinds(records) if k in r["metrics"]["objectives"]):
            for snap in r["metrics"]["objectives"][kind]["snapshots"]:
                rows.extend({"objective": kind, "label": label(kind), "suite": s, "seed": r["seed"],
                             "step": snap["step"], "images_seen": snap["images_seen"], "top1": float(snap[s])}
                            for s in suites(records))
    return pd.DataFrame(rows)


def bands(records: Sequence[dict], facts: dict | None = None) -> pd.DataFrame:
    """Per objective, suite and snapshot: mean top-1 over seeds and its 95% interval inside [0, 1] (one seed: the
    Wilson interval of the images scored, when recorded)."""
    info = suite_facts(records, facts)
    rows = []
    for (kind, suite, seen), g in curves(records).groupby(["objective", "suite", "images_seen"], sort=False):
        stats = accuracy_interval(g["top1"], info[suite].get("n"))
        rows.append({"objective": kind, "suite": suite, "images_seen": seen, "mean": stats["mean"],
                     "low": stats["low"], "high": stats["high"], "n": stats["n"]})
    return pd.DataFrame(rows)


def compact(n: float) -> str:
    """12,800 -> "12.8k", 1,310,720 -> "1.31M": a tick label for images seen."""
    for size, unit in ((1e6, "M"), (1e3, "k")):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:.0f}"


def images_seen(records: Sequence[dict]) -> list[int]:
    """The snapshots of the common budget (the first objective's), in images seen."""
    return [s["images_seen"] for s in records[0]["metrics"]["objectives"][kinds(records)[0]]["snapshots"]]


def longer_runs(records: Sequence[dict]) -> dict[str, list[int]]:
    """Each longer budget in the results and the seeds that hold it."""
    return {k: [r["seed"] for r in osu.with_objectives(records, k)] for k in kinds(records) if factor(k) > 1}


def added_note(records: Sequence[dict], kind: str) -> str:
    """Where `kind` was added to the result files after the four objectives (`objectives.extend`): "; added later
    (seed 0: revision …, hardware, minutes)" from each added run's own provenance; empty where none was added."""
    parts = []
    for r in records:
        if prov := added_runs(r).get(kind):
            hw = prov["hardware"]
            where = hw.get("gpu") or f"{hw.get('cpu', '?')}, {hw.get('torch_threads', hw.get('cores', '?'))} threads"
            parts.append(f"seed {r['seed']}: revision {short_revision(prov['git_revision'])}, {where}, "
                         f"{prov['wall_time_s'] / 60:.0f} min, {prov['created'][:10]}")
    return f"; added to the result files later ({'; '.join(parts)})" if parts else ""


def setup_table(records: Sequence[dict], facts: dict | None = None) -> pd.DataFrame:
    """The setting the four runs share: model, image encoder, text side, budget, optimiser, snapshots, test, seeds."""
    config = records[0]["config"]
    train, info = config["train"], suite_facts(records, facts)
    model, seen = effective_config(train), images_seen(records)
    image = (f"ViT of width {model.vision_width}, {model.vision_layers} layers, patch {model.vision_patch_size}, "
             f"{model.image_resolution} px" if model.is_vit else
             f"modified ResNet of width {model.vision_width}, layers {tuple(model.vision_layers)}, "
             f"{model.image_resolution} px")
    spacing = "log-spaced (each twice the last)" if config.get("spacing") == "log2" else "evenly spaced"
    rows = [
        ("model configuration", describe(train)),
        ("image encoder", image),
        ("text side", f"width {model.transformer_width}, {model.transformer_layers} layers (language model and "
                      f"CLIP), context {model.context_length}, BPE vocabulary {model.vocab_size:,} learned once on "
                      "the training captions"),
        ("budget", f"{train['steps']:,} steps × batch {train['batch_size']} = "
                   f"{train['steps'] * train['batch_size']:,} images (a caption drawn at random per image and step)"),
        ("optimiser", f"AdamW, lr {train['lr']:g}, weight decay {train['weight_decay']:g}, {train['warmup_steps']} "
                      "warmup steps then cosine decay; learnable temperature (contrastive objectives)"),
        ("snapshots", f"{len(seen)} {spacing}: after {', '.join(f'{s:,}' for s in seen)} images"),
        ("zero-shot test", ", ".join(f"`{s}` ({info[s]['n_classes']} classes)" for s in suites(records))
         + f"; template {', '.join(repr(t) for t in config['templates'])}"),
        ("seeds", f"{len(records)}: seed k initialises every model and orders the data identically for the four "
                  "objectives"),
        ("precision", "chosen per objective between fp32 and bf16 autocast by timing both (`precision=\"auto\"`), "
                      "the same in every seed: "
                      + ", ".join(f"{short(k)} {p}" for k, p in osu.precisions(records).items())),
    ]
    for kind, seeds in longer_runs(records).items():
        steps = train["steps"] * factor(kind)
        rows.append((f"longer budget: {short(kind)}", f"{steps:,} steps = {steps * train['batch_size']:,} images, "
                     f"{train['warmup_steps'] * factor(kind):,} warmup steps, the same log-spaced snapshots "
                     f"continued; seeds {', '.join(map(str, seeds))}" + added_note(records, kind)))
    return pd.DataFrame(rows, columns=["", "setting"])


def figure(records: Sequence[dict], facts: dict | None = None):
    """Figure 2 in miniature: zero-shot top-1 against images seen (log axis) per objective, mean over seeds with a
    95% band, and chance (dotted); one panel per suite."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    info, table = suite_facts(records, facts), bands(records, facts)
    colours = dict(zip(kinds(records, longer=False), sns.color_palette("colorblind"), strict=False))
    names = suites(records)
    fig, axes = plt.subplots(1, len(names), figsize=(5.0 * len(names), 3.8), squeeze=False)
    for ax, suite in zip(axes.flat, names, strict=True):
        for kind in kinds(records):
            part = table[(table["objective"] == kind) & (table["suite"] == suite)]
            ax.plot(part["images_seen"], 100 * part["mean"], marker="o", color=colours[base_kind(kind)],
                    ls="--" if factor(kind) > 1 else "-", label=label(kind))
            if part["low"].notna().all():
                ax.fill_between(part["images_seen"], 100 * part["low"], 100 * part["high"],
                                color=colours[base_kind(kind)], alpha=0.15)
        ax.axhline(100 * info[suite]["chance"], color="0.4", ls=":", label="chance")
        ax.set_xscale("log")
        seen = sorted(set(table["images_seen"]))
        ax.set_xticks(seen, [compact(v) for v in seen], fontsize=8, rotation=45 * (len(seen) > 8))
        ax.xaxis.set_minor_locator(plt.NullLocator())
        ax.set_xlabel("images seen")
        ax.set_ylabel("zero-shot top-1 (%)")
        ax.set_title(suite, fontsize=10)
        ax.grid(alpha=0.3)
        sns.despine(ax=ax)
    fig.legend(*axes.flat[0].get_legend_handles_labels(), loc="lower center", ncol=3, frameon=False, fontsize=9)
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    return fig


def finals(records: Sequence[dict], kind: str, suite: str) -> np.ndarray:
    """The final zero-shot top-1 of objective `kind` on `suite`, one per seed that holds it."""
    return osu.curve(osu.with_objectives(records, kind), kind, suite)[1][:, -1]


def final_table(records: Sequence[dict], facts: dict | None = None) -> pd.DataFrame:
    """Zero-shot top-1 (%) at the end of the budget per objective and suite, mean [95% interval] over seeds, with
    chance and the training throughput (images per second, mean over seeds); a longer budget over the seeds that
    hold it (`seeds`)."""
    info = suite_facts(records, facts)
    rows = []
    for kind in kinds(records):
        held = osu.with_objectives(records, kind)
        row = {"objective": label(kind)}
        for s in suites(records):
            row[f"{s} (%)"] = interval_text(accuracy_interval(finals(records, kind, s), info[s].get("n")))
        row["img/s (training)"] = f"{np.mean([r['metrics']['objectives'][kind]['img_s'] for r in held]):.0f}"
        row["seeds"] = len(held)
        rows.append(row)
    rows.append({"objective": "chance", **{f"{s} (%)": f"{100 * info[s]['chance']:.1f}" for s in suites(records)},
                 "img/s (training)": "", "seeds": ""})
    return pd.DataFrame(rows)


def final_means(records: Sequence[dict]) -> pd.DataFrame:
    """The unrounded mean final accuracies behind `final_table` (a CSV for download)."""
    return pd.DataFrame([{"objective": k, **{s: float(finals(records, k, s).mean()) for s in suites(records)}}
                         for k in kinds(records)])


def _direction(stats: dict) -> str:
    if stats["n"] < 2 or not math.isfinite(stats["low"]):
        return "not tested (one seed)"
    return "higher" if stats["low"] > 0 else "lower" if stats["high"] < 0 else "not distinguishable"


def differences(records: Sequence[dict], pairs: Sequence[tuple[str, str]] | None = None) -> pd.DataFrame:
    """Per suite and pair (a, b): the final top-1 of a minus that of b, paired over seeds (mean, low, high, n; as
    fractions) and whether a ends higher, lower or not distinguishably. Default pairs: each objective against the
    next slower one (`STEPS`), then each contrastive against each predictive objective."""
    pairs = list(pairs or [*STEPS, *((c, p) for c in CONTRASTIVE for p in PREDICTIVE if (c, p) not in STEPS)])
    rows = []
    for suite in suites(records):
        for a, b in pairs:
            stats = difference_interval(finals(records, a, suite) - finals(records, b, suite))
            rows.append({"suite": suite, "a": a, "b": b, **{k: stats[k] for k in ("mean", "low", "high", "n")},
                         "direction": _direction(stats)})
    return pd.DataFrame(rows)


def differences_table(records: Sequence[dict]) -> pd.DataFrame:
    """`differences` for the book: one row per pair, one column per suite, "+1.2 [0.4, 2.0] (higher)"."""
    frame = differences(records)
    rows = []
    for (a, b), g in frame.groupby(["a", "b"], sort=False):
        rows.append({"difference (points)": f"{SHORT[a]} − {SHORT[b]}",
                     **{r["suite"]: interval_text(r, signed=True) + (f" ({r['direction']})" if r["n"] > 1 else "")
                        for _, r in g.iterrows()}})
    return pd.DataFrame(rows)


def central_claim(records: Sequence[dict]) -> dict[str, str]:
    """Per suite, the paper's central claim — both contrastive objectives end above both predictive ones, paired
    over seeds: "reproduced", "not reproduced" or "not tested (one seed)"."""
    frame = differences(records, [(c, p) for c in CONTRASTIVE for p in PREDICTIVE])
    out = {}
    for suite, g in frame.groupby("suite", sort=False):
        out[suite] = "not tested (one seed)" if (g["n"] < 2).any() else \
            "reproduced" if (g["direction"] == "higher").all() else "not reproduced"
    return out


def standings(records: Sequence[dict], facts: dict | None = None) -> pd.DataFrame:
    """Per suite: the objectives from highest to lowest final accuracy (`order`, with mean [95% interval], %;
    `ranking`, short names only), which of them are not above chance (`objectives_summary.above_chance`), classes
    and chance."""
    info = suite_facts(records, facts)
    rows = []
    for s in suites(records):
        order = sorted(kinds(records, longer=False), key=lambda k: -finals(records, k, s).mean())
        chance = info[s]["chance"]
        texts = {k: interval_text(accuracy_interval(finals(records, k, s), info[s].get("n"))) for k in order}
        rows.append({"suite": s, "classes": info[s]["n_classes"], "chance": chance,
                     "order": " > ".join(f"{OBJECTIVES[k]} ({texts[k]}%)" for k in order),
                     "ranking": " > ".join(SHORT[k] for k in order),
                     "at chance": [k for k in kinds(records, longer=False)
                                   if not osu.above_chance(records, k, s, chance)[0]]})
    return pd.DataFrame(rows)


def _seed_text(row: pd.Series) -> str:
    if row["bound"] in osu.MEASURED:
        return f"{row['ratio']:.1f}×" + "†" * (row["bound"] == "matched")
    return f"≥ {row['ratio_at_least']:.0f}×" if row["bound"] == "lower" else f"< {row['ratio_below']:g}×"


def efficiency_table(records: Sequence[dict], facts: dict | None = None,
                     pairs: Sequence[tuple[str, str]] | None = None) -> pd.DataFrame:
    """Per suite and pair (default `objectives_summary.pairs_for`: the paper's and CLIP's, and again against each
    longer budget): the paper's ratio, ours (`objectives_summary.efficiency_summary`: geometric mean over seeds [95%
    interval]; "—" where the slower objective never leaves chance) and each seed's ratio or bound."""
    info = suite_facts(records, facts)
    pairs = osu.pairs_for(records) if pairs is None else pairs
    rows = []
    for suite in suites(records):
        per_seed = osu.efficiency_ratios(records, suite, pairs, info[suite]["chance"])
        for _, row in osu.efficiency_summary(records, suite, info[suite]["chance"], pairs, per_seed).iterrows():
            seeds = per_seed[per_seed["pair"] == row["pair"]]
            rows.append({"suite": suite, "faster": short(row["faster"]), "than": short(row["slower"]),
                         "paper": f"{row['paper']:g}×" if math.isfinite(row["paper"]) else "—",
                         "ours (geometric mean [95% interval])": "— (the second stays at chance)"
                         if row["status"] == "untestable" else row["result"],
                         "per seed": ", ".join(_seed_text(r) for _, r in seeds.iterrows())})
    return pd.DataFrame(rows)


def budget_note(records: Sequence[dict], facts: dict | None = None, fast: str = "bow-predict",
                slow: str = "caption-lm") -> str:
    """Where `slow` never leaves chance on the first suite: what the paper's ratio of `fast` over it predicts at this
    budget — `fast` stays above chance from some number of images on (`objectives_summary.images_to_leave_chance`),
    so an objective that many times slower would leave chance only after that many times as many. Empty where
    `slow` ends above chance or the paper states no ratio for the pair."""
    suite = suites(records)[0]
    chance, paper = suite_facts(records, facts)[suite]["chance"], osu.PAPER_RATIOS.get((fast, slow))
    if paper is None or osu.above_chance(records, slow, suite, chance)[0]:
        return ""
    seen, left = images_seen(records), osu.images_to_leave_chance(records, fast, suite, chance)
    budget = seen[-1]
    reached = [n for n in left if n is not None]
    per_seed = ", ".join(compact(n) if n is not None else "never" for n in left)
    if not reached:
        return (f"On `{suite}` {OBJECTIVES[fast]} does not stay above chance within the budget either "
                f"(per seed: {per_seed}), so the budget says nothing about the paper's {paper:g}×.")
    first = min(reached)
    earlier = seen[seen.index(first) - 1] if seen.index(first) else 0  # the crossing lies after this snapshot
    low, high = paper * earlier, paper * first
    where = ("beyond" if low > budget else "within" if high <= budget else "around the end of")
    reading = {"beyond": "what the paper's ratio predicts here",
               "around the end of": "what the paper's ratio allows here",
               "within": f"slower than the paper's {paper:g}× would predict"}[where]
    return (f"On `{suite}` {OBJECTIVES[fast]} stays above chance from {per_seed} images on (per seed; the Wilson "
            f"95% interval of each snapshot above chance from there to the end; the earliest crossed after the "
            f"snapshot before it, {compact(earlier)} images). An objective {paper:g}× slower, as the paper finds "
            f"the {SHORT[slow]} to be, would leave chance after {compact(low)}–{compact(high)} images: {where} "
            f"this budget of {compact(budget)}. A {SHORT[slow]} still at chance at the end is {reading}; measuring "
            f"the ratio needs a budget for the {SHORT[slow]} of several times {compact(high)} images.")


def longer_note(records: Sequence[dict], facts: dict | None = None, fast: str = "bow-predict") -> str:
    """What each longer budget in the results shows on the first suite: where the objective ends against chance
    (`objectives_summary.above_chance`, over the seeds that hold it), from how many images on it stays above chance
    (`objectives_summary.images_to_leave_chance`), and `fast`'s ratio over it at the highest accuracy both reach
    (`efficiency_summary`). Empty where the results hold no longer budget."""
    suite = suites(records)[0]
    chance = suite_facts(records, facts)[suite]["chance"]
    out = []
    for kind, seeds in longer_runs(records).items():
        held = osu.with_objectives(records, kind)
        budget = osu.curve(held, kind, suite)[0][-1]
        above, why = osu.above_chance(held, kind, suite, chance)
        left = osu.images_to_leave_chance(held, kind, suite, chance)
        text = (f"Given {factor(kind)}× the budget ({compact(budget)} images; seed{'s' * (len(seeds) > 1)} "
                f"{', '.join(map(str, seeds))}) on `{suite}`, {why.replace(kind, 'the ' + SHORT[base_kind(kind)])}")
        stays = ", ".join(compact(n) if n is not None else "never" for n in left)
        if not above:
            own = [n for n in left if n is not None]
            where = (f": over seeds not distinguishable from chance, although {len(own)} of {len(left)} seeds end "
                     f"above it on their own images (staying above from {stays} images on, per seed)"
                     if own else ": still at chance in every seed")
            out.append(text + where + f", so the paper's ratio over the {SHORT[base_kind(kind)]} stays untestable "
                       f"on this suite at this budget too (the per-seed ratios are in the table above).")
            continue
        row = osu.efficiency_summary(held, suite, chance, [(fast, kind)]).iloc[0]
        out.append(text + f"; it stays above chance from {stays} images on (per seed). It needs {row['result']} as "
                   f"many images as {OBJECTIVES[fast]} to reach the same accuracy ({row['status']}"
                   f"{'; ' + row['reason'] if row['reason'] else ''}; the paper: {row['paper']:g}×).")
    return " ".join(out)
