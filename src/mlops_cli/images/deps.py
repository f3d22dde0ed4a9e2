"""The optional dependencies of `mlops images`, checked before any work: one line, exit 3."""

from __future__ import annotations

import importlib

from mlops_cli.errors import NotApplicable

INSTALL = "pip install 'mlops-cli[images]'"
# module -> distribution, in the order they are named
_ALWAYS = (("PIL", "Pillow"), ("numpy", "numpy"), ("scipy", "scipy"))
_BY_METRIC = {"phash": (("imagehash", "imagehash"),)}


def require(metric: str) -> None:
    missing = []
    for module, dist in _ALWAYS + _BY_METRIC.get(metric, ()):
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(dist)
    if missing:
        raise NotApplicable(f"`mlops images match` needs {', '.join(missing)}, not installed here: {INSTALL}")
