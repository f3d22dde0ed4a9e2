"""Fix plans: the commands that fit the install method found. Pure (building plans only);
running them is ``apply.py``. Every step is idempotent and none reboots by itself."""

from __future__ import annotations

import re
from importlib import resources

from mlops_cli.driver.facts import LOCAL_SIGNER, Facts
from mlops_cli.driver.model import FixPlan, FixStep

MOK = "/var/lib/shim-signed/mok/MOK.der"
APT = ("apt-get", "install", "-y")


def data_file(name: str) -> str:
    return str(resources.files("mlops_cli.driver").joinpath("data", name))


def _headers_steps(f: Facts, kernel: str) -> list[FixStep]:
    steps = [FixStep((*APT, f"linux-headers-{kernel}"), f"headers for {kernel}, so DKMS can build the module")]
    meta = header_meta(f)
    if meta:
        steps.append(
            FixStep(
                (*APT, meta),
                "the headers metapackage that matches the installed kernel metapackage, so the next kernel gets headers too",
            )
        )
    return steps


def header_meta(f: Facts) -> str | None:
    """linux-image-generic-hwe-22.04 -> linux-headers-generic-hwe-22.04, linux-image-aws -> linux-headers-aws."""
    flavours = [
        p.name[len("linux-image-") :]
        for p in f.packages
        # a metapackage names a flavour, never a kernel version (linux-image-unsigned-6.8.0-45-generic is not one)
        if p.installed and p.name.startswith("linux-image-") and not re.search(r"\d+\.\d+\.\d+-\d+", p.name)
    ]
    # linux-image-extra-virtual (old Docker and CUDA set-up guides install it) has no
    # linux-headers-extra-virtual: its headers are linux-headers-virtual. The main flavour first.
    flavours.sort(key=lambda fl: fl.startswith("extra-"))
    for flavour in flavours:
        meta = "linux-headers-" + (flavour[len("extra-") :] if flavour.startswith("extra-") else flavour)
        if not f.installed(meta):
            return meta
    return None


def _load_steps(f: Facts, kernel: str) -> list[FixStep]:
    if kernel != f.running_kernel:
        return [
            FixStep(
                ("modinfo", "-k", kernel, "-F", "version", "nvidia"),
                f"check that a module for {kernel} is now in place",
            )
        ]
    return [FixStep(("modprobe", "nvidia"), "load the module into the running kernel (no reboot needed)")]


def _dkms_build(f: Facts, kernel: str, after_headers: bool = False) -> FixStep:
    if after_headers:
        # Installing linux-headers-K runs DKMS's header_postinst.d hook, which builds and installs
        # the module itself; 'dkms install' would then die with exit 5 ("This module/version
        # combo is already installed") and stop --fix before modprobe. autoinstall skips what
        # is installed and builds what is not: the same result either way.
        return FixStep(
            ("dkms", "autoinstall", "-k", kernel),
            f"build and install the DKMS module for {kernel} if installing the headers did not already",
        )
    ref = dkms_ref(f)
    if ref:
        return FixStep(("dkms", "install", ref, "-k", kernel), f"build and install {ref} for {kernel}")
    return FixStep(("dkms", "autoinstall", "-k", kernel), f"build every registered DKMS module for {kernel}")


def dkms_version(f: Facts) -> str | None:
    versions = sorted({e.version for e in f.dkms})
    if len(versions) == 1:
        return versions[0]
    user = f.userspace_version
    return next((v for v in versions if user and v == user), None)


def dkms_ref(f: Facts) -> str | None:
    """``nvidia/535.86.05`` or, on Debian, ``nvidia-current/535.161.08``."""
    ver = dkms_version(f)
    if not ver:
        return None
    module = next((e.module for e in f.dkms if e.version == ver), "nvidia")
    return f"{module}/{ver}"


def headers_missing(f: Facts, kernel: str) -> FixPlan:
    steps = _headers_steps(f, kernel)
    if f.runfile and not f.dkms_registered:
        return FixPlan(
            f"install the headers for {kernel}, then rebuild the .run driver",
            tuple(steps),
            runfile_rebuild_text(f, kernel),
        )
    steps += [_dkms_build(f, kernel, after_headers=True), *_load_steps(f, kernel)]
    return FixPlan(f"install linux-headers-{kernel} and build the DKMS module for it", tuple(steps))


def headers_reinstall(f: Facts, kernel: str) -> FixPlan:
    """The headers exist but are broken (a build found no autoconf.h): reinstall them, then build."""
    steps = [FixStep((*APT, "--reinstall", f"linux-headers-{kernel}"), f"complete headers for {kernel}")]
    if f.dkms_registered:
        steps += [_dkms_build(f, kernel, after_headers=True), *_load_steps(f, kernel)]
        return FixPlan(f"reinstall linux-headers-{kernel} and rebuild the module", tuple(steps))
    return FixPlan(
        f"reinstall linux-headers-{kernel}, then re-run the installer",
        tuple(steps),
        runfile_rebuild_text(f, kernel) if f.runfile else "Then install the driver again.",
    )


def dkms_not_built(f: Facts, kernel: str) -> FixPlan:
    st = f.modules.get(kernel)
    steps = _headers_steps(f, kernel) if st and st.headers_installed is False else []
    steps += [_dkms_build(f, kernel, after_headers=bool(steps)), *_load_steps(f, kernel)]
    return FixPlan(
        f"build the DKMS module for {kernel}",
        tuple(steps),
        None
        if not f.dkms_errors
        else "dkms status itself reports errors: remove the broken tree with 'dkms remove nvidia/<stale-version> --all' and delete /var/lib/dkms/nvidia/<stale-version>",
    )


