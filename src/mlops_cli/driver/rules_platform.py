"""Findings about the machine and platform: no GPU, containers, hardware and passthrough faults.

Pure: decisions over ``Facts`` only.
"""

from __future__ import annotations

import re

from mlops_cli.driver import fixes
from mlops_cli.driver import kernlog as K
from mlops_cli.driver.facts import Facts
from mlops_cli.driver.model import ERROR, INFO, Finding, make_finding


def tegra_evidence(f: Facts) -> list[str]:
    """A Jetson / L4T board: the L4T release file, the device tree, a -tegra kernel, the L4T core package."""
    ev = []
    rel = next((ln.strip() for ln in (f.collected.text("/etc/nv_tegra_release") or "").splitlines() if ln.strip()), "")
    if rel:
        ev.append(f"/etc/nv_tegra_release: {rel[:160]}")
    compat = (f.collected.text("/proc/device-tree/compatible") or "")[:1024].replace("\x00", " ").strip()
    if re.search(r"nvidia,(?:tegra|jetson)", compat):
        ev.append(f"/proc/device-tree/compatible: {compat[:160]}")
    if re.search(r"-tegra$", f.running_kernel or ""):
        ev.append(f"uname -r: {f.running_kernel}")
    row = f.installed("nvidia-l4t-core")
    if row is not None:
        ev.append(row.line)
    return ev


