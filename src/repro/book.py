"""What every chapter of the book does with results: find an experiment's result files (or run the experiment now,
at the active profile, and say so), say where each number came from, and show numbered tables with a CSV download.

Chapters execute with the chapter folder as working directory; paths default accordingly (`../results`).
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .edition import book_revision, citation, repository_url, sources_note, trained_model
from .experiments.results import load_results, mean_ci
from .models.naming import baseline_name, baseline_names, describe

# Progress bars in an executed notebook fall back to text when ipywidgets is absent; the warning saying so would
# otherwise be printed into the page.
warnings.filterwarnings("ignore", message="IProgress not found")

__all__ = ["PROFILES", "ExperimentResults", "experiment_results", "fmt_ci", "markdown_table", "table", "repo_root",
           "sources_note", "citation", "book_revision", "repository_url", "describe", "baseline_name",
           "baseline_names", "trained_model"]

#: Committed result profiles, best first: the book shows `gpu` results when they exist, else `cpu`.
PROFILES = ("gpu", "cpu")


def repo_root() -> Path:
    """The repository root: the first parent of the working directory with a `_toc.yml`."""
    here = Path.cwd().resolve()
    for path in (here, *here.parents):
        if (path / "_toc.yml").is_file():
            return path
    return here


@dataclass
class ExperimentResults:
    """The result records of one experiment at one profile (one per seed) and how they were obtained."""

    name: str
    profile: str
    records: list[dict]
    root: Path
    fallback: bool = False
    workdir: Path | None = field(default=None, repr=False)

    @property
    def seeds(self) -> list[int]:
        return [r["seed"] for r in self.records]

    def values(self, path: str) -> list[float]:
        """One metric (a "|"-separated path into `metrics`) per seed."""
        from .experiments.results import metric

        return [metric(r, path) for r in self.records]

    def array(self, path: str) -> np.ndarray:
        """One metric per seed (`values`) as a float array, for arithmetic across metrics."""
        return np.array(self.values(path), dtype=float)

    def ci(self, path: str) -> dict:
        """Mean and 95% CI over seeds of one metric (`repro.experiments.results.mean_ci`)."""
        return mean_ci(self.values(path))

    def accuracy(self, path: str) -> dict:
        """Mean of an accuracy over seeds with a 95% interval inside [0, 1] (`repro.stats.accuracy_interval`)."""
        from .stats import accuracy_interval

        return accuracy_interval(self.values(path))

    def difference(self, a: str, b: str) -> dict:
        """Mean of the per-seed difference of two metrics (a − b, paired over seeds) with its t interval
        (`repro.stats.difference_interval`)."""
        from .stats import difference_interval

        return difference_interval([x - y for x, y in zip(self.values(a), self.values(b), strict=True)])

    def suite_facts(self) -> dict[str, dict]:
        """Split, label, class count and chance level of every suite, keyed by name, without the corpus: as the
        result files recorded them (`repro.experiments.common.suite_facts`), or, for files written before they
        did, from the committed summary of their corpus (`results/data/<corpus>/suites.json`)."""
        import json

        from .data.suites import Suite
        from .experiments.common import suite_facts

        recorded = self.records[0]["metrics"].get("suites") if self.records else None
        if recorded:
            return recorded
        corpus = self.records[0]["config"]["corpus"]
        path = self.root / "data" / corpus / "suites.json"
        if not path.is_file():
            raise FileNotFoundError(f"the {self.name} results record no suites and {path} is missing")
        return suite_facts(Suite.from_dict(s) for s in json.loads(path.read_text(encoding="utf-8"))["suites"])

    def name_occurrence(self) -> dict | None:
        """The name-occurrence record (`repro.data.vocabulary.name_occurrence`) of the corpus the results were
        trained on, from its committed summary (`results/data/<corpus>/names.json`); None when there is none."""
        import json

        corpus = self.records[0]["config"].get("corpus") if self.records else None
        path = self.root / "data" / str(corpus) / "names.json"
        return json.loads(path.read_text(encoding="utf-8")) if corpus and path.is_file() else None

    def notice(self) -> str:
        """A MyST admonition when the results were produced while the page executed, else an empty string."""
        if not self.fallback:
            return ""
        return (
            f"```{{warning}}\nNo committed `{self.name}` results were found (`results/{self.name}/gpu|cpu/`), so the "
            f"experiment was **run while this page executed, at the `{self.profile}` profile** (set by "
            "`REPRO_PROFILE`, default `smoke`: seconds, on generated shapes). The numbers below say nothing about "
            f"CLIP; run `repro run {self.name} --profile cpu` (or `make reproduce PROFILE=cpu`) to create real "
            "ones.\n```"
        )


def _fallback_dirs(name: str) -> tuple[Path, Path]:
    base = Path(os.environ.get("REPRO_FALLBACK_DIR", repo_root() / "_build" / "fallback"))
    return base / "results", base / "runs"


def experiment_results(name: str, results_root: str | os.PathLike | None = None,
                       profiles: Sequence[str] | None = None) -> ExperimentResults:
    """Results of experiment `name` for a chapter.

    With `REPRO_PROFILE` set, that profile's committed results are used; otherwise the first of `profiles`
    (default `PROFILES`: gpu, then cpu) that has result files. When none exists, the experiment is run now at
    `REPRO_PROFILE` (default `smoke`) into `_build/fallback/` (never into the committed `results/`), every seed of
    that profile, and the returned object's `fallback` is True: the chapter must show `notice()`.
    """
    from . import experiments

    root = Path(results_root) if results_root is not None else repo_root() / "results"
    active = os.environ.get("REPRO_PROFILE")
    for profile in [active] if active else list(profiles or PROFILES):
        records = load_results(name, profile, root)
        if records:
            return ExperimentResults(name, profile, records, root)
    profile = active or "smoke"
    module = experiments.get(name)
    if profile not in module.PROFILES:
        raise ValueError(f"experiment {name!r} has no profile {profile!r} (REPRO_PROFILE); "
                         f"it has {list(module.PROFILES)}")
    fb_results, fb_runs = _fallback_dirs(name)
    records = load_results(name, profile, fb_results)
    if not records:
        for seed in range(module.PROFILES[profile]["seeds"]):
            module.run(profile, seed, fb_runs, results_root=fb_results)
        records = load_results(name, profile, fb_results)
    return ExperimentResults(name, profile, records, fb_results, fallback=True, workdir=fb_runs)


def fmt_ci(stats: dict, scale: float = 100.0, digits: int = 1) -> str:
    """"mean [low, high]" for an interval of `repro.stats` (e.g. `ExperimentResults.accuracy`), "mean ± ci95" for
    `mean_ci`'s stats (scaled, e.g. to percent); just the mean for one seed."""
    if "low" in stats:
        from .stats import interval_text

        return interval_text(stats, scale, digits)
    mean = stats["mean"] * scale
    if stats.get("n", 0) < 2 or not math.isfinite(stats.get("ci95", math.nan)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {stats['ci95'] * scale:.{digits}f}"


def ci_text(values: Sequence[float], scale: float = 100.0, digits: int = 1) -> str:
    """"mean [low, high]" over seeds of per-seed accuracies `values` (an interval inside [0, 1]:
    `repro.stats.accuracy_interval`)."""
    from .stats import accuracy_interval, interval_text

    return interval_text(accuracy_interval([float(v) for v in values]), scale, digits)


def signed(values: Sequence[float] | dict, scale: float = 100.0, digits: int = 1) -> str:
    """A difference over seeds with its sign and 95% interval, "+1.2 [0.4, 2.0]" (just "+1.2" for one seed), from
    per-seed `values` (`repro.stats.difference_interval`) or from such stats (or `mean_ci`'s: "+1.2 ± 0.8")."""
    from .stats import difference_interval, interval_text

    stats = values if isinstance(values, dict) else difference_interval([float(v) for v in values])
    if "low" in stats:
        return interval_text(stats, scale, digits, signed=True)
    mean = stats["mean"] * scale
    if stats.get("n", 0) < 2 or not math.isfinite(stats.get("ci95", math.nan)):
        return f"{mean:+.{digits}f}"
    return f"{mean:+.{digits}f} ± {stats['ci95'] * scale:.{digits}f}"


def _cell(value: object) -> str:
    if isinstance(value, float):
        text = "—" if math.isnan(value) else f"{value:.4g}"
    else:
        text = "—" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(df: pd.DataFrame, index: bool = False) -> str:
    """A pipe table of `df` (floats to 4 significant digits, "—" for missing)."""
    frame = df.reset_index() if index else df
    head = "| " + " | ".join(_cell(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *rows])


def table(df: pd.DataFrame, name: str, caption: str, csv: pd.DataFrame | None = None, index: bool = False) -> str:
    """MyST for a numbered, labelled table (`{numref}` target `name`) with a CSV download of its data.

    The CSV (of `csv` if given — e.g. unrounded numbers — else of `df`) is written to `_build/tables/<name>.csv`
    and linked under the table. Display the returned text with `IPython.display.Markdown`.
    """
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name):
        raise ValueError(f"table name {name!r}: use lower-case letters, digits and '-' (it is a label and a file name)")
    if df.empty:  # results written before the table existed: still a (numbered) table, saying so
        df = pd.DataFrame({"": ["not in these results (written before this table existed)"]})
    path = repo_root() / "_build" / "tables" / f"{name}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    (csv if csv is not None else df).to_csv(path, index=index)
    caption = caption.replace("\n", " ")
    link = Path(os.path.relpath(path, Path.cwd())).as_posix()  # relative to the executing chapter's folder
    return (
        f"::::{{table}} {caption}\n:name: {name}\n:align: left\n\n{markdown_table(df, index)}\n::::\n\n"
        f"{{download}}`Download this table as CSV <{link}>`"
    )