def gcc_mismatch(f: Facts, kernel: str, major: str | None) -> FixPlan:
    if not major:
        return FixPlan(
            "install the compiler the kernel was built with, then rebuild",
            (),
            "install the gcc version named in 'The kernel was built by:' (see /proc/version), then: dkms autoinstall -k "
            + kernel,
        )
    steps = [
        FixStep(
            (*APT, f"gcc-{major}", f"g++-{major}"),
            f"the kernel was built with gcc {major}; its Makefile calls gcc-{major} by name (the open modules also need g++)",
        ),
        _dkms_build(f, kernel),
        *_load_steps(f, kernel),
    ]
    return FixPlan(f"install gcc-{major} and rebuild the module for {kernel}", tuple(steps))


def kernel_metapackages(f: Facts) -> list[str]:
    """The installed kernel metapackages (linux-generic, linux-image-aws, linux-xanmod-x64v3,
    linux-image-amd64 ...): what to hold so apt stops moving to a kernel the driver cannot build for."""
    return sorted(
        p.name
        for p in f.packages
        if p.installed and _KERNEL_META.match(p.name) and not re.search(r"\d+\.\d+\.\d+", p.name)
    )[:4]


_KERNEL_META = re.compile(
    r"^linux-(?:image-|headers-)?(?!modules|libc|firmware|tools|base|sound|source|doc|restricted)[a-z][\w.+-]*$"
)


def kernel_too_new(f: Facts, kernel: str, good_kernel: str | None, gpl_only: bool = False) -> FixPlan:
    branch = (f.branch_suffix or "").split("-")[0] or (f.userspace_version or "").split(".")[0] or "<branch>"
    hold = " ".join(kernel_metapackages(f)) or "<the kernel metapackage>"
    manual = (
        (
            f"The kernel made symbols GPL-only that this driver release still uses; NVIDIA fixes that in a newer point "
            f"release of the same branch: update the {branch} driver packages to their newest version (e.g. "
            f"'apt-get install --only-upgrade' on them) or a newer branch, then rebuild for {kernel}. "
            if gpl_only
            else f"The installed driver release does not compile against {kernel}: use the branch's newest point release or a "
            "newer branch ('ubuntu-drivers list --gpgpu' on Ubuntu), then rebuild. "
        )
        + (
            f"Meanwhile boot the last good kernel {good_kernel} (GRUB > Advanced options) and keep it the default "
            "(GRUB_DEFAULT + GRUB_SAVEDEFAULT=false, update-grub), "
            if good_kernel
            else "Meanwhile boot a kernel the driver was built for (GRUB > Advanced options), "
        )
        + f"and hold the kernel metapackages so apt does not move on ('apt-mark hold {hold}'). Re-running the same build changes nothing."
    )
    steps = []
    suffix = f.branch_suffix
    if f.os.get("ID") == "ubuntu" and suffix and CANONICAL_KERNEL.match(kernel) and ubuntu_archive_driver(f):
        steps.append(
            FixStep(
                (*APT, f"linux-modules-nvidia-{suffix}-{kernel}"),
                "Canonical's prebuilt, signed module for this exact kernel: nothing to compile",
            )
        )
        steps += _load_steps(f, kernel)
    return FixPlan(
        "use a driver build that supports this kernel (prebuilt module or newer branch)", tuple(steps), manual
    )


# Canonical builds linux-modules-nvidia-<branch>-<kernel> only for its own kernel flavours, and
# only for the branches in the Ubuntu archive (not the graphics-drivers PPA or the CUDA repository).
CANONICAL_KERNEL = re.compile(
    r"^\d+\.\d+\.\d+-\d+-(generic|generic-64k|lowlatency|aws|azure|gcp|gke|gkeop|oracle|kvm|nvidia|nvidia-64k|nvidia-lowlatency|ibm|oem)$"
)
_ARCHIVE_VERSION = re.compile(r"-0ubuntu0\.\d\d\.\d\d")


def ubuntu_archive_driver(f: Facts) -> bool:
    return any(p.installed and _ARCHIVE_VERSION.search(p.version) for p in f.driver_packages)


_PROC_VERSION_CC = re.compile(r"gcc version (\d+(?:\.\d+){0,2})|gcc[\w.-]* \([^)]*\) (\d+(?:\.\d+){0,2})")


def running_kernel_compiler(f: Facts) -> str | None:
    """The compiler version that built the running kernel, from /proc/version."""
    m = _PROC_VERSION_CC.search((f.collected.text("/proc/version") or "")[:1024])
    return (m.group(1) or m.group(2)) if m else None