def platform_findings(f: Facts) -> list[Finding]:
    out: list[Finding] = []
    if f.in_container and not f.dev_nvidia and not f.pci_visible and not f.nvidia_on_pci:
        # A container that cannot see the PCI bus: nothing NVIDIA is visible from here at all.
        ev = [
            f"{f.container_marker} exists (running inside a container)",
            "no /dev/nvidia* device nodes",
            "the PCI bus is not visible from this container (no lspci, no /sys/bus/pci/devices)",
            *f.smi.lines[:1],
        ]
        return [
            make_finding(
                "no_nvidia_gpu",
                ERROR,
                "no NVIDIA GPU is visible from this container",
                ev,
                fixes.manual(
                    "nothing to fix in the driver here",
                    "No NVIDIA device is visible. If the host has GPUs, start the container with 'docker run --gpus all ...' "
                    "(Kubernetes: resources.limits nvidia.com/gpu), or run 'mlops driver-check' on the host.",
                ),
            )
        ]
    if f.in_container and not f.dev_nvidia and f.nvidia_on_pci:
        ev = [
            f"{f.container_marker} exists (running inside a container)",
            "no /dev/nvidia* device nodes",
            *f.smi.lines[:1],
        ]
        if f.running_kernel and f"/lib/modules/{f.running_kernel}" not in f.collected.dirs:
            ev.append(f"/lib/modules/{f.running_kernel} does not exist here")
        return [
            make_finding(
                "inside_container_no_gpu_passed",
                ERROR,
                "this check runs inside a container that was started without GPUs",
                ev,
                fixes.manual(
                    "start the container with GPUs, or run the check on the host",
                    "Re-run the container with 'docker run --gpus all ...' (Kubernetes: resources.limits nvidia.com/gpu), "
                    "or run 'mlops driver-check' on the host. Do not install a driver inside the container.",
                ),
            )
        ]
    tegra = tegra_evidence(f)
    if tegra and not f.nvidia_on_pci:
        return [
            make_finding(
                "tegra_integrated_gpu",
                INFO,
                "a Jetson / L4T (Tegra) board: its integrated GPU uses L4T's own driver stack, which this check does not judge",
                tegra + [*f.smi.lines[:1]],
                fixes.manual(
                    "not applicable: use L4T's tools (tegrastats, jtop) and JetPack; install no desktop driver",
                    "The integrated GPU of a Jetson is driven by the L4T BSP (nvgpu), not by the discrete-GPU driver packages "
                    "this check diagnoses; nvidia-smi is absent (JetPack 5) or reduced (JetPack 6), which is normal. Do not apt-install "
                    "nvidia-driver-*/nvidia-utils-* or build DKMS modules here: if such packages were installed, remove them by hand "
                    "and keep the L4T packages (nvidia-l4t-*) at the JetPack release that was flashed.",
                ),
            )
        ]
    if f.pci_visible and not f.nvidia_on_pci:
        lspci = f.collected.command("lspci_nvidia")
        ev = []
        if lspci.ok:
            ev.append("lspci -nnk -d 10de: printed no NVIDIA device")
        if f.collected.listing("/sys/bus/pci/devices") is not None:
            ev.append(
                f"/sys/bus/pci/devices: {len(f.collected.listing('/sys/bus/pci/devices') or [])} devices, none with vendor 0x10de"
            )
        ev += [m.lines[-1] for m in f.klog.find_all(K.NO_GPU_FOUND)][-1:]
        ev += f.smi.lines[:1] if f.smi.kind not in ("not_installed", "ok") else []
        return [
            make_finding(
                "no_nvidia_gpu",
                ERROR,
                "no NVIDIA GPU on the PCI bus of this machine",
                ev,
                fixes.manual(
                    "nothing to fix in the driver: this machine has no NVIDIA GPU",
                    "Do not reinstall drivers. In a VM, check the hypervisor's GPU passthrough; on bare metal, reseat the card "
                    "and check its power and the BIOS. On CPU-only nodes 'apt purge *nvidia*' stops the module probe spam.",
                ),
            )
        ]
    if f.in_container and f.dev_nvidia and f.smi.kind == "nvml_unknown":
        return [
            make_finding(
                "container_lost_gpu_after_daemon_reload",
                ERROR,
                "this container lost its GPU access (systemd reload revoked the device rules)",
                [
                    f"{f.container_marker} exists (running inside a container)",
                    *f.smi.lines[:2],
                    "/dev: " + " ".join(sorted(f.dev_nvidia)),
                ],
                fixes.dev_char_symlinks(inside=True),
            )
        ]

    fallen = f.klog.find_all(K.FALLEN_OFF_BUS) + f.klog.find_all(K.XID_79)
    if fallen:
        ev = [ln for m in fallen[-2:] for ln in m.lines]
        if f.smi.kind in ("device_handle", "timed_out"):
            ev += f.smi.lines[:2]
        out.append(
            make_finding(
                "gpu_fallen_off_bus",
                ERROR,
                "a GPU fell off the bus (Xid 79): hardware, PCIe or power fault",
                ev,
                fixes.manual(
                    "drain the node and power-cycle it; this is not a driver problem",
                    "Drain the node and power-cycle it (a warm reboot may not bring the GPU back). Check PSU, cabling, thermals "
                    "and update the SBIOS; capping clocks ('nvidia-smi -lgc') can help. Reseat the card; RMA it if it repeats. "
                    "Do not reinstall the driver.",
                ),
            )
        )
    init_failed = f.klog.find_all(K.RM_INIT_FAILED)
    explained = (
        f.klog.find(K.REQUIRES_OPEN)
        or f.klog.find(K.GSP_FIRMWARE_MISSING)
        or f.klog.find(K.GSP_NO_IMAGE)
        or f.klog.find(K.NOT_SUPPORTED_BY_OPEN)
        or fallen
        or f.context.vgpu  # a vGPU refused by a bare-metal driver: vgpu_guest_driver says it
    )
    # Precondition: a VM (passthrough). On bare metal the same GSP/GFW lines with "may need to
    # be reset" are a wedged GPU (gpu_needs_reset), not a platform fault.
    in_vm = bool(f.virt or f.context.vm)
    wedged = f.klog.find(K.WPR2) or f.klog.find(K.NEEDS_RESET_TEXT)
    platform_lines = [
        ln for pat in (K.D3COLD, K.GSP_RM_INIT, K.GFW_BOOT) for m in f.klog.find_all(pat) for ln in m.lines
    ]
    if not in_vm:
        platform_lines = [ln for m in f.klog.find_all(K.D3COLD) for ln in m.lines]
    # nvidia-smi finding no device in a VM is a platform fault only with the kernel's own words
    # (RmInitAdapter, D3cold, GSP/GFW boot) or when the kernel log could not be read: a readable log
    # with none of them (a driver release that enumerates nothing on that cloud) names no cause.
    no_device = f.smi.kind in ("no_devices", "device_handle") and not f.klog_seen
    if not explained and not wedged and (platform_lines or (in_vm and (init_failed or no_device))):
        ev = platform_lines + [ln for m in init_failed[-2:] for ln in m.lines]
        if f.virt:
            ev.insert(0, f"virtual machine: {f.virt}")
        ev += f.smi.lines[:1] if f.smi.kind != "ok" else []
        out.append(
            make_finding(
                "vm_passthrough_init_failure",
                ERROR,
                "the GPU is visible but fails to initialise (platform / passthrough)",
                ev,
                fixes.manual(
                    "a platform problem: fix it on the host/BIOS side, not by reinstalling the driver",
                    "Power-cycle or reset the GPU on the host; enable Above-4G decoding / Resizable BAR; for KVM passthrough hide "
                    "the hypervisor from the guest (<kvm><hidden state='on'/></kvm>). Reinstalling the driver does not help.",
                ),
            )
        )
    return out
