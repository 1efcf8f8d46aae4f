"""Tables of the reproducibility appendix, from every committed result file (`results/NAME/PROFILE/seedK.json`,
`repro.experiments.results`): a re-run compared number by number with the original, what was run where and when,
each experiment's configuration, the package versions, and where our setup departs from the paper's."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from ..experiments import EXPERIMENTS
from ..experiments.results import added_runs, load_results
from ..models.naming import describe, effective_config

Runs = Mapping[tuple[str, str], Sequence[dict]]
DIRTY = "+dirty"
#: Metrics left out of a re-run comparison: timings differ between any two runs.
TIMINGS = ("img_s", "time")


def committed_runs(root: Path, profiles: Iterable[str] = ("gpu", "cpu", "smoke")) -> dict[tuple[str, str], list]:
    """Every experiment's committed result records under `root`, keyed (experiment, profile); only those found."""
    runs = {(name, profile): load_results(name, profile, root) for name in EXPERIMENTS for profile in profiles}
    return {key: records for key, records in runs.items() if records}


def short_revision(revision: str) -> str:
    """A recorded git revision cut to 10 hex digits, its "+dirty" mark kept."""
    return revision[:10] + (DIRTY if revision.endswith(DIRTY) else "")


def numbers(tree: Mapping, prefix: str = "") -> dict[str, float]:
    """Every number in a nested mapping (e.g. a result's `metrics`), keyed by its "/"-joined path; booleans are
    not numbers here."""
    out: dict[str, float] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out |= numbers(value, f"{prefix}{key}/")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[prefix + key] = float(value)
    return out


def rerun_check(original: Mapping, rerun: Mapping) -> dict:
    """Two result files of one run, compared number by number (timings left out): the revisions, the numbers both
    have (`shared`), how many are identical, and the others as (absolute difference, path), largest first."""
    a, b = numbers(original["metrics"]), numbers(rerun["metrics"])
    shared = [k for k in a if k in b and not any(t in k for t in TIMINGS)]
    moved = sorted(((abs(a[k] - b[k]), k) for k in shared if a[k] != b[k]), reverse=True)
    return {"original": short_revision(original["git_revision"]), "rerun": short_revision(rerun["git_revision"]),
            "rerun_clean": not rerun["git_revision"].endswith(DIRTY), "date": rerun["created"][:10],
            "shared": len(shared), "identical": len(shared) - len(moved), "moved": moved}


def _pair(folder: Path, seed: int, reruns: str) -> tuple[dict, dict] | None:
    """`folder/seed{seed}.json` and its re-run in `folder/{reruns}/`, read; None if either is missing."""
    files = [Path(folder) / sub / f"seed{seed}.json" for sub in (".", reruns)]
    return tuple(json.loads(f.read_text()) for f in files) if all(f.is_file() for f in files) else None


def processor(hw: Mapping) -> str:
    """A result's CPU as the book names it: the model name, with its family/model numbers and matrix instruction
    sets where the result records them (`results.hardware`; one name can cover processors with and without bf16)."""
    detail = [f"family/model {hw['cpu_family_model']}"] if hw.get("cpu_family_model") else []
    detail += [", ".join(hw["cpu_matrix_flags"]) or "no AVX2"] if "cpu_matrix_flags" in hw else []
    return hw.get("cpu", "?") + (f" ({'; '.join(detail)})" if detail else "")


def run_on(record: Mapping) -> str:
    """Where a result was trained: its processor, and the precision its training recorded (`metrics.train`), if any
    — a re-run's two axes of change."""
    precision = record["metrics"].get("train", {}).get("precision")
    return processor(record["hardware"]) + (f", {precision}" if precision else "")


def _checked(a: Mapping, b: Mapping) -> dict:
    return rerun_check(a, b) | {"hardware": (a["hardware"].get("cpu", "?"), b["hardware"].get("cpu", "?"))}


def load_rerun(folder: Path, seed: int = 0, reruns: str = "reruns") -> dict | None:
    """`rerun_check` of `folder/seed{seed}.json` against its second run in `folder/{reruns}/`, with the processor
    each ran on (`hardware`: original, rerun); None if either file is missing."""
    pair = _pair(folder, seed, reruns)
    return _checked(*pair) if pair else None


def largest_move(check: Mapping, part: str = "top1") -> tuple[float, str] | None:
    """The largest change of a re-run among the numbers whose path ends in `part` (e.g. zero-shot top-1
    accuracies), as (absolute difference, path); None when all of them are identical."""
    moved = [m for m in check["moved"] if m[1].rsplit("/", 1)[-1] == part]
    return moved[0] if moved else None


def mean_change(a: Mapping, b: Mapping, part: str = "top1") -> float:
    """Mean absolute difference between two result files' numbers whose path ends in `part` (NaN if none)."""
    x, y = numbers(a["metrics"]), numbers(b["metrics"])
    keys = [k for k in x if k in y and k.rsplit("/", 1)[-1] == part]
    return float(sum(abs(x[k] - y[k]) for k in keys) / len(keys)) if keys else float("nan")