def gcc_mismatch_build(f: Facts, kernel: str, build) -> FixPlan:
    """Compiler differs from the kernel's. Same major version (11.2 vs 11.3): the check is
    too strict and IGNORE_CC_MISMATCH=1 is the fix (installing gcc-11 again changes nothing).
    Another major: the kernel's gcc-N, then rebuild."""
    from mlops_cli.driver.buildlogs import major

    ref = dkms_ref(f)
    want = major(build.kernel_cc)
    if f.context.kind == "operator":
        return FixPlan(
            "use a driver image whose compiler matches the kernel's",
            (),
            f"The GPU Operator's driver container compiles with {build.used_cc or 'another gcc'}, the kernel was built with "
            f"{build.kernel_cc or 'another gcc'}. Move the ClusterPolicy's driver.version to a release whose image carries "
            f"gcc-{want or 'N'} (newer driver images do), or use precompiled drivers for this kernel (driver.usePrecompiled=true). "
            "Nothing to install on the host.",
        )
    running_cc = running_kernel_compiler(f)
    if (
        kernel != f.running_kernel
        and running_cc
        and build.kernel_cc
        and (running_cc == build.kernel_cc or running_cc.startswith(build.kernel_cc + "."))
        and not build.same_cc_major
    ):
        # The check named the running kernel's compiler (/proc/version), not the target kernel's: older
        # DKMS/driver releases compare against the kernel that runs. Installing that compiler would build
        # the other kernel's module with the wrong one; whether the target kernel matches is not known here.
        relaxed = f"'env IGNORE_CC_MISMATCH=1 dkms install {ref} -k {kernel}'" if ref else "IGNORE_CC_MISMATCH=1"
        return FixPlan(
            f"build the module for {kernel} after booting it",
            (),
            f"The build for {kernel} compared the compiler with the one that built the running kernel "
            f"{f.running_kernel} (gcc {running_cc} in /proc/version), not with {kernel}'s own. Boot {kernel} and build "
            f"there ('dkms autoinstall'), or build it now with the check relaxed, knowingly ({relaxed}). Do not install "
            f"gcc-{want or 'N'} for it: that is the running kernel's compiler.",
        )
    if build.same_cc_major:
        manual = (
            f"The kernel was built with {build.kernel_cc}, this system compiles with {build.used_cc}: the same major "
            "version, so NVIDIA's exact-version check is the only obstacle. "
        )
        if ref:
            steps = [
                FixStep(
                    ("env", "IGNORE_CC_MISMATCH=1", "dkms", "install", ref, "-k", kernel),
                    "rebuild with NVIDIA's compiler check relaxed (same gcc major version)",
                ),
                *_load_steps(f, kernel),
            ]
            return FixPlan(f"rebuild {ref} for {kernel} with IGNORE_CC_MISMATCH=1", tuple(steps), manual.strip())
        ver = build.installer_version or "<version>"
        return FixPlan(
            "re-run the installer without the exact compiler check",
            (),
            manual
            + f"Re-run the installer with it relaxed: IGNORE_CC_MISMATCH=1 sh NVIDIA-Linux-x86_64-{ver}.run --dkms "
            "(or --no-cc-version-check).",
        )
    if not want:
        return gcc_mismatch(f, kernel, None)
    cc = f"gcc-{want}"
    # The build ran with another compiler ('You are using: cc ... <version>'): installing gcc-N
    # alone changes nothing when the build keeps calling cc, and nothing at all when gcc-N is
    # already there. The rebuild names the kernel's compiler (NVIDIA's Makefile passes CC on).
    want_pkgs = [cc, f"g++-{want}"]
    missing = [p for p in want_pkgs if not f.installed(p)] if f.dpkg_seen else want_pkgs
    steps = []
    if missing:
        steps.append(
            FixStep(
                (*APT, *missing), f"the kernel was built with gcc {build.kernel_cc} (the open modules also need g++)"
            )
        )
    used = f"gcc {build.used_cc}" if build.used_cc else "another compiler"
    if ref:
        steps += [
            FixStep(
                ("env", f"CC={cc}", "dkms", "install", ref, "-k", kernel),
                f"rebuild {ref} with the kernel's compiler {cc} (the failed build used {used})",
            ),
            *_load_steps(f, kernel),
        ]
        return FixPlan(
            f"rebuild the module for {kernel} with {cc}" + (f" (install {cc} first)" if missing else ""),
            tuple(steps),
            f"The default compiler (cc/gcc) is not the kernel's: update-alternatives or the gcc package may have "
            f"moved it. To make later builds pick it by themselves, point gcc back at {cc} "
            f"(update-alternatives --config gcc).",
        )
    return FixPlan(
        f"install {cc}, then re-run the installer" if missing else f"re-run the installer with {cc}",
        tuple(steps),
        f"Re-run the NVIDIA installer with CC={cc}.",
    )


def operator_rebuild(version: str, why: str) -> FixPlan:
    return FixPlan(
        "move the operator's driver to a release that builds against this kernel",
        (),
        f"The GPU Operator's driver container ({version or 'its driver version'}) cannot build for this node's kernel: {why}. "
        "Set driver.version in the ClusterPolicy (or Helm values) to the newest point release of the branch, or use "
        "precompiled drivers for this kernel (driver.usePrecompiled=true); the operator replaces the driver pod. "
        "Check: kubectl -n gpu-operator logs ds/nvidia-driver-daemonset -c nvidia-driver-ctr.",
    )


def build_failed_unexplained(path: str | None) -> FixPlan:
    return FixPlan(
        "read the build log; the cause is in it, not in the evidence seen",
        (),
        f"Read {path or 'the build log'} (as root) from the first 'error' or 'ERROR:' line: 'ERROR: modpost: ... GPL-only symbol' "
        "or errors in the driver's own sources mean the driver release is too old for this kernel (use the branch's newest "
        "point release, or boot the previous kernel); 'Failed CC version check' or 'unrecognized command-line option' mean "
        "a compiler mismatch. Safe to collect for a ticket: 'sudo nvidia-bug-report.sh', 'sudo dkms status', "
        "'sudo mlops driver-check --save-snapshot FILE'. The '(dkms apport) ... is not supported' line is not the cause.",
    )


# The package that provides a missing build command, per distribution family.
_TOOL_PACKAGE = {
    "g++": {"debian": "g++", "rhel": "gcc-c++", "suse": "gcc-c++", "arch": "gcc"},
    "c++": {"debian": "g++", "rhel": "gcc-c++", "suse": "gcc-c++", "arch": "gcc"},
    "gcc": {"debian": "gcc", "rhel": "gcc", "suse": "gcc", "arch": "gcc"},
    "cc": {"debian": "gcc", "rhel": "gcc", "suse": "gcc", "arch": "gcc"},
    "make": {"debian": "make", "rhel": "make", "suse": "make", "arch": "make"},
    "ld": {"debian": "binutils", "rhel": "binutils", "suse": "binutils", "arch": "binutils"},
    "pahole": {"debian": "pahole", "rhel": "dwarves", "suse": "dwarves", "arch": "pahole"},
}


