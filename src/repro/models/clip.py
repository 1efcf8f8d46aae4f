"""CLIP (Radford et al., 2021, §2.4): an image encoder and a text encoder trained to embed matching pairs close
together, with a learnable temperature. Parameter names and shapes are those of OpenAI's released checkpoints;
`build_model` infers the configuration from a state dict's tensor shapes, as OpenAI's loader does."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..config import check_keys
from .text import TextTransformer
from .vision import ModifiedResNet, VisionTransformer

#: Keys that OpenAI's released `.pt` files carry next to the weights; they are metadata, not parameters.
OPENAI_METADATA_KEYS = ("input_resolution", "context_length", "vocab_size")


@dataclass(frozen=True)
class CLIPConfig:
    """Every number that fixes a CLIP architecture (OpenAI's `CLIP.__init__` arguments).

    `vision_layers` is an int for a ViT and a 4-tuple of stage depths for a ModifiedResNet, whose
    `vision_patch_size` is None. Heads are not free: width // 64 everywhere (and width·32 // 64 for attention
    pooling), which is what lets `build_model` recover a configuration from tensor shapes.
    """

    embed_dim: int
    image_resolution: int
    vision_layers: int | tuple[int, int, int, int]
    vision_width: int
    vision_patch_size: int | None
    context_length: int = 77
    vocab_size: int = 49408
    transformer_width: int = 512
    transformer_layers: int = 12

    def __post_init__(self) -> None:
        if isinstance(self.vision_layers, list):
            object.__setattr__(self, "vision_layers", tuple(self.vision_layers))
        if self.is_vit == (self.vision_patch_size is None):
            raise ValueError(
                "vision_patch_size must be given for a ViT (int vision_layers) and None for a ResNet "
                f"(4-tuple vision_layers); got vision_layers={self.vision_layers!r}, "
                f"vision_patch_size={self.vision_patch_size!r}"
            )
        if not self.is_vit and len(self.vision_layers) != 4:
            raise ValueError(f"a ResNet needs 4 stage depths, got vision_layers={self.vision_layers!r}")

    @property
    def is_vit(self) -> bool:
        return isinstance(self.vision_layers, int)

    @property
    def vision_heads(self) -> int:
        return self.vision_width // 64 if self.is_vit else self.vision_width * 32 // 64

    @property
    def transformer_heads(self) -> int:
        return self.transformer_width // 64

    def to_dict(self) -> dict:
        d = asdict(self)
        if not self.is_vit:
            d["vision_layers"] = list(self.vision_layers)
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> CLIPConfig:
        """Build from a (JSON) mapping; unknown or missing keys are an error that names them."""
        check_keys(cls, d, "CLIPConfig")
        return cls(**d)


def _vit(embed: int, res: int, layers: int, width: int, patch: int, text_width: int, **kw) -> CLIPConfig:
    return CLIPConfig(embed, res, layers, width, patch, transformer_width=text_width, **kw)


def _rn(embed: int, res: int, layers: tuple, width: int, text_width: int, **kw) -> CLIPConfig:
    return CLIPConfig(embed, res, layers, width, None, transformer_width=text_width, **kw)


#: OpenAI's released models (paper Table 19 / the `openai/CLIP` model card) and this project's small presets for
#: 32–64 px icons. Small presets use a 32-token context and an 8,192-entry vocabulary learned on our corpus.
PRESETS: dict[str, CLIPConfig] = {
    "RN50": _rn(1024, 224, (3, 4, 6, 3), 64, 512),
    "RN101": _rn(512, 224, (3, 4, 23, 3), 64, 512),
    "RN50x4": _rn(640, 288, (4, 6, 10, 6), 80, 640),
    "RN50x16": _rn(768, 384, (6, 8, 18, 8), 96, 768),
    "RN50x64": _rn(1024, 448, (3, 15, 36, 10), 128, 1024),
    "ViT-B/32": _vit(512, 224, 12, 768, 32, 512),
    "ViT-B/16": _vit(512, 224, 12, 768, 16, 512),
    "ViT-L/14": _vit(768, 224, 24, 1024, 14, 768),
    "ViT-L/14@336px": _vit(768, 336, 24, 1024, 14, 768),
    # small presets for this project's images (tokens: context 32, vocabulary 8192; ViT-XS: 4096)
    "ViT-XS/8@32px": _vit(128, 32, 4, 128, 8, 128, context_length=32, vocab_size=4096, transformer_layers=3),
    "ViT-T/4@32px": _vit(256, 32, 6, 256, 4, 256, context_length=32, vocab_size=8192, transformer_layers=4),
    "ViT-T/8@64px": _vit(256, 64, 6, 256, 8, 256, context_length=32, vocab_size=8192, transformer_layers=4),
    "ViT-S/8@64px": _vit(384, 64, 12, 384, 8, 384, context_length=32, vocab_size=8192, transformer_layers=6),
    "RN-T@64px": _rn(256, 64, (1, 1, 1, 1), 32, 256, context_length=32, vocab_size=8192, transformer_layers=4),
}


class CLIP(TextTransformer):
    """Contrastive Language-Image Pre-training.

    OpenAI's checkpoints keep the text encoder's parameters at the top level of the state dict
    (`token_embedding`, `transformer.*`, `ln_final`, `text_projection`) next to `visual.*` and `logit_scale`,
    so CLIP *is* a `TextTransformer` with an image encoder (`visual`) and a temperature attached.
    """

    def __init__(self, config: CLIPConfig) -> None:
        super().__init__(
            config.context_length, config.vocab_size, config.transformer_width, config.transformer_layers,
            config.embed_dim,
        )
        self.config = config
        if config.is_vit:
            self.visual: nn.Module = VisionTransformer(
                config.image_resolution, config.vision_patch_size, config.vision_width, config.vision_layers,
                config.embed_dim,
            )
        else:
            self.visual = ModifiedResNet(
                config.vision_layers, config.embed_dim, config.vision_heads, config.image_resolution,
                config.vision_width,
            )
        # the learnable temperature, log-parameterised, initialised to τ = 0.07 (paper §2.5)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    @property
    def dtype(self) -> torch.dtype:
        return self.visual.conv1.weight.dtype

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """Image features [batch, embed_dim] (not normalised) from preprocessed images [batch, 3, H, W]."""
        return self.visual(image)

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scaled cosine similarities: (logits_per_image [N_img, N_txt], logits_per_text = its transpose)."""
        image_features = self.encode_image(image)
        text_features = self.encode_text(text)
        image_features = image_features / image_features.norm(dim=1, keepdim=True)
        text_features = text_features / text_features.norm(dim=1, keepdim=True)
        logits_per_image = self.logit_scale.exp() * image_features @ text_features.t()
        return logits_per_image, logits_per_image.t()

    @torch.no_grad()
    def clamp_logit_scale(self, max_scale: float = 100.0) -> None:
        """Clip the temperature so logits are never scaled by more than `max_scale` (paper §2.5); call it after
        each optimiser step, as open_clip does (OpenAI's released code has no clamp)."""
        self.logit_scale.clamp_(0.0, math.log(max_scale))


