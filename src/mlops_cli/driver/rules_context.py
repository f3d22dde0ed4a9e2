"""Findings that depend on where the check runs: WSL, containers/LXC, GPU Operator nodes and
vGPU guests. Every plan here is manual: the fix belongs to another layer (Windows, the host,
the ClusterPolicy, the vGPU host), and ``gate.py`` removes any automated step anyway.

Pure: decisions over ``Facts`` and the ``Context`` only.
"""

from __future__ import annotations

import re

from mlops_cli.driver import fixes
from mlops_cli.driver import kernlog as K
from mlops_cli.driver.context import CONTAINER, OPERATOR, VGPU_GUEST, WSL, Context
from mlops_cli.driver.facts import Facts
from mlops_cli.driver.gpu_arch import arch_of, branch_knows
from mlops_cli.driver.model import ERROR, INFO, Finding, make_finding
from mlops_cli.driver.parse import same_driver_version, upstream_version
from mlops_cli.driver.probe import LIB_DIRS

_LIB_VERSION = re.compile(r"^lib(?:nvidia-ml|cuda)\.so\.(\d+\.\d+(?:\.\d+)?)$")
_USERSPACE_PKG = re.compile(
    r"^(nvidia-utils-\d+|libnvidia-compute-\d+|libnvidia-gl-\d+|nvidia-smi|libnvidia-ml1|libcuda1|nvidia-375|nvidia-\d{3})$"
)


def library_versions(f: Facts) -> dict[str, list[str]]:
    """Driver library versions visible here (``libnvidia-ml.so.565.57.01``) -> the files naming them."""
    found: dict[str, list[str]] = {}
    for folder in LIB_DIRS:
        for name in f.collected.listing(folder) or []:
            m = _LIB_VERSION.match(name)
            if m:
                found.setdefault(m.group(1), []).append(f"{folder}/{name}")
    return found


def host_module_version(f: Facts) -> tuple[str | None, list[str]]:
    """The loaded module's version and the lines that say so (in a container: the host's)."""
    if f.proc_version:
        return f.proc_version.version, [f.proc_version.line]
    if f.sys_module_version:
        return f.sys_module_version, [f"/sys/module/nvidia/version: {f.sys_module_version}"]
    api = f.klog.find(K.API_MISMATCH)
    if api:
        return api.groups[1], api.lines
    return None, []


def userspace_here(f: Facts) -> tuple[str | None, list[str]]:
    """This system's own userspace driver version (packages, NVML's message, library files)."""
    for p in f.packages:
        if p.installed and _USERSPACE_PKG.match(p.name):
            return upstream_version(p.version), [p.line]
    api = f.klog.find(K.API_MISMATCH)
    if api:
        return api.groups[0], api.lines
    if f.smi.nvml_version:
        return f.smi.nvml_version, [ln for ln in f.smi.lines if "NVML library version" in ln][:1]
    return None, []


# --- WSL ---------------------------------------------------------------------------------------


