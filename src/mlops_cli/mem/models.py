"""Find a model's architecture: a config.json path or folder, a preset, or a Hub repo id.

Order: an existing path wins; then a built-in preset (no network needed); then the
Hugging Face Hub (``$HF_ENDPOINT``, default https://huggingface.co), with ``$HF_TOKEN``
sent as a bearer token and the config cached under ``$MLOPS_CACHE_DIR`` (default
``$XDG_CACHE_HOME/mlops`` or ``~/.cache/mlops``). A cached config is reused without
touching the network; ``HF_HUB_OFFLINE=1`` forbids the network altogether.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Optional

from mlops_cli.mem.config import ModelConfig, config_from_dict
from mlops_cli.mem.presets import find_preset, load_preset
from mlops_cli import files
from mlops_cli.errors import OperationFailed, UsageError

REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
DEFAULT_ENDPOINT = "https://huggingface.co"


# A transformers config.json is a few KiB; the largest real ones (with id2label tables) stay
# well under a MiB.
MAX_CONFIG_BYTES = 4 * files.MiB


def cache_root() -> Path:
    return files.cache_dir()


def _read_config_file(path: Path, name: str) -> ModelConfig:
    doc = files.read_input_json(path, what="model config", max_bytes=MAX_CONFIG_BYTES)
    return config_from_dict(doc, name, source=str(path))


def load_from_path(path: Path) -> ModelConfig:
    if path.is_dir():
        candidate = path / "config.json"
        if not candidate.is_file():
            raise UsageError(f"{path} has no config.json", hint="point at a model folder or its config.json")
        return _read_config_file(candidate, path.name)
    return _read_config_file(path, path.parent.name if path.name == "config.json" else path.stem)


def _cache_file(repo: str, revision: str) -> Path:
    return cache_root() / "hf-configs" / repo.replace("/", "--") / revision / "config.json"


def fetch_from_hub(repo: str, revision: str = "main", timeout: float = 15.0) -> ModelConfig:
    cached = _cache_file(repo, revision)
    if cached.is_file():
        return _read_config_file(cached, repo)
    endpoint = os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")
    if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0", "false"):
        raise OperationFailed(f"{repo}: config not cached and HF_HUB_OFFLINE is set",
                              hint="pass a config.json path, or run once with network access to cache it")
    import requests  # heavy; only when the Hub is asked

    url = f"{endpoint}/{repo}/resolve/{revision}/config.json"
    headers = {"User-Agent": "mlops-cli"}
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        response = requests.get(url, headers=headers, timeout=timeout)
    except requests.RequestException as exc:
        reason = type(exc).__name__
        raise OperationFailed(
            f"{repo}: cannot reach {endpoint} ({reason}) and the config is not cached",
            hint="pass a config.json path or a preset (mlops mem estimate --list-presets), "
                 "or set HF_ENDPOINT to a reachable mirror") from None
    if response.status_code in (401, 403):
        raise UsageError(f"{repo}: the Hub refused access (HTTP {response.status_code}); the model may be gated",
                         hint="accept its licence on the Hub and set HF_TOKEN")
    if response.status_code == 404:
        raise UsageError(f"unknown model: {repo} (no config.json at {endpoint})",
                         hint="check the repo id, or pass a config.json path or a preset name")
    if response.status_code != 200:
        raise OperationFailed(f"{repo}: {url} answered HTTP {response.status_code}")
    try:
        doc = response.json()
    except ValueError:
        raise UsageError(f"malformed model config from {url}: not JSON") from None
    model = config_from_dict(doc, repo, source=url)  # validate before caching
    cached.parent.mkdir(parents=True, exist_ok=True)
    files.write_json(cached, doc, what="cached config", indent=1)
    return model


def resolve_model(spec: str, revision: str = "main") -> ModelConfig:
    """MODEL argument -> ModelConfig. Unknown or malformed -> UsageError (exit 2)."""
    if not spec.strip():
        raise UsageError("MODEL is empty", hint="give a config.json path, a preset name or a Hub repo id")
    path = Path(spec).expanduser()
    if path.exists():
        return load_from_path(path)
    preset: Optional[str] = find_preset(spec)
    if preset:
        return load_preset(preset)
    if spec.endswith(".json") or os.sep in spec.rstrip("/") and not REPO_ID.match(spec):
        raise UsageError(f"no such file: {spec}")
    if REPO_ID.match(spec):
        return fetch_from_hub(spec, revision)
    raise UsageError(f"unknown model: {spec!r} (not a path, a preset or a Hub repo id)",
                     hint="see 'mlops mem estimate --list-presets', or pass a config.json path")
