"""D5: no pattern in driver/ backtracks super-linearly. Every compiled pattern of every driver
module is searched over 1 MB single tokens under a generous time bound, and the whole diagnosis
runs on a snapshot whose every text is such a token.

(``(\\S+): Unable to change power state`` took 25 s on 100 KB and over 2 minutes on 1 MB.)
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import signal
from contextlib import contextmanager

import pytest

import mlops_cli.driver as driver_pkg
from mlops_cli.driver.check import check
from mlops_cli.host import Snapshot, SnapshotHost

MB = 1 << 20
BOUND_S = 20  # generous: a linear pattern takes milliseconds; the quadratic one took minutes
TOKENS = {
    "letters": "x" * MB,
    "digits": "7" * MB,
    "hex-colon": "0a:" * (MB // 3),
    "dots": "1." * (MB // 2),
    "spaces": " " * MB,
    "newlines": "\n" * MB,
}


# Literal starts of real lines, so anchored patterns get to their greedy parts too.
PREFIXES = (
    "NVRM: GPU ",
    "01:00.0 ",
    "0000:01:00.0 ",
    "nvidia/1.0, ",
    "The kernel was built by: ",
    "DKMS make.log for nvidia-",
)


def _patterns() -> list[tuple[str, re.Pattern[str]]]:
    found = []
    for mod in pkgutil.iter_modules(driver_pkg.__path__):
        module = importlib.import_module(f"mlops_cli.driver.{mod.name}")
        for name, value in vars(module).items():
            values = value if isinstance(value, (list, tuple)) else [value]
            for v in values:
                if isinstance(v, tuple):
                    v = next((x for x in v if isinstance(x, re.Pattern)), None)
                if isinstance(v, re.Pattern):
                    found.append((f"{mod.name}.{name}", v))
    return found


PATTERNS = _patterns()


@contextmanager
def time_limit(seconds: int):
    def boom(signum, frame):
        raise TimeoutError(f"over {seconds} s")

    old = signal.signal(signal.SIGALRM, boom)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_the_audit_finds_the_patterns():
    names = {n for n, _ in PATTERNS}
    assert "kernlog.D3COLD" in names and "buildlogs.GPL_ONLY" in names and len(PATTERNS) > 40


@pytest.mark.parametrize("name,pattern", PATTERNS, ids=[n for n, _ in PATTERNS])
def test_pattern_is_linear_on_a_1mb_token(name, pattern):
    with time_limit(BOUND_S):
        for token in TOKENS.values():
            for text in (
                token,
                token + ": Unable to change power state from D3cold to D0",
                *(p + token for p in PREFIXES),
            ):
                pattern.search(text)
                for _ in pattern.finditer(text):
                    pass


def test_the_d5_pattern_is_fast_and_still_matches():
    from mlops_cli.driver import kernlog as K

    log = K.KernelLog(
        "[    3.1] pcieport 0000:00:01.0: Unable to change power state from D3cold to D0, device inaccessible\n"
    )
    assert log.find(K.D3COLD).groups[0] == "0000:00:01.0"
    with time_limit(BOUND_S):
        K.KernelLog("x" * MB + ": Unable to change power state from D3cold to D0, device inaccessible").find(K.D3COLD)


def _hostile_snapshot(token: str) -> dict:
    keys = [
        "uname_r",
        "nvidia_smi",
        "nvidia_smi_query",
        "dkms_status",
        "modinfo_nvidia",
        "modprobe_dry_run",
        "lspci_nvidia",
        "mokutil_sb_state",
        "dpkg_list",
        "dmesg",
        "journal_kernel",
        "docker_runtimes",
        "fabricmanager_active",
        "fabricmanager_journal",
        "systemd_detect_virt",
        "systemd_detect_container",
        "uptime_since",
        "ofed_info",
    ]
    files = [
        "/proc/driver/nvidia/version",
        "/proc/modules",
        "/proc/cmdline",
        "/proc/version",
        "/var/log/nvidia-installer.log",
        "/var/log/apt/term.log",
        "/var/log/dpkg.log",
        "/etc/os-release",
        "/boot/grub/grubenv",
        "/var/lib/dkms/nvidia/1.0/build/make.log",
        "/run/nvidia/driver/var/log/nvidia-installer.log",
        "/sys/bus/pci/devices/0000:01:00.0/vendor",
        "/etc/modprobe.d/x.conf",
    ]
    return {
        "format": 1,
        "commands": {k: {"rc": 1, "stdout": token, "stderr": token} for k in keys},
        "files": {p: token for p in files},
        "dirs": {"/var/lib/dkms/nvidia": ["1.0"], "/sys/bus/pci/devices": ["0000:01:00.0"]},
    }


@pytest.mark.parametrize("kind", ["letters", "digits", "hex-colon", "spaces", "lspci-spaces", "dkms-commas"])
def test_whole_diagnosis_is_linear_on_1mb_tokens(kind):
    token = {"lspci-spaces": "01:00.0" + " " * MB, "dkms-commas": "nvidia/1.0" + ", " * (MB // 2)}.get(kind) or TOKENS[
        kind
    ]
    with time_limit(BOUND_S * 3):
        d = check(SnapshotHost(Snapshot.from_json(_hostile_snapshot(token))))
    assert d.status in ("ok", "problem", "no-gpu")
