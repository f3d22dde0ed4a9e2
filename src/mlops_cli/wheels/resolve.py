"""Resolve requirements for a target with uv (`uv pip compile`), run as a subprocess.

Isolation: `--no-config` (no uv.toml / pyproject settings), every UV_* and PIP_* variable
removed, `--no-python-downloads` plus an explicit `--python` (uv would otherwise try to
download a CPython for `--python-version` and stall ~10 s without DNS: research §2), and the
index URLs passed explicitly. Markers are evaluated by uv for `--python-version` and
`--python-platform`, i.e. for the target, never for this host.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlops_cli import proc
from mlops_cli.errors import OperationFailed, UsageError
from mlops_cli.wheels.targets import Target

_CREDENTIALS = re.compile(r"//[^/@\s]+@")  # user:token@ in a URL: never echoed
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


@dataclass(frozen=True)
class Pin:
    name: str
    version: str


_uv_lock = threading.Lock()
_uv_path: list[str] = []


def uv_binary() -> str:
    """The uv program, found once. Targets resolve in threads, and ``find_uv_bin`` reads
    ``sysconfig``, whose first use is not thread-safe (two threads at once saw ``EXE`` as None)."""
    with _uv_lock:
        if not _uv_path:
            try:
                from uv import find_uv_bin

                _uv_path.append(find_uv_bin())
            except (ImportError, FileNotFoundError) as exc:
                raise OperationFailed(
                    "the uv resolver is not installed", hint="pip install uv (a dependency of mlops-cli)"
                ) from exc
        return _uv_path[0]


def clean_env() -> dict[str, str]:
    """This process's environment without anything that configures uv or pip behind our back;
    uv waits as long as mlops does for an index (MLOPS_WHEELS_HTTP_TIMEOUT)."""
    from mlops_cli.wheels.index import http_timeout

    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_")) and k != "VIRTUAL_ENV"}
    env["UV_HTTP_TIMEOUT"] = str(max(1, int(http_timeout())))
    return env


MAX_REQUIREMENT = 1000  # characters: no project name or specifier comes near (PyPI names stop far sooner)


def validate_requirement(text: str) -> str:
    from packaging.requirements import InvalidRequirement, Requirement

    from mlops_cli.text import one_line, shorten

    try:
        if len(text) > MAX_REQUIREMENT:
            raise InvalidRequirement(f"longer than {MAX_REQUIREMENT} characters")
        parsed = Requirement(text)
        if any(not spec.version for spec in parsed.specifier):
            raise InvalidRequirement("a version specifier has no version")
    except InvalidRequirement as exc:
        first = str(exc).splitlines()[0]
        raise UsageError(
            f"malformed requirement {shorten(one_line(text), 80)!r}: {shorten(one_line(first), 200)}",
            hint="write it like swanlab==0.5.7, 'swanlab[dashboard]>=0.5' or -r requirements.txt",
        ) from None
    if parsed.url:  # well formed, deliberately not bundled: a refusal, not a typo (pip would download it)
        raise UsageError(
            f"direct URL requirement for {shorten(one_line(parsed.name), 80)} is not supported: a bundle "
            "holds only files an index lists with their hash",
            hint=f"name it with its version ({shorten(one_line(parsed.name), 80)}==VERSION) and give its "
            "index with --index-url / --extra-index-url",
        )
    return text


def index_args(index_urls: list[str]) -> list[str]:
    """Our order is the priority: a project comes from the first index that has it.

    uv ranks `--extra-index-url` *above* `--index-url`, the opposite of what the flags mean to
    pip users; `--index` (in order) above `--default-index` says it the way we mean it, and
    the last of our URLs as the default keeps uv from ever falling back to pypi.org.
    """
    argv: list[str] = []
    for url in index_urls[:-1]:
        argv += ["--index", url]
    return argv + ["--default-index", index_urls[-1]]


def compile_command(
    target: Target,
    inputs: list[Path],
    index_urls: list[str],
    cache_dir: Path,
    only_binary: list[str] | None = None,
    constraints: Path | None = None,
) -> list[str]:
    """`uv pip compile` for one target; `only_binary`: names (or ':all:') resolved to versions
    that have a wheel for the target, as pip's --only-binary; `constraints`: a constraints file."""
    binary = [arg for name in (only_binary or []) for arg in ("--only-binary", name)]
    binary += ["--constraint", str(constraints)] if constraints is not None else []
    argv = [
        uv_binary(),
        "pip",
        "compile",
        *[str(p) for p in inputs],
        "--python-platform",
        target.uv_platform(),
        "--python-version",
        target.markers()["python_full_version"],
        "--python",
        sys.executable,
        "--no-python-downloads",
        "--no-config",
        "--no-header",
        "--no-annotate",
        "--cache-dir",
        str(cache_dir),
        *binary,
        *index_args(index_urls),
    ]
    return argv