def build_dependency(f: Facts, kernel: str, missing: list[str], akmods: bool) -> FixPlan:
    """Install what the build said it needs (in the family's tool), then the same build again:
    the install is the change that lets it succeed."""
    from mlops_cli.driver import distro

    fam = f.distro if f.distro != "unknown" else "debian"
    tool = "apt-get" if fam == "debian" else distro.package_tool(fam, f.os)
    pkgs = []
    for name in missing:
        by_family = _TOOL_PACKAGE.get(name)
        pkg = by_family.get(fam) if by_family else (name if re.match(r"^[\w+.-]{1,80}$", name) else None)
        if pkg:
            pkgs.append(pkg)
    what = ", ".join(missing) or "a build tool"
    if not tool or not pkgs:
        return manual(
            f"install the build dependency ({what}), then rebuild the module",
            f"The module build stopped because {what} is not installed. Install it with this system's package manager, "
            "then rebuild the module (akmods --force, or dkms install) and load it.",
        )
    install = (
        ("pacman", "-S", "--needed", "--noconfirm", *pkgs)
        if tool == "pacman"
        else (("zypper", "--non-interactive", "install", *pkgs) if tool == "zypper" else (tool, "install", "-y", *pkgs))
    )
    steps = [FixStep(install, f"the build needs {what}")]
    if akmods:
        steps.append(
            FixStep(("akmods", "--force", "--kernels", kernel), f"build the kmod for {kernel} again, now with {what}")
        )
    elif f.dkms:
        steps.append(_dkms_build(f, kernel))
    else:
        return FixPlan(
            f"install {what}, then rebuild the module",
            tuple(steps),
            "Then rebuild the module the way it was installed.",
        )
    steps.append(FixStep(("modprobe", "nvidia"), "load the new module"))
    return FixPlan(f"install {what}, then build the module again", tuple(steps))


def rpm_kmod_missing(f: Facts, kernel: str, good_kernel: str | None) -> FixPlan:
    """A precompiled kmod exists only for the kernels it was built for; nothing to build here."""
    boot = (
        f"boot {good_kernel}, which has the module ('grubby --set-default /boot/vmlinuz-{good_kernel}', then reboot), "
        if good_kernel
        else ""
    )
    return manual(
        "install the precompiled kmod for this kernel, or boot a kernel that has one",
        f"Precompiled kmod packages are built for one kernel each and none is installed for {kernel}. If the repository "
        f"already has the kmod for {kernel}, install it with dnf (it is pulled by the driver's module stream); if not, "
        f"{boot}and hold kernel updates (dnf versionlock) until the kmod for the new kernel is published. A DKMS build "
        "would not be signed with the distribution's key (Secure Boot).",
    )


def runfile_rebuild_text(f: Facts, kernel: str) -> str:
    ver = f.installer_version or "<version>"
    return (
        f"Re-run the NVIDIA installer for {kernel} and register it with DKMS so the next kernel is rebuilt "
        f"automatically: sh NVIDIA-Linux-x86_64-{ver}.run --dkms (the .run file is not on this machine). "
        "Preferred on Ubuntu: /usr/bin/nvidia-uninstall, then 'ubuntu-drivers install --gpgpu' (signed prebuilt modules), then reboot. "
        "To get the box back at once, boot the previous kernel from GRUB > Advanced options."
    )


def runfile_missing(f: Facts, kernel: str) -> FixPlan:
    steps = [
        FixStep(
            (*APT, f"linux-headers-{kernel}", "build-essential", "dkms"),
            "what the .run installer needs to build a module for this kernel",
        )
    ]
    return FixPlan(
        "rebuild the .run driver for this kernel (and let DKMS do it from now on)",
        tuple(steps),
        runfile_rebuild_text(f, kernel),
    )


def prebuilt_missing(f: Facts, kernel: str) -> FixPlan:
    suffix = f.branch_suffix or "<branch>"
    steps = [
        FixStep((*APT, f"linux-modules-nvidia-{suffix}-{kernel}"), f"the prebuilt signed module for {kernel}"),
        *_load_steps(f, kernel),
    ]
    return FixPlan(f"install the prebuilt nvidia module package for {kernel}", tuple(steps))


def load_module() -> FixPlan:
    return FixPlan(
        "load the module (if it fails, its message names the cause)",
        (FixStep(("modprobe", "nvidia"), "load the installed module into the running kernel"),),
    )


def debian_packaging(f: Facts) -> bool:
    """Debian's packaging (nvidia-driver, nvidia-kernel-dkms, nvidia-smi, firmware-nvidia-gsp),
    not Ubuntu's nvidia-driver-<branch>: the package names of a fix differ."""
    if f.os.get("ID") == "ubuntu" or "ubuntu" in f.os.get("ID_LIKE", "").split():
        return False
    names = {p.name for p in f.packages if p.installed}
    return bool(
        names & {"nvidia-driver", "nvidia-kernel-dkms", "nvidia-kernel-support", "nvidia-smi", "libnvidia-ml1"}
    ) or (f.os.get("ID") == "debian" or "debian" in f.os.get("ID_LIKE", "").split())


def mok_key(f: Facts) -> str:
    """The signing certificate DKMS used: the one mokutil was asked about, Ubuntu's shim-signed
    key on Ubuntu, dkms' own (>= 3.0) elsewhere."""
    for ln in f.mok_test_lines:
        if "not enrolled" in ln:
            return ln.split()[0]
    if f.os.get("ID") == "ubuntu" or "ubuntu" in f.os.get("ID_LIKE", "").split():
        return MOK
    if uses_akmods(f):
        return AKMODS_KEY
    return "/var/lib/dkms/mok.pub"


# akmods (Fedora / RPM Fusion, negativo17) signs with its own key, made by kmodgenca.
AKMODS_KEY = "/etc/pki/akmods/certs/public_key.der"


def uses_akmods(f: Facts) -> bool:
    names = {n for n, _ in f.rpm_packages} | {p.name for p in f.packages if p.installed}
    return bool(names & {"akmods", "akmod-nvidia"}) or f.collected.listing("/var/cache/akmods/nvidia") is not None


