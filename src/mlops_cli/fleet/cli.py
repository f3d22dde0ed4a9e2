"""`mlops report`: options only; reading is in inputs.py, the summary in summary.py."""

from __future__ import annotations

from typing import Optional

import typer

from mlops_cli.options import JsonOpt

app = typer.Typer(add_completion=False)

HELP = """\
One summary of many nodes' JSON outputs (mlops driver-check, gpu, oom-check --json): nodes by
status and finding, the nodes that will lose their GPU at the next boot, and one fix plan per
group of nodes with identical findings. Reads files, folders (e.g. the folder the Ansible role
in contrib/ansible fills, or Ansible's jsonfile fact cache) and pdsh output on stdin. A file
that cannot be used is listed and skipped. Exit codes: 0 all nodes fine, 1 a node is broken or
will lose its GPU at the next boot, 2 no usable input, or some input unusable and no node broken.

Examples:

  mlops report reports/                      # one JSON file per node: reports/gpu01.json ...

  pdsh -w 'gpu[001-500]' mlops driver-check --json | mlops report -

  mlops report --json /var/cache/ansible-facts | jq -r '.no_gpu_after_reboot[]'
"""


@app.command(help=HELP)
def report(
    inputs: Optional[list[str]] = typer.Argument(
        None, metavar="PATH...", help="JSON files, folders of them, or - for stdin (pdsh output works)."
    ),
    json_out: JsonOpt = False,
) -> int:
    from mlops_cli.errors import UsageError
    from mlops_cli.fleet.inputs import read_all
    from mlops_cli.fleet.report import FleetReport
    from mlops_cli.fleet.summary import summarize
    from mlops_cli.output import emit

    if not inputs:
        raise UsageError(
            "give the JSON outputs to summarise: files, folders, or - for stdin",
            hint="mlops report reports/   (see 'mlops report --help')",
        )
    if inputs.count("-") > 1:
        raise UsageError("stdin (-) can be read once")
    documents, unusable = read_all(inputs)
    if not documents:
        first = f" ({unusable[0].origin}: {unusable[0].reason})" if unusable else ""
        raise UsageError(
            f"no mlops JSON output found in {len(unusable)} input(s){first}",
            hint="give the --json output of mlops driver-check, gpu or oom-check, one file per node",
        )
    return emit(FleetReport(summarize(documents, unusable), list(inputs)), json_out)
