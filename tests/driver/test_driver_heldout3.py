"""The rule classes changed for the third held-out corpus (tests/fixtures/driver/heldout3), each
with its preconditions: the real case gets the class, and the same case changed where the test
says (the evidence the rule needs taken away or added) flips back. Snapshots are the heldout3 ones."""

from __future__ import annotations

import copy
import json

from driver_helpers import FIXTURES

from mlops_cli.driver import gate
from mlops_cli.driver.apply import build_plan
from mlops_cli.driver.assemble import read_facts
from mlops_cli.driver.diagnose import diagnose
from mlops_cli.driver.model import ERROR, WARNING
from mlops_cli.driver.probe import collect
from mlops_cli.host import Snapshot, SnapshotHost

HELDOUT3 = FIXTURES / "heldout3"


def doc(name: str) -> dict:
    return json.loads((HELDOUT3 / f"{name}.json").read_text())


def run(d: dict):
    facts = read_facts(collect(SnapshotHost(Snapshot.from_json(d))))
    return facts, diagnose(facts)


def ids(d: dict) -> list[str]:
    return [f.id for f in run(d)[1].findings]


def steps(d: dict) -> list[tuple[str, ...]]:
    return [tuple(p.step.argv) for p in build_plan(run(d)[1].findings).steps]


def set_row(d: dict, name: str, version: str) -> dict:
    """The dpkg row of package NAME, with another version."""
    d = copy.deepcopy(d)
    rows = d["commands"]["dpkg_list"]["stdout"].splitlines()
    d["commands"]["dpkg_list"]["stdout"] = "".join(
        (f"{r.split(chr(9))[0]}\t{name}\t{version}" if r.split("\t")[1] == name else r) + "\n" for r in rows
    )
    return d


def drop_rows(d: dict, prefix: str) -> dict:
    d = copy.deepcopy(d)
    rows = d["commands"]["dpkg_list"]["stdout"].splitlines()
    d["commands"]["dpkg_list"]["stdout"] = "".join(r + "\n" for r in rows if not r.split("\t")[1].startswith(prefix))
    return d


# --- transitional packages are not a second branch ---------------------------------------

POP_565 = "pop2404-6.13-upgrade-565-77-build-fails-transitional-550"


def test_a_transitional_package_belongs_to_the_branch_of_its_version():
    """Pop's nvidia-driver-550 at 565.77 only pulls 565 in: no second branch, nothing purged, and
    the failed build for the next kernel is the cause."""
    d = doc(POP_565)
    found = ids(d)
    assert found[0] == "dkms_build_failed" and "multiple_driver_branches" not in found
    assert not [s for s in steps(d) if s[:2] == ("apt-get", "purge")]
    # a real 550 build next to 565 is two branches again
    assert ids(set_row(d, "nvidia-driver-550", "550.144.03-0ubuntu0.24.04.1"))[0] == "multiple_driver_branches"


# --- the Ubuntu <= 18.04 package names -------------------------------------------------------

OLD_367 = "ubuntu1604-ppa-367-44-upgrade-module-367-35-until-reboot"
SURFACE_390 = "ubuntu1604-surface-book2-4.15-surface-kernel-nvidia-390-over-runfile-build-fails"


def test_old_nvidia_branch_packages_are_an_apt_dkms_driver():
    facts, d = run(doc(OLD_367))
    assert facts.install_method == "apt-dkms" and facts.branch_suffix == "367"
    assert facts.modules[facts.running_kernel].present  # updates/dkms/nvidia_367.ko
    assert d.findings[0].id == "version_mismatch_pending_reboot"
    # .run leftovers next to the nvidia-390 package: apt owns the driver, not the .run
    facts, _ = run(doc(SURFACE_390))
    assert not facts.runfile and facts.install_method == "apt-dkms"
    facts, _ = run(drop_rows(drop_rows(doc(SURFACE_390), "nvidia-390"), "libcuda1-390"))
    assert facts.runfile and facts.install_method == "runfile"


def test_run_leftovers_under_apt_come_after_the_apt_packages_own_failed_build():
    _, d = run(doc(SURFACE_390))
    assert d.findings[0].id == "dkms_build_failed"
    mixed = next(f for f in d.findings if f.id == "multiple_driver_branches")
    assert mixed.severity == WARNING and "nvidia-uninstall" in mixed.fix.manual and not mixed.fix.steps
    # without a failed build for the running kernel, the mixed install is the error to fix first
    d2 = doc(SURFACE_390)
    d2["files"]["/var/log/apt/term.log"] = "Log started: 2018-03-04  10:20:11\nLog ended: 2018-03-04  10:24:50\n"
    mixed = next(f for f in run(d2)[1].findings if f.id == "multiple_driver_branches")
    assert mixed.severity == ERROR


# --- Secure Boot: the kernel trusts the module's signer ----------------------------------

SIGNED_RUN = "ubuntu2204-runfile-signed-key-enrolled-module-never-loaded"
X509 = "[    0.912004] integrity: Loaded X.509 cert 'Nvidia module signing key: 5d1c7e0b7a3f'\n"


