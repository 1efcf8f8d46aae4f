"""The seeds' API: `model, preprocess = repro.load(name_or_path)` and `repro.tokenize(texts)`, as `clip.load`
and `clip.tokenize` are used, with checkpoints that are safetensors files (never pickles)."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import torch

from .checkpoint import CONFIG_KEY, load_state, save_state
from .models import CLIP, PRESETS, CLIPConfig, build_model
from .preprocess import Preprocess
from .tokenizer import Tokenizer

TOKENIZER_KEY = "repro.tokenizer"
#: Trained models shipped in `repro/assets/` (made by `repro.release.export_model`): name -> file.
PRETRAINED = {"clip-small": "clip-small.safetensors"}


def pretrained_path(name: str) -> Path:
    """The shipped file of a `PRETRAINED` model."""
    return Path(str(resources.files("repro") / "assets" / PRETRAINED[name]))


def available_models() -> list[str]:
    """Names accepted by `load` besides file paths: first the trained models shipped with the package
    (`PRETRAINED`: "clip-small", the book's model), then the architectures of `PRESETS`, whose
    weights are random."""
    return [*PRETRAINED, *PRESETS]


def save(path: str | os.PathLike, model: CLIP, tokenizer: Tokenizer | None = None, **metadata) -> None:
    """Save a CLIP as one safetensors file: weights + its CLIPConfig (+ the tokenizer's merges) as JSON."""
    meta = {CONFIG_KEY: model.config.to_dict(), **metadata}
    if tokenizer is not None:
        meta[TOKENIZER_KEY] = tokenizer.to_dict()
    save_state(path, model.state_dict(), meta)


def load(
    name_or_path: str | os.PathLike, device: str | torch.device = "cpu", seed: int | None = None
) -> tuple[CLIP, Preprocess]:
    """Return (model in eval mode, its preprocess).

    - a shipped model's name ("clip-small"): its trained weights, in float32, with its tokenizer;
    - a preset name (`available_models()`): that architecture, randomly initialised (seeded by `seed`);
    - a `.safetensors` file: a checkpoint saved by `repro.save`, or any state dict in OpenAI's layout (for
      example OpenAI's weights converted to safetensors) whose configuration is inferred from tensor shapes.
      A tokenizer saved with the checkpoint is attached as `model.tokenizer`, its rows of the model's context
      length (else None: use `repro.tokenize`, OpenAI's vocabulary); the rest of the file's metadata (what it was
      trained on, a shipped model's card) is `model.metadata`.
    """
    tokenizer, metadata = None, {}
    if str(name_or_path) in PRETRAINED:
        model, _ = load(pretrained_path(str(name_or_path)), device)
        return model.float(), Preprocess(model.config.image_resolution)
    if str(name_or_path) in PRESETS:
        if seed is not None:
            torch.manual_seed(seed)
        model = CLIP(PRESETS[str(name_or_path)]).eval()
    else:
        path = Path(name_or_path)
        if not path.exists():
            raise ValueError(
                f"{str(name_or_path)!r} is neither a model name ({', '.join(available_models())}) nor an existing file"
            )
        tensors, metadata = read_model_file(path)
        config = CLIPConfig.from_dict(metadata[CONFIG_KEY]) if CONFIG_KEY in metadata else None
        model = build_model(tensors, config)
        if TOKENIZER_KEY in metadata:
            tokenizer = Tokenizer.from_dict(metadata[TOKENIZER_KEY], source=f"{path} (metadata {TOKENIZER_KEY!r})")
            tokenizer.context_length = model.config.context_length
    model = model.to(device)
    model.tokenizer = tokenizer
    model.metadata = {k: v for k, v in metadata.items() if k not in (CONFIG_KEY, TOKENIZER_KEY)}
    return model, Preprocess(model.config.image_resolution)


def read_model_file(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """The tensors and metadata of a model file, checked: a one-line error says what `path` is instead (a
    directory, a pickle, a training checkpoint, a file with cut-short metadata or non-finite weights)."""
    if path.is_dir():
        inside = path / "model.safetensors"
        hint = f": load {inside}" if inside.is_file() else " (load a .safetensors file)"
        raise ValueError(f"{path} is a directory, not a model file{hint}")
    if path.suffix != ".safetensors":
        raise ValueError(f"{path}: only .safetensors checkpoints are loaded (pickled .pt files are never opened)")
    tensors, metadata = load_state(path)
    if "train_config" in metadata or any(k.startswith("model.") for k in tensors):
        model = path.with_name("model.safetensors")
        where = model if model.is_file() else "the model.safetensors that training writes beside it when it ends"
        raise ValueError(f"{path} is a training checkpoint (weights with optimiser state), not a model: load {where}")
    for key in (CONFIG_KEY, TOKENIZER_KEY):
        if key in metadata and not isinstance(metadata[key], dict):
            raise ValueError(f"{path}: its {key!r} metadata is not a JSON object (cut short or damaged?): "
                             f"{str(metadata[key])[:40]!r}")
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise ValueError(f"{path}: tensor {name!r} has {bad} non-finite values (NaN or infinity) of {t.numel()}; "
                             "the model diverged or the file is damaged")
    return tensors, metadata
