"""Distance matrices against per-pair references: numpy by hand, scikit-image's SSIM, imagehash."""

from __future__ import annotations

import io

import pytest
from tests.images.conftest import needs_extra

pytestmark = needs_extra
np = pytest.importorskip("numpy", reason="the images extra is not installed")
pytest.importorskip("PIL", reason="the images extra is not installed")

from tests.images import synth  # noqa: E402

from mlops_cli.images import decode, distance  # noqa: E402


def _rng_images(seed, shape):
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def test_mse_matrix_is_the_mean_squared_error_of_every_pair():
    a = _rng_images(1, (5, 16, 16, 3))
    b = _rng_images(2, (4, 16, 16, 3))
    b[2] = a[3]  # an exact copy: distance 0
    got = distance.mse_matrix(a, b)
    want = np.array([[np.mean((x / 255.0 - y / 255.0) ** 2) for y in b] for x in a])
    assert got.shape == (5, 4)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    assert got[3, 2] == pytest.approx(0.0, abs=1e-7)


def test_mse_keeps_small_differences_on_bright_images():
    # float32 with |a|^2 + |b|^2 - 2ab loses small differences unless the data are centred
    a = np.full((2, 64, 64, 3), 250, dtype=np.uint8)
    b = a.copy()
    b[1, 0, 0, 0] = 249  # one grey level in one pixel of 12,288 values
    got = distance.mse_matrix(a, b)
    assert got[0, 0] == pytest.approx(0.0, abs=1e-12)
    assert got[1, 1] == pytest.approx((1 / 255) ** 2 / (64 * 64 * 3), rel=1e-3)


def test_ssim_matrix_equals_scikit_image_on_each_window():
    skimage_metrics = pytest.importorskip(
        "skimage.metrics", reason="scikit-image (the SSIM reference) is not installed"
    )
    a = _rng_images(3, (3, 14, 14))
    b = _rng_images(4, (2, 14, 14))
    b[1] = np.clip(a[0].astype(int) + 40, 0, 255)  # a brighter copy: structure kept
    got = distance.ssim_matrix(a, b, block=7)
    for i in range(3):
        for j in range(2):
            # scikit-image on a single 7x7 window (uniform filter, population statistics) is
            # the SSIM of that window; our value is 1 - the mean over the four windows.
            windows = [
                skimage_metrics.structural_similarity(
                    a[i, r : r + 7, c : c + 7] / 255.0,
                    b[j, r : r + 7, c : c + 7] / 255.0,
                    win_size=7,
                    data_range=1.0,
                    use_sample_covariance=False,
                )
                for r in (0, 7)
                for c in (0, 7)
            ]
            assert got[i, j] == pytest.approx(1 - np.mean(windows), abs=1e-5)
    assert got[0, 1] < got[1, 1] and got[0, 1] < got[2, 1]


def test_ssim_drops_the_edge_that_does_not_fill_a_window():
    a = _rng_images(5, (2, 10, 10))
    np.testing.assert_allclose(
        distance.ssim_matrix(a, a, block=8), distance.ssim_matrix(a[:, :8, :8], a[:, :8, :8], block=8), atol=1e-6
    )
    with pytest.raises(ValueError):
        distance.ssim_matrix(a[:, :4, :4], a[:, :4, :4], block=8)


def test_hamming_matrix_equals_imagehash_differences():
    imagehash = pytest.importorskip("imagehash", reason="the images extra is not installed")
    pics = [synth.picture(seed) for seed in range(6)]
    hashes = [imagehash.phash(p) for p in pics]
    bits = []
    for p in pics:
        buf = io.BytesIO()
        p.save(buf, "PNG")
        bits.append(decode.features(buf.getvalue(), "phash", 64).vector)
    got = distance.hamming_matrix(np.stack(bits[:3]), np.stack(bits[3:]))
    want = [[hashes[i] - hashes[j] for j in range(3, 6)] for i in range(3)]
    assert got.tolist() == want


def test_unknown_metric():
    with pytest.raises(ValueError):
        distance.distance_matrix("psnr", np.zeros((1, 8, 8)), np.zeros((1, 8, 8)))
