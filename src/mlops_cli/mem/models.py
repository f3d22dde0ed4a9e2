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
import threading
from pathlib import Path
from typing import Any, Optional
from urllib.parse import quote

from mlops_cli import files
from mlops_cli.errors import MlopsError, OperationFailed, UsageError
from mlops_cli.mem.config import ModelConfig, config_from_dict
from mlops_cli.mem.presets import find_preset, load_preset
from mlops_cli.mem.safetensors_count import ParamCount, count_from_hub, count_from_index, count_header, header_length
from mlops_cli.text import one_line, shorten

# A Hub repo id: owner/name, each part at most 96 characters of letters, digits, '-', '_', '.',
# with no '..' and no '--' (the Hub forbids both), so neither part is ever '.' or '..'.
REPO_ID = re.compile(r"^(?!.*\.\.)(?!.*--)[A-Za-z0-9][\w.-]{0,95}/(?!\.+$)[\w.-]{1,96}$")
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


def _read_config_file(path: Path, name: str, regular_only: bool = False) -> ModelConfig:
    text = files.read_input_text(path, what="model config", max_bytes=MAX_CONFIG_BYTES, regular_only=regular_only)
    return config_from_dict(parse_config(text, f"model config {files.show_path(path)}"), name, source=str(path))


def load_from_path(path: Path) -> ModelConfig:
    if os.path.isdir(path):
        candidate = path / "config.json"
        if not os.path.isfile(candidate):
            raise UsageError(
                f"{files.show_path(path)} has no config.json", hint="point at a model folder or its config.json"
            )
        model = _read_config_file(candidate, path.name, regular_only=True)
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
    shards = sorted(p for p in folder.glob("*.safetensors") if os.path.isfile(p))
    if len(shards) > MAX_SHARDS:
        raise UsageError(f"{files.show_path(folder)} holds {len(shards)} safetensors files: not a model folder")
    if shards:
        total = ParamCount(source=f"safetensors headers ({len(shards)} file(s))")
        for shard in shards:
            total.add(_count_shard(shard))
        return total
    index = folder / "model.safetensors.index.json"
    if os.path.isfile(index):
        doc = files.read_input_json(index, what="safetensors index", max_bytes=MAX_INDEX_BYTES, regular_only=True)
        return count_from_index(doc, model.torch_dtype, "model.safetensors.index.json total_size")
    return None


def _count_shard(path: Path) -> ParamCount:
    what = f"safetensors file {files.show_path(path)}"
    stream = files.open_input_stream(path, what="safetensors file", regular_only=True)
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
        raise UsageError(
            f"--revision {shorten(one_line(revision), 60)!r} is not a Hub revision",
            hint="a branch, tag or commit id, e.g. main, v1.0 or a 40-hex commit",
        )
    return revision


def _cache_parts(repo: str, revision: str) -> tuple[str, str, str]:
    """The cache folder of one repo at one revision, below the cache root: the revision is
    hashed, and REPO_ID keeps the repo part one safe folder name."""
    return "hf-configs", repo.replace("/", "--"), hashlib.sha256(revision.encode()).hexdigest()[:32]


def _cache_folder(repo: str, revision: str) -> Path:
    return cache_root().joinpath(*_cache_parts(repo, revision))


def _cache_file(repo: str, revision: str) -> Path:
    return _cache_folder(repo, revision) / "config.json"


def fetch_from_hub(repo: str, revision: str = "main", timeout: float = 15.0) -> ModelConfig:
    check_revision(revision)
    cached = _cache_file(repo, revision)
    if os.path.isfile(cached):
        return with_exact_count(_read_config_file(cached, repo, regular_only=True), _cached_count(repo, revision))
    endpoint = os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")
    if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0", "false"):
        raise OperationFailed(
            f"{repo}: config not cached and HF_HUB_OFFLINE is set",
            hint="pass a config.json path, or run once with network access to cache it",
        )
    import requests  # heavy; only when the Hub is asked

    url = f"{endpoint}/{repo}/resolve/{quote(revision, safe='')}/config.json"
    headers = {"User-Agent": "mlops-cli"}
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        status, body = _get_capped(requests, url, headers, timeout, MAX_CONFIG_BYTES)
    except requests.RequestException as exc:
        if isinstance(exc, requests.Timeout):
            what = f"{endpoint} timed out (no complete answer within {timeout:g} s per read, {HUB_DEADLINE:g} s in all)"
        else:
            what = f"cannot reach {endpoint} ({type(exc).__name__})"
        raise OperationFailed(
            f"{repo}: {what} and the config is not cached",
            hint="pass a config.json path or a preset (mlops mem estimate --list-presets), "
            "or set HF_ENDPOINT to a reachable mirror",
        ) from None
    if status in (401, 403):
        raise UsageError(
            f"{repo}: the Hub refused access (HTTP {status}); the model may be gated",
            hint="accept its licence on the Hub and set HF_TOKEN",
        )
    if status == 404:
        raise UsageError(
            f"unknown model: {repo} (no config.json at {endpoint})",
            hint="check the repo id, or pass a config.json path or a preset name",
        )
    if status != 200:
        raise OperationFailed(f"{repo}: {url} answered HTTP {status}")
    if body is None:
        raise UsageError(
            f"{repo}: the Hub's config.json is larger than {files.format_size(MAX_CONFIG_BYTES)}, "
            "more than a config ever holds; not used or cached",
            hint="check HF_ENDPOINT, or pass a config.json path",
        )
    text = files.decode_utf8(body, what="model config", path=url)
    doc = parse_config(text, f"model config from {url}")
    model = config_from_dict(doc, repo, source=url)  # validate before caching
    count = _hub_count(requests, endpoint, repo, revision, headers, timeout)
    _store_in_cache(repo, revision, doc, count)
    return with_exact_count(model, count)


