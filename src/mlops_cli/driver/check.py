"""One check end to end: collect through a host, read the facts, diagnose; and --fix."""

from __future__ import annotations

from collections.abc import Callable

from mlops_cli.driver.apply import FixRun, build_plan, run_plan
from mlops_cli.driver.assemble import read_facts
from mlops_cli.driver.diagnose import diagnose
from mlops_cli.driver.model import Diagnosis
from mlops_cli.driver.probe import collect
from mlops_cli.driver.report import DriverReport
from mlops_cli.errors import UsageError
from mlops_cli.host import Host


def check(host: Host, kernel: str | None = None) -> Diagnosis:
    facts = read_facts(collect(host))
    if kernel and facts.installed_kernels and kernel not in facts.installed_kernels:
        raise UsageError(
            f"kernel {kernel} is not installed here", hint="installed: " + ", ".join(facts.installed_kernels)
        )
    return diagnose(facts, kernel)


def check_and_fix(
    host: Host,
    *,
    kernel: str | None,
    source: str,
    is_root: bool,
    assume_yes: bool,
    dry_run: bool,
    ask: Callable[[str, bool], bool],
    show_plan: Callable[[DriverReport], None],
    progress: Callable[[str], None],
    on_diagnosed: Callable[[], None] | None = None,
) -> DriverReport:
    """Diagnose, show the plan, ask, run it, diagnose again.

    ``on_diagnosed`` runs after the first diagnosis and before any step: --save-snapshot
    writes the state that was diagnosed there (the broken one a ticket needs), not the
    state after the fix, and the file exists even if a step then fails.
    """
    before = check(host, kernel)
    if on_diagnosed is not None:
        on_diagnosed()
    plan = build_plan(before.findings)
    if dry_run or not plan.steps:
        return DriverReport(before, source, fix=FixRun(plan, dry_run=dry_run))
    show_plan(DriverReport(before, source, fix=FixRun(plan, dry_run=True)))
    run = run_plan(host, plan, is_root=is_root, assume_yes=assume_yes, dry_run=False, ask=ask, progress=progress)
    if not run.results:
        return DriverReport(before, source, fix=run)
    after = check(host, kernel)
    return DriverReport(after, source, fix=run, before=before)
