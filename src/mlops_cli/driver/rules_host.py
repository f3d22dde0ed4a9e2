"""Findings about the host driver: packages, kernel-log causes, version mismatches, fabric manager,
containers. Pure: decisions over ``Facts`` only.
"""

from __future__ import annotations

import re
from typing import Any

from mlops_cli.driver import fixes, fixes_gpu
from mlops_cli.driver import kernlog as K
from mlops_cli.driver.facts import DKMS_PKG, DRIVER_PKG, LOCAL_SIGNER, Facts
from mlops_cli.driver.gpu_arch import arch_of
from mlops_cli.driver.model import ERROR, INFO, WARNING, Finding, make_finding
from mlops_cli.driver.parse import same_driver_version, upstream_version
from mlops_cli.driver.rules_context import library_versions
from mlops_cli.driver.rules_module import module_not_loaded_findings, nvidia_blacklisted, running_module_findings


def host_findings(f: Facts, explained: bool) -> list[Finding]:
    out: list[Finding] = []
    out += _packages(f)
    if f.running_kernel and f.running_kernel in f.modules and not any(x.id == "driver_not_installed" for x in out):
        out += running_module_findings(f)
    out += kernel_log_causes(f, driver_installed=not any(x.id == "driver_not_installed" for x in out))
    out += _mismatch(f)
    if not explained and not any(x.severity == ERROR for x in out) and f.smi.kind not in ("ok", "not_installed"):
        out += module_not_loaded_findings(f)
    if not explained and not any(x.severity == ERROR for x in out) and f.smi.kind not in ("ok", "not_installed"):
        ev = list(f.smi.lines) + [ln for ln in f.modprobe_lines if "FATAL" in ln or "ERROR" in ln]
        # The kernel log was read and says the GPU did not initialise, without a reason any rule knows:
        # quote it, and do not ask for the log that was already read.
        init = [ln for m in f.klog.find_all(K.GSP_RM_INIT)[-2:] for ln in m.lines]
        init += [ln for m in f.klog.find_all(K.RM_INIT_FAILED)[-2:] for ln in m.lines]
        no_kernel_part = None if init else _userspace_without_kernel_package(f)
        out.append(
            no_kernel_part
            or make_finding(
                "driver_failure_unexplained",
                ERROR,
                "the GPU failed to initialise (RmInitAdapter failed) and nothing seen says why"
                if init
                else "nvidia-smi fails and the evidence seen does not name the cause",
                ev + [ln for ln in init if ln not in ev],
                fixes.unexplained_init_failure(f)
                if init
                else fixes.unexplained(
                    nvml_with_module_loaded=f.module_loaded
                    and any("Failed to initialize NVML" in ln for ln in f.smi.lines)
                ),
            )
        )
    out += _fabric_manager(f)
    out += _operator_over_host_driver(f)
    out += _containers(f, host_broken=any(x.severity == ERROR for x in out))
    if f.reboot_required:
        ev = ["/var/run/reboot-required exists"] + [f"/var/run/reboot-required.pkgs: {p}" for p in f.reboot_pkgs]
        out.append(
            make_finding(
                "reboot_required",
                WARNING,
                "a package asked for a reboot that has not happened yet",
                ev,
                fixes.manual(
                    "reboot when convenient (check the next-boot kernel first)",
                    "reboot at a convenient time; run "
                    "'mlops driver-check' first to be sure the kernel that boots next has an nvidia module",
                ),
            )
        )
    return out


