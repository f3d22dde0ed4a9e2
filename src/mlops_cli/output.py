"""The one console, JSON emission, and how an error is shown.

Every command produces one result object that knows how to render itself for a person
(``render(console)``) and for a script (``to_json()``); ``emit`` picks one. Errors are raised
as ``errors.MlopsError`` and shown by ``report_error``, which only ``cli.main`` calls.

The consoles sanitise everything they render: whatever a command prints (GPU names, kernel log
lines, file names from an index), no escape sequence or control byte reaches the terminal.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import TYPE_CHECKING, Any, Protocol

from mlops_cli.errors import ExitCode, MlopsError, UsageError
from mlops_cli.text import _CLEAN, clean, one_line, shorten
from mlops_cli.units import format_bytes, parse_bytes  # noqa: F401 - re-exported for renderers

if TYPE_CHECKING:  # rich is imported when a console is first made: --json never needs it
    from rich.console import Console


class Result(Protocol):
    """What every command returns: one object, two renderings, one exit code."""

    def to_json(self) -> dict[str, Any]: ...

    def render(self, console: Console) -> None: ...

    @property
    def exit_code(self) -> int: ...


class OutputFailed(Exception):
    """The report could not be written to stdout (full disk, closed stdout, a reader gone)."""

    def __init__(self, error: OSError, exit_code: int, changed_system: bool):
        super().__init__(str(error))
        self.error = error
        self.exit_code = exit_code
        self.changed_system = changed_system


# --- consoles -------------------------------------------------------------------------


def _needs_clean(text: str) -> bool:
    return any(ord(c) in _CLEAN for c in text)


def _safe_console_class() -> type:
    """SafeConsole: a rich Console that shows control characters in rendered text as escapes.
    Rich's own styling is added when segments are written, so it is untouched."""
    global _SafeConsole
    if _SafeConsole is None:
        from rich.console import Console
        from rich.segment import Segment

        class SafeConsole(Console):
            def render(self, renderable, options=None):
                for segment in super().render(renderable, options):
                    if segment.control is None and segment.text and _needs_clean(segment.text):
                        yield Segment(clean(segment.text), segment.style)
                    else:
                        yield segment

        _SafeConsole = SafeConsole
    return _SafeConsole


_SafeConsole: type | None = None


_consoles: dict[str, Console] = {}


def _plain(stream) -> bool:
    """No colour, no animation: off a TTY, with NO_COLOR, or a dumb terminal."""
    if os.environ.get("NO_COLOR"):
        return True
    if os.environ.get("TERM") == "dumb":
        return True
    try:
        return not stream.isatty()
    except (AttributeError, ValueError, OSError):
        return True


def _env_width() -> int:
    try:
        return int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        return 0


def _make_console(stderr: bool) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    plain = _plain(stream)
    return _safe_console_class()(
        file=stream,
        stderr=stderr,
        no_color=plain,
        highlight=False,
        force_terminal=False if plain else None,
        # Off a TTY rich would wrap at 80 columns; keep long evidence lines whole in CI logs.
        width=None if not plain else max(_env_width(), 100),
        soft_wrap=plain,
    )


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
    except (AttributeError, ValueError, OSError):
        return False


def progress_enabled(json_mode: bool = False) -> bool:
    """Progress bars only for a person watching a terminal."""
    return not json_mode and not _plain(sys.stderr)


# --- emitting -------------------------------------------------------------------------


def json_text(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=False, default=str)


def emit_json(document: Any) -> None:
    """Write one JSON document to stdout, nothing else. (json escapes every control
    character, so the document is safe on a terminal as it is.)"""
    sys.stdout.write(json_text(document))
    sys.stdout.write("\n")
    sys.stdout.flush()


def emit(result: Result, json_mode: bool) -> int:
    """Render a result one way or the other; return its exit code. A report that cannot be
    written raises OutputFailed, carrying what the command itself did."""
    code = int(result.exit_code)
    try:
        if json_mode:
            emit_json(result.to_json())
        else:
            result.render(console())
            sys.stdout.flush()
    except OSError as exc:
        raise OutputFailed(exc, code, bool(getattr(result, "changed_system", False))) from None
    return code


def warn(message: str) -> None:
    """One warning line on stderr (a newline in what it quotes shows as \\n)."""
    err_console().print(f"warning: {one_line(message)}", markup=False, highlight=False)


def info(message: str) -> None:
    """A progress/log line for people; goes to stderr so stdout stays clean. One line: a
    newline in what it quotes (a file name, a command) shows as \\n."""
    err_console().print(one_line(message), markup=False, highlight=False)


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


# --- errors ---------------------------------------------------------------------------


# An error or hint line is for a person: one line, at most this long (the middle is elided),
# however much of a hostile input a message quotes.
MAX_ERROR_LINE = 1000


def error_line(text: object) -> str:
    return shorten(one_line(text), MAX_ERROR_LINE)


def debug_enabled() -> bool:
    return os.environ.get("MLOPS_DEBUG", "") not in ("", "0", "false", "no")


def _say(line: str) -> None:
    try:
        err_console().print(line, markup=False, highlight=False)
    except OSError:  # stderr gone too: nothing more can be said
        pass


def error_document(exc: BaseException) -> dict[str, Any]:
    """The JSON document printed on stdout for a failed command run with --json."""
    if isinstance(exc, MlopsError):
        hint = None if exc.hint is None else error_line(exc.hint)
        return {"error": {"message": error_line(exc.message), "hint": hint, "exit_code": int(exc.exit_code)}}
    if isinstance(exc, KeyboardInterrupt):
        return {"error": {"message": "interrupted", "hint": None, "exit_code": int(ExitCode.INTERRUPTED)}}
    if isinstance(exc, MemoryError):
        return {"error": {"message": OUT_OF_MEMORY, "hint": None, "exit_code": int(ExitCode.PROBLEM)}}
    return {
        "error": {
            "message": f"internal error: {type(exc).__name__}: {error_line(exc)}",
            "hint": None,
            "exit_code": int(ExitCode.PROBLEM),
        }
    }


OUT_OF_MEMORY = "out of memory: this input needs more memory than this machine gave mlops"


def report_error(exc: BaseException) -> int:
    """Show an exception the way the conventions say; return the exit code."""
    if debug_enabled() and not isinstance(exc, KeyboardInterrupt):
        _say("".join(traceback.format_exception(exc)))
    if isinstance(exc, MlopsError):
        _say(f"error: {error_line(exc.message)}")
        if exc.hint:
            _say(f"hint: {error_line(exc.hint)}")
        return int(exc.exit_code)
    if isinstance(exc, MemoryError):
        _say(f"error: {OUT_OF_MEMORY}")
        return int(ExitCode.PROBLEM)
    if isinstance(exc, KeyboardInterrupt):
        _say("error: interrupted")
        return int(ExitCode.INTERRUPTED)
    if isinstance(exc, OutputFailed):
        reason = exc.error.strerror or str(exc.error)
        _say(f"error: could not write the report to stdout: {one_line(reason)}")
        if exc.changed_system:
            _say("note: the change itself was made; only printing its report failed")
        return exc.exit_code if (exc.exit_code or exc.changed_system) else int(ExitCode.PROBLEM)
    _say(f"error: internal error: {type(exc).__name__}: {error_line(exc)}")
    _say("hint: re-run with --debug for the traceback, and report it with that output")
    return int(ExitCode.PROBLEM)
