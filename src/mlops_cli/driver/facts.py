"""Collected text -> ``Facts``: the plain, parsed picture of the machine. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mlops_cli.driver import parse as P
from mlops_cli.driver.buildlogs import BuildLog
from mlops_cli.driver.context import Context
from mlops_cli.driver.kernlog import KernelLog
from mlops_cli.driver.model import NotSeen
from mlops_cli.driver.probe import Collected

# Per-branch package names. Ubuntu <= 18.04 and the graphics-drivers PPA of that time named the
# driver itself nvidia-<branch> (it also ships the DKMS module, built as nvidia_<branch>.ko), with
# libcuda1-<branch>, nvidia-<branch>-dev and nvidia-opencl-icd-<branch> beside it.
DRIVER_PKG = re.compile(
    r"^(?:nvidia-(?:(?:driver|utils|dkms|compute-utils|kernel-common|kernel-source|headless(?:-no-dkms)?|firmware"
    r"|opencl-icd)-)?|libnvidia-(?:compute|gl|common|cfg1|decode|encode|extra|fbc1)-|libcuda1-)"
    r"(?P<br>\d{3})(?P<server>-server)?(?P<open>-open)?(?:-updates)?(?:-dev)?(?:-[\d.]+)?$"
)
# The driver package whose postinst builds the kernel module: nvidia-dkms-<branch>, Debian's
# nvidia-kernel-dkms, and the old all-in-one nvidia-<branch>.
DKMS_PKG = re.compile(r"^(?:nvidia-dkms-\d|nvidia-kernel-dkms$|nvidia-open-kernel-dkms$|nvidia-\d{3}(?:-updates)?$)")
# Debian's and the CUDA repository's unversioned names: nvidia-driver, nvidia-kernel-dkms,
# nvidia-smi, libnvidia-ml1 (Debian, module nvidia-current), cuda-drivers, nvidia-open (CUDA repo).
UNVERSIONED_DRIVER_PKG = re.compile(
    r"^(?:nvidia-driver|nvidia-kernel-dkms|nvidia-open-kernel-dkms|nvidia-kernel-support|nvidia-smi|libnvidia-ml1"
    r"|libcuda1|cuda-drivers(?:-\d{3})?|nvidia-open)$"
)
PREBUILT_PKG = re.compile(
    r"^linux-modules-nvidia-(?P<suffix>\d{3}(?:-server)?(?:-open)?)-(?P<k>\d+\.\d+\.\d+-\d+-[\w.-]+)$"
)
# The module file: nvidia.ko, Debian's nvidia-current.ko, Ubuntu <= 18.04's nvidia_<branch>.ko.
MODULE_FILE = re.compile(r"^nvidia(?:-current|_\d{3})?\.ko(?:\.(?:zst|xz|gz))?$")
CONTAINER_TOOLKIT = ("nvidia-container-toolkit", "nvidia-container-toolkit-base", "nvidia-docker2")

# Keys generated on the machine (DKMS, Ubuntu's update-secureboot-policy, a hand-made MOK): the
# kernel trusts modules signed with them only after the key is enrolled in MokManager.
LOCAL_SIGNER = re.compile(r"DKMS|Secure Boot Module Signature key|\bMOK\b|[Mm]odule signing key", re.I)


@dataclass
class KernelModuleState:
    kernel: str
    present: bool | None  # None: could not tell
    evidence: list[str] = field(default_factory=list)
    headers_installed: bool | None = None
    headers_evidence: list[str] = field(default_factory=list)
    build: P.MakeLog | None = None  # a failed make.log for this kernel
    build_log_path: str | None = None
    build_class: BuildLog | None = None  # why the build failed (make.log or nvidia-installer.log)
    apt_events: list[P.AptEvent] = field(default_factory=list)
    dkms_entries: list[P.DkmsEntry] = field(default_factory=list)


@dataclass
class Facts:
    collected: Collected
    running_kernel: str | None
    next_kernel: str | None
    next_kernel_reason: str | None
    installed_kernels: list[str]
    smi: P.SmiState
    smi_gpus: list[P.SmiGpu]
    pci_gpus: list[P.PciDevice]  # from lspci
    sysfs_nvidia: list[tuple[str, str, str]]  # (address, device id, class)
    pci_visible: bool  # could we see the PCI bus at all
    packages: list[P.Package]
    dpkg_seen: bool
    dkms: list[P.DkmsEntry]
    dkms_seen: bool
    dkms_errors: list[str]
    modinfo: dict[str, str]
    modinfo_error: str | None
    modprobe_lines: list[str]
    loaded: set[str]
    proc_version: P.ProcVersion | None
    sys_module_version: str | None
    secure_boot: bool | None
    secure_boot_line: str | None
    klog: KernelLog
    klog_seen: bool
    apt_events: list[P.AptEvent]
    runfile: bool
    runfile_evidence: list[str]
    installer_version: str | None
    in_container: bool
    container_marker: str | None
    dev_nvidia: list[str]
    dev_char: list[str] | None
    docker_runtimes: str | None  # raw JSON text when docker answered
    fm_active: str | None
    fm_journal: list[str]
    reboot_required: bool
    reboot_pkgs: list[str]
    os: dict[str, str]
    virt: str | None
    firmware_versions: list[str] | None
    key_rejected_lines: list[str]
    mok_test_lines: list[str] = field(default_factory=list)  # mokutil --test-key verdicts
    modules: dict[str, KernelModuleState] = field(default_factory=dict)
    not_seen: list[NotSeen] = field(default_factory=list)
    context: Context = field(default_factory=lambda: Context("bare-metal"))
    installer_logs: list[BuildLog] = field(default_factory=list)  # host's and the operator's nvidia-installer.log
    # Steps (argv) that the evidence shows just failed here: a plan must not repeat them unchanged.
    failed_steps: set[tuple[str, ...]] = field(default_factory=set)
    boot_time: str | None = None
    rebooted_since_driver_change: bool | None = None
    timeline_evidence: list[str] = field(default_factory=list)
    # Other package databases: (name, version) rows of `rpm -qa` / `pacman -Q`.
    rpm_packages: list[tuple[str, str]] = field(default_factory=list)
    pacman_packages: list[tuple[str, str]] = field(default_factory=list)
    distro: str = "unknown"  # distro.family(): debian, rhel, suse, arch, appliance, other, unknown

    # -- derived -------------------------------------------------------------------

    def installed(self, name: str) -> P.Package | None:
        for p in self.packages:
            if p.name == name and p.installed:
                return p
        return None

    def matching(self, pattern: str) -> list[P.Package]:
        rx = re.compile(pattern)
        return [p for p in self.packages if rx.search(p.name)]

    @property
    def module_loaded(self) -> bool:
        return "nvidia" in self.loaded or self.sys_module_version is not None or self.proc_version is not None

    @property
    def loaded_version(self) -> str | None:
        if self.sys_module_version:
            return self.sys_module_version
        return self.proc_version.version if self.proc_version else None

    @property
    def nvidia_on_pci(self) -> bool:
        return bool(self.pci_gpus or self.sysfs_nvidia or self.smi_gpus)

    @property
    def dkms_packages(self) -> list[P.Package]:
        return [p for p in self.packages if p.installed and DKMS_PKG.match(p.name)]

    @property
    def half_configured(self) -> list[P.Package]:
        """Driver packages whose install or upgrade did not finish (iU, iF, iH)."""
        return [p for p in self.driver_packages if p.half_configured]

    @property
    def dkms_registered(self) -> bool:
        """nvidia is a DKMS module here: dkms lists it, a package ships it, or its tree exists
        (a tree so broken that ``dkms status`` itself errors still counts)."""
        return bool(self.dkms or self.dkms_packages or self.collected.listing("/var/lib/dkms/nvidia"))

    @property
    def prebuilt_packages(self) -> list[P.Package]:
        return [p for p in self.packages if p.installed and PREBUILT_PKG.match(p.name)]

    @property
    def driver_packages(self) -> list[P.Package]:
        return [p for p in self.packages if DRIVER_PKG.match(p.name) or UNVERSIONED_DRIVER_PKG.match(p.name)]

    @property
    def install_method(self) -> str:
        if self.prebuilt_packages and (
            not self.dkms_packages
            or any(self._prebuilt_kernel(p) == self.running_kernel for p in self.prebuilt_packages)
        ):
            return "apt-prebuilt"
        if self.dkms_packages:
            return "apt-dkms"
        if self.runfile:
            return "runfile"
        if not self.dpkg_seen:
            return "unknown"
        if any(p.installed for p in self.driver_packages):
            return "unknown"
        return "none"

    @staticmethod
    def _prebuilt_kernel(p: P.Package) -> str | None:
        m = PREBUILT_PKG.match(p.name)
        return m.group("k") if m else None

    @property
    def branch_suffix(self) -> str | None:
        """``535``, ``535-server``, ``580-open``, ``550-server-open``: what package names end in."""
        for p in self.dkms_packages:
            if p.name.startswith("nvidia-dkms-"):
                return p.name[len("nvidia-dkms-") :]
        for p in self.prebuilt_packages:
            return PREBUILT_PKG.match(p.name).group("suffix")  # type: ignore[union-attr]
        for p in self.packages:
            m = DRIVER_PKG.match(p.name)
            if m and p.name.startswith(
                ("nvidia-driver-", "nvidia-utils-", "nvidia-compute-utils-", "nvidia-headless-")
            ):
                return m["br"] + (m["server"] or "") + (m["open"] or "")
        for p in self.packages:
            m = DRIVER_PKG.match(p.name)
            if m:
                return m["br"] + (m["server"] or "")
        return None

    @property
    def userspace_version(self) -> str | None:
        if self.smi.kind == "ok" and self.smi.driver_version:
            return self.smi.driver_version
        for g in self.smi_gpus:
            return g.driver_version
        for prefix in ("libnvidia-compute-", "nvidia-utils-", "libnvidia-gl-", "nvidia-compute-utils-"):
            for p in self.packages:
                if p.installed and p.name.startswith(prefix):
                    return P.upstream_version(p.version)
        for p in self.packages:  # Debian and CUDA-repository names
            if p.installed and p.name in ("nvidia-smi", "libnvidia-ml1", "libcuda1", "nvidia-driver", "cuda-drivers"):
                return P.upstream_version(p.version)
        if self.smi.nvml_version:
            return self.smi.nvml_version
        return self.installer_version if self.runfile else None

    @property
    def disk_version(self) -> str | None:
        return self.modinfo.get("version")

    def kernel_state(self, kernel: str) -> KernelModuleState:
        return self.modules[kernel]
