"""Result files with provenance, and the one place where results over seeds are aggregated.

A result file is JSON: {"experiment", "profile", "seed", "config", "metrics", "curves", "git_revision",
"hardware", "wall_time_s", "versions", "created"}, written atomically to results/NAME/PROFILE/seed<K>.json.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from ..files import atomic_write_text, remove_stray_temporaries
from ..provenance import cpu_record

RESULTS = Path(os.environ.get("REPRO_RESULTS", "results"))


def git_revision() -> str:
    """HEAD's commit, with "+dirty" when tracked files are modified; "unknown" outside a git checkout."""
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, check=True).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def hardware() -> dict:
    """What the numbers were measured on."""
    import torch

    found = cpu_record()
    info = {"cpu": found.pop("cpu", None) or platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "os": platform.platform(), **found}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def versions() -> dict:
    import numpy
    import torch

    from .. import __version__

    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
            "repro": __version__}


def result_path(name: str, profile: str, seed: int, root: Path | None = None) -> Path:
    return Path(root or RESULTS) / name / profile / f"seed{seed}.json"


def provenance(wall_time_s: float) -> dict:
    """Where and when a result was measured: revision, hardware, versions, wall time and the time it was written."""
    return {"git_revision": git_revision(), "hardware": hardware(), "wall_time_s": round(wall_time_s, 1),
            "versions": versions(), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def added_runs(record: dict) -> dict[str, dict]:
    """The runs added to a result after it was written (`objectives.extend`), by name: each entry of a metrics group
    that carries its own "provenance" (revision, hardware, versions, wall time, date), mapped to that provenance."""
    return {name: entry["provenance"] for group in record.get("metrics", {}).values() if isinstance(group, dict)
            for name, entry in group.items() if isinstance(entry, dict) and isinstance(entry.get("provenance"), dict)}


def write_result(name: str, profile: str, seed: int, config: dict, metrics: dict, wall_time_s: float,
                 curves: dict | None = None, root: Path | None = None) -> Path:
    """Write one run's result file atomically; returns its path."""
    record = {"experiment": name, "profile": profile, "seed": seed, "config": config, "metrics": metrics,
              "curves": curves or {}} | provenance(wall_time_s)
    return write_record(result_path(name, profile, seed, root), record)


def write_record(path: Path, record: dict) -> Path:
    """Write a result record to `path` atomically (a reader never sees half a file); returns `path`."""
    remove_stray_temporaries(path)  # left by a run killed while writing it (one writer per result file)
    atomic_write_text(path, json.dumps(record, indent=1, ensure_ascii=False, default=float))
    return path


def load_results(name: str, profile: str, root: Path | None = None) -> list[dict]:
    """Every seed's result of an experiment at a profile, sorted by seed (empty if none)."""
    return load_records(Path(root or RESULTS) / name / profile)


def load_records(folder: Path) -> list[dict]:
    """The result files `seed*.json` in `folder`, sorted by seed (empty if none)."""
    return sorted((json.loads(p.read_text()) for p in Path(folder).glob("seed*.json")), key=lambda r: r["seed"])


# two-sided 95% Student t quantiles for 1..30 degrees of freedom (beyond: normal)
_T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def t95(dof: int) -> float:
    """The two-sided 95% Student t quantile for `dof` ≥ 1 degrees of freedom (the normal 1.96 beyond 30)."""
    if dof < 1:
        raise ValueError(f"a t quantile needs 1 or more degrees of freedom, got {dof}")
    return _T95[dof - 1] if dof <= len(_T95) else 1.96


def mean_ci(values: Sequence[float]) -> dict:
    """Mean, sample standard deviation and the 95% confidence half-width (Student t) over seeds."""
    n = len(values)
    if n == 0:
        return {"mean": math.nan, "std": math.nan, "ci95": math.nan, "n": 0}
    mean = sum(values) / n
    if n == 1:
        return {"mean": mean, "std": math.nan, "ci95": math.nan, "n": 1}
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    t = t95(n - 1)
    return {"mean": mean, "std": std, "ci95": t * std / math.sqrt(n), "n": n}


def metric(record: dict, path: str) -> float:
    """A metric by a "|"-separated path, e.g. "zeroshot|emoji-category/val|top1" (suite names contain "/")."""
    value = record["metrics"]
    for part in path.split("|"):
        value = value[part]
    return float(value)
