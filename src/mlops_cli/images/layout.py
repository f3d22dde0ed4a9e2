"""Where each panel of a review strip goes. Pure arithmetic, no Pillow.

A strip is one row: the reference, then one panel per other folder, side by side with no gap,
every panel ``height`` pixels tall with its width scaled to keep its aspect ratio:
``width = max(1, floor(w * height / h + 0.5))``. A folder that has no match for this reference
gets a blank panel as wide as the reference's, so columns stay in the same order. With labels,
a band of ``label_height(height)`` pixels under the panels holds one caption per panel.

A strip is at most ``MAX_STRIP_WIDTH`` pixels wide (JPEG's own limit) and ``MAX_STRIP_PIXELS``
in all: a taller strip (``--height``, or a very wide match beside a tall reference) is drawn at
the largest panel height that fits, so hostile image sizes never ask for gigabytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mlops_cli.errors import UsageError


@dataclass(frozen=True)
class Box:
    x: int
    width: int


@dataclass(frozen=True)
class StripLayout:
    panel_height: int
    label_height: int  # 0 without labels
    boxes: tuple[Box, ...]

    @property
    def width(self) -> int:
        last = self.boxes[-1]
        return last.x + last.width

    @property
    def height(self) -> int:
        return self.panel_height + self.label_height


def scaled_width(width: int, height: int, to_height: int) -> int:
    return max(1, math.floor(width * to_height / height + 0.5))


def label_height(panel_height: int) -> int:
    """A caption band that stays legible on small panels and modest on large ones."""
    return min(96, max(16, math.floor(panel_height * 0.06 + 0.5)))


MAX_STRIP_WIDTH = 65500  # the widest JPEG libjpeg writes
MAX_STRIP_PIXELS = 2**28  # 268 M pixels, 768 MiB as RGB


def strip_layout(sizes: list[tuple[int, int] | None], height: int | None, labels: bool) -> StripLayout:
    """``sizes``: upright (width, height) of the reference first, then of each match (None: no
    match). ``height``: the panel height, or None for the reference's own height; lowered when
    the strip would exceed MAX_STRIP_WIDTH or MAX_STRIP_PIXELS."""
    ref = sizes[0]
    if ref is None:
        raise ValueError("a strip needs its reference")
    panel_height = ref[1] if height is None else height
    layout = _layout_at(sizes, panel_height, labels)
    while panel_height > 1 and not _fits(layout):
        # Widths scale with the height (bar the 1-pixel floor), so one step nearly always fits.
        scale = min(MAX_STRIP_WIDTH / layout.width, math.sqrt(MAX_STRIP_PIXELS / (layout.width * layout.height)))
        panel_height = max(1, min(panel_height - 1, math.floor(panel_height * scale)))
        layout = _layout_at(sizes, panel_height, labels)
    if not _fits(layout):
        raise UsageError(
            f"{len(sizes)} panels do not fit in one strip ({MAX_STRIP_WIDTH} pixels wide at most)",
            hint="match fewer folders at a time",
        )
    return layout


def _fits(layout: StripLayout) -> bool:
    return layout.width <= MAX_STRIP_WIDTH and layout.width * layout.height <= MAX_STRIP_PIXELS


def _layout_at(sizes: list[tuple[int, int] | None], panel_height: int, labels: bool) -> StripLayout:
    ref = sizes[0]
    assert ref is not None
    blank = scaled_width(ref[0], ref[1], panel_height)
    boxes = []
    x = 0
    for size in sizes:
        w = blank if size is None else scaled_width(size[0], size[1], panel_height)
        boxes.append(Box(x, w))
        x += w
    return StripLayout(panel_height, label_height(panel_height) if labels else 0, tuple(boxes))


def strip_names(count: int, extension: str) -> list[str]:
    """001.jpg, 002.jpg, ...; more digits once there are more than 999 strips."""
    digits = max(3, len(str(count)))
    return [f"{i:0{digits}d}.{extension}" for i in range(1, count + 1)]
