"""`mlops train-doctor`: options only; the work is in analyse/follow (and the pure parts)."""

from __future__ import annotations

from typing import Optional

import typer

from mlops_cli.options import JsonOpt

app = typer.Typer(add_completion=False)

HELP = """When and why a training run went wrong, from its log, with the fix.

Reads logs of HF Trainer, TRL, DeepSpeed, Megatron (-LM, -DeepSpeed, NeMo), Lightning, LLaMA-Factory, ms-swift, axolotl, torchtune, verl, fairseq or any loop that prints its loss, and reports the onset (step, time, rank, file:line), the evidence and the fix for: NaN/Inf loss with its likely cause (lr too high, gradient explosion, fp16 loss-scale collapse, bad data, a numerical op), CUDA OOM (capacity or fragmentation, with the `mlops oom-check` command), NCCL timeouts, device-side asserts, killed processes (host RAM), a NaN on one rank; loss spikes and plateaus as warnings.

Exit codes: 0 healthy, 1 something went wrong, 2 unreadable input or bad usage.

Examples:

  mlops train-doctor train.log

  mlops train-doctor rank0.log rank1.log --json

  python train.py 2>&1 | tee train.log | mlops train-doctor - --follow

  python train.py > train.log 2>&1 & mlops train-doctor train.log --follow --kill-on-nan $!
"""


@app.command(help=HELP)
def train_doctor(
    logs: list[str] = typer.Argument(..., metavar="LOG", help="Training log(s); '-' reads stdin."),
    follow: bool = typer.Option(
        False,
        "--follow",
        "-f",
        help="Tail a growing log (or stdin); print findings as they appear; exit 1 at the first error.",
    ),
    framework: str = typer.Option(
        "auto",
        "--framework",
        help="auto | hf | trl | deepspeed | lightning | megatron | llamafactory | ms-swift | "
        "axolotl | torchtune | generic (names the flags in the fixes)",
    ),
    model: Optional[str] = typer.Option(
        None,
        "--model",
        metavar="MODEL",
        help="Model (Hub id or config.json) for the `mlops oom-check` command; default: found in the log.",
    ),
    kill_on_nan: Optional[int] = typer.Option(
        None, "--kill-on-nan", metavar="PID", help="With --follow: send SIGTERM to PID at the first error finding."
    ),
    poll: float = typer.Option(0.5, "--poll", metavar="SECONDS", hidden=True, help="--follow: how often to look."),
    json_out: JsonOpt = False,
) -> int:
    from mlops_cli.errors import UsageError
    from mlops_cli.output import emit
    from mlops_cli.train.diagnose import FRAMEWORKS

    if framework not in FRAMEWORKS:
        raise UsageError(f"unknown --framework {framework!r}", hint="one of: " + ", ".join(FRAMEWORKS))
    if logs.count("-") > 1:
        raise UsageError("stdin ('-') can be read only once")
    if not 0.01 <= poll <= 60:
        raise UsageError("--poll must be between 0.01 and 60 seconds")
    if follow:
        if len(logs) != 1:
            raise UsageError("--follow takes exactly one LOG", hint="follow one file or '-' (stdin)")
        return _follow(logs[0], framework, model, kill_on_nan, poll, json_out)
    if kill_on_nan is not None:
        raise UsageError("--kill-on-nan needs --follow (it stops a run that is still going)")
    from mlops_cli.files import open_input_stream
    from mlops_cli.train.analyse import analyse

    streams = []
    try:
        for path in logs:
            streams.append((_label(path), open_input_stream(path, what="training log")))
        report = analyse(streams, framework, model)
    finally:
        for _, s in streams:
            _close(s)
    return emit(report, json_out)


def _label(path: str) -> str:
    from mlops_cli.text import one_line

    return "<stdin>" if path == "-" else one_line(path)


def _close(stream) -> None:
    import sys

    if stream is not sys.stdin.buffer:
        stream.close()


def _follow(
    path: str, framework: str, model: Optional[str], kill_pid: Optional[int], poll: float, json_out: bool
) -> int:
    from mlops_cli.files import open_input_stream
    from mlops_cli.output import console, emit, err_console
    from mlops_cli.train.follow import check_kill_target, follow
    from mlops_cli.train.report import render_finding

    if kill_pid is not None:
        check_kill_target(kill_pid)
    stream = open_input_stream(path, what="training log")
    shown: set[str] = set()

    def on_finding(f) -> None:
        if not json_out:
            render_finding(console(), f)
            shown.add(f.id)

    if not json_out:
        err_console().print(f"following {_label(path)} (Ctrl-C to stop)", markup=False, highlight=False)
    try:
        report = follow(
            _label(path), stream, framework=framework, model=model, kill_pid=kill_pid, poll=poll, on_finding=on_finding
        )
    finally:
        _close(stream)
    report.shown = shown
    code = emit(report, json_out)
    if report.interrupted:  # the report so far is out (one JSON document with --json); then 130
        from mlops_cli import interrupts
        from mlops_cli.errors import ExitCode

        err_console().print("error: interrupted", markup=False, highlight=False)
        interrupts.reported()
        return int(ExitCode.INTERRUPTED)
    return code
