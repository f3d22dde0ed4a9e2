"""Turn ``Collected`` (raw text) into ``Facts``. Pure: reads only the collected data."""

from __future__ import annotations

import re

from mlops_cli.driver import buildlogs, distro, timeline
from mlops_cli.driver import context as ctx_mod
from mlops_cli.driver import kernlog as K
from mlops_cli.driver import parse as P
from mlops_cli.driver.facts import MODULE_FILE, PREBUILT_PKG, Facts, KernelModuleState
from mlops_cli.driver.model import NotSeen
from mlops_cli.driver.probe import DKMS_TREES, PROBES, Collected

# DKMS names the driver "nvidia" (Ubuntu, NVIDIA's .run --dkms, CUDA repo) or "nvidia-current"
# (Debian); peer-memory, nvidia-fs and friends are other modules.
DKMS_DRIVER = re.compile(r"^nvidia(?:-current|-open|-tesla(?:-\d+)?|-srv)?$")
_HOST_ONLY_PROBES = ("dkms_status", "modinfo_nvidia", "modprobe_dry_run", "mokutil_sb_state", "lspci_nvidia")
INSTALLER_LOGS = ("/var/log/nvidia-installer.log", "/run/nvidia/driver/var/log/nvidia-installer.log")
# The kernel an installer log built for: SYSSRC=/lib/modules/K/build, "Kernel source path:
# '/lib/modules/K/build'", "/usr/src/linux-headers-K/Makefile", "dkms build ... -k K".
_INSTALLER_KERNEL = re.compile(
    r"/lib/modules/([^/\s'\"]{1,200})/build|/usr/src/linux-headers-([^/\s'\"]{1,200})/|dkms build -m \S{1,80} -v \S{1,80} -k ([^\s`'\":]{1,200})"
)

_WHAT = {
    "dmesg": "kernel log",
    "journal_kernel": "kernel journal",
    "lspci_nvidia": "PCI devices",
    "dkms_status": "DKMS state",
    "dpkg_list": "installed packages",
    "mokutil_sb_state": "Secure Boot state",
    "docker_runtimes": "Docker runtimes",
}


def _not_seen(c: Collected) -> list[NotSeen]:
    out = []
    dmesg, journal = c.command("dmesg"), c.command("journal_kernel")
    # Either one shows the kernel log: the other's failure hides nothing.
    klog_seen = (dmesg.ok and bool(dmesg.stdout.strip())) or journal.ok
    for key, (argv, timeout) in PROBES.items():
        r = c.command(key)
        if key in (
            "fabricmanager_active",
            "fabricmanager_journal",
            "nvidia_smi",
            "nvidia_smi_query",
            "systemd_detect_virt",
            "systemd_detect_container",
            "uptime_since",
            "ofed_info",
            "mok_test_dkms",
            "mok_test_shim",
        ):
            continue  # their failure is evidence (or irrelevant), not blindness
        if klog_seen and key in ("dmesg", "journal_kernel"):
            continue
        if key == "docker_runtimes" and r.not_installed:
            continue  # no Docker here: no container problem to miss
        if r.not_installed:
            out.append(NotSeen(key, f"{argv[0]} is not installed"))
        elif r.timed_out:
            out.append(NotSeen(key, f"timed out after {timeout:g} s"))
        elif r.rc != 0 and re.search(
            r"[Pp]ermission denied|[Oo]peration not permitted|must be root|[Nn]ot permitted|insufficient permissions",
            r.stdout + r.stderr,
        ):
            reason = (r.stderr or r.stdout).strip().splitlines()[0][:160]
            out.append(NotSeen(key, f"permission denied ({reason}); run as root to see {_WHAT.get(key, 'it')}"))
    for path, text in sorted(c.files.items()):
        if text is None:
            out.append(NotSeen(path, "permission denied; run as root to read it"))
    for path in sorted(c.unlistable):
        out.append(NotSeen(path, "permission denied; run as root to list it"))
    return out