def _packages(f: Facts) -> list[Finding]:
    out = []
    installed = [p for p in f.driver_packages if p.installed]
    removed = [p for p in f.driver_packages if p.status.startswith("rc")]
    # Precondition: an install that did not finish (iU/iF/iH) is installed-but-broken; its
    # failed postinst (usually the DKMS build) is the cause, not a removal.
    smi_gone = f.smi.kind in ("not_installed", "no_nvml_lib") and not f.half_configured
    # Precondition of "not installed": the kernel never saw an nvidia module either (a rejected
    # or failing module in the kernel log is direct evidence that a driver is there).
    kernel_saw_nvidia = bool(f.key_rejected_lines) or any(
        "NVRM" in ln or ln.lstrip("[ .0123456789]").startswith("nvidia") for ln in f.klog.lines[-2000:]
    )
    if (
        smi_gone
        and not kernel_saw_nvidia
        and not installed
        and not f.runfile
        and not f.module_loaded
        and not removed
        and f.dpkg_seen
        and not f.prebuilt_packages
    ):
        out.append(
            make_finding(
                "driver_not_installed",
                ERROR,
                "no NVIDIA driver is installed",
                [*f.smi.lines[:1], "dpkg: no nvidia driver package installed"],
                fixes.driver_not_installed(),
            )
        )
    elif smi_gone and (removed or installed or f.prebuilt_packages or f.module_loaded):
        ev = [*f.smi.lines[:2]] + [p.line for p in removed][:6]
        if not removed:
            ev += [p.line for p in installed][:4]
            ev.append("no nvidia-utils package installed (nvidia-smi comes from it)")
        out.append(
            make_finding(
                "driver_packages_removed",
                ERROR,
                "driver packages were removed (nvidia-smi / userspace libraries missing)",
                ev,
                fixes.packages_removed(f),
            )
        )
    groups: dict[tuple[str, str], list[str]] = {}
    members: dict[tuple[str, str], list[str]] = {}
    for p in f.packages:
        key = _branch_key(p) if p.installed else None
        if key is not None:
            groups.setdefault(key, []).append(p.line)
            members.setdefault(key, []).append(p.name)
    ev: list[str] = []
    remove: list[str] = []
    contested: tuple[str, str] | None = None
    if len(groups) > 1:
        contested = _contested_branches(f, groups)
        keep = _branch_in_use(f, groups)
        for key, lines in sorted(groups.items()):
            ev += lines[:3]
            if key != keep and not contested:
                remove += members[key]
        if contested:
            api = f.klog.find(K.API_MISMATCH)
            ev += api.lines if api else [ln for ln in f.smi.lines if "mismatch" in ln.lower()][:2]
        # a DKMS build of the branch not in use failing (it blocks apt: headers left half-configured)
        ev += [e.line for e in f.apt_events if e.kind == "build_failed"][-2:]
        ev += [p.line for p in f.packages if p.half_configured and p.name.startswith("linux-headers-")][:1]
    runfile_on_apt = (
        "/usr/bin/nvidia-uninstall" in f.runfile_evidence
        and installed
        and any(
            p.name.startswith(("nvidia-driver-", "nvidia-dkms-", "nvidia-utils-")) or DKMS_PKG.match(p.name)
            for p in installed
        )
    )
    if runfile_on_apt:
        ev += ["/usr/bin/nvidia-uninstall exists (a .run install)"] + [p.line for p in installed][:2]
    if ev:
        # dpkg's file conflicts corroborate; alone (an old term.log line) they prove nothing now.
        ev += [e.line for e in f.apt_events if e.kind == "file_conflict"]
        only_runfile = runfile_on_apt and len(groups) <= 1
        # Leftovers of a .run under the apt driver do not make the apt package's own DKMS build
        # fail for the running kernel: that failure is the cause the GPU is down, listed first.
        own_build_failed = only_runfile and any(
            e.kind == "build_failed" and e.kernel == f.running_kernel for e in f.apt_events
        )
        out.append(
            make_finding(
                "multiple_driver_branches",
                WARNING if own_build_failed else ERROR,
                "a .run install lies under the apt driver packages"
                if only_runfile
                else "more than one driver branch or install method is present",
                ev,
                fixes.runfile_under_apt()
                if only_runfile
                else fixes.multiple_branches(
                    remove, half_configured=any(p.half_configured for p in f.packages), contested=contested
                ),
            )
        )
    return out


# Debian's per-branch packages (bullseye/bookworm): nvidia-tesla-470-driver,
# nvidia-tesla-460-kernel-dkms, libnvidia-tesla-470-cuda1 ...; and Debian's current driver under
# unversioned names (nvidia-driver, nvidia-kernel-dkms), whose branch is in the version.
_TESLA_PKG = re.compile(r"^(?:lib)?nvidia-tesla-(?P<br>\d{3})-")
_DEBIAN_CURRENT = ("nvidia-driver", "nvidia-kernel-dkms", "nvidia-open-kernel-dkms")


def _branch_key(p) -> tuple[str, str] | None:
    """The driver branch a package belongs to, as (branch, variant); None for other packages."""
    m = DRIVER_PKG.match(p.name)
    if m and not p.name.startswith("nvidia-firmware-"):
        # A transitional package (nvidia-driver-550 at 565.77, libnvidia-common-450 at 460.91.03)
        # belongs to the branch of its version: it only pulls that branch in.
        br = upstream_version(p.version).split(".")[0]
        return (br if re.fullmatch(r"\d{3}", br) else m["br"], m["server"] or "")
    m = _TESLA_PKG.match(p.name)
    if m:
        return (m["br"], "tesla")
    if p.name in _DEBIAN_CURRENT:
        return (upstream_version(p.version).split(".")[0], "")
    return None


