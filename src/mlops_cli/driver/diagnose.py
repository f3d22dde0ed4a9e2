"""Facts -> ordered findings. Pure: no program runs and no file is read here.

Each rule raises a finding only on evidence, and quotes that evidence verbatim. The first
``error`` of the ordered list is the root cause (``model.order_findings``).
"""

from __future__ import annotations

from typing import Any

from mlops_cli.driver import fixes
from mlops_cli.driver.facts import Facts
from mlops_cli.driver.model import ERROR, Diagnosis, Finding, make_finding, order_findings
from mlops_cli.driver.rules_host import host_findings
from mlops_cli.driver.rules_module import next_kernel_findings
from mlops_cli.driver.rules_platform import platform_findings


_NOTHING_TO_JUDGE = ("no_nvidia_gpu", "inside_container_no_gpu_passed", "container_lost_gpu_after_daemon_reload")


def diagnose(f: Facts, extra_kernel: str | None = None) -> Diagnosis:
    findings = platform_findings(f)
    # Nothing on this machine's driver can be judged past these; hardware faults still allow it.
    if not any(x.id in _NOTHING_TO_JUDGE for x in findings):
        findings += host_findings(f, explained=bool(findings))
        findings += next_kernel_findings(f, extra_kernel)
    if not any(x.severity == ERROR for x in findings) and f.smi.kind != "ok" and not f.module_loaded:
        findings += _nothing_proves_it_works(f)
    findings = order_findings(findings)
    if any(x.id == "no_nvidia_gpu" for x in findings):
        status = "no-gpu"
    elif any(x.severity == ERROR for x in findings):
        status = "problem"
    else:
        status = "ok"
    return Diagnosis(status, _kernel_json(f, extra_kernel), _driver_json(f), _gpus_json(f), findings, list(f.not_seen))


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
                missing + ["no NVIDIA device seen (no lspci output, /sys/bus/pci/devices not readable or not recorded)"],
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
