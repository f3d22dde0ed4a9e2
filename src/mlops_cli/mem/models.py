"""Find a model's architecture: a config.json path or folder, a preset, or a Hub repo id.

Order: an existing path wins; then a built-in preset (no network needed); then the
Hugging Face Hub (``$HF_ENDPOINT``, default https://huggingface.co), with ``$HF_TOKEN``
sent as a bearer token and the config cached under ``$MLOPS_CACHE_DIR`` (default
``$XDG_CACHE_HOME/mlops`` or ``~/.cache/mlops``). A cached config is reused without
touching the network; ``HF_HUB_OFFLINE=1`` forbids the network altogether.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Optional
from urllib.parse import quote

from mlops_cli import files
from mlops_cli.errors import OperationFailed, UsageError
from mlops_cli.mem.config import ModelConfig, config_from_dict
from mlops_cli.mem.presets import find_preset, load_preset
from mlops_cli.mem.safetensors_count import ParamCount, count_from_hub, count_from_index, count_header, header_length
from mlops_cli.text import one_line, shorten

REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# A Hub revision: a branch, a tag or a commit (branches may hold "/", e.g. refs/pr/3). Never a
# path: no "..", no leading "/" or ".", no control characters. The cache key is its hash, so no
# revision text ever becomes a path component either.
REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")
DEFAULT_ENDPOINT = "https://huggingface.co"

# A transformers config.json is a few KiB; the largest real ones (with id2label tables) stay
# well under a MiB. The same cap bounds what is read from the Hub and what is cached.
MAX_CONFIG_BYTES = 4 * files.MiB
MAX_INDEX_BYTES = 16 * files.MiB
MAX_SHARDS = 4096


def cache_root() -> Path:
    return files.cache_dir()


def parse_config(text: str, what: str) -> Any:
    """A config.json's text -> dict. NaN / Infinity / 1e400 are let through here so that
    config_from_dict can name the key that holds them (exit 2); everything else that is not
    usable JSON is refused with one line."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{what} is not valid JSON: {exc.msg} (line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise UsageError(f"{what} is not usable JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise UsageError(f"{what} is not usable JSON: {shorten(one_line(exc), 120)}") from None
    if files.json_depth_exceeds(doc, 64):
        raise UsageError(f"{what} is not usable JSON: nested deeper than 64 levels")
    return doc


def _read_config_file(path: Path, name: str) -> ModelConfig:
    text = files.read_input_text(path, what="model config", max_bytes=MAX_CONFIG_BYTES)
    return config_from_dict(parse_config(text, f"model config {files.show_path(path)}"), name, source=str(path))


def load_from_path(path: Path) -> ModelConfig:
    if path.is_dir():
        candidate = path / "config.json"
        if not candidate.is_file():
            raise UsageError(f"{path} has no config.json", hint="point at a model folder or its config.json")
        model = _read_config_file(candidate, path.name)
        return with_exact_count(model, local_param_count(path, model))
    return _read_config_file(path, path.parent.name if path.name == "config.json" else path.stem)


def with_exact_count(model: ModelConfig, count: Optional[ParamCount]) -> ModelConfig:
    """Use a counted total when there is one. Quantized checkpoints keep the formula: their
    packed integer tensors are not parameter counts."""
    if count is None or not count.total or model.quantization is not None:
        return model
    return dataclasses.replace(model, exact_params=count.total, param_source=count.source)


def local_param_count(folder: Path, model: ModelConfig) -> Optional[ParamCount]:
    """Exact counts from the folder's safetensors headers, else its index's total_size."""
    shards = sorted(p for p in folder.glob("*.safetensors") if p.is_file())
    if len(shards) > MAX_SHARDS:
        raise UsageError(f"{folder} holds {len(shards)} safetensors files: not a model folder")
    if shards:
        total = ParamCount(source=f"safetensors headers ({len(shards)} file(s))")
        for shard in shards:
            total.add(_count_shard(shard))
        return total
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        doc = files.read_input_json(index, what="safetensors index", max_bytes=MAX_INDEX_BYTES)
        return count_from_index(doc, model.torch_dtype, f"model.safetensors.index.json total_size")
    return None


