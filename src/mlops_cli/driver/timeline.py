"""Has the machine booted since the driver packages last changed? Pure.

It tells a pending reboot (new userspace, old module still loaded: reboot or reload) from a
stale module (the mismatch survived a reboot: the initramfs or a half-configured package keeps
loading the old module, so rebooting again changes nothing). Evidence: ``uptime -s`` (boot time,
local time) against the newest NVIDIA package event in ``/var/log/dpkg.log`` (local time too).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

# dpkg.log: "2024-09-04 06:12:01 upgrade nvidia-driver-550:amd64 550.90.07-0ubuntu0.24.04.1 550.107.02-..."
_DPKG_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) (install|upgrade|remove|purge|status [\w-]+|configure|trigproc) ([^\s:]+)"
)
_BOOT = re.compile(r"^\s*(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\s*$")
# apt's term.log: "Log started: 2024-09-04  06:12:01", then the packages it set up.
_TERM_START = re.compile(r"^Log started: (\d{4}-\d\d-\d\d) +(\d\d:\d\d:\d\d)")
_TERM_PKG = re.compile(
    r"^(?:Unpacking|Setting up|Removing) ((?:nvidia-|libnvidia-|cuda-drivers|linux-modules-nvidia)[^\s:(]{0,80})"
)
# dmesg -T: "[Fri Mar  3 04:27:08 2023] NVRM: loading NVIDIA UNIX x86_64 Kernel Module  525.85.12 ..."
_MODULE_LOADED = re.compile(r"^\[(\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4})\] NVRM: loading NVIDIA UNIX")
_DRIVER_PKG = re.compile(r"^(nvidia-|libnvidia-|cuda-drivers|libcuda1|xserver-xorg-video-nvidia|linux-modules-nvidia)")
_FMT = "%Y-%m-%d %H:%M:%S"
# pacman.log: "[2014-06-03 19:59] [PACMAN] upgraded nvidia (337.19-2 -> 337.25-1)",
# newer: "[2021-06-03T19:59:10+0200] [ALPM] upgraded nvidia-utils (...)".
_PACMAN = re.compile(
    r"^\[(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d)(:\d\d)?[^\]]*\] \[(?:PACMAN|ALPM)\] (installed|upgraded|removed|downgraded|reinstalled) (\S+)"
)
# dnf.rpm.log: "2024-05-01T10:00:00+0000 SUBDEBUG Upgrade: nvidia-driver-3:550.90.07-1.el9.x86_64"
_DNF = re.compile(
    r"^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)\S* \w+ (Upgrade|Upgraded|Installed|Install|Erase|Reinstall)d?: (\S+)"
)


@dataclass(frozen=True)
class Timeline:
    booted: datetime | None
    boot_line: str | None
    last_change: datetime | None
    change_line: str | None
    pending_marker: bool = False  # /var/run/reboot-required.pkgs names a driver package

    @property
    def rebooted_since_change(self) -> bool | None:
        """True: booted after the last driver package change; False: before; None: unknown."""
        if self.pending_marker:
            return False
        if self.booted is None or self.last_change is None:
            return None
        return self.booted > self.last_change

    def evidence(self) -> list[str]:
        out = []
        if self.pending_marker:
            out.append("/var/run/reboot-required.pkgs names a driver package: not rebooted since it changed")
        if self.change_line:
            out.append(
                self.change_line
                if self.change_line.startswith("/var/log/")
                else f"/var/log/dpkg.log: {self.change_line}"
            )
        if self.boot_line:
            out.append(
                f"uptime -s: {self.boot_line} (booted {'after' if self.rebooted_since_change else 'before'} that)"
            )
        return out


def other_package_logs(pacman_log: str, dnf_log: str) -> str:
    """pacman's and dnf's package history as dpkg.log lines (the one timeline below reads them).
    Their driver packages (nvidia, kmod-nvidia, xorg-x11-drv-nvidia ...) are named ``nvidia-*``
    here so that the driver-package pattern takes them."""
    out = []
    for raw in pacman_log.splitlines()[-2000:]:
        m = _PACMAN.match(raw[:512])
        if m:
            name = m.group(5)
            out.append(
                f"{m.group(1)} {m.group(2)}{m.group(3) or ':00'} upgrade {_as_driver(name)} | /var/log/pacman.log: {raw.strip()[:200]}"
            )
    for raw in dnf_log.splitlines()[-2000:]:
        m = _DNF.match(raw[:512])
        if m:
            out.append(
                f"{m.group(1)} {m.group(2)} upgrade {_as_driver(m.group(4))} | /var/log/dnf.rpm.log: {raw.strip()[:200]}"
            )
    return ("\n" + "\n".join(out) + "\n") if out else ""


def _as_driver(name: str) -> str:
    return name if name.startswith("nvidia-") or "nvidia" not in name else f"nvidia-{name}"


def read(
    uptime_since: str, dpkg_log: str, term_log: str = "", kernel_log: str = "", reboot_pkgs: list[str] | None = None
) -> Timeline:
    """Boot (or module load) time against the last driver package change. Without times,
    /var/run/reboot-required.pkgs naming driver packages still says: not rebooted since."""
    booted = boot_line = None
    m = _BOOT.match(uptime_since.strip()[:64]) if uptime_since.strip() else None
    if m:
        try:
            booted, boot_line = datetime.strptime(m.group(1), _FMT), m.group(1)
        except ValueError:
            booted = None
    last = line = None
    for raw in dpkg_log.splitlines():
        m = _DPKG_LINE.match(raw[:512])
        if not m or not _DRIVER_PKG.match(m.group(3)):
            continue
        try:
            when = datetime.strptime(m.group(1), _FMT)
        except ValueError:
            continue
        if last is None or when >= last:
            last, line = when, raw.rstrip()[:300]
            if " | /var/log/" in line:  # pacman's or dnf's own line, with its file
                line = line.split(" | ", 1)[1]
    started = None
    for raw in term_log.splitlines():
        m = _TERM_START.match(raw[:200])
        if m:
            try:
                started = datetime.strptime(f"{m.group(1)} {m.group(2)}", _FMT)
            except ValueError:
                started = None
            continue
        m = _TERM_PKG.match(raw[:300])
        if m and started is not None and (last is None or started > last):
            last, line = started, f"apt term.log, {started:%Y-%m-%d %H:%M:%S}: {raw.rstrip()[:200]}"
    if booted is None:
        for raw in kernel_log.splitlines()[-5000:]:
            m = _MODULE_LOADED.match(raw[:200])
            if m:
                try:
                    booted = datetime.strptime(" ".join(m.group(1).split()), "%a %b %d %H:%M:%S %Y")
                    boot_line = f"{booted:%Y-%m-%d %H:%M:%S} (nvidia module loaded: {raw.strip()[:160]})"
                except ValueError:
                    continue
    tl = Timeline(booted, boot_line, last, line)
    if tl.rebooted_since_change is None and any(_DRIVER_PKG.match(p) for p in reboot_pkgs or []):
        return Timeline(None, None, last, line, pending_marker=True)
    return tl
