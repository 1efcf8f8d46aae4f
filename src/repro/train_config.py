"""The training configuration: one dataclass whose values are checked (types and ranges) when it is built, so a
mistyped value is a one-line error naming the key before anything is created on disk."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields

from .config import check_keys
from .models import PRESETS, CLIPConfig

OBJECTIVES = ("clip", "bow-contrastive", "bow-predict", "caption-lm", "supervised")
TEMPERATURES = ("learnable", "unclamped", "fixed")
#: "auto": the fastest of fp32 and bf16 on this machine, measured at the start of a run (see `repro.train`)
PRECISIONS = ("auto", "fp32", "bf16")
BASELINE_DEPTHS = (18, 34, 50, 101, 152)


@dataclass
class TrainConfig:
    """Everything a run needs (one object, nanoGPT style). Unknown keys are an error (`from_dict`); so is a value
    of the wrong type or out of range (checked at construction, in `__post_init__`)."""

    corpus_dir: str = ""  # a built corpus: <data>/build/<corpus> with packed/ and suites.json
    out_dir: str = "runs/clip"
    train_split: str = "train"
    data_size: int = 32  # packed resolution loaded; crops are resampled to the model's resolution
    max_train_images: int | None = None
    model: str = "ViT-T/4@32px"
    model_overrides: dict = field(default_factory=dict)  # CLIPConfig fields replacing the preset's
    objective: str = "clip"  # clip | bow-contrastive | bow-predict | caption-lm | supervised
    label: str = "subcategory"  # the label field of the supervised objective
    label_classes: list[str] | None = None  # its classes in this order (rows with other values are left out)
    baseline_depth: int = 101  # the supervised baseline: a torchvision-layout ResNet-18/34/50/101/152
    baseline_width: int = 64  # its base width (64 is torchvision's)
    temperature: str = "learnable"  # learnable (clamped at 100) | unclamped | fixed
    fixed_temperature: float = 0.07
    tokenizer: str = "train"  # "train": learn BPE on the training captions; "openai"; or a tokenizer JSON path
    batch_size: int = 256  # global
    epochs: float | None = 1.0  # None when steps is set
    steps: int | None = None  # overrides epochs
    lr: float = 5e-4
    weight_decay: float = 0.2
    warmup_steps: int = 100
    betas: tuple[float, float] | None = None  # None: (0.9, 0.98) for ViT, (0.9, 0.999) for ResNets (paper)
    eps: float | None = None  # None: 1e-6 for ViT, 1e-8 for ResNet
    min_crop_scale: float = 0.5
    precision: str = "auto"  # auto (the faster of fp32 and bf16 here, measured) | fp32 | bf16 (autocast)
    compile: bool = False
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = 500
    log_every: int = 10
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("corpus_dir", "out_dir", "tokenizer"):
            if isinstance(getattr(self, name), os.PathLike):
                setattr(self, name, os.fspath(getattr(self, name)))
        for name in ("epochs", "lr", "weight_decay", "fixed_temperature", "min_crop_scale", "eps"):
            if _is_int(getattr(self, name)):
                setattr(self, name, float(getattr(self, name)))  # JSON's 1 for 1.0
        if isinstance(self.betas, list):
            self.betas = tuple(self.betas)
        for f in fields(self):
            ok, wanted = RULES[f.name]
            value = getattr(self, f.name)
            if not ok(value):
                raise ValueError(f"training config: {f.name} must be {wanted}, got {value!r}")
        if self.epochs is None and self.steps is None:
            raise ValueError("training config: epochs must be a number > 0 (or null when steps is set), got None")
        self.clip_config()  # the preset exists and model_overrides are CLIPConfig fields

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        check_keys(cls, d, "training config")
        return cls(**d)

    def clip_config(self) -> CLIPConfig:
        if self.model not in PRESETS:
            raise ValueError(f"unknown model preset {self.model!r}; known: {', '.join(PRESETS)}")
        return CLIPConfig.from_dict(PRESETS[self.model].to_dict() | self.model_overrides)


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)


def _text(v: object) -> bool:
    return isinstance(v, str) and v != ""


def _device(v: object) -> bool:
    import torch

    if not isinstance(v, str):
        return False
    try:
        return v == "auto" or torch.device(v) is not None
    except (RuntimeError, ValueError):
        return False


Rule = tuple[Callable[[object], bool], str]
RULES: dict[str, Rule] = {
    "corpus_dir": (lambda v: isinstance(v, str), "a path (string)"),
    "out_dir": (_text, "a path (non-empty string)"),
    "train_split": (_text, "a split name (non-empty string)"),
    "data_size": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "max_train_images": (lambda v: v is None or (_is_int(v) and v >= 1), "null or an integer >= 1"),
    "model": (_text, "a model preset name"),
    "model_overrides": (lambda v: isinstance(v, dict), "an object of CLIPConfig fields"),
    "objective": (lambda v: v in OBJECTIVES, f"one of {list(OBJECTIVES)}"),
    "label": (_text, "a field name (non-empty string)"),
    "label_classes": (lambda v: v is None or (isinstance(v, list) and all(isinstance(c, str) for c in v)),
                      "null or a list of strings"),
    "baseline_depth": (lambda v: v in BASELINE_DEPTHS and _is_int(v), f"one of {list(BASELINE_DEPTHS)}"),
    "baseline_width": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "temperature": (lambda v: v in TEMPERATURES, f"one of {list(TEMPERATURES)}"),
    "fixed_temperature": (lambda v: _is_number(v) and v > 0, "a number > 0"),
    "tokenizer": (_text, '"train", "openai" or a tokenizer JSON path'),
    "batch_size": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "epochs": (lambda v: v is None or (_is_number(v) and v > 0), "a number > 0 (or null when steps is set)"),
    "steps": (lambda v: v is None or (_is_int(v) and v >= 1), "null or an integer >= 1"),
    "lr": (lambda v: _is_number(v) and v > 0, "a number > 0"),
    "weight_decay": (lambda v: _is_number(v) and v >= 0, "a number >= 0"),
    "warmup_steps": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "betas": (lambda v: v is None or (isinstance(v, tuple) and len(v) == 2 and
                                      all(_is_number(b) and 0 <= b < 1 for b in v)),
              "null or two numbers in [0, 1)"),
    "eps": (lambda v: v is None or (_is_number(v) and v > 0), "null or a number > 0"),
    "min_crop_scale": (lambda v: _is_number(v) and 0 < v <= 1, "a number in (0, 1]"),
    "precision": (lambda v: v in PRECISIONS, f"one of {list(PRECISIONS)}"),
    "compile": (lambda v: isinstance(v, bool), "true or false"),
    "seed": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "device": (_device, '"auto" or a torch device such as "cpu", "cuda", "cuda:1"'),
    "checkpoint_every": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "log_every": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "progress": (lambda v: isinstance(v, bool), "true or false"),
}
