"""The run for a lent GPU (`make gpu`): the `gpu` profile's headline — every seed of `clip_small` — then the
largest point of each family of the compute study (`scaling`), one unit after another, within a deadline.

Resumable: a unit whose result file is already in the results folder (committed from an earlier lease, or written
by an interrupted run) is skipped, and a unit is not started when the time left is less than the longest unit
run so far. Every result file, the log and a summary are copied flat into the output folder (`$OUT` on the device
machine): at most 8 files. `--profile smoke` runs the same code on a CPU in seconds (the end-to-end test).

    python -m repro.gpu --profile gpu --out "$OUT" --deadline-s 540
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

MAX_FILES = 8


@dataclass(frozen=True)
class Unit:
    experiment: str
    seed: int

    def result(self, profile: str, root: Path) -> Path:
        from .experiments.results import result_path

        return result_path(self.experiment, profile, self.seed, root)


def plan(profile: str) -> list[Unit]:
    """What a lease runs, in order: the headline's seeds first, then the study's largest points."""
    from .experiments import clip_small

    return [Unit("clip_small", s) for s in range(clip_small.PROFILES[profile]["seeds"])] + [Unit("scaling", 0)]


def run_unit(unit: Unit, profile: str, workdir: Path, results: Path) -> Path:
    from .experiments import clip_small, scaling

    if unit.experiment == "clip_small":
        return clip_small.run(profile, unit.seed, workdir, results)
    return scaling.run(profile, unit.seed, workdir, results, sizes=scaling.largest(profile))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m repro.gpu", description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", default="gpu", help="gpu on the lent machine; smoke to test the run on a CPU")
    p.add_argument("--out", type=Path, required=True, help="folder for the files that come back (≤ 8)")
    p.add_argument("--deadline-s", type=float, default=540.0, help="seconds the whole run may take")
    p.add_argument("--workdir", type=Path, default=Path("runs"), help="run folders (checkpoints, logs)")
    p.add_argument("--results", type=Path, default=Path("results"), help="results root (results/NAME/PROFILE/)")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s",
                        handlers=[logging.StreamHandler(), logging.FileHandler(args.out / "gpu.log")])
    log = logging.getLogger("repro.gpu")
    from .experiments.results import hardware
    from .files import atomic_write_text

    start, longest, rows = time.time(), 0.0, []
    for unit in plan(args.profile):
        path = unit.result(args.profile, args.results)
        row = {"experiment": unit.experiment, "seed": unit.seed, "result": str(path)}
        left = args.deadline_s - (time.time() - start)
        if path.is_file():
            rows.append(row | {"status": "kept (already there)"})
            log.info("%s seed %d: %s exists, skipped", unit.experiment, unit.seed, path)
            continue
        if left < longest:
            rows.append(row | {"status": f"not run: {left:.0f} s left, a unit took {longest:.0f} s"})
            log.info("%s seed %d: not started (%.0f s left; the longest unit took %.0f s)", unit.experiment,
                     unit.seed, left, longest)
            continue
        t0 = time.time()
        path = run_unit(unit, args.profile, args.workdir, args.results)
        longest = max(longest, time.time() - t0)
        rows.append(row | {"status": "ran", "wall_time_s": round(time.time() - t0, 1)})
        log.info("%s seed %d: %s in %.0f s", unit.experiment, unit.seed, path, time.time() - t0)
    copied = [r for r in rows if Path(r["result"]).is_file()][:MAX_FILES - 2]  # room for the log and summary
    for r in copied:  # written whole or not at all, as every result file
        atomic_write_text(args.out / f"{r['experiment']}-{args.profile}-seed{r['seed']}.json",
                          Path(r["result"]).read_text(encoding="utf-8"))
    summary = {"profile": args.profile, "deadline_s": args.deadline_s, "wall_time_s": round(time.time() - start, 1),
               "units": rows, "hardware": hardware()}
    atomic_write_text(args.out / "summary.json", json.dumps(summary, indent=1))
    log.info("done in %.0f s: %d of %d units have results", time.time() - start, len(copied), len(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
