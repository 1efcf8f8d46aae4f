"""A run folder (`out_dir`) and the rules that keep it whole.

- A folder that holds a run is never silently overwritten: a new run there is an error unless the caller resumes it
  or asks to replace it (experiments do, for the runs they own, and say so in the log).
- Resuming refuses settings that would change the run (lr, batch_size, …; `HARMLESS` ones such as progress,
  log_every, device or checkpoint_every may change) and a folder that holds no run (a mistyped out_dir).
- Checkpoints rotate: before `checkpoint.safetensors` is replaced, the current one is kept as
  `checkpoint.prev.safetensors` (a hard link). Every checkpoint records a SHA-256 of its tensors; on resume a
  damaged or cut-short `checkpoint.safetensors` is moved aside to `checkpoint.corrupt.safetensors` and the run
  continues from the previous one. A write that fails (a full disk) leaves both intact.
- Temporary files of an interrupted atomic write (`.checkpoint.safetensors.*.tmp`, …) are removed when the run
  starts again; a log line torn by a kill is dropped when the log is cut back to the checkpoint's step.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .checkpoint import load_state
from .files import atomic_write, atomic_write_text, remove_stray_temporaries
from .train_config import TrainConfig

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.safetensors"
PREVIOUS = "checkpoint.prev.safetensors"
CORRUPT = "checkpoint.corrupt.safetensors"
CONFIG = "config.json"
LOG = "metrics.jsonl"
MODEL = "model.safetensors"
RUN_FILES = (CONFIG, LOG, CHECKPOINT, PREVIOUS, CORRUPT, MODEL)
#: settings a resumed run may change: they do not alter what is trained (device may change the last bits)
HARMLESS = frozenset({"progress", "log_every", "device", "checkpoint_every", "compile", "out_dir", "corpus_dir"})


class RunFolderError(ValueError):
    """The run folder does not allow what was asked (a new run over an old one, a resume of nothing, …)."""


@dataclass
class Start:
    """Where a run begins: step 0, or a checkpoint read from disk (its path, tensors and metadata)."""

    step: int = 0
    path: Path | None = None
    tensors: dict[str, torch.Tensor] | None = None
    meta: dict | None = None


def run_files(out: Path) -> list[str]:
    """The files of a run present in `out`."""
    return [name for name in RUN_FILES if (out / name).exists()]


def settings(config: TrainConfig) -> dict:
    """The config as its JSON form (the form config.json and checkpoints hold)."""
    return json.loads(json.dumps(asdict(config)))


def changed_settings(config: TrainConfig, saved: dict) -> list[str]:
    """"key: saved -> new" for every setting of `config` that differs from the `saved` run's and alters the run."""
    defaults = settings(TrainConfig())
    return [f"{k}: {saved.get(k, defaults[k])!r} -> {v!r}" for k, v in settings(config).items()
            if k not in HARMLESS and saved.get(k, defaults[k]) != v]


def read_checkpoint(out: Path) -> tuple[Path, dict, dict] | None:
    """(path, tensors, metadata) of the newest readable checkpoint in `out`: checkpoint.safetensors, else the
    previous one (with a warning); None when there is none. Only unreadable ones: an error naming each."""
    problems = []
    for path in (out / CHECKPOINT, out / PREVIOUS):
        if not path.is_file():
            continue
        try:
            tensors, meta = load_state(path)
            if "step" not in meta or "train_config" not in meta:
                raise ValueError(f"{path} is not a training checkpoint (no step / train_config metadata)")
        except ValueError as e:
            problems.append(str(e))
            continue
        if problems:
            log.warning("%s; resuming from the previous checkpoint %s (step %d)", problems[0], path, meta["step"])
        return path, tensors, meta
    if problems:
        raise RunFolderError(f"no readable checkpoint in {out}: {'; '.join(problems)}; remove {out} to start over")
    return None


