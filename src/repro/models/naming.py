"""Names that say what a model is: a CLIP configuration is named by the preset it equals, with its parameter count,
or else described by its numbers; a supervised ResNet is named by its depth, width and parameter count.

Result files record a training configuration as a preset name plus overrides (`TrainConfig.model`,
`TrainConfig.model_overrides`); `describe` turns that into the model it built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from .clip import PRESETS, CLIPConfig, parameter_counts

__all__ = ["baseline_name", "baseline_names", "describe", "effective_config", "millions", "preset_of",
           "resnet_parameters"]


class _HasClipConfig(Protocol):
    def clip_config(self) -> CLIPConfig: ...


ModelSpec = CLIPConfig | Mapping | _HasClipConfig


def millions(count: int) -> str:
    """A parameter count in millions, two significant digits below 10M: "2.0M", "0.70M", "44.5M", "151M"."""
    m = count / 1e6
    if m < 1:
        return f"{m:.2f}M"
    return f"{m:.1f}M" if m < 100 else f"{m:.0f}M"


def effective_config(spec: ModelSpec) -> CLIPConfig:
    """The CLIPConfig a model specification builds: a CLIPConfig itself, a `TrainConfig` (its `clip_config()`), or
    a training configuration as recorded in a result file ({"model": preset, "model_overrides": {...}, ...})."""
    if isinstance(spec, CLIPConfig):
        return spec
    if isinstance(spec, Mapping):
        name = spec.get("model")
        if name not in PRESETS:
            raise ValueError(f"unknown model preset {name!r}; known: {', '.join(PRESETS)}")
        return CLIPConfig.from_dict(PRESETS[name].to_dict() | dict(spec.get("model_overrides") or {}))
    return spec.clip_config()


def preset_of(config: CLIPConfig) -> str | None:
    """The name of the preset equal to `config` in every field, or None."""
    return next((name for name, preset in PRESETS.items() if preset == config), None)


def _numbers(config: CLIPConfig) -> str:
    if config.is_vit:
        image = (f"ViT, width {config.vision_width}, {config.vision_layers} layers, patch {config.vision_patch_size}, "
                 f"{config.image_resolution} px")
    else:
        stages = "-".join(str(n) for n in config.vision_layers)
        image = f"modified ResNet, width {config.vision_width}, stages {stages}, {config.image_resolution} px"
    return (f"{image}; text width {config.transformer_width}, {config.transformer_layers} layers, context "
            f"{config.context_length}, vocabulary {config.vocab_size:,}; embedding {config.embed_dim}")


def describe(spec: ModelSpec, details: bool = False) -> str:
    """What a CLIP model is, e.g. "ViT-XS/8@32px (2.0M parameters)", or, when no preset equals its configuration,
    "ViT, width 128, 4 layers, patch 8, 32 px; text width …; 2.0M parameters". `details` adds the numbers to a
    preset's name too."""
    config = effective_config(spec)
    count = millions(parameter_counts(config)["total"])
    name = preset_of(config)
    if name is None:
        return f"{_numbers(config)}; {count} parameters"
    if details:
        return f"{name} ({count} parameters: {_numbers(config)})"
    return f"{name} ({count} parameters)"


def resnet_parameters(depth: int, width: int = 64, num_classes: int = 1000, small_input: bool = True) -> int:
    """Parameters of a torchvision-layout ResNet of `depth` (18, 34, 50, 101, 152) and base `width`, counted on the
    `meta` device."""
    import torch

    from . import resnet

    builder = getattr(resnet, f"resnet{depth}", None)
    if builder is None:
        raise ValueError(f"no ResNet of depth {depth}; known: 18, 34, 50, 101, 152")
    with torch.device("meta"):
        model = builder(num_classes=num_classes, width=width, small_input=small_input)
    return sum(p.numel() for p in model.parameters())


def baseline_name(depth: int, width: int, parameters: int | None = None, num_classes: int = 1000) -> str:
    """A supervised ResNet named by depth, base width and size, e.g. "ResNet-101 (width 8, 0.70M parameters)": depth
    alone misleads when widths differ (a narrow ResNet-101 can be smaller than a wide ResNet-18). Without
    `parameters` (as recorded by the experiment), they are counted for `num_classes` classes."""
    if parameters is None:
        parameters = resnet_parameters(depth, width, num_classes)
    return f"ResNet-{depth} (width {width}, {millions(parameters)} parameters)"


def baseline_names(supervised: Mapping[str, Mapping]) -> dict[str, str]:
    """`baseline_name` of every supervised model recorded in a result (key → name), from each entry's `depth`,
    `width` and `parameters` (e.g. the robustness experiment's `metrics["supervised"]`)."""
    return {key: baseline_name(int(entry["depth"]), int(entry["width"]), entry.get("parameters"))
            for key, entry in supervised.items()}
