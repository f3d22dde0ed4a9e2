"""Findings about the GPU and its neighbours rather than the driver install: a wedged GPU that
needs a reset, another kernel driver owning the GPU, the RDMA peer-memory module, and the
fabric manager an NVSwitch/NVLink system cannot run CUDA without. Pure.
"""

from __future__ import annotations

import re

from mlops_cli.driver import fixes, fixes_gpu
from mlops_cli.driver import kernlog as K
from mlops_cli.driver.context import Context
from mlops_cli.driver.facts import Facts
from mlops_cli.driver.model import ERROR, Finding, make_finding

PEERMEM_INSERT = re.compile(r"could not insert '(nv_peer_mem|nvidia_peermem|nvidia-peermem)': (.{1,80})")
# Xids that leave the GPU needing a reset (NVIDIA's Xid catalogue: recovery action GPU reset / node reboot).
RESET_XIDS = {8, 48, 61, 62, 63, 64, 95, 109, 119, 120, 140, 143, 154}
# Uncorrectable ECC / contained-error and recovery-action Xids: a reset is due even while nvidia-smi answers
# (64: a page retirement / row remapping that could not be recorded).
ALWAYS_RESET_XIDS = {48, 64, 95, 154}
# Memory errors: after the reset, the retired pages / remapped rows say whether the GPU must be replaced.
ECC_XIDS = {48, 63, 64, 92, 94, 95}
CONFLICTING = {
    "nova_core": "nova_core",
    "nova-core": "nova_core",
    "novacore": "nova_core",
    "nova": "nova_core",
    "vfio-pci": "vfio-pci",
    "nouveau": "nouveau",
}
# PCI device ids of NVSwitch chips and of HGX/SXM GPUs that only run CUDA with fabric manager.
NVSWITCH_IDS = {"1af1", "22a3", "22a4"}
SXM_FABRIC_GPUS = {"20b0", "20b2", "20f3", "2330", "2335", "2901", "2941", "31c2"}


def reset_findings(f: Facts, ctx: Context) -> list[Finding]:
    xids = [m for m in f.klog.find_all(K.XID) if int(m.groups[1] or 0) in RESET_XIDS]
    text = f.klog.find_all(K.NEEDS_RESET_TEXT) + f.klog.find_all(K.WPR2)
    failing = sorted({m.groups[0] for m in f.klog.find_all(K.RM_INIT_FAILED)})
    gpus_seen = len(f.pci_gpus or f.sysfs_nvidia)
    one_of_many = (
        bool(failing)
        and f.module_loaded
        and gpus_seen > len(failing)
        and (bool(f.smi_gpus) or f.smi.kind == "device_handle")
    )
    hung = f.smi.kind in ("timed_out", "device_handle", "no_devices") or f.smi.err_fields
    always = [m for m in xids if int(m.groups[1] or 0) in ALWAYS_RESET_XIDS]
    smi_hangs = f.smi.kind == "timed_out" and f.module_loaded
    # NVML's own verdict on a GPU it can no longer reach: 'GPU is lost. Reboot the system to recover this GPU'.
    lost = [ln for ln in f.smi.lines if "GPU is lost" in ln]
    if not (text or always or (xids and hung) or (one_of_many and not ctx.vm) or smi_hangs or lost):
        return []
    ev = [ln for m in (text + xids)[-4:] for ln in m.lines] + [
        ln for m in f.klog.find_all(K.RM_INIT_FAILED)[-1:] for ln in m.lines
    ]
    ev += list(f.smi.lines[:1])
    if smi_hangs and not f.smi.lines:
        ev.append("nvidia-smi did not answer within its time limit while the module is loaded")
    if one_of_many:
        ev.append(f"{len(failing)} of {gpus_seen} GPUs fail to initialise; the others work")
    # Every GPU the log names: those that fail to initialise and those with a reset Xid.
    targets = sorted(set(failing) | {_bus_id(m.groups[0]) for m in xids if m.groups[0]})
    resets = "; ".join(f"nvidia-smi -r -i {t}" for t in targets[:8]) or "nvidia-smi -r -i <bus id>"
    where = (
        "Ask the hypervisor/cloud admin to reset or power-cycle the GPU (a VM cannot reset it by itself); on a cloud instance, stop and start it."
        if ctx.vm
        else f"Drain the node (stop the GPU's jobs and services: nvidia-persistenced, dcgm, fabric manager), then reset "
        f"{'the GPU' if len(targets) <= 1 else 'each GPU named here'}: {resets}; if that fails or the GPU stays wedged, "
        "power-cycle the node (a cold boot, not a warm reboot)."
    )
    ecc = sorted({int(m.groups[1] or 0) for m in xids if int(m.groups[1] or 0) in ECC_XIDS})
    if ecc:
        where += (
            f" Xid {'/'.join(map(str, ecc))} is an uncorrectable memory error: after the reset read "
            "'nvidia-smi -q -d PAGE_RETIREMENT,ROW_REMAPPER' (pending retirements, remapping failures); a failed "
            "retirement (Xid 64) or repeated double-bit errors mean the GPU must be replaced (RMA)."
        )
    return [
        make_finding(
            "gpu_needs_reset",
            ERROR,
            "a GPU is wedged (Xid / GSP timeout / 'may need to be reset'): it needs a reset, the driver install is fine",
            ev,
            fixes.manual(
                "drain, reset the GPU (nvidia-smi -r) or power-cycle; do not reinstall the driver",
                where
                + " Reinstalling the driver does not help. If it recurs, update the driver branch's point release and the "
                "GPU/SBIOS firmware, and collect 'nvidia-bug-report.sh' for NVIDIA.",
            ),
        )
    ]