def rerun_table(folder: Path, reruns: str, seeds: Sequence[int], headline: str = "emoji-concept/named/top1",
                part: str = "top1") -> pd.DataFrame:
    """One row per seed with a re-run in `folder/{reruns}/`: the processors, numbers identical of those shared, the
    largest and the mean change of a `part` number (points), the same mean change between this seed's original and
    the next seed's (what a change of seed alone does), and the `headline` metric in both runs (%)."""
    rows = []
    for k, seed in enumerate(seeds):
        pair = _pair(folder, seed, reruns)
        if pair is None:
            continue
        a, b = pair
        check = rerun_check(a, b)
        other = json.loads((Path(folder) / f"seed{seeds[(k + 1) % len(seeds)]}.json").read_text())
        big = largest_move(check, part)
        rows.append({"seed": seed, "original on": run_on(a), "re-run on": run_on(b),
                     "numbers identical": f"{check['identical']} of {check['shared']}",
                     f"largest {part} change": round(100 * big[0], 1) if big else 0.0,
                     f"mean {part} change": round(100 * mean_change(a, b, part), 2),
                     f"mean {part} change to another seed": round(100 * mean_change(a, other, part), 2),
                     f"{headline}, original": round(100 * numbers(a["metrics"])[headline], 1),
                     f"{headline}, re-run": round(100 * numbers(b["metrics"])[headline], 1)})
    return pd.DataFrame(rows)


def provenance_table(runs: Runs) -> pd.DataFrame:
    """One row per experiment and profile: seeds, hardware, minutes per seed, revisions, date, torch and Python
    versions, and the command that re-creates the files; then one row per run added to those files later
    (`results.added_runs`), read from that run's own provenance."""
    rows = []
    for (name, profile), records in runs.items():
        rows.append(_provenance_row(name, profile, [(r["seed"], r) for r in records], f"repro run {name} --profile "
                                    f"{profile}"))
        added: dict[str, list] = {}
        for r in records:
            for label, prov in added_runs(r).items():
                added.setdefault(label, []).append((r["seed"], prov))
        for label, seeds in added.items():
            rows.append(_provenance_row(f"{name}: {label} (added)", profile, seeds,
                                        f"repro run {name} --profile {profile} --extend"))
    return pd.DataFrame(rows)


def _provenance_row(experiment: str, profile: str, seeds: Sequence[tuple[int, dict]], command: str) -> dict:
    """A provenance table row from (seed, record or provenance) pairs: hardware and versions of the first."""
    first = seeds[0][1]
    hw, ver = first["hardware"], first["versions"]
    return {"experiment": experiment, "profile": profile, "seeds": ", ".join(str(s) for s, _ in seeds),
            "hardware": hw.get("gpu") or f"{processor(hw)}, {hw.get('cores', '?')} cores",
            "minutes per seed": round(sum(p["wall_time_s"] for _, p in seeds) / len(seeds) / 60, 1),
            "revision": ", ".join(sorted({short_revision(p["git_revision"]) for _, p in seeds})),
            "date": max(p["created"][:10] for _, p in seeds), "torch": ver.get("torch"),
            "python": ver.get("python"), "command": command}


def dirty_share(runs: Runs) -> tuple[int, int]:
    """(result files written from a working tree with uncommitted changes, all result files)."""
    every = [r for records in runs.values() for r in records]
    return sum(str(r["git_revision"]).endswith(DIRTY) for r in every), len(every)