def _userspace_without_kernel_package(f: Facts) -> Finding | None:
    """Ubuntu/Debian: the driver's userspace branch is installed, but no package of any kind provides its
    kernel module (no nvidia-dkms-*, no linux-modules-nvidia-*, no .run) and the running kernel has none.
    Seen when Canonical's prebuilt linux-modules-nvidia package for a kernel lags the driver release and
    apt could not install it. Which way the module should come is not decided here: nothing is changed."""
    from mlops_cli.driver import distro

    if f.distro != distro.DEBIAN or f.module_loaded or f.dkms_packages or f.prebuilt_packages or f.runfile:
        return None
    st = f.modules.get(f.running_kernel or "")
    if st is None or st.present is not False or not f.running_kernel:
        return None
    user = [
        p for p in f.packages if p.installed and re.match(r"^nvidia-(?:driver|utils|headless-no-dkms)-\d{3}", p.name)
    ]
    if not user:
        return None
    suffix = user[0].name.split("-", 2)[2]
    k = f.running_kernel
    ev = list(f.smi.lines[:1]) + [ln for ln in f.modprobe_lines if "FATAL" in ln][:1] + [p.line for p in user][:3]
    ev.append(f"no nvidia-dkms-{suffix} and no linux-modules-nvidia-{suffix}-* package is installed; no .run install")
    return make_finding(
        "driver_failure_unexplained",
        ERROR,
        f"the {suffix} driver's userspace is installed but no package provides its kernel module for {k}",
        ev,
        fixes.manual(
            "find out which kernel module package this kernel can get, then install that one by hand",
            f"Nothing provides the nvidia module for {k}. Check what apt offers: 'apt-cache policy "
            f"linux-modules-nvidia-{suffix}-{k} nvidia-dkms-{suffix}'. Canonical's signed prebuilt package for a "
            "kernel can lag a driver release (or depend on an older one and be uninstallable); then install "
            f"nvidia-dkms-{suffix} (with linux-headers-{k}; under Secure Boot it needs MOK enrolment), or boot a kernel "
            "whose prebuilt package exists. Nothing is changed automatically.",
        ),
    )


def _contested_branches(f: Facts, groups: dict[tuple[str, str], Any]) -> tuple[str, str] | None:
    """(loaded branch, userspace branch) when the loaded module belongs to one installed branch and the
    userspace asking for the driver (the kernel's API-mismatch line, NVML's version) to another: which
    branch is 'in use' is then the question, not the answer; None otherwise."""
    api = f.klog.find(K.API_MISMATCH)
    client = (api.groups[0] if api else None) or f.smi.nvml_version
    loaded = f.loaded_version or (api.groups[1] if api else None)
    if not (client and loaded):
        return None
    lb, cb = loaded.split(".")[0], client.split(".")[0]
    branches = {k[0] for k in groups}
    return (lb, cb) if lb != cb and {lb, cb} <= branches else None


def _branch_in_use(f: Facts, groups: dict[tuple[str, str], Any]) -> tuple[str, str]:
    v = f.loaded_version or f.disk_version or f.userspace_version
    for key in groups:
        if v and v.startswith(key[0] + "."):
            return key
    return max(groups, key=lambda k: (int(k[0]), k[1]))


