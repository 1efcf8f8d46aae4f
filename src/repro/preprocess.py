"""CLIP's image preprocessing, with PIL and torch only: bicubic resize of the shorter side, centre crop,
RGB, [0, 1] scaling, and normalisation by the mean/std of CLIP's training images (OpenAI's `_transform`)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


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
        image = self.center_crop(self.resize(image)).convert("RGB")
        x = torch.from_numpy(np.asarray(image, dtype=np.float32).copy()).permute(2, 0, 1) / 255.0
        return (x - self.mean) / self.std

    def __repr__(self) -> str:
        return f"Preprocess(n_px={self.n_px}, bicubic resize, centre crop, CLIP mean/std)"