def _kernels(c: Collected) -> list[str]:
    boot = c.listing("/boot") or []
    # Only versioned names are kernels: Arch's vmlinuz-linux / vmlinuz-linux-lts name the package, and its
    # release is then only in /lib/modules.
    from_boot = [
        n[len("vmlinuz-") :]
        for n in boot
        if n.startswith("vmlinuz-") and not n.endswith(".old") and n[len("vmlinuz-") :][:1].isdigit()
    ]
    if from_boot:
        return sorted(set(from_boot), key=P.version_key)
    found = []
    for k in c.listing("/lib/modules") or []:
        sub = c.listing(f"/lib/modules/{k}")
        # A folder left with only updates/ (modules of a removed kernel) is not a kernel.
        if sub is None or "kernel" in sub or "modules.dep" in sub:
            found.append(k)
    return sorted(found, key=P.version_key)


def read_facts(c: Collected) -> Facts:
    uname = c.command("uname_r")
    running = uname.stdout.strip() or None if uname.ok else None
    kernels = _kernels(c)
    grub_kernel, grub_line = P.grub_default_kernel(c.text("/boot/grub/grubenv") or "")
    if grub_kernel and (grub_kernel in kernels or not kernels):
        next_kernel, next_reason = grub_kernel, f"GRUB default: {grub_line}"
    elif kernels:
        next_kernel, next_reason = kernels[-1], "newest installed kernel"
    else:
        next_kernel, next_reason = running, None

    smi_r = c.command("nvidia_smi")
    smi = P.parse_nvidia_smi(smi_r.rc, smi_r.stdout, smi_r.stderr)
    q = c.command("nvidia_smi_query")
    smi_gpus = P.parse_smi_query(q.stdout) if q.ok else []

    lspci = c.command("lspci_nvidia")
    pci_gpus = [d for d in P.parse_lspci(lspci.stdout) if d.is_gpu] if lspci.ok else []
    sysfs = []
    for dev in c.listing("/sys/bus/pci/devices") or []:
        base = f"/sys/bus/pci/devices/{dev}"
        if (c.text(f"{base}/vendor") or "").strip().lower() == "0x10de":
            cls = (c.text(f"{base}/class") or "").strip().lower()
            if cls.startswith("0x03") or not cls:
                sysfs.append((dev, (c.text(f"{base}/device") or "").strip(), cls))
    pci_visible = lspci.ok or c.listing("/sys/bus/pci/devices") is not None

    dpkg_r = c.command("dpkg_list")
    packages = P.parse_dpkg(dpkg_r.stdout) if dpkg_r.ok else []
    dkms_r = c.command("dkms_status")
    dkms_text = dkms_r.stdout + "\n" + dkms_r.stderr
    dkms_seen = (
        not dkms_r.not_installed
        and "currently not installed" not in dkms_text
        and "Command 'dkms' not found" not in dkms_text
    )
    dkms = [e for e in P.parse_dkms_status(dkms_r.stdout) if DKMS_DRIVER.match(e.module)] if dkms_seen else []

    modinfo_r = c.command("modinfo_nvidia")
    modinfo = P.parse_modinfo(modinfo_r.stdout) if modinfo_r.ok else {}
    modinfo_error = (
        None if modinfo_r.ok or modinfo_r.not_installed else (modinfo_r.stderr or modinfo_r.stdout).strip() or None
    )
    mp = c.command("modprobe_dry_run")
    modprobe_lines = (
        [ln.rstrip() for ln in (mp.stdout + "\n" + mp.stderr).splitlines() if ln.strip()]
        if not mp.not_installed
        else []
    )

    dmesg, journal = c.command("dmesg"), c.command("journal_kernel")
    if dmesg.ok and dmesg.stdout.strip():
        klog_text, klog_seen = dmesg.stdout, True
    elif journal.ok:
        klog_text, klog_seen = journal.stdout, True
    else:
        klog_text, klog_seen = "", False
    klog = K.KernelLog(klog_text)

    sb_r = c.command("mokutil_sb_state")
    sb_text = sb_r.stdout + "\n" + sb_r.stderr
    secure_boot = None if sb_r.not_installed else P.parse_secure_boot(sb_text)
    sb_line = next((ln.strip() for ln in sb_text.splitlines() if ln.strip()), None)

    installer_log = c.text("/var/log/nvidia-installer.log") or ""
    inst_ver = re.search(r"installer version:\s*([\d.]+)", installer_log)
    runfile_evidence = [
        p
        for p in ("/usr/bin/nvidia-uninstall", "/usr/bin/nvidia-installer", "/var/log/nvidia-installer.log")
        if c.exists(p)
    ]

    docker = c.command("docker_runtimes")
    fm = c.command("fabricmanager_active")
    fm_j = c.command("fabricmanager_journal")
    dev = c.listing("/dev") or []
    proc_modules = c.text("/proc/modules")
    sys_ver = (c.text("/sys/module/nvidia/version") or "").strip() or None
    firmware = c.listing("/lib/firmware/nvidia")

    # Every place a rejected signature can show up: modprobe, nvidia-smi (it calls modprobe), the log.
    key_lines = [m.lines[-1] for m in klog.find_all(K.KEY_REJECTED)]
    for key in ("modprobe_dry_run", "nvidia_smi"):
        r = c.command(key)
        key_lines += [
            ln.rstrip()
            for ln in (r.stdout + "\n" + r.stderr).splitlines()
            if re.search(r"Key was rejected by service|Required key not available", ln)
        ]

    # "module verification failed" is a taint warning printed when enforcement is OFF; it only
    # counts as a rejection when Secure Boot is on and no nvidia module is loaded.
    loaded_now = P.loaded_modules(c.text("/proc/modules") or "")
    if (
        not key_lines
        and secure_boot
        and "nvidia" not in loaded_now
        and not (c.text("/sys/module/nvidia/version") or "").strip()
    ):
        key_lines += [
            m.lines[-1] for m in klog.find_all(K.MODULE_SIG_TAINT) if (m.groups[0] or "").startswith("nvidia")
        ][-1:]

    # "mokutil --test-key KEY": "KEY is not enrolled" is direct evidence for Secure Boot rejections.
    mok_lines = [
        ln.strip()
        for key in ("mok_test_dkms", "mok_test_shim")
        for ln in (c.command(key).stdout + "\n" + c.command(key).stderr).splitlines()
        if re.search(r"is (?:not|already) enrolled", ln)
    ]

    virt = None
    vendor = " ".join(
        filter(
            None,
            [
                (c.text("/sys/class/dmi/id/sys_vendor") or "").strip(),
                (c.text("/sys/class/dmi/id/product_name") or "").strip(),
            ],
        )
    )
    if ctx_mod.VIRT_DMI.search(vendor):
        virt = vendor
    container_marker = next((p for p in ("/.dockerenv", "/run/.containerenv") if c.exists(p)), None)

    facts = Facts(
        collected=c,
        running_kernel=running,
        next_kernel=next_kernel,
        next_kernel_reason=next_reason,
        installed_kernels=kernels,
        smi=smi,
        smi_gpus=smi_gpus,
        pci_gpus=pci_gpus,
        sysfs_nvidia=sysfs,
        pci_visible=pci_visible,
        packages=packages,
        dpkg_seen=dpkg_r.ok,
        dkms=dkms,
        dkms_seen=dkms_seen,
        dkms_errors=P.dkms_errors(dkms_r.stdout + "\n" + dkms_r.stderr) if dkms_seen else [],
        modinfo=modinfo,
        modinfo_error=modinfo_error,
        modprobe_lines=modprobe_lines,
        loaded=P.loaded_modules(proc_modules) if proc_modules else set(),
        proc_version=P.parse_proc_version(c.text("/proc/driver/nvidia/version") or ""),
        sys_module_version=sys_ver,
        secure_boot=secure_boot,
        secure_boot_line=sb_line,
        klog=klog,
        klog_seen=klog_seen,
        apt_events=P.parse_apt_log(
            (c.text("/var/log/apt/term.log") or "") + "\n" + (c.text("/var/log/pacman.log") or "")
        ),
        runfile=bool(runfile_evidence)
        and not any(
            re.match(r"^nvidia-(?:(?:dkms|driver|utils)-|\d{3}(?:-updates)?$)", p.name) and p.installed
            for p in packages
        ),
        runfile_evidence=runfile_evidence,
        installer_version=inst_ver.group(1) if inst_ver else None,
        in_container=container_marker is not None,
        container_marker=container_marker,
        dev_nvidia=[d for d in dev if d.startswith("nvidia")],
        dev_char=c.listing("/dev/char"),
        docker_runtimes=docker.stdout.strip() if docker.ok else None,
        fm_active=fm.stdout.strip() if not fm.not_installed else None,
        fm_journal=[ln.rstrip() for ln in fm_j.stdout.splitlines() if ln.strip()] if fm_j.ok else [],
        reboot_required=c.exists("/var/run/reboot-required"),
        reboot_pkgs=[ln.strip() for ln in (c.text("/var/run/reboot-required.pkgs") or "").splitlines() if ln.strip()],
        os=P.os_release(c.text("/etc/os-release") or ""),
        virt=virt,
        firmware_versions=firmware,
        key_rejected_lines=key_lines,
        mok_test_lines=mok_lines,
        not_seen=_not_seen(c),
    )
    facts.rpm_packages = _rows(c.command("rpm_list"), "\t")
    facts.pacman_packages = _rows(c.command("pacman_list"), " ")
    facts.distro = distro.family(
        facts.os,
        facts.dpkg_seen,
        bool(facts.rpm_packages),
        bool(facts.pacman_packages),
        running,
        ostree=c.exists("/run/ostree-booted"),
    )
    # The GPU Operator's driver container runs fabric manager; its log lies under the driver root.
    facts.fm_journal += [
        ln.rstrip()
        for ln in (c.text("/run/nvidia/driver/var/log/fabricmanager.log") or "").splitlines()[-50:]
        if ln.strip()
    ]
    facts.installer_logs = [buildlogs.classify(text, path) for path in INSTALLER_LOGS if (text := c.text(path))]
    for k in {*kernels, *(x for x in (running, next_kernel) if x)}:
        facts.modules[k] = _module_state(facts, c, k)
    names = [g.name for g in smi_gpus] + [d.name for d in pci_gpus]
    from mlops_cli.driver.rules_context import vgpu_refusals

    facts.context = ctx_mod.decide(
        c, names, vgpu_refusals(facts, ctx_mod.vm_evidence(c) is not None), facts.module_loaded, facts.runfile
    )
    if facts.context.kind in (ctx_mod.CONTAINER, ctx_mod.WSL):
        # The host's tools (DKMS, modinfo, mokutil) are not expected here: their absence hides nothing.
        facts.not_seen = [n for n in facts.not_seen if n.probe not in _HOST_ONLY_PROBES]
    tl = timeline.read(
        c.command("uptime_since").stdout,
        (c.text("/var/log/dpkg.log") or "")
        + timeline.other_package_logs(c.text("/var/log/pacman.log") or "", c.text("/var/log/dnf.rpm.log") or ""),
        c.text("/var/log/apt/term.log") or "",
        klog_text,
        facts.reboot_pkgs,
    )
    facts.rebooted_since_driver_change = tl.rebooted_since_change
    facts.boot_time = tl.boot_line
    facts.timeline_evidence = tl.evidence()
    facts.failed_steps = _failed_steps(facts)
    return facts


