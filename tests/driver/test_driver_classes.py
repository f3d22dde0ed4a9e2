"""The rule classes added after the held-out corpus (tests/fixtures/driver/heldout), each with
its preconditions: a real case flips to the class, and the same case minus the evidence the rule
needs does not. The snapshots are the held-out ones, changed only where a test says so."""

from __future__ import annotations

import json

import pytest
from driver_helpers import FIXTURES

from mlops_cli.driver import gate
from mlops_cli.driver.apply import build_plan
from mlops_cli.driver.assemble import read_facts
from mlops_cli.driver.diagnose import diagnose
from mlops_cli.driver.gpu_arch import arch_of, branch_knows
from mlops_cli.driver.model import ERROR, INFO, WARNING
from mlops_cli.driver.probe import collect
from mlops_cli.host import Snapshot, SnapshotHost

HELDOUT = FIXTURES / "heldout"
FRESH = FIXTURES / "fresh"


def doc(name: str) -> dict:
    path = HELDOUT / f"{name}.json"
    return json.loads((path if path.exists() else FRESH / f"{name}.json").read_text())


def run(d: dict):
    facts = read_facts(collect(SnapshotHost(Snapshot.from_json(d))))
    return facts, diagnose(facts)


def ids(d: dict) -> list[str]:
    return [f.id for f in run(d)[1].findings]


def cmd(stdout: str, rc: int = 0, stderr: str = "") -> dict:
    return {"rc": rc, "stdout": stdout, "stderr": stderr}


# --- the architecture table -------------------------------------------------------------


@pytest.mark.parametrize(
    "dev, name",
    [
        ("2e12", "Blackwell"),
        ("0x2901", "Blackwell"),
        ("10de:2b85", "Blackwell"),
        ("2342", "Grace Hopper"),
        ("2330", "Hopper"),
        ("26b9", "Ada Lovelace"),
        ("2204", "Ampere"),
        ("20b0", "Ampere"),
        ("1e30", "Turing"),
        ("2182", "Turing"),
        ("1db4", "Volta"),
        ("15f8", "Pascal"),
        ("1b06", "Pascal"),
        ("134d", "Maxwell"),
        ("1287", "Kepler"),
    ],
)
def test_architecture_from_the_device_id(dev, name):
    assert arch_of(dev).name == name


def test_architecture_unknown_ids_and_branch_windows():
    assert arch_of("zzzz") is None and arch_of(None) is None and arch_of("0400") is None
    assert branch_knows(arch_of("1e30"), 470, margin=40)  # Turing, known since 410
    assert not branch_knows(arch_of("2507"), 470, margin=40)  # a 2021 Ampere SKU: 470 may well be too old
    assert not branch_knows(arch_of("1287"), 535)  # Kepler ended with 470


# --- module flavour by architecture ------------------------------------------------------


def test_blackwell_on_the_proprietary_module_is_the_wrong_flavour():
    d = doc("gb10-startos-proprietary-580-blackwell-rminitadapter")
    _, dg = run(d)
    f = dg.findings[0]
    assert f.id == "wrong_kernel_module_flavor" and "open" in f.title
    assert any("Blackwell" in e for e in f.evidence) and any("RmInitAdapter failed" in e for e in f.evidence)


def test_open_module_on_a_working_blackwell_or_a_hopper_is_not_a_flavour_problem():
    d = doc("gb10-startos-proprietary-580-blackwell-rminitadapter")
    d["files"]["/proc/driver/nvidia/version"] = d["files"]["/proc/driver/nvidia/version"].replace(
        "aarch64 Kernel Module", "Open Kernel Module for aarch64"
    )
    assert "wrong_kernel_module_flavor" not in ids(d)
    h = doc("gb10-startos-proprietary-580-blackwell-rminitadapter")
    h["commands"]["lspci_nvidia"]["stdout"] = h["commands"]["lspci_nvidia"]["stdout"].replace("10de:2e12", "10de:2330")
    h["files"]["/sys/bus/pci/devices/000f:01:00.0/device"] = "0x2330\n"
    assert "wrong_kernel_module_flavor" not in ids(h)  # Hopper runs with either flavour


