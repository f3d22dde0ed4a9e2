"""Facts -> ordered findings. Pure: no program runs and no file is read here.

Each rule raises a finding only on evidence, and quotes that evidence verbatim. The first
``error`` of the ordered list is the root cause (``model.order_findings``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from mlops_cli.driver import fixes, gate
from mlops_cli.driver.context import CONTAINER, OPERATOR, WSL
from mlops_cli.driver.facts import Facts
from mlops_cli.driver.model import ERROR, Diagnosis, Finding, FixPlan, make_finding, order_findings
from mlops_cli.driver.rules_context import container_findings, operator_findings, vgpu_findings, wsl_findings
from mlops_cli.driver.rules_gpu import conflicting_driver_findings, fabric_findings, peermem_findings, reset_findings
from mlops_cli.driver.rules_host import (
    another_driver_would_block,
    fabric_manager_findings,
    host_findings,
    kernel_log_causes,
)
from mlops_cli.driver.rules_module import next_kernel_findings, running_module_findings
from mlops_cli.driver.rules_platform import platform_findings

_NOTHING_TO_JUDGE = (
    "no_nvidia_gpu",
    "tegra_integrated_gpu",
    "inside_container_no_gpu_passed",
    "container_lost_gpu_after_daemon_reload",
)


def diagnose(f: Facts, extra_kernel: str | None = None) -> Diagnosis:
    """Decide the context first; then the rules that apply there; then the safety gate."""
    ctx = f.context
    if ctx.kind == WSL:
        findings = wsl_findings(f, ctx)
    elif ctx.kind == CONTAINER:
        findings = _in_container(f, ctx)
    elif ctx.kind == OPERATOR:
        findings = _on_operator_node(f, ctx)
    else:
        findings = _on_host(f, ctx, extra_kernel)
    findings = gate.apply(order_findings(findings), ctx, f.failed_steps, f.distro, f.os)
    if any(x.id in ("no_nvidia_gpu", "tegra_integrated_gpu") for x in findings):
        status = "no-gpu"
    elif any(x.severity == ERROR for x in findings):
        status = "problem"
    else:
        status = "ok"
    kernel = _kernel_json(f, extra_kernel)
    return Diagnosis(status, kernel, _driver_json(f), _gpus_json(f), findings, list(f.not_seen), ctx.to_json())


def _gpu_findings(f: Facts, ctx) -> list[Finding]:
    """The GPU's own state: wedged, owned by another driver, RDMA, fabric manager."""
    out = reset_findings(f, ctx)
    out += conflicting_driver_findings(f, another_driver_would_block(f))
    out += peermem_findings(f)
    out += fabric_findings(f)
    return out


def _on_host(f: Facts, ctx, extra_kernel: str | None) -> list[Finding]:
    findings = platform_findings(f)
    # Nothing on this machine's driver can be judged past these; hardware faults still allow it.
    if not any(x.id in _NOTHING_TO_JUDGE for x in findings):
        findings += vgpu_findings(f, ctx)
        findings += _gpu_findings(f, ctx)
        findings += host_findings(f, explained=any(x.severity == ERROR for x in findings))
        findings += next_kernel_findings(f, extra_kernel)
    if any(x.id == "vgpu_guest_driver" for x in findings):
        findings = [x for x in findings if x.id != "gpu_unsupported_by_branch"]
    if any(x.id == "operator_driver_conflicts_with_host_driver" for x in findings):
        findings = [_after_owner_is_settled(x) for x in findings]
    judged = not any(x.id == "tegra_integrated_gpu" for x in findings)
    if judged and not any(x.severity == ERROR for x in findings) and f.smi.kind != "ok" and not f.module_loaded:
        findings += _nothing_proves_it_works(f)
    return findings


def _after_owner_is_settled(x: Finding) -> Finding:
    """Two owners of the driver (the operator's container and the host's packages): aligning the
    fabric manager to whichever module happens to be loaded would chase the wrong owner (a DGX OS
    fabric manager downgraded to the operator's driver). Nothing automated until one owner is kept."""
    if not x.id.startswith("fabricmanager_") or not x.fix.steps:
        return x
    return dataclasses.replace(
        x,
        fix=FixPlan(
            "settle which driver owns this node first (see the operator finding); then match the fabric manager to it",
            (),
            "The loaded module may be the operator's, not the host's: matching the fabric manager to it by hand would "
            "downgrade or replace the host's packages. Keep one owner (driver.enabled=false in the ClusterPolicy, or "
            "remove the host's driver), reboot, then the fabric manager of that driver's exact version. Steps that would "
            "have run: " + "; ".join(" ".join(s.argv) for s in x.fix.steps),
        ),
    )


