"""Why a driver build (DKMS make.log) or a .run install (nvidia-installer.log) failed. Pure.

The classes, most specific first:

- ``preempt_rt``: ``The kernel you are installing for is a PREEMPT_RT kernel!`` / ``Failed
  PREEMPT_RT sanity check. Bailing out!``: NVIDIA's build refuses real-time kernels by design;
  rebuilding fails the same way (the kernel, not the driver release, is the problem).
- ``gpl_only``: ``ERROR: modpost: GPL-incompatible module nvidia.ko uses GPL-only symbol 'X'``;
  the kernel (6.1.76, 6.6.15, 6.7.3, 5.15.0-10xx stable updates, 6.15 ...) made a symbol
  GPL-only that this driver release still uses: the branch's newer point release fixes it.
- ``cc_check``: NVIDIA's ``Compiler version check failed`` / ``Failed CC version check.
  Bailing out!``: the compiler differs from the kernel's. With the same major version the fix is
  ``IGNORE_CC_MISMATCH=1``; with another major, the kernel's gcc-N.
- ``cc_flags``: ``unrecognized command-line option`` and friends: an older compiler than the
  kernel's (the kernel's flags are unknown to it): install the kernel's gcc-N.
- ``compile``: ``error:`` lines in the driver's own sources: the branch does not compile against
  this kernel's API.
- ``headers``: the kernel's headers are missing or incomplete (``Kernel configuration is
  invalid``, no ``include/generated/autoconf.h``): the build never started.
- ``deps``: a tool or package the build needs is not installed: rpm's ``Failed build
  dependencies: gcc-c++ is needed by nvidia-kmod-...`` (akmods), ``g++: command not found``,
  the installer's ``Unable to find the development tool `cc` in your path``: install it, then
  the same build can succeed.
- ``load``: the build worked but loading failed (the installer's ``Unable to load the kernel
  module``): not a build problem; the kernel's messages name the cause.
- ``unknown``: the log says the build failed and shows no cause.

Warnings never count: the ``compiler differs`` warning with equal versions, clang's
``Warning: Compiler version check failed``, ``(dkms apport)`` lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

PREEMPT_RT = re.compile(r"Failed PREEMPT_RT sanity check|The kernel you are installing for is a PREEMPT_RT kernel")
GPL_ONLY = re.compile(r"ERROR: modpost: GPL-incompatible module (\S+) uses GPL-only symbol '([^']+)'")
MODPOST_ERROR = re.compile(r"ERROR: modpost: .+")
CC_FAILED = re.compile(
    r"(?<!Warning: )Compiler version check failed|Failed CC version check|The CC version check failed"
)
CC_FLAGS = re.compile(r"unrecognized (?:command[- ]line )?option|unknown (?:argument|option)\b")
COMPILE_ERROR = re.compile(r"(?:^|: )(?:fatal )?error: ")
BUILD_FAILED = re.compile(
    r"ERROR: An error occurred while performing the step: \"(?:Building kernel modules|Checking to see whether the nvidia kernel module was successfully built)\""
    r"|ERROR: The nvidia kernel module was not created"
    r"|Error! Bad return status for module build"
    r"|ERROR: Failed to run `/usr/sbin/dkms build"
    r"|make(?:\[\d+\])?: \*\*\* \[[^\]]*\] Error \d"
    r"|^# exit code: [1-9]\d*\s*$"  # DKMS 3's make.log footer
    r"|Building rpms failed|Bad exit status from \S+ \(%build\)"  # akmods / rpmbuild
)
# A missing build tool or build dependency: rpm names the package, a shell names the command.
DEPS = re.compile(
    r"(?<!\S)(\S{1,200}) is needed by "
    r"|(?:^|[\s:])(g\+\+|c\+\+|gcc|cc|make|ld|pahole): (?:command )?not found"
    r"|Unable to find the development tool [`'\"]?([\w+.-]{1,80})[`'\"]? in your path"
)
# rpmbuild's summary lines say that %build failed, never why: not compiler errors.
RPM_SUMMARY = re.compile(r"error: Bad exit status from|RPM build errors|error: Failed build dependencies")
# Incomplete or missing kernel headers: the build cannot start at all.
HEADERS_BROKEN = re.compile(
    r"Kernel configuration is invalid|include/generated/autoconf\.h: No such file|Unable to find the kernel source tree"
    r"|/build: No such file or directory|kernel headers for kernel \S{1,200} cannot be found"
)
LOAD_FAILED = re.compile(r"ERROR: Unable to load the kernel module '(\S+)'")
LOAD_REASON = re.compile(r"Kernel module load error: (.+)")
INSTALL_OK = re.compile(
    r"Installation of the (?:kernel module for the )?NVIDIA Accelerated Graphics Driver.*is now complete"
)
INSTALLER_VERSION = re.compile(r"installer version:\s*([\d.]+)")
BUILT_BY = re.compile(r"The kernel was built by:\s*(.+)$")
USING = re.compile(r"You are using:\s*(.+)$")
# NVIDIA's own check prints the kernel's compiler after "compile the kernel:" on its own line.
CC_KERNEL_BLOCK = re.compile(r"compile the kernel:[ \t]*\n(?:[ \t]*\n)?[ \t]*(\S.*)")
CC_HERE_BLOCK = re.compile(r"does not match the compiler used here:[ \t]*\n(?:[ \t]*\n)?[ \t]*(\S.*)")
# The older check (340.xx and before), wrapped over lines: "The compiler used to compile the kernel (gcc
# 4.9) does not exactly match the current compiler (gcc 6.2)."
CC_OLD_CHECK = re.compile(
    r"compiler used to compile the kernel \(gcc[ \t\n]+(\d+(?:\.\d+){0,2})\)[ \t\n]+does not exactly match[ \t\n]+the"
    r"[ \t\n]+current[ \t\n]+compiler[ \t\n]+\(gcc[ \t\n]+(\d+(?:\.\d+){0,2})\)"
)
# A version number; the look-behind keeps a search linear on long digit runs (see test_driver_regex).
VERSION = re.compile(r"(?<![\d.])\d+\.\d+(?:\.\d+)?")
GCC_MAJOR = re.compile(r"gcc-(\d+)")
MAX_LINE = 4096  # longer lines are cut before any pattern sees them


def compiler_version(text: str | None) -> str | None:
    """``gcc (Ubuntu 11.2.0-19ubuntu1) 11.2.0, GNU ld ...`` -> ``11.2.0``;
    ``x86_64-linux-gnu-gcc-12 (Ubuntu 12.3.0-1ubuntu1~22.04) 12.3.0`` -> ``12.3.0``."""
    if not text:
        return None
    head = text[:MAX_LINE].split(", GNU ld")[0].strip()
    found = VERSION.findall(head)
    if found:
        return found[-1]
    m = GCC_MAJOR.search(head)
    return m.group(1) if m else None


def major(version: str | None) -> str | None:
    return version.split(".")[0] if version else None


@dataclass
class BuildLog:
    """What one build or install log says."""

    path: str
    kind: (
        str | None
    )  # preempt_rt | gpl_only | headers | deps | cc_check | cc_flags | compile | load | unknown | None (no failure)
    lines: list[str] = field(default_factory=list)  # the lines that prove it, verbatim
    kernel_cc: str | None = None  # the kernel's compiler version
    used_cc: str | None = None
    symbols: list[str] = field(default_factory=list)
    load_reason: str | None = None
    installer_version: str | None = None
    succeeded: bool = False
    missing: list[str] = field(default_factory=list)  # deps: the packages or commands the build needs

    @property
    def failed(self) -> bool:
        return self.kind is not None and self.kind != "load"

    @property
    def same_cc_major(self) -> bool:
        a, b = major(self.kernel_cc), major(self.used_cc)
        return bool(a and b and a == b)

    @property
    def cc_differs(self) -> bool:
        return bool(self.kernel_cc and self.used_cc and self.kernel_cc != self.used_cc)


def classify(text: str, path: str) -> BuildLog:
    """Read a make.log or nvidia-installer.log; the most specific failure class wins."""
    lines = [ln[:MAX_LINE].rstrip() for ln in text.splitlines()]
    log = BuildLog(path, None)
    m = INSTALLER_VERSION.search(text)
    log.installer_version = m.group(1) if m else None
    for ln in lines:
        m = BUILT_BY.search(ln)
        if m:
            log.kernel_cc = compiler_version(m.group(1))
        m = USING.search(ln)
        if m:
            log.used_cc = compiler_version(m.group(1))
    if not log.kernel_cc:
        m = CC_KERNEL_BLOCK.search(text)
        log.kernel_cc = compiler_version(m.group(1)) if m else None
    if not log.used_cc:
        m = CC_HERE_BLOCK.search(text)
        log.used_cc = compiler_version(m.group(1)) if m else None
    if not (log.kernel_cc and log.used_cc):
        m = CC_OLD_CHECK.search(text[: MAX_LINE * 64])
        if m:
            log.kernel_cc, log.used_cc = log.kernel_cc or m.group(1), log.used_cc or m.group(2)

    gpl = [ln for ln in lines if GPL_ONLY.search(ln)]
    cc = [ln for ln in lines if CC_FAILED.search(ln)]
    flags = [ln for ln in lines if CC_FLAGS.search(ln) and COMPILE_ERROR.search(ln)]
    compile_errors = [
        ln
        for ln in lines
        if COMPILE_ERROR.search(ln)
        and "warning:" not in ln.split("error:")[0]
        and ln not in flags
        and not RPM_SUMMARY.search(ln)
    ]
    deps = [ln for ln in lines if DEPS.search(ln)]
    modpost = [ln for ln in lines if MODPOST_ERROR.search(ln) and ln not in gpl]
    failed = [ln for ln in lines if BUILD_FAILED.search(ln)]
    load = [ln for ln in lines if LOAD_FAILED.search(ln)]
    headers = [ln for ln in lines if HEADERS_BROKEN.search(ln)]
    rt = [ln for ln in lines if PREEMPT_RT.search(ln)]
    log.succeeded = any(INSTALL_OK.search(ln) for ln in lines)
    if rt:
        log.kind, log.lines = "preempt_rt", rt[:2]
    elif gpl:
        log.kind, log.lines = "gpl_only", gpl[:4]
        log.symbols = sorted({GPL_ONLY.search(ln).group(2) for ln in gpl})  # type: ignore[union-attr]
    elif headers:
        log.kind, log.lines = "headers", headers[:2]
    elif deps:
        log.kind, log.lines = "deps", deps[:3]
        log.missing = sorted({next(g for g in DEPS.search(ln).groups() if g) for ln in deps})  # type: ignore[union-attr]
    elif cc:
        log.kind = "cc_check"
        log.lines = [ln for ln in lines if BUILT_BY.search(ln) or USING.search(ln)][:2] + cc[-1:]
    elif flags:
        log.kind, log.lines = (
            "cc_flags",
            [ln for ln in lines if BUILT_BY.search(ln) or USING.search(ln)][:2] + flags[:3],
        )
    elif compile_errors or modpost:
        log.kind, log.lines = "compile", (compile_errors + modpost)[:4]
    elif load:
        log.kind = "load"
        reasons = [LOAD_REASON.search(ln).group(1).strip() for ln in lines if LOAD_REASON.search(ln)]  # type: ignore[union-attr]
        log.load_reason = reasons[-1] if reasons else None
        log.lines = load[-1:] + [ln for ln in lines if LOAD_REASON.search(ln)][-1:]
    elif failed:
        log.kind, log.lines = "unknown", failed[-3:]
    return log