def test_pascal_on_the_open_module_is_the_wrong_flavour():
    d = doc("debian9-backports-libcuda1-upgrade-removed-nvidia-smi")  # a GTX 1080 Ti (Pascal)
    d["files"]["/proc/driver/nvidia/version"] = (
        "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  560.35.03  Release Build\n"
    )
    d["commands"]["nvidia_smi"] = cmd("No devices were found\n", 6)
    d["commands"]["dmesg"] = cmd("[    5.1] NVRM: GPU 0000:01:00.0: RmInitAdapter failed! (0x22:0x56:884)\n")
    _, dg = run(d)
    flavour = next(f for f in dg.findings if f.id == "wrong_kernel_module_flavor")
    assert "cannot use the open" in flavour.title and any("Pascal" in e for e in flavour.evidence)


# --- Secure Boot without a rejection line --------------------------------------------------


def test_secure_boot_with_a_local_key_and_nothing_loaded_is_the_rejection():
    _, dg = run(doc("gb10-secure-boot-mok-never-staged-only-lockdown-line"))
    f = dg.findings[0]
    assert f.id == "secure_boot_module_rejected"
    assert "SecureBoot enabled" in f.evidence and any("locked down" in e for e in f.evidence)
    assert "/var/lib/dkms/mok.pub" in f.fix.manual and not f.fix.steps


def test_secure_boot_inference_needs_its_preconditions():
    enrolled = doc("gb10-secure-boot-mok-never-staged-only-lockdown-line")
    enrolled["commands"]["mok_test_dkms"] = cmd("/var/lib/dkms/mok.pub is already enrolled\n", 1)
    assert ids(enrolled)[0] == "module_not_loaded"
    blacklisted = doc("gb10-secure-boot-mok-never-staged-only-lockdown-line")
    blacklisted["files"]["/etc/modprobe.d/blacklist-nvidia.conf"] = "blacklist nvidia\n"
    blacklisted["dirs"]["/etc/modprobe.d"] = ["blacklist-nvidia.conf"]
    assert ids(blacklisted)[0] == "module_not_loaded"
    sb_off = doc("gb10-secure-boot-mok-never-staged-only-lockdown-line")
    sb_off["commands"]["mokutil_sb_state"] = cmd("SecureBoot disabled\n")
    assert "secure_boot_module_rejected" not in ids(sb_off)
    distro_key = doc("gb10-secure-boot-mok-never-staged-only-lockdown-line")
    distro_key["commands"]["modinfo_nvidia"]["stdout"] = distro_key["commands"]["modinfo_nvidia"]["stdout"].replace(
        "DKMS module signing key", "Canonical Ltd. Kernel Module Signing"
    )
    assert "secure_boot_module_rejected" not in ids(distro_key)


def test_mokutil_test_key_saying_not_enrolled_is_quoted():
    d = doc("gb10-secure-boot-mok-never-staged-only-lockdown-line")
    d["commands"]["mok_test_dkms"] = cmd("/var/lib/dkms/mok.pub is not enrolled\n", 0)
    f = run(d)[1].findings[0]
    assert "/var/lib/dkms/mok.pub is not enrolled" in f.evidence


def test_secure_boot_fix_fits_the_context():
    op = run(doc("operator-rtx3090-secure-boot-install-without-signing"))[1].findings[0]
    assert "usePrecompiled" in op.fix.manual and "apt purge" not in op.fix.manual
    vm = run(doc("azure-trusted-launch-vm-mok-enrolment-unreachable"))[1].findings[0]
    assert "cloud VM" in vm.fix.manual and "Canonical-signed" in vm.fix.manual


# --- a build failure the thread quotes without its header, or only apt's summary ----------


def test_headerless_make_log_belongs_to_the_one_kernel_without_a_module():
    facts, dg = run(doc("proxmox71-host-vgpu-460-mdev-open-device-5.13-pve"))
    assert dg.findings[0].id == "dkms_build_fail_kernel_too_new"
    assert ("dkms", "install", "nvidia/460.73.01", "-k", "5.13.19-3-pve") in facts.failed_steps
    steps = [p.step.argv for p in build_plan(dg.findings).steps]
    assert not gate.repeated_failures(steps, facts.failed_steps)


def test_headerless_make_log_is_not_guessed_onto_one_of_two_kernels():
    d = doc("proxmox71-host-vgpu-460-mdev-open-device-5.13-pve")
    d["dirs"]["/lib/modules"].append("5.15.30-2-pve")
    d["dirs"]["/lib/modules/5.15.30-2-pve"] = ["build", "kernel", "modules.dep"]
    d["dirs"]["/boot"].append("vmlinuz-5.15.30-2-pve")
    facts, dg = run(d)
    assert "dkms_build_fail_kernel_too_new" not in [f.id for f in dg.findings]
    assert not any(k == "5.13.19-3-pve" and s.build_class for k, s in facts.modules.items())


