"""Text -> facts: one small, tolerant parser per program output or file.

Every format variant seen in the wild (``research/driver-scenarios.md``) is accepted: old and
new ``dkms status``, ``added`` lines without a kernel, the ``Driver``/``KMD Version`` banners,
open and proprietary ``/proc/driver/nvidia/version``, NVRM messages split over several lines
or joined with ``#012`` by rsyslog. Pure functions; nothing here reads a file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_LINE = 4096  # longer lines are cut before a pattern sees them


def version_key(text: str) -> tuple:
    """Sort key like ``sort -V``: 6.8.0-106-generic after 6.8.0-49-generic."""
    parts = re.split(r"(\d+)", text)
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts if p != "")


def major_minor(version: str | None) -> str | None:
    if not version:
        return None
    return ".".join(version.split(".")[:2])


def same_driver_version(a: str | None, b: str | None) -> bool:
    """NVML prints only major.minor (570.124); the module prints 570.124.06. Compare what both have."""
    if not a or not b:
        return False
    pa, pb = a.split("."), b.split(".")
    n = min(len(pa), len(pb))
    return pa[:n] == pb[:n]


# --- dkms status ------------------------------------------------------------------


@dataclass(frozen=True)
class DkmsEntry:
    module: str
    version: str
    kernel: str | None
    arch: str | None
    state: str  # added | built | installed | ...
    line: str


_DKMS_NEW = re.compile(
    r"^(?P<mod>[^/,\s:]+)/(?P<ver>[^,:\s]+)(?:, (?P<kernel>[^,]+), (?P<arch>[^:]+))?: (?P<state>[\w-]+)"
)
_DKMS_OLD = re.compile(
    r"^(?P<mod>[^/,\s:]+), (?P<ver>[^,:\s]+)(?:, (?P<kernel>[^,]+), (?P<arch>[^:]+))?: (?P<state>[\w-]+)"
)


def parse_dkms_status(text: str) -> list[DkmsEntry]:
    """Both layouts: ``nvidia/535.86.05, 6.5.0-..., x86_64: installed`` (dkms >= 3.0.3) and
    ``nvidia, 396.45, 4.17.11-..., x86_64: installed (original_module exists)`` (dkms 2.x)."""
    entries = []
    for raw in text.splitlines():
        line = raw.strip()
        m = _DKMS_NEW.match(line) or _DKMS_OLD.match(line)
        if not m:
            continue
        entries.append(
            DkmsEntry(
                m["mod"],
                m["ver"],
                (m["kernel"] or "").strip() or None,
                (m["arch"] or "").strip() or None,
                m["state"],
                raw.rstrip(),
            )
        )
    return entries


def dkms_errors(text: str) -> list[str]:
    """``Error! Could not locate dkms.conf file.`` and its next line: a broken DKMS tree."""
    out = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Error!"):
            out.append(line.rstrip())
            if (
                i + 1 < len(lines)
                and lines[i + 1].strip()
                and not _DKMS_NEW.match(lines[i + 1])
                and not _DKMS_OLD.match(lines[i + 1])
            ):
                out.append(lines[i + 1].rstrip())
    return out


# --- nvidia-smi -------------------------------------------------------------------


@dataclass
class SmiState:
    """What ``nvidia-smi`` said: ``kind`` is ok, no_driver, version_mismatch, no_devices,
    no_nvml_lib, device_handle, nvml_unknown, not_installed, timed_out or failed."""

    kind: str
    driver_version: str | None = None
    cuda_version: str | None = None
    nvml_version: str | None = None
    lines: list[str] = field(default_factory=list)  # the lines that say it, verbatim
    err_fields: bool = False  # the table answered, but with ERR! in its GPU fields


_SMI_PATTERNS = [
    ("version_mismatch", re.compile(r"Driver/library version mismatch")),
    ("no_nvml_lib", re.compile(r"couldn't find libnvidia-ml\.so")),
    ("device_handle", re.compile(r"Unable to determine the device handle")),
    ("nvml_unknown", re.compile(r"Failed to initialize NVML: Unknown Error")),
    ("no_devices", re.compile(r"No devices were found")),
    ("no_driver", re.compile(r"couldn't communicate with the NVIDIA driver")),
]


def parse_nvidia_smi(rc: int, stdout: str, stderr: str) -> SmiState:
    text = stdout + ("\n" if stdout and stderr else "") + stderr
    if rc == 127:
        return SmiState("not_installed", lines=[ln for ln in text.splitlines() if ln.strip()][:1])
    if rc == 124:
        return SmiState("timed_out", lines=[ln for ln in text.splitlines() if "timed out" in ln][-1:])
    m = re.search(r"(?:Driver|KMD) Version:\s*([\d.]+)", text)
    cuda = re.search(r"CUDA (?:UMD )?Version:\s*([\d.]+)", text)
    if rc == 0 and m:
        err = [ln.rstrip() for ln in text.splitlines() if "ERR!" in ln]
        return SmiState(
            "ok",
            m.group(1),
            cuda.group(1) if cuda else None,
            lines=[ln for ln in text.splitlines() if m.group(1) in ln][:1] + err[:2],
            err_fields=bool(err),
        )
    for kind, pattern in _SMI_PATTERNS:
        if pattern.search(text):
            nvml = re.search(r"NVML library version:\s*([\d.]+)", text)
            lines = [ln.rstrip() for ln in text.splitlines() if ln.strip()]
            return SmiState(kind, nvml_version=nvml.group(1) if nvml else None, lines=lines[:6])
    if rc == 0:
        return SmiState("ok", lines=[])
    return SmiState("failed", lines=[ln.rstrip() for ln in text.splitlines() if ln.strip()][:6])


@dataclass(frozen=True)
class SmiGpu:
    index: str
    name: str
    pci: str
    driver_version: str


def parse_smi_query(text: str) -> list[SmiGpu]:
    gpus = []
    for line in text.splitlines():
        cols = [c.strip() for c in line.split(",")]
        if len(cols) >= 4 and cols[0].isdigit():
            gpus.append(SmiGpu(cols[0], cols[1], normalise_pci(cols[2]), cols[3]))
    return gpus


def normalise_pci(address: str) -> str:
    """``00000000:04:00.0`` (nvidia-smi), ``04:00.0`` (lspci) -> ``0000:04:00.0``."""
    addr = address.strip().lower()
    m = re.fullmatch(r"(?:([0-9a-f]+):)?([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])", addr)
    if not m:
        return addr
    domain = (m.group(1) or "0000")[-4:].rjust(4, "0")
    return f"{domain}:{m.group(2)}:{m.group(3)}.{m.group(4)}"


# --- lspci -nnk -------------------------------------------------------------------


@dataclass
class PciDevice:
    slot: str
    class_name: str
    class_id: str | None
    name: str
    device_id: str | None
    driver_in_use: str | None = None
    modules: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    @property
    def is_gpu(self) -> bool:
        if self.class_id:
            return self.class_id.startswith("03")
        return bool(re.search(r"VGA|3D controller|Display controller", self.class_name))


_LSPCI_HEAD = re.compile(
    r"^(?P<slot>(?:[0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7])\s+(?P<cls>[^:\[\s][^:\[]*?)(?: \[(?P<clsid>[0-9a-fA-F]{4})\])?: "
    r"(?P<name>.*?)(?: \[(?P<ven>[0-9a-fA-F]{4}):(?P<dev>[0-9a-fA-F]{4})\])?(?: \(rev [0-9a-fA-F]+\))?(?: \(prog-if .*\))?\s*$"
)


def parse_lspci(text: str) -> list[PciDevice]:
    devices: list[PciDevice] = []
    for raw in text.splitlines():
        raw = raw[:MAX_LINE]
        m = _LSPCI_HEAD.match(raw)
        if m:
            if m["ven"] and m["ven"].lower() != "10de":
                continue
            devices.append(
                PciDevice(
                    normalise_pci(m["slot"]),
                    m["cls"].strip(),
                    (m["clsid"] or "").lower() or None,
                    m["name"].strip(),
                    (m["dev"] or "").lower() or None,
                    lines=[raw.rstrip()],
                )
            )
            continue
        if not devices or not raw[:1].isspace():
            continue
        dev = devices[-1]
        line = raw.strip()
        if line.startswith("Kernel driver in use:"):
            dev.driver_in_use = line.split(":", 1)[1].strip()
            dev.lines.append(raw.rstrip())
        elif line.startswith("Kernel modules:"):
            dev.modules = [s.strip() for s in line.split(":", 1)[1].split(",") if s.strip()]
            dev.lines.append(raw.rstrip())
    return devices


# --- dpkg ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Package:
    status: str  # ii, hi, rc, iU, ...
    name: str  # without :arch
    version: str
    line: str

    @property
    def installed(self) -> bool:
        """On disk: ii and hi (held), and the broken states iU (unpacked), iF (half-configured),
        iH (half-installed), iW/it (triggers): installed but not working is not 'not installed'.
        A grep for '^ii' misses all but the first."""
        return len(self.status) >= 2 and self.status[1] in "iUFHWt"

    @property
    def half_configured(self) -> bool:
        """iU, iF, iH: an install or upgrade that did not finish (a failed postinst, e.g. DKMS)."""
        return len(self.status) >= 2 and self.status[1] in "UFH"


def parse_dpkg(text: str) -> list[Package]:
    """``dpkg-query -W -f='${db:Status-Abbrev}\\t${Package}\\t${Version}\\n'`` and ``dpkg -l`` rows."""
    pkgs = []
    for raw in text.splitlines():
        if "\t" in raw:
            cols = raw.split("\t")
            if len(cols) < 3:
                continue
            status, name, version = cols[0].strip(), cols[1].strip(), cols[2].strip()
        else:
            cols = raw.split()
            if len(cols) < 3 or not re.fullmatch(r"[uihrpt][ncHUFWti][R ]?", cols[0]):
                continue
            status, name, version = cols[0], cols[1], cols[2]
        if not re.fullmatch(r"[a-zA-Z]{2,3}", status):
            continue
        pkgs.append(Package(status, name.split(":")[0], version, raw.rstrip()))
    return pkgs


def upstream_version(deb_version: str) -> str:
    """``535.113.01-0ubuntu0.22.04.1`` -> ``535.113.01``; ``1:2.3-4`` -> ``2.3``."""
    v = deb_version.split(":", 1)[-1]
    return v.rsplit("-", 1)[0] if "-" in v else v


# --- modules, modinfo, modprobe -------------------------------------------------------


def parse_modinfo(text: str) -> dict[str, str]:
    """First value of each field (``filename``, ``version``, ``license``, ``signer``, ``vermagic``)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        m = re.match(r"^([a-z_]+):\s*(.*)$", line)
        if m and m.group(1) not in fields:
            fields[m.group(1)] = m.group(2).strip()
    return fields