def kernel_log_causes(f: Facts, driver_installed: bool) -> list[Finding]:
    out = []
    driver_down = not (f.smi.kind == "ok")
    inferred = driver_down and not f.key_rejected_lines and _secure_boot_blocks_unloaded_module(f)
    if driver_down and (f.key_rejected_lines or inferred):
        if f.secure_boot is not False:
            ev = [*f.smi.lines[:1], *f.key_rejected_lines[-3:]]
            ev += [f.secure_boot_line] if f.secure_boot else []
            ev += [ln for m in f.klog.find_all(K.LOCKED_DOWN)[-1:] for ln in m.lines]
            ev += [ln for ln in f.mok_test_lines if "not enrolled" in ln]
            ev += [e.line for e in f.dkms if e.kernel == f.running_kernel and e.state == "installed"]
            signer = f.modinfo.get("signer")
            if f.modinfo and not signer:
                ev.append(f"modinfo nvidia: no signer (filename: {f.modinfo.get('filename', '?')})")
            elif signer and LOCAL_SIGNER.search(signer):
                ev.append(
                    f"modinfo nvidia: signer: {signer} (a key made on this machine: trusted only once enrolled as a MOK)"
                )
            if inferred and not f.klog_seen:
                # No kernel log to confirm it: say what the inference rests on and how to check.
                ev.append(
                    "the kernel log could not be read: run as root to confirm ('Key was rejected by service' / 'Loading of unsigned module')"
                )
            if not inferred:
                title = "Secure Boot rejects the nvidia module (unsigned, or signed by a key that is not enrolled)"
            elif not f.klog_seen:
                title = (
                    "Secure Boot is on and the nvidia module on disk is not loaded: most likely the kernel refuses it "
                    "(its signing key is not enrolled), not confirmed because the kernel log was not readable"
                )
            elif signer:
                title = (
                    "Secure Boot is on and the nvidia module on disk, signed by a key made on this machine, is not loaded: "
                    "its key is not enrolled (the kernel refuses it)"
                )
            else:
                title = (
                    "Secure Boot is on and the nvidia module on disk is unsigned and not loaded: the kernel refuses it"
                )
            out.append(
                make_finding(
                    "secure_boot_module_rejected",
                    ERROR,
                    title,
                    ev,
                    fixes.secure_boot(f),
                    "running",
                    f.running_kernel,
                )
            )
    out += _modules_extra(f, driver_down)
    nouveau_pci = [ln for d in f.pci_gpus if d.driver_in_use == "nouveau" for ln in d.lines]
    probe = f.klog.find(K.PROBE_NOT_CALLED)
    if driver_installed and another_driver_would_block(f) and (nouveau_pci or (probe and "nouveau" in f.loaded)):
        ev = nouveau_pci + (probe.lines if probe else [])
        if "nouveau" in f.loaded:
            ev.append("/proc/modules: nouveau is loaded")
        out.append(
            make_finding(
                "nouveau_bound",
                ERROR,
                "the nouveau driver owns the GPU, so nvidia cannot bind to it",
                ev,
                fixes.nouveau(),
            )
        )
    for pat, want_open in ((K.REQUIRES_OPEN, True), (K.NOT_SUPPORTED_BY_OPEN, False), (K.OPEN_DATACENTER_ONLY, False)):
        m = f.klog.find(pat)
        if m:
            ev = m.lines + [ln for mm in f.klog.find_all(K.RM_INIT_FAILED)[-1:] for ln in mm.lines]
            what = "needs the open kernel modules" if want_open else "cannot use the open kernel modules"
            out.append(
                make_finding(
                    "wrong_kernel_module_flavor",
                    ERROR,
                    f"the GPU {what}: wrong module flavour installed",
                    ev,
                    fixes.flavour(f, want_open),
                )
            )
            break
    else:
        out += _flavour_by_architecture(f)
    m = f.klog.find(K.UNSUPPORTED_RELEASE) or f.klog.find(K.LEGACY_DROPPED)
    installer = [
        ln
        for ln in (f.collected.text("/var/log/nvidia-installer.log") or "").splitlines()
        if "You do not appear to have an NVIDIA GPU supported by" in ln
    ]
    if m or installer:
        ev = (
            (m.lines if m else [])
            + installer[-1:]
            + [ln for mm in f.klog.find_all(K.NO_GPU_FOUND)[-1:] for ln in mm.lines]
        )
        pci_id = m.groups[1] if m and len(m.groups) > 1 else None
        legacy = f.klog.find(K.LEGACY_DROPPED)
        legacy_branch = (legacy.groups[0] or "").split(".")[0] or None if legacy else None
        out.append(
            make_finding(
                "gpu_unsupported_by_branch",
                ERROR,
                "the installed driver branch does not support this GPU",
                ev,
                fixes.unsupported_gpu(f, pci_id, legacy_branch),
            )
        )
    m = f.klog.find(K.GSP_FIRMWARE_MISSING)
    noimg = f.klog.find(K.GSP_NO_IMAGE)
    if m or noimg:
        ev = (
            (m.lines if m else [])
            + (noimg.lines if noimg else [])
            + [ln for mm in f.klog.find_all(K.RM_INIT_FAILED)[-1:] for ln in mm.lines]
        )
        version = m.groups[1] if m else f.loaded_version
        if f.firmware_versions is not None:
            ev.append("/lib/firmware/nvidia contains: " + (" ".join(f.firmware_versions) or "(nothing)"))
        out.append(
            make_finding(
                "gsp_firmware_missing",
                ERROR,
                f"GSP firmware for module version {version or '?'} is missing",
                ev,
                fixes.gsp_firmware(f, version),
            )
        )
    return out


