"""Facts -> ordered findings. Pure: no program runs and no file is read here.

Each rule raises a finding only on evidence, and quotes that evidence verbatim. The first
``error`` of the ordered list is the root cause (``model.order_findings``).
"""

from __future__ import annotations

import re
from typing import Any

from mlops_cli.driver import fixes
from mlops_cli.driver import kernlog as K
from mlops_cli.driver.facts import DRIVER_PKG, Facts
from mlops_cli.driver.model import ERROR, WARNING, Diagnosis, Finding, FixPlan, order_findings
from mlops_cli.driver.parse import same_driver_version, upstream_version, version_key


def _f(
    id: str,
    severity: str,
    title: str,
    evidence: list[str],
    fix: FixPlan,
    scope: str | None = None,
    kernel: str | None = None,
) -> Finding:
    seen: list[str] = []
    for line in evidence:
        if line and line not in seen:
            seen.append(line)
    return Finding(id, severity, title, seen, fix, scope, kernel)


_NOTHING_TO_JUDGE = ("no_nvidia_gpu", "inside_container_no_gpu_passed", "container_lost_gpu_after_daemon_reload")


def diagnose(f: Facts, extra_kernel: str | None = None) -> Diagnosis:
    findings = _platform(f)
    # Nothing on this machine's driver can be judged past these; hardware faults still allow it.
    if not any(x.id in _NOTHING_TO_JUDGE for x in findings):
        findings += _host(f, explained=bool(findings))
        findings += _next_kernels(f, extra_kernel)
    findings = order_findings(findings)
    if any(x.id == "no_nvidia_gpu" for x in findings):
        status = "no-gpu"
    elif any(x.severity == ERROR for x in findings):
        status = "problem"
    else:
        status = "ok"
    return Diagnosis(status, _kernel_json(f, extra_kernel), _driver_json(f), _gpus_json(f), findings, list(f.not_seen))


# --- the machine and the platform ---------------------------------------------------------


