"""Running a fix plan through the Host seam: in order, ``sudo`` when not root, stop at the
first failed step or at the first finding only a person can fix. Never reboots."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlops_cli.driver.model import ERROR, Finding, FixStep
from mlops_cli.host import Host, command_key

STEP_TIMEOUT = 1800.0  # apt can take a long while on a slow mirror


@dataclass
class PlannedStep:
    finding: str
    step: FixStep


@dataclass
class Plan:
    steps: list[PlannedStep]
    # The finding at which --fix stops because only a person can act (console, hardware).
    stop_at: Finding | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"steps": [{"finding": p.finding, **p.step.to_json()} for p in self.steps]}
        if self.stop_at:
            doc["stops_at"] = {"finding": self.stop_at.id, "manual": self.stop_at.fix.manual}
        return doc


def build_plan(findings: list[Finding]) -> Plan:
    """The steps of every finding that has some, most important first, each command once."""
    steps: list[PlannedStep] = []
    seen: set[tuple[str, ...]] = set()
    for f in findings:
        if f.id == "no_nvidia_gpu":
            return Plan([])  # nothing here for a driver fix to act on
        if f.severity == ERROR and f.fix.needs_person:
            return Plan(steps, f)
        for s in f.fix.steps:
            if s.argv not in seen:
                seen.add(s.argv)
                steps.append(PlannedStep(f.id, s))
    return Plan(steps)


@dataclass
class StepResult:
    finding: str
    argv: list[str]
    rc: int
    output: str
    reboot_after: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "finding": self.finding,
            "argv": self.argv,
            "rc": self.rc,
            "output": self.output,
            "reboot_after": self.reboot_after,
        }


@dataclass
class FixRun:
    plan: Plan
    dry_run: bool = False
    results: list[StepResult] = field(default_factory=list)
    declined: bool = False

    @property
    def failed(self) -> StepResult | None:
        return next((r for r in self.results if r.rc != 0), None)

    @property
    def reboot_needed(self) -> bool:
        return any(r.reboot_after and r.rc == 0 for r in self.results)

    def to_json(self) -> dict[str, Any]:
        doc = {
            "dry_run": self.dry_run,
            "plan": self.plan.to_json(),
            "ran": [r.to_json() for r in self.results],
            "failed_step": self.failed.argv if self.failed else None,
            "reboot_needed": self.reboot_needed,
        }
        if self.declined:
            doc["declined"] = True
        return doc


def _tail(text: str, lines: int = 20) -> str:
    parts = text.strip().splitlines()
    return "\n".join(parts[-lines:])


def run_plan(
    host: Host,
    plan: Plan,
    *,
    is_root: bool,
    assume_yes: bool,
    dry_run: bool,
    ask: Callable[[str, bool], bool],
    progress: Callable[[str], None] = lambda _m: None,
) -> FixRun:
    """Ask (unless --yes; no TTY and no --yes refuses with exit 2 before anything runs), then run."""
    run = FixRun(plan, dry_run=dry_run)
    if dry_run or not plan.steps:
        return run
    if not ask(f"Run these {len(plan.steps)} step(s) on this machine?", assume_yes):
        run.declined = True
        return run
    for p in plan.steps:
        # -n: never wait for a password prompt nobody can answer (stdin is not a terminal here);
        # without passwordless sudo the step fails at once and the report says to run as root.
        argv = list(p.step.argv) if is_root else ["sudo", "-n", *p.step.argv]
        progress(f"running: {command_key(argv)}")
        result = host.run(argv, STEP_TIMEOUT)
        run.results.append(
            StepResult(p.finding, argv, result.rc, _tail(result.stdout + "\n" + result.stderr), p.step.reboot_after)
        )
        if result.rc != 0:
            progress(f"failed (exit {result.rc}); stopping here")
            break
    return run