def _secure_boot_blocks_unloaded_module(f: Facts) -> bool:
    """No rejection line seen, but Secure Boot is on, a module for the running kernel is on disk
    and not loaded, and it is unsigned or signed by a local key that is not (known to be)
    enrolled. ``mokutil --test-key`` saying 'already enrolled' rules it out."""
    st = f.modules.get(f.running_kernel or "")
    if not (f.secure_boot and not f.module_loaded and st is not None and st.present and f.modinfo):
        return False
    if any("already enrolled" in ln for ln in f.mok_test_lines) and not any(
        "not enrolled" in ln for ln in f.mok_test_lines
    ):
        return False
    if nvidia_blacklisted(f):
        return False  # something else keeps it from loading: module_not_loaded names it
    signer = f.modinfo.get("signer")
    if signer and signer_trusted(f, signer):
        return False  # the kernel loaded the signer's certificate: its key is enrolled
    return not signer or bool(LOCAL_SIGNER.search(signer)) or any("not enrolled" in ln for ln in f.mok_test_lines)


def signer_trusted(f: Facts, signer: str) -> list[str]:
    """The kernel-log lines showing that the kernel loaded the certificate the module is signed
    with (an enrolled MOK, or a key in db): the kernel trusts that signer."""
    want = signer.strip().lower()
    return [ln for m in f.klog.find_all(K.X509_LOADED) if (m.groups[0] or "").strip().lower() == want for ln in m.lines]


def module_flavour(f: Facts) -> tuple[bool | None, str | None]:
    """(open?, the line that says so) for the loaded module, else the one on disk."""
    if f.proc_version:
        return f.proc_version.open, f.proc_version.line
    lic = f.modinfo.get("license")
    if lic:
        return ("MIT" in lic or "GPL" in lic), f"modinfo nvidia: license: {lic}"
    return None, None


def _flavour_by_architecture(f: Facts) -> list[Finding]:
    """The module flavour cannot drive this GPU's architecture (older drivers print no message
    for it): Blackwell and later only run with the open modules, Maxwell/Pascal/Volta only with
    the proprietary ones. Preconditions: the flavour is known, the GPU's id says its
    architecture, and the GPU did not come up (RmInitAdapter failed, or nvidia-smi finds no
    device / no driver)."""
    is_open, flavour_line = module_flavour(f)
    if is_open is None or f.smi.kind == "ok":
        return []
    init_failed = f.klog.find_all(K.RM_INIT_FAILED)
    if not init_failed and f.smi.kind not in ("no_devices", "no_driver", "device_handle"):
        return []
    ids = [(d.slot, d.device_id) for d in f.pci_gpus if d.device_id] or [
        (addr, dev.lower().replace("0x", "")) for addr, dev, _ in f.sysfs_nvidia if dev
    ]
    for slot, dev in ids:
        arch = arch_of(dev)
        if arch is None:
            continue
        if arch.open_only and not is_open:
            want_open, why = True, f"only the open kernel modules support {arch.name} GPUs"
        elif arch.open_modules is False and is_open:
            want_open, why = False, f"the open kernel modules need a GSP, which {arch.name} GPUs do not have"
        else:
            continue
        ev = [f"{slot}: PCI ID 10de:{dev} is a {arch.name} GPU: {why}", flavour_line]
        ev += [ln for m in init_failed[-1:] for ln in m.lines] + list(f.smi.lines[:1])
        what = "needs the open kernel modules" if want_open else "cannot use the open kernel modules"
        return [
            make_finding(
                "wrong_kernel_module_flavor",
                ERROR,
                f"the {arch.name} GPU {what}: wrong module flavour installed",
                ev,
                fixes.flavour(f, want_open),
            )
        ]
    return []


def nvidia_refused(f: Facts) -> list[str]:
    """The kernel's own words that nvidia did not take the GPU for a reason of its own: Secure Boot
    rejected the module, or the driver refuses this GPU (a branch that does not support or dropped
    it, the wrong module flavour). nouveau holding the GPU is then a consequence: blacklisting it
    would change nothing (unless the kernel also says nouveau took the device first)."""
    lines = list(f.key_rejected_lines)
    for pat in (
        K.UNSUPPORTED_RELEASE,
        K.LEGACY_DROPPED,
        K.REQUIRES_OPEN,
        K.NOT_SUPPORTED_BY_OPEN,
        K.OPEN_DATACENTER_ONLY,
    ):
        m = f.klog.find(pat)
        if m:
            lines += m.lines[:1]
    return lines


def another_driver_would_block(f: Facts) -> bool:
    """Another driver (nouveau, nova_core, vfio-pci) holding the GPU is the cause: nvidia would bind,
    and the kernel does not say nvidia refused the GPU itself (or it says the other driver took it)."""
    if not nvidia_would_bind(f):
        return False
    return bool(f.klog.find(K.PROBE_NOT_CALLED) or f.klog.find(K.ALREADY_BOUND)) or not nvidia_refused(f)


