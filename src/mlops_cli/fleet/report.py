"""The result of `mlops report`: the fleet summary, for people and for scripts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from mlops_cli.fleet.hostlist import compress
from mlops_cli.fleet.summary import FleetSummary, Group
from mlops_cli.text import one_line, shell_join, shorten

MAX_HOSTLIST = 400  # characters of a host list shown in text; --json has every name
_OUTLOOK = {  # (works now, loses the GPU at the next boot) -> what the group's head line adds
    (True, True): ", works now but the next boot loses the GPU",
    (True, False): "",
    (False, True): ", a reboot does not fix it",
    (False, False): ", a reboot fixes it",
}


@dataclass
class FleetReport:
    summary: FleetSummary
    inputs: list[str]

    @property
    def exit_code(self) -> int:
        return int(self.summary.exit_code)

    def to_json(self) -> dict[str, Any]:
        s = self.summary
        return {
            "nodes_total": len(s.nodes),
            "documents": s.documents,
            "by_status": s.by_status(),
            "by_finding": s.by_finding(),
            "gpus_per_node": {str(k): v for k, v in s.gpu_counts().items()},
            "broken": s.broken,
            "no_gpu_after_reboot": s.loses_gpu(),
            "groups": [g.to_json() for g in s.groups],
            "nodes": [n.to_json() for n in s.nodes.values()],
            "unusable": [{"input": u.origin, "reason": u.reason} for u in s.unusable],
            "inputs": self.inputs,
        }

    def render(self, console: Console) -> None:
        s = self.summary
        counts = s.by_status()
        broken, loses = s.broken, s.loses_gpu()
        head = f"{len(s.nodes)} node(s): " + ", ".join(f"{n} {status}" for status, n in counts.items() if n)
        verdict, style = ("PROBLEM", "bold red") if broken else ("OK", "bold green")
        if not broken and s.unusable:
            verdict, style = "INCOMPLETE", "bold yellow"
        line = Text(f"{verdict}: {head}", style=style)
        if loses:
            line.append(f"; {len(loses)} will not have a working GPU after a reboot")
        console.print(line)
        findings = s.by_finding()
        if findings:
            table = Table(title="Findings (nodes reporting each)", title_justify="left")
            table.add_column("finding")
            table.add_column("severity")
            table.add_column("nodes", justify="right")
            for fid, entry in findings.items():
                table.add_row(one_line(fid), one_line(entry["severity"]), str(entry["nodes"]))
            console.print(table)
        gpus = s.gpu_counts()
        if len(gpus) > 1:
            console.print(
                Text(
                    "GPUs per node: "
                    + ", ".join(f"{k} on {v} node(s)" for k, v in gpus.items())
                    + " (a node with fewer than its peers may have lost one)",
                    style="yellow",
                )
            )
        for i, g in enumerate(s.groups, 1):
            console.print()
            render_group(console, i, g)
        if any(g.kind == "driver-check" and g.steps for g in s.groups):
            console.print()
            console.print(
                Text(
                    "Each driver-check plan is what 'sudo mlops driver-check --fix' runs on its node "
                    "(--fix --dry-run shows it there first).",
                    style="dim",
                ),
                soft_wrap=True,
            )
        if s.unusable:
            console.print()
            console.print(
                Text(f"Not used ({len(s.unusable)} input(s); nodes in them are missing above):", style="yellow")
            )
            for u in s.unusable[:50]:
                console.print(Text(f"  - {one_line(u.origin)}: {one_line(u.reason)}"), soft_wrap=True)
            if len(s.unusable) > 50:
                console.print(Text(f"  ... and {len(s.unusable) - 50} more (--json lists them all)"))


def render_group(console: Console, i: int, g: Group) -> None:
    style = {"problem": "bold red", "failed": "bold red", "no-gpu": "bold yellow"}.get(g.status, "bold")
    kind = "check" if g.kind == "error" else g.kind
    head = Text(f"{i}. {len(g.nodes)} node(s), {kind} {g.status}", style=style)
    if g.kind == "driver-check" and g.loses_gpu_at_next_boot is not None:
        head.append(
            _OUTLOOK[(bool(g.works_now), g.loses_gpu_at_next_boot)],
            style="bold red" if g.loses_gpu_at_next_boot else "",
        )
    head.append(f": {one_line(g.title)}", style="")
    console.print(head, soft_wrap=True)
    console.print(Text(f"   nodes: {shorten(compress(g.nodes), MAX_HOSTLIST)}"), soft_wrap=True)
    if g.findings:
        console.print(
            Text("   findings: " + ", ".join(f"{f['id']} ({f['severity']})" for f in g.findings)), soft_wrap=True
        )
    if g.steps and g.kind == "driver-check":
        console.print(Text("   fix, on each of these nodes:"))
        for step in g.steps:
            line = Text(f"     $ sudo {shell_join(step['argv'])}", style="bold")
            note = one_line(step["why"]) + ("  [reboot needed after this]" if step["reboot_after"] else "")
            if note:
                line.append(f"   # {note}", style="dim")
            console.print(line, soft_wrap=True)
    elif g.steps:
        console.print(Text("   remedies, in this order:"))
        for step in g.steps:
            console.print(Text(f"     - {one_line(step['change'])}   ({one_line(step['cost'])})"), soft_wrap=True)
    for note in g.manual:
        console.print(Text(f"   by hand: {one_line(note)}"), soft_wrap=True)
