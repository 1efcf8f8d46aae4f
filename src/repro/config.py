"""Configuration objects are dataclasses read from JSON; a key they do not have is an error, never ignored."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields


def check_keys(cls: type, data: Mapping, what: str) -> None:
    """Raise ValueError naming every key of `data` that is not a field of dataclass `cls`."""
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"unknown {what} keys: {unknown}; known keys are {sorted(names)}")


def progress_disabled() -> bool:
    """True when the environment asks for no progress bars (`TQDM_DISABLE`, tqdm's own variable, set to anything
    but "" / "0" / "false"): the book sets it, since bars belong on a terminal, not on a rendered page. tqdm reads
    it only for bars whose `disable` is not passed; the package's bars pass one, so they ask here."""
    import os

    return os.environ.get("TQDM_DISABLE", "").strip().lower() not in ("", "0", "false")
