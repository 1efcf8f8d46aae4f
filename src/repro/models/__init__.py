"""CLIP's encoders and the supervised ResNet baseline, with OpenAI's and torchvision's state-dict layouts."""

from .clip import CLIP, PRESETS, CLIPConfig, build_model, count_parameters, infer_config, parameter_counts
from .layers import LayerNorm, MultiheadSelfAttention, QuickGELU, ResidualAttentionBlock, Transformer
from .text import TextTransformer
from .vision import AttentionPool2d, Bottleneck, ModifiedResNet, VisionTransformer

__all__ = [
    "CLIP", "PRESETS", "CLIPConfig", "build_model", "count_parameters", "infer_config", "parameter_counts",
    "LayerNorm", "MultiheadSelfAttention", "QuickGELU", "ResidualAttentionBlock", "Transformer",
    "TextTransformer", "AttentionPool2d", "Bottleneck", "ModifiedResNet", "VisionTransformer",
]
