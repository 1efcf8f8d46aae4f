"""CLIP's image preprocessing, with PIL and torch only: bicubic resize of the shorter side, centre crop,
RGB, [0, 1] scaling, and normalisation by the mean/std of CLIP's training images (OpenAI's `_transform`).

Images that `convert("RGB")` would spoil are made displayable first: transparency (RGBA, LA, a palette or grey
image with a transparent colour) is composited on white, as every picture of the corpus is
(`repro.data.render.on_white`); 16-bit and 32-bit integer grey (`I;16*`, `I`, as PIL opens 16-bit PNG and TIFF) is
scaled from 0..65535 and float grey (`F`) from 0..1 to 8 bits."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from .data.render import composite_on_white

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
#: modes whose grey values are not 0..255, and the value that is white
HIGH_RANGE = {"I;16": 65535, "I;16L": 65535, "I;16B": 65535, "I;16N": 65535, "I": 65535, "F": 1.0}


def displayable(image: Image.Image) -> Image.Image:
    """`image` in a mode that `convert("RGB")` renders faithfully: transparency composited on white, high-range
    grey scaled to 8-bit `L`; any other image unchanged."""
    if image.mode in ALPHA_MODES or "transparency" in image.info:
        return composite_on_white(image)
    if image.mode in HIGH_RANGE:
        grey = np.asarray(image, dtype=np.float64) / HIGH_RANGE[image.mode]
        return Image.fromarray(np.round(np.clip(np.nan_to_num(grey), 0, 1) * 255).astype(np.uint8), "L")
    return image


class Preprocess:
    """`Preprocess(n_px)(pil_image)` -> float tensor [3, n_px, n_px], as OpenAI's Resize(n_px, BICUBIC) →
    CenterCrop(n_px) → convert("RGB") → ToTensor → Normalize(CLIP_MEAN, CLIP_STD)."""

    def __init__(self, n_px: int, mean: tuple = CLIP_MEAN, std: tuple = CLIP_STD) -> None:
        if n_px < 1:
            raise ValueError(f"n_px must be positive, got {n_px}")
        self.n_px = n_px
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)

    def resize(self, image: Image.Image) -> Image.Image:
        """Scale so the shorter side is n_px, keeping the aspect ratio (torchvision's rounding: truncate)."""
        w, h = image.size
        short, long = (w, h) if w <= h else (h, w)
        if short == self.n_px:
            return image
        new_long = int(self.n_px * long / short)
        size = (self.n_px, new_long) if w <= h else (new_long, self.n_px)
        return image.resize(size, Image.BICUBIC)

    def center_crop(self, image: Image.Image) -> Image.Image:
        w, h = image.size
        top, left = int(round((h - self.n_px) / 2.0)), int(round((w - self.n_px) / 2.0))
        return image.crop((left, top, left + self.n_px, top + self.n_px))

    def __call__(self, image: Image.Image) -> torch.Tensor:
        if not isinstance(image, Image.Image):
            raise TypeError(f"preprocess expects a PIL.Image.Image, got {type(image).__name__}")
        if 0 in image.size:
            raise ValueError(f"preprocess: the image is empty ({image.size[0]}×{image.size[1]} pixels)")
        image = self.center_crop(self.resize(displayable(image))).convert("RGB")
        x = torch.from_numpy(np.asarray(image, dtype=np.float32).copy()).permute(2, 0, 1) / 255.0
        return (x - self.mean) / self.std

    def __repr__(self) -> str:
        return f"Preprocess(n_px={self.n_px}, bicubic resize, centre crop, CLIP mean/std)"
