"""Decoding one image: EXIF orientation, JPEG draft mode, odd modes, and files that are not images."""

from __future__ import annotations

import io

import pytest
from tests.images.conftest import needs_extra

pytestmark = needs_extra
np = pytest.importorskip("numpy", reason="the images extra is not installed")
pytest.importorskip("PIL", reason="the images extra is not installed")

from PIL import Image  # noqa: E402
from tests.images import synth  # noqa: E402

from mlops_cli.images import decode  # noqa: E402


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **options)
    return buf.getvalue()


def halves(width=80, height=40) -> Image.Image:
    """Left half red, right half blue."""
    image = Image.new("RGB", (width, height), (255, 0, 0))
    image.paste((0, 0, 255), (width // 2, 0, width, height))
    return image


def sideways_jpeg(orientation: int = 6) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(halves(), "JPEG", quality=95, exif=exif.tobytes())


def test_exif_orientation_is_applied_before_comparing():
    # Orientation 6: the viewer turns the stored picture 90 degrees clockwise, so the stored
    # left (red) half ends up on top, and the picture is 40 wide and 80 tall.
    f = decode.features(sideways_jpeg(6), "mse", 8)
    assert (f.width, f.height) == (40, 80)
    top, bottom = f.vector[1, 4], f.vector[6, 4]
    assert top[0] > 200 and top[2] < 60
    assert bottom[2] > 200 and bottom[0] < 60
    plain = decode.features(encode(halves(), "JPEG", quality=95), "mse", 8)
    assert (plain.width, plain.height) == (80, 40)
    assert plain.vector[4, 1][0] > 200 and plain.vector[4, 6][2] > 200


def test_panel_is_upright_and_exactly_the_size_asked():
    image = decode.panel(sideways_jpeg(6), 20, 40)
    assert image.size == (20, 40) and image.mode == "RGB"
    assert image.getpixel((10, 5))[0] > 200 and image.getpixel((10, 35))[2] > 200


def test_jpeg_draft_mode_decodes_a_big_photo_at_an_eighth():
    photo = synth.picture(7, 4000, 3000)
    image, width, height = decode.open_upright(encode(photo, "JPEG", quality=90), (64, 64))
    assert (width, height) == (4000, 3000)  # the full picture's size is still known
    assert image.size == (500, 375)  # decoded at 1/8: never below the 64x64 asked for
    image, _, _ = decode.open_upright(encode(photo, "JPEG", quality=90), (1000, 700))
    assert image.size == (1000, 750)  # 1/4: the most that keeps 1000 x 700
    png, _, _ = decode.open_upright(encode(photo.resize((400, 300)), "PNG"), (64, 64))
    assert png.size == (400, 300)  # no draft mode outside JPEG


def test_draft_thumbnail_is_close_to_a_full_decode():
    photo = synth.picture(8, 1600, 1200)
    data = encode(photo, "JPEG", quality=90)
    fast = decode.features(data, "mse", 64).vector.astype(float)
    full = np.asarray(Image.open(io.BytesIO(data)).convert("RGB").resize((64, 64), Image.Resampling.BILINEAR), float)
    assert np.mean((fast - full) ** 2) / 255**2 < 0.001


def test_truncated_jpeg_is_unreadable_and_says_so():
    data = encode(synth.picture(9, 320, 240), "JPEG", quality=90)
    with pytest.raises(decode.Unreadable, match="truncated"):
        decode.features(data[: len(data) // 2], "mse", 64)


@pytest.mark.parametrize("data", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\0" * 40])
def test_garbage_is_unreadable(data):
    with pytest.raises(decode.Unreadable):
        decode.features(data, "mse", 64)


def test_formats_outside_the_promised_ones_are_not_opened():
    # Pillow would open these (EPS by running Ghostscript); the command never lets it.
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
    pcx = encode(synth.picture(1, 32, 32), "PCX")
    assert Image.open(io.BytesIO(pcx)).format == "PCX"
    for data in (eps, pcx):
        with pytest.raises(decode.Unreadable, match="not an image in a format this command reads"):
            decode.features(data, "mse", 64)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "BMP", "TIFF", "GIF"])
def test_each_promised_format_decodes(fmt):
    f = decode.features(encode(synth.picture(2, 90, 60), fmt), "ssim", 16)
    assert (f.width, f.height) == (90, 60) and f.vector.shape == (16, 16)


def test_sixteen_bit_grayscale_is_scaled_not_clipped():
    ramp = (np.linspace(0, 65535, 64)[None, :] * np.ones((32, 1))).astype(np.uint16)
    f = decode.features(encode(Image.fromarray(ramp), "PNG"), "mse", 16)
    row = f.vector[8, :, 0].astype(int)
    assert row[0] < 20 and row[-1] > 235 and 100 < row[8] < 160  # a ramp, not a white picture


def test_transparency_is_flattened_onto_white():
    rgba = Image.new("RGBA", (20, 20), (0, 0, 0, 0))
    rgba.paste((10, 200, 10, 255), (0, 0, 10, 20))
    f = decode.features(encode(rgba, "PNG"), "mse", 8)
    assert f.vector[4, 1].tolist() == [10, 200, 10]
    assert f.vector[4, 6].tolist() == [255, 255, 255]


def test_too_many_pixels_is_unreadable(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(decode.Unreadable, match="too many pixels"):
        decode.features(encode(synth.picture(3, 100, 100), "PNG"), "mse", 8)


def test_phash_is_64_bits():
    f = decode.features(encode(synth.picture(4), "JPEG"), "phash", 64)
    assert f.vector.shape == (64,) and f.vector.dtype == bool


def test_a_palette_gif_is_compared_by_its_colours():
    # Image models and converters write GIFs (palette, 256 colours): the thumbnail must be the picture.
    pic = synth.picture(5, 96, 64)
    gif = encode(pic.convert("P", palette=Image.Palette.ADAPTIVE, colors=256), "GIF")
    f = decode.features(gif, "mse", 16)
    want = np.asarray(pic.resize((16, 16), Image.Resampling.BILINEAR), dtype=float)
    assert np.abs(f.vector.astype(float) - want).mean() < 12


def test_an_animated_gif_counts_by_its_first_frame():
    first, second = synth.picture(6, 64, 48), synth.picture(7, 64, 48)
    buf = io.BytesIO()
    first.convert("P", palette=Image.Palette.ADAPTIVE).save(
        buf, "GIF", save_all=True, append_images=[second.convert("P", palette=Image.Palette.ADAPTIVE)], duration=100
    )
    f = decode.features(buf.getvalue(), "mse", 16)
    near = [
        np.abs(f.vector.astype(float) - np.asarray(p.resize((16, 16), Image.Resampling.BILINEAR), dtype=float)).mean()
        for p in (first, second)
    ]
    assert near[0] < near[1]


def test_an_empty_file_is_said_to_be_empty_not_of_another_format():
    # A zero-byte output (a crashed or interrupted tool) is not "another format": say what it is.
    with pytest.raises(decode.Unreadable, match=r"empty file \(0 bytes\)"):
        decode.features(b"", "mse", 64)