def nvidia_would_bind(f: Facts) -> bool:
    """Precondition of the 'another driver owns the GPU' findings: an nvidia module exists for
    the running kernel (or the kernel/installer log shows it tried to bind). Without one,
    nouveau holding the GPU is a consequence, not the cause."""
    st = f.modules.get(f.running_kernel or "")
    if f.module_loaded or (st is not None and st.present):
        return True
    if f.klog.find(K.PROBE_NOT_CALLED) or f.klog.find(K.ALREADY_BOUND):
        return True
    return any(log.kind == "load" for log in f.installer_logs)


def _mismatch(f: Facts) -> list[Finding]:
    api = f.klog.find(K.API_MISMATCH)
    if f.smi.kind != "version_mismatch" and not (api and f.smi.kind not in ("ok",) and f.smi.kind != "not_installed"):
        return []
    running = f.modules.get(f.running_kernel or "")
    if running is not None and running.present is False and (f.dkms_registered or f.prebuilt_packages or f.runfile):
        return []  # no new module on disk: a reboot would not help; the module rules say why
    loaded = f.loaded_version or (api.groups[1] if api else None)
    disk = f.disk_version
    if not disk:
        d = [e.version for e in f.dkms if e.kernel == f.running_kernel and e.state == "installed"]
        disk = d[0] if len(d) == 1 else None
    nvml = f.smi.nvml_version
    full = f.userspace_version
    # NVML prints major.minor only: prefer the package's full version when it is the same release
    user = (
        (api.groups[0] if api else None)
        or (full if nvml and full and same_driver_version(full, nvml) else nvml)
        or full
    )
    ev = list(f.smi.lines[:2]) + (api.lines if api else [])
    if f.proc_version:
        ev.append(f.proc_version.line)
    if f.sys_module_version:
        ev.append(f"/sys/module/nvidia/version: {f.sys_module_version}")
    if f.modinfo.get("filename"):
        ev += [f"filename:       {f.modinfo['filename']}", f"version:        {disk}"]
    if loaded and api is None and (not user or same_driver_version(user, loaded)) and (not disk or disk == loaded):
        # Nothing newer than the loaded module is installed: no upgrade waits for a reboot. The NVML
        # library nvidia-smi loads is not this driver's (a stale copy or soname link): reloading the
        # module or rebooting changes nothing, and nothing seen says which file it is.
        return [_nvml_library_not_the_drivers(f, loaded, ev)]
    # Stale: the mismatch survived a reboot. Either the module on disk is the old one too, or a
    # new one is on disk but the box booted after the upgrade and still loads the old one (from
    # the initramfs, or a half-configured package never installed the new one).
    survived = loaded and disk and loaded != disk and f.rebooted_since_driver_change is True
    # The kernel's own API-mismatch line carries both full versions: "575.64" and "575.64.03" are two
    # releases there, although NVML's major.minor would make them look alike.
    differs = bool(user) and (
        not same_driver_version(user, disk) or (api is not None and api.groups[0] != api.groups[1])
    )
    if (loaded and disk and loaded == disk and differs) or survived:
        stale = sorted({e.version for e in f.dkms if user and not same_driver_version(e.version, user)})
        ev += [e.line for e in f.dkms if e.version in stale][:3]
        ev += f.timeline_evidence + [p.line for p in f.half_configured][:2]
        return [
            make_finding(
                "version_mismatch_stale_module",
                ERROR,
                f"userspace {user} but the loaded module is {loaded}"
                + (f" (on disk: {disk})" if disk != loaded else "")
                + ": a stale nvidia.ko is loaded and survived a reboot; rebooting again will not help",
                ev,
                _stale_plan(f, stale, loaded == disk),
                "running",
                f.running_kernel,
            )
        ]
    ev += f.timeline_evidence
    return [
        make_finding(
            "version_mismatch_pending_reboot",
            ERROR,
            f"userspace driver {user or '?'} but the loaded module is {loaded or '?'}: the upgrade waits for a reboot or module reload",
            ev,
            fixes.mismatch_reload(f),
            "running",
            f.running_kernel,
        )
    ]


