"""``--prometheus FILE``: a node_exporter textfile-collector file, written beside the normal output.

A command makes one ``Textfile`` when it starts (the path is checked before any work, like
``--save-snapshot``, and the clock starts) and calls ``write(result)`` with its result object
when it has one. The metrics are built from ``result.to_json()`` by the command's pure
``metrics.build`` and written atomically (temporary file + rename), so node_exporter never reads
half a file. Without ``--prometheus`` both calls do nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from mlops_cli.metrics import Family, render

Builder = Callable[..., list[Family]]


class Textfile:
    def __init__(self, path: str | None, build: Builder):
        self.path = path
        self.build = build
        self.started = time.monotonic()
        if path is None:
            return
        from mlops_cli import files

        files.check_writable(path, what="metrics file")
        if not path.endswith(".prom") and path != "-" and not path.startswith("/dev/"):
            from mlops_cli.output import warn

            warn(f"{files.show_path(path)}: node_exporter's textfile collector reads only files named *.prom")

    def write(self, result: Any, *, started: float | None = None) -> None:
        """Write the metrics of ``result`` (an object with ``to_json()`` and ``exit_code``).
        ``started`` (a ``time.monotonic()`` value) times one sample of a repeated command."""
        if self.path is None:
            return
        from mlops_cli import files

        now = time.monotonic()
        families = self.build(
            result.to_json(),
            exit_code=int(result.exit_code),
            timestamp=time.time(),
            duration=now - (self.started if started is None else started),
        )
        files.write_atomic(self.path, render(families), what="metrics file")
