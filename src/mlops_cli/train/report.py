"""The result of `mlops train-doctor`: one object, rendered for a person or as JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from rich.console import Console
from rich.text import Text

from mlops_cli.train.diagnose import ERROR, WARNING, Finding
from mlops_cli.train.series import Series

SCHEMA = 1
_STYLE = {ERROR: "bold red", WARNING: "yellow", "info": "cyan"}


@dataclass
class TrainReport:
    files: list[str]
    framework: str
    findings: list[Finding]
    series: list[Series]
    notes: list[str] = field(default_factory=list)
    bytes_read: int = 0
    records: int = 0
    follow: bool = False
    stopped: Optional[str] = None  # follow: why it stopped ("error finding", "end of input", "process exited")
    killed: Optional[dict[str, Any]] = None  # --kill-on-nan outcome
    interrupted: bool = False  # follow: Ctrl-C/SIGTERM ended it
    shown: set[str] = field(default_factory=set)  # follow: findings already printed as they appeared

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == ERROR]

    @property
    def exit_code(self) -> int:
        return 1 if self.errors else 0

    @property
    def primary(self) -> Optional[Finding]:
        return self.errors[0] if self.errors else (self.findings[0] if self.findings else None)

    def to_json(self) -> dict[str, Any]:
        primary = self.primary
        return {
            "schema": SCHEMA,
            "files": self.files,
            "framework": self.framework,
            "healthy": not self.errors,
            "primary": primary.id if primary else None,
            "findings": [f.to_json() for f in self.findings],
            "series": [s.summary() for s in self.series],
            "notes": self.notes,
            "bytes": self.bytes_read,
            "records": self.records,
            "follow": {"stopped": self.stopped, "killed": self.killed, "interrupted": self.interrupted}
            if self.follow
            else None,
        }

    # -- text ----------------------------------------------------------------------------
    def render(self, console: Console) -> None:
        ranks = len(self.series)
        steps = [s.last_step for s in self.series if s.last_step is not None]
        where = ", ".join(self.files)
        head = f"{where}: {self.framework}, {self.records} step records"
        if ranks > 1:
            head += f" from {ranks} ranks/inputs"
        if steps:
            head += f", last step {max(steps)}"
        console.print(Text(head, style="bold"))
        if not self.findings:
            last = next((s for s in self.series if s.last_loss is not None), None)
            tail = (
                f" (last loss {last.last_loss:.4g} at step {last.last_step})"
                if last and last.last_step is not None and last.last_loss == last.last_loss
                else ""
            )
            msg = "OK: no NaN, loss-scale collapse, OOM, NCCL timeout, assert or killed process found" + tail
            if not self.records:
                msg = "no step records recognised in this log; no failure lines found either"
            console.print(Text(msg, style="green"))
        for f in self.findings:
            if f.id not in self.shown:
                render_finding(console, f)
        if self.follow and self.stopped:
            console.print(Text(f"stopped: {self.stopped}", style="dim"))
        for n in self.notes:
            console.print(Text(f"note: {n}", style="dim"))
        if self.killed:
            k = self.killed
            console.print(
                Text(
                    f"sent {k['signal']} to PID {k['pid']}" + ("" if k.get("ok") else f": {k.get('error')}"),
                    style="bold",
                )
            )


def render_finding(console: Console, f: Finding) -> None:
    """One finding: the headline, the reasons, the lines that prove it, the fix."""
    where = []
    if f.step is not None:
        where.append(f"step {f.step}")
    elif f.epoch is not None:
        where.append(f"epoch {f.epoch:g}")
    if f.rank is not None:
        where.append(f"rank {f.rank}")
    if f.time:
        where.append(f.time)
    elif f.elapsed:
        where.append(f"after {f.elapsed}")
    if f.line:
        where.append(f"{f.file}:{f.line}")
    head = Text()
    head.append(f"{f.severity.upper()} ", style=_STYLE.get(f.severity, ""))
    head.append(f"[{f.cls}] ", style="bold")
    head.append(f.title)
    if where:
        head.append(f"  ({', '.join(where)})", style="dim")
    console.print(head)
    if f.cause:
        console.print(Text(f"  cause: {f.cause}"))
    for b in f.because:
        console.print(Text(f"  - {b}"))
    if f.evidence:
        console.print(Text("  evidence:"))
        for e in f.evidence:
            loc = f"{e['file']}:{e['line']}" if e.get("line") else e["file"]
            note = f"  [{e['note']}]" if e.get("note") else ""
            console.print(Text(f"    {loc}: {e['text']}{note}", style="dim"))
    if f.fix:
        console.print(Text("  fix:"))
        for x in f.fix:
            console.print(Text(f"    * {x}"))
