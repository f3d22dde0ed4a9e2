"""`mlops driver-check`: options only; the work is in check.py."""

from __future__ import annotations

from typing import Optional

import typer

from mlops_cli.options import DryRunOpt, JsonOpt, PrometheusOpt, SaveSnapshotOpt, SnapshotOpt, YesOpt

app = typer.Typer(add_completion=False)

HELP = """\
Why the NVIDIA driver does not work (above all after a kernel upgrade), the evidence, and the
commands that fix it; also judges the kernel that boots next. Exit codes: 0 healthy,
1 problems, 2 bad usage or unreadable snapshot, 3 no NVIDIA GPU here, 4 fix applied and a
reboot is needed.

Examples:

  mlops driver-check                          # diagnose this machine

  mlops driver-check --json                   # for provisioning scripts

  mlops driver-check --kernel 6.8.0-49-generic   # will the driver load on this kernel?

  sudo mlops driver-check --save-snapshot gpu01.json   # attach to a ticket

  mlops driver-check --snapshot gpu01.json    # diagnose it elsewhere

  sudo mlops driver-check --fix               # show the plan, ask, run it, check again

  mlops driver-check --prometheus /var/lib/node_exporter/textfile_collector/mlops_driver.prom
"""


@app.command(help=HELP)
def driver_check(
    json_out: JsonOpt = False,
    kernel: Optional[str] = typer.Option(
        None,
        "--kernel",
        metavar="KVER",
        help="Also judge this installed kernel (e.g. installed by apt, not yet booted).",
    ),
    save_snapshot: SaveSnapshotOpt = None,
    snapshot: SnapshotOpt = None,
    fix: bool = typer.Option(False, "--fix", help="Show the fix plan, ask, run it step by step, then check again."),
    yes: YesOpt = False,
    dry_run: DryRunOpt = False,
    prometheus: PrometheusOpt = None,
) -> int:
    import os

    from mlops_cli import files
    from mlops_cli.driver.check import check, check_and_fix
    from mlops_cli.driver.metrics import build as driver_metrics
    from mlops_cli.driver.report import DriverReport
    from mlops_cli.errors import UsageError
    from mlops_cli.host import LiveHost, RecordingHost, Snapshot, SnapshotHost
    from mlops_cli.output import confirm, emit, err_console, info
    from mlops_cli.promfile import Textfile

    if kernel is not None and (
        not kernel.strip() or "/" in kernel or kernel != kernel.strip() or not kernel.isprintable() or len(kernel) > 200
    ):
        raise UsageError(
            f"--kernel {kernel!r} is not a kernel release",
            hint="write it as 'uname -r' prints it, e.g. 6.8.0-49-generic",
        )
    if save_snapshot is not None:  # before anything is probed, let alone fixed
        files.check_writable(save_snapshot, what="snapshot")
    metrics = Textfile(prometheus, driver_metrics)  # checks FILE now, starts the clock
    if snapshot and fix and not dry_run:
        raise UsageError(
            "--fix runs commands on this machine; it cannot fix a snapshot",
            hint="use --snapshot FILE --fix --dry-run to see the plan",
        )
    if snapshot:
        host, source = SnapshotHost(Snapshot.load(snapshot)), snapshot
    else:
        host, source = LiveHost(), "live"
    recorder = RecordingHost(host) if save_snapshot is not None else None
    probe_host = recorder or host

    saved = []

    def save_once() -> None:
        # With --fix this runs before any step: the snapshot holds the diagnosed state.
        if recorder is not None and save_snapshot is not None and not saved:
            recorder.snapshot.save(save_snapshot)
            saved.append(save_snapshot)
            info(f"snapshot written to {files.show_path(save_snapshot)}")

    if fix or dry_run:

        def show_plan(preview: DriverReport) -> None:
            from mlops_cli.driver.report import render_plan

            render_plan(err_console(), preview.fix.plan)  # type: ignore[union-attr]

        report = check_and_fix(
            probe_host,
            kernel=kernel,
            source=source,
            is_root=hasattr(os, "geteuid") and os.geteuid() == 0,
            assume_yes=yes,
            dry_run=dry_run,
            ask=confirm,
            show_plan=show_plan,
            progress=info,
            on_diagnosed=save_once,
        )
    else:
        report = DriverReport(check(probe_host, kernel), source)
    save_once()
    metrics.write(report)
    return emit(report, json_out)