def _nvml_library_not_the_drivers(f: Facts, loaded: str, ev: list[str]) -> Finding:
    """NVML's version mismatch while every driver version seen (packages, installer, the module on
    disk) is the loaded module's own: no upgrade is pending. Other driver releases' library files
    beside this driver's are the likely culprit; which one nvidia-smi loads is not visible here."""
    others = {v: paths for v, paths in library_versions(f).items() if not same_driver_version(v, loaded)}
    ev = (
        ev
        + [
            f"{path} (another driver release's library, beside the loaded {loaded})"
            for v in sorted(others)
            for path in others[v]
        ][:6]
    )
    ev.append(f"no installed driver package, installer log or module file is newer than the loaded module {loaded}")
    title = (
        f"NVML reports a driver/library version mismatch, but the installed driver is {loaded}, the loaded module's own "
        "version: no upgrade waits for a reboot; the NVML library nvidia-smi loads is not this driver's"
        + (f" (stale {', '.join(sorted(others))} libraries are present)" if others else "")
    )
    return make_finding("driver_failure_unexplained", ERROR, title, ev, fixes.unexplained(nvml_with_module_loaded=True))


def _modules_extra(f: Facts, driver_down: bool) -> list[Finding]:
    """'nvidia: Unknown symbol drm_*': the module needs the kernel's drm module, which Ubuntu's
    virtual/cloud kernels ship in a separate package. Preconditions: the driver is down and not
    loaded, dpkg answered, the kernel is known, and no extra-modules package for it is installed
    (with one installed, the symbols are missing for another reason: left to the other rules)."""
    lines = f.klog.find_all(K.UNKNOWN_DRM)
    k = f.running_kernel
    if not (driver_down and lines and not f.module_loaded and f.dpkg_seen and k):
        return []
    names = (f"linux-modules-extra-{k}", f"linux-image-extra-{k}")
    if any(f.installed(n) is not None for n in names):
        return []
    ver = f.os.get("VERSION_ID", "")
    old = f.os.get("ID") == "ubuntu" and ver[:2].isdigit() and int(ver[:2]) <= 16
    pkg = names[1] if old else names[0]
    st = f.modules.get(k)
    on_disk = bool(st is not None and st.present)
    ev = list(f.smi.lines[:1]) + [ln for m in lines[-3:] for ln in m.lines]
    ev.append(f"neither {names[0]} nor {names[1]} is installed (dpkg)")
    return [
        make_finding(
            "kernel_modules_extra_missing",
            ERROR,
            f"the nvidia module cannot load: it needs the kernel's drm module, which {k} ships in {pkg} (not installed)",
            ev,
            fixes.FixPlan(
                f"install {pkg}, then load the driver"
                + ("" if on_disk else " (run its installer again: no nvidia.ko is installed)"),
                (
                    fixes.FixStep(
                        ("apt-get", "install", "-y", pkg),
                        f"the drm modules of {k} (virtual/cloud kernels leave them out)",
                    ),
                )
                + (
                    (fixes.FixStep(("modprobe", "nvidia"), "load the driver now that its symbols resolve"),)
                    if on_disk
                    else ()
                ),
                "If the driver came from the .run installer and it stopped at this error, run it again after the install. "
                "Keep the extra package with the kernel: install the metapackage (e.g. linux-modules-extra-aws, or "
                "linux-image-extra-virtual on 16.04) so the next kernel gets it too.",
            ),
            "running",
            k,
        )
    ]


def _stale_plan(f: Facts, stale_dkms: list[str], disk_is_loaded: bool):
    """Rebuilding the initramfs drops an old copy of nvidia.ko; it cannot help when the file on disk
    is itself the old version (a kmod/prebuilt package left behind, not a DKMS build): then the
    package that owns the file must be updated or removed, which only a person can choose."""
    if disk_is_loaded and not stale_dkms and not f.half_configured and not f.runfile_evidence:
        where = f.modinfo.get("filename") or f"/lib/modules/{f.running_kernel}/.../nvidia.ko"
        return fixes.manual(
            "the nvidia.ko on disk is the old version: update or remove the package that owns it",
            f"The module file for the running kernel ({where}) is the same version as the loaded one, older than the "
            "driver's userspace, so a reboot or an initramfs rebuild loads the same file again. Find the package that "
            f"owns it ('rpm -qf {where}' or 'dpkg -S {where}'), then update it to the userspace version or remove it "
            "if a newer package for the same kernel is installed beside it; if the repository has no matching module "
            "package yet, hold the userspace packages at the module's version until it does.",
        )
    return fixes.stale_module(f, stale_dkms)