def secure_boot(f: Facts) -> FixPlan:
    key = mok_key(f)
    if f.context.kind == "operator":
        return FixPlan(
            "give the driver container a module Secure Boot accepts (signed precompiled drivers or an enrolled key)",
            (),
            "The GPU Operator's driver container builds an unsigned module and Secure Boot refuses it. Use precompiled, "
            "signed driver images for this kernel (ClusterPolicy driver.usePrecompiled=true where they exist), or build the "
            "driver image with a signing key whose certificate is enrolled as a MOK on the node, or turn Secure Boot off "
            "in the node's firmware. Nothing to install on the host.",
        )
    signer = f.modinfo.get("signer") or ""
    if signer and not LOCAL_SIGNER.search(signer) and not f.dkms_registered and not uses_akmods(f):
        # A vendor-signed module (NVIDIA's precompiled kmods): no key on this machine signed it.
        return FixPlan(
            "make the firmware trust the module's signer (needs a person at the console) or use modules it trusts",
            (),
            f"The module is signed by '{signer}', a vendor's key, not one made on this machine, and the firmware does "
            "not trust it: enrol that vendor's public signing certificate as a MOK ('mokutil --import <its .der "
            "certificate>', then 'Enroll MOK' in MokManager at the console or BMC), or use modules signed by a key the "
            "firmware already trusts (the distribution's own signed NVIDIA modules where they exist, e.g. Red Hat's "
            "on RHEL 10.1+), or turn Secure Boot off. Reinstalling or rebuilding the same package changes nothing.",
        )
    rebuild = "akmods --force" if uses_akmods(f) else "dkms autoinstall --force"
    enrol = (
        f"enrol the signing key: mokutil --import {key} (choose a one-time password), reboot, and complete 'Enroll MOK' "
        f"in the blue MokManager screen at the console or BMC; afterwards '{rebuild}' if the module was "
        "built before the key existed"
    )
    if debian_packaging(f) or not (f.os.get("ID") == "ubuntu" or "ubuntu" in f.os.get("ID_LIKE", "").split()):
        text = f"Either {enrol}; or turn Secure Boot off in the firmware. Rebuilding or reinstalling the driver changes nothing."
    else:
        text = (
            "Either switch to Canonical-signed prebuilt modules (no key to enrol): apt purge 'nvidia-dkms-*' then "
            f"'ubuntu-drivers install --gpgpu', then reboot; or keep DKMS and {enrol}."
        )
    if f.context.kind == "vm":
        text += (
            " A cloud VM often has no console for MokManager (Azure Trusted Launch, GCP Shielded VM, AWS UEFI Secure "
            "Boot): there, use the distribution's signed prebuilt modules or turn Secure Boot off in the VM's security "
            "settings."
        )
    return FixPlan(
        "make the module trusted by Secure Boot (needs a person at the console) or use signed modules", (), text
    )


def mismatch_reload(f: Facts) -> FixPlan:
    return FixPlan(
        "load the new module: reload it now if nothing uses the GPU, else reboot",
        (
            FixStep(
                ("modprobe", "-r", "nvidia_uvm", "nvidia_drm", "nvidia_modeset", "nvidia"),
                "unload the old module (fails harmlessly if a process still uses the GPU)",
            ),
            FixStep(("modprobe", "nvidia"), "load the module that matches the installed userspace"),
        ),
        "If the unload fails because the module is in use (persistenced, fabric manager, Xorg, a CUDA job), reboot: that is the official fix. "
        "To stop it recurring, hold the driver packages (apt-mark hold 'nvidia-*' 'libnvidia-*') or blacklist them in unattended-upgrades.",
    )


def stale_module(f: Facts, stale_dkms: list[str]) -> FixPlan:
    steps: list[FixStep] = []
    if f.half_configured:
        steps.append(
            FixStep(
                ("apt-get", "install", "-f", "-y"),
                "finish the half-configured driver packages first (their postinst builds and installs the new module)",
            )
        )
    if f.runfile_evidence and f.dkms_packages:
        steps.append(
            FixStep(
                ("/usr/bin/nvidia-uninstall", "--silent"),
                "remove the leftover .run driver whose module shadows the packaged one",
            )
        )
    for ver in stale_dkms:
        module = next((e.module for e in f.dkms if e.version == ver), "nvidia")
        steps.append(
            FixStep(("dkms", "remove", f"{module}/{ver}", "--all"), f"remove the stale DKMS module {module}/{ver}")
        )
    steps += [
        FixStep(("depmod", "-a"), "re-index modules so the right nvidia.ko is found"),
        FixStep(
            ("update-initramfs", "-u", "-k", "all"),
            "drop old copies of nvidia.ko from the initramfs",
            reboot_after=True,
        ),
    ]
    return FixPlan(
        "rebuild the initramfs without the stale nvidia.ko (after finishing any half-configured package), then reboot once",
        tuple(steps),
        "Check with 'modinfo -n nvidia' which file loads and 'find /lib/modules/$(uname -r) -name \"nvidia*.ko*\"' for duplicates.",
    )


def nouveau() -> FixPlan:
    return FixPlan(
        "blacklist nouveau, rebuild the initramfs, reboot",
        (
            FixStep(
                (
                    "install",
                    "-D",
                    "-m",
                    "0644",
                    data_file("blacklist-nouveau.conf"),
                    "/etc/modprobe.d/blacklist-nouveau.conf",
                ),
                "blacklist nouveau (blacklist nouveau / options nouveau modeset=0)",
            ),
            FixStep(
                ("update-initramfs", "-u"), "so nouveau is not loaded from the initramfs either", reboot_after=True
            ),
        ),
        # The install step names this mlops's own copy of the file; whoever runs the commands by
        # hand on another machine (a snapshot reviewed elsewhere) needs its two lines.
        "The file /etc/modprobe.d/blacklist-nouveau.conf holds two lines: 'blacklist nouveau' and "
        "'options nouveau modeset=0'; then run 'update-initramfs -u' and reboot.",
    )


