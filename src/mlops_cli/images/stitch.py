"""Drawing one review strip with Pillow, from a layout (layout.py) and decoded panels."""

from __future__ import annotations

import threading
from typing import IO

from PIL import Image, ImageDraw, ImageFont

from mlops_cli.images.layout import StripLayout

BLANK = (224, 224, 224)  # a folder with no match for this reference
BAND = (255, 255, 255)
INK = (0, 0, 0)
SAVE_OPTIONS = {"jpg": ("JPEG", {"quality": 92, "subsampling": 0}), "png": ("PNG", {"compress_level": 6})}


def render(layout: StripLayout, panels: list[Image.Image | None], captions: list[str] | None) -> Image.Image:
    """The strip: each panel (already panel_height tall and its box's width) pasted at its box,
    a grey block where a panel is None, and one caption per box in the band below."""
    strip = Image.new("RGB", (layout.width, layout.height), BAND)
    for box, image in zip(layout.boxes, panels):
        if image is None:
            strip.paste(BLANK, (box.x, 0, box.x + box.width, layout.panel_height))
        else:
            if image.size != (box.width, layout.panel_height):
                raise ValueError(f"panel is {image.size}, its box {box.width}x{layout.panel_height}")
            strip.paste(image, (box.x, 0))
    if captions and layout.label_height:
        draw = ImageDraw.Draw(strip)
        font = _font(max(8, layout.label_height * 5 // 8))
        pad = max(2, layout.label_height // 6)
        for box, text in zip(layout.boxes, captions):
            fitted = fit(text, box.width - 2 * pad, font.getlength)
            if fitted:
                draw.text(
                    (box.x + pad, layout.panel_height + layout.label_height // 2),
                    fitted,
                    fill=INK,
                    font=font,
                    anchor="lm",
                )
    return strip


def save(strip: Image.Image, fh: IO[bytes], fmt: str) -> None:
    kind, options = SAVE_OPTIONS[fmt]
    strip.save(fh, format=kind, **options)


def fit(text: str, width: float, measure) -> str:
    """``text``, cut at the end with an ellipsis until ``measure(text) <= width``."""
    if measure(text) <= width:
        return text
    lo, hi = 0, len(text)
    while lo < hi:  # the longest prefix that fits with the ellipsis
        mid = (lo + hi + 1) // 2
        if measure(text[:mid] + "…") <= width:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo] + "…" if lo else ""


_fonts = threading.local()  # a FreeType face must not be used by two threads at once


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    # Pillow's bundled font (no system font needed); a bitmap font where FreeType is missing.
    cache = _fonts.__dict__.setdefault("by_size", {})
    if size not in cache:
        cache[size] = ImageFont.load_default(size=size)
    return cache[size]