def _store_in_cache(repo: str, revision: str, doc: Any, count: Optional[ParamCount]) -> None:
    """Cache what the Hub answered; a cache that cannot be written (full disk, read-only) costs
    the next run a download, not this run its answer."""
    from mlops_cli.output import warn

    try:
        folder = files.cache_dir(*_cache_parts(repo, revision))
        files.write_json(folder / "config.json", doc, what="cached config", indent=1)
        if count is not None:
            files.write_json(folder / "param-count.json", count.to_json(), what="cached parameter count")
    except MlopsError as exc:
        warn(f"the config was not cached: {exc.message}")


# The whole answer of one Hub request, however slowly it trickles in (the per-read timeout
# alone lets a server that sends a byte every few seconds hold mlops for hours).
HUB_DEADLINE = 60.0


def _get_capped(requests: Any, url: str, headers: dict, timeout: float, limit: int) -> tuple[int, Optional[bytes]]:
    """GET ``url``: (status, body); the body is None when larger than ``limit`` and b"" unless
    the status is 200. Raises ``requests.Timeout`` when the exchange takes more than
    HUB_DEADLINE seconds in all (the worker thread is abandoned; it dies with the process)."""
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            response = requests.get(url, headers=headers, timeout=timeout, stream=True)
            box["status"] = response.status_code
            box["body"] = _read_capped(response, limit) if response.status_code == 200 else b""
            response.close()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=work, name="mlops-hub-get", daemon=True)
    worker.start()
    worker.join(max(timeout, HUB_DEADLINE))
    if worker.is_alive():
        raise requests.Timeout(f"no complete answer from {url} within {HUB_DEADLINE:g} s")
    if "error" in box:
        raise box["error"]
    return box["status"], box["body"]


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


def _hub_count(
    requests: Any, endpoint: str, repo: str, revision: str, headers: dict, timeout: float
) -> Optional[ParamCount]:
    """The Hub API's safetensors parameter counts; None when unavailable (the formula is used)."""
    url = f"{endpoint}/api/models/{repo}/revision/{quote(revision, safe='')}?expand[]=safetensors"
    try:
        status, body = _get_capped(requests, url, headers, timeout, MAX_CONFIG_BYTES)
        if status != 200 or body is None:
            return None
        return count_from_hub(files.parse_json(body, what="Hub model info"), "Hub safetensors metadata")
    except (requests.RequestException, UsageError):
        return None


def _cached_count(repo: str, revision: str) -> Optional[ParamCount]:
    path = _cache_folder(repo, revision) / "param-count.json"
    if not os.path.isfile(path):
        return None
    try:
        doc = files.read_input_json(path, what="cached parameter count", max_bytes=files.MiB, regular_only=True)
        return count_from_hub({"safetensors": {"parameters": doc.get("by_dtype")}}, "Hub safetensors metadata (cached)")
    except (UsageError, AttributeError):
        return None


def _expand_user(spec: str) -> Path:
    """``~/x`` as the shell would; ``~nobody/x`` for a user that does not exist stays as typed."""
    try:
        return Path(spec).expanduser()
    except RuntimeError:
        return Path(spec)


def resolve_model(spec: str, revision: str = "main") -> ModelConfig:
    """MODEL argument -> ModelConfig. Unknown or malformed -> UsageError (exit 2)."""
    if not spec.strip():
        raise UsageError("MODEL is empty", hint="give a config.json path, a preset name or a Hub repo id")
    path = _expand_user(spec)
    if files.user_path_exists(path):
        return load_from_path(path)
    preset: Optional[str] = find_preset(spec)
    if preset:
        return load_preset(preset)
    shown = shorten(one_line(spec), 160)
    if spec.endswith(".json") or os.sep in spec.rstrip("/") and not REPO_ID.match(spec):
        raise UsageError(f"no such file: {shown}")
    if REPO_ID.match(spec):
        return fetch_from_hub(spec, revision)
    raise UsageError(
        f"unknown model: {shown!r} (not a path, a preset or a Hub repo id)",
        hint="see 'mlops mem estimate --list-presets', or pass a config.json path",
    )
