"""The click that Typer runs on.

Recent Typer releases vendor a trimmed copy of click as `typer._click` (with
`Exit`/`Abort` moved to `typer`); older ones use the `click` package. Only the
exception classes are needed from it.
"""

import typer

try:  # pragma: no cover - depends on the installed Typer
    from typer._click import exceptions  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover
    from click import exceptions  # type: ignore[no-redef]

ClickException = exceptions.ClickException
UsageError = exceptions.UsageError
NoArgsIsHelpError = exceptions.NoArgsIsHelpError
Abort = getattr(exceptions, "Abort", typer.Abort)
Exit = getattr(exceptions, "Exit", typer.Exit)

__all__ = ["ClickException", "UsageError", "NoArgsIsHelpError", "Abort", "Exit"]
