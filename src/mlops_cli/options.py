"""The options every command shares, defined once with one wording.

Use them as annotated types: ``def cmd(json_out: JsonOpt = False, yes: YesOpt = False)``.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print one JSON document on stdout and nothing else there (schema in docs/).")
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before changing the system (for scripts).")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Show the plan only; change nothing.")]
SnapshotOpt = Annotated[
    Optional[str],
    typer.Option(
        "--snapshot", metavar="FILE", help="Replay a snapshot saved with --save-snapshot instead of this machine."
    ),
]
SaveSnapshotOpt = Annotated[
    Optional[str],
    typer.Option(
        "--save-snapshot",
        metavar="FILE",
        help="Also write what was read from this machine to FILE (secrets redacted), to replay with --snapshot.",
    ),
]
PrometheusOpt = Annotated[
    Optional[str],
    typer.Option(
        "--prometheus",
        metavar="FILE",
        help="Also write the result as Prometheus metrics to FILE (atomically), for node_exporter's textfile "
        "collector, e.g. /var/lib/node_exporter/textfile_collector/mlops_driver.prom (docs/fleet.md).",
    ),
]
