"""The root `mlops` app: registers each command lazily, global options, nothing else.

A command's module is imported only when that command runs (or its own --help is
asked for), so `mlops --help` and `mlops --version` stay fast.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from typing import Optional

import typer
from typer.core import TyperCommand, TyperGroup

from mlops_cli import __version__
from mlops_cli import _click as click_exc
from mlops_cli.plain_params import use_plain_params

# name -> (module:attribute of a typer.Typer, one-line help shown in `mlops --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "driver-check": (
        "mlops_cli.driver.cli:app",
        "Why the NVIDIA driver is broken (e.g. after a kernel upgrade), and the fix.",
    ),
    "wheels": (
        "mlops_cli.wheels.cli:app",
        "Offline wheel bundles for air-gapped installs, for the machine they go to.",
    ),
    "patch": (
        "mlops_cli.patch.cli:app",
        "Patch a package (e.g. transformers) inside a container image: pinned, reversible.",
    ),
    "gpu": (
        "mlops_cli.gpu.cli:app",
        "GPU memory, utilisation and processes now (NVML).",
    ),
    "mem": (
        "mlops_cli.mem.cli:app",
        "Memory a training or serving setup will need (`mlops mem estimate`).",
    ),
    "data": (
        "mlops_cli.data.cli:app",
        "Fine-tuning data vs LLaMA-Factory: what it keeps, drops or crashes on; convert; stats.",
    ),
    "oom-check": (
        "mlops_cli.mem.cli:oom_app",
        "Will it fit on this GPU? If not, the cheapest changes that make it fit.",
    ),
    "report": (
        "mlops_cli.fleet.cli:app",
        "One summary of many nodes' --json outputs: who is broken, who loses the GPU at next boot, the fix per group.",
    ),
    "images": (
        "mlops_cli.images.cli:app",
        "Pair originals with model outputs across folders; stitch review strips.",
    ),
    "train-doctor": (
        "mlops_cli.train.cli:app",
        "When and why a training run went wrong (NaN, OOM, NCCL...), from its log, with the fix.",
    ),
}

# Plain click formatting ("\b" keeps a paragraph unwrapped): the root help is what people and
# the before-stop check time most, and Typer's rich renderer costs ~100 ms of imports.
ROOT_HELP = """\
Field-tested ML-ops recipes as dependable commands.

Every command takes --json for scripts; exit codes: 0 ok, 1 problems found or operation
failed, 2 bad usage/input, 3 not applicable here (e.g. no NVIDIA GPU), 4 fix applied and
a reboot is needed. 'mlops COMMAND --help' shows each command's options and examples.

\b
Examples:
  mlops driver-check                 # why is the GPU gone after apt upgrade?
  mlops wheels swanlab==0.5.7        # offline bundle for an air-gapped box
  mlops oom-check Qwen/Qwen2.5-7B --method lora --gpu-mem 24GiB
"""


_LIST_ITEM = re.compile(r"^(?:[-*\u2022] |\d+[.)] )")


def reflow_help(text: Optional[str]) -> Optional[str]:
    """Help texts are written wrapped at ~100 columns; Typer's rich renderer keeps those line
    breaks after the first paragraph, so a narrower terminal shows ragged lines. Each plain
    paragraph becomes one line (the renderer wraps it to the terminal); indented lines
    (examples), list items and ``\\b`` blocks keep their breaks."""
    if not text or "\n" not in text:
        return text
    out = []
    for para in text.split("\n\n"):
        lines = para.split("\n")
        plain = [ln for ln in lines if ln.strip()]
        if len(plain) > 1 and not any(ln[:1].isspace() or ln.startswith("\b") or _LIST_ITEM.match(ln) for ln in plain):
            para = " ".join(ln.strip() for ln in plain)
        out.append(para)
    return "\n\n".join(out)


def _reflow_tree(command) -> None:
    command.help = reflow_help(command.help)
    for sub in getattr(command, "commands", {}).values():
        _reflow_tree(sub)


def load_command(name: str) -> typer.core.TyperCommand:
    """Import a command's module and turn its Typer app into a click command."""
    target, short_help = COMMANDS[name]
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    sub_app = getattr(module, attr)
    command = use_plain_params(typer.main.get_command(sub_app))
    _reflow_tree(command)
    command.name = name
    if not command.short_help:
        command.short_help = short_help
    return command


class LazyGroup(TyperGroup):
    """A Typer group whose subcommands are imported on first use."""

    _listing = False

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        use_plain_params(self)  # --version/--debug parsed without pydantic (mlops_cli/plain_params.py)

    def list_commands(self, ctx: typer.Context) -> list[str]:
        return list(super().list_commands(ctx)) + [n for n in COMMANDS if n not in self.commands]

    def get_command(self, ctx: typer.Context, cmd_name: str) -> Optional[typer.core.TyperCommand]:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        if cmd_name not in COMMANDS:
            return None
        if self._listing:
            # Only the name and one line are needed for the command list.
            return TyperCommand(cmd_name, short_help=COMMANDS[cmd_name][1], help=COMMANDS[cmd_name][1])
        command = load_command(cmd_name)
        self.commands[cmd_name] = command
        return command

    def format_help(self, ctx: typer.Context, formatter: object) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(
    cls=LazyGroup,
    name="mlops",
    help=ROOT_HELP,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mlops {__version__}")
        raise typer.Exit(0)


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", "-V", help="Show the version and exit.", callback=_version, is_eager=True
    ),
    debug: bool = typer.Option(
        False, "--debug", help="Show tracebacks for errors (same as MLOPS_DEBUG=1).", envvar="MLOPS_DEBUG"
    ),
) -> None:
    """Field-tested ML-ops recipes as dependable commands."""
    if debug:
        os.environ["MLOPS_DEBUG"] = "1"