def _bus_id(xid_pci: str) -> str:
    """The Xid's 'PCI:0000:07:00' as nvidia-smi's bus id '0000:07:00.0'."""
    return xid_pci if xid_pci.count(".") else f"{xid_pci}.0"


def _passthrough_host(f: Facts) -> bool:
    conf = "\n".join(
        t or "" for p, t in f.collected.files.items() if p.startswith(("/etc/modprobe.d/", "/lib/modprobe.d/"))
    )
    cmdline = f.collected.text("/proc/cmdline") or ""
    return bool(re.search(r"vfio[-_]pci[. ]ids=|softdep nvidia pre: vfio", conf + "\n" + cmdline))


def conflicting_driver_findings(f: Facts, driver_expected: bool) -> list[Finding]:
    """Another kernel driver owns the GPU. Returns ``conflicting_driver_bound`` (nouveau is
    reported by ``nouveau_bound`` too, which keeps its stable id)."""
    owners: dict[str, list[str]] = {}
    for d in f.pci_gpus:
        owner = CONFLICTING.get((d.driver_in_use or "").lower())
        if owner:
            owners.setdefault(owner, []).extend(d.lines)
    for m in f.klog.find_all(K.ALREADY_BOUND):
        owner = CONFLICTING.get((m.groups[1] or "").lower())
        if owner:
            owners.setdefault(owner, []).extend(m.lines)
    if "nova_core" in f.loaded and "nova_core" not in owners and not f.module_loaded and driver_expected:
        owners.setdefault("nova_core", []).append("/proc/modules: nova_core is loaded")
    if not owners or not driver_expected:
        return []
    owner = "nova_core" if "nova_core" in owners else ("nouveau" if "nouveau" in owners else next(iter(owners)))
    ev = owners[owner][:4]
    for path, text in sorted(f.collected.files.items()):
        if path.endswith("nvidia-installer.log") and text and "Unable to load the kernel module" in text:
            ev += [
                ln.strip()
                for ln in text.splitlines()
                if "Unable to load the kernel module" in ln or "Kernel module load error" in ln
            ][-2:]
    return [
        make_finding(
            "conflicting_driver_bound",
            ERROR,
            f"the {owner} kernel driver owns the GPU, so nvidia cannot bind to it",
            ev,
            fixes_gpu.conflicting_driver(f, owner, passthrough=_passthrough_host(f)),
        )
    ]