def flatten(tree: Mapping, prefix: str = "") -> dict:
    """A nested mapping as one level, keys joined with "."."""
    out: dict = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out |= flatten(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_table(records: Sequence[dict], name: str = "", profile: str = "", root: Path | None = None
                 ) -> pd.DataFrame:
    """The first seed's configuration, one row per (flattened) key but the output and corpus folders, its value
    (JSON but for strings) and whether it differs across seeds. Where the configuration names a CLIP and the
    experiment's `name` is given, a first row names the model it built (`repro.edition.trained_model`)."""
    from ..book import ExperimentResults
    from ..edition import train_config_of, trained_model

    configs = [flatten(r["config"]) for r in records]
    keys = [k for k in configs[0] if not k.endswith(("out_dir", "corpus_dir"))]
    rows = [{"key": k, "value": v if isinstance(v := configs[0][k], str) else json.dumps(v),
             "varies across seeds": "yes" if len({json.dumps(c.get(k)) for c in configs}) > 1 else ""} for k in keys]
    config = records[0]["config"]
    if name and (train_config_of(config) or config.get("model")):
        built = trained_model(ExperimentResults(name, profile, list(records), Path(root or ".")))
        rows.insert(0, {"key": "(the CLIP built)", "value": built, "varies across seeds": ""})
    return pd.DataFrame(rows, columns=["key", "value", "varies across seeds"])


def versions_table(runs: Runs) -> pd.DataFrame:
    """Every package version recorded in the result files."""
    versions: dict[str, set] = {}
    for records in runs.values():
        for record in records:
            for package, version in record["versions"].items():
                versions.setdefault(package, set()).add(version)
    return pd.DataFrame([{"package": p, "versions used": ", ".join(sorted(v))} for p, v in sorted(versions.items())],
                        columns=["package", "versions used"])


def _value(value: object, unit: str = "") -> str:
    return "—" if value in (None, "") else f"{value}{unit}"


def corpus_builds(root: Path) -> pd.DataFrame:
    """Every corpus build whose summary is committed (`root/data/<corpus>/manifest.json`): date, build stamp, data
    seed and build time."""
    rows = []
    for path in sorted(Path(root).glob("data/*/manifest.json")):
        m = json.loads(path.read_text())
        rows.append({"corpus": f"`{m['corpus']}`", "built on": m["created"][:10], "build stamp": f"`{m['stamp']}`",
                     "data seed": m["config"]["seed"], "minutes": round(m["wall_time_s"] / 60, 1),
                     "summary": f"`results/data/{path.parent.name}/`"})
    return pd.DataFrame(rows, columns=["corpus", "built on", "build stamp", "data seed", "minutes", "summary"])


def rebuild_summaries(folder: Path) -> list[dict]:
    """A corpus's committed build summary (`folder/manifest.json`, the build the results trained on) followed by the
    summaries of its later rebuilds from the same recipe (`folder/rebuilds/*.json`, in name order)."""
    paths = [Path(folder) / "manifest.json", *sorted((Path(folder) / "rebuilds").glob("*.json"))]
    return [json.loads(p.read_text()) for p in paths if p.is_file()]


def rebuild_check(committed: Mapping, rebuilt: Mapping) -> dict:
    """Two build summaries of one corpus recipe compared (`manifest.json`): whether the stamps agree, which splits
    came out with the same number of pictures, and a table of every picture count (per split and style) and
    drop count (per reason) that differs, with the change."""
    def sizes(m: Mapping) -> dict[str, int]:
        return {p["split"]: p["n"] for p in m["packed"]}

    a_n, b_n = sizes(committed), sizes(rebuilt)
    rows = []
    for part, label in (("counts", "pictures"), ("dropped", "dropped")):
        a, b = ({k: int(v) for k, v in numbers(m.get(part, {})).items()} for m in (committed, rebuilt))
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                rows.append({"count": f"{label}: {key}", "committed build": a.get(key), "rebuild": b.get(key),
                             "change": b.get(key, 0) - a.get(key, 0)})
    return {"same_stamp": committed["stamp"] == rebuilt["stamp"], "splits": sorted(a_n | b_n),
            "same_size": sorted(k for k in a_n if b_n.get(k) == a_n[k]),
            "differ": sorted(k for k in a_n | b_n if a_n.get(k) != b_n.get(k)),
            "table": pd.DataFrame(rows, columns=["count", "committed build", "rebuild", "change"])}


def deviations_table(runs: Runs) -> pd.DataFrame:
    """Where our setup departs from the paper's (§2, Appendix F) and why, ours read from the first `clip_small`
    result of the best profile among `runs` (gpu, then cpu; "—" without one)."""
    records = runs.get(("clip_small", "gpu")) or runs.get(("clip_small", "cpu")) or []
    config = records[0]["config"] if records else {}
    ours = f"ours (`clip_small`, {records[0]['profile']})" if records else "ours"
    model = effective_config(config) if config.get("model") else None
    steps = (f"{config['steps']:,} steps of {config['batch_size']}" if config.get("steps")
             else f"{_value(config.get('epochs'))} epochs")
    tokenizer = (f"BPE trained on our captions, {model.vocab_size:,} tokens, context {model.context_length}"
                 if model and config.get("tokenizer") != "openai" else _value(config.get("tokenizer")))
    rows = [
        ("training data", "400M web image–text pairs (WIT)", "emoji, icons and clip art with their names and "
         "keywords (see Data)", "no captioned natural photos can be had here"),
        ("evaluation data", "27–36 datasets of natural images", "held-out art styles, unseen concepts, "
         "Fashion-MNIST, MNIST, digits", "idem"),
        ("image resolution", "224 px (336 for the best)", _value(config.get("data_size"), " px"), "compute"),
        ("model", "ViT-B/32 … ViT-L/14, RN50 … RN50x64", describe(config, details=True) if model else "—", "compute"),
        ("batch size", "32,768", _value(config.get("batch_size")), "compute; the contrastive task gets easier"),
        ("training length", "32 epochs", steps, "compute"),
        ("tokenizer", "BPE, 49,408 tokens, context 77", tokenizer, "our captions are short and few"),
        ("precision", "fp16 mixed precision", _value(config.get("precision")), "CPU"),
        ("warmup", "2,000 steps", _value(config.get("warmup_steps"), " steps"), "far fewer steps in total"),
    ]
    return pd.DataFrame(rows, columns=["", "paper", ours, "why"])
