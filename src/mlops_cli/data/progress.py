"""A byte progress bar on stderr, for a person at a terminal only."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Optional


@contextlib.contextmanager
def byte_progress(paths: list[str], json_mode: bool) -> Iterator[Optional[Callable[[int], None]]]:
    from mlops_cli.output import err_console, progress_enabled

    if not progress_enabled(json_mode):
        yield None
        return
    total = 0
    for p in paths:
        try:
            total += os.stat(p).st_size if p != "-" else 0
        except OSError:
            pass
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    with Progress(
        "checking",
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        console=err_console(),
        transient=True,
    ) as bar:
        task = bar.add_task("check", total=total or None)
        yield lambda done: bar.update(task, completed=done)