def results_in(folder: str | os.PathLike, name: str, profile: str) -> ExperimentResults:
    """The seed files kept in another folder (e.g. `results/clip_small/cpu/corpus-large/`, a variant of a
    profile's run), as `ExperimentResults` of experiment `name` at `profile`."""
    from .experiments.results import load_records

    return ExperimentResults(name, profile, load_records(Path(folder)), Path(folder))


def compare_results(before: ExperimentResults, after: ExperimentResults, metric: str = "top1") -> pd.DataFrame:
    """One row per suite that both sets of results evaluated: `metric` as mean ± 95% CI over each set's seeds,
    and the difference of the means (points), e.g. the same recipe trained on two corpora."""
    first_b, first_a = before.records[0]["metrics"], after.records[0]["metrics"]
    rows = []
    for suite, value in first_b.items():
        if not (isinstance(value, dict) and metric in value and isinstance(first_a.get(suite), dict)):
            continue
        b, a = before.values(f"{suite}|{metric}"), after.values(f"{suite}|{metric}")
        rows.append({"suite": suite, "classes": value.get("n_classes"), "before": ci_text(b), "after": ci_text(a),
                     "difference (points)": round(100 * (float(np.mean(a)) - float(np.mean(b))), 1),
                     "seeds": f"{len(b)} / {len(a)}"})
    return pd.DataFrame(rows)


