"""Fault injection (issue 14): a run killed with SIGKILL at random points — during a step, while a checkpoint is
written, at any rename of an atomic write, while an experiment writes its result — and then resumed ends with the
loss curve, weights and result of a run that was never interrupted; a checkpoint damaged on disk is detected and
the previous one is used; a full disk during a checkpoint write leaves the previous checkpoint intact and says so.
Every fault is counted; the session's summary reports how many were injected and survived."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO, build_smoke, record_fault, tiny_config, tiny_settings

from repro.checkpoint import load_state
from repro.experiments.common import limited_threads
from repro.files import stray_temporaries
from repro.runs import CHECKPOINT, CORRUPT, PREVIOUS, RUN_FILES, RunFolderError, run_files
from repro.train import CheckpointNotWritten, read_log, train

CHILD = Path(__file__).with_name("fault_child.py")
CURVE = ("step", "loss", "lr", "logit_scale", "temperature")
TIMING = {"img_s", "wall_time_s", "train_wall_time_s", "created", "hardware", "eval_time_s"}
#: how many of each event an 8-step run with checkpoints at 4 and 8 has: forwards, checkpoint files, renames
#: (config.json, checkpoint 4, checkpoint.prev + checkpoint 8, model)
EVENTS = {"step": 8, "checkpoint": 2, "rename": 5}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    return build_smoke(tmp_path_factory.mktemp("data"))


def curve(out: Path) -> list[dict]:
    return [{k: r[k] for k in CURVE if k in r} for r in read_log(out / "metrics.jsonl")]


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_state(path)[0]


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = weights(a), weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.fixture(scope="module")
def reference(corpus, tmp_path_factory) -> Path:
    """An uninterrupted run (one thread, as the child processes train)."""
    out = tmp_path_factory.mktemp("reference") / "run"
    with limited_threads(1):
        train(tiny_config(corpus, out))
    return out


def child(spec: dict, data: Path | None = None) -> int:
    """Run tests/fault_child.py with `spec`; its exit status (0, or -9 when the fault killed it)."""
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    if data is not None:
        env["REPRO_DATA"] = str(data)
    done = subprocess.run([sys.executable, str(CHILD), json.dumps(spec)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode in (0, -signal.SIGKILL), done.stderr[-3000:]
    return done.returncode


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kill_9_at_random_points_then_resume_gives_the_uninterrupted_run(corpus, reference, tmp_path, seed) -> None:
    """Three kills at random points of one run (one per site); after each, the run is started again as a user
    would (resumed when the folder holds a run, else started); the result is the uninterrupted run's, with nothing
    left over."""
    rng = random.Random(seed)
    out = tmp_path / "run"
    settings = tiny_settings(corpus, out)
    kills = []
    for site in rng.sample(sorted(EVENTS), len(EVENTS)):  # every site once, in a random order
        at = rng.randint(1, EVENTS[site])
        rc = child({"kind": "train", "config": settings, "resume": bool(run_files(out)), "site": site, "at": at})
        if rc == -signal.SIGKILL:
            kills.append(site)
    assert child({"kind": "train", "config": settings, "resume": bool(run_files(out))}) == 0
    assert curve(out) == curve(reference)
    assert same_weights(out / "model.safetensors", reference / "model.safetensors")
    assert load_state(out / CHECKPOINT)[1]["step"] == 8
    assert [p for name in RUN_FILES for p in stray_temporaries(out / name)] == []
    assert kills, "no fault was injected"
    for site in kills:
        record_fault(f"kill -9 during {site}", True)


def test_kill_9_in_an_experiment_then_rerun_gives_the_same_result(tmp_path) -> None:
    """clip_small (smoke) killed in a training step, then while writing its result file; run again each time,
    its result equals an uninterrupted run's (timings aside)."""
    ref, faulty, data = tmp_path / "ref", tmp_path / "faulty", tmp_path / "data"
    spec = {"kind": "experiment"}

    def result(root: Path) -> dict:
        text = (root / "results" / "clip_small" / "smoke" / "seed0.json").read_text(encoding="utf-8")
        return _without(json.loads(text), TIMING)

    assert child(spec | {"workdir": str(ref / "w"), "results": str(ref / "results")}, data) == 0
    where = {"workdir": str(faulty / "w"), "results": str(faulty / "results")}
    step = random.Random(3).randint(1, 40)
    assert child(spec | where | {"site": "step", "at": step}, data) == -signal.SIGKILL
    assert child(spec | where | {"site": "result", "at": 1}, data) == -signal.SIGKILL
    assert not (faulty / "results" / "clip_small" / "smoke" / "seed0.json").exists()
    assert child(spec | where, data) == 0
    mine, theirs = result(faulty), result(ref)
    mine["config"]["out_dir"] = theirs["config"]["out_dir"]
    assert Path(mine["config"]["tokenizer"]).name == Path(theirs["config"]["tokenizer"]).name  # in each workdir
    mine["config"]["tokenizer"] = theirs["config"]["tokenizer"]
    assert mine == theirs
    assert list((faulty / "results" / "clip_small" / "smoke").iterdir()) == [
        faulty / "results" / "clip_small" / "smoke" / "seed0.json"]
    record_fault("kill -9 during an experiment's step", True)
    record_fault("kill -9 during a result write", True)


