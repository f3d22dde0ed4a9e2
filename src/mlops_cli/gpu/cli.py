"""`mlops gpu`: options only; the work is in nvml.py (seam) and status.py (result)."""

from __future__ import annotations

from typing import Optional

import typer

from mlops_cli.output import emit, run_guarded

app = typer.Typer(add_completion=False)


@app.command(help="""GPU memory, utilisation, temperature, power and the processes holding memory, per GPU,
read through NVML (not by parsing nvidia-smi). Fields a GPU cannot report show as n/a.
No NVIDIA GPU or no NVML library: exit 3.

Examples:

  mlops gpu

  mlops gpu --json | jq '.gpus[] | {index, free: .memory.free_bytes}'

  mlops gpu --watch 2

  mlops gpu --save-snapshot gpus.json     # attach to a bug report

  mlops gpu --snapshot gpus.json          # replay it anywhere
""")
def gpu(
    json_out: bool = typer.Option(False, "--json", help="One JSON document on stdout (with --watch: one per line)."),
    watch: Optional[float] = typer.Option(None, "--watch", metavar="SECONDS", min=0.1,
                                          help="Refresh every SECONDS until Ctrl-C."),
    count: Optional[int] = typer.Option(None, "--count", min=1, help="With --watch: stop after this many samples."),
    save_snapshot: Optional[str] = typer.Option(None, "--save-snapshot", metavar="FILE",
                                                help="Record what NVML returned into FILE (replay with --snapshot)."),
    snapshot: Optional[str] = typer.Option(None, "--snapshot", metavar="FILE",
                                           help="Replay a recorded NVML snapshot instead of asking the GPU."),
) -> None:
    def body() -> int:
        from mlops_cli.gpu.nvml import RecordingNvml
        from mlops_cli.gpu.status import collect, open_source

        if count is not None and watch is None:
            from mlops_cli.output import UsageError

            raise UsageError("--count only applies with --watch", hint="mlops gpu --watch 2 --count 5")
        source, origin = open_source(snapshot, save_snapshot)
        if watch is None:
            status = collect(source, origin)
            if isinstance(source, RecordingNvml):
                source.save(save_snapshot)
            return emit(status, json_out)
        return _watch(source, origin, watch, count, json_out, save_snapshot)

    run_guarded(body)


def _watch(source, origin: str, seconds: float, count: Optional[int], json_out: bool,
           save_snapshot: Optional[str]) -> int:
    import json
    import sys
    import time

    from mlops_cli.gpu.nvml import RecordingNvml
    from mlops_cli.gpu.status import collect
    from mlops_cli.output import console

    samples = 0
    try:
        while True:
            status = collect(source, origin)
            if json_out:
                sys.stdout.write(json.dumps(status.to_json()) + "\n")
                sys.stdout.flush()
            else:
                out = console()
                if out.is_terminal:
                    out.clear()
                out.print(time.strftime("%H:%M:%S"), markup=False)
                status.render(out)
            samples += 1
            if count is not None and samples >= count:
                break
            time.sleep(seconds)
    except KeyboardInterrupt:
        pass
    if isinstance(source, RecordingNvml) and save_snapshot is not None:
        source.save(save_snapshot)
    return 0