def _platform(f: Facts) -> list[Finding]:
    out: list[Finding] = []
    if f.in_container and not f.dev_nvidia and not f.pci_visible and not f.nvidia_on_pci:
        # A container that cannot see the PCI bus: nothing NVIDIA is visible from here at all.
        ev = [
            f"{f.container_marker} exists (running inside a container)",
            "no /dev/nvidia* device nodes",
            "the PCI bus is not visible from this container (no lspci, no /sys/bus/pci/devices)",
            *f.smi.lines[:1],
        ]
        return [
            _f(
                "no_nvidia_gpu",
                ERROR,
                "no NVIDIA GPU is visible from this container",
                ev,
                fixes.manual(
                    "nothing to fix in the driver here",
                    "No NVIDIA device is visible. If the host has GPUs, start the container with 'docker run --gpus all ...' "
                    "(Kubernetes: resources.limits nvidia.com/gpu), or run 'mlops driver-check' on the host.",
                ),
            )
        ]
    if f.in_container and not f.dev_nvidia and f.nvidia_on_pci:
        ev = [
            f"{f.container_marker} exists (running inside a container)",
            "no /dev/nvidia* device nodes",
            *f.smi.lines[:1],
        ]
        if f.running_kernel and f"/lib/modules/{f.running_kernel}" not in f.collected.dirs:
            ev.append(f"/lib/modules/{f.running_kernel} does not exist here")
        return [
            _f(
                "inside_container_no_gpu_passed",
                ERROR,
                "this check runs inside a container that was started without GPUs",
                ev,
                fixes.manual(
                    "start the container with GPUs, or run the check on the host",
                    "Re-run the container with 'docker run --gpus all ...' (Kubernetes: resources.limits nvidia.com/gpu), "
                    "or run 'mlops driver-check' on the host. Do not install a driver inside the container.",
                ),
            )
        ]
    if f.pci_visible and not f.nvidia_on_pci:
        lspci = f.collected.command("lspci_nvidia")
        ev = []
        if lspci.ok:
            ev.append("lspci -nnk -d 10de: printed no NVIDIA device")
        if f.collected.listing("/sys/bus/pci/devices") is not None:
            ev.append(
                f"/sys/bus/pci/devices: {len(f.collected.listing('/sys/bus/pci/devices') or [])} devices, none with vendor 0x10de"
            )
        ev += [m.lines[-1] for m in f.klog.find_all(K.NO_GPU_FOUND)][-1:]
        ev += f.smi.lines[:1] if f.smi.kind not in ("not_installed", "ok") else []
        return [
            _f(
                "no_nvidia_gpu",
                ERROR,
                "no NVIDIA GPU on the PCI bus of this machine",
                ev,
                fixes.manual(
                    "nothing to fix in the driver: this machine has no NVIDIA GPU",
                    "Do not reinstall drivers. In a VM, check the hypervisor's GPU passthrough; on bare metal, reseat the card "
                    "and check its power and the BIOS. On CPU-only nodes 'apt purge *nvidia*' stops the module probe spam.",
                ),
            )
        ]
    if f.in_container and f.dev_nvidia and f.smi.kind == "nvml_unknown":
        return [
            _f(
                "container_lost_gpu_after_daemon_reload",
                ERROR,
                "this container lost its GPU access (systemd reload revoked the device rules)",
                [
                    f"{f.container_marker} exists (running inside a container)",
                    *f.smi.lines[:2],
                    "/dev: " + " ".join(sorted(f.dev_nvidia)),
                ],
                fixes.dev_char_symlinks(inside=True),
            )
        ]

    fallen = f.klog.find_all(K.FALLEN_OFF_BUS) + f.klog.find_all(K.XID_79)
    if fallen:
        ev = [ln for m in fallen[-2:] for ln in m.lines]
        if f.smi.kind in ("device_handle", "timed_out"):
            ev += f.smi.lines[:2]
        out.append(
            _f(
                "gpu_fallen_off_bus",
                ERROR,
                "a GPU fell off the bus (Xid 79): hardware, PCIe or power fault",
                ev,
                fixes.manual(
                    "drain the node and power-cycle it; this is not a driver problem",
                    "Drain the node and power-cycle it (a warm reboot may not bring the GPU back). Check PSU, cabling, thermals "
                    "and update the SBIOS; capping clocks ('nvidia-smi -lgc') can help. Reseat the card; RMA it if it repeats. "
                    "Do not reinstall the driver.",
                ),
            )
        )
    init_failed = f.klog.find_all(K.RM_INIT_FAILED)
    explained = (
        f.klog.find(K.REQUIRES_OPEN)
        or f.klog.find(K.GSP_FIRMWARE_MISSING)
        or f.klog.find(K.GSP_NO_IMAGE)
        or f.klog.find(K.NOT_SUPPORTED_BY_OPEN)
        or fallen
    )
    platform_lines = [
        ln for pat in (K.D3COLD, K.GSP_RM_INIT, K.GFW_BOOT) for m in f.klog.find_all(pat) for ln in m.lines
    ]
    if not explained and (
        platform_lines or (f.virt and (init_failed or f.smi.kind in ("no_devices", "device_handle")))
    ):
        ev = platform_lines + [ln for m in init_failed[-2:] for ln in m.lines]
        if f.virt:
            ev.insert(0, f"virtual machine: {f.virt}")
        ev += f.smi.lines[:1] if f.smi.kind != "ok" else []
        out.append(
            _f(
                "vm_passthrough_init_failure",
                ERROR,
                "the GPU is visible but fails to initialise (platform / passthrough)",
                ev,
                fixes.manual(
                    "a platform problem: fix it on the host/BIOS side, not by reinstalling the driver",
                    "Power-cycle or reset the GPU on the host; enable Above-4G decoding / Resizable BAR; for KVM passthrough hide "
                    "the hypervisor from the guest (<kvm><hidden state='on'/></kvm>). Reinstalling the driver does not help.",
                ),
            )
        )
    return out