def _without(value, keys: set[str]):
    if isinstance(value, dict):
        return {k: _without(v, keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list):
        return [_without(v, keys) for v in value]
    return value


@pytest.mark.parametrize("damage", ["flipped bytes", "cut short"])
def test_a_damaged_checkpoint_is_detected_and_the_previous_one_used(corpus, reference, tmp_path, damage,
                                                                    caplog) -> None:
    out = tmp_path / "run"
    with limited_threads(1):
        train(tiny_config(corpus, out, checkpoint_every=2), stop_after=7)  # checkpoints 2, 4, 6: current 6, prev 4
        assert load_state(out / PREVIOUS)[1]["step"] == 4
        path = out / CHECKPOINT
        raw = bytearray(path.read_bytes())
        if damage == "flipped bytes":
            raw[-100:-90] = bytes(b ^ 0xFF for b in raw[-100:-90])
        else:
            raw = raw[: len(raw) * 2 // 3]
        path.write_bytes(bytes(raw))
        with caplog.at_level("WARNING"):
            train(tiny_config(corpus, out, checkpoint_every=2), resume=True)
    assert "resuming from the previous checkpoint" in caplog.text and f"{path}" in caplog.text
    assert (out / CORRUPT).is_file()
    assert curve(out) == curve(reference)
    assert same_weights(out / "model.safetensors", reference / "model.safetensors")
    record_fault(f"checkpoint on disk {damage}", True)


def test_two_damaged_checkpoints_are_an_error_naming_both(corpus, tmp_path) -> None:
    out = tmp_path / "run"
    train(tiny_config(corpus, out, checkpoint_every=2), stop_after=5)
    for name in (CHECKPOINT, PREVIOUS):
        (out / name).write_bytes((out / name).read_bytes()[:1000])
    with pytest.raises(RunFolderError, match=rf"no readable checkpoint in {out}: .*{CHECKPOINT}.*{PREVIOUS}"):
        train(tiny_config(corpus, out, checkpoint_every=2), resume=True)
    record_fault("both checkpoints damaged (refused)", True)


def test_a_torn_log_line_is_dropped_on_resume(corpus, reference, tmp_path) -> None:
    out = tmp_path / "run"
    with limited_threads(1):
        train(tiny_config(corpus, out), stop_after=6)
        with open(out / "metrics.jsonl", "a") as f:
            f.write('{"step": 7, "loss": 2.')  # a kill in the middle of a log append
        train(tiny_config(corpus, out), resume=True)
    assert curve(out) == curve(reference)
    record_fault("torn log line", True)


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MB tmpfs (needs root and permission to mount); skipped with the reason where it cannot be mounted."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)], capture_output=True,
                             text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill a disk here: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_full_disk_during_a_checkpoint_write_keeps_the_previous_one(corpus, reference, small_disk) -> None:
    out = small_disk / "run"
    filler = small_disk / "filler"

    def fill(step: int, objective) -> None:
        if step == 4:  # just after checkpoint 4: leave room for log lines, not for checkpoint 8
            st = os.statvfs(small_disk)
            with open(filler, "wb") as f:
                f.write(b"\0" * (st.f_bavail * st.f_frsize - 64 * 1024))

    with limited_threads(1), pytest.raises(CheckpointNotWritten) as caught:
        train(tiny_config(corpus, out), callback=fill)
    message = str(caught.value)
    assert "could not write the checkpoint of step 8" in message and "No space left on device" in message
    assert f"the previous checkpoint is intact: {out / CHECKPOINT} (step 4)" in message
    assert load_state(out / CHECKPOINT)[1]["step"] == 4
    assert [p for name in RUN_FILES for p in stray_temporaries(out / name)] == []
    filler.unlink()
    with limited_threads(1):
        train(tiny_config(corpus, out), resume=True)
    assert curve(out) == curve(reference)
    record_fault("full disk during a checkpoint write", True)
