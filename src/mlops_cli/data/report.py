"""Result objects of `mlops data check|convert|stats`: one each, rendered for people and as JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from mlops_cli.data.findings import FAILING, Finding
from mlops_cli.text import clean

STYLE = {"fatal": "bold red", "crash": "bold red", "drop": "yellow", "silent": "magenta", "warn": "cyan"}


@dataclass
class CheckResult:
    files: list[dict[str, Any]]
    entry: dict[str, Any]
    version: str
    stage: str
    parser: str
    findings: list[Finding] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # finding code -> how many
    records: int = 0
    keep: int = 0
    drop: int = 0
    crash: int = 0
    first_crash: Optional[dict[str, Any]] = None
    load_fails: bool = False
    findings_left_out: int = 0
    template: Optional[dict[str, Any]] = None  # {"name", "assumed", "table_release"}
    # LLaMA-Factory refuses the entry itself before it loads the file (ranking vs stage): the message
    refused: Optional[str] = None

    @property
    def exit_code(self) -> int:
        if self.load_fails or self.refused or self.crash or self.drop:
            return 1
        return 1 if any(f.consequence in FAILING for f in self.findings) else 0

    def summary(self) -> str:
        if self.load_fails:
            head = "LLaMA-Factory would not load the data: datasets.load_dataset fails for the whole file"
            tail = f" (the records themselves: keep {self.keep}, drop {self.drop}, crash on {self.crash})"
            return head + tail
        if self.refused:
            head = "LLaMA-Factory would stop before loading the file: it refuses the entry (" + self.refused + ")"
            tail = f"; the records as this entry maps them: keep {self.keep}, drop {self.drop}, crash on {self.crash}"
            return head + tail
        text = f"LLaMA-Factory would keep {self.keep}, drop {self.drop}"
        if self.first_crash:
            text += f", crash at record {self.first_crash['record']}"
            if self.first_crash.get("line"):
                text += f" (line {self.first_crash['line']})"
            if self.first_crash.get("stage") == "conversion":
                text += " while converting"
        text += f" of {self.records} records"
        if self.records and self.keep == 0 and not self.first_crash:
            text += ": RuntimeError: Cannot find valid samples"
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.exit_code == 0,
            "llamafactory_version": self.version,
            "stage": self.stage,
            "template": self.template,
            "entry": self.entry,
            "files": self.files,
            "records": self.records,
            "keep": self.keep,
            "drop": self.drop,
            "crash": self.crash,
            "first_crash": self.first_crash,
            "load_fails": self.load_fails,
            "refused": self.refused,
            "summary": self.summary(),
            "counts": self.counts,
            "findings": [f.to_json() for f in self.findings],
            "findings_left_out": self.findings_left_out,
            "parser": self.parser,
        }

    def render(self, console) -> None:
        from rich.text import Text

        for f in self.findings:
            line = Text()
            line.append(f"{f.consequence:<6} ", style=STYLE.get(f.consequence, ""))
            where = f.where()
            if where:
                line.append(clean(where) + ": ", style="bold")
            line.append(clean(f.message))
            if f.versions:
                line.append(f" [LLaMA-Factory {f.versions}]", style="dim")
            console.print(line)
        if self.findings_left_out:
            console.print(
                Text(
                    f"... {self.findings_left_out} more findings not listed (counts below are complete; "
                    "--max-findings 0 lists all)",
                    style="dim",
                )
            )
        if self.counts:
            console.print(
                Text("by kind: " + ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items())), style="dim")
            )
        files = ", ".join(f"{clean(f['path'])} ({f['kind']})" for f in self.files)
        template = ""
        if self.template:
            template = f", template {clean(self.template['name'])}" + (
                " (assumed; --template NAME for yours)" if self.template.get("assumed") else ""
            )
        console.print(
            Text(
                f"checked {files} as {self.entry.get('converter')} for stage {self.stage}, "
                f"rules of LLaMA-Factory {self.version}{template}",
                style="dim",
            )
        )
        style = "bold red" if self.exit_code else "bold green"
        console.print(Text(self.summary(), style=style))


@dataclass
class ConvertResult:
    source: str
    target: str
    to: str
    written: int
    skipped: list[dict[str, Any]]
    entry_name: Optional[str]
    info_path: Optional[str]
    entry: Optional[dict[str, Any]]
    strict: bool = False

    @property
    def exit_code(self) -> int:
        return 1 if self.skipped else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": not self.skipped,
            "source": self.source,
            "target": self.target,
            "to": self.to,
            "written": self.written,
            "skipped": self.skipped,
            "dataset_info": self.info_path,
            "name": self.entry_name,
            "entry": self.entry,
        }

    def render(self, console) -> None:
        from rich.text import Text

        for s in self.skipped:
            console.print(
                Text(f"skipped record {s['record']} (line {s['line']}): {clean(s['reason'])}", style="yellow")
            )
        console.print(Text(f"wrote {self.written} records to {clean(self.target)} ({self.to})", style="bold green"))
        if self.info_path:
            console.print(Text(f"entry {clean(self.entry_name or '')!r} written to {clean(self.info_path)}"))
        if self.skipped:
            console.print(Text(f"{len(self.skipped)} records could not be converted", style="bold red"))


@dataclass
class StatsResult:
    path: str
    records: int
    turns: dict[str, Any]
    chars: dict[str, Any]
    tokens: Optional[dict[str, Any]]
    cutoff_len: int
    over_cutoff: Optional[int]
    cut_side: dict[str, int]
    histogram: list[dict[str, Any]]
    unit: str

    @property
    def exit_code(self) -> int:
        return 0

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "records": self.records,
            "turns": self.turns,
            "chars": self.chars,
            "tokens": self.tokens,
            "cutoff_len": self.cutoff_len,
            "over_cutoff": self.over_cutoff,
            "cut_side": self.cut_side,
            "histogram": {"unit": self.unit, "bins": self.histogram},
        }

    def render(self, console) -> None:
        from rich.text import Text

        console.print(Text(f"{clean(self.path)}: {self.records} records", style="bold"))
        console.print(
            f"turns per record: min {self.turns['min']}, median {self.turns['median']}, max {self.turns['max']}",
            markup=False,
        )
        for label, block in (("characters", self.chars), ("tokens", self.tokens)):
            if block:
                console.print(
                    f"{label} per record: min {block['min']}, median {block['median']}, "
                    f"p95 {block['p95']}, max {block['max']}",
                    markup=False,
                )
        if self.over_cutoff is not None:
            sides = ", ".join(f"{k} {v}" for k, v in self.cut_side.items() if v)
            console.print(
                Text(
                    f"{self.over_cutoff} records exceed cutoff_len {self.cutoff_len} tokens and would be "
                    f"truncated, not dropped ({sides or 'none'})",
                    style="yellow" if self.over_cutoff else "green",
                )
            )
        else:
            console.print(
                "no --tokenizer: lengths in characters only (pass a tokenizer.json for tokens and cutoff_len)",
                markup=False,
            )
        if self.histogram and console.is_terminal:
            peak = max(b["count"] for b in self.histogram) or 1
            for b in self.histogram:
                bar = "#" * max(1 if b["count"] else 0, round(40 * b["count"] / peak))
                console.print(f"{b['low']:>9}-{b['high']:<9} {b['count']:>9} {bar}", markup=False, highlight=False)
