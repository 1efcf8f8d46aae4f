"""CLIP's preprocessing: bicubic resize of the shorter side, centre crop, RGB, CLIP's mean/std."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from repro.preprocess import CLIP_MEAN, CLIP_STD, Preprocess


def test_constant_image_is_normalised_exactly() -> None:
    image = Image.new("RGB", (50, 80), (255, 128, 0))
    x = Preprocess(32)(image)
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    for c, value in enumerate((255, 128, 0)):
        expected = (value / 255.0 - CLIP_MEAN[c]) / CLIP_STD[c]
        assert torch.allclose(x[c], torch.full((32, 32), expected), atol=1e-6)


def test_shorter_side_resized_then_centre_cropped() -> None:
    """A wide image keeps its aspect ratio: only its centre survives the crop."""
    image = np.zeros((40, 120, 3), dtype=np.uint8)  # h=40, w=120: left third red, centre green, right third blue
    image[:, :40, 0] = 255
    image[:, 40:80, 1] = 255
    image[:, 80:, 2] = 255
    x = Preprocess(20)(Image.fromarray(image))  # -> 60×20, crop columns 20..40 of the resized image = green third
    unnormalised = x * torch.tensor(CLIP_STD).view(3, 1, 1) + torch.tensor(CLIP_MEAN).view(3, 1, 1)
    centre = unnormalised[:, :, 2:-2]  # away from the bicubic transition band at the crop edges
    assert torch.allclose(centre[1], torch.ones_like(centre[1]), atol=0.02)
    assert centre[0].abs().max() < 0.02 and centre[2].abs().max() < 0.02


def test_resize_matches_torchvision_rounding() -> None:
    pre = Preprocess(224)
    assert pre.resize(Image.new("RGB", (300, 500))).size == (224, 373)  # int(224 * 500 / 300) = 373
    assert pre.resize(Image.new("RGB", (500, 300))).size == (373, 224)
    same = Image.new("RGB", (224, 400))
    assert pre.resize(same) is same


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK"])
def test_any_pil_mode_becomes_rgb(mode: str) -> None:
    assert Preprocess(16)(Image.new(mode, (20, 20))).shape == (3, 16, 16)


def test_bad_input() -> None:
    with pytest.raises(TypeError, match="PIL.Image.Image, got ndarray"):
        Preprocess(16)(np.zeros((16, 16, 3)))
    with pytest.raises(ValueError, match="positive"):
        Preprocess(0)


def test_matches_torchvision_when_available() -> None:
    try:
        from torchvision import transforms as T
    except Exception as e:  # noqa: BLE001 - a broken torchvision raises more than ImportError
        pytest.skip(f"torchvision does not import here ({type(e).__name__}); nothing to compare with")
    reference = T.Compose([
        T.Resize(64, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(64),
        lambda im: im.convert("RGB"), T.ToTensor(), T.Normalize(CLIP_MEAN, CLIP_STD),
    ])
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (90, 130, 3), dtype=np.uint8))
    torch.testing.assert_close(Preprocess(64)(image), reference(image), rtol=0, atol=1e-6)