def plan(config: TrainConfig, resume: bool, replace: bool) -> Start:
    """Check `config.out_dir` against what is asked and read the checkpoint to resume from; writes nothing (every
    data-parallel rank calls it before rank 0 touches the folder)."""
    out = Path(config.out_dir)
    if not resume:
        present = run_files(out)
        if present and not replace:
            raise RunFolderError(f"{out} already holds a run ({', '.join(present)}): resume it (--resume), or "
                                 f"choose another out_dir (or remove {out}) to start a new run")
        return Start()
    found = read_checkpoint(out)
    if found is not None:
        saved = found[2]["train_config"]
    elif (out / CONFIG).is_file():
        saved = json.loads((out / CONFIG).read_text(encoding="utf-8"))
    else:
        raise RunFolderError(f"nothing to resume in {out}: it holds no {CHECKPOINT} (nor {CONFIG}); check "
                             "out_dir, or start a new run without --resume")
    changed = changed_settings(config, saved)
    if changed:
        raise RunFolderError(f"cannot resume the run in {out} with other settings ({'; '.join(changed)}): resume "
                             "with the run's settings, or start a new run in another out_dir")
    if found is None:
        log.warning("%s holds no checkpoint yet: the run starts over from step 0", out)
        return Start()
    path, tensors, meta = found
    return Start(int(meta["step"]), path, tensors, meta)


def begin(config: TrainConfig, start: Start, resume: bool) -> None:
    """Make `config.out_dir` ready for the run `plan` accepted (rank 0 only): stray temporary files removed, a
    corrupt checkpoint moved aside, the log cut back to the starting step (resume) or the folder emptied of an old
    run (replace) and config.json written."""
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in RUN_FILES:
        for tmp in remove_stray_temporaries(out / name):
            log.info("removed %s, left by an interrupted write", tmp)
    if start.path is not None and start.path.name == PREVIOUS and (out / CHECKPOINT).exists():
        os.replace(out / CHECKPOINT, out / CORRUPT)
        log.warning("moved the unreadable %s aside to %s", out / CHECKPOINT, out / CORRUPT)
    if resume:
        truncate_log(out / LOG, start.step)
        return
    present = run_files(out)
    if present:
        log.warning("replacing the run in %s (%s)", out, ", ".join(present))
        for name in present:
            (out / name).unlink()
    atomic_write_text(out / CONFIG, json.dumps(asdict(config), indent=1))


def truncate_log(path: Path, step: int) -> None:
    """Keep only log lines up to `step`, so a resumed run's log is the uninterrupted run's; a last line torn by a
    kill is dropped."""
    if not path.is_file():
        return
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    kept = []
    for i, ln in enumerate(lines):
        try:
            row = json.loads(ln)
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                log.warning("%s: dropped a torn last line", path)
                break
            raise ValueError(f"{path}: line {i + 1} is not JSON: {ln[:80]!r}") from None
        if row["step"] <= step:
            kept.append(ln)
    atomic_write_text(path, "".join(ln + "\n" for ln in kept))


def keep_previous(path: Path) -> None:
    """Before a new checkpoint replaces `path`: keep the current one as checkpoint.prev.safetensors (a hard link,
    or a copy where links are not supported), atomically."""
    prev = path.with_name(PREVIOUS)
    if not path.is_file() or (prev.exists() and os.path.samefile(path, prev)):
        return

    def link(tmp: str) -> None:
        os.unlink(tmp)
        try:
            os.link(path, tmp)
        except OSError:
            shutil.copyfile(path, tmp)

    atomic_write(prev, link)


def resumable(config: TrainConfig) -> bool:
    """True when `config.out_dir` holds a run of these very settings (a checkpoint or config.json) on the same
    training data, which `train(config, resume=True)` would continue."""
    from .checkpoint import read_metadata
    from .provenance import corpus_identity

    out = Path(config.out_dir)
    try:
        meta = read_metadata(out / CHECKPOINT) if (out / CHECKPOINT).is_file() else None
    except ValueError:
        meta = None  # unreadable: train's resume falls back to the previous checkpoint
    if meta is not None and "train_config" in meta:
        saved = meta["train_config"]
        corpus = meta.get("corpus") or {}
        if corpus.get("train_sha256") and corpus["train_sha256"] != corpus_identity(config)["train_sha256"]:
            return False
    elif (out / CONFIG).is_file():
        saved = json.loads((out / CONFIG).read_text(encoding="utf-8"))
    else:
        return False
    return not changed_settings(config, saved)