def loaded_modules(proc_modules: str) -> set[str]:
    return {line.split()[0] for line in proc_modules.splitlines() if line.strip()}


@dataclass(frozen=True)
class ProcVersion:
    version: str
    open: bool
    line: str


_PROC_VERSION = re.compile(
    r"NVRM version: NVIDIA UNIX (?:(?!Open )\S+ )?(?P<open>Open )?Kernel Module(?: for \S+)?\s+(?P<ver>\d+(?:\.\d+)+)"
)


def parse_proc_version(text: str) -> ProcVersion | None:
    """Proprietary ``Kernel Module  384.98`` and open ``Open Kernel Module for x86_64  565.57.01``."""
    for line in text.splitlines():
        m = _PROC_VERSION.search(line)
        if m:
            return ProcVersion(m["ver"], bool(m["open"]), line.rstrip())
    return None


def parse_secure_boot(text: str) -> bool | None:
    """``SecureBoot enabled`` -> True; disabled or no EFI variables (legacy BIOS, VM) -> False."""
    low = text.lower()
    if "secureboot enabled" in low:
        return True
    if "secureboot disabled" in low or "efi variables are not supported" in low or "efivars not found" in low:
        return False
    return None


# --- make.log -------------------------------------------------------------------------


@dataclass
class MakeLog:
    module_version: str | None
    kernel: str | None
    errors: list[str]
    built_by: str | None
    using: str | None
    compiler_lines: list[str]

    @property
    def compilers_differ(self) -> bool:
        """Compare the version numbers, never the names: ``x86_64-linux-gnu-gcc-13 ... 13.3.0``
        and ``cc ... 13.3.0`` are the same compiler even though the warning fires."""
        a, b = _trailing_version(self.built_by), _trailing_version(self.using)
        return bool(a and b and a != b)

    @property
    def compiler_errors(self) -> list[str]:
        return [
            e
            for e in self.errors
            if re.search(r"unrecognized (?:command[- ]line )?option|unknown (?:argument|option)", e)
        ]

    @property
    def kernel_compiler_major(self) -> str | None:
        v = _trailing_version(self.built_by)
        if v:
            return v.split(".")[0]
        m = re.search(r"gcc-(\d+)", self.built_by or "")
        return m.group(1) if m else None


