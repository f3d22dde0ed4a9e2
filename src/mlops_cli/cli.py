"""The root `mlops` app: registers each command lazily, global options, nothing else.

A command's module is imported only when that command runs (or its own --help is
asked for), so `mlops --help` and `mlops --version` stay fast.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Optional

import typer
from typer.core import TyperCommand, TyperGroup

from mlops_cli import __version__
from mlops_cli import _click as click_exc

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


def load_command(name: str) -> typer.core.TyperCommand:
    """Import a command's module and turn its Typer app into a click command."""
    target, short_help = COMMANDS[name]
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    sub_app = getattr(module, attr)
    command = typer.main.get_command(sub_app)
    command.name = name
    if not command.short_help:
        command.short_help = short_help
    return command


class LazyGroup(TyperGroup):
    """A Typer group whose subcommands are imported on first use."""

    _listing = False

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


def main(argv: Optional[list[str]] = None) -> None:
    """Console-script entry point: click usage errors become one `error:` line, exit 2."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="mlops", standalone_mode=False)
    except click_exc.NoArgsIsHelpError as exc:
        # `mlops` alone: show the help, as a person expects; a script gets exit 2.
        # Typer's rich formatter has already printed it while building the exception;
        # plain click returns it as the message instead.
        help_text = exc.format_message()
        if help_text.strip():
            typer.echo(help_text)
        sys.exit(2)
    except click_exc.UsageError as exc:
        typer.echo(f"error: {exc.format_message()}", err=True)
        cmd_path = exc.ctx.command_path if exc.ctx is not None else "mlops"
        typer.echo(f"hint: see '{cmd_path} --help'", err=True)
        sys.exit(2)
    except click_exc.ClickException as exc:
        typer.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except click_exc.Abort:
        typer.echo("error: aborted", err=True)
        sys.exit(1)
    except (click_exc.Exit, typer.Exit) as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: no tracebacks
        from mlops_cli.output import report_error  # rich is imported only when needed

        sys.exit(report_error(exc))
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