def _operator_over_host_driver(f: Facts) -> list[Finding]:
    """The GPU Operator's driver component on a node whose driver is installed on the host
    (packages or .run): two owners of one kernel module. The operator's driver pod then fails
    ('Could not unload NVIDIA driver kernel modules, driver is in use') or replaces the host's
    module behind apt's back. A warning when the driver container shows activity (its root or
    installer log under /run/nvidia/driver), a note when only the empty mount point is there."""
    if not f.collected.exists("/run/nvidia/driver"):
        return []
    host = [p for p in f.driver_packages if p.installed] + [p for p in f.prebuilt_packages]
    if not host and not f.runfile:
        return []
    root = f.collected.listing("/run/nvidia/driver") or []
    log = f.collected.text("/run/nvidia/driver/var/log/nvidia-installer.log")
    active = bool(root) or bool(log)
    ev = ["/run/nvidia/driver exists (the GPU Operator's driver container root)" + ("" if root else ", empty")]
    if log:
        ev += [ln for ln in log.splitlines() if ln.strip()][-2:]
    ev += [p.line for p in host][:2] + [f"{p} exists (a .run install on the host)" for p in f.runfile_evidence][:1]
    if f.modinfo.get("filename"):
        ev.append(f"filename:       {f.modinfo['filename']} (the host's module)")
    return [
        make_finding(
            "operator_driver_conflicts_with_host_driver",
            WARNING if active else INFO,
            "the GPU Operator's driver container and a host-installed driver both claim this node's GPU driver"
            if active
            else "a host-installed driver on a node prepared for the GPU Operator: its driver component must stay disabled",
            ev,
            fixes.manual(
                "keep one owner of the driver: driver.enabled=false in the ClusterPolicy, or remove the host's driver",
                "Keep the host's driver and deploy the operator with its driver component off (Helm --set "
                "driver.enabled=false, or the ClusterPolicy's spec.driver.enabled: false); or, to let the operator own it, "
                "purge the host's NVIDIA driver packages (a fabric-manager metapackage such as cuda-drivers-fabricmanager "
                "pulls the driver in too) and reboot. Nothing is changed automatically.",
            ),
        )
    ]


FM_PKG = re.compile(r"^nvidia-fabricmanager(?:-\d+)?$")


def fabric_manager_findings(f: Facts) -> list[Finding]:
    """Fabric manager against the driver; on an operator node its log comes from the driver root."""
    return _fabric_manager(f)


def _fabric_manager(f: Facts) -> list[Finding]:
    fm = next((p for p in f.packages if p.installed and FM_PKG.match(p.name)), None)
    journal = [ln for ln in f.fm_journal if "don't match with driver version" in ln]
    driver = f.loaded_version or f.userspace_version
    differs = fm is not None and driver is not None and upstream_version(fm.version) != driver
    if not journal and not (differs and f.fm_active not in (None, "active")):
        return []
    ev = journal[-2:] + ([fm.line] if fm else []) + ([f.proc_version.line] if f.proc_version else [])
    if f.fm_active:
        ev.append(f"systemctl is-active nvidia-fabricmanager: {f.fm_active}")
    return [
        make_finding(
            "fabricmanager_version_mismatch",
            ERROR,
            "fabric manager's version differs from the driver's: NVSwitch fabric down, CUDA fails (error 802)",
            ev,
            fixes_gpu.fabricmanager_install(f, replacing=fm.name if fm else "nvidia-fabricmanager"),
        )
    ]


def _containers(f: Facts, host_broken: bool) -> list[Finding]:
    if f.docker_runtimes is None:
        return []
    toolkit = [
        p
        for p in f.packages
        if p.installed and p.name in ("nvidia-container-toolkit", "nvidia-container-toolkit-base", "nvidia-docker2")
    ]
    has_runtime = '"nvidia"' in f.docker_runtimes
    rt_line = f"docker info --format '{{{{json .Runtimes}}}}': {f.docker_runtimes}"
    if host_broken and (toolkit or has_runtime):
        return [
            make_finding(
                "container_host_driver_broken",
                ERROR,
                "containers cannot get GPUs because the host driver is broken",
                [rt_line, *[p.line for p in toolkit][:1], *f.smi.lines[:1]],
                fixes.container_host_broken(),
            )
        ]
    if host_broken or not f.module_loaded:
        return []
    if not toolkit and not has_runtime:
        return [
            make_finding(
                "container_toolkit_missing",
                WARNING,
                "the host driver works but Docker has no NVIDIA runtime (containers get no GPU)",
                [rt_line, "no nvidia-container-toolkit package installed"],
                fixes.toolkit(),
            )
        ]
    if f.dev_nvidia and f.dev_char is not None and not any(n.startswith("195:") for n in f.dev_char):
        return [
            make_finding(
                "container_lost_gpu_after_daemon_reload",
                WARNING,
                "no /dev/char symlinks for the NVIDIA devices: a 'systemctl daemon-reload' will take running containers' GPUs away",
                [rt_line, "/dev: " + " ".join(sorted(f.dev_nvidia)[:6]), "/dev/char has no 195:* entries"],
                fixes.dev_char_symlinks(inside=False),
            )
        ]
    return []
