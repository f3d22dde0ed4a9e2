"""A finished log (or several): stream each through the parser into one doctor."""

from __future__ import annotations

from collections.abc import Iterable
from typing import BinaryIO

from mlops_cli.errors import UsageError
from mlops_cli.train.diagnose import Doctor
from mlops_cli.train.parse import LogParser
from mlops_cli.train.report import TrainReport
from mlops_cli.train.scan import iter_chunks

_TEXT_CONTROLS = bytes(range(0x20)).translate(None, b"\t\n\r\x0b\x0c\x1b\x08")


def check_text(head: bytes, label: str) -> None:
    """A log is text: refuse input whose first 64 KiB are mostly NUL/control bytes (exit 2)."""
    sample = head[:65536]
    if not sample:
        return
    binary = len(sample) - len(sample.translate(None, _TEXT_CONTROLS))
    if binary > max(16, len(sample) // 10):
        raise UsageError(
            f"cannot read training log {label}: not a text log ({binary} control/NUL bytes in the first {len(sample)})",
            hint="point it at the text the training printed (stdout/stderr)",
        )


def framework_label(doctor: Doctor, files: list[str]) -> str:
    names = {doctor.framework_name(f) for f in files}
    return ", ".join(sorted(names)) if names else doctor.framework


def analyse(inputs: Iterable[tuple[str, BinaryIO]], framework: str = "auto", model: str | None = None) -> TrainReport:
    """Every input, one after the other, through one doctor (ranks stay apart by file and prefix)."""
    doctor = Doctor(framework, model)
    files: list[str] = []
    total = records = 0
    for label, stream in inputs:
        files.append(label)
        parser = LogParser(label, framework)
        doctor.set_context(label, parser.context)
        first = True
        for chunk in iter_chunks(stream):
            if first:
                check_text(chunk, label)
                first = False
            parser.feed(chunk)
            doctor.feed(parser.drain())
        parser.close()
        doctor.feed(parser.drain())
        total += parser.bytes_seen
        records += parser.records
    findings = doctor.finish()
    return TrainReport(
        files, framework_label(doctor, files), findings, list(doctor.series.values()), doctor.notes, total, records
    )
