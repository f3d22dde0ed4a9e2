"""Where the check runs decides what a fix may touch. Pure: reads only collected data.

The context is decided before any rule runs:

- ``wsl``: Windows Subsystem for Linux. The GPU driver is the Windows one; Linux sees /dev/dxg
  and the libraries in /usr/lib/wsl/lib. A Linux driver must never be installed there.
- ``container``: Docker/Podman/containerd or an LXC/LXD system container. The kernel module is
  the host's; the container can only carry userspace that must match it.
- ``operator``: a Kubernetes node whose driver is run by the NVIDIA GPU Operator (or another
  driver container): the module is loaded from /run/nvidia/driver, the host has no packages.
- ``vgpu-guest``: a VM given a vGPU (GRID) profile; it needs the GRID guest driver that matches
  the host's vGPU manager.
- ``vm``: an ordinary VM (passthrough or cloud instance); ``bare-metal`` otherwise.

Only ``bare-metal`` and ``vm`` allow automated kernel-level steps (packages, DKMS, headers,
.run installers, initramfs, module loads): everywhere else the fix belongs to another layer
(Windows, the host, the operator's ClusterPolicy, the vGPU host) and ``--fix`` runs nothing
there (``gate.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mlops_cli.driver.probe import Collected

BARE_METAL = "bare-metal"
VM = "vm"
VGPU_GUEST = "vgpu-guest"
CONTAINER = "container"
WSL = "wsl"
OPERATOR = "operator"

# Contexts where --fix may install, remove or rebuild kernel-level driver parts.
UNGATED = (BARE_METAL, VM)

# DMI "sys_vendor product_name" of a virtual machine. Microsoft's own hardware (Surface laptops)
# has the vendor "Microsoft Corporation" too: only its Hyper-V product "Virtual Machine" is a VM.
VIRT_DMI = re.compile(
    r"QEMU|KVM|VMware|VirtualBox|Microsoft Corporation Virtual Machine|Xen|Standard PC|Google Compute|Amazon EC2|"
    r"OpenStack|Cloud Hypervisor|Parallels|Nutanix|oVirt|RHEV|Bochs|BHYVE|Alibaba Cloud|Oracle Cloud",
)
_CONTAINER_KINDS = {
    "docker",
    "podman",
    "lxc",
    "lxc-libvirt",
    "systemd-nspawn",
    "rkt",
    "openvz",
    "proot",
    "pouch",
    "containerd",
    "oci",
}
# A vGPU profile name: "GRID T4-16Q", "NVIDIA A100-4C", "NVIDIA L40S-24Q", "A16-2B". "GRID K1", "GRID K2",
# "GRID K340" and "GRID K520" are physical Kepler boards (the K520 is AWS g2's passed-through GPU), not
# profiles: their profiles carry a profile number and suffix ("GRID K120Q", "GRID K260Q", "GRID K200").
_VGPU_NAME = re.compile(r"\bGRID\b(?!\s+K(?:1|2|340|520)\b)|-\d+[QCABN]\b")


@dataclass
class Context:
    kind: str
    evidence: list[str] = field(default_factory=list)
    wsl: bool = False
    container: str | None = None  # docker, lxc, podman, ... when running inside one
    operator: bool = False
    vm: str | None = None  # the hypervisor / cloud, when a VM
    vgpu: bool = False

    @property
    def gated(self) -> bool:
        """No automated kernel-level step may run here."""
        return self.kind not in UNGATED

    @property
    def where_fix_belongs(self) -> str:
        return {
            WSL: "on Windows (the Windows NVIDIA driver and the host's GPU policy), not inside WSL",
            CONTAINER: "on the host that runs this container (its driver), or in how the container is started",
            OPERATOR: "in the GPU Operator (the ClusterPolicy / Helm values and the driver pod's logs), not on the host",
            VGPU_GUEST: "in the VM's GRID guest driver, which must match the host's vGPU manager",
        }.get(self.kind, "on this machine")

    def to_json(self) -> dict:
        doc: dict = {"kind": self.kind, "gated": self.gated, "evidence": list(self.evidence)}
        if self.container:
            doc["container"] = self.container
        if self.vm:
            doc["vm"] = self.vm
        return doc


def _first_line(text: str | None) -> str:
    return next((ln.strip() for ln in (text or "").splitlines() if ln.strip()), "")


def wsl_evidence(c: Collected) -> list[str]:
    ev = []
    uname = c.command("uname_r")
    release = uname.stdout.strip() if uname.ok else ""
    if re.search(r"microsoft", release, re.I):
        ev.append(f"uname -r: {release}")
    pv = _first_line(c.text("/proc/version"))[:512]
    if re.search(r"[Mm]icrosoft|WSL", pv) and not ev:
        ev.append(f"/proc/version: {pv}")
    if "dxg" in (c.listing("/dev") or []):
        ev.append("/dev/dxg exists (the WSL GPU paravirtualisation device)")
    if c.listing("/usr/lib/wsl/lib") is not None:
        ev.append("/usr/lib/wsl/lib exists (the Windows driver's libraries mounted into WSL)")
    # NVML says this only through the Windows paravirtualised GPU (WSL, Hyper-V GPU-P).
    smi = c.command("nvidia_smi")
    blocked = next(
        (
            ln.strip()
            for ln in (smi.stdout + "\n" + smi.stderr).splitlines()
            if "GPU access blocked by the operating system" in ln
        ),
        None,
    )
    if blocked:
        ev.append(f"nvidia-smi: {blocked}")
    # Hyper-V's virtual GPU-P render device (vendor Microsoft 1414, device 008e) on the PCI bus.
    for dev in c.listing("/sys/bus/pci/devices") or []:
        base = f"/sys/bus/pci/devices/{dev}"
        if (c.text(f"{base}/vendor") or "").strip().lower() == "0x1414" and (
            c.text(f"{base}/device") or ""
        ).strip().lower() == "0x008e":
            ev.append(f"{dev}: PCI 1414:008e, the Hyper-V paravirtualised GPU")
            break
    for key in ("systemd_detect_virt", "systemd_detect_container"):
        out = c.command(key).stdout.strip()
        if out == "wsl":
            ev.append(f"systemd-detect-virt{' --container' if key.endswith('container') else ''}: wsl")
            break
    return ev


def container_evidence(c: Collected) -> tuple[str | None, list[str]]:
    ev: list[str] = []
    kind = None
    for path, what in (("/.dockerenv", "docker"), ("/run/.containerenv", "podman")):
        if c.exists(path):
            ev.append(f"{path} exists (running inside a container)")
            kind = kind or what
    marker = _first_line(c.text("/run/systemd/container"))
    if marker:
        ev.append(f"/run/systemd/container: {marker}")
        kind = kind or marker
    environ = re.search(r"(?:^|\x00|\n)container=([\w.-]{1,32})", (c.text("/proc/1/environ") or "")[:65536])
    if environ:
        ev.append(f"/proc/1/environ: container={environ.group(1)}")
        kind = kind or environ.group(1)
    manager = _first_line(c.text("/run/host/container-manager"))
    if manager:
        ev.append(f"/run/host/container-manager: {manager}")
        kind = kind or manager
    det = c.command("systemd_detect_container")
    out = det.stdout.strip()
    if det.ok and out and out not in ("none", "wsl"):
        ev.append(f"systemd-detect-virt --container: {out}")
        kind = kind or out
    if kind is None:
        # No marker, but the running kernel's modules are not here while NVIDIA device nodes
        # are (an LXC container on a Proxmox host, where the host kernel is e.g. 6.8.12-4-pve).
        uname = c.command("uname_r").stdout.strip()
        modules = c.listing("/lib/modules")
        devs = [d for d in c.listing("/dev") or [] if d.startswith("nvidia")]
        missing = modules is None or uname not in modules
        if uname and missing and (uname.endswith("-pve") or (devs and not modules)):
            ev.append(
                f"/lib/modules/{uname} does not exist here while /dev/{devs[0]} does (the kernel belongs to a host)"
            )
            kind = "lxc" if uname.endswith("-pve") else "container"
    if kind and kind not in _CONTAINER_KINDS and kind != "container":
        kind = "container"
    return kind, ev


def _host_driver_packages(c: Collected) -> bool:
    from mlops_cli.driver.parse import parse_dpkg

    r = c.command("dpkg_list")
    if not r.ok:
        return False
    rx = re.compile(
        r"^(nvidia-(driver|dkms|utils|headless|kernel-dkms|open|smi)|linux-modules-nvidia|cuda-drivers|libnvidia-compute|libnvidia-ml1)"
    )
    return any(p.installed and rx.match(p.name) for p in parse_dpkg(r.stdout))


def operator_evidence(c: Collected) -> list[str]:
    ev = []
    if c.exists("/run/nvidia/driver"):
        ev.append("/run/nvidia/driver exists (the GPU Operator's driver container root)")
    validations = c.listing("/run/nvidia/validations")
    if validations is not None:
        ev.append("/run/nvidia/validations: " + (" ".join(sorted(validations)) or "(empty)"))
    if not ev:
        return []
    if _host_driver_packages(c):
        # A host-installed driver with the operator's driver component disabled: the host owns it.
        return []
    ev += kubernetes_evidence(c)[:1]
    return ev


def kubernetes_evidence(c: Collected) -> list[str]:
    from mlops_cli.driver.parse import parse_dpkg

    ev = [
        f"{p} exists (a Kubernetes node)"
        for p in ("/var/lib/kubelet", "/etc/kubernetes", "/var/snap/microk8s", "/etc/rancher/k3s", "/etc/rancher/rke2")
        if c.exists(p)
    ]
    r = c.command("dpkg_list")
    if r.ok:
        ev += [
            p.line
            for p in parse_dpkg(r.stdout)
            if p.installed and p.name in ("kubelet", "k3s", "rke2-server", "rke2-agent", "microk8s")
        ][:1]
    return ev


def driver_container_evidence(c: Collected, module_loaded: bool, runfile: bool) -> list[str]:
    """A node whose module comes from a driver container although /run/nvidia was not recorded:
    the module is (or is being) loaded, the host has no driver packages and no .run install, and
    the node runs Kubernetes."""
    if runfile or _host_driver_packages(c) or not c.command("dpkg_list").ok:
        return []
    k8s = kubernetes_evidence(c)
    if not k8s:
        return []
    return k8s + [
        "no NVIDIA driver package or .run install on the host"
        + (" while the module is loaded" if module_loaded else "")
    ]


def vm_evidence(c: Collected) -> str | None:
    det = c.command("systemd_detect_virt").stdout.strip()
    vendor = " ".join(
        filter(
            None,
            [
                _first_line(c.text("/sys/class/dmi/id/sys_vendor")),
                _first_line(c.text("/sys/class/dmi/id/product_name")),
            ],
        )
    )
    if vendor and VIRT_DMI.search(vendor):
        return vendor
    if det and det not in ("none", "wsl") and c.command("systemd_detect_virt").ok:
        return det
    return None


def vgpu_names(names: list[str]) -> list[str]:
    return [n for n in names if _VGPU_NAME.search(n)]


def decide(
    c: Collected,
    gpu_names: list[str] | None = None,
    vgpu_refused: list[str] | None = None,
    module_loaded: bool = False,
    runfile: bool = False,
) -> Context:
    """The context, strongest first: WSL, container, operator, vGPU guest, VM, bare metal.

    ``gpu_names`` are the GPU names nvidia-smi/lspci gave (a vGPU profile name proves a vGPU
    guest); ``vgpu_refused`` are kernel lines where a VM's driver refused a GPU its branch
    supports (the signature of a bare-metal driver on a vGPU)."""
    wsl = wsl_evidence(c)
    ckind, cev = container_evidence(c)
    vm = vm_evidence(c)
    grid = vgpu_names(gpu_names or [])
    strong = [e for e in wsl if e.startswith(("uname", "/proc/version", "systemd-detect-virt"))]
    if strong or len(wsl) >= 2:
        return Context(WSL, wsl + cev, wsl=True, container=ckind)
    if ckind:
        return Context(CONTAINER, cev, container=ckind, vm=vm)
    op = operator_evidence(c) or driver_container_evidence(c, module_loaded, runfile)
    if op:
        return Context(OPERATOR, op, operator=True, vm=vm, vgpu=bool(grid or vgpu_refused))
    if vm and (grid or vgpu_refused):
        ev = [f"virtual machine: {vm}"] + [f"vGPU profile: {n}" for n in grid] + list(vgpu_refused or [])[:2]
        return Context(VGPU_GUEST, ev, vm=vm, vgpu=True)
    if vm:
        return Context(VM, [f"virtual machine: {vm}"], vm=vm)
    return Context(BARE_METAL, [])
