"""The container engine seam: Docker or Podman, through their command-line clients.

Both speak the same CLI for what we need (inspect, run, exec, build, rmi), so one class
serves both. Docker is the default; Podman when asked (``--engine podman`` or
``MLOPS_ENGINE=podman``) or when Docker is not installed. Nothing is ever pulled: every
``run`` uses ``--pull never`` semantics by referring to a local image ID, and ``--network none``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass

from mlops_cli import proc
from mlops_cli.errors import OperationFailed, UsageError
from mlops_cli.host import NOT_INSTALLED, TIMED_OUT, CommandResult
from mlops_cli.text import shell_join

ENGINES = ("docker", "podman")


@dataclass
class Engine:
    name: str  # docker | podman
    binary: str

    def run(self, args: Sequence[str], timeout: float = 120, stdin: str | None = None) -> CommandResult:
        argv = [self.binary, *args]
        result = proc.run(argv, timeout=timeout, input=stdin)
        if result.timed_out:
            return CommandResult(
                TIMED_OUT, result.stdout, f"timed out after {timeout:.0f} s: {shell_join(argv[:3])} ..."
            )
        return result

    # --- the engine itself ---------------------------------------------------------

    def where(self) -> str:
        if self.name == "docker" and os.environ.get("DOCKER_HOST"):
            return f" at DOCKER_HOST={os.environ['DOCKER_HOST']}"
        return ""

    def ensure_running(self) -> str:
        """The server version; one clear error (exit 1) when the engine cannot be reached."""
        result = self.run(
            ["version", "--format", "{{.Server.Version}}" if self.name == "docker" else "{{.Version}}"], timeout=20
        )
        if result.ok and result.stdout.strip():
            return result.stdout.strip()
        detail = _first_line(result.stderr) or _first_line(result.stdout) or f"rc {result.rc}"
        if self.name == "docker":
            hint = "start it (sudo systemctl start docker, or run dockerd), check DOCKER_HOST, or use --engine podman"
        else:
            hint = "check that podman works for this user (podman info), or use --engine docker"
        raise OperationFailed(f"cannot reach the {self.name} engine{self.where()}: {detail}", hint=hint)

    # --- images and containers -------------------------------------------------------

    def inspect(self, kind: str, ref: str) -> dict | None:
        result = self.run([kind, "inspect", ref], timeout=30)
        if not result.ok:
            return None
        try:
            data = json.loads(result.stdout)
        except json.JSONDecodeError:
            return None
        return data[0] if isinstance(data, list) and data else None

    def python_in_image(
        self, image_id: str, python_args: Sequence[str], stdin: str | None = None, timeout: float = 300
    ) -> tuple[str, CommandResult]:
        """Run the image's own python3 (falling back to python) with these arguments."""
        return _with_interpreter(
            lambda py: self.run(
                [
                    "run",
                    "--rm",
                    *(["-i"] if stdin is not None else []),
                    "--network",
                    "none",
                    "--entrypoint",
                    py,
                    image_id,
                    *python_args,
                ],
                timeout=timeout,
                stdin=stdin,
            )
        )

    def python_in_container(
        self, container: str, python_args: Sequence[str], stdin: str | None = None, timeout: float = 300
    ) -> tuple[str, CommandResult]:
        args = ["exec", "-i"] if stdin is not None else ["exec"]
        return _with_interpreter(
            lambda py: self.run([*args, container, py, *python_args], timeout=timeout, stdin=stdin)
        )

    def build(self, context: str, tag: str, timeout: float = 600) -> CommandResult:
        # --force-rm: a failed RUN step (sha256 or compile check) leaves no stopped container behind.
        return self.run(["build", "--force-rm", "--network", "none", "-t", tag, context], timeout=timeout)

    def remove_image(self, ref: str) -> None:
        self.run(["rmi", ref], timeout=60)


def _with_interpreter(call) -> tuple[str, CommandResult]:
    """python3 first, then python: the target's own interpreter, never a guessed path."""
    result = CommandResult(NOT_INSTALLED)
    for py in ("python3", "python"):
        result = call(py)
        missing = result.rc in (126, 127) and ("not found" in result.stderr or "no such file" in result.stderr.lower())
        if not missing:
            return py, result
    return "python3", result


def select_engine(requested: str | None, which=shutil.which, env=os.environ) -> Engine:
    """--engine, else MLOPS_ENGINE, else docker if installed, else podman."""
    name = (requested or env.get("MLOPS_ENGINE") or "").strip().lower() or None
    if name is not None and name not in ENGINES:
        raise UsageError(f"unknown container engine {name!r}", hint="use --engine docker or --engine podman")
    candidates = [name] if name else list(ENGINES)
    for candidate in candidates:
        binary = which(candidate)
        if binary:
            return Engine(candidate, binary)
    if name:
        raise OperationFailed(
            f"{name} is not installed (not on PATH)",
            hint=f"install it (apt-get install {'docker.io' if name == 'docker' else 'podman'}) "
            f"or choose the other engine with --engine",
        )
    raise OperationFailed(
        "no container engine found: neither docker nor podman is on PATH",
        hint="install Docker (apt-get install docker.io) or Podman (apt-get install podman)",
    )


def engine_name(requested: str | None, which=shutil.which, env=os.environ) -> str:
    """The engine a command would use, for a hint: never fails (docker when nothing is known)."""
    name = (requested or env.get("MLOPS_ENGINE") or "").strip().lower()
    if name in ENGINES:
        return name
    return "podman" if not which("docker") and which("podman") else "docker"


def _first_line(text: str) -> str:
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()
    return ""
