"""Frozen CLIP features for evaluation (Radford et al., 2021, §3.1–3.2): every protocol — zero-shot, linear probe,
retrieval — compares L2-normalised image and text embeddings by cosine similarity, so features are computed once,
normalised, and kept on the CPU as float32."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext

import numpy as np
import torch
from tqdm.auto import tqdm

from ..config import progress_disabled
from ..data.tensors import model_input

__all__ = ["encode_images", "encode_texts", "model_device", "normalize"]

#: Show a progress bar when an input needs more than this many batches (unless `progress` says otherwise).
PROGRESS_MIN_BATCHES = 8


def normalize(x: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit L2 norm (an all-zero row stays zero), as float32."""
    x = x.float()
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a model without parameters)."""
    parameter = next(iter(model.parameters()), None) if hasattr(model, "parameters") else None
    return parameter.device if parameter is not None else torch.device("cpu")


def _input_dtype(model: object) -> torch.dtype:
    dtype = getattr(model, "dtype", None)
    return dtype if isinstance(dtype, torch.dtype) and dtype.is_floating_point else torch.float32


def _embed_dim(model: object) -> int:
    config = getattr(model, "config", None)
    dim = getattr(config, "embed_dim", None)
    if dim is None:
        raise ValueError("cannot encode an empty input: the model has no config.embed_dim to size the result")
    return int(dim)


class _EvalMode:
    """Context: the model in eval mode, gradients off, autocast to bf16 if asked; the training flag is restored."""

    def __init__(self, model: object, device: torch.device, bf16: bool) -> None:
        self.model, self.device, self.bf16 = model, device, bf16

    def __enter__(self) -> None:
        self.was_training = bool(getattr(self.model, "training", False))
        if hasattr(self.model, "eval"):
            self.model.eval()
        self.no_grad = torch.no_grad()
        self.no_grad.__enter__()
        self.autocast = (
            torch.autocast(device_type=self.device.type, dtype=torch.bfloat16) if self.bf16 else nullcontext()
        )
        self.autocast.__enter__()

    def __exit__(self, *exc: object) -> None:
        self.autocast.__exit__(*exc)
        self.no_grad.__exit__(*exc)
        if self.was_training and hasattr(self.model, "train"):
            self.model.train(True)


def _bar(total: int, batch_size: int, progress: bool | None, desc: str) -> tqdm:
    show = progress if progress is not None else total > PROGRESS_MIN_BATCHES * batch_size
    return tqdm(total=total, desc=desc, unit="item", disable=not show or progress_disabled(), leave=False)


def encode_images(
    model: torch.nn.Module,
    images_uint8: np.ndarray | torch.Tensor,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    bf16: bool = False,
    progress: bool | None = None,
) -> torch.Tensor:
    """L2-normalised image features, float32 [N, embed_dim] on the CPU, of packed uint8 images [N, H, W, 3].

    Each batch gets the evaluation preprocessing (`tensors.model_input`: resize to `model.config.image_resolution`,
    CLIP's normalisation) and `model.encode_image` in eval mode without gradients; `bf16` runs it under bfloat16
    autocast. `device` defaults to the model's own device. A progress bar appears for long inputs (`progress=None`).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    images = images_uint8
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images))
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        shape = tuple(images.shape) if hasattr(images, "shape") else type(images).__name__
        raise ValueError(f"images must be uint8 [N, H, W, 3], got {getattr(images, 'dtype', '?')} {shape}")
    device = torch.device(device) if device is not None else model_device(model)
    if len(images) == 0:
        return torch.zeros(0, _embed_dim(model))
    size = int(model.config.image_resolution)
    dtype = _input_dtype(model)
    out = []
    with _EvalMode(model, device, bf16), _bar(len(images), batch_size, progress, "encode images") as bar:
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size].to(device, non_blocking=True)
            features = model.encode_image(model_input(batch, size).to(dtype))
            out.append(normalize(features).cpu())
            bar.update(len(batch))
    return torch.cat(out)


def encode_texts(
    model: torch.nn.Module,
    tokenizer: object,
    texts: Sequence[str],
    batch_size: int = 1024,
    context_length: int | None = None,
    device: str | torch.device | None = None,
    bf16: bool = False,
    progress: bool | None = None,
) -> torch.Tensor:
    """L2-normalised text features, float32 [len(texts), embed_dim] on the CPU (paper §3.1.2's classifier weights).

    Texts are tokenised with `tokenizer(batch, context_length=..., truncate=True)` (default context: the model's
    `context_length`); each distinct text is encoded once, so repeated captions or prompts cost nothing extra.
    """
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise TypeError("texts must be a list of str")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = torch.device(device) if device is not None else model_device(model)
    if len(texts) == 0:
        return torch.zeros(0, _embed_dim(model))
    context_length = int(context_length if context_length is not None else model.context_length)
    unique = list(dict.fromkeys(texts))
    out = []
    with _EvalMode(model, device, bf16), _bar(len(unique), batch_size, progress, "encode texts") as bar:
        for start in range(0, len(unique), batch_size):
            batch = unique[start : start + batch_size]
            tokens = tokenizer(batch, context_length=context_length, truncate=True).to(device)
            out.append(normalize(model.encode_text(tokens)).cpu())
            bar.update(len(batch))
    features = torch.cat(out)
    if len(unique) == len(texts):
        return features
    row = {text: i for i, text in enumerate(unique)}
    return features[torch.tensor([row[t] for t in texts])]