#: The order in which the book lists kinds of evaluation (suite `shift`s): the paper's zero-shot first.
SHIFT_ORDER = ("zero-shot concepts", "in-distribution", "held-out style", "held-out icon set", "real photos",
               "unseen words")


def zero_shot_table(results: ExperimentResults, names: dict | None = None) -> pd.DataFrame:
    """One row per zero-shot suite of `results` (kinds in SHIFT_ORDER): classes, the share of class names that
    occur in training captions (from a `repro.data.vocabulary.name_occurrence` record, if given), top-1 and top-5
    (mean ± 95% CI over seeds, %) and chance (1/classes, %)."""
    first = results.records[0]["metrics"]
    occurs = (names or {}).get("suites", {})
    rows = []
    for suite, m in first.items():
        if not (isinstance(m, dict) and "top1" in m and "shift" in m):
            continue
        named = occurs.get(suite)
        rows.append({"suite": suite, "kind": m["shift"], "classes": m["n_classes"],
                     "named in training (%)": round(100 * named["named_in_training"] / named["n_classes"])
                     if named else None,
                     "top-1 (%)": ci_text(results.values(f"{suite}|top1")),
                     "top-5 (%)": ci_text(results.values(f"{suite}|top5")),
                     "chance (%)": round(100 / m["n_classes"], 2)})
    order = {s: i for i, s in enumerate(SHIFT_ORDER)}
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    return frame.sort_values("kind", key=lambda k: k.map(lambda s: order.get(s, len(order))), kind="stable")


def versus_chance(stats: dict, chance: float) -> str:
    """Whether a mean accuracy over seeds (`mean_ci` stats) is above `chance`: its 95% CI must exclude it."""
    if stats["n"] < 2:
        return "one seed only: no verdict"
    low = stats["mean"] - (stats["ci95"] if math.isfinite(stats["ci95"]) else 0.0)
    return "above chance (CI excludes chance)" if low > chance else "not distinguishable from chance"


def sign_of(values: Sequence[float] | np.ndarray) -> int:
    """+1 / −1 when a per-seed difference is positive / negative beyond its 95% CI over seeds (for one seed: its
    sign), else 0."""
    stats = mean_ci([float(v) for v in values])
    ci = stats["ci95"] if math.isfinite(stats["ci95"]) else 0.0
    return 1 if stats["mean"] - ci > 0 else -1 if stats["mean"] + ci < 0 else 0


def seed_band(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column of `values` (seeds in rows): the mean and its 95% CI band over seeds (no band for one seed)."""
    stats = [mean_ci([float(v) for v in values[:, j]]) for j in range(values.shape[1])]
    mean = np.array([s["mean"] for s in stats])
    half = np.array([s["ci95"] if s["n"] > 1 and math.isfinite(s["ci95"]) else 0.0 for s in stats])
    return mean, mean - half, mean + half