def wsl_findings(f: Facts, ctx: Context) -> list[Finding]:
    if ctx.kind != WSL and not ctx.wsl:
        return []
    if f.smi.kind == "ok":
        return []
    dxg = "dxg" in (f.collected.listing("/dev") or [])
    if ctx.container and not dxg and f.collected.listing("/usr/lib/wsl/lib") is None:
        # A container in WSL started without the GPU: WSL itself may be fine.
        return [
            make_finding(
                "inside_container_no_gpu_passed",
                ERROR,
                "this container (in WSL) was started without the GPU: no /dev/dxg and no /usr/lib/wsl/lib inside",
                list(ctx.evidence) + list(f.smi.lines[:1]),
                fixes.manual(
                    "start the container with the GPU",
                    "Re-run it with 'docker run --gpus all ...' (Docker Desktop: WSL 2 backend; Docker Engine in WSL: the "
                    "NVIDIA Container Toolkit); check 'nvidia-smi' in WSL itself first. Never install a driver in the container.",
                ),
            )
        ]
    # /dev/dxg and /usr/lib/wsl/lib without a WSL kernel: a Hyper-V VM with GPU partitioning
    # (dxgkrnl built for its own kernel, the host driver's files copied in by hand).
    gpu_pv = not any(e.startswith(("uname", "/proc/version", "systemd-detect-virt")) for e in ctx.evidence)
    ev = list(ctx.evidence) + list(f.smi.lines[:2])
    if "dxg" not in (f.collected.listing("/dev") or []):
        ev.append(
            "no /dev/dxg: the running kernel has no dxgkrnl, or Windows does not offer the GPU here"
            if gpu_pv
            else "no /dev/dxg: Windows does not offer the GPU to this WSL instance"
        )
    if f.collected.listing("/usr/lib/wsl/lib") is None:
        ev.append("no /usr/lib/wsl/lib: the Windows driver's libraries are not mounted")
    linux_driver = [
        p
        for p in f.packages
        if p.installed and re.match(r"^(nvidia-(utils|driver|dkms)-\d+|libnvidia-compute-\d+|cuda-drivers)", p.name)
    ]
    ev += [f"{p.line}  (a Linux driver package inside WSL)" for p in linux_driver][:3]
    remove = " ".join(sorted({p.name for p in linux_driver}))
    manual = (
        "The GPU in WSL comes from the Windows driver; the fix is on Windows: install or update the NVIDIA Windows driver "
        "(WDDM mode; on Windows Server a datacenter GPU in TCC mode is not offered to WSL: switch it with 'nvidia-smi -dm 0' in "
        "an elevated Windows prompt and reboot Windows), run 'wsl --update' and 'wsl --shutdown', and boot the stock WSL kernel "
        "(a self-built one needs the dxgkrnl driver). Never install a Linux NVIDIA driver inside WSL."
    )
    if gpu_pv:
        manual = (
            "This VM gets the GPU through Windows GPU paravirtualisation (Hyper-V GPU-P: /dev/dxg, the host driver's user "
            "space in /usr/lib/wsl/lib): the fix is on the Windows host. Copy the host driver's complete file set again "
            "(C:\\Windows\\System32\\DriverStore\\FileRepository\\nv*dispi.inf_amd64_* and the WSL libraries such as "
            "libd3d12core.so from C:\\Program Files\\WSL\\lib), check the VM's GPU partition (Get-VMGpuPartitionAdapter) "
            "and that the dxgkrnl module matches this kernel. Never install a Linux NVIDIA driver in this VM."
        )
        if "dxg" not in (f.collected.listing("/dev") or []):
            manual = (
                "There is no /dev/dxg: the running kernel has no dxgkrnl module. Boot the kernel that carries it (the "
                "dxgkrnl kernel package, or build dxgkrnl for this kernel with DKMS), then check again. " + manual
            )
    if remove:
        manual += (
            f" Remove the Linux driver packages installed here, they shadow /usr/lib/wsl/lib: apt-get purge {remove}."
        )
    title = (
        "this VM's GPU paravirtualisation (Hyper-V GPU-P, /dev/dxg) gives no GPU access: the host side or its copied files"
        if gpu_pv
        else "WSL has no GPU access: Windows does not give this WSL instance the GPU"
    )
    return [
        make_finding(
            "wsl_gpu_unavailable",
            ERROR,
            title + (" (the check runs in a container in WSL)" if ctx.container else ""),
            ev,
            fixes.manual(
                "fix it on the Windows side (driver, GPU mode, WSL update); nothing to install in Linux", manual
            ),
        )
    ]


# --- containers and LXC ---------------------------------------------------------------------------


def container_findings(f: Facts, ctx: Context) -> list[Finding]:
    if ctx.kind != CONTAINER or not f.dev_nvidia:
        return []
    host, host_ev = host_module_version(f)
    user, user_ev = userspace_here(f)
    libs = library_versions(f)
    foreign = sorted(v for v in libs if host and not same_driver_version(v, host))
    mismatch = (
        f.smi.kind in ("version_mismatch", "no_nvml_lib")
        or bool(host and user and not same_driver_version(user, host))
        or bool(foreign)
    )
    if not mismatch:
        return []
    ev = list(ctx.evidence) + list(f.smi.lines[:2]) + host_ev[:2] + user_ev[:1]
    ev += [path for v in foreign for path in libs[v]][:3]
    if f.smi.kind == "no_nvml_lib":
        ev.append("no NVIDIA userspace library in this container")
    want = host or "<host module version>"
    what = "LXC container" if ctx.container and ctx.container.startswith("lxc") else "container"
    manual = (
        f"The kernel module is the host's ({want}); this {what} must carry exactly that userspace, or none of its own. "
        + (
            "For LXC/LXD: pass the host's libraries in (LXD: 'lxc config set <c> nvidia.runtime true'; Proxmox: bind-mount "
            "them and the /dev/nvidia* nodes), or install the same version without the kernel module inside: "
            f"sh NVIDIA-Linux-x86_64-{want}.run --no-kernel-module. "
            if what == "LXC container"
            else "For Docker/Kubernetes: use an image without driver libraries (remove libnvidia-*/nvidia-utils and "
            "cuda-compat from the image) so the NVIDIA Container Toolkit mounts the host's, and start it with --gpus all; "
            "or upgrade the host driver to at least the image's version. "
        )
        + "Never install headers, DKMS, an initramfs or reboot from inside the container."
    )
    return [
        make_finding(
            "container_driver_mismatch",
            ERROR,
            f"this {what}'s NVIDIA userspace ({user or ', '.join(foreign) or 'missing'}) does not match the host's kernel module ({host or '?'})",
            ev,
            fixes.manual(
                "make the container's userspace the host module's version (or mount the host's libraries)", manual
            ),
        )
    ]


# --- GPU Operator --------------------------------------------------------------------------------


