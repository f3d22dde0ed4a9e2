"""Fixtures every command's tests share.

`mlops` runs the real command line in a child process (`python -m mlops_cli`), the
way a user or a provisioning script does: real argv parsing, real exit codes, real
stdout/stderr separation, no TTY.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


@dataclass
class Run:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        try:
            return json.loads(self.stdout)
        except json.JSONDecodeError as exc:  # pragma: no cover - shows the output on failure
            raise AssertionError(
                f"stdout is not one JSON document: {exc}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"
            )

    def no_report(self) -> bool:
        """True when the command failed without printing a report: stdout is empty, or, when
        --json was given, exactly the JSON error document whose exit code is the real one."""
        if self.stdout == "":
            return "--json" not in self.argv
        if "--json" not in self.argv:
            return False
        doc = json.loads(self.stdout)
        return set(doc) == {"error"} and doc["error"]["exit_code"] == self.returncode and bool(doc["error"]["message"])

    def __repr__(self) -> str:  # shown by pytest when an assertion fails
        return f"Run(argv={self.argv}, rc={self.returncode})\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


def run_mlops(
    *args: str,
    input: str | None = None,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    timeout: float = 300,
) -> Run:
    full_env = dict(os.environ)
    full_env.pop("MLOPS_DEBUG", None)
    full_env.update({"COLUMNS": "120", "PYTHONUNBUFFERED": "1"})
    if env:
        full_env.update(env)
    argv = [sys.executable, "-m", "mlops_cli", *args]
    proc = subprocess.run(
        argv,
        input=input,
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=timeout,
        stdin=None if input is not None else subprocess.DEVNULL,
    )
    return Run(list(args), proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def mlops():
    """Call as mlops("driver-check", "--json") -> Run(returncode, stdout, stderr)."""
    return run_mlops
