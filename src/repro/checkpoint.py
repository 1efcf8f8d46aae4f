"""Checkpoints as one safetensors file: the weights, plus JSON metadata (the CLIPConfig, the tokenizer's merges,
anything else) in the safetensors header. Nothing is ever unpickled; writes are atomic (temp file + rename)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .files import atomic_write

CONFIG_KEY = "repro.config"


def save_state(path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict | None = None) -> None:
    """Write tensors and JSON-serialisable metadata to a safetensors file, atomically."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    header = {k: json.dumps(v) for k, v in (metadata or {}).items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=header))


def load_state(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict]:
    """Read a safetensors file written by `save_state` (or any safetensors file: metadata may be empty)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    try:
        tensors = load_file(path, device=str(device))
        with safe_open(path, framework="pt") as f:
            raw = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"{path} is not a readable safetensors file: {e}") from e
    metadata = {}
    for k, v in raw.items():
        try:
            metadata[k] = json.loads(v)
        except json.JSONDecodeError:
            metadata[k] = v  # metadata written by other tools is plain strings
    return tensors, metadata
