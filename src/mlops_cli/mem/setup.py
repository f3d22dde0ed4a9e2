"""The training / serving setup (kept as an import path; the definition lives in spec.py)."""

from __future__ import annotations

from mlops_cli.mem.spec import (
    ATTENTION,
    DEFAULT_CUDA_CONTEXT,
    KV_DTYPES,
    LOSSES,
    METHODS,
    OFFLOADS,
    OPTIMIZERS,
    PRECISIONS,
    QUANTS,
    SHARDINGS,
    GiB,
    MiB,
    Setup,
)

__all__ = [
    "ATTENTION",
    "DEFAULT_CUDA_CONTEXT",
    "GiB",
    "KV_DTYPES",
    "LOSSES",
    "METHODS",
    "MiB",
    "OFFLOADS",
    "OPTIMIZERS",
    "PRECISIONS",
    "QUANTS",
    "SHARDINGS",
    "Setup",
]
