"""Facts -> ordered findings. Pure: no program runs and no file is read here.

Each rule raises a finding only on evidence, and quotes that evidence verbatim. The first
``error`` of the ordered list is the root cause (``model.order_findings``).
"""

from __future__ import annotations

from typing import Any

from mlops_cli.driver.facts import Facts
from mlops_cli.driver.model import ERROR, Diagnosis, order_findings
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
    findings = order_findings(findings)
    if any(x.id == "no_nvidia_gpu" for x in findings):
        status = "no-gpu"
    elif any(x.severity == ERROR for x in findings):
        status = "problem"
    else:
        status = "ok"
    return Diagnosis(status, _kernel_json(f, extra_kernel), _driver_json(f), _gpus_json(f), findings, list(f.not_seen))


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
