"""CLIP's image encoders (paper §2.4): the Vision Transformer and the modified ResNet.

ViT (Dosovitskiy et al., 2020) with CLIP's one change: an extra layer norm (`ln_pre`) on the combined patch and
position embeddings before the Transformer. ModifiedResNet (He et al., 2016, with the ResNet-D stem and
anti-aliased strided convolutions) whose global average pool is replaced by a single layer of multi-head
"transformer-style" attention whose query is the mean of the feature map (`AttentionPool2d`).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from .layers import LayerNorm, Transformer


def check_image(image: torch.Tensor, resolution: int) -> None:
    """Raise a clear error unless `image` is a float tensor [batch, 3, resolution, resolution]."""
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"image must be a float tensor [batch, 3, H, W], got {type(image).__name__}")
    if not image.is_floating_point():
        raise TypeError(f"image must be a floating-point tensor (see repro.preprocess), got dtype {image.dtype}")
    if image.ndim != 4 or tuple(image.shape[1:]) != (3, resolution, resolution):
        raise ValueError(
            f"image must have shape [batch, 3, {resolution}, {resolution}] for this model, got {tuple(image.shape)}"
        )


class VisionTransformer(nn.Module):
    """ViT: patchify (conv, no bias) → prepend class token → + positions → ln_pre → blocks → ln_post(x[:, 0]) @ proj."""

    def __init__(self, input_resolution: int, patch_size: int, width: int, layers: int, output_dim: int) -> None:
        super().__init__()
        if input_resolution % patch_size:
            raise ValueError(f"image resolution {input_resolution} is not a multiple of patch size {patch_size}")
        if width % 64:
            raise ValueError(f"vision width must be a multiple of 64 (heads = width // 64), got {width}")
        self.input_resolution, self.output_dim = input_resolution, output_dim
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size, bias=False)
        scale = width**-0.5
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn((input_resolution // patch_size) ** 2 + 1, width))
        self.ln_pre = LayerNorm(width)
        self.transformer = Transformer(width, layers, heads=width // 64)
        self.ln_post = LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim))

    def embed_image(self, x: torch.Tensor) -> torch.Tensor:
        """The Transformer's input [batch, 1 + grid², width]: ln_pre(class token, patches + positions)."""
        check_image(x, self.input_resolution)
        x = self.conv1(x.to(self.conv1.weight.dtype))  # [B, width, grid, grid]
        x = x.flatten(2).transpose(1, 2)  # [B, grid², width]
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        return self.ln_pre(x)

    def encode_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Every position's final activation after `ln_post` ([batch, 1 + grid², width]; class token first)."""
        return self.ln_post(self.transformer(self.embed_image(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Image features [batch, output_dim] = `encode_tokens(x)[:, 0] @ proj`, with the last block evaluated only
        at the class token (`Transformer.forward_at`)."""
        return self.ln_post(self.transformer.forward_at(self.embed_image(x), 0)) @ self.proj


class Bottleneck(nn.Module):
    """ResNet bottleneck with CLIP's anti-aliasing: every conv has stride 1 and an AvgPool2d(stride) follows conv2;
    the shortcut is AvgPool2d(stride) → 1×1 conv → BN (keys "downsample.-1", ".0", ".1")."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.avgpool = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu3 = nn.ReLU(inplace=True)
        self.downsample = None
        self.stride = stride
        if stride > 1 or inplanes != planes * self.expansion:
            self.downsample = nn.Sequential(
                OrderedDict(
                    [
                        ("-1", nn.AvgPool2d(stride)),
                        ("0", nn.Conv2d(inplanes, planes * self.expansion, 1, stride=1, bias=False)),
                        ("1", nn.BatchNorm2d(planes * self.expansion)),
                    ]
                )
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(self.avgpool(out)))
        return self.relu3(out + identity)


class AttentionPool2d(nn.Module):
    """Attention pooling: the mean of the feature map, plus positions, attends over all spatial tokens once;
    the output of that single query is projected by `c_proj` (OpenAI's separate q/k/v/c projections)."""

    def __init__(self, spacial_dim: int, embed_dim: int, num_heads: int, output_dim: int | None = None) -> None:
        super().__init__()
        self.positional_embedding = nn.Parameter(torch.randn(spacial_dim**2 + 1, embed_dim) / embed_dim**0.5)
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.c_proj = nn.Linear(embed_dim, output_dim or embed_dim)
        self.num_heads = num_heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, _, _ = x.shape
        x = x.flatten(2).transpose(1, 2)  # [B, HW, C]
        x = torch.cat([x.mean(dim=1, keepdim=True), x], dim=1) + self.positional_embedding.to(x.dtype)

        def heads(t: torch.Tensor) -> torch.Tensor:  # [B, n, C] -> [B, heads, n, C / heads]
            return t.view(b, t.shape[1], self.num_heads, c // self.num_heads).transpose(1, 2)

        q, k, v = heads(self.q_proj(x[:, :1])), heads(self.k_proj(x)), heads(self.v_proj(x))
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, c)
        return self.c_proj(out)


class ModifiedResNet(nn.Module):
    """CLIP's ResNet: a 3-conv stem with an average pool, anti-aliased strided bottlenecks, attention pooling."""

    def __init__(
        self,
        layers: tuple[int, int, int, int],
        output_dim: int,
        heads: int,
        input_resolution: int = 224,
        width: int = 64,
    ) -> None:
        super().__init__()
        if input_resolution % 32:
            raise ValueError(f"ModifiedResNet needs a resolution that is a multiple of 32, got {input_resolution}")
        self.output_dim, self.input_resolution = output_dim, input_resolution
        self.conv1 = nn.Conv2d(3, width // 2, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width // 2)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width // 2, width // 2, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width // 2)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(width // 2, width, kernel_size=3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.relu3 = nn.ReLU(inplace=True)
        self.avgpool = nn.AvgPool2d(2)
        self._inplanes = width
        self.layer1 = self._make_layer(width, layers[0])
        self.layer2 = self._make_layer(width * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(width * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(width * 8, layers[3], stride=2)
        self.attnpool = AttentionPool2d(input_resolution // 32, width * 32, heads, output_dim)
        self.initialize_parameters()

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        layers = [Bottleneck(self._inplanes, planes, stride)]
        self._inplanes = planes * Bottleneck.expansion
        layers += [Bottleneck(self._inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def initialize_parameters(self) -> None:
        """OpenAI's init: attention-pool projections N(0, C^-1/2); each block's last BN gain zero."""
        std = self.attnpool.c_proj.in_features**-0.5
        for proj in (self.attnpool.q_proj, self.attnpool.k_proj, self.attnpool.v_proj, self.attnpool.c_proj):
            nn.init.normal_(proj.weight, std=std)
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in stage:
                nn.init.zeros_(block.bn3.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, self.input_resolution)
        x = x.to(self.conv1.weight.dtype)
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.bn2(self.conv2(x)))
        x = self.avgpool(self.relu3(self.bn3(self.conv3(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.attnpool(x)
