"""Rendering every source picture the same way: to a fixed-size RGB image composited on white.

SVG goes through cairosvg (libcairo), which draws every emoji style correctly (PyMuPDF, for one, renders Fluent's
gradients black); PNG and WebP through Pillow. The picture is scaled to fit the square, keeping its aspect ratio,
and centred — never cropped, since an icon's edges carry its meaning.
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
from PIL import Image

WHITE = (255, 255, 255)


class RenderError(ValueError):
    """A source picture could not be decoded; the message names it."""


def decode(kind: str, data: bytes, size: int, name: str = "") -> Image.Image:
    """Decode `data` ("svg" | "png" | "webp" | "jpeg") to an RGBA image whose longer side is about `size`·2 for
    vector input (supersampled, then downscaled with Lanczos) or the file's own size for raster input."""
    try:
        if kind == "svg":
            import cairosvg

            png = cairosvg.svg2png(bytestring=data, output_width=size * 2, output_height=size * 2)
            return Image.open(io.BytesIO(png)).convert("RGBA")
        if kind in ("png", "webp", "jpeg", "jpg", "gif", "bmp"):
            image = Image.open(io.BytesIO(data))
            image.load()
            return image.convert("RGBA")
    except Exception as e:  # noqa: BLE001 - decoders raise many types; all mean "unreadable"
        raise RenderError(f"cannot decode {kind} picture {name!r}: {type(e).__name__}: {e}") from e
    raise RenderError(f"unknown picture kind {kind!r} for {name!r}")


def composite_on_white(image: Image.Image, canvas: tuple[int, int] | None = None,
                       offset: tuple[int, int] = (0, 0)) -> Image.Image:
    """`image` alpha-composited at `offset` onto a white canvas (of its own size by default); returns RGB."""
    white = Image.new("RGBA", canvas or image.size, WHITE + (255,))
    white.alpha_composite(image.convert("RGBA"), offset)
    return white.convert("RGB")


def on_white(image: Image.Image, size: int) -> Image.Image:
    """Fit `image` into a `size`×`size` white square (aspect kept, centred), alpha-composited; returns RGB."""
    image = image.convert("RGBA")
    w, h = image.size
    scale = size / max(w, h)
    new = (max(1, round(w * scale)), max(1, round(h * scale)))
    if new != (w, h):
        image = image.resize(new, Image.LANCZOS)
    return composite_on_white(image, (size, size), ((size - new[0]) // 2, (size - new[1]) // 2))


def render(kind: str, data: bytes, size: int, name: str = "") -> Image.Image:
    """The picture as an RGB `size`×`size` image on white."""
    return on_white(decode(kind, data, size, name), size)


def pixel_sha256(image: Image.Image) -> str:
    """sha256 of the RGB pixels (not of any file encoding): equal images, equal hashes."""
    arr = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return hashlib.sha256(arr.tobytes() + str(arr.shape).encode()).hexdigest()


def dhash(image: Image.Image, bits: int = 8) -> str:
    """Difference hash (Krawetz): sign of horizontal gradients of a (bits+1)×bits grey thumbnail, as hex. Near
    duplicates (re-encodings, slight recolourings) share it."""
    grey = np.asarray(image.convert("L").resize((bits + 1, bits), Image.LANCZOS), dtype=np.int16)
    diff = (grey[:, 1:] > grey[:, :-1]).flatten()
    return f"{int(''.join('1' if d else '0' for d in diff), 2):0{bits * bits // 4}x}"


def is_blank(image: Image.Image, tolerance: int = 8) -> bool:
    """True if (almost) every pixel is the same colour: an empty or failed render."""
    arr = np.asarray(image.convert("RGB"), dtype=np.int16)
    return int((arr.max(axis=(0, 1)) - arr.min(axis=(0, 1))).max()) <= tolerance