def summarize_uv_error(stderr: str) -> str:
    """uv's boxed, multi-line report as one readable line."""
    lines = []
    for raw in stderr.splitlines():
        line = re.sub(r"^[\s×│╰─▶]+", "", raw).strip()
        line = re.sub(r"^(error|cause):\s*", "", line)
        if line.startswith("No solution found when resolving"):
            continue
        if line and not line.startswith(("hint:", "warning:")):
            lines.append(line)
    text = " ".join(lines)
    return _CREDENTIALS.sub("//", re.sub(r"\s+", " ", text))[:600] or "uv failed without a message"


def parse_pins(stdout: str) -> list[Pin]:
    pins = []
    for line in stdout.splitlines():
        m = _PIN.match(line.strip())
        if m:
            pins.append(Pin(m.group(1), m.group(2)))
    return pins


_SELECTING = re.compile(r"Selecting: ([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==(\S+)")
# Earlier hints in uv's -v log: a dependency named as soon as its parent's metadata is read (its
# index page is worth fetching now), and the wheel whose metadata uv reads for a candidate
# version (`No cache entry for: URL`, `Sending fresh HEAD request for: URL`, or PEP 658's
# `URL.metadata`), usually the version uv then selects. Recorded lines: tests/wheels/test_choose.py.
_DEPENDENCY = re.compile(r"Adding (?:transitive|direct) dependency(?: for \S+)?: ([A-Za-z0-9][A-Za-z0-9._-]*)")
_URL_LEAD = re.compile(r"\bfor:? (?=[A-Za-z][A-Za-z0-9+.-]*://)")
_LOG_LINE = re.compile(r"^\s*(\d+(\.\d+)?m?s\s+)?(DEBUG|TRACE|INFO|WARN)\b")
MAX_HINT_LINE = 8192  # characters: a longer line is nobody's hint


@dataclass(frozen=True)
class Hint:
    """What a line of uv's log says about the resolution under way: a project it needs
    (`version` None), a version it considers, or (`selected`) the version it picked."""

    name: str
    version: str | None = None
    selected: bool = False


def _wheel_in(line: str) -> str | None:
    """The wheel file name at the end of a `... for: URL` line (a `.metadata` suffix, query or
    fragment dropped), or None. String operations only: linear in the line."""
    m = _URL_LEAD.search(line)
    if not m:
        return None
    url = line[m.end() :].strip().split()[0] if line[m.end() :].strip() else ""
    path = url.split("#", 1)[0].split("?", 1)[0]
    if path.endswith(".metadata"):
        path = path[: -len(".metadata")]
    name = path.rsplit("/", 1)[-1]
    return name if name.endswith(".whl") and "://" in url else None


