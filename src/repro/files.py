"""Writing files so that nothing is lost: a crash mid-write leaves the previous file intact."""

from __future__ import annotations

import glob
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call `write(tmp_path)` on a temporary file beside `path`, fsync it, then rename it onto `path`: a crash
    leaves either the old file or the new one, never a partial one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates files readable by their owner only
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""

    def write(tmp: str) -> None:
        Path(tmp).write_text(text, encoding="utf-8")

    atomic_write(path, write)


def stray_temporaries(path: str | os.PathLike) -> list[Path]:
    """Temporary files that an interrupted `atomic_write` of `path` left beside it (a kill -9 runs no cleanup)."""
    path = Path(path)
    return sorted(path.parent.glob(f".{glob.escape(path.name)}.*.tmp")) if path.parent.is_dir() else []


def remove_stray_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove what `stray_temporaries(path)` lists; returns the removed paths. Call it only where no other process
    is writing `path` (e.g. a run folder at the start of its run)."""
    removed = stray_temporaries(path)
    for tmp in removed:
        tmp.unlink(missing_ok=True)
    return removed