def infer_config(state_dict: Mapping[str, torch.Tensor]) -> CLIPConfig:
    """Recover a CLIPConfig from tensor shapes exactly as OpenAI's `build_model` does."""

    def get(key: str) -> torch.Tensor:
        if key not in state_dict:
            raise ValueError(f"not a CLIP state dict: missing key {key!r}")
        return state_dict[key]

    if "visual.proj" in state_dict:
        width, _, patch, _ = get("visual.conv1.weight").shape
        layers = len([k for k in state_dict if k.startswith("visual.") and k.endswith(".attn.in_proj_weight")])
        grid = round((get("visual.positional_embedding").shape[0] - 1) ** 0.5)
        vision: dict = dict(
            vision_layers=layers, vision_width=width, vision_patch_size=patch, image_resolution=patch * grid
        )
    else:
        depths = tuple(
            len({k.split(".")[2] for k in state_dict if k.startswith(f"visual.layer{b}.")}) for b in (1, 2, 3, 4)
        )
        positions = get("visual.attnpool.positional_embedding").shape[0]
        grid = round((positions - 1) ** 0.5)
        if grid**2 + 1 != positions:
            raise ValueError(f"visual.attnpool.positional_embedding has {positions} rows, not a square grid + 1")
        vision = dict(
            vision_layers=depths, vision_width=get("visual.layer1.0.conv1.weight").shape[0], vision_patch_size=None,
            image_resolution=grid * 32,
        )
    return CLIPConfig(
        embed_dim=get("text_projection").shape[1],
        context_length=get("positional_embedding").shape[0],
        vocab_size=get("token_embedding.weight").shape[0],
        transformer_width=get("ln_final.weight").shape[0],
        transformer_layers=len({k.split(".")[2] for k in state_dict if k.startswith("transformer.resblocks.")}),
        **vision,
    )


def build_model(state_dict: Mapping[str, torch.Tensor], config: CLIPConfig | None = None) -> CLIP:
    """A CLIP in eval mode holding exactly `state_dict` (OpenAI's or ours), each tensor keeping its dtype.

    The configuration is inferred from the shapes unless given; OpenAI's metadata keys are dropped; loading is
    strict, and a mismatch raises a ValueError listing the missing, unexpected and mis-shaped keys.
    """
    state_dict = {k: v for k, v in state_dict.items() if k not in OPENAI_METADATA_KEYS}
    config = config or infer_config(state_dict)
    with torch.device("meta"):
        model = CLIP(config)
    expected = {k: v.shape for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    misshaped = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(s)}"
        for k, s in expected.items() if k in state_dict and state_dict[k].shape != s
    ]
    if missing or unexpected or misshaped:
        raise ValueError(
            "state dict does not match a CLIP of the inferred configuration "
            f"{config}:\n  missing keys: {missing[:10]}{' ...' if len(missing) > 10 else ''}"
            f"\n  unexpected keys: {unexpected[:10]}{' ...' if len(unexpected) > 10 else ''}"
            f"\n  shape mismatches: {misshaped[:10]}"
        )
    model.load_state_dict(state_dict, strict=True, assign=True)
    return model.eval()


def count_parameters(module: nn.Module) -> int:
    """Number of parameters (works on the `meta` device, where no memory is allocated)."""
    return sum(p.numel() for p in module.parameters())


def parameter_counts(config: CLIPConfig) -> dict[str, int]:
    """Image-encoder, text-encoder and total parameter counts of a configuration, built on `meta`.

    The text count is everything outside `visual` except `logit_scale` (embeddings included, as the paper
    counts them)."""
    with torch.device("meta"):
        model = CLIP(config)
    image = count_parameters(model.visual)
    total = count_parameters(model)
    return {"image": image, "text": total - image - 1, "total": total}