# --- the host driver ----------------------------------------------------------------------


def _host(f: Facts, explained: bool) -> list[Finding]:
    out: list[Finding] = []
    out += _packages(f)
    if f.running_kernel and f.running_kernel in f.modules and not any(x.id == "driver_not_installed" for x in out):
        out += _running_module(f)
    out += _kernel_log_causes(f, driver_installed=not any(x.id == "driver_not_installed" for x in out))
    out += _mismatch(f)
    if not explained and not any(x.severity == ERROR for x in out) and f.smi.kind not in ("ok", "not_installed"):
        out += _module_not_loaded(f)
    if not explained and not any(x.severity == ERROR for x in out) and f.smi.kind not in ("ok", "not_installed"):
        ev = list(f.smi.lines) + [ln for ln in f.modprobe_lines if "FATAL" in ln or "ERROR" in ln]
        out.append(
            _f(
                "driver_failure_unexplained",
                ERROR,
                "nvidia-smi fails and the evidence seen does not name the cause",
                ev,
                fixes.manual(
                    "look at the kernel's own error",
                    "Run 'sudo modprobe nvidia' and 'sudo dmesg | grep -i nvrm' and attach "
                    "'mlops driver-check --save-snapshot FILE' (run as root) to a ticket.",
                ),
            )
        )
    out += _fabric_manager(f)
    out += _containers(f, host_broken=any(x.severity == ERROR for x in out))
    if f.reboot_required:
        ev = ["/var/run/reboot-required exists"] + [f"/var/run/reboot-required.pkgs: {p}" for p in f.reboot_pkgs]
        out.append(
            _f(
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
    smi_gone = f.smi.kind in ("not_installed", "no_nvml_lib")
    if (
        smi_gone
        and not installed
        and not f.runfile
        and not f.module_loaded
        and not removed
        and f.dpkg_seen
        and not f.prebuilt_packages
    ):
        out.append(
            _f(
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
            _f(
                "driver_packages_removed",
                ERROR,
                "driver packages were removed (nvidia-smi / userspace libraries missing)",
                ev,
                fixes.packages_removed(f),
            )
        )
    groups: dict[tuple[str, str], list[str]] = {}
    for p in installed:
        m = DRIVER_PKG.match(p.name)
        if m and not p.name.startswith("nvidia-firmware-"):
            groups.setdefault((m["br"], m["server"] or ""), []).append(p.line)
    ev: list[str] = []
    remove: list[str] = []
    if len(groups) > 1:
        keep = _branch_in_use(f, groups)
        for key, lines in sorted(groups.items()):
            ev += lines[:3]
            if key != keep:
                remove += [
                    p.name
                    for p in installed
                    if (DRIVER_PKG.match(p.name)["br"], DRIVER_PKG.match(p.name)["server"] or "") == key
                ]  # type: ignore[index]
    if (
        "/usr/bin/nvidia-uninstall" in f.runfile_evidence
        and installed
        and any(p.name.startswith(("nvidia-driver-", "nvidia-dkms-", "nvidia-utils-")) for p in installed)
    ):
        ev += ["/usr/bin/nvidia-uninstall exists (a .run install)"] + [p.line for p in installed][:2]
    ev += [e.line for e in f.apt_events if e.kind == "file_conflict"]
    if ev:
        out.append(
            _f(
                "multiple_driver_branches",
                ERROR,
                "more than one driver branch or install method is present",
                ev,
                fixes.multiple_branches(remove),
            )
        )
    return out


def _branch_in_use(f: Facts, groups: dict[tuple[str, str], Any]) -> tuple[str, str]:
    v = f.loaded_version or f.disk_version or f.userspace_version
    for key in groups:
        if v and v.startswith(key[0] + "."):
            return key
    return max(groups, key=lambda k: (int(k[0]), k[1]))


def _module_not_loaded(f: Facts) -> list[Finding]:
    """A module for this kernel is on disk but not loaded, and nothing rejected it."""
    st = f.modules.get(f.running_kernel or "")
    if f.module_loaded or not st or not st.present:
        return []
    blacklist = []
    for path, text in sorted(f.collected.files.items()):
        if path.startswith(("/etc/modprobe.d/", "/lib/modprobe.d/")) and text:
            blacklist += [
                f"{path}: {ln.strip()}"
                for ln in text.splitlines()
                if re.match(r"^\s*(blacklist\s+nvidia\s*$|install\s+nvidia\s+/bin/(false|true))", ln)
            ]
    cmdline = (f.collected.text("/proc/cmdline") or "").strip()
    if re.search(r"(?:modprobe|module)\.blacklist=\S*\bnvidia\b", cmdline):
        blacklist.append(f"/proc/cmdline: {cmdline}")
    ev = [*f.smi.lines[:1], *st.evidence[:2], *blacklist, "/proc/modules: nvidia is not loaded"]
    if blacklist:
        plan = fixes.manual(
            "remove the blacklist, then load the module",
            "Remove the 'blacklist nvidia' / 'install nvidia /bin/false' lines quoted above (prime-select or an old "
            "nouveau switch leaves them), run 'update-initramfs -u', then 'modprobe nvidia'.",
        )
    else:
        plan = fixes.load_module()
    return [
        _f(
            "module_not_loaded",
            ERROR,
            f"an nvidia module for {f.running_kernel} is installed but not loaded",
            ev,
            plan,
            "running",
            f.running_kernel,
        )
    ]


def _running_module(f: Facts) -> list[Finding]:
    k = f.running_kernel
    assert k
    st = f.modules[k]
    if f.module_loaded or st.present is not False:
        return []
    return _missing_module_cause(f, k, scope="running")


def _missing_module_cause(f: Facts, k: str, scope: str) -> list[Finding]:
    st = f.modules[k]
    where = "the running kernel" if scope == "running" else "the next-boot kernel"
    symptom = (list(f.smi.lines[:1]) + st.evidence) if scope == "running" else []
    others = [ln for kk, s in sorted(f.modules.items()) if kk != k and s.present for ln in s.evidence[:1]]
    if f.runfile and not f.dkms and scope == "running":
        ev = symptom + [f"{p} exists (installed with NVIDIA's .run installer)" for p in f.runfile_evidence] + others[:3]
        return [
            _f(
                "runfile_module_missing_after_kernel_upgrade",
                ERROR,
                f".run-installed driver has no module for {where} {k} (built only for an older kernel)",
                ev,
                fixes.runfile_missing(f, k),
                scope,
                k,
            )
        ]
    if st.build:
        log = st.build
        errors = log.compiler_errors
        base = symptom + [e.line for e in st.apt_events if e.kind == "build_failed"][-2:]
        if errors and (log.compilers_differ or not log.built_by):
            ev = base + log.compiler_lines + errors[:3]
            return [
                _f(
                    "dkms_build_fail_gcc_mismatch",
                    ERROR,
                    f"the DKMS build for {k} failed: the compiler differs from the one the kernel was built with",
                    ev,
                    fixes.gcc_mismatch(f, k, log.kernel_compiler_major),
                    scope,
                    k,
                )
            ]
        good = next(
            (
                kk
                for kk, s in sorted(f.modules.items(), key=lambda i: version_key(i[0]), reverse=True)
                if kk != k and s.present
            ),
            None,
        )
        ev = base + log.errors[:4] + [f"(from {st.build_log_path})"]
        return [
            _f(
                "dkms_build_fail_kernel_too_new",
                ERROR,
                f"the DKMS build of nvidia {log.module_version or ''} failed for {k}: the driver does not compile against this kernel".replace(
                    "  ", " "
                ),
                ev,
                fixes.kernel_too_new(f, k, good),
                scope,
                k,
            )
        ]
    failed = [e.line for e in st.apt_events if e.kind == "build_failed"]
    if failed:
        ev = symptom + failed[-3:]
        return [
            _f(
                "dkms_build_failed",
                ERROR,
                f"the DKMS build of nvidia failed for {k} (its make.log could not be read to say why)",
                ev,
                fixes.manual(
                    "read the build log, then fix the cause",
                    "Read /var/lib/dkms/nvidia/<version>/build/make.log (run mlops "
                    "driver-check as root to have it read): 'error:' lines about kernel functions mean the driver branch is too "
                    "old for this kernel; 'unrecognized command-line option' means the compiler differs from the kernel's. "
                    "The '(dkms apport) ... is not supported' line is not the cause.",
                ),
                scope,
                k,
            )
        ]
    if (f.dkms or f.dkms_packages) and (
        st.headers_installed is False or any(e.kind == "headers_skipped" for e in st.apt_events)
    ):
        ev = symptom + [e.line for e in st.apt_events if e.kind == "headers_skipped"][-2:] + st.headers_evidence
        if st.headers_installed is False:
            ev.append(f"linux-headers-{k} is not installed (no /usr/src/linux-headers-{k})")
        ev += [e.line for e in f.dkms][:3]
        return [
            _f(
                "kernel_headers_missing",
                ERROR,
                f"kernel headers for {where} {k} are missing, so DKMS skipped the nvidia build",
                ev,
                fixes.headers_missing(f, k),
                scope,
                k,
            )
        ]
    if scope == "running" and (f.dkms or f.dkms_packages):
        ev = symptom + [e.line for e in f.dkms] + [p.line for p in f.dkms_packages][:1] + f.dkms_errors
        if not any(e.kernel == k for e in f.dkms):
            ev.append(f"dkms status has no nvidia line for {k}")
        return [
            _f(
                "dkms_module_not_built_for_running_kernel",
                ERROR,
                f"DKMS never built the nvidia module for the running kernel {k}",
                ev,
                fixes.dkms_not_built(f, k),
                scope,
                k,
            )
        ]
    if scope == "running" and f.prebuilt_packages:
        ev = symptom + [p.line for p in f.prebuilt_packages][:3] + [f"no linux-modules-nvidia-*-{k} package installed"]
        return [
            _f(
                "prebuilt_module_missing_for_kernel",
                ERROR,
                f"no prebuilt nvidia module package for the running kernel {k}",
                ev,
                fixes.prebuilt_missing(f, k),
                scope,
                k,
            )
        ]
    return []


def _kernel_log_causes(f: Facts, driver_installed: bool) -> list[Finding]:
    out = []
    driver_down = not (f.smi.kind == "ok")
    if driver_down and (
        f.key_rejected_lines
        or (
            f.secure_boot
            and not f.module_loaded
            and f.modules.get(f.running_kernel or "")
            and f.modules[f.running_kernel].present
            and not f.modinfo.get("signer")
            and f.modinfo
        )
    ):  # type: ignore[index]
        if f.secure_boot is not False:
            ev = [*f.smi.lines[:1], *f.key_rejected_lines[-3:]]
            ev += [f.secure_boot_line] if f.secure_boot else []
            ev += [e.line for e in f.dkms if e.kernel == f.running_kernel and e.state == "installed"]
            if f.modinfo and not f.modinfo.get("signer"):
                ev.append(f"modinfo nvidia: no signer (filename: {f.modinfo.get('filename', '?')})")
            out.append(
                _f(
                    "secure_boot_module_rejected",
                    ERROR,
                    "Secure Boot rejects the nvidia module (unsigned, or signed by a key that is not enrolled)",
                    ev,
                    fixes.secure_boot(f),
                    "running",
                    f.running_kernel,
                )
            )
    nouveau_pci = [ln for d in f.pci_gpus if d.driver_in_use == "nouveau" for ln in d.lines]
    probe = f.klog.find(K.PROBE_NOT_CALLED)
    if driver_installed and (nouveau_pci or (probe and "nouveau" in f.loaded)):
        ev = nouveau_pci + (probe.lines if probe else [])
        if "nouveau" in f.loaded:
            ev.append("/proc/modules: nouveau is loaded")
        out.append(
            _f(
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
                _f(
                    "wrong_kernel_module_flavor",
                    ERROR,
                    f"the GPU {what}: wrong module flavour installed",
                    ev,
                    fixes.flavour(f, want_open),
                )
            )
            break
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
        out.append(
            _f(
                "gpu_unsupported_by_branch",
                ERROR,
                "the installed driver branch does not support this GPU",
                ev,
                fixes.unsupported_gpu(pci_id),
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
            _f(
                "gsp_firmware_missing",
                ERROR,
                f"GSP firmware for module version {version or '?'} is missing",
                ev,
                fixes.gsp_firmware(f, version),
            )
        )
    return out


def _mismatch(f: Facts) -> list[Finding]:
    api = f.klog.find(K.API_MISMATCH)
    if f.smi.kind != "version_mismatch" and not (api and f.smi.kind not in ("ok",) and f.smi.kind != "not_installed"):
        return []
    loaded = f.loaded_version or (api.groups[1] if api else None)
    disk = f.disk_version
    if not disk:
        d = [e.version for e in f.dkms if e.kernel == f.running_kernel and e.state == "installed"]
        disk = d[0] if len(d) == 1 else None
    user = (api.groups[0] if api else None) or f.smi.nvml_version or f.userspace_version
    ev = list(f.smi.lines[:2]) + (api.lines if api else [])
    if f.proc_version:
        ev.append(f.proc_version.line)
    if f.sys_module_version:
        ev.append(f"/sys/module/nvidia/version: {f.sys_module_version}")
    if f.modinfo.get("filename"):
        ev += [f"filename:       {f.modinfo['filename']}", f"version:        {disk}"]
    if loaded and disk and loaded == disk and user and not same_driver_version(user, disk):
        stale = sorted({e.version for e in f.dkms if not same_driver_version(e.version, user)})
        ev += [e.line for e in f.dkms if e.version in stale][:3]
        return [
            _f(
                "version_mismatch_stale_module",
                ERROR,
                f"userspace {user} but the module for this kernel is {disk}: a stale nvidia.ko is loaded, a reboot will not help",
                ev,
                fixes.stale_module(f, stale),
                "running",
                f.running_kernel,
            )
        ]
    return [
        _f(
            "version_mismatch_pending_reboot",
            ERROR,
            f"userspace driver {user or '?'} but the loaded module is {loaded or '?'}: the upgrade waits for a reboot or module reload",
            ev,
            fixes.mismatch_reload(f),
            "running",
            f.running_kernel,
        )
    ]


def _fabric_manager(f: Facts) -> list[Finding]:
    fm = next((p for p in f.packages if p.installed and re.match(r"^nvidia-fabricmanager-\d", p.name)), None)
    journal = [ln for ln in f.fm_journal if "don't match with driver version" in ln]
    driver = f.loaded_version or f.userspace_version
    differs = fm is not None and driver is not None and upstream_version(fm.version) != driver
    if not journal and not (differs and f.fm_active not in (None, "active")):
        return []
    ev = journal[-2:] + ([fm.line] if fm else []) + ([f.proc_version.line] if f.proc_version else [])
    if f.fm_active:
        ev.append(f"systemctl is-active nvidia-fabricmanager: {f.fm_active}")
    return [
        _f(
            "fabricmanager_version_mismatch",
            ERROR,
            "fabric manager's version differs from the driver's: NVSwitch fabric down, CUDA fails (error 802)",
            ev,
            fixes.fabricmanager(f, fm.name if fm else None),
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
            _f(
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
            _f(
                "container_toolkit_missing",
                WARNING,
                "the host driver works but Docker has no NVIDIA runtime (containers get no GPU)",
                [rt_line, "no nvidia-container-toolkit package installed"],
                fixes.toolkit(),
            )
        ]
    if f.dev_nvidia and f.dev_char is not None and not any(n.startswith("195:") for n in f.dev_char):
        return [
            _f(
                "container_lost_gpu_after_daemon_reload",
                WARNING,
                "no /dev/char symlinks for the NVIDIA devices: a 'systemctl daemon-reload' will take running containers' GPUs away",
                [rt_line, "/dev: " + " ".join(sorted(f.dev_nvidia)[:6]), "/dev/char has no 195:* entries"],
                fixes.dev_char_symlinks(inside=False),
            )
        ]
    return []


# --- the kernel that boots next ------------------------------------------------------------


def _next_kernels(f: Facts, extra: str | None) -> list[Finding]:
    targets = []
    if extra and extra != f.running_kernel:
        targets.append((extra, "--kernel"))
    if f.next_kernel and f.next_kernel != f.running_kernel and f.next_kernel != extra:
        targets.append((f.next_kernel, f.next_kernel_reason or "next boot"))
    installed_driver = f.dkms or f.dkms_packages or f.prebuilt_packages or f.runfile
    out: list[Finding] = []
    for k, reason in targets:
        st = f.modules.get(k)
        if not installed_driver or st is None or st.present is not False:
            continue
        causes = _missing_module_cause(f, k, scope="next")
        ev = [f"kernel that boots next: {k} ({reason}); running: {f.running_kernel}"]
        if reason.startswith("GRUB default: "):
            ev.append(reason[len("GRUB default: ") :])
        ev += [f"/lib/modules/{k}: no nvidia.ko (updates/dkms, kernel/drivers/video, kernel/nvidia-*)"]
        ev += [e.line for e in st.dkms_entries] or (
            [f"dkms status has no installed nvidia line for {k}"] if f.dkms_seen else []
        )
        ev += [e.line for e in st.apt_events][-3:] + [
            f"/var/run/reboot-required.pkgs: {p}" for p in f.reboot_pkgs if p.startswith("linux-")
        ][:2]
        out += causes
        out.append(
            _f(
                "next_boot_kernel_missing_module",
                ERROR,
                f"the driver works now, but kernel {k} that boots next has no nvidia module",
                ev,
                fixes.next_boot(f, k, cause_found=bool(causes)),
                "next",
                k,
            )
        )
    return out


# --- JSON parts ---------------------------------------------------------------------------


def _kernel_json(f: Facts, extra: str | None) -> dict[str, Any]:
    doc: dict[str, Any] = {"running": f.running_kernel, "next_boot": f.next_kernel}
    if f.next_kernel_reason:
        doc["next_boot_reason"] = f.next_kernel_reason
    doc["installed"] = f.installed_kernels
    if extra:
        doc["judged"] = extra
    return doc


def _driver_json(f: Facts) -> dict[str, Any]:
    return {
        "userspace": f.userspace_version,
        "module_loaded": f.loaded_version,
        "module_on_disk": f.disk_version,
        "module_flavor": ("open" if f.proc_version.open else "proprietary")
        if f.proc_version
        else (
            "open"
            if "MIT" in f.modinfo.get("license", "")
            else ("proprietary" if f.modinfo.get("license") == "NVIDIA" else None)
        ),
        "install_method": f.install_method,
        "secure_boot": f.secure_boot,
    }


def _gpus_json(f: Facts) -> list[dict[str, Any]]:
    if f.smi_gpus:
        by_pci = {d.slot: d for d in f.pci_gpus}
        return [
            {
                "pci": g.pci,
                "name": g.name,
                "kernel_driver": by_pci[g.pci].driver_in_use if g.pci in by_pci else "nvidia",
            }
            for g in f.smi_gpus
        ]
    if f.pci_gpus:
        return [{"pci": d.slot, "name": d.name, "kernel_driver": d.driver_in_use} for d in f.pci_gpus]
    return [
        {"pci": addr, "name": f"NVIDIA device 10de:{dev.lower().replace('0x', '')}", "kernel_driver": None}
        for addr, dev, _ in f.sysfs_nvidia
    ]
