"""Real image sets made with Pillow: photo-like pictures and the "effect" outputs of a model.

A picture is a smooth two-colour gradient in a random direction, a few filled shapes (ellipses,
rectangles, triangles) in random colours, and sensor-like noise; every seed gives a different
picture. The effects stand in for what image models and augmentations do to a picture: blur,
a colour shift, JPEG recompression, resizing (aspect kept or not). Distractors are pictures of
other seeds. Used by the tests and by benchmarks/images_match_speed.py.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter


def picture(seed: int, width: int = 160, height: int = 120) -> Image.Image:
    rnd = random.Random(seed)
    rng = np.random.default_rng(seed)
    angle = rnd.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    t = (np.cos(angle) * xx / width + np.sin(angle) * yy / height + 1) / 2
    start = np.array([rnd.randint(0, 255) for _ in range(3)], dtype=np.float32)
    end = np.array([rnd.randint(0, 255) for _ in range(3)], dtype=np.float32)
    pixels = start + (end - start) * t[..., None]
    image = Image.fromarray(pixels.clip(0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(rnd.randint(3, 6)):
        colour = tuple(rnd.randint(0, 255) for _ in range(3))
        x0, y0 = rnd.uniform(-0.2, 0.8) * width, rnd.uniform(-0.2, 0.8) * height
        x1, y1 = x0 + rnd.uniform(0.15, 0.6) * width, y0 + rnd.uniform(0.15, 0.6) * height
        kind = rnd.choice(("ellipse", "rectangle", "triangle"))
        if kind == "ellipse":
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        elif kind == "rectangle":
            draw.rectangle((x0, y0, x1, y1), fill=colour)
        else:
            draw.polygon([(x0, y1), ((x0 + x1) / 2, y0), (x1, y1)], fill=colour)
    noisy = np.asarray(image, dtype=np.float32) + rng.normal(0, 6, (height, width, 3))
    return Image.fromarray(noisy.clip(0, 255).astype(np.uint8), "RGB")


def blur(image: Image.Image, radius: float = 2.0) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(radius))


def colour_shift(image: Image.Image, warmth: int = 30, saturation: float = 1.4) -> Image.Image:
    r, g, b = ImageEnhance.Color(image).enhance(saturation).split()
    return Image.merge("RGB", (r.point(lambda v: min(255, v + warmth)), g, b.point(lambda v: max(0, v - warmth))))


def recompress(image: Image.Image, quality: int = 25) -> Image.Image:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def resize(image: Image.Image, scale: float = 0.5, aspect: float = 1.0) -> Image.Image:
    w, h = image.size
    return image.resize((max(1, round(w * scale * aspect)), max(1, round(h * scale))), Image.Resampling.BILINEAR)


def save(image: Image.Image, path: Path, **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **options)
    return path


def shuffled_names(count: int, seed: int, prefix: str, ext: str = "jpg") -> list[str]:
    """Names that do not correspond to the references' (the notes' situation)."""
    order = list(range(count))
    random.Random(seed).shuffle(order)
    return [f"{prefix}_{k:04d}.{ext}" for k in order]