def _rows(r, sep: str) -> list[tuple[str, str]]:
    """``name<sep>version`` lines of rpm -qa / pacman -Q; nothing when the program did not answer."""
    if not r.ok:
        return []
    out = []
    for ln in r.stdout.splitlines()[:20000]:
        name, _, version = ln.strip().partition(sep)
        if name and version:
            out.append((name.strip(), version.strip()))
    return out


def akmods_logs(c: Collected, kernel: str) -> list[tuple[str, str]]:
    """akmods' logs for ``kernel`` (``<driver>-for-<kernel>.failed.log`` when the build failed)."""
    out = []
    for name in sorted(c.listing("/var/cache/akmods/nvidia") or []):
        path = f"/var/cache/akmods/nvidia/{name}"
        if name.endswith(f"-for-{kernel}.failed.log") and (text := c.text(path)):
            out.append((path, text))
    return out


def installer_kernel(log: buildlogs.BuildLog, text: str) -> str | None:
    m = _INSTALLER_KERNEL.search(text)
    return next((g for g in m.groups() if g), None) if m else None


def _failed_steps(f: Facts) -> set[tuple[str, ...]]:
    """The steps the evidence shows just failed, as argv: a plan never repeats one unchanged."""
    failed: set[tuple[str, ...]] = set()
    for k, st in f.modules.items():
        failed_here = (st.build_class is not None and st.build_class.failed) or any(
            e.kind == "build_failed" for e in st.apt_events
        )
        if not failed_here:
            continue
        failed.add(("dkms", "autoinstall", "-k", k))
        if st.build_log_path and st.build_log_path.startswith("/var/cache/akmods/"):
            failed.update(
                {("akmods", "--force"), ("akmods", "--force", "--kernels", k), ("akmods", "--rebuild", "--force")}
            )
        for e in f.dkms:
            failed.add(("dkms", "install", f"{e.module}/{e.version}", "-k", k))
            failed.add(("dkms", "build", f"{e.module}/{e.version}", "-k", k))
        if any(p.half_configured for p in f.dkms_packages):
            # finishing the half-configured package re-runs the same postinst build
            failed.add(("apt-get", "install", "-f", "-y"))
            failed.add(("dpkg", "--configure", "-a"))
        cls = st.build_class
        if cls is not None and cls.kind in ("cc_check", "cc_flags") and cls.same_cc_major:
            # the compiler of that major version is the one that just failed the check
            major = buildlogs.major(cls.used_cc)
            failed.add(("apt-get", "install", "-y", f"gcc-{major}", f"g++-{major}"))
    return failed