def parse_hint(line: str) -> Hint | None:
    """The hint in one line of uv's -v log, or None. Only a head start: never trusted for
    anything but what to fetch early."""
    if len(line) > MAX_HINT_LINE:
        return None
    m = _SELECTING.search(line)
    if m:
        return Hint(m.group(1), m.group(2), selected=True)
    if "dependency" in line:
        m = _DEPENDENCY.search(line)
        return Hint(m.group(1).rstrip("._-")) if m else None
    if ".whl" in line:
        filename = _wheel_in(line)
        if filename:
            from urllib.parse import unquote

            from packaging.utils import InvalidWheelFilename, parse_wheel_filename

            try:
                name, version, _build, _tags = parse_wheel_filename(unquote(filename))
            except (InvalidWheelFilename, ValueError):
                return None
            return Hint(str(name), str(version))
    return None


_stopping = threading.Event()


def stopping() -> bool:
    """True once `stop_running` was called: no further uv may start."""
    return _stopping.is_set()


def stop_running() -> None:
    """Stop every uv this process started and has not yet reaped (on Ctrl-C / SIGTERM), and
    start no other."""
    _stopping.set()
    proc.kill_all()


def _run_streaming(argv: list[str], timeout: float, on_line: Callable[[str], None]) -> tuple[int, str, str]:
    """Run uv, handing each stderr line to `on_line` as it comes; (rc, stdout, stderr without logs)."""
    if proc.which(argv[0]) is None and not os.path.exists(argv[0]):
        raise OperationFailed(f"the resolver {argv[0]} is not installed")
    with proc.spawn(argv, env=clean_env()) as child:
        out_chunks: list[str] = []
        reader = threading.Thread(target=lambda: out_chunks.append(child.stdout.read()), daemon=True)
        reader.start()
        kept: list[str] = []
        timer = threading.Timer(timeout, proc.stop, args=(child,))
        timer.start()
        try:
            for line in child.stderr:
                if _LOG_LINE.match(line):
                    on_line(line)
                else:
                    kept.append(line)
            rc = child.wait()
        finally:
            timer.cancel()
        reader.join()
    if rc < 0:
        raise OperationFailed(f"the resolver was stopped after {int(timeout)} s")
    return rc, "".join(out_chunks), "".join(kept)


def resolve(
    target: Target,
    inputs: list[Path],
    index_urls: list[str],
    cache_dir: Path,
    timeout: float = 600,
    on_hint: Callable[[Hint], None] | None = None,
    only_binary: list[str] | None = None,
    on_start: Callable[[], None] | None = None,
    constraints: Path | None = None,
) -> tuple[list[Pin], list[str]]:
    """Pins for one target, plus uv's warnings (e.g. a yanked exact pin).

    `on_hint(Hint)` is called as uv names, considers and picks packages (from its -v log), so
    callers can start fetching index pages and files before the resolution ends; only a hint.
    `on_start()` is called once, just before the first hint: uv has started, queried its
    interpreter (CPU-bound; better not shared) and begun resolving.
    """
    argv = compile_command(target, inputs, index_urls, cache_dir, only_binary, constraints) + ["-v"]
    if stopping():
        raise OperationFailed("interrupted")
    pending_start = [on_start] if on_start is not None else []

    def hint(line: str) -> None:
        try:
            found = parse_hint(line) if on_hint is not None or pending_start else None
            if found is None:
                return
            while pending_start:
                pending_start.pop()()
            if on_hint is not None:
                on_hint(found)
        except Exception:  # noqa: BLE001 - a hint that fails costs its head start, never the resolution
            pass

    rc, stdout, stderr = _run_streaming(argv, timeout, hint)
    if rc != 0 and "Couldn't parse requirement" in stderr:
        raise UsageError(f"malformed requirement: {summarize_uv_error(stderr)}")
    if rc != 0:
        raise OperationFailed(f"cannot resolve the requirements for target {target.name}: {summarize_uv_error(stderr)}")
    warnings = [re.sub(r"^warning:\s*", "", ln).strip() for ln in stderr.splitlines() if ln.startswith("warning:")]
    return parse_pins(stdout), [_CREDENTIALS.sub("//", w) for w in warnings]
