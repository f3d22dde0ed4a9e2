"""Padding bars around a picture: where the picture itself starts (pure numpy).

Outputs re-framed to another aspect ratio (letterboxed or pillarboxed to 16:9, padded square for a
model's input) carry flat bars that the original does not have; compared whole, the bars weigh as
much as the picture. A bar is a run of rows (or columns) from an edge, each nearly one flat value
(spread <= SPREAD levels) and the same value as the edge line (within DRIFT), at least MIN_SHARE of the side thick.
Both sides of every pair are trimmed the same way, so a picture without bars is compared as before.
Only centred bars are found (both opposite sides, nearly as thick): padding on one side only is
not told apart from a flat backdrop, and stays.
"""

from __future__ import annotations

import numpy as np

SPREAD = 10  # max - min of one line, 0..255, for it to count as flat
DRIFT = 3  # how far a bar line's mean may be from the edge line's: a bar is one value, a sky drifts
MIN_SHARE = 0.05  # thinner runs are edges of the picture (or a frame), not padding to another shape
MAX_SHARE = 0.45  # never trim more than this from one side


def picture_box(gray: np.ndarray) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the picture inside its padding bars, for a 2-D uint8 array.

    Bars count in pairs only: top and bottom (or left and right) both flat, of one value and
    nearly as thick as each other, as a centred letterbox or pillarbox is. A flat area on one
    side (a white studio backdrop, a sky) is part of the picture and is kept."""
    height, width = gray.shape
    top, bottom = _pair(_run(gray), _run(gray[::-1]), gray[0], gray[-1])
    left, right = _pair(_run(gray.T), _run(gray.T[::-1]), gray[:, 0], gray[:, -1])
    return left, top, width - right, height - bottom


def _pair(a: int, b: int, edge_a: np.ndarray, edge_b: np.ndarray) -> tuple[int, int]:
    if not a or not b or abs(a - b) > max(2, 0.1 * max(a, b)):
        return 0, 0
    if abs(float(edge_a.mean()) - float(edge_b.mean())) > DRIFT:
        return 0, 0
    return a, b


def _run(lines: np.ndarray) -> int:
    """How many leading lines of ``lines`` (one per row) form a flat bar; 0 when too thin."""
    count = len(lines)
    limit = int(count * MAX_SHARE)
    if limit < 1:
        return 0
    head = lines[:limit].astype(np.int16)
    flat = (head.max(axis=1) - head.min(axis=1)) <= SPREAD
    same = np.abs(head.mean(axis=1) - float(head[0].mean())) <= DRIFT
    ok = flat & same
    run = limit if ok.all() else int(np.argmin(ok))
    return run if run >= max(1, round(count * MIN_SHARE)) else 0