def _module_state(f: Facts, c: Collected, kernel: str) -> KernelModuleState:
    st = KernelModuleState(kernel, None)
    base = f"/lib/modules/{kernel}"
    seen_any = c.listing(base) is not None
    for sub in ("updates/dkms", "kernel/drivers/video", "updates", "extra", "extra/nvidia"):
        names = c.listing(f"{base}/{sub}") or []
        st.evidence += [f"{base}/{sub}/{n}" for n in names if MODULE_FILE.match(n)]
    for n in c.listing(f"{base}/kernel") or []:
        if n.startswith("nvidia"):
            st.evidence.append(f"{base}/kernel/{n}/")
    st.dkms_entries = [e for e in f.dkms if e.kernel == kernel]
    st.evidence += [e.line for e in st.dkms_entries if e.state == "installed"]
    st.evidence += [p.line for p in f.prebuilt_packages if PREBUILT_PKG.match(p.name).group("k") == kernel]  # type: ignore[union-attr]
    if kernel == f.running_kernel:
        if f.modinfo.get("filename"):
            st.evidence.append(f"filename:       {f.modinfo['filename']}")
        st.evidence += [
            ln
            for ln in f.modprobe_lines
            if ln.startswith("insmod ") and any(MODULE_FILE.match(tok.rsplit("/", 1)[-1]) for tok in ln.split()[1:])
        ]
    if st.evidence:
        st.present = True
    elif seen_any or f.dkms_seen or (kernel == f.running_kernel and f.modprobe_lines):
        st.present = False
        if kernel == f.running_kernel:
            st.evidence = [ln for ln in f.modprobe_lines if "not found" in ln]
            if f.modinfo_error:
                st.evidence.append(f.modinfo_error.splitlines()[0])

    headers = f.installed(f"linux-headers-{kernel}")
    src = c.listing("/usr/src")
    if headers:
        st.headers_installed, st.headers_evidence = True, [headers.line]
    elif (src is not None and f"linux-headers-{kernel}" in src) or "build" in (c.listing(base) or []):
        st.headers_installed = True
    elif f.dpkg_seen or src is not None:
        st.headers_installed = False
        row = next((p.line for p in f.packages if p.name == f"linux-headers-{kernel}"), None)
        st.headers_evidence = [row] if row else []

    for tree in DKMS_TREES:
        for ver in f.collected.listing(tree) or []:
            path = f"{tree}/{ver}/build/make.log"
            text = c.text(path)
            if not text:
                continue
            log = P.parse_make_log(text)
            cls = buildlogs.classify(text, path)
            if (log.errors or cls.failed) and make_log_kernel(f, c, log, text) == kernel:
                st.build, st.build_log_path, st.build_class = log, path, cls
    if st.build_class is None:
        for path, text in akmods_logs(c, kernel):
            cls = buildlogs.classify(text, path)
            if cls.kind is None:
                cls.kind, cls.lines = "unknown", [f"{path} exists: akmods' build for {kernel} failed"]
            st.build_class, st.build_log_path = cls, path
    if st.build_class is None:
        for path in INSTALLER_LOGS:
            text = c.text(path)
            if not text:
                continue
            cls = buildlogs.classify(text, path)
            built_for = installer_kernel(cls, text) or f.running_kernel
            if cls.kind and built_for == kernel:
                st.build_class, st.build_log_path = cls, path
    st.apt_events = [e for e in f.apt_events if e.kernel == kernel]
    if kernel == f.running_kernel and not st.present and st.headers_installed is not False:
        # A DKMS driver package left half-configured (iF/iU) is a postinst, i.e. the DKMS build
        # for the running kernel, that failed: apt's summary often is the only trace of it.
        broken = [p for p in f.dkms_packages if p.half_configured]
        if broken and not any(e.kind == "build_failed" for e in st.apt_events):
            st.apt_events += [P.AptEvent("build_failed", kernel, p.line) for p in broken[:2]]
    return st


