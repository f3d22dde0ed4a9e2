"""Findings about the nvidia module of one kernel (running or next): missing, not built, failed
build, missing headers, not loaded. Pure: decisions over ``Facts`` only.
"""

from __future__ import annotations

import re

from mlops_cli.driver import fixes
from mlops_cli.driver.buildlogs import BuildLog
from mlops_cli.driver.facts import Facts
from mlops_cli.driver.model import ERROR, Finding, make_finding
from mlops_cli.driver.parse import version_key


def nvidia_blacklisted(f: Facts) -> list[str]:
    """The lines that keep nvidia from loading: 'blacklist nvidia' / 'install nvidia /bin/false'
    in modprobe.d, modprobe.blacklist=nvidia on the kernel command line."""
    out = []
    for path, text in sorted(f.collected.files.items()):
        if path.startswith(("/etc/modprobe.d/", "/lib/modprobe.d/")) and text:
            out += [
                f"{path}: {ln.strip()}"
                for ln in text.splitlines()
                if re.match(r"^\s*(blacklist\s+nvidia\s*$|install\s+nvidia\s+/bin/(false|true))", ln)
            ]
    cmdline = (f.collected.text("/proc/cmdline") or "").strip()
    if re.search(r"(?:modprobe|module)\.blacklist=\S*\bnvidia\b", cmdline):
        out.append(f"/proc/cmdline: {cmdline}")
    return out


def module_not_loaded_findings(f: Facts) -> list[Finding]:
    """A module for this kernel is on disk but not loaded, and nothing rejected it."""
    st = f.modules.get(f.running_kernel or "")
    if f.module_loaded or not st or not st.present:
        return []
    blacklist = nvidia_blacklisted(f)
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
        make_finding(
            "module_not_loaded",
            ERROR,
            f"an nvidia module for {f.running_kernel} is installed but not loaded",
            ev,
            plan,
            "running",
            f.running_kernel,
        )
    ]


def running_module_findings(f: Facts) -> list[Finding]:
    k = f.running_kernel
    assert k
    st = f.modules[k]
    if st.present is not False:
        return []
    # A loaded module with none on disk: userspace was upgraded and the new module never got
    # built. A reboot would leave no module at all, so the build problem is the finding.
    if f.module_loaded and f.smi.kind != "version_mismatch":
        return []
    return _missing_module_cause(f, k, scope="running")


