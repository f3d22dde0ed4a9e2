"""Bytes of one image file -> what matching and stitching need, through Pillow.

This module never opens a file: the caller reads the bytes (through the floor) and hands them
over, so a hostile folder entry is checked before Pillow sees it. Pillow is limited to the
formats the command promises (JPEG, PNG, WebP, BMP, TIFF, GIF; Pillow's JPEG opener also returns
the MPO files many cameras write; an animated GIF or WebP counts by its first frame), which also keeps plugins that run programs (EPS runs Ghostscript) out of reach.

- EXIF orientation is applied, so a portrait photo stored sideways is compared and shown upright.
- JPEG draft mode: the decoder scales by 1/2, 1/4 or 1/8 while decoding (DCT scaling), never
  below the size asked for; a 4000x3000 photo becomes 500x375 before any pixel is touched.
- Transparency is flattened onto white; 16-bit grayscale is scaled to 8 bits, not clipped.
- Flat padding bars (letterbox, pillarbox) are left out of the comparison (``borders.py``), not out
  of the strips.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mlops_cli.images import borders

FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF")
Image.init()  # registers every plugin, so each name in FORMATS is known; only those are tried
PHASH_BITS = 64
_ORIENTATION = 0x0112
_SWAPS_AXES = (5, 6, 7, 8)  # EXIF orientations that turn the picture by 90 degrees
_BACKGROUND = (255, 255, 255)


class Unreadable(Exception):
    """The bytes are not an image this command can use; the message says why, in one line."""


@dataclass(frozen=True)
class Features:
    """What matching needs from one image. ``width``/``height`` are upright (EXIF applied)."""

    width: int
    height: int
    vector: np.ndarray  # mse: (s, s, 3) uint8 · ssim: (s, s) uint8 · phash: (64,) bool


def features(data: bytes, metric: str, size: int) -> Features:
    """Decode just enough of one image to compare it: a size x size thumbnail or a hash."""
    try:
        image, width, height = open_upright(data, (size, size))
        image = without_bars(image)
        if metric == "phash":
            import imagehash

            vector = np.asarray(imagehash.phash(image).hash, dtype=bool).reshape(PHASH_BITS)
        else:
            thumb = image.resize((size, size), Image.Resampling.BILINEAR)
            if metric == "ssim":
                thumb = thumb.convert("L")
            vector = np.asarray(thumb, dtype=np.uint8)
    except Unreadable:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoder failure on hostile bytes is "unreadable"
        raise Unreadable(_reason(exc)) from exc
    return Features(width, height, vector)


def without_bars(image: Image.Image) -> Image.Image:
    """The picture inside flat padding bars (letterbox, pillarbox), for comparing; see borders.py."""
    box = borders.picture_box(np.asarray(image.convert("L"), dtype=np.uint8))
    return image if box == (0, 0, *image.size) else image.crop(box)


def panel(data: bytes, width: int, height: int) -> Image.Image:
    """Decode one image upright and scaled to exactly width x height (RGB), for a strip."""
    try:
        image, _, _ = open_upright(data, (width, height))
        if image.size != (width, height):
            image = image.resize((width, height), Image.Resampling.LANCZOS)
        return image
    except Unreadable:
        raise
    except Exception as exc:  # noqa: BLE001 - as in features()
        raise Unreadable(_reason(exc)) from exc


def open_upright(data: bytes, at_least: tuple[int, int]) -> tuple[Image.Image, int, int]:
    """Open, draft-decode to no less than ``at_least`` (upright), turn upright, make RGB.

    Returns the image and the upright size of the full picture (before draft scaling)."""
    if not data:
        raise Unreadable("empty file (0 bytes): a write or copy that did not finish")
    try:
        image = Image.open(io.BytesIO(data), formats=FORMATS)
    except UnidentifiedImageError:
        raise Unreadable("not an image in a format this command reads (JPEG, PNG, WebP, BMP, TIFF, GIF)") from None
    orientation = _orientation(image)
    width, height = image.size
    want_w, want_h = at_least
    if orientation in _SWAPS_AXES:
        width, height = height, width
        want_w, want_h = want_h, want_w
    if image.format in ("JPEG", "MPO"):
        image.draft("RGB", (max(1, want_w), max(1, want_h)))
    image.load()
    if orientation != 1:
        image = ImageOps.exif_transpose(image)
    return _rgb(image), width, height


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - a corrupt EXIF block: show the picture as stored
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _rgb(image: Image.Image) -> Image.Image:
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        # Pillow's own conversion clips 16-bit values at 255 (a white picture); scale instead.
        wide = np.asarray(image, dtype=np.float64)
        if image.mode == "F":
            top = 1.0 if wide.max() <= 1.0 else 255.0
        else:
            top = 65535.0 if wide.max() > 255 else 255.0
        image = Image.fromarray(np.clip(wide * (255.0 / top), 0, 255).astype(np.uint8), "L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, _BACKGROUND)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image if image.mode == "RGB" else image.convert("RGB")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, Image.DecompressionBombError):
        return f"too many pixels to decode safely (Pillow's limit is {Image.MAX_IMAGE_PIXELS * 2:,})"
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, OSError) and "truncated" in text:
        return f"truncated: {text}"
    if isinstance(exc, (OSError, SyntaxError, ValueError, EOFError)):
        return f"corrupt or unsupported: {text}"
    if isinstance(exc, MemoryError):
        return "not enough memory to decode it"
    return f"cannot decode it: {type(exc).__name__}: {text}"