_VERSION = re.compile(r"(?<![\d.])\d+\.\d+(?:\.\d+)?(?=\s*$)")


def _trailing_version(text: str | None) -> str | None:
    if not text:
        return None
    found = _VERSION.findall(text.strip()[:4096])
    return found[-1] if found else None


# "DKMS make.log for nvidia-545.29.06 for kernel 6.6.15-... (x86_64)" (dkms 2/3.0) and
# "DKMS (dkms-3.0.11) make.log for nvidia/575.57.08 for kernel 6.15.4-zabbly+ (x86_64)".
_MAKE_LOG_HEAD = re.compile(
    r"DKMS (?:\([^()\n]{0,40}\) )?make\.log for [\w.+-]{1,80}?[-/](\d[\w.]{0,40}) for kernel (\S{1,200}) \("
)


def parse_make_log(text: str) -> MakeLog:
    head = _MAKE_LOG_HEAD.search(text[:4096])
    errors, compiler_lines = [], []
    built_by = using = None
    for raw in text.splitlines():
        line = raw.rstrip()
        if re.search(r"(?:^|: )(?:fatal )?error: ", line) and "warning:" not in line.split("error:")[0]:
            errors.append(line)
        m = re.search(r"The kernel was built by:\s*(.+)$", line)
        if m:
            built_by = m.group(1).strip()
            compiler_lines.append(line)
        m = re.search(r"You are using:\s*(.+)$", line)
        if m:
            using = m.group(1).strip()
            compiler_lines.append(line)
    return MakeLog(
        head.group(1) if head else None, head.group(2) if head else None, errors, built_by, using, compiler_lines
    )


