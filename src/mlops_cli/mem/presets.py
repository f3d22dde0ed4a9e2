"""Built-in presets: architecture values copied from published config.json files."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any, Optional

from mlops_cli.mem.config import ModelConfig, config_from_dict


@lru_cache(maxsize=1)
def _presets() -> dict[str, dict[str, Any]]:
    text = resources.files("mlops_cli.mem").joinpath("presets.json").read_text(encoding="utf-8")
    return json.loads(text)["models"]


def preset_names() -> list[str]:
    return sorted(_presets())


def find_preset(name: str) -> Optional[str]:
    """The canonical preset name for a name or alias (case-insensitive), or None."""
    wanted = name.strip().lower()
    for key, entry in _presets().items():
        if key.lower() == wanted or key.split("/")[-1].lower() == wanted:
            return key
        if any(alias.lower() == wanted or alias.split("/")[-1].lower() == wanted for alias in entry["aliases"]):
            return key
    return None


def load_preset(key: str) -> ModelConfig:
    entry = _presets()[key]
    return config_from_dict(entry["config"], key, source=f"preset ({entry['source']})")
