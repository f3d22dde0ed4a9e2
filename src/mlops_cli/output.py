"""The one console, JSON emission, and the error -> exit code mapping.

Every command produces one result object that knows how to render itself for a
person (``render(console)``) and for a script (``to_json()``); ``emit`` picks one.
User errors are raised as ``MlopsError`` and turned into one ``error:`` line (plus
an optional ``hint:``) and the exit code of ``specs/cli-conventions.md``.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from enum import IntEnum
from typing import Any, Callable, Protocol, TypeVar

from rich.console import Console


class ExitCode(IntEnum):
    OK = 0
    PROBLEM = 1  # a check found problems, or an operation failed
    USAGE = 2  # bad usage or bad input
    NOT_APPLICABLE = 3  # e.g. no NVIDIA GPU on this machine
    REBOOT_NEEDED = 4  # a fix was applied and a reboot is needed


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


class NotApplicable(MlopsError):
    """The command does not apply to this machine (exit 3)."""

    exit_code = ExitCode.NOT_APPLICABLE


class OperationFailed(MlopsError):
    """An operation or a check failed (exit 1)."""

    exit_code = ExitCode.PROBLEM


class Result(Protocol):
    """What every command returns: one object, two renderings, one exit code."""

    def to_json(self) -> dict[str, Any]: ...

    def render(self, console: Console) -> None: ...

    @property
    def exit_code(self) -> int: ...


# --- consoles -----------------------------------------------------------------

_consoles: dict[str, Console] = {}


def _plain(stream) -> bool:
    """No colour, no animation: off a TTY, with NO_COLOR, or a dumb terminal."""
    if os.environ.get("NO_COLOR"):
        return True
    if os.environ.get("TERM") == "dumb":
        return True
    try:
        return not stream.isatty()
    except (AttributeError, ValueError):
        return True


def _make_console(stderr: bool) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    plain = _plain(stream)
    return Console(
        file=stream,
        stderr=stderr,
        no_color=plain,
        highlight=False,
        force_terminal=False if plain else None,
        # Off a TTY rich would wrap at 80 columns; keep long evidence lines whole in CI logs.
        width=None if not plain else max(_env_width(), 100),
        soft_wrap=plain,
    )


def _env_width() -> int:
    try:
        return int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        return 0


def console() -> Console:
    """The shared stdout console for human output."""
    # Rebuilt whenever sys.stdout is swapped (test runners do that).
    key = f"out:{id(sys.stdout)}"
    if key not in _consoles:
        _consoles[key] = _make_console(stderr=False)
    return _consoles[key]


def err_console() -> Console:
    """The shared stderr console: errors, hints, progress, logs."""
    key = f"err:{id(sys.stderr)}"
    if key not in _consoles:
        _consoles[key] = _make_console(stderr=True)
    return _consoles[key]


def interactive() -> bool:
    """True when a person can answer a question (stdin and stderr are TTYs)."""
    try:
        return sys.stdin.isatty() and sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def progress_enabled(json_mode: bool = False) -> bool:
    """Progress bars only for a person watching a terminal."""
    return not json_mode and not _plain(sys.stderr)


# --- emitting -------------------------------------------------------------------


def emit_json(document: Any) -> None:
    """Write one JSON document to stdout, nothing else."""
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=False, default=str))
    sys.stdout.write("\n")
    sys.stdout.flush()


def emit(result: Result, json_mode: bool) -> int:
    """Render a result one way or the other; return its exit code."""
    if json_mode:
        emit_json(result.to_json())
    else:
        result.render(console())
    return int(result.exit_code)


def warn(message: str) -> None:
    err_console().print(f"warning: {message}", markup=False, highlight=False)


def info(message: str) -> None:
    """A progress/log line for people; goes to stderr so stdout stays clean."""
    err_console().print(message, markup=False, highlight=False)


def confirm(question: str, assume_yes: bool) -> bool:
    """Ask before changing a system. Without a TTY and without --yes, refuse."""
    if assume_yes:
        return True
    if not interactive():
        raise UsageError(
            "refusing to change this system without confirmation: no terminal to ask at",
            hint="re-run with --yes to proceed non-interactively, or --dry-run to see the plan",
        )
    from rich.prompt import Confirm

    return Confirm.ask(question, console=err_console(), default=False)


# --- sizes ----------------------------------------------------------------------

_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]


def format_bytes(n: float | int | None, precision: int = 1) -> str:
    """Binary units with the unit written: 1536 -> '1.5 KiB'."""
    if n is None:
        return "n/a"
    value = float(n)
    sign = "-" if value < 0 else ""
    value = abs(value)
    for unit in _UNITS:
        if value < 1024 or unit == _UNITS[-1]:
            if unit == "B":
                return f"{sign}{int(value)} B"
            return f"{sign}{value:.{precision}f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def parse_bytes(text: str) -> int:
    """'80GiB', '80 GB', '81920MiB', '1.5T' -> bytes. Decimal units are decimal."""
    import re

    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGTP]?)(i?)(B?)\s*", text, flags=re.IGNORECASE)
    if not m or (not m.group(2) and m.group(3)):
        raise UsageError(f"not a size: {text!r}", hint="write it like 80GiB, 24GB or 81920MiB")
    number, prefix, binary, _ = m.groups()
    power = "KMGTP".find(prefix.upper()) + 1 if prefix else 0
    # A bare 'G'/'T' (no 'B') is read as binary, as nvidia-smi and most people mean it.
    base = 1024 if (binary or not m.group(4)) else 1000
    return int(float(number) * base**power)


# --- running a command body with the error policy -------------------------------

T = TypeVar("T")


def debug_enabled() -> bool:
    return os.environ.get("MLOPS_DEBUG", "") not in ("", "0", "false", "no")


def report_error(exc: BaseException) -> int:
    """Print an exception the way the conventions say; return the exit code."""
    err = err_console()
    if isinstance(exc, MlopsError):
        if debug_enabled():
            err.print("".join(traceback.format_exception(exc)), markup=False, highlight=False)
        err.print(f"error: {exc.message}", markup=False, highlight=False)
        if exc.hint:
            err.print(f"hint: {exc.hint}", markup=False, highlight=False)
        return int(exc.exit_code)
    if isinstance(exc, KeyboardInterrupt):
        err.print("error: interrupted", markup=False, highlight=False)
        return 130
    if debug_enabled():
        err.print("".join(traceback.format_exception(exc)), markup=False, highlight=False)
    err.print(f"error: internal error: {type(exc).__name__}: {exc}", markup=False, highlight=False)
    err.print(
        "hint: re-run with --debug for the traceback, and report it with that output",
        markup=False,
        highlight=False,
    )
    return int(ExitCode.PROBLEM)


def run_guarded(body: Callable[[], int | None]) -> None:
    """Run a command body; map its outcome to an exit code and exit.

    Every Typer command calls this, so no user error ever shows a traceback.
    """
    import typer

    try:
        code = body()
    except typer.Exit:
        raise
    except BrokenPipeError:
        # `mlops ... | head`: the reader left; that is not our error.
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        except OSError:
            pass
        raise typer.Exit(0)
    except (MlopsError, KeyboardInterrupt, Exception) as exc:  # noqa: BLE001 - the one catch-all
        raise typer.Exit(report_error(exc))
    raise typer.Exit(int(code or 0))