def test_half_configured_dkms_package_is_a_failed_build_and_is_not_repeated():
    facts, dg = run(doc("packer-ec2-jammy-aws-6.8-nvidia-dkms-575-open-fails"))
    f = dg.findings[0]
    assert f.id == "dkms_build_failed" and "names no cause" in f.title
    assert any(e.startswith("iF") for e in f.evidence)
    for argv in (("dkms", "install", "nvidia/575.57.08", "-k", "6.8.0-1032-aws"), ("apt-get", "install", "-f", "-y")):
        assert argv in facts.failed_steps
    assert not build_plan(dg.findings).steps


def test_half_configured_dkms_package_without_headers_is_the_headers():
    d = doc("packer-ec2-jammy-aws-6.8-nvidia-dkms-575-open-fails")
    k = "6.8.0-1032-aws"
    d["commands"]["dpkg_list"]["stdout"] = "".join(
        ln + "\n" for ln in d["commands"]["dpkg_list"]["stdout"].splitlines() if f"linux-headers-{k}" not in ln
    )
    d["dirs"][f"/lib/modules/{k}"] = ["kernel", "modules.builtin", "modules.dep"]
    assert ids(d)[0] == "kernel_headers_missing"


# --- vGPU guests known by the architecture ---------------------------------------------------


def test_vm_refusing_a_gpu_its_branch_has_long_known_is_a_vgpu():
    facts, dg = run(doc("vgpu-guest-ubuntu-stock-470-host-vgpu-manager-510"))
    assert facts.context.kind == "vgpu-guest" and dg.findings[0].id == "vgpu_guest_driver"
    assert "gpu_unsupported_by_branch" not in [f.id for f in dg.findings]


def test_bare_metal_or_a_new_sku_refusal_stays_unsupported_by_branch():
    bare = doc("vgpu-guest-ubuntu-stock-470-host-vgpu-manager-510")
    bare["files"]["/sys/class/dmi/id/sys_vendor"] = "ASUS\n"
    bare["files"]["/sys/class/dmi/id/product_name"] = "Pro WS WRX80E-SAGE SE WIFI\n"
    bare["commands"]["systemd_detect_virt"] = cmd("none\n", 1)
    assert ids(bare)[0] == "gpu_unsupported_by_branch"
    new_sku = doc("vgpu-guest-ubuntu-stock-470-host-vgpu-manager-510")
    new_sku["commands"]["dmesg"]["stdout"] = new_sku["commands"]["dmesg"]["stdout"].replace("10de:1e30", "10de:2507")
    assert ids(new_sku)[0] == "gpu_unsupported_by_branch"  # 470 may really be too old for it


# --- Debian's per-branch packages left from an older release ------------------------------------


def test_debian_tesla_branch_left_behind_is_a_second_branch():
    facts, dg = run(doc("debian12-upgrade-obsolete-tesla-460-dkms-breaks-headers"))
    f = dg.findings[0]
    assert f.id == "multiple_driver_branches"
    steps = [s.argv for s in f.fix.steps]
    assert steps[0][:3] == ("apt-get", "purge", "-y") and "nvidia-tesla-460-kernel-dkms" in steps[0]
    assert "nvidia-driver" not in steps[0] and "nvidia-kernel-dkms" not in steps[0]  # the branch in use stays
    assert steps[-1] == ("dpkg", "--configure", "-a")


def test_a_tesla_branch_alone_is_one_branch():
    d = doc("debian12-upgrade-obsolete-tesla-460-dkms-breaks-headers")
    d["commands"]["dpkg_list"]["stdout"] = "".join(
        ln + "\n" for ln in d["commands"]["dpkg_list"]["stdout"].splitlines() if "nvidia-tesla" in ln or "linux-" in ln
    )
    assert "multiple_driver_branches" not in ids(d)


# --- the GPU Operator's driver container on a host-installed driver ------------------------------


