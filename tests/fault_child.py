"""One training run or smoke experiment in its own process, killed with SIGKILL at a chosen point (for
tests/test_faults.py). A real kill -9: no `finally`, no atexit, no flush — whatever is on disk stays as it is.

usage: python fault_child.py '<json spec>' with spec keys
  kind: "train" (config: TrainConfig keys, resume: bool) | "experiment" (workdir, results: clip_small smoke seed 0)
  site: None | "step" (before the forward of optimizer step `at`) | "checkpoint" (the `at`-th checkpoint file
        written half, then killed) | "rename" (before the `at`-th os.replace of the process) | "result" (the result
        file written half into its temporary file, then killed)
  at:   1-based count of the site's events
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path


def kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def install(site: str | None, at: int) -> None:
    calls = {"n": 0}

    def hit() -> bool:
        calls["n"] += 1
        return calls["n"] == at

    if site == "step":
        import repro.train as t

        forward = t._Step.forward

        def step(self, *args):
            if hit():
                kill()
            return forward(self, *args)

        t._Step.forward = step
    elif site == "checkpoint":
        import repro.checkpoint as ck

        save_file = ck.save_file

        def half_written(tensors, path, metadata=None):
            save_file(tensors, path, metadata=metadata)
            if hit():
                with open(path, "r+b") as f:
                    f.truncate(os.path.getsize(path) // 2)
                kill()

        ck.save_file = half_written
    elif site == "rename":
        replace = os.replace

        def rename(src, dst):
            if hit():
                kill()
            return replace(src, dst)

        os.replace = rename
    elif site == "result":
        import repro.experiments.results as results
        from repro.files import atomic_write

        def write(path, text: str) -> None:
            def half(tmp: str) -> None:
                Path(tmp).write_text(text[: len(text) // 2], encoding="utf-8")
                kill()

            atomic_write(path, half)

        results.atomic_write_text = write


def main() -> None:
    spec = json.loads(sys.argv[1])
    import torch

    torch.set_num_threads(1)
    install(spec.get("site"), spec.get("at", 0))
    if spec["kind"] == "train":
        from repro.train import TrainConfig, train

        train(TrainConfig(**spec["config"]), resume=spec["resume"])
    else:
        from repro.experiments import clip_small

        clip_small.run("smoke", 0, Path(spec["workdir"]), Path(spec["results"]))


if __name__ == "__main__":
    main()