def _missing_module_cause(f: Facts, k: str, scope: str) -> list[Finding]:
    st = f.modules[k]
    where = "the running kernel" if scope == "running" else "the next-boot kernel"
    symptom = (list(f.smi.lines[:1]) + st.evidence) if scope == "running" else []
    others = [ln for kk, s in sorted(f.modules.items()) if kk != k and s.present for ln in s.evidence[:1]]
    build = st.build_class if st.build_class is not None and st.build_class.failed else None
    if build is not None:
        return _build_failure(f, k, scope, symptom, build)
    # Precondition: a .run driver that was installed (its uninstaller, or a completed install in
    # its log). A log left by a FAILED install is a build failure (above), never this.
    installed_by_run = "/usr/bin/nvidia-uninstall" in f.runfile_evidence or any(log.succeeded for log in f.installer_logs)
    if f.runfile and installed_by_run and not f.dkms_registered and scope == "running":
        ev = symptom + [f"{p} exists (installed with NVIDIA's .run installer)" for p in f.runfile_evidence] + others[:3]
        return [
            make_finding(
                "runfile_module_missing_after_kernel_upgrade",
                ERROR,
                f".run-installed driver has no module for {where} {k} (built only for an older kernel)",
                ev,
                fixes.runfile_missing(f, k),
                scope,
                k,
            )
        ]
    failed = [e.line for e in st.apt_events if e.kind == "build_failed"]
    if failed:
        ev = symptom + failed[-3:]
        logs = [p for p in f.collected.files if p.endswith("/build/make.log") and p.startswith("/var/lib/dkms/nvidia")]
        read = [p for p in logs if f.collected.text(p)]
        why = (
            f"{read[0]} was read and names no cause" if read else "its make.log could not be read to say why"
        )
        ev += [f"{p}: no error line" for p in read][:1]
        return [
            make_finding(
                "dkms_build_failed",
                ERROR,
                f"the DKMS build of nvidia failed for {k} ({why})",
                ev,
                fixes.build_failed_unexplained(read[0]) if read else fixes.manual(
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
    if f.dkms_registered and (
        st.headers_installed is False or any(e.kind == "headers_skipped" for e in st.apt_events)
    ):
        ev = symptom + [e.line for e in st.apt_events if e.kind == "headers_skipped"][-2:] + st.headers_evidence
        if st.headers_installed is False:
            ev.append(f"linux-headers-{k} is not installed (no /usr/src/linux-headers-{k})")
        ev += [e.line for e in f.dkms][:3]
        return [
            make_finding(
                "kernel_headers_missing",
                ERROR,
                f"kernel headers for {where} {k} are missing, so DKMS skipped the nvidia build",
                ev,
                fixes.headers_missing(f, k),
                scope,
                k,
            )
        ]
    if scope == "running" and f.dkms_registered:
        ev = symptom + [e.line for e in f.dkms] + [p.line for p in f.dkms_packages][:1] + f.dkms_errors
        if not any(e.kernel == k for e in f.dkms):
            ev.append(f"dkms status has no nvidia line for {k}")
        return [
            make_finding(
                "dkms_module_not_built_for_running_kernel",
                ERROR,
                f"DKMS never built the nvidia module for the running kernel {k}",
                ev,
                fixes.dkms_not_built(f, k),
                scope,
                k,
            )
        ]
    kmods = rpm_precompiled_kmods(f)
    if scope == "running" and kmods:
        good = [kk for kk, s in sorted(f.modules.items(), key=lambda i: version_key(i[0]), reverse=True) if kk != k and s.present]
        ev = symptom + [f"rpm: {n} {v}" for n, v in kmods][:3] + others[:2]
        ev.append(f"no nvidia module under /lib/modules/{k} (precompiled kmods are built for one kernel each)")
        return [
            make_finding(
                "prebuilt_module_missing_for_kernel",
                ERROR,
                f"no precompiled nvidia kmod for the running kernel {k}",
                ev,
                fixes.rpm_kmod_missing(f, k, good[0] if good else None),
                scope,
                k,
            )
        ]
    if scope == "running" and f.prebuilt_packages:
        ev = symptom + [p.line for p in f.prebuilt_packages][:3] + [f"no linux-modules-nvidia-*-{k} package installed"]
        return [
            make_finding(
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


def rpm_precompiled_kmods(f: Facts) -> list[tuple[str, str]]:
    """NVIDIA's / the distribution's precompiled kmod packages (``kmod-nvidia``,
    ``kmod-nvidia-open``, ``kmod-nvidia-latest``), when nothing builds modules here (no akmod,
    no DKMS flavour)."""
    names = [n for n, _ in f.rpm_packages]
    if any(n.startswith("akmod-nvidia") or n.endswith("-dkms") or n == "dkms" for n in names) or f.dkms_registered:
        return []
    return [(n, v) for n, v in f.rpm_packages if re.match(r"^kmod-nvidia(?:-open)?(?:-latest)?(?:-\d[\w.]*)?$", n)]


def next_kernel_findings(f: Facts, extra: str | None) -> list[Finding]:
    targets = []
    if extra and extra != f.running_kernel:
        targets.append((extra, "--kernel"))
    if f.next_kernel and f.next_kernel != f.running_kernel and f.next_kernel != extra:
        targets.append((f.next_kernel, f.next_kernel_reason or "next boot"))
    installed_driver = f.dkms_registered or f.prebuilt_packages or f.runfile
    out: list[Finding] = []
    for k, reason in targets:
        st = f.modules.get(k)
        if not installed_driver or st is None or st.present is not False:
            continue
        causes = _missing_module_cause(f, k, scope="next")
        asked = reason == "--kernel"
        what = f"kernel {k} (asked for with --kernel)" if asked else f"kernel {k} that boots next"
        ev = [f"{'kernel judged' if asked else 'kernel that boots next'}: {k} ({reason}); running: {f.running_kernel}"]
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
            make_finding(
                "next_boot_kernel_missing_module",
                ERROR,
                ("the driver works now, but " if f.smi.kind == "ok" else "") + f"{what} has no nvidia module",
                ev,
                fixes.next_boot(f, k, cause_found=bool(causes)),
                "next",
                k,
            )
        )
    return out


def _build_failure(f: Facts, k: str, scope: str, symptom: list[str], build: BuildLog) -> list[Finding]:
    """The build (DKMS make.log or the .run installer's log) failed for kernel k: say why."""
    st = f.modules[k]
    base = symptom + [e.line for e in st.apt_events if e.kind == "build_failed"][-2:]
    base += [p.line for p in f.half_configured][:2]
    source = f"(from {build.path})"
    operator = f.context.kind == "operator"
    if build.kind == "headers" and f.installed(f"linux-headers-{k}") is not None:
        # The headers package is installed, yet the build found no usable kernel configuration: either
        # that package is damaged or the driver's build system does not know this kernel (a kernel
        # newer than the branch supports, e.g. 590 on 7.0). Which one the log cannot say.
        row = f.installed(f"linux-headers-{k}")
        return [
            make_finding(
                "dkms_build_failed",
                ERROR,
                f"the nvidia build for {k} could not configure against the installed headers",
                base + build.lines + [source, row.line],
                fixes.manual(
                    "check the headers package, then the driver branch's kernel support; do not re-run the same build",
                    f"linux-headers-{k} is installed, but the build reports no usable kernel configuration. Check the package "
                    f"('dpkg -V linux-headers-{k}'; if files are missing, 'apt-get install --reinstall linux-headers-{k}'). If it "
                    "is intact, the driver branch does not support this kernel yet: boot the previous kernel and move to a "
                    "branch that supports it (or hold the kernel) rather than rebuilding.",
                ),
                scope,
                k,
            )
        ]
    if build.kind == "headers":
        return [
            make_finding(
                "kernel_headers_missing",
                ERROR,
                f"the kernel headers for {k} are missing or incomplete, so the driver build could not start",
                base + build.lines + [source],
                fixes.headers_reinstall(f, k),
                scope,
                k,
            )
        ]
    if build.kind == "deps":
        return [
            make_finding(
                "build_dependency_missing",
                ERROR,
                f"the nvidia module build for {k} stopped: {', '.join(build.missing) or 'a build tool'} is not installed",
                base + build.lines + [source],
                fixes.build_dependency(f, k, build.missing, akmods=build.path.startswith("/var/cache/akmods/")),
                scope,
                k,
            )
        ]
    if build.kind in ("cc_check", "cc_flags"):
        ev = base + build.lines + [source]
        return [
            make_finding(
                "dkms_build_fail_gcc_mismatch",
                ERROR,
                f"the driver build for {k} failed: the compiler ({build.used_cc or '?'}) differs from the kernel's ({build.kernel_cc or '?'})",
                ev,
                fixes.gcc_mismatch_build(f, k, build),
                scope,
                k,
            )
        ]
    if build.kind == "preempt_rt":
        good = next((kk for kk, s in sorted(f.modules.items(), key=lambda i: version_key(i[0]), reverse=True) if kk != k and s.present), None)
        return [
            make_finding(
                "kernel_preempt_rt_unsupported",
                ERROR,
                f"the nvidia build refuses {k}: it is a PREEMPT_RT (real-time) kernel, which the driver does not support",
                base + build.lines + [source],
                fixes.manual(
                    "boot a non-real-time kernel; rebuilding for this kernel fails the same way",
                    "NVIDIA's build checks for PREEMPT_RT and bails out by design, so re-running DKMS or reinstalling the driver "
                    f"cannot help. Boot {'the non-RT kernel ' + good + ' (it has a module)' if good else 'a standard (non-RT) kernel of your distribution'} "
                    "and make it the default; keep the real-time kernel only if you accept building with "
                    "IGNORE_PREEMPT_RT_PRESENCE=1, an override NVIDIA does not support.",
                ),
                scope,
                k,
            )
        ]
    if build.kind in ("gpl_only", "compile"):
        good = next(
            (
                kk
                for kk, s in sorted(f.modules.items(), key=lambda i: version_key(i[0]), reverse=True)
                if kk != k and s.present
            ),
            None,
        )
        version = (st.build.module_version if st.build else None) or build.installer_version or ""
        why = (
            f"it uses {', '.join(build.symbols)}, which this kernel exports GPL-only"
            if build.kind == "gpl_only"
            else "the driver does not compile against this kernel"
        )
        return [
            make_finding(
                "dkms_build_fail_kernel_too_new",
                ERROR,
                f"the build of nvidia {version} failed for {k}: {why}".replace("nvidia  ", "nvidia "),
                base + build.lines + [source],
                fixes.operator_rebuild(version, why) if operator else fixes.kernel_too_new(f, k, good, build.kind == "gpl_only"),
                scope,
                k,
            )
        ]
    return [
        make_finding(
            "dkms_build_failed",
            ERROR,
            f"the driver build failed for {k}; the log seen does not say why",
            base + build.lines + [source],
            fixes.build_failed_unexplained(build.path),
            scope,
            k,
        )
    ]
