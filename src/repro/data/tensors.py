"""Images as tensors, in batches, on whatever device holds them: CLIP's normalisation and its one augmentation,
a random square crop (paper §2.5), applied to a whole uint8 batch at once — as the fastest small-image trainers
do — so that the data never starves the model."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..preprocess import CLIP_MEAN, CLIP_STD


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [B, H, W, 3] -> float32 [B, 3, H, W] in [0, 1]."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected uint8 images [B, H, W, 3], got {images.dtype} {tuple(images.shape)}")
    return images.permute(0, 3, 1, 2).float().div_(255.0)


def normalize(x: torch.Tensor) -> torch.Tensor:
    """(x - CLIP mean) / CLIP std on float [B, 3, H, W]."""
    mean = torch.tensor(CLIP_MEAN, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize (antialiased when shrinking) of float [B, 3, H, W] to size × size."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def model_input(images: torch.Tensor, size: int) -> torch.Tensor:
    """Evaluation preprocessing of a packed uint8 batch: to float, resize to the model's resolution, normalise."""
    return normalize(resize(to_float(images), size))


def crop_params(batch: int, min_scale: float = 0.5, generator: torch.Generator | None = None,
                device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Random square crops for a batch: side s·H with s ~ U(min_scale, 1), and a centre shift that keeps the
    square inside the image (normalised coordinates, |t| <= 1 - s). Drawn for a whole (global) batch at once, so
    every data-parallel rank can take its slice of the same draw."""
    scale = torch.rand(batch, generator=generator) * (1 - min_scale) + min_scale
    shift = (torch.rand(batch, 2, generator=generator) * 2 - 1) * (1 - scale).unsqueeze(1)
    return scale.to(device), shift.to(device)


def square_crop(x: torch.Tensor, size: int, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Crop each image to the square (scale, shift) and resample it to size × size: one batched grid_sample."""
    b = x.shape[0]
    theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = scale
    theta[:, 1, 1] = scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, [b, x.shape[1], size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_square_crop(x: torch.Tensor, size: int, min_scale: float = 0.5,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """Per image, a random square of side s·H at a random position, resampled to size × size."""
    scale, shift = crop_params(x.shape[0], min_scale, generator, x.device)
    return square_crop(x, size, scale.to(x.dtype), shift.to(x.dtype))


def train_input(images: torch.Tensor, size: int, min_scale: float = 0.5,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Training preprocessing of a packed uint8 batch: random square crop to the model's resolution, normalise."""
    return normalize(random_square_crop(to_float(images), size, min_scale, generator))