def packages_removed(f: Facts) -> FixPlan:
    if debian_packaging(f):
        # Debian splits nvidia-smi and the libraries out of nvidia-driver; reinstall from the
        # suite the driver came from (a -backports driver needs -t <suite>-backports).
        names = ["nvidia-driver", "nvidia-smi"] if not f.installed("nvidia-driver") else ["nvidia-smi"]
        version = next(
            (
                p.version
                for p in f.packages
                if p.installed and p.name in ("nvidia-driver", "nvidia-kernel-dkms", "libcuda1", "libnvidia-ml1")
            ),
            None,
        )
        pin = [f"{n}={version}" for n in names] if version else names
        return FixPlan(
            f"reinstall {' and '.join(names)} at the installed driver's version",
            (
                FixStep(
                    (*APT, *pin),
                    "Debian ships nvidia-smi and the driver in separate packages; same version as the rest",
                ),
            ),
            "If apt cannot find that version, add the suite the driver came from (for a backports driver: "
            "apt-get install -t <codename>-backports nvidia-smi).",
        )
    suffix = f.branch_suffix
    if not suffix:
        return FixPlan(
            "reinstall the driver packages",
            (),
            "reinstall the driver: ubuntu-drivers install --gpgpu, plus nvidia-utils-<branch>-server",
        )
    meta = f"nvidia-driver-{suffix}"
    if f.install_method == "apt-prebuilt" and not f.installed(meta):
        meta = f"nvidia-headless-no-dkms-{suffix}"
    # Userspace has no open flavour: nvidia-driver-580-open goes with nvidia-utils-580
    # (research §12: nvidia-headless-595-open and nvidia-utils-595).
    utils = "nvidia-utils-" + suffix.replace("-open", "")
    steps = (
        FixStep((*APT, meta, utils), "reinstall the driver metapackage and nvidia-smi"),
        FixStep(("apt-mark", "manual", meta), "so apt autoremove never takes it again"),
    )
    return FixPlan(f"reinstall {meta} and {utils}, and mark them manual", steps)


def driver_not_installed() -> FixPlan:
    return FixPlan(
        "install a driver (Canonical-signed prebuilt modules)",
        (
            FixStep(
                ("ubuntu-drivers", "install", "--gpgpu"),
                "installs the recommended server driver with signed prebuilt modules",
                reboot_after=True,
            ),
        ),
        "On the --gpgpu path also install nvidia-utils-<branch>-server for nvidia-smi.",
    )


def multiple_branches(
    remove: list[str], half_configured: bool = False, contested: tuple[str, str] | None = None
) -> FixPlan:
    if contested:
        loaded, wanted = contested
        return FixPlan(
            "keep one driver branch (chosen by hand)",
            (),
            f"The loaded module is branch {loaded}, the userspace asks for branch {wanted}: both branches are installed and "
            "the evidence does not say which one is meant to stay. Usually the branch the packages were last upgraded to is "
            f"the one to keep: purge the other by hand (apt --purge remove '*nvidia*{loaded}*' when {wanted} is meant), "
            "check that the kept branch's module is built ('dkms status'), then reboot.",
        )
    if not remove:
        return FixPlan(
            "remove all but one driver branch",
            (),
            "purge the older branch: apt --purge remove '*nvidia*<OLD_BRANCH>*', then reboot",
        )
    steps = [FixStep(("apt-get", "purge", "-y", *remove), "remove the branch that is not in use", reboot_after=True)]
    if half_configured:
        steps.append(
            FixStep(
                ("dpkg", "--configure", "-a"),
                "finish what the failing build of the removed branch left half-configured",
            )
        )
    return FixPlan("purge the other branch, keep one", tuple(steps))


def runfile_under_apt() -> FixPlan:
    return FixPlan(
        "keep one install method: the apt packages",
        (),
        "A .run install (/usr/bin/nvidia-uninstall) was made before the apt driver packages and its files can shadow "
        "theirs. Once the apt driver builds and loads, run 'sudo nvidia-uninstall' and then reinstall the apt driver "
        "packages ('apt-get install --reinstall' on them), so that only apt owns the driver's files.",
    )


def flavour(f: Facts, want_open: bool) -> FixPlan:
    suffix = (f.branch_suffix or "<branch>").replace("-open", "")
    target = suffix + ("-open" if want_open else "")
    if f.install_method == "runfile":
        return FixPlan(
            "reinstall with the other kernel module flavour",
            (),
            f"re-run the .run installer with -m={'kernel-open' if want_open else 'kernel'}",
        )
    if f.install_method != "apt-prebuilt":
        pkg = f"nvidia-driver-{target}"
        return FixPlan(
            f"switch to the {'open' if want_open else 'proprietary'} kernel modules ({pkg})",
            (FixStep((*APT, pkg), "apt replaces the conflicting flavour", reboot_after=True),),
        )
    # Canonical's prebuilt modules: the module for this kernel, the flavour's metapackage for the kernel
    # flavour (linux-modules-nvidia-580-aws -> -580-open-aws, so the next kernel gets the same flavour) and
    # the matching userspace metapackage (nvidia-driver-580 -> nvidia-driver-580-open), in one transaction.
    current = suffix + ("" if want_open else "-open")
    pkgs = [f"linux-modules-nvidia-{target}-{f.running_kernel}"]
    prefix = f"linux-modules-nvidia-{current}-"
    for p in f.packages:
        rest = p.name[len(prefix) :] if p.installed and p.name.startswith(prefix) else ""
        if rest and not rest[0].isdigit():
            pkgs.append(f"linux-modules-nvidia-{target}-{rest}")
    if f.installed(f"nvidia-driver-{current}") is not None:
        pkgs.append(f"nvidia-driver-{target}")
    return FixPlan(
        f"switch to the {'open' if want_open else 'proprietary'} kernel modules ({', '.join(pkgs)})",
        (FixStep((*APT, *pkgs), "apt replaces the conflicting flavour", reboot_after=True),),
    )


