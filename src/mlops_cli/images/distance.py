"""Distance matrices between two sets of thumbnails, computed with whole-matrix numpy operations.

Never pair by pair in Python: 2,000 x 2,000 images are 4 million pairs. Each metric turns every
image into a vector once, and the matrix comes out of a few matrix products:

- ``mse``: mean squared error of the RGB thumbnails, intensities scaled to 0..1, so 0 (same
  pixels) to 1; from ``|a|^2 + |b|^2 - 2 a.b``.
- ``ssim``: ``1 - SSIM`` of the grayscale thumbnails (0 same, up to 2). SSIM is averaged over
  non-overlapping ``block`` x ``block`` windows with the constants of Wang et al. (2004) and
  scikit-image (K1=0.01, K2=0.03, data range 1, population variances); per window the
  covariance of every pair is one matrix product.
- ``phash``: the Hamming distance, in bits (0..64), between 64-bit perceptual hashes.
"""

from __future__ import annotations

import numpy as np

METRICS = ("mse", "ssim", "phash")

SSIM_BLOCK = 8
_C1 = (0.01 * 1.0) ** 2
_C2 = (0.03 * 1.0) ** 2


def mse_matrix(ref: np.ndarray, other: np.ndarray) -> np.ndarray:
    """(n, ...) and (m, ...) uint8 or float images -> (n, m) mean squared error on a 0..1 scale."""
    a = _flat01(ref)
    b = _flat01(other)
    # Centre both on one mean: the products stay small, so float32 keeps ~7 digits of the difference.
    centre = a.mean(axis=0, dtype=np.float64).astype(np.float32)
    a -= centre
    b -= centre
    sq_a = np.einsum("ij,ij->i", a, a, dtype=np.float64)
    sq_b = np.einsum("ij,ij->i", b, b, dtype=np.float64)
    cross = a @ b.T
    dist = sq_a[:, None] + sq_b[None, :] - 2.0 * cross.astype(np.float64)
    np.maximum(dist, 0.0, out=dist)
    dist /= a.shape[1]
    return dist


def ssim_matrix(ref: np.ndarray, other: np.ndarray, block: int = SSIM_BLOCK) -> np.ndarray:
    """(n, s, s) and (m, s, s) grayscale images -> (n, m) of 1 - mean block SSIM."""
    a = _blocks(ref, block)  # (k, n, p)
    b = _blocks(other, block)  # (k, m, p)
    n, m = a.shape[1], b.shape[1]
    total = np.zeros((n, m), dtype=np.float64)
    for ka, kb in zip(a, b):
        mu_a = ka.mean(axis=1)
        mu_b = kb.mean(axis=1)
        var_a = ka.var(axis=1)
        var_b = kb.var(axis=1)
        cov = ka @ kb.T
        cov /= ka.shape[1]
        cov -= np.outer(mu_a, mu_b)
        # SSIM = (2 mu_a mu_b + C1)(2 cov + C2) / ((mu_a^2 + mu_b^2 + C1)(var_a + var_b + C2))
        num = np.outer(2.0 * mu_a, mu_b)
        num += _C1
        cov *= 2.0
        cov += _C2
        num *= cov
        den = np.add.outer(mu_a * mu_a, mu_b * mu_b)
        den += _C1
        den *= np.add.outer(var_a, var_b) + _C2
        num /= den
        total += num
    total /= a.shape[0]
    return 1.0 - total


def hamming_matrix(ref: np.ndarray, other: np.ndarray) -> np.ndarray:
    """(n, bits) and (m, bits) booleans -> (n, m) number of differing bits."""
    a = ref.reshape(len(ref), -1).astype(np.float32)
    b = other.reshape(len(other), -1).astype(np.float32)
    # bits differ where exactly one is set: a.(1-b) + (1-a).b
    dist = a @ (1.0 - b).T
    dist += (1.0 - a) @ b.T
    return np.rint(dist).astype(np.float64)


def distance_matrix(metric: str, ref: np.ndarray, other: np.ndarray) -> np.ndarray:
    if metric == "mse":
        return mse_matrix(ref, other)
    if metric == "ssim":
        return ssim_matrix(ref, other)
    if metric == "phash":
        return hamming_matrix(ref, other)
    raise ValueError(f"unknown metric {metric!r}")


def _flat01(images: np.ndarray) -> np.ndarray:
    flat = images.reshape(len(images), -1).astype(np.float32)
    if images.dtype == np.uint8:
        flat /= 255.0
    return flat


def _blocks(images: np.ndarray, block: int) -> np.ndarray:
    """(n, s, s) -> (k, n, block*block): the non-overlapping windows, as 0..1 floats; the edge
    rows and columns that do not fill a whole window are left out."""
    n, h, w = images.shape
    rows, cols = h // block, w // block
    if rows == 0 or cols == 0:
        raise ValueError(f"thumbnails of {h}x{w} are smaller than one {block}x{block} SSIM window")
    x = images[:, : rows * block, : cols * block].astype(np.float32)
    if images.dtype == np.uint8:
        x /= 255.0
    x = x.reshape(n, rows, block, cols, block).transpose(1, 3, 0, 2, 4)
    return np.ascontiguousarray(x.reshape(rows * cols, n, block * block))