def _in_container(f: Facts, ctx) -> list[Finding]:
    """Only the container's own layer: devices passed, userspace matching the host's module."""
    findings = platform_findings(f)
    if any(x.id in _NOTHING_TO_JUDGE for x in findings):
        return findings
    findings += container_findings(f, ctx)
    findings += reset_findings(f, ctx)
    if not any(x.severity == ERROR for x in findings) and f.smi.kind == "no_driver" and not f.module_loaded:
        findings.append(
            make_finding(
                "container_host_driver_broken",
                ERROR,
                "the host's NVIDIA driver is not loaded: this container's GPU devices have no driver behind them",
                list(ctx.evidence)
                + list(f.smi.lines[:1])
                + ["/proc/driver/nvidia/version: not present (no module loaded on the host)"],
                fixes.manual(
                    "fix the driver on the host, then restart this container",
                    "The kernel module belongs to the host: run 'sudo mlops driver-check' there and fix what it finds, then "
                    "recreate this container. Never install a driver, headers or DKMS inside the container.",
                ),
            )
        )
    if not any(x.severity == ERROR for x in findings) and f.smi.kind not in ("ok",):
        findings.append(
            make_finding(
                "driver_failure_unexplained",
                ERROR,
                "nvidia-smi fails inside this container and nothing seen here names the cause",
                list(ctx.evidence) + list(f.smi.lines[:2]),
                fixes.manual(
                    "run the check on the host; nothing can be fixed from inside the container",
                    "Run 'sudo mlops driver-check' on the host (its driver and kernel log are not visible from here) and compare "
                    "the host's driver version with this container's libraries.",
                ),
            )
        )
    return findings


def _on_operator_node(f: Facts, ctx) -> list[Finding]:
    """The driver lives in the operator's driver container: host package rules do not apply."""
    findings = [x for x in platform_findings(f) if x.id not in ("no_nvidia_gpu",) or not f.nvidia_on_pci]
    findings += vgpu_findings(f, ctx)
    findings += _gpu_findings(f, ctx)
    findings += fabric_manager_findings(f)
    findings += kernel_log_causes(f, driver_installed=True)
    if f.running_kernel and f.running_kernel in f.modules and not f.module_loaded:
        findings += running_module_findings(f)
    if any(x.id == "vgpu_guest_driver" for x in findings):
        findings = [x for x in findings if x.id != "gpu_unsupported_by_branch"]
    findings += operator_findings(f, ctx, explained=any(x.severity == ERROR for x in findings))
    return findings


def _nothing_proves_it_works(f: Facts) -> list[Finding]:
    """No error found, but nothing showed a working driver either (nvidia-smi absent, no module
    loaded): "OK" would be a verdict without evidence. Seen with partial or hand-written
    snapshots, and hosts whose PCI bus cannot be read."""
    missing = [f"nvidia-smi: {f.smi.lines[0] if f.smi.lines else 'not installed'}", "no nvidia module is loaded"]
    if not f.nvidia_on_pci:
        return [
            make_finding(
                "no_nvidia_gpu",
                ERROR,
                "no NVIDIA GPU and no working NVIDIA driver are visible here",
                missing
                + ["no NVIDIA device seen (no lspci output, /sys/bus/pci/devices not readable or not recorded)"],
                fixes.manual(
                    "nothing to check here",
                    "Run 'sudo mlops driver-check' on the GPU host itself; for a snapshot, include lspci -nnk -d 10de: "
                    "or the /sys/bus/pci/devices listing.",
                ),
            )
        ]
    return [
        make_finding(
            "driver_failure_unexplained",
            ERROR,
            "no working NVIDIA driver is seen (nvidia-smi missing, no module loaded) and nothing here names the cause",
            missing,
            fixes.manual(
                "look at the kernel's own error",
                "Run 'sudo modprobe nvidia' and 'sudo dmesg | grep -i nvrm', and attach "
                "'sudo mlops driver-check --save-snapshot FILE' to a ticket.",
            ),
        )
    ]


def _kernel_json(f: Facts, extra: str | None) -> dict[str, Any]:
    doc: dict[str, Any] = {"running": f.running_kernel, "next_boot": f.next_kernel}
    if f.next_kernel_reason:
        doc["next_boot_reason"] = f.next_kernel_reason
    doc["installed"] = f.installed_kernels
    if extra:
        doc["judged"] = extra
        st = f.modules.get(extra)
        # True/False: an nvidia module for it is / is not on disk; None: could not tell.
        doc["judged_has_module"] = st.present if st else None
    return doc


def _driver_json(f: Facts) -> dict[str, Any]:
    return {
        "userspace": f.userspace_version,
        "module_loaded": f.loaded_version,
        "module_on_disk": f.disk_version,
        "module_flavor": ("open" if f.proc_version.open else "proprietary")
        if f.proc_version
        else (
            "open"
            if "MIT" in f.modinfo.get("license", "")
            else ("proprietary" if f.modinfo.get("license") == "NVIDIA" else None)
        ),
        "install_method": f.install_method,
        "secure_boot": f.secure_boot,
    }


def _gpus_json(f: Facts) -> list[dict[str, Any]]:
    if f.smi_gpus:
        by_pci = {d.slot: d for d in f.pci_gpus}
        return [
            {
                "pci": g.pci,
                "name": g.name,
                "kernel_driver": by_pci[g.pci].driver_in_use if g.pci in by_pci else "nvidia",
            }
            for g in f.smi_gpus
        ]
    if f.pci_gpus:
        return [{"pci": d.slot, "name": d.name, "kernel_driver": d.driver_in_use} for d in f.pci_gpus]
    return [
        {"pci": addr, "name": f"NVIDIA device 10de:{dev.lower().replace('0x', '')}", "kernel_driver": None}
        for addr, dev, _ in f.sysfs_nvidia
    ]
