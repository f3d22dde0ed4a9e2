"""Search the kernel log for NVRM messages, however they were split or joined.

One NVRM message can arrive as several dmesg lines (each with or without its own timestamp,
continuation lines indented or bare), as journal lines (``kernel: NVRM: ...``), or as one
rsyslog line with ``#012`` where the newlines were. The log is flattened into one normalised
string with a map back to the original lines, so a pattern can match across line breaks and
the evidence still quotes the original lines verbatim.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PREFIXES = [
    re.compile(r"^\s*\[\s*\d+\.\d+\]\s?"),  # dmesg timestamp
    re.compile(r"^\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ kernel:\s?"),  # syslog
    re.compile(r"^\S*\s*kernel:\s?"),  # journal short form
]


def _body(part: str) -> str:
    for pattern in _PREFIXES:
        part = pattern.sub("", part, count=1)
    part = re.sub(r"\bNVRM:\s*", "", part)
    return re.sub(r"\s+", " ", part).strip()


@dataclass(frozen=True)
class Match:
    groups: tuple[str | None, ...]
    lines: list[str]  # the original lines, verbatim


MAX_LINE = 2048  # the kernel's own limit is 1 KB a message; longer lines are cut


class KernelLog:
    def __init__(self, text: str):
        self.lines = [ln[:MAX_LINE].rstrip() for ln in text.splitlines()]
        pieces: list[str] = []
        self._spans: list[tuple[int, int, int]] = []  # (start, end, line index)
        pos = 0
        for idx, line in enumerate(self.lines):
            for part in line.split("#012"):
                body = _body(part)
                if not body:
                    continue
                pieces.append(body)
                self._spans.append((pos, pos + len(body), idx))
                pos += len(body) + 1
        self.flat = " ".join(pieces)

    def find_all(self, pattern: str | re.Pattern[str]) -> list[Match]:
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        return [Match(m.groups(), self._lines_for(m.start(), m.end())) for m in regex.finditer(self.flat)]

    def find(self, pattern: str | re.Pattern[str]) -> Match | None:
        found = self.find_all(pattern)
        return found[-1] if found else None  # the latest one: the current state

    def _lines_for(self, start: int, end: int) -> list[str]:
        idxs = sorted({i for s, e, i in self._spans if s < end and e > start})
        return [self.lines[i] for i in idxs]


# The patterns, on the normalised text (no "NVRM:", single spaces).
API_MISMATCH = re.compile(
    r"API mismatch: the client (?:'[^']*' \(pid \d+\) )?has the version ([\d.]+), but this kernel module has the version ([\d.]+)\."
)
PROBE_NOT_CALLED = re.compile(r"The NVIDIA probe routine was not called for (\d+) device\(s\)\.")
NOUVEAU_NAMED = re.compile(r"This can occur when a driver such as: (nouveau)")
NO_GPU_FOUND = re.compile(r"No NVIDIA (?:GPU|graphics adapter) found")
REQUIRES_OPEN = re.compile(
    r"The NVIDIA GPU (\S+) \(PCI ID: (10de:[0-9a-fA-F]{4})\) installed in this system requires use of the NVIDIA open kernel modules\."
)
NOT_SUPPORTED_BY_OPEN = re.compile(
    r"The NVIDIA GPU (\S+) \(PCI ID: (10de:[0-9a-fA-F]{4})\) installed in this system is not supported by open nvidia\.ko"
)
OPEN_DATACENTER_ONLY = re.compile(r"Open nvidia\.ko is only ready for use on Data Center GPUs\.()")
UNSUPPORTED_RELEASE = re.compile(
    r"The NVIDIA GPU (\S+) \(PCI ID: (10de:[0-9a-fA-F]{4})\) installed in this system is not supported by the NVIDIA ([\d.]+) driver release\."
)
LEGACY_DROPPED = re.compile(r"(?:is )?supported through the NVIDIA ([\d.x]+) Legacy drivers")
GSP_FIRMWARE_MISSING = re.compile(r"Direct firmware load for (nvidia/([\d.]+)/gsp_\w+\.bin) failed with error -2")
GSP_NO_IMAGE = re.compile(r"RmFetchGspRmImages: No firmware image found()")
FALLEN_OFF_BUS = re.compile(
    r"The NVIDIA GPU (\S+) \(PCI ID: (10de:[0-9a-fA-F]{4})\) installed in this system has fallen off the bus"
)
XID_79 = re.compile(r"Xid \(PCI:([^)]+)\): 79\b.{0,80}?fallen off the bus")
RM_INIT_FAILED = re.compile(
    r"GPU (\S{1,32}): RmInitAdapter failed! \((0x[0-9a-fA-F]{1,8}:0x[0-9a-fA-F]{1,8}:\d{1,8})\)"
)
# The look-behind starts a match only at a token's start: without it a search over one long
# token retries every suffix (quadratic: 100 KB took 25 s, 1 MB over two minutes).
D3COLD = re.compile(r"(?<!\S)(\S{1,64}): Unable to change power state from D3cold to D0, device inaccessible")
GSP_RM_INIT = re.compile(r"RmInitAdapter: Cannot initialize GSP firmware RM()")
GFW_BOOT = re.compile(r"failed to wait for GFW_BOOT()")
KEY_REJECTED = re.compile(
    r"(Loading of module with unavailable key is rejected|Loading of unsigned module is rejected"
    r"|Lockdown: \S{1,64}: unsigned module loading is restricted)"
)
# Printed at boot when Secure Boot locks the kernel down (module signatures are then enforced).
LOCKED_DOWN = re.compile(r"Kernel is locked down from (?:EFI Secure Boot|[\w ]{1,40})(?: mode)?()")
# Printed at boot for every certificate the kernel trusts for module signatures (built-in,
# db and, on Ubuntu/Debian, the enrolled MOKs): "integrity: Loaded X.509 cert 'NAME: KEYID'".
X509_LOADED = re.compile(r"Loaded X\.509 cert '([^':]{1,200})(?::[^']{0,120})?'")
# Printed when signature enforcement is OFF (the module loads, the kernel is tainted): alone it
# is never a rejection; it only supports one when Secure Boot is on and nothing is loaded.
MODULE_SIG_TAINT = re.compile(r"(?<!\w)(\w{1,64}): module verification failed: signature and/or required key missing")
# Wedged GPU, another driver owning it, GPUDirect RDMA (rules_gpu.py). Bounded classes keep
# every search linear on long tokens.
XID = re.compile(r"Xid \(PCI:([0-9a-fA-F:.]{4,20})\): (\d{1,4})\b")
WPR2 = re.compile(r"WPR2 already up")
NEEDS_RESET_TEXT = re.compile(r"may need to be reset|GPU Reset Required|GPU is probably locked|Node Reboot Required")
ALREADY_BOUND = re.compile(r"GPU ([0-9a-fA-F:.]{7,16}) is already bound to ([A-Za-z][\w-]{0,40})")
# The nvidia module (or nvidia-drm/-modeset) cannot resolve the kernel's DRM symbols: the drm module is
# not on disk (Ubuntu's virtual/cloud kernels ship it in linux-modules-extra-K, linux-image-extra-K <= 16.04).
UNKNOWN_DRM = re.compile(r"(?<![\w-])nvidia(?:[_-](?:drm|modeset))?: Unknown symbol (drm_\w{1,80})")
PEERMEM = re.compile(
    r"(?<![\w-])(nvidia_peermem|nv_peer_mem): (disagrees about version of symbol|Unknown symbol) (\w{1,80})"
)
# A vGPU guest whose guest driver the host's vGPU manager refuses (version or licence).
VGPU_REFUSED = re.compile(
    r"(?:vGPU|GRID)[^.]{0,120}?(?:incompatible|not supported|unsupported|mismatch|not compatible)"
)
