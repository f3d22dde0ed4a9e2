"""`mlops gpu`: options only; the work is in nvml.py (seam) and status.py (result)."""

from __future__ import annotations

from typing import Optional

import typer

from mlops_cli.options import JsonOpt, PrometheusOpt, SaveSnapshotOpt, SnapshotOpt

app = typer.Typer(add_completion=False)

MAX_WATCH_SECONDS = 86400.0  # a day; `--watch inf` would never refresh and never end


@app.command(
    help="""GPU memory, utilisation, temperature, power and the processes holding memory, per GPU,
read through NVML (not by parsing nvidia-smi). Fields a GPU cannot report show as n/a.
No NVIDIA GPU or no NVML library: exit 3.

Examples:

  mlops gpu

  mlops gpu --json | jq '.gpus[] | {index, free: .memory.free_bytes}'

  mlops gpu --watch 2

  mlops gpu --save-snapshot gpus.json     # attach to a bug report

  mlops gpu --snapshot gpus.json          # replay it anywhere

  mlops gpu --watch 15 --prometheus /var/lib/node_exporter/textfile_collector/mlops_gpu.prom
"""
)
def gpu(
    json_out: JsonOpt = False,
    watch: Optional[float] = typer.Option(
        None,
        "--watch",
        metavar="SECONDS",
        min=0.1,
        max=MAX_WATCH_SECONDS,
        help="Refresh every SECONDS until Ctrl-C (JSON: one document per line).",
    ),
    count: Optional[int] = typer.Option(None, "--count", min=1, help="With --watch: stop after this many samples."),
    save_snapshot: SaveSnapshotOpt = None,
    snapshot: SnapshotOpt = None,
    prometheus: PrometheusOpt = None,
) -> int:
    from mlops_cli.errors import UsageError
    from mlops_cli.gpu.metrics import build as gpu_metrics
    from mlops_cli.gpu.nvml import RecordingNvml
    from mlops_cli.gpu.status import collect, open_source
    from mlops_cli.output import emit
    from mlops_cli.promfile import Textfile

    if count is not None and watch is None:
        raise UsageError("--count only applies with --watch", hint="mlops gpu --watch 2 --count 5")
    if watch is not None and watch != watch:  # NaN passes click's range check
        raise UsageError("--watch takes a number of seconds", hint="mlops gpu --watch 2")
    metrics = Textfile(prometheus, gpu_metrics)  # checks FILE before NVML is asked
    source, origin = open_source(snapshot, save_snapshot)
    if watch is None:
        status = collect(source, origin)
        if isinstance(source, RecordingNvml):
            source.save(save_snapshot)
        metrics.write(status)
        return emit(status, json_out)
    return _watch(source, origin, watch, count, json_out, save_snapshot, metrics)


def _watch(
    source, origin: str, seconds: float, count: Optional[int], json_out: bool, save_snapshot: Optional[str], metrics
) -> int:
    import json
    import sys
    import time

    from mlops_cli.gpu.nvml import RecordingNvml
    from mlops_cli.gpu.status import collect
    from mlops_cli.output import OutputFailed, console

    samples = 0
    try:
        while True:
            started = time.monotonic()
            status = collect(source, origin)
            metrics.write(status, started=started)
            try:
                if json_out:
                    sys.stdout.write(json.dumps(status.to_json()) + "\n")
                else:
                    out = console()
                    if out.is_terminal:
                        out.clear()
                    out.print(time.strftime("%H:%M:%S"), markup=False)
                    status.render(out)
                sys.stdout.flush()
            except OSError as exc:
                raise OutputFailed(exc, 0, False) from None
            samples += 1
            if count is not None and samples >= count:
                break
            time.sleep(seconds)
    except KeyboardInterrupt:
        pass
    if isinstance(source, RecordingNvml) and save_snapshot is not None:
        source.save(save_snapshot)
    return 0
