"""Tables and figures of the data chapter (paper §2.2), from the committed summaries of a built corpus
(`results/data/<corpus>/`: `repro.data.summary.read_summary`), the runs of one recipe on two corpora
(`results/clip_small/cpu/corpus-*/`) and the evaluation sample that ships with the package."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ..book import ci_text
from ..data.suites import prompt, same_classes
from ..stats import difference_interval, interval_text

#: Sources whose pictures are not emoji (icons and clip art), as `counts_by_source` names them.
NOT_EMOJI = ("iconify", "openclipart-png")
#: The packed arrays the GPU machine can carry, data only (MiB): it receives at most 64 MiB, code included.
GPU_DATA_MIB = 60


def emoji_share(by_source: Mapping[str, int]) -> float:
    """The share (0–1) of emoji pictures among pictures counted per source (e.g. a split's `counts_by_source`)."""
    total = sum(by_source.values())
    return sum(v for k, v in by_source.items() if k not in NOT_EMOJI) / total if total else float("nan")


def facts(manifest: Mapping, suites: Mapping) -> dict:
    """What the chapter's summary says of one corpus build: its sources, training pictures, the emoji share of
    them, the evaluation splits and suites, the held-out styles, and the result of the build's leak check."""
    train = manifest["counts_by_source"].get("train", {})
    return {"sources": len(manifest["sources"]), "train": sum(train.values()), "emoji_share": emoji_share(train),
            "eval_splits": len([s for s in manifest["counts"] if s != "train"]), "suites": len(suites["suites"]),
            "held_out_styles": list(manifest["held_out_styles"]), "leak_check": manifest.get("leak_check", "—")}


def sources_table(manifest: Mapping) -> pd.DataFrame:
    """Every source package: name, pinned version and the client that fetched it, licence and attribution."""
    sources = pd.DataFrame(manifest["sources"], columns=["package", "version", "client", "licence", "attribution"])
    return pd.DataFrame({"package": sources["package"] + " " + sources["version"] + " (" + sources["client"] + ")",
                         "licence": sources["licence"], "attribution": sources["attribution"]})


def style_grid(grid: Mapping, held_out: Sequence[str] = ()):
    """The same concepts (rows) in every style (columns), the held-out styles framed in red."""
    import matplotlib.pyplot as plt

    images, styles, names = grid["images"], grid["styles"], grid["names"]
    fig, axes = plt.subplots(len(names), len(styles), figsize=(1.15 * len(styles), 1.2 * len(names) + 0.4),
                             squeeze=False)
    for i, name in enumerate(names):
        for j, style in enumerate(styles):
            ax = axes[i, j]
            ax.imshow(images[i, j])
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set(visible=style in held_out, color="#c44e52", linewidth=2)
            if i == 0:
                ax.set_title(style + ("\n(held out)" if style in held_out else ""), fontsize=8)
            if j == 0:
                ax.set_ylabel(name, fontsize=8, rotation=0, ha="right", va="center")
    fig.tight_layout()
    return fig


def _parts(parts: Mapping[str, int]) -> str:
    return " · ".join(f"{k} {v:,}" for k, v in sorted(parts.items(), key=lambda kv: -kv[1]))


def split_table(manifest: Mapping) -> pd.DataFrame:
    """One row per split: its pictures and what they are made of, by style and by source (largest first)."""
    by_source = manifest.get("counts_by_source", {})
    return pd.DataFrame([{"split": split, "pictures": sum(parts.values()), "by style": _parts(parts),
                          "by source": _parts(by_source.get(split, {}))}
                         for split, parts in sorted(manifest["counts"].items())],
                        columns=["split", "pictures", "by style", "by source"])


def dropped_table(manifest: Mapping) -> pd.DataFrame:
    """The pictures removed on the way to the training split, per reason, most first."""
    dropped = sorted(manifest["dropped"].items(), key=lambda kv: -kv[1])
    return pd.DataFrame(dropped, columns=["removed because", "pictures"])


def caption_table(captions: Mapping[str, Sequence[Mapping]], splits: Sequence[str] = ("train", "val"),
                  rows: int = 14) -> pd.DataFrame:
    """Example captions: one picture per split and style (at most `rows`), with its source and first captions."""
    frame = pd.DataFrame([{"split": split, "source": ex["concept_id"].split(":")[0], "style": ex["style"],
                           "captions": " · ".join(ex["captions"][:4])}
                          for split in splits for ex in captions.get(split, [])],
                         columns=["split", "source", "style", "captions"])
    return frame.drop_duplicates(["split", "style"]).head(rows).reset_index(drop=True)


def suite_table(suites: Mapping) -> pd.DataFrame:
    """Every evaluation suite: its shift, the label predicted, classes, templates and one example prompt."""
    return pd.DataFrame([{"suite": s["name"], "shift": s["shift"], "label": s["label"], "classes": len(s["classes"]),
                          "templates": len(s["templates"]),
                          "example prompt": prompt(s["templates"][0], s["classnames"][0])}
                         for s in suites["suites"]])


def licence_table(manifest: Mapping) -> pd.DataFrame:
    """Pictures and sources per licence, most pictures first."""
    lic = pd.DataFrame(manifest["licences"], columns=["source", "licence", "attribution", "images"])
    grouped = lic.groupby("licence").agg(pictures=("images", "sum"), sources=("attribution", "nunique"))
    return grouped.sort_values("pictures", ascending=False).reset_index()


def packed_table(manifest: Mapping) -> pd.DataFrame:
    """MiB of the packed arrays per split (rows) and picture size (columns), with an "all splits" row."""
    packed = pd.DataFrame(manifest["packed"])
    table = packed.assign(MiB=packed["bytes"] / 2**20).pivot_table(index="split", columns="size", values="MiB",
                                                                   aggfunc="sum")
    table.loc["all splits"] = table.sum()
    table.columns = [f"{c} px" for c in table.columns]
    return table.round(1).reset_index()


def gpu_size(manifest: Mapping, limit_mib: float = GPU_DATA_MIB) -> int | None:
    """The largest picture size at which every split's packed arrays together fit in `limit_mib`, else None."""
    packed = pd.DataFrame(manifest["packed"])
    totals = packed.groupby("size")["bytes"].sum() / 2**20
    fits = [int(s) for s, v in totals.items() if v <= limit_mib]
    return max(fits) if fits else None


def corpus_table(manifests: Mapping[str, Mapping]) -> pd.DataFrame:
    """Two (or more) corpus builds side by side: training pictures and pairs, captions per picture, names, caption
    vocabulary, words per caption, the emoji share of training pictures, and the build's time and memory."""
    rows = {}
    for name, m in manifests.items():
        st = m.get("statistics", {})
        train = m["counts_by_source"].get("train", {})
        rows[name] = {"training pictures": f"{sum(train.values()):,}",
                      "picture–caption pairs": f"{st['train_pairs']:,}" if "train_pairs" in st else "—",
                      "captions per picture (mean)": st.get("captions_per_picture", {}).get("mean", "—"),
                      "distinct names": f"{st['distinct_names']:,}" if "distinct_names" in st else "—",
                      "caption vocabulary (words)": f"{st['vocabulary_size']:,}" if "vocabulary_size" in st else "—",
                      "words seen ≥ 5 times": f"{st['words_seen_5_times']:,}" if "words_seen_5_times" in st else "—",
                      "words per caption (mean)": st.get("words_per_caption", {}).get("mean", "—"),
                      "emoji among training pictures (%)": round(100 * emoji_share(train), 1),
                      "build stamp": f"`{m.get('stamp', '—')}`",
                      "build time (minutes)": round(m["wall_time_s"] / 60) if "wall_time_s" in m else "—",
                      "peak memory (GiB)": round(m["peak_memory"]["builder_mib"] / 1024, 1)
                      if "builder_mib" in m.get("peak_memory", {}) else "—"}
    return pd.DataFrame(rows).rename_axis("").reset_index()


def corpus_effect(before, after, suites_before: Sequence[Mapping] = (), suites_after: Sequence[Mapping] = (),
                  names: tuple[str, str] = ("before", "after"), metric: str = "top1") -> pd.DataFrame:
    """One recipe trained on two corpora (`ExperimentResults` of `clip_small`): per suite both evaluated, its
    classes, `metric` (%) on each (columns named by `names`; mean [95% interval] over seeds, inside 0–100), the
    difference after − before (points; paired by seed where both have the same seeds, with its 95% interval) and
    whether both corpora's suite has the same classes ("—" where the suites are not given)."""
    alike = same_classes(suites_before, suites_after) if suites_before and suites_after else {}
    paired = before.seeds == after.seeds
    rows = []
    for suite, value in before.records[0]["metrics"].items():
        if not (isinstance(value, dict) and metric in value and isinstance(after.records[0]["metrics"].get(suite),
                                                                           dict)):
            continue
        b, a = np.array(before.values(f"{suite}|{metric}")), np.array(after.values(f"{suite}|{metric}"))
        diff = (difference_interval(a - b) if paired else
                {"mean": float(a.mean() - b.mean()), "low": float("nan"), "high": float("nan"), "n": 0})
        rows.append({"suite": suite, "classes": value.get("n_classes"),
                     f"{names[0]} (%)": ci_text(b),
                     f"{names[1]} (%)": ci_text(a),
                     "difference (points)": interval_text(diff, signed=True),
                     "same classes": {True: "yes", False: "no"}.get(alike.get(suite), "—")})
    return pd.DataFrame(rows)


def effect_facts(before, after, metric: str = "top1") -> dict:
    """What the chapter says of `corpus_effect`: each run's training steps, and over the emoji suites both
    evaluated the mean difference of `metric` after − before (points) and how many suites moved down and up."""
    shared = [s for s, v in before.records[0]["metrics"].items() if s.startswith("emoji-") and isinstance(v, dict)
              and metric in v and metric in after.records[0]["metrics"].get(s, {})]
    diff = np.array([100 * (np.mean(after.values(f"{s}|{metric}")) - np.mean(before.values(f"{s}|{metric}")))
                     for s in shared])
    return {"steps_before": before.records[0]["metrics"]["train"]["steps"],
            "steps_after": after.records[0]["metrics"]["train"]["steps"], "suites": len(diff),
            "mean": float(diff.mean()) if len(diff) else float("nan"), "lower": int((diff < 0).sum()),
            "higher": int((diff > 0).sum())}


def sample_table(sample) -> pd.DataFrame:
    """The shipped evaluation sample (`repro.data.sample.load_sample()`): pictures per split and licence."""
    return pd.crosstab(pd.Series(sample.fields["split"], name="split"),
                       pd.Series(sample.fields["licence"], name="licence"), margins=True, margins_name="all")
