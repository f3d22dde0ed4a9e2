"""Collect everything the diagnosis needs, through the Host seam.

Programs run concurrently, each with its own timeout; files and folders are read meanwhile.
The result, ``Collected``, is plain data (the same shape as a snapshot): parsing and
decisions never touch the machine.
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from mlops_cli.host import CommandResult, Host

DEFAULT_TIMEOUT = 10.0
# nvidia-smi can hang for minutes on a wedged GPU; a timeout is itself evidence.
NVIDIA_SMI_TIMEOUT = 20.0

# key -> (argv, timeout). The keys are the snapshot's command keys (specs/driver-check.md).
PROBES: dict[str, tuple[tuple[str, ...], float]] = {
    "uname_r": (("uname", "-r"), DEFAULT_TIMEOUT),
    "nvidia_smi": (("nvidia-smi",), NVIDIA_SMI_TIMEOUT),
    "nvidia_smi_query": (
        (
            "nvidia-smi",
            "--query-gpu=index,name,pci.bus_id,driver_version,memory.total,memory.used",
            "--format=csv,noheader",
        ),
        NVIDIA_SMI_TIMEOUT,
    ),
    "dkms_status": (("dkms", "status"), DEFAULT_TIMEOUT),
    "modinfo_nvidia": (("modinfo", "nvidia"), DEFAULT_TIMEOUT),
    "modprobe_dry_run": (("modprobe", "--dry-run", "--verbose", "nvidia"), DEFAULT_TIMEOUT),
    "lspci_nvidia": (("lspci", "-nnk", "-d", "10de:"), DEFAULT_TIMEOUT),
    "mokutil_sb_state": (("mokutil", "--sb-state"), DEFAULT_TIMEOUT),
    "dpkg_list": (("dpkg-query", "-W", "-f=${db:Status-Abbrev}\\t${Package}\\t${Version}\\n"), DEFAULT_TIMEOUT),
    "dmesg": (("dmesg",), DEFAULT_TIMEOUT),
    "journal_kernel": (("journalctl", "-k", "-b", "--no-pager", "-q"), DEFAULT_TIMEOUT),
    "docker_runtimes": (("docker", "info", "--format", "{{json .Runtimes}}"), DEFAULT_TIMEOUT),
    "fabricmanager_active": (("systemctl", "is-active", "nvidia-fabricmanager"), DEFAULT_TIMEOUT),
    # Added to the spec's list: the fabric manager's own words when it refuses to start.
    "fabricmanager_journal": (
        ("journalctl", "-u", "nvidia-fabricmanager", "-b", "--no-pager", "-q", "-n", "50"),
        DEFAULT_TIMEOUT,
    ),
    # Where the check runs (context.py): a VM's hypervisor, a container's kind (docker, lxc, wsl).
    "systemd_detect_virt": (("systemd-detect-virt",), DEFAULT_TIMEOUT),
    "systemd_detect_container": (("systemd-detect-virt", "--container"), DEFAULT_TIMEOUT),
    # Boot time, against the package times in /var/log/dpkg.log: rebooted since the upgrade?
    "uptime_since": (("uptime", "-s"), DEFAULT_TIMEOUT),
    # The RDMA stack nvidia-peermem must be built against.
    "ofed_info": (("ofed_info", "-s"), DEFAULT_TIMEOUT),
    # Is the key DKMS signs modules with enrolled? (dkms >= 3 and Ubuntu's shim-signed key)
    "mok_test_dkms": (("mokutil", "--test-key", "/var/lib/dkms/mok.pub"), DEFAULT_TIMEOUT),
    "mok_test_shim": (("mokutil", "--test-key", "/var/lib/shim-signed/mok/MOK.der"), DEFAULT_TIMEOUT),
    # The package databases of the other families (RHEL/Fedora/SUSE; Arch).
    "rpm_list": (("rpm", "-qa", "--qf", "%{NAME}\\t%{VERSION}-%{RELEASE}\\n"), DEFAULT_TIMEOUT),
    "pacman_list": (("pacman", "-Q"), DEFAULT_TIMEOUT),
}

FILES = [
    "/proc/driver/nvidia/version",
    "/proc/modules",
    "/proc/cmdline",
    "/proc/version",
    "/sys/module/nvidia/version",
    "/var/run/reboot-required",
    "/var/run/reboot-required.pkgs",
    "/boot/grub/grubenv",
    "/etc/os-release",
    "/sys/class/dmi/id/sys_vendor",
    "/sys/class/dmi/id/product_name",
    "/run/systemd/container",  # written by systemd inside a container: docker, lxc, ...
    "/run/host/container-manager",
    "/etc/nv_tegra_release",  # Jetson / L4T: an integrated GPU with its own driver stack
    "/proc/device-tree/compatible",
]
# Large logs: only their tail is read.
LOGS = {
    "/var/log/nvidia-installer.log": 300,
    "/var/log/apt/term.log": 400,
    "/var/log/dpkg.log": 300,
    # The GPU Operator's driver container root is mounted here on the host.
    "/run/nvidia/driver/var/log/nvidia-installer.log": 300,
    # ... and the fabric manager's log there (the driver container runs it on HGX nodes).
    "/run/nvidia/driver/var/log/fabricmanager.log": 200,
    # Package history of the other families (the boot-versus-upgrade timeline).
    "/var/log/pacman.log": 400,
    "/var/log/dnf.rpm.log": 400,
}
MAKE_LOG_TAIL = 2000
EXISTS = [
    "/usr/bin/nvidia-uninstall",
    "/usr/bin/nvidia-installer",
    "/.dockerenv",
    "/run/.containerenv",
    "/run/host",
    "/etc/kubernetes",
    # Kubernetes distributions that install no kubelet package: MicroK8s (snap), k3s, RKE2.
    "/var/snap/microk8s",
    "/etc/rancher/k3s",
    "/etc/rancher/rke2",
    "/run/ostree-booted",  # rpm-ostree (Silverblue, CoreOS): packages change through the image
]
DIRS = [
    "/lib/modules",
    "/var/lib/dkms/nvidia",
    "/var/lib/dkms/nvidia-current",  # Debian's DKMS module name
    "/usr/src",
    "/boot",
    "/dev",
    "/dev/char",
    "/lib/firmware/nvidia",
    "/sys/bus/pci/devices",
    "/etc/modprobe.d",
    "/lib/modprobe.d",
    "/usr/lib/wsl/lib",  # WSL: the Windows driver's libraries
    "/run/nvidia",  # GPU Operator: driver, toolkit, validations
    "/run/nvidia/driver",  # the driver container's root: empty unless a driver container runs
    "/run/nvidia/validations",
    "/var/lib/kubelet",
    "/usr/src/ofa_kernel",
    "/var/cache/akmods/nvidia",  # Fedora/RPM Fusion akmods: one build log per driver and kernel
]
# Library folders: only the driver libraries' names are kept (their versions are the userspace's).
LIB_DIRS = [
    "/usr/lib/x86_64-linux-gnu",
    "/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/lib/aarch64-linux-gnu",
]
LIB_NAME = re.compile(r"^lib(?:nvidia-ml|cuda)\.so\.\d")
DKMS_TREES = ("/var/lib/dkms/nvidia", "/var/lib/dkms/nvidia-current")
MAX_KERNELS = 12  # /lib/modules on a neglected box can hold dozens; the newest matter
MAX_CONFIG_FILES = 40


@dataclass
class Collected:
    """What was seen. ``files`` maps a path to its text, or None when it exists but is
    unreadable; an absent path does not exist. ``dirs`` holds listings of folders that exist."""

    commands: dict[str, CommandResult] = field(default_factory=dict)
    files: dict[str, str | None] = field(default_factory=dict)
    dirs: dict[str, list[str]] = field(default_factory=dict)
    unlistable: set[str] = field(default_factory=set)
    timings: dict[str, float] = field(default_factory=dict)

    def text(self, path: str) -> str | None:
        return self.files.get(path)

    def exists(self, path: str) -> bool:
        return path in self.files or path in self.dirs

    def listing(self, path: str) -> list[str] | None:
        return self.dirs.get(path)

    def command(self, key: str) -> CommandResult:
        return self.commands.get(key) or CommandResult(127, "", "not run")


def collect(host: Host, workers: int = 16) -> Collected:
    """Run every probe concurrently and read the files; returns plain data."""
    out = Collected()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {key: pool.submit(_timed_run, host, argv, timeout, key) for key, (argv, timeout) in PROBES.items()}
        started = time.perf_counter()
        _read_files(host, out)
        _read_more(host, out)
        out.timings["files"] = time.perf_counter() - started
        for key, fut in futures.items():
            result, seconds = fut.result()
            out.commands[key] = result
            out.timings[key] = seconds
    return out


def _timed_run(host: Host, argv: tuple[str, ...], timeout: float, key: str) -> tuple[CommandResult, float]:
    started = time.perf_counter()
    try:
        result = host.run(list(argv), timeout, key=key)
    except OSError as exc:  # a seam that cannot start the program at all
        result = CommandResult(126, "", f"{argv[0]}: {exc}")
    return result, time.perf_counter() - started


def _read(host: Host, out: Collected, path: str, tail_lines: int | None = None) -> str | None:
    try:
        text = host.read(path, tail_lines=tail_lines)
    except PermissionError:
        out.files[path] = None
        return None
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, OSError):
        return None
    out.files[path] = text
    return text


def _list(host: Host, out: Collected, path: str) -> list[str] | None:
    try:
        names = host.listdir(path)
    except PermissionError:
        out.unlistable.add(path)
        return None
    except (FileNotFoundError, NotADirectoryError, OSError):
        return None
    out.dirs[path] = list(names)
    return out.dirs[path]


def _exists(host: Host, out: Collected, path: str) -> None:
    try:
        if host.exists(path):
            out.files.setdefault(path, "")
    except OSError:
        pass


def _read_more(host: Host, out: Collected) -> None:
    """Debian's DKMS tree, the operator's driver root, driver library names."""
    _exists(host, out, "/run/nvidia/driver")
    # PID 1's environment says "container=lxc" in LXC; only that entry is kept (never the rest).
    try:
        environ = host.read("/proc/1/environ")
    except PermissionError:
        environ = None
    except OSError:
        environ = ""
    if environ is not None and environ != "":
        keep = [e for e in re.split(r"[\x00\n]", environ[:65536]) if e.startswith("container=")]
        out.files["/proc/1/environ"] = "\n".join(keep[:1]) + ("\n" if keep else "")
    for ver in out.dirs.get("/var/lib/dkms/nvidia-current") or []:
        folder = f"/var/lib/dkms/nvidia-current/{ver}"
        if _list(host, out, folder) is not None:
            _read(host, out, f"{folder}/build/make.log", tail_lines=MAKE_LOG_TAIL)
    for folder in LIB_DIRS:
        try:
            names = host.listdir(folder)
        except (PermissionError, FileNotFoundError, NotADirectoryError, OSError):
            continue
        out.dirs[folder] = [n for n in names if LIB_NAME.match(n)]


def _read_files(host: Host, out: Collected) -> None:
    for path in FILES:
        _read(host, out, path)
    for path, lines in LOGS.items():
        _read(host, out, path, tail_lines=lines)
    for path in EXISTS:
        _exists(host, out, path)
    for path in DIRS:
        _list(host, out, path)

    from mlops_cli.driver.parse import version_key

    kernels = sorted(out.dirs.get("/lib/modules") or [], key=version_key)[-MAX_KERNELS:]
    for kver in kernels:
        base = f"/lib/modules/{kver}"
        _list(host, out, base)
        for sub in ("updates", "updates/dkms", "kernel/drivers/video", "kernel", "extra", "extra/nvidia"):
            _list(host, out, f"{base}/{sub}")
    for ver in out.dirs.get("/var/lib/dkms/nvidia") or []:
        folder = f"/var/lib/dkms/nvidia/{ver}"
        if _list(host, out, folder) is not None:
            _read(host, out, f"{folder}/build/make.log", tail_lines=MAKE_LOG_TAIL)
    for name in (out.dirs.get("/var/cache/akmods/nvidia") or [])[:MAX_CONFIG_FILES]:
        if name.endswith(".log"):
            _read(host, out, f"/var/cache/akmods/nvidia/{name}", tail_lines=MAKE_LOG_TAIL)
    for name in out.dirs.get("/lib/firmware/nvidia") or []:
        _list(host, out, f"/lib/firmware/nvidia/{name}")
    for folder in ("/etc/modprobe.d", "/lib/modprobe.d"):
        for name in (out.dirs.get(folder) or [])[:MAX_CONFIG_FILES]:
            if name.endswith(".conf"):
                _read(host, out, f"{folder}/{name}")
    for dev in out.dirs.get("/sys/bus/pci/devices") or []:
        base = f"/sys/bus/pci/devices/{dev}"
        vendor = _read(host, out, f"{base}/vendor")
        if vendor is not None and vendor.strip().lower() == "0x10de":
            _read(host, out, f"{base}/device")
            _read(host, out, f"{base}/class")


# Secrets (a provisioning token on the kernel command line, also echoed by dmesg and
# journalctl -k) are redacted from every string of a saved snapshot: see host.save_snapshot_document.