# The kernel a make.log built for, from its body when the DKMS header line is missing (a log
# quoted from its tail): "Entering directory '/usr/src/linux-headers-K'", "KERNEL_UNAME=K",
# "/lib/modules/K/build".
_MAKE_LOG_KERNEL = re.compile(
    r"/usr/src/linux-headers-([^/\s'\"]{1,200})[/'\"]|KERNEL_UNAME=(\S{1,200})|/lib/modules/([^/\s'\"]{1,200})/build"
)


def _has_module(f: Facts, c: Collected, kernel: str) -> bool:
    base = f"/lib/modules/{kernel}"
    for sub in ("updates/dkms", "kernel/drivers/video", "updates", "extra", "extra/nvidia"):
        if any(MODULE_FILE.match(n) for n in c.listing(f"{base}/{sub}") or []):
            return True
    return any(e.kernel == kernel and e.state == "installed" for e in f.dkms)


def make_log_kernel(f: Facts, c: Collected, log: P.MakeLog, text: str) -> str | None:
    """The kernel a failed make.log belongs to. DKMS keeps one make.log per driver version, the
    last build's: without its header line, the kernel named in its body, else an apt failure for
    a kernel, else the one installed kernel that has no module (the only build that can have
    failed). More than one candidate: unknown (no guess)."""
    if log.kernel:
        return log.kernel
    known = {*f.installed_kernels, *(k for k in (f.running_kernel,) if k)}
    for m in _MAKE_LOG_KERNEL.finditer(text[:200_000]):
        named = next(g for g in m.groups() if g)
        if named in known:
            return named
    failed = {e.kernel for e in f.apt_events if e.kind == "build_failed" and e.kernel}
    if len(failed) == 1:
        return failed.pop()
    # DKMS skips a kernel without headers, so only a kernel with headers can own a failed build.
    unbuilt = [k for k in known if not _has_module(f, c, k) and _has_headers(f, c, k)]
    return unbuilt[0] if len(unbuilt) == 1 else None


def _has_headers(f: Facts, c: Collected, kernel: str) -> bool:
    return (
        f.installed(f"linux-headers-{kernel}") is not None
        or f.installed(f"pve-headers-{kernel}") is not None
        or f.installed(f"proxmox-headers-{kernel}") is not None
        or f"linux-headers-{kernel}" in (c.listing("/usr/src") or [])
        or "build" in (c.listing(f"/lib/modules/{kernel}") or [])
    )