def peermem_findings(f: Facts) -> list[Finding]:
    lines = [ln for m in f.klog.find_all(K.PEERMEM)[-4:] for ln in m.lines]
    inserts = []
    for path in ("/var/log/apt/term.log",):
        text = f.collected.text(path) or ""
        inserts += [ln.strip() for ln in text.splitlines()[-400:] if PEERMEM_INSERT.search(ln[:512])]
    if not lines and not inserts:
        return []
    which = "nv_peer_mem" if any("nv_peer_mem" in ln for ln in lines + inserts) else "nvidia_peermem"
    ofed = f.collected.command("ofed_info").stdout.strip().rstrip(":")
    ev = lines + inserts[-2:]
    if ofed:
        ev.append(f"ofed_info -s: {ofed}")
    broken = [p.line for p in f.packages if "peer-memory" in p.name or "peermem" in p.name]
    ev += broken[:2]
    if which == "nv_peer_mem":
        manual = (
            "nv_peer_mem was built against other ib_core symbols than the OFED loaded now. Rebuild it against this kernel's "
            "OFED: 'apt-get purge nvidia-peer-memory-dkms nvidia-peer-memory', then rebuild from the source matching "
            f"/usr/src/ofa_kernel/{f.running_kernel or '$(uname -r)'} (or, with driver 470+, use the driver's own nvidia-peermem: "
            "'modprobe nvidia-peermem')."
        )
    else:
        manual = (
            "nvidia_peermem was built against other ib_core symbols than the OFED loaded now (inbox RDMA vs MLNX_OFED/DOCA). "
            "Rebuild the driver's modules after the OFED is installed so nvidia-peermem links against it (DKMS: "
            "'dkms build nvidia/<version> --force' then install; GPU Operator: driver.rdma.enabled with useHostMofed matching "
            "the host), then 'modprobe nvidia-peermem'."
        )
    return [
        make_finding(
            "peermem_load_failed",
            ERROR,
            f"{which} (GPUDirect RDMA) does not load against the RDMA stack in use; the GPU driver itself works",
            ev,
            fixes.manual("rebuild the peer-memory module against the OFED in use; no GPU driver reinstall", manual),
        )
    ]


def fabric_findings(f: Facts) -> list[Finding]:
    devices = {dev.lower().replace("0x", "") for _, dev, _ in f.sysfs_nvidia}
    devices |= {d.device_id for d in f.pci_gpus if d.device_id}
    switches = []
    for path, text in f.collected.files.items():
        if path.endswith("/device") and (text or "").strip().lower().replace("0x", "") in NVSWITCH_IDS:
            switches.append(path.rsplit("/", 2)[-2])
    lspci = f.collected.command("lspci_nvidia").stdout
    switches += [ln.split()[0] for ln in lspci.splitlines() if "NVSwitch" in ln and ln[:1].strip()]
    fm_pkg = next((p for p in f.packages if p.installed and re.match(r"^nvidia-fabricmanager(-\d+)?$", p.name)), None)
    journal = [ln for ln in f.fm_journal if re.search(r"fail|error", ln, re.I)]
    sxm = len([d for d in devices if d in SXM_FABRIC_GPUS]) and len(f.smi_gpus or f.sysfs_nvidia) >= 4
    # Fabric manager's own "Nothing to do" (NV_WARN_NOTHING_TO_DO): no NVSwitch on this box (PCIe
    # GPUs, an NVLink bridge): it has nothing to manage and exits; the GPUs do not need it.
    nothing_to_do = any("NV_WARN_NOTHING_TO_DO" in ln for ln in f.fm_journal)
    if nothing_to_do and not switches and not sxm:
        return []
    needs_fm = bool(switches) or bool(journal) or bool(sxm and fm_pkg)
    if not needs_fm or f.smi.kind != "ok" or f.fm_active == "active":
        return []
    if any("don't match with driver version" in ln or "doesn't match with driver version" in ln for ln in f.fm_journal):
        return []  # fabricmanager_version_mismatch says it
    ev = []
    if switches:
        ev.append(f"{len(set(switches))} NVSwitch device(s) on the PCI bus")
    ev += journal[-2:]
    ev.append(f"systemctl is-active nvidia-fabricmanager: {f.fm_active or 'not installed'}")
    fm_r = f.collected.command("fabricmanager_active")
    ev += [ln.strip() for ln in fm_r.stderr.splitlines() if ln.strip()][:1]
    if not fm_pkg:
        ev.append("no nvidia-fabricmanager package installed")
    if "ib_umad" not in f.loaded and not switches and journal:
        ev.append("/proc/modules: no ib_umad/mlx5_ib (NVLink5 systems manage the fabric through them)")
    return [
        make_finding(
            "fabricmanager_not_running",
            ERROR,
            "this NVSwitch/NVLink system has no running fabric manager: CUDA fails (error 802, 'system not yet initialized')",
            ev,
            fixes_gpu.fabricmanager_install(f, nvlink5=bool(journal) and not switches),
        )
    ]
