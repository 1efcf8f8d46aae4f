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
