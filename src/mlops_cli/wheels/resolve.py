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
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from mlops_cli.output import OperationFailed, UsageError
from mlops_cli.wheels.targets import Target

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


@dataclass(frozen=True)
class Pin:
    name: str
    version: str


def uv_binary() -> str:
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError) as exc:
        raise OperationFailed("the uv resolver is not installed", hint="pip install uv (a dependency of mlops-cli)") from exc


def clean_env() -> dict[str, str]:
    """This process's environment without anything that configures uv or pip behind our back."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_")) and k != "VIRTUAL_ENV"}


def validate_requirement(text: str) -> str:
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        parsed = Requirement(text)
        if any(not spec.version for spec in parsed.specifier):
            raise InvalidRequirement("a version specifier has no version")
        if parsed.url:
            raise InvalidRequirement("direct URL requirements cannot be hash-pinned from an index")
    except InvalidRequirement as exc:
        first = str(exc).splitlines()[0]
        raise UsageError(f"malformed requirement {text!r}: {first}",
                         hint="write it like swanlab==0.5.7, 'swanlab[dashboard]>=0.5' or -r requirements.txt") from None
    return text


def compile_command(target: Target, inputs: list[Path], index_urls: list[str], cache_dir: Path) -> list[str]:
    argv = [uv_binary(), "pip", "compile", *[str(p) for p in inputs],
            "--python-platform", target.uv_platform(),
            "--python-version", target.python_full or target.python,
            "--python", sys.executable, "--no-python-downloads",
            "--no-config", "--no-header", "--no-annotate",
            "--cache-dir", str(cache_dir), "--index-url", index_urls[0]]
    for extra in index_urls[1:]:
        argv += ["--extra-index-url", extra]
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
    return re.sub(r"\s+", " ", text)[:600] or "uv failed without a message"


def parse_pins(stdout: str) -> list[Pin]:
    pins = []
    for line in stdout.splitlines():
        m = _PIN.match(line.strip())
        if m:
            pins.append(Pin(m.group(1), m.group(2)))
    return pins


def resolve(target: Target, inputs: list[Path], index_urls: list[str], cache_dir: Path,
            timeout: float = 600) -> tuple[list[Pin], list[str]]:
    """Pins for one target, plus uv's warnings (e.g. a yanked exact pin)."""
    argv = compile_command(target, inputs, index_urls, cache_dir)
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, env=clean_env(), timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise OperationFailed(f"resolving for {target.name} took longer than {int(timeout)} s") from None
    if proc.returncode != 0 and "Couldn't parse requirement" in proc.stderr:
        raise UsageError(f"malformed requirement: {summarize_uv_error(proc.stderr)}")
    if proc.returncode != 0:
        raise OperationFailed(f"cannot resolve the requirements for target {target.name}: {summarize_uv_error(proc.stderr)}")
    warnings = [re.sub(r"^warning:\s*", "", ln).strip() for ln in proc.stderr.splitlines() if ln.startswith("warning:")]
    return parse_pins(proc.stdout), warnings