def unsupported_gpu(f: Facts, pci_id: str | None, legacy_branch: str | None = None) -> FixPlan:
    """The branch does not drive this GPU: too new a GPU for it, or (``legacy_branch``, from the
    driver's own 'supported through the NVIDIA 580.xx Legacy drivers') a GPU the branch dropped.
    The way to the right branch depends on the distribution and on whether this is a vGPU host."""
    gpu = f"PCI ID {pci_id}" if pci_id else "see lspci -nn"
    if legacy_branch:
        what = (
            f"This GPU was dropped by the installed branch; its last branch is {legacy_branch} (the driver names it). "
            f"Install the {legacy_branch} branch instead (not another build of the newer one) and hold it so upgrades "
            "stay on it: "
        )
    else:
        what = f"The installed branch does not support this GPU ({gpu}): install a branch that does: "
    ids = {f.os.get("ID", ""), *f.os.get("ID_LIKE", "").split()}
    br = legacy_branch or "<branch>"
    if any(
        "vgpu" in ln.lower() for ln in (f.collected.text("/var/log/nvidia-installer.log") or "").splitlines()[:12]
    ) or any("nvidia_vgpu_vfio" in ln for d in f.pci_gpus for ln in d.lines):
        how = (
            "on a vGPU host that means the NVIDIA vGPU software release (host 'vgpu-kvm' driver) whose supported-GPU list "
            "names this board, with the guests' drivers from the same release."
        )
    elif "nixos" in ids:
        how = f"on NixOS set hardware.nvidia.package to the matching legacy package (e.g. nvidiaPackages.legacy_{br})."
    elif "ubuntu" in ids and (trap := _transitional_legacy_package(f, legacy_branch)):
        how = (
            f"here '{trap.name}' is installed at {trap.version}: a transitional package that pulls a newer branch in, so "
            f"installing it again brings back the driver that ignores this GPU. Use the {br} branch's '-server' packages "
            f"(nvidia-driver-{br}-server) if the archive still has them, or a repository that still ships the real {br} "
            "branch, purge the newer branch, and 'apt-mark hold' the driver packages; reboot."
        )
    elif "ubuntu" in ids:
        how = (
            f"'ubuntu-drivers list --gpgpu' shows the branches for it; e.g. 'apt-get install nvidia-driver-{br}' "
            f"(or -server), then 'apt-mark hold' the driver packages; reboot."
        )
    elif "debian" in ids:
        how = (
            f"install the {br} driver packages (Debian's archive, or the CUDA repository's cuda-drivers-{br} / its "
            "pinning package), purge the other branch, and hold it; reboot."
        )
    else:
        how = f"install the {br} driver from your distribution, or NVIDIA's .run of that branch."
    return FixPlan("install a driver branch that supports this GPU", (), what + how)


def _transitional_legacy_package(f: Facts, branch: str | None):
    """The installed ``nvidia-driver-<branch>`` when its version is another branch's: Ubuntu turns an
    end-of-life branch's package into a transitional one that depends on a newer branch."""
    if not branch:
        return None
    for p in f.packages:
        if p.installed and p.name == f"nvidia-driver-{branch}" and not p.version.startswith(f"{branch}."):
            return p
    return None


def gsp_firmware(f: Facts, version: str | None) -> FixPlan:
    want = f"/lib/firmware/nvidia/{version or '<module version>'}/"
    if f.context.kind == "operator":
        return FixPlan(
            "use a driver (or vGPU manager) image that carries the GSP firmware of its version",
            (),
            f"The module the operator's container loaded asks for {want}gsp_*.bin, which the image does not provide. "
            "Move the ClusterPolicy's driver (vgpuManager) version/image to one whose firmware matches, and read the pod's "
            "log. Nothing to install on the host.",
        )
    if debian_packaging(f):
        # Debian ships the GSP firmware in its own package, only recommended by the driver.
        fw = "firmware-nvidia-gsp" + (
            f"={next(p.version for p in f.packages if p.installed and p.name == 'nvidia-kernel-dkms')}"
            if f.installed("nvidia-kernel-dkms")
            else ""
        )
        return FixPlan(
            "install firmware-nvidia-gsp (the GSP firmware of the driver's version), then refresh the initramfs",
            (
                FixStep(
                    (*APT, fw),
                    "Debian packages the GSP firmware separately (a Recommends, skipped by --no-install-recommends)",
                ),
                FixStep(("update-initramfs", "-u"), "refresh the firmware copy in the initramfs", reboot_after=True),
            ),
            f"afterwards {want} must exist",
        )
    suffix = f.branch_suffix
    fw = next((p.name for p in f.packages if p.name.startswith("nvidia-firmware-")), None)
    pkgs = [p for p in (f"nvidia-driver-{suffix}" if suffix else None, fw) if p]
    steps = []
    if pkgs:
        steps.append(
            FixStep(
                ("apt-get", "install", "-y", "--reinstall", *pkgs),
                "put module, firmware and userspace back at one version",
            )
        )
    steps.append(FixStep(("update-initramfs", "-u"), "refresh the firmware copy in the initramfs", reboot_after=True))
    return FixPlan(
        "reinstall the firmware that matches the module version",
        tuple(steps),
        f"afterwards {want} must exist",
    )


def unexplained(nvml_with_module_loaded: bool = False) -> FixPlan:
    """Nothing seen names the cause: safe, read-only diagnostics, and nothing is changed. With the
    module loaded and NVML failing on its own, the library nvidia-smi loads is the first suspect."""
    nvml = (
        "The module is loaded and NVML fails on its own: first check which libnvidia-ml.so.1 nvidia-smi loads and "
        "whether it is the module's version ('ldconfig -p | grep libnvidia-ml', 'ls -l' of each path it lists, "
        "'cat /proc/driver/nvidia/version'); a stale copy or symlink left by an older install (e.g. in /usr/lib64/nvidia "
        "or /usr/local/lib) is the usual cause. "
        if nvml_with_module_loaded
        else ""
    )
    return FixPlan(
        "collect the kernel's own words before changing anything",
        (),
        nvml
        + "Nothing seen names the cause, so nothing is changed. Collect (read-only, as root): 'sudo dmesg | grep -iE \"nvrm|nvidia|xid\"', "
        "'sudo modprobe -v nvidia' (its error), 'modinfo nvidia', 'dkms status', 'cat /proc/driver/nvidia/version', "
        "'sudo nvidia-bug-report.sh' (writes nvidia-bug-report.log.gz), and 'sudo mlops driver-check --save-snapshot FILE'; "
        "attach them to the ticket.",
    )