# --- apt term.log ---------------------------------------------------------------------


@dataclass(frozen=True)
class AptEvent:
    kind: str  # headers_skipped | build_failed | build_ok | file_conflict
    kernel: str | None
    line: str


_APT_PATTERNS = [
    ("headers_skipped", re.compile(r"autoinstall for kernel (\S+) was skipped since the kernel headers")),
    ("headers_skipped", re.compile(r"Module build for kernel (\S+) was skipped since the")),
    ("headers_skipped", re.compile(r"Your kernel headers for kernel (\S+) cannot be found")),
    ("build_failed", re.compile(r"Bad return status for module build on kernel: (\S+)")),
    ("build_failed", re.compile(r"dkms autoinstall on ([^/\s]+)/\S+ failed for nvidia\b")),
    ("build_ok", re.compile(r"dkms autoinstall on ([^/\s]+)/\S+ succeeded for nvidia\b")),
    ("file_conflict", re.compile(r"trying to overwrite '[^']+', which is also in package (nvidia\S*|libnvidia\S*)")),
]


# DKMS applies the package's PATCH[] files before it builds: a patch that does not apply stops it
# before make runs (no make.log); the kernel is the one named by the "Building ... for" line before.
_BUILDING_FOR = re.compile(r"Building (?:initial module )?for (\S+)|dkms install \S+ -k (\S+)")
_PATCH_FAILED = re.compile(r"Error! Application of patch \S+ failed")


def parse_apt_log(text: str) -> list[AptEvent]:
    """DKMS outcomes per kernel from apt's term.log. ``ERROR (dkms apport): ... is not
    supported`` only means apport will not file a report: it is noise, never a cause."""
    events = []
    building: str | None = None
    for raw in text.splitlines():
        if "(dkms apport)" in raw:
            continue
        b = _BUILDING_FOR.search(raw[:512])
        if b:
            building = (b.group(1) or b.group(2)).strip("'`")
        if _PATCH_FAILED.search(raw[:512]):
            events.append(AptEvent("build_failed", building, raw.rstrip()))
            continue
        for kind, pattern in _APT_PATTERNS:
            m = pattern.search(raw)
            if m:
                events.append(AptEvent(kind, None if kind == "file_conflict" else m.group(1), raw.rstrip()))
                break
    return events


# --- GRUB -----------------------------------------------------------------------------


def grub_default_kernel(grubenv: str) -> tuple[str | None, str | None]:
    """The kernel GRUB boots next from grubenv (``next_entry`` wins over ``saved_entry``)."""
    values = dict(line.split("=", 1) for line in grubenv.splitlines() if "=" in line and not line.startswith("#"))
    for key in ("next_entry", "saved_entry"):
        entry = values.get(key, "").strip()
        if not entry:
            continue
        m = re.search(r"gnulinux-(\d[^>\s]*?)-(?:advanced|recovery)-", entry) or re.search(
            r"with Linux (\d\S*?)(?: \(|$|')", entry
        )
        if m:
            return m.group(1), f"{key}={entry}"
    return None, None


def os_release(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip().strip('"')
    return out