class _ClosedStream:
    """Stands in for a stdout that was closed (``mlops ... >&-``): every write fails cleanly."""

    def __init__(self, name: str):
        self.name = name

    def write(self, _text: str) -> int:
        import errno

        raise OSError(errno.EBADF, f"{self.name} is closed")

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


class StdoutFailed(OSError):
    """A write to stdout failed (full disk, closed, a reader gone): whatever printed it (a
    report, --help, --version, a list), ``main`` says so in one line instead of crashing."""


class _GuardedStdout:
    """sys.stdout, with a failed write raised as ``StdoutFailed`` (still an OSError, so code
    that handles OSError keeps working)."""

    def __init__(self, inner):
        self._inner = inner

    def write(self, text):
        try:
            return self._inner.write(text)
        except OSError as exc:
            raise StdoutFailed(exc.errno, exc.strerror or str(exc)) from None

    def flush(self) -> None:
        try:
            self._inner.flush()
        except OSError as exc:
            raise StdoutFailed(exc.errno, exc.strerror or str(exc)) from None

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


def _prepare_streams() -> None:
    """stdout/stderr that cannot fail on text: a closed one raises OSError on write (reported
    as a failed report), and characters the encoding lacks (PYTHONIOENCODING=ascii) are escaped."""
    if sys.stdout is None:
        sys.stdout = _ClosedStream("stdout")  # type: ignore[assignment]
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115  floor: allowed (a closed stderr, for the life of the process)
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors="backslashreplace")
            except (ValueError, OSError):
                pass
    if not isinstance(sys.stdout, _GuardedStdout):
        sys.stdout = _GuardedStdout(sys.stdout)  # type: ignore[assignment]


def _silence_stdout() -> None:
    """After stdout failed (full, closed, reader gone), point it at /dev/null so that the
    interpreter's last flush does not print a second error."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
    except OSError:
        pass


def _json_requested(argv: list[str]) -> bool:
    words = argv[: argv.index("--")] if "--" in argv else argv
    return "--json" in words


def _fail(exc: BaseException, json_mode: bool) -> int:
    """The one error policy: one error line (and hint) on stderr, the exit code, and with
    --json a JSON error document on stdout too."""
    from mlops_cli.output import OutputFailed, error_document, json_text, report_error

    if isinstance(exc, KeyboardInterrupt) and "mlops_cli.proc" in sys.modules:
        sys.modules["mlops_cli.proc"].kill_all()
    if isinstance(exc, StdoutFailed):
        exc = OutputFailed(exc, 0, False)
    code = report_error(exc)
    if isinstance(exc, OutputFailed):
        _silence_stdout()
    elif json_mode:
        try:
            sys.stdout.write(json_text(error_document(exc)) + "\n")
            sys.stdout.flush()
        except OSError:
            _silence_stdout()
    return code


def main(argv: Optional[list[str]] = None) -> None:
    """Console-script entry point and the one error policy.

    A command raises ``MlopsError`` for what the user must know, or returns its exit code. Click
    usage errors become one ``error:`` line and exit 2; Ctrl-C and SIGTERM exit 130 after child
    programs are stopped; anything unexpected is an ``internal error`` line, never a traceback
    (``--debug`` shows it)."""
    from mlops_cli import interrupts

    args = list(sys.argv[1:] if argv is None else argv)
    _prepare_streams()
    interrupts.install()
    json_mode = _json_requested(args)
    if json_mode:
        from mlops_cli import files

        files.reserve_stdout()
    command = typer.main.get_command(app)
    code: int
    try:
        result = command.main(args=args, prog_name="mlops", standalone_mode=False)
        code = result if isinstance(result, int) else 0
        if code == 130 and interrupts.received():
            # Typer >= 0.16 turns Ctrl-C / SIGTERM into a bare exit status 130: report it the
            # one way (an error line, the JSON error document, child programs stopped).
            code = _fail(KeyboardInterrupt(), json_mode)
    except click_exc.NoArgsIsHelpError as exc:
        # `mlops` alone: show the help, as a person expects; a script gets exit 2.
        help_text = exc.format_message()
        code = 2
        if help_text.strip():
            try:
                typer.echo(help_text)
            except OSError as failed:
                _fail(failed, json_mode)
    except click_exc.UsageError as exc:
        from mlops_cli.errors import UsageError

        cmd_path = exc.ctx.command_path if exc.ctx is not None else "mlops"
        code = _fail(UsageError(exc.format_message(), hint=f"see '{cmd_path} --help'"), json_mode)
    except click_exc.ClickException as exc:
        from mlops_cli.errors import MlopsError

        code = _fail(MlopsError(exc.format_message(), exit_code=exc.exit_code), json_mode)
    except click_exc.Abort as exc:
        interrupted = isinstance(exc.__cause__, KeyboardInterrupt) or exc.__cause__ is None
        code = _fail(KeyboardInterrupt() if interrupted else exc, json_mode)
    except (click_exc.Exit, typer.Exit) as exc:
        code = exc.exit_code
        if code == 130 and interrupts.received():
            code = _fail(KeyboardInterrupt(), json_mode)
    except BaseException as exc:  # noqa: BLE001 - the last line of defence: no tracebacks
        if isinstance(exc, SystemExit):
            raise
        code = _fail(exc, json_mode)
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        _silence_stdout()
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