def test_secure_boot_is_not_inferred_when_the_kernel_loaded_the_signers_certificate():
    d = doc(SIGNED_RUN)
    assert X509 in d["commands"]["dmesg"]["stdout"]
    found = ids(d)
    assert "secure_boot_module_rejected" not in found and found[0] in (
        "module_not_loaded",
        "driver_failure_unexplained",
    )
    # the same machine without that certificate: an unloaded module signed by a local key is inferred rejected
    d["commands"]["dmesg"]["stdout"] = d["commands"]["dmesg"]["stdout"].replace(X509, "")
    assert ids(d)[0] == "secure_boot_module_rejected"
    # and a rejection in the kernel's own words wins over the certificate
    d = doc(SIGNED_RUN)
    d["commands"]["dmesg"]["stdout"] += "[   35.120044] Loading of module with unavailable key is rejected\n"
    assert ids(d)[0] == "secure_boot_module_rejected"


# --- a compiler of another major version ------------------------------------------------------

POP_GCC = "pop2204-515-dkms-build-fails-default-gcc-10-kernel-gcc-11"
K_GCC = "5.18.10-76051810-generic"


def test_another_gcc_major_rebuilds_with_the_kernels_compiler_named():
    """gcc-11 is installed but the build ran with cc = gcc 10: installing gcc-11 changes nothing;
    the rebuild names gcc-11, so it is not the failed build repeated."""
    d = doc(POP_GCC)
    facts, diag = run(d)
    plan = steps(d)
    assert diag.findings[0].id == "dkms_build_fail_gcc_mismatch"
    assert ("env", "CC=gcc-11", "dkms", "install", "nvidia/515.48.07", "-k", K_GCC) in plan
    assert ("dkms", "install", "nvidia/515.48.07", "-k", K_GCC) not in plan
    assert not [s for s in plan if s[:3] == ("apt-get", "install", "-y") and "gcc-11" in s]
    assert not gate.repeated_failures(plan, facts.failed_steps)
    # without gcc-11 on the machine it is installed first
    plan = steps(drop_rows(d, "gcc-11"))
    assert plan[0] == ("apt-get", "install", "-y", "gcc-11", "g++-11")


# --- DMI: Microsoft's own hardware is not a Hyper-V VM ------------------------------------------

SURFACE_BOOK3 = "surface-book3-mint222-580-95-open-build-fails-for-6.18-secure-boot-signing-fine"


def test_surface_hardware_is_bare_metal_and_hyperv_is_a_vm():
    d = doc(SURFACE_BOOK3)
    facts, _ = run(d)
    assert facts.context.kind == "bare-metal" and not facts.virt
    d["files"]["/sys/class/dmi/id/product_name"] = "Virtual Machine\n"
    facts, _ = run(d)
    assert facts.context.kind == "vm" and facts.virt == "Microsoft Corporation Virtual Machine"


# --- wedged GPUs: every GPU named, memory errors get the retirement check ----------------------

XID48 = "k8s-operator-8x-v100-xid48-dbe-xid64-one-gpu-rminitadapter"


def test_uncorrectable_memory_errors_name_every_gpu_and_the_replacement_check():
    d = doc(XID48)
    first = run(d)[1].findings[0]
    assert first.id == "gpu_needs_reset"
    assert "nvidia-smi -r -i 0000:07:00.0" in first.fix.manual and "nvidia-smi -r -i 0000:0a:00.0" in first.fix.manual
    assert "PAGE_RETIREMENT" in first.fix.manual and "RMA" in first.fix.manual
    assert any("Dynamic Page Retirement: Blacklisting failed" in ln for ln in first.evidence)
    # a reset Xid that is not a memory error (154: recovery action "GPU Reset Required"): the same resets, no RMA check
    lines = [ln for ln in d["commands"]["dmesg"]["stdout"].splitlines() if "): 64," not in ln]
    d["commands"]["dmesg"]["stdout"] = "".join(ln.replace("): 48,", "): 154,") + "\n" for ln in lines)
    first = run(d)[1].findings[0]
    assert first.id == "gpu_needs_reset" and "nvidia-smi -r -i 0000:07:00.0" in first.fix.manual
    assert "RMA" not in first.fix.manual and "PAGE_RETIREMENT" not in first.fix.manual


# --- a GPU dropped by the branch: its legacy branch, the distribution's way ---------------------


def test_a_gpu_dropped_by_the_branch_is_pointed_at_its_legacy_branch():
    debian = run(doc("debian13-quadro-p4000-gets-590-which-dropped-pascal"))[1].findings[0]
    nixos = run(doc("nixos-gtx1050-595-legacy-580-message-no-gpu-found"))[1].findings[0]
    vgpu_host = run(doc("proxmox91-host-tesla-m60-vgpu-kvm-550-does-not-bind"))[1].findings[0]
    assert debian.id == nixos.id == vgpu_host.id == "gpu_unsupported_by_branch"
    assert "580 branch" in debian.fix.manual and "ubuntu-drivers" not in debian.fix.manual
    assert "legacy_580" in nixos.fix.manual
    assert "vGPU software release" in vgpu_host.fix.manual and "580" not in vgpu_host.fix.manual