def operator_findings(f: Facts, ctx: Context, explained: bool) -> list[Finding]:
    """The layout note (info), or an error when the driver container has not loaded the module
    and no more specific cause was found (``explained``)."""
    if ctx.kind != OPERATOR:
        return []
    ev = list(ctx.evidence)
    loaded = f.module_loaded
    if loaded:
        ev.append(f"nvidia module loaded: {f.loaded_version or '?'} (by the driver container)")
    if f.smi.kind == "not_installed":
        ev.append(
            "no nvidia-smi on the host: expected, it lives in the driver container (chroot /run/nvidia/driver nvidia-smi)"
        )
    logs = (
        "kubectl -n gpu-operator logs ds/nvidia-driver-daemonset -c nvidia-driver-ctr; "
        "kubectl get clusterpolicy -o yaml; kubectl -n gpu-operator get pods -o wide"
    )
    if loaded or explained:
        return [
            make_finding(
                "driver_managed_by_operator",
                INFO,
                "the NVIDIA driver on this node is run by the GPU Operator (driver container), not by host packages",
                ev,
                fixes.manual(
                    "nothing to install on the host; driver changes go through the operator",
                    "Change the driver through the ClusterPolicy / Helm values (driver.version, usePrecompiled, driver.rdma ...). "
                    f"Its state: {logs}. Do not install a driver on the host.",
                ),
            )
        ]
    return [
        make_finding(
            "driver_managed_by_operator",
            ERROR,
            "the GPU Operator's driver container has not loaded the nvidia module on this node",
            ev + ["/proc/modules: nvidia is not loaded"] + list(f.smi.lines[:1]),
            fixes.manual(
                "read the driver pod's log; fix it in the ClusterPolicy, not on the host",
                f"The cause is in the driver container's log: {logs}. Typical causes: a kernel the driver version cannot build "
                "against (raise driver.version), Secure Boot refusing the unsigned module (use precompiled signed drivers), "
                "nouveau loaded on the node. Do not install a driver on the host.",
            ),
        )
    ]


# --- vGPU guests ------------------------------------------------------------------------------------

# Datacenter GPUs and the first driver branch that supports them (for telling "this branch does
# not know the GPU" from "this is a vGPU and needs the GRID guest driver").
FIRST_BRANCH = {
    "15f7": 361,
    "15f8": 361,
    "1b38": 375,
    "1bb3": 375,
    "1db1": 384,
    "1db4": 384,
    "1db5": 384,
    "1db6": 384,
    "1df6": 418,
    "1eb8": 410,
    "20b0": 450,
    "20b2": 450,
    "20b5": 450,
    "20f1": 450,
    "20b7": 450,
    "2235": 460,
    "2236": 460,
    "25b6": 460,
    "2237": 470,
    "27b8": 525,
    "26b5": 525,
    "26b9": 525,
    "2330": 525,
    "2331": 520,
    "2322": 525,
    "2324": 525,
    "2335": 550,
    "233b": 550,
    "2901": 570,
    "2941": 570,
}


# A release this many branch numbers newer than an architecture's first supports all of its
# SKUs in practice (a brand-new SKU of an old architecture can need a newer release than its
# first): refusing such a GPU in a VM means the device is a vGPU, not an unknown GPU.
KNOWN_ARCH_MARGIN = 40


def vgpu_refusals(f: Facts, in_vm: bool) -> list[str]:
    """Kernel lines where a VM's driver refused a GPU its branch supports: a vGPU with a bare-metal driver."""
    if not in_vm:
        return []
    out = []
    for m in f.klog.find_all(K.UNSUPPORTED_RELEASE):
        pci_id, release = m.groups[1] or "", m.groups[2] or ""
        dev = pci_id.split(":")[-1].lower()
        first = FIRST_BRANCH.get(dev)
        try:
            branch = int(release.split(".")[0])
        except ValueError:
            continue
        arch = arch_of(dev)
        if (first is not None and branch >= first) or (
            first is None and arch is not None and branch_knows(arch, branch, margin=KNOWN_ARCH_MARGIN)
        ):
            out += m.lines
    for m in f.klog.find_all(K.VGPU_REFUSED):
        out += m.lines
    return out


def vgpu_findings(f: Facts, ctx: Context) -> list[Finding]:
    if not ctx.vgpu:
        return []
    refused = vgpu_refusals(f, True)
    if not refused and f.smi.kind == "ok":
        return []  # a vGPU guest whose GRID driver works
    ev = list(ctx.evidence) + refused[:6]
    if f.runfile or f.driver_packages:
        ev += [p.line for p in f.driver_packages if p.installed][:2]
    where = (
        "Build a driver image with the vGPU guest driver and point the ClusterPolicy's driver.repository/version at it."
        if ctx.kind == OPERATOR
        else "Uninstall the bare-metal driver, install the GRID (vGPU) guest driver from the NVIDIA Licensing Portal whose "
        "version matches the host's vGPU manager (ask the hypervisor admin: the vGPU software release), then license it "
        "(/etc/nvidia/gridd.conf, nvidia-gridd)."
    )
    return [
        make_finding(
            "vgpu_guest_driver",
            ERROR,
            "this VM has a vGPU (GRID) device; the bare-metal driver refuses it: it needs the GRID guest driver of the host's vGPU release",
            ev,
            fixes.manual("install the GRID guest driver that matches the host's vGPU manager", where),
        )
    ]


CONTEXT_KINDS = (WSL, CONTAINER, OPERATOR, VGPU_GUEST)
