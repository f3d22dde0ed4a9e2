"""Plain data of a diagnosis: findings and their fix plans. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ERROR = "error"
WARNING = "warning"
INFO = "info"
SEVERITY_RANK = {ERROR: 0, WARNING: 1, INFO: 2}


@dataclass(frozen=True)
class FixStep:
    """One command of a fix. ``argv`` never includes ``sudo``; the runner adds it when needed."""

    argv: tuple[str, ...]
    why: str
    reboot_after: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"argv": list(self.argv), "why": self.why, "reboot_after": self.reboot_after}


@dataclass(frozen=True)
class FixPlan:
    summary: str
    steps: tuple[FixStep, ...] = ()
    # What a person must do where no command can (console, hardware). When set and there
    # are no steps, `--fix` stops at this finding.
    manual: str | None = None

    @property
    def needs_person(self) -> bool:
        return bool(self.manual) and not self.steps

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"summary": self.summary, "steps": [s.to_json() for s in self.steps]}
        if self.manual:
            doc["manual"] = self.manual
        return doc


@dataclass
class Finding:
    id: str
    severity: str
    title: str
    evidence: list[str]
    fix: FixPlan
    # "running" or "next" (the kernel the finding is about), for ordering; None: not kernel bound.
    scope: str | None = None
    kernel: str | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "id": self.id,
            "severity": self.severity,
            "title": self.title,
            "evidence": list(self.evidence),
            "fix": self.fix.to_json(),
        }
        if self.kernel:
            doc["kernel"] = self.kernel
        return doc


def make_finding(
    id: str,
    severity: str,
    title: str,
    evidence: list[str],
    fix: FixPlan,
    scope: str | None = None,
    kernel: str | None = None,
) -> Finding:
    seen: list[str] = []
    for line in evidence:
        if line and line not in seen:
            seen.append(line)
    return Finding(id, severity, title, seen, fix, scope, kernel)


# The order of importance among findings of the same severity and scope: root causes
# (nothing else can help until they are fixed) first, consequences last.
PRIORITY = [
    "no_nvidia_gpu",
    "tegra_integrated_gpu",
    "wsl_gpu_unavailable",
    "inside_container_no_gpu_passed",
    "container_driver_mismatch",
    "gpu_fallen_off_bus",
    "gpu_needs_reset",
    "vm_passthrough_init_failure",
    "vgpu_guest_driver",
    "container_lost_gpu_after_daemon_reload",
    "driver_not_installed",
    "driver_packages_removed",
    "multiple_driver_branches",
    "runfile_module_missing_after_kernel_upgrade",
    "kernel_modules_extra_missing",
    "kernel_headers_missing",
    "build_dependency_missing",
    "dkms_build_fail_gcc_mismatch",
    "dkms_build_fail_kernel_too_new",
    "kernel_preempt_rt_unsupported",
    "dkms_build_failed",
    "dkms_module_not_built_for_running_kernel",
    "prebuilt_module_missing_for_kernel",
    "secure_boot_module_rejected",
    "nouveau_bound",
    "conflicting_driver_bound",
    "wrong_kernel_module_flavor",
    "gpu_unsupported_by_branch",
    "gsp_firmware_missing",
    "version_mismatch_stale_module",
    "version_mismatch_pending_reboot",
    "module_not_loaded",
    "driver_managed_by_operator",
    "operator_driver_conflicts_with_host_driver",
    "driver_failure_unexplained",
    "fabricmanager_version_mismatch",
    "fabricmanager_not_running",
    "peermem_load_failed",
    "container_host_driver_broken",
    "container_toolkit_missing",
    "next_boot_kernel_missing_module",
    "reboot_required",
]


def order_findings(findings: list[Finding]) -> list[Finding]:
    """Most important first: severity, then the running kernel before the next one, then PRIORITY."""

    def key(f: Finding) -> tuple[int, int, int]:
        scope = 1 if f.scope == "next" else 0
        prio = PRIORITY.index(f.id) if f.id in PRIORITY else len(PRIORITY)
        return (SEVERITY_RANK.get(f.severity, 3), scope, prio)

    return sorted(findings, key=key)


@dataclass
class NotSeen:
    """A probe that could not run or a file that could not be read, and why."""

    probe: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"probe": self.probe, "reason": self.reason}


@dataclass
class Diagnosis:
    status: str  # ok | problem | no-gpu
    kernel: dict[str, Any]
    driver: dict[str, Any]
    gpus: list[dict[str, Any]]
    findings: list[Finding]
    not_seen: list[NotSeen] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == ERROR]


# The ids of specs/driver-check.md's table: stable, matched on by scripts; never renamed.
SPEC_IDS = [
    "no_nvidia_gpu",
    "runfile_module_missing_after_kernel_upgrade",
    "dkms_module_not_built_for_running_kernel",
    "kernel_headers_missing",
    "dkms_build_fail_kernel_too_new",
    "dkms_build_fail_gcc_mismatch",
    "secure_boot_module_rejected",
    "version_mismatch_pending_reboot",
    "version_mismatch_stale_module",
    "nouveau_bound",
    "driver_packages_removed",
    "multiple_driver_branches",
    "wrong_kernel_module_flavor",
    "gpu_unsupported_by_branch",
    "gsp_firmware_missing",
    "fabricmanager_version_mismatch",
    "container_toolkit_missing",
    "container_host_driver_broken",
    "container_lost_gpu_after_daemon_reload",
    "inside_container_no_gpu_passed",
    "vm_passthrough_init_failure",
    "gpu_fallen_off_bus",
    "next_boot_kernel_missing_module",
    "reboot_required",
]