def test_operator_mount_point_on_a_host_driver_is_a_note_and_an_active_container_a_warning():
    facts, dg = run(doc("microk8s-operator-driver-pod-vs-host-installed-450"))
    f = dg.findings[0]
    assert dg.status == "ok" and f.id == "operator_driver_conflicts_with_host_driver" and f.severity == INFO
    assert "driver.enabled=false" in f.fix.manual and not build_plan(dg.findings).steps
    active = doc("microk8s-operator-driver-pod-vs-host-installed-450")
    active["dirs"]["/run/nvidia/driver"] = ["bin", "dev", "etc", "lib", "usr", "var"]
    f = run(active)[1].findings[0]
    assert f.id == "operator_driver_conflicts_with_host_driver" and f.severity == WARNING
    gone = doc("microk8s-operator-driver-pod-vs-host-installed-450")
    del gone["files"]["/run/nvidia/driver"]
    del gone["dirs"]["/run/nvidia"], gone["dirs"]["/run/nvidia/driver"]
    assert "operator_driver_conflicts_with_host_driver" not in ids(gone)


def test_microk8s_marker_makes_a_driver_container_node_an_operator_node():
    d = doc("microk8s-gpu-addon-driver-ctr-535-gpl-only-rcu-read-unlock-strict")
    del d["files"]["/run/nvidia/driver"], d["files"]["/run/nvidia/driver/var/log/nvidia-installer.log"]
    del d["dirs"]["/run/nvidia"], d["dirs"]["/run/nvidia/driver"]
    d["files"]["/proc/modules"] = "nvidia 56717312 0 - Live 0x0000000000000000 (POE)\n"
    assert run(d)[0].context.kind != "operator"  # no marker left: nothing says Kubernetes
    d["files"]["/var/snap/microk8s"] = ""
    facts, dg = run(d)
    assert facts.context.kind == "operator"
    assert not [p for p in build_plan(dg.findings).steps if gate.program(p.step.argv) in gate.KERNEL_LEVEL]


# --- Debian package names in fixes, GPU paravirtualisation ---------------------------------------


def test_debian_fixes_use_debian_package_names():
    smi = run(doc("debian9-backports-libcuda1-upgrade-removed-nvidia-smi"))[1].findings[0]
    assert smi.fix.steps[0].argv == ("apt-get", "install", "-y", "nvidia-smi=390.48-2~bpo9+1")
    gsp = run(doc("endless-debian-555-gsp-firmware-package-missing"))[1].findings[0]
    assert gsp.fix.steps[0].argv == ("apt-get", "install", "-y", "firmware-nvidia-gsp=555.58.02-2")
    assert not any("ubuntu-drivers" in " ".join(s.argv) for s in smi.fix.steps + gsp.fix.steps)


def test_gpu_paravirtualised_vm_is_told_apart_from_wsl():
    pv = run(doc("hyperv-gpu-pv-vm-dxgkrnl-host-driver-files-incomplete"))[1].findings[0]
    assert pv.id == "wsl_gpu_unavailable" and "Hyper-V" in pv.title and "libd3d12core.so" in pv.fix.manual
    wsl = run(doc("wsl-winserver2022-l40s-tcc-blocked"))[1].findings[0]
    assert "WSL has no GPU access" in wsl.title


def test_no_error_where_the_driver_is_fine_in_an_lxd_container():
    facts, dg = run(doc("lxd-unprivileged-nested-docker-cgroup-driver-fine"))
    assert (
        facts.context.kind == "container" and dg.status == "ok" and not [f for f in dg.findings if f.severity == ERROR]
    )


def test_gpu_pv_guest_without_dxgkrnl_is_not_a_cpu_node():
    """Hyper-V GPU-P on a kernel without dxgkrnl: no /dev/dxg, no NVIDIA PCI device. NVML's
    'GPU access blocked by the operating system' and the 1414:008e render device say what it is:
    exit 1 with the Windows/kernel side to fix, never 'no NVIDIA GPU' (exit 3)."""
    facts, dg = run(doc("hyperv-gpu-pv-ubuntu2004-booted-kernel-without-dxgkrnl"))
    f = dg.findings[0]
    assert facts.context.kind == "wsl" and dg.status == "problem" and f.id == "wsl_gpu_unavailable"
    assert "dxgkrnl" in f.fix.manual and not build_plan(dg.findings).steps
    bare = doc("hyperv-gpu-pv-ubuntu2004-booted-kernel-without-dxgkrnl")
    del bare["commands"]["nvidia_smi"], bare["commands"]["nvidia_smi_query"]
    bare["files"]["/sys/bus/pci/devices/be44:00:00.0/device"] = "0x5353\n"
    assert run(bare)[0].context.kind == "vm"  # one WSL marker alone decides nothing