def _count_shard(path: Path) -> ParamCount:
    what = f"safetensors file {files.show_path(path)}"
    stream = files.open_input_stream(path, what="safetensors file")
    try:
        n = header_length(stream.read(8), what)
        header = stream.read(n)
    finally:
        stream.close()
    if len(header) < n:
        raise UsageError(f"{what}: the header is cut short ({len(header)} of {n} bytes)")
    return count_header(header, what)


def check_revision(revision: str) -> str:
    if not REVISION.fullmatch(revision) or ".." in revision.split("/") or "//" in revision:
        raise UsageError(f"--revision {shorten(one_line(revision), 60)!r} is not a Hub revision",
                         hint="a branch, tag or commit id, e.g. main, v1.0 or a 40-hex commit")
    return revision


def _cache_folder(repo: str, revision: str) -> Path:
    key = hashlib.sha256(revision.encode()).hexdigest()[:32]
    return cache_root() / "hf-configs" / repo.replace("/", "--") / key


def _cache_file(repo: str, revision: str) -> Path:
    return _cache_folder(repo, revision) / "config.json"


def fetch_from_hub(repo: str, revision: str = "main", timeout: float = 15.0) -> ModelConfig:
    check_revision(revision)
    cached = _cache_file(repo, revision)
    if cached.is_file():
        return with_exact_count(_read_config_file(cached, repo), _cached_count(repo, revision))
    endpoint = os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")
    if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0", "false"):
        raise OperationFailed(f"{repo}: config not cached and HF_HUB_OFFLINE is set",
                              hint="pass a config.json path, or run once with network access to cache it")
    import requests  # heavy; only when the Hub is asked

    url = f"{endpoint}/{repo}/resolve/{quote(revision, safe='')}/config.json"
    headers = {"User-Agent": "mlops-cli"}
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        response = requests.get(url, headers=headers, timeout=timeout, stream=True)
        body = _read_capped(response, MAX_CONFIG_BYTES) if response.status_code == 200 else b""
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
    if body is None:
        raise UsageError(f"{repo}: the Hub's config.json is larger than {files.format_size(MAX_CONFIG_BYTES)}, "
                         "more than a config ever holds; not used or cached",
                         hint="check HF_ENDPOINT, or pass a config.json path")
    text = files.decode_utf8(body, what="model config", path=url)
    doc = parse_config(text, f"model config from {url}")
    model = config_from_dict(doc, repo, source=url)  # validate before caching
    files.cache_dir("hf-configs")  # created 0700
    cached.parent.mkdir(parents=True, exist_ok=True)
    files.write_json(cached, doc, what="cached config", indent=1)
    count = _hub_count(requests, endpoint, repo, revision, headers, timeout)
    if count is not None:
        files.write_json(cached.parent / "param-count.json", count.to_json(), what="cached parameter count")
    return with_exact_count(model, count)


def _read_capped(response: Any, limit: int) -> Optional[bytes]:
    """The body, or None when it is larger than `limit` (stops reading there)."""
    chunks, size = [], 0
    for chunk in response.iter_content(chunk_size=65536):
        size += len(chunk)
        if size > limit:
            response.close()
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _hub_count(requests: Any, endpoint: str, repo: str, revision: str, headers: dict, timeout: float) -> Optional[ParamCount]:
    """The Hub API's safetensors parameter counts; None when unavailable (the formula is used)."""
    url = f"{endpoint}/api/models/{repo}/revision/{quote(revision, safe='')}?expand[]=safetensors"
    try:
        response = requests.get(url, headers=headers, timeout=timeout, stream=True)
        body = _read_capped(response, MAX_CONFIG_BYTES) if response.status_code == 200 else None
        if body is None:
            return None
        return count_from_hub(files.parse_json(body, what="Hub model info"), "Hub safetensors metadata")
    except (requests.RequestException, UsageError):
        return None


def _cached_count(repo: str, revision: str) -> Optional[ParamCount]:
    path = _cache_folder(repo, revision) / "param-count.json"
    if not path.is_file():
        return None
    try:
        doc = files.read_input_json(path, what="cached parameter count", max_bytes=files.MiB)
        return count_from_hub({"safetensors": {"parameters": doc.get("by_dtype")}}, "Hub safetensors metadata (cached)")
    except (UsageError, AttributeError):
        return None


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
