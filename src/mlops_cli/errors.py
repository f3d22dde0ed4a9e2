"""The error classes and exit codes every command shares.

Imports nothing heavy (no rich, no typer), so pure decision code can raise these.
``cli.main`` is the one place that turns them into an ``error:`` line and an exit code.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    PROBLEM = 1  # a check found problems, or an operation failed
    USAGE = 2  # bad usage or bad input
    NOT_APPLICABLE = 3  # e.g. no NVIDIA GPU on this machine
    REBOOT_NEEDED = 4  # a fix was applied and a reboot is needed
    INTERRUPTED = 130  # Ctrl-C or SIGTERM


class MlopsError(Exception):
    """An error meant for the user: one line, an optional hint, an exit code."""

    exit_code: int = ExitCode.PROBLEM

    def __init__(self, message: str, hint: str | None = None, exit_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(MlopsError):
    """Bad usage or bad input (exit 2)."""

    exit_code = ExitCode.USAGE


class OperationFailed(MlopsError):
    """An operation or a check failed (exit 1)."""

    exit_code = ExitCode.PROBLEM


class NotApplicable(MlopsError):
    """The command does not apply to this machine (exit 3)."""

    exit_code = ExitCode.NOT_APPLICABLE


def os_reason(exc: OSError) -> str:
    """The short human reason of an OSError ('Permission denied', 'File name too long')."""
    return exc.strerror or str(exc) or type(exc).__name__
