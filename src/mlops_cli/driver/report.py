"""The one result object of `mlops driver-check`: renders for people and for scripts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.text import Text

from mlops_cli.driver.apply import FixRun, Plan
from mlops_cli.driver.model import ERROR, WARNING, Diagnosis, Finding
from mlops_cli.errors import ExitCode
from mlops_cli.text import one_line, shell_join, shell_quote

_STYLE = {ERROR: "bold red", WARNING: "yellow", "info": "cyan"}


@dataclass
class DriverReport:
    diagnosis: Diagnosis
    source: str  # "live" or the snapshot path
    fix: FixRun | None = None
    before: Diagnosis | None = None  # the diagnosis the fix started from

    @property
    def exit_code(self) -> int:
        if self.fix and not self.fix.dry_run and self.fix.results:
            if self.fix.failed:
                return ExitCode.PROBLEM
            if self.fix.reboot_needed:
                return ExitCode.REBOOT_NEEDED
        status = self.diagnosis.status
        if status == "no-gpu":
            return ExitCode.NOT_APPLICABLE
        return ExitCode.PROBLEM if status == "problem" else ExitCode.OK

    def to_json(self) -> dict[str, Any]:
        d = self.diagnosis
        doc: dict[str, Any] = {
            "status": d.status,
            "kernel": d.kernel,
            "driver": d.driver,
            "gpus": d.gpus,
            "findings": [f.to_json() for f in d.findings],
            "not_seen": [n.to_json() for n in d.not_seen],
            "context": d.context,
            "source": self.source,
        }
        if self.fix:
            doc["fix_run"] = self.fix.to_json()
            if self.before:
                doc["before_fix"] = {"status": self.before.status, "findings": [f.id for f in self.before.findings]}
        return doc

    # -- text ----------------------------------------------------------------------------

    def render(self, console: Console) -> None:
        if self.fix:
            render_fix(console, self.fix)
            if self.fix.results:
                console.print(Text("\nAfter the fix:", style="bold"))
        d = self.diagnosis
        console.print(verdict(d))
        k, drv = d.kernel, d.driver
        facts = f"kernel {k.get('running') or '?'}"
        if k.get("next_boot") and k.get("next_boot") != k.get("running"):
            facts += f" (next boot: {k['next_boot']})"
        if drv.get("userspace") or drv.get("module_loaded"):
            facts += (
                f"; driver userspace {drv.get('userspace') or '-'}, module loaded {drv.get('module_loaded') or '-'}"
            )
        facts += f"; install method {drv.get('install_method')}"
        ctx = d.context or {}
        if ctx.get("kind") and ctx["kind"] != "bare-metal":
            facts += f"; context {ctx['kind']}" + (f" ({ctx['container']})" if ctx.get("container") else "")
            if ctx.get("gated"):
                facts += ": --fix changes nothing here"
        if d.gpus:
            facts += f"; {len(d.gpus)} GPU(s): " + ", ".join(f"{g['pci']} {g['name']}" for g in d.gpus[:4])
        console.print(Text(one_line(facts), style="dim"))
        judged = k.get("judged")
        if judged and judged != k.get("running"):  # answer the question --kernel asked, also when all is well
            has = {True: "an nvidia module is installed for it", False: "no nvidia module for it (see below)"}
            console.print(
                Text(
                    f"--kernel {one_line(judged)}: "
                    + has.get(k.get("judged_has_module"), "could not tell whether it has an nvidia module")
                )
            )
        if self.source != "live":
            console.print(Text(f"(diagnosed from snapshot {one_line(self.source)})", style="dim"))
        for i, f in enumerate(d.findings, 1):
            console.print()
            render_finding(console, i, f)
        if d.not_seen:
            console.print()
            console.print(Text("Could not see (the diagnosis may miss causes there):", style="yellow"))
            for n in d.not_seen:
                console.print(Text(one_line(f"  - {n.probe}: {n.reason}")))
        if d.findings and not self.fix and any(f.fix.steps for f in d.findings):
            console.print()
            if self.source == "live":
                hint = "To run the fix: mlops driver-check --fix   (plan only: --fix --dry-run)"
            else:  # --fix is refused on a snapshot: it would run the commands on this machine
                hint = (
                    "To run the fix, on the machine the snapshot came from: sudo mlops driver-check --fix   "
                    f"(plan only, here: mlops driver-check --snapshot {shell_quote(self.source)} --fix --dry-run)"
                )
            console.print(Text(hint, style="dim"), soft_wrap=True)


def verdict(d: Diagnosis) -> Text:
    if d.status == "no-gpu":
        tegra = next((x for x in d.findings if x.id == "tegra_integrated_gpu"), None)
        if tegra:
            return Text(
                "NOT APPLICABLE: a Jetson / L4T integrated GPU (its own driver stack; nothing to check here)",
                style="bold yellow",
            )
        f = next((x for x in d.findings if x.id == "no_nvidia_gpu"), None)
        if f and f.title != "no NVIDIA GPU on the PCI bus of this machine":  # a container, or nothing visible
            return Text(f"NO GPU: {one_line(f.title)} (nothing to check)", style="bold yellow")
        return Text("NO GPU: no NVIDIA GPU on this machine's PCI bus (nothing to check)", style="bold yellow")
    if d.status == "ok":
        warn = [f for f in d.findings if f.severity == WARNING]
        tail = f", {len(warn)} warning(s)" if warn else ""
        version = d.driver.get("module_loaded") or d.driver.get("userspace")
        what = f"the NVIDIA driver {version}" if version else "the NVIDIA driver"
        on = f" on kernel {d.kernel['running']}" if d.kernel.get("running") else ""
        return Text(f"OK: {what} works{on}{tail}", style="bold green")
    errors = [f for f in d.findings if f.severity == ERROR]
    more = f" (+{len(errors) - 1} more problem(s); this first one is the root cause)" if len(errors) > 1 else ""
    return Text(f"PROBLEM: {one_line(errors[0].title)}{more}", style="bold red")


def shell_line(argv: list[str] | tuple[str, ...], sudo: bool = True) -> str:
    """A step as a line to paste: quoted from its argv, so a newline or escape in a value from
    the machine (a kernel release, a package version) cannot make it two commands."""
    return ("sudo " if sudo else "") + shell_join(list(argv))


def render_finding(console: Console, i: int, f: Finding) -> None:
    head = Text(f"{i}. ")
    head.append(f"[{f.severity}] ", style=_STYLE.get(f.severity, ""))
    head.append(f"{f.id}", style="bold")
    head.append(f": {one_line(f.title)}")
    console.print(head)
    if f.evidence:
        console.print(Text("   evidence:", style="dim"))
        for line in f.evidence:
            console.print(Text(f"     | {one_line(line)}"), soft_wrap=True)
    console.print(Text(f"   fix: {one_line(f.fix.summary)}"))
    for s in f.fix.steps:
        line = Text(f"     $ {shell_line(s.argv)}", style="bold")
        line.append(f"   # {one_line(s.why)}" + ("  [reboot needed after this]" if s.reboot_after else ""), style="dim")
        console.print(line, soft_wrap=True)
    if f.fix.manual:
        console.print(Text(f"   by hand: {one_line(f.fix.manual)}"), soft_wrap=True)


def render_plan(console: Console, plan: Plan) -> None:
    if not plan.steps and not plan.stop_at:
        console.print(Text("Nothing to run: no finding has a command that fixes it."))
        return
    if plan.steps:
        console.print(Text("Fix plan:", style="bold"))
    for n, p in enumerate(plan.steps, 1):
        line = Text(f"  {n}. {shell_line(p.step.argv)}", style="bold")
        line.append(
            f"   # {p.finding}: {one_line(p.step.why)}"
            + ("  [reboot needed after this]" if p.step.reboot_after else ""),
            style="dim",
        )
        console.print(line, soft_wrap=True)
    if plan.stop_at:
        console.print(
            Text(
                f"Then STOP: {plan.stop_at.id} needs a person: {one_line(plan.stop_at.fix.manual or '')}",
                style="yellow",
            ),
            soft_wrap=True,
        )


def render_fix(console: Console, run: FixRun) -> None:
    if not run.results:  # after a run, its own lines say what happened
        render_plan(console, run.plan)
    if run.dry_run:
        console.print(Text("(dry run: nothing was run)", style="dim"))
        return
    if run.declined:
        console.print(Text("Not confirmed: nothing was run."))
        return
    for r in run.results:
        mark = "ok" if r.rc == 0 else f"FAILED (exit {r.rc})"
        console.print(Text(f"  ran: {shell_join(list(r.argv))} -> {mark}"), soft_wrap=True)
        if r.rc != 0 and r.output:
            for line in r.output.splitlines()[-10:]:
                console.print(Text(f"     | {line}"), soft_wrap=True)
    if run.failed:
        console.print(Text("Stopped at the first failed step.", style="bold red"))
        if "password is required" in run.failed.output:
            console.print(Text("hint: run it as root: sudo mlops driver-check --fix", style="yellow"))
    elif run.reboot_needed:
        console.print(
            Text(
                "A reboot is needed to finish the fix (mlops never reboots by itself): sudo reboot", style="bold yellow"
            )
        )
