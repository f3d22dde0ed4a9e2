"""Fix plans for the GPU's neighbours: a conflicting kernel driver, and fabric manager pinned to
exactly the driver's version. Pure (plans only); ``apply.py`` runs them."""

from __future__ import annotations

import re

from mlops_cli.driver import fixes
from mlops_cli.driver.facts import Facts
from mlops_cli.driver.fixes import data_file
from mlops_cli.driver.model import FixPlan, FixStep

APT = ("apt-get", "install", "-y")
BLACKLIST = {"nova_core": ("blacklist-nova.conf", "'blacklist nova_core', 'blacklist nova_drm' and 'blacklist nova'")}


def conflicting_driver(f: Facts, owner: str, passthrough: bool = False) -> FixPlan:
    if owner == "vfio-pci":
        if passthrough:
            return FixPlan(
                "vfio-pci holds the GPU on purpose (passthrough is configured): decide which use wins",
                (),
                "This box is configured to hand the GPU to VMs (vfio-pci ids / softdep found), so the nvidia driver cannot "
                "use it here. Nothing is changed: if the GPU should serve this host instead, remove the GPU's ids from the "
                "vfio-pci options in /etc/modprobe.d and the kernel command line, run 'update-initramfs -u -k all' and reboot "
                "(the VMs lose the GPU).",
            )
        return FixPlan(
            "give the GPU back to nvidia: remove the vfio-pci binding",
            (),
            "This box is not set up as a passthrough host, yet vfio-pci owns the GPU: remove the GPU's ids from 'vfio-pci ids=' in "
            "/etc/modprobe.d/*.conf and 'vfio-pci.ids=' from the kernel command line (/etc/default/grub, then update-grub), "
            "run 'update-initramfs -u -k all', reboot.",
        )
    if owner == "nouveau":
        return fixes.nouveau()  # the same steps as nouveau_bound: --fix runs them once
    name, lines = BLACKLIST[owner]
    steps = (
        FixStep(
            ("install", "-D", "-m", "0644", data_file(name), f"/etc/modprobe.d/{name}"),
            f"stop {owner} from claiming the GPU at boot",
        ),
        FixStep(
            ("update-initramfs", "-u", "-k", "all"),
            f"so {owner} is not loaded from the initramfs either",
            reboot_after=True,
        ),
    )
    manual = f"/etc/modprobe.d/{name} holds {lines}; then 'update-initramfs -u -k all' and reboot."
    if f.runfile_evidence and not f.runfile:
        manual += " The .run installer aborted before installing anything: run it again after the reboot, not before."
    elif not f.module_loaded and (f.collected.text("/var/log/nvidia-installer.log") or "").count(
        "Unable to load the kernel module"
    ):
        manual += " Re-run the NVIDIA installer only after the reboot: before it, it fails the same way."
    return FixPlan(
        f"blacklist {owner}, rebuild the initramfs, reboot (before installing or loading nvidia again)", steps, manual
    )


def _driver_version(f: Facts) -> str | None:
    return f.loaded_version or (f.smi.driver_version if f.smi.kind == "ok" else None) or f.userspace_version


def fabric_packages(f: Facts) -> tuple[str, str, str | None]:
    """(fabric manager, nscq, driver package to hold) names for this box's repository layout.

    From branch 580 the CUDA repository ships unversioned ``nvidia-fabricmanager`` and
    ``libnvidia-nscq``; before, and in Ubuntu's archive, they carry the branch
    (``nvidia-fabricmanager-570``, ``libnvidia-nscq-570``)."""
    ver = _driver_version(f) or ""
    branch = ver.split(".")[0] if ver else None
    names = {p.name for p in f.packages if p.installed}
    unversioned = "nvidia-fabricmanager" in names or (
        branch is not None and branch.isdigit() and int(branch) >= 580 and bool({"nvidia-open", "cuda-drivers"} & names)
    )
    fm = "nvidia-fabricmanager" if unversioned else f"nvidia-fabricmanager-{branch or '<branch>'}"
    nscq = "libnvidia-nscq" if unversioned else f"libnvidia-nscq-{branch or '<branch>'}"
    hold = next(
        (
            n
            for pattern in (
                r"^cuda-drivers-\d+$",
                r"^cuda-drivers$",
                r"^nvidia-open$",
                r"^nvidia-driver-\d+(-server)?(-open)?$",
                r"^nvidia-headless-\d+",
            )
            for n in sorted(names)
            if re.match(pattern, n)
        ),
        None,
    )
    return fm, nscq, hold


def fabricmanager_install(f: Facts, nvlink5: bool = False, replacing: str | None = None) -> FixPlan:
    """Install (or move) fabric manager and libnvidia-nscq to exactly the driver's version, hold all three."""
    ver = _driver_version(f)
    fm, nscq, hold = fabric_packages(f)
    manual_nvlink = (
        " On NVLink5 systems (B200/GB200 and newer) the fabric is managed through InfiniBand: load mlx5_ib and ib_umad "
        "(apt-get install linux-modules-extra-$(uname -r)) before fabric manager starts."
        if nvlink5
        else ""
    )
    if not ver:
        return FixPlan(
            "install fabric manager at the driver's exact version",
            (),
            f"Install {fm} and {nscq} at exactly the driver's version (nvidia-smi shows it), apt-mark hold them with the driver, "
            "then 'systemctl enable --now nvidia-fabricmanager'." + manual_nvlink,
        )
    pins = [f"{fm}={ver}-*", f"{nscq}={ver}-*"]  # "-*": exactly this upstream version, any packaging revision
    steps = [
        FixStep(
            (*APT, "--allow-downgrades", *pins),
            f"fabric manager and NSCQ must be exactly the driver's version {ver} (a newer or older one refuses to start)",
        ),
        FixStep(
            ("apt-mark", "hold", fm, nscq, *([hold] if hold else [])),
            "keep the driver and fabric manager from drifting apart again",
        ),
        FixStep(("systemctl", "enable", "--now", "nvidia-fabricmanager"), "start it now and at every boot"),
    ]
    if replacing:
        steps[2] = FixStep(("systemctl", "restart", "nvidia-fabricmanager"), "start it against the driver now loaded")
    return FixPlan(
        f"install {fm} and {nscq} at exactly {ver}, hold them with the driver, start the service",
        tuple(steps),
        "If apt has no build of that exact version, move the driver to the newest point release that both exist for, "
        "then pin both." + manual_nvlink,
    )
