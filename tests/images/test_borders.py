"""Padding bars (letterbox, pillarbox) are found and left out of the comparison."""

from __future__ import annotations

import io

import pytest
from tests.images.conftest import needs_extra

pytestmark = needs_extra
np = pytest.importorskip("numpy", reason="the images extra is not installed")
pytest.importorskip("PIL", reason="the images extra is not installed")

from PIL import Image  # noqa: E402
from tests.images import synth  # noqa: E402

from mlops_cli.images import borders, decode  # noqa: E402


def letterbox(pic: Image.Image, ratio: float, fill=(0, 0, 0)) -> Image.Image:
    width = int(pic.height * ratio)
    canvas = Image.new("RGB", (width, pic.height), fill)
    canvas.paste(pic, ((width - pic.width) // 2, 0))
    return canvas


@pytest.mark.parametrize("fill", [(0, 0, 0), (255, 255, 255), (90, 120, 30)])
def test_pillarbox_bars_are_found_in_any_flat_colour(fill):
    pic = synth.picture(3, 120, 120)
    boxed = letterbox(pic, 16 / 9, fill)
    gray = np.asarray(boxed.convert("L"))
    left, top, right, bottom = borders.picture_box(gray)
    x0 = (boxed.width - pic.width) // 2
    assert (top, bottom) == (0, boxed.height)
    assert abs(left - x0) <= 1 and abs(right - (x0 + pic.width)) <= 1


def test_letterbox_top_and_bottom():
    pic = synth.picture(4, 160, 90)
    canvas = Image.new("RGB", (160, 160), (0, 0, 0))
    canvas.paste(pic, (0, 35))
    assert borders.picture_box(np.asarray(canvas.convert("L"))) == (0, 35, 160, 125)


def test_a_flat_area_on_one_side_is_part_of_the_picture():
    # A studio backdrop or sky along one edge is not padding: only centred bar pairs are.
    pic = synth.picture(8, 160, 120)
    canvas = Image.new("RGB", (160, 160), (255, 255, 255))
    canvas.paste(pic, (0, 40))
    assert borders.picture_box(np.asarray(canvas.convert("L"))) == (0, 0, 160, 160)


def test_a_picture_without_bars_and_a_thin_frame_are_kept_whole():
    pic = synth.picture(5, 200, 100)
    assert borders.picture_box(np.asarray(pic.convert("L"))) == (0, 0, 200, 100)
    framed = Image.new("RGB", (202, 102), (0, 0, 0))
    framed.paste(pic, (1, 1))  # a one-pixel frame is part of the picture, under MIN_SHARE
    assert borders.picture_box(np.asarray(framed.convert("L"))) == (0, 0, 202, 102)


def test_a_flat_picture_is_never_trimmed_to_nothing():
    flat = np.full((50, 80), 128, dtype=np.uint8)
    left, top, right, bottom = borders.picture_box(flat)
    assert right - left >= 80 * (1 - 2 * borders.MAX_SHARE) - 1 and bottom - top >= 50 * (1 - 2 * borders.MAX_SHARE) - 1


def test_a_letterboxed_output_has_the_thumbnail_of_its_original():
    pic = synth.picture(6, 160, 120)
    boxed = letterbox(pic, 16 / 9)

    def thumb(im):
        buf = io.BytesIO()
        im.save(buf, "PNG")
        return decode.features(buf.getvalue(), "mse", 32).vector.astype(float)

    other = synth.picture(7, 160, 120)
    same = np.mean((thumb(pic) - thumb(boxed)) ** 2)
    assert same < np.mean((thumb(other) - thumb(boxed)) ** 2) / 10
    assert decode.features(_png(boxed), "mse", 32).width == boxed.width  # strips keep the whole output


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()
