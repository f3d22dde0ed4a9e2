"""Strips stay within what can be allocated and written (issue 8, second attack round).

A 1x20000 reference beside its 20000x1 match asked for a 400,000,000 x 20,000 strip (an
internal MemoryError); a reference over 65,500 pixels wide could not be written as JPEG."""

from __future__ import annotations

import pytest

from mlops_cli.errors import UsageError
from mlops_cli.images.layout import MAX_STRIP_PIXELS, MAX_STRIP_WIDTH, strip_layout

from .conftest import needs_extra


@pytest.mark.parametrize(
    "sizes, height",
    [
        ([(1, 20000), (20000, 1)], None),
        ([(70000, 2), (64, 48)], None),
        ([(64, 48), (64, 48), (48, 64)], 16384),
        ([(4000, 3000)] * 30, None),
    ],
)
def test_a_strip_is_scaled_down_to_fit_its_bounds(sizes, height):
    layout = strip_layout(sizes, height, labels=True)
    assert layout.width <= MAX_STRIP_WIDTH and layout.width * layout.height <= MAX_STRIP_PIXELS
    assert layout.panel_height >= 1 and len(layout.boxes) == len(sizes)
    # the tallest panel height that fits: one pixel more would not
    if layout.panel_height < (height or sizes[0][1]):
        taller = strip_layout(sizes, layout.panel_height + 1, labels=True)
        assert (
            taller.panel_height < layout.panel_height + 1
            or taller.width > MAX_STRIP_WIDTH
            or taller.width * taller.height > MAX_STRIP_PIXELS
        )


def test_a_strip_within_bounds_is_untouched():
    layout = strip_layout([(4000, 3000), (2000, 1500)], None, labels=False)
    assert layout.panel_height == 3000 and layout.width == 8000


def test_more_panels_than_a_strip_can_hold_is_one_usage_error():
    with pytest.raises(UsageError, match="do not fit in one strip"):
        strip_layout([(1, 65535)] * 70000, None, labels=False)


@needs_extra
def test_a_tall_reference_and_a_wide_match_make_a_strip_not_an_out_of_memory(mlops, tmp_path):
    from PIL import Image

    ref, other = tmp_path / "ref", tmp_path / "wide"
    ref.mkdir()
    other.mkdir()
    Image.new("RGB", (1, 20000), (200, 30, 30)).save(ref / "tall.png")
    Image.new("RGB", (20000, 1), (200, 30, 30)).save(other / "wide.png")
    r = mlops("images", "match", str(ref), str(other), "-o", str(tmp_path / "out"), "--json")
    assert r.returncode == 0, r
    rows = (tmp_path / "out" / "matches.csv").read_text().splitlines()
    assert rows[1].startswith("001.jpg,tall.png,") and ",wide.png," in rows[1], rows
    with Image.open(tmp_path / "out" / "001.jpg") as strip:
        assert strip.width <= MAX_STRIP_WIDTH and strip.width * strip.height <= MAX_STRIP_PIXELS
