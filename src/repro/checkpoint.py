"""Checkpoints as one safetensors file: the weights, plus JSON metadata (the CLIPConfig, the tokenizer's merges,
anything else) in the safetensors header. Nothing is ever unpickled; writes are atomic (temp file + rename), and
the header records a SHA-256 of the tensors, so a file damaged on disk is detected when it is read."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .files import atomic_write

CONFIG_KEY = "repro.config"
CHECKSUM_KEY = "repro.sha256"


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 of names, dtypes, shapes and bytes of `tensors` (CPU, contiguous), in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_state(path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict | None = None) -> None:
    """Write tensors and JSON-serialisable metadata to a safetensors file, atomically."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    header = {k: json.dumps(v) for k, v in (metadata or {}).items()}
    header[CHECKSUM_KEY] = tensors_sha256(tensors)
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=header))


def _decode(raw: dict[str, str]) -> dict:
    metadata = {}
    for k, v in raw.items():
        try:
            metadata[k] = json.loads(v)
        except json.JSONDecodeError:
            metadata[k] = v  # metadata written by other tools is plain strings
    return metadata


def read_metadata(path: str | os.PathLike) -> dict:
    """The JSON metadata of a safetensors file, without reading its tensors (nor checking them)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    try:
        with safe_open(path, framework="pt") as f:
            raw = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"{path} is not a readable safetensors file: {e}") from e
    return _decode(raw)


def load_state(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict]:
    """Read a safetensors file written by `save_state` (or any safetensors file: metadata may be empty). A file
    whose tensors do not match the checksum recorded when it was written raises ValueError naming it."""
    path = Path(path)
    metadata = read_metadata(path)
    try:
        tensors = load_file(path, device=str(device))
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"{path} is not a readable safetensors file: {e}") from e
    recorded = metadata.pop(CHECKSUM_KEY, None)
    if recorded is not None and recorded != tensors_sha256(tensors):
        raise ValueError(f"{path} is corrupt: its tensors do not match the SHA-256 recorded when it was written")
    return tensors, metadata
