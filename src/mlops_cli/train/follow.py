"""`--follow`: tail a growing log (a file or a pipe), report findings as they appear, stop at
the first error finding and, with `--kill-on-nan PID`, stop the training run too.

A regular file is polled (like `tail -f`; a file truncated in place is read again from the
start); a pipe or FIFO (stdin included) is read as data arrives and ends at EOF. When the
writer pauses, the parser is flushed, so a NaN line is judged without waiting for more output.
"""

from __future__ import annotations

import os
import select
import signal
import stat
import time
from collections.abc import Callable
from typing import BinaryIO, Optional

from mlops_cli.errors import MlopsError, UsageError
from mlops_cli.files import read_input_bytes
from mlops_cli.train.analyse import check_text, framework_label
from mlops_cli.train.diagnose import ERROR, Doctor, Finding
from mlops_cli.train.parse import LogParser
from mlops_cli.train.report import TrainReport

READ = 1 << 20


def process_alive(pid: int) -> bool:
    """True while PID runs; a zombie (exited, not yet reaped by its parent) has ended."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat_line = read_input_bytes(f"/proc/{pid}/stat", what="process status", max_bytes=4096)
    except MlopsError:
        return True  # no /proc here: signal 0 is all we know
    state = stat_line[stat_line.rfind(b")") + 2 :][:1]
    return state not in (b"Z", b"X")


def check_kill_target(pid: int) -> None:
    """Refuse a PID that must never get our SIGTERM, or that is not there to get it."""
    if pid <= 1:
        raise UsageError(
            f"--kill-on-nan {pid}: refusing PID <= 1 (init, or every process of the group)",
            hint="give the PID of the training process, e.g. --kill-on-nan $! after starting it with &",
        )
    if pid in (os.getpid(), os.getppid()):
        raise UsageError(
            f"--kill-on-nan {pid} is this process or its parent shell",
            hint="give the PID of the training process, e.g. --kill-on-nan $! after starting it with &",
        )
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        raise UsageError(f"--kill-on-nan {pid}: no such process") from None
    except PermissionError:
        raise UsageError(
            f"--kill-on-nan {pid}: not allowed to signal that process (another user's?)",
            hint="run train-doctor as the user that runs the training",
        ) from None


def stop_process(pid: int) -> dict:
    """SIGTERM to the training run; what happened, for the report."""
    out = {"pid": pid, "signal": "SIGTERM", "ok": False, "error": None}
    try:
        os.kill(pid, signal.SIGTERM)
        out["ok"] = True
    except ProcessLookupError:
        out["error"] = "the process had already exited"
    except PermissionError:
        out["error"] = "not allowed to signal it"
    return out


class _Reader:
    """Non-blocking-ish reads: a regular file is polled, a pipe waits with select."""

    def __init__(self, stream: BinaryIO, label: str) -> None:
        self.stream = stream
        self.label = label
        self.fd = stream.fileno()
        self.regular = stat.S_ISREG(os.fstat(self.fd).st_mode)
        self.pos = 0
        self.eof = False

    def read(self, timeout: float) -> bytes:
        if self.regular:
            try:
                size = os.fstat(self.fd).st_size
                if size < self.pos:  # truncated in place (copytruncate): read it again from the start
                    os.lseek(self.fd, 0, os.SEEK_SET)
                    self.pos = 0
                data = os.read(self.fd, READ)
            except OSError as exc:
                raise UsageError(f"cannot read {self.label}: {exc.strerror or exc}") from None
            self.pos += len(data)
            if not data:
                time.sleep(timeout)
            return data
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return b""
        try:
            data = os.read(self.fd, READ)
        except OSError as exc:
            raise UsageError(f"cannot read {self.label}: {exc.strerror or exc}") from None
        if not data:
            self.eof = True
        return data


def follow(
    label: str,
    stream: BinaryIO,
    *,
    framework: str,
    model: Optional[str],
    kill_pid: Optional[int],
    poll: float,
    on_finding: Callable[[Finding], None],
) -> TrainReport:
    """Read until EOF (pipe), the first error finding, or the --kill-on-nan process exiting."""
    doctor = Doctor(framework, model)
    parser = LogParser(label, framework)
    doctor.set_context(label, parser.context)
    reader = _Reader(stream, label)
    report = TrainReport([label], framework, [], [], follow=True)
    checked = False
    stopped = "end of input"
    try:
        while True:
            data = reader.read(poll)
            if data:
                if not checked:
                    check_text(data, label)
                    checked = True
                parser.feed(data)
            elif reader.eof:
                parser.close()
            else:
                parser.flush()
            new = doctor.feed(parser.drain())
            first_error = None
            for f in new:
                on_finding(f)
                if f.severity == ERROR and first_error is None:
                    first_error = f
            if first_error is not None:
                stopped = f"error finding {first_error.id}"
                if kill_pid is not None:
                    report.killed = stop_process(kill_pid)
                break
            if reader.eof:
                break
            if not data and kill_pid is not None and not process_alive(kill_pid):
                parser.close()
                for f in doctor.feed(parser.drain()):
                    on_finding(f)
                stopped = f"process {kill_pid} exited"
                break
    except KeyboardInterrupt:
        stopped = "interrupted"
        report.interrupted = True
    findings = doctor.finish()
    report.findings = findings
    report.series = list(doctor.series.values())
    report.notes = doctor.notes
    report.framework = framework_label(doctor, [label])
    report.bytes_read = parser.bytes_seen
    report.records = parser.records
    report.stopped = stopped
    return report