def unexplained_init_failure(f: Facts) -> FixPlan:
    """The module loaded and the kernel log says the GPU did not initialise (RmInitAdapter failed), with
    no cause a rule knows (no Xid 79, no firmware file missing, no flavour or branch refusal, no VM):
    nothing is changed; what is left to check is on the machine's side or needs NVIDIA's report."""
    from mlops_cli.driver.gpu_arch import arch_of

    loaded = ("open" if f.proc_version.open else "proprietary") if f.proc_version else None
    archs = [arch_of(g.device_id) for g in f.pci_gpus]
    both = bool(archs) and all(a is not None and a.open_modules and not a.open_only for a in archs)
    flavour = (
        f"The loaded module is the {loaded} flavour and this GPU runs with both: the other flavour of the same release is "
        "a test worth making by hand (a bug of one flavour on one board is known to happen). "
        if loaded and both
        else ""
    )
    return FixPlan(
        "the GPU did not initialise: check the machine's side by hand, change nothing automatically",
        (),
        "The kernel log was read: the driver loaded but the GPU failed to initialise, and nothing seen names why. "
        "Check by hand, in this order: the firmware settings (Above 4G Decoding and Resizable BAR on, for large-BAR "
        "GPUs; CSM off), the card's seating and power cables, and that this driver release lists the board "
        "(its README's supported-GPU appendix). "
        + flavour
        + "Then collect 'sudo nvidia-bug-report.sh' and 'sudo mlops driver-check --save-snapshot FILE' for NVIDIA or "
        "the vendor. Reinstalling the same driver changes nothing.",
    )


def toolkit() -> FixPlan:
    return FixPlan(
        "install the NVIDIA Container Toolkit and wire it into Docker",
        (
            FixStep((*APT, "nvidia-container-toolkit"), "the runtime hook that hands GPUs to containers"),
            FixStep(
                ("nvidia-ctk", "runtime", "configure", "--runtime=docker"), "register the nvidia runtime with Docker"
            ),
            FixStep(("systemctl", "restart", "docker"), "Docker reads its runtimes at start"),
        ),
    )


def container_host_broken() -> FixPlan:
    return FixPlan(
        "fix the host driver first (the findings above), then restart Docker",
        (FixStep(("systemctl", "restart", "docker"), "so new containers get the repaired driver"),),
    )


def dev_char_symlinks(inside: bool) -> FixPlan:
    if inside:
        return FixPlan(
            "on the host: create /dev/char symlinks for the NVIDIA devices, then recreate this container",
            (),
            "On the host run 'nvidia-ctk system create-dev-char-symlinks --create-all' (and install the udev rule from "
            "NVIDIA/nvidia-docker#1671), then recreate this container.",
        )
    return FixPlan(
        "create /dev/char symlinks for the NVIDIA devices so a systemd reload keeps containers' GPU access",
        (
            FixStep(
                ("nvidia-ctk", "system", "create-dev-char-symlinks", "--create-all"),
                "the symlinks runc needs to keep the device rules",
            ),
            FixStep(
                (
                    "install",
                    "-D",
                    "-m",
                    "0644",
                    data_file("71-nvidia-dev-char.rules"),
                    "/lib/udev/rules.d/71-nvidia-dev-char.rules",
                ),
                "recreate them whenever the driver loads",
            ),
        ),
        "Recreate containers that already lost their GPUs. By hand, the udev rule file "
        '/lib/udev/rules.d/71-nvidia-dev-char.rules holds one line: ACTION=="add", '
        'DEVPATH=="/bus/pci/drivers/nvidia", RUN+="/usr/bin/nvidia-ctk system create-dev-char-symlinks --create-all"',
    )


def manual(summary: str, text: str) -> FixPlan:
    return FixPlan(summary, (), text)


def hold_kernel_text(f: Facts) -> str:
    """How this family keeps the package manager from moving to a newer kernel (text for a person)."""
    from mlops_cli.driver import distro

    return {
        distro.RHEL: "exclude kernel updates ('dnf versionlock add kernel*', or exclude=kernel* in the dnf configuration)",
        distro.SUSE: "lock the kernel package ('zypper addlock kernel-default')",
        distro.ARCH: "hold the kernel package (IgnorePkg in /etc/pacman.conf)",
        distro.DEBIAN: "apt-mark hold the kernel metapackages",
        distro.UNKNOWN: "apt-mark hold the kernel metapackages",
    }.get(f.distro, "hold kernel updates with the system's package manager")


def next_boot(f: Facts, kernel: str, cause_found: bool) -> FixPlan:
    from mlops_cli.driver import distro

    verify = FixStep(("modinfo", "-k", kernel, "-F", "version", "nvidia"), f"check that {kernel} now has a module")
    pin = f"If it cannot be built, keep booting {f.running_kernel}: make it the boot loader's default and {hold_kernel_text(f)}."
    if cause_found:
        return FixPlan(f"fix the cause above before rebooting into {kernel}", (verify,), pin)
    if f.runfile and not f.dkms_registered:
        return FixPlan(
            f"rebuild the .run driver for {kernel} before rebooting", (), runfile_rebuild_text(f, kernel) + " " + pin
        )
    if f.install_method == "apt-prebuilt":
        return FixPlan(
            f"install the prebuilt module for {kernel} before rebooting", prebuilt_missing(f, kernel).steps, pin
        )
    steps = [_dkms_build(f, kernel), verify]
    if f.distro in (distro.RHEL, distro.SUSE):
        # dracut families: the kernel's initramfs was made when it had no nvidia module; one that pulls the
        # driver in early (nouveau blacklisted there, nvidia-drm for early KMS) then boots without it.
        steps.append(
            FixStep(
                ("dracut", "-f", "--kver", kernel),
                f"regenerate {kernel}'s initramfs, made before its nvidia module existed",
            )
        )
    return FixPlan(f"build the module for {kernel} before rebooting", tuple(steps), pin)
