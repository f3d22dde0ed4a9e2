"""Shared by the `mlops images` tests: the extra's presence, and image folders made on the fly."""

from __future__ import annotations

import importlib.util

import pytest

EXTRA_MISSING = [m for m in ("PIL", "numpy", "scipy", "imagehash") if importlib.util.find_spec(m) is None]
needs_extra = pytest.mark.skipif(
    bool(EXTRA_MISSING),
    reason=f"the images extra is not installed ({', '.join(EXTRA_MISSING)} missing): pip install -e '.[test]'",
)
