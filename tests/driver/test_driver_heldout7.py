"""The rule classes changed for the seventh held-out corpus (tests/fixtures/driver/heldout7), each with
its preconditions: the real case gets the class, and the same case changed where the test says (the
evidence the rule needs taken away or added) flips back. Snapshots are the heldout7 ones."""

from __future__ import annotations

import json

from driver_helpers import FIXTURES, changed, diagnosed, finding_ids, plan_steps

from mlops_cli.driver.parse import parse_apt_log

HELDOUT7 = FIXTURES / "heldout7"


def doc(name: str) -> dict:
    return json.loads((HELDOUT7 / f"{name}.json").read_text())


run, ids, steps = diagnosed, finding_ids, plan_steps


def first(d: dict):
    return run(d)[1].findings[0]


# --- NVML mismatch with nothing newer installed: not a pending reboot ----------------------------

STALE_LIBS = "ubuntu1604-cluster-node-ldconfig-links-stale-384-387-nvml-libs-mismatch-module-396-44-fine"


def test_nvml_mismatch_without_a_newer_userspace_is_not_a_pending_reboot():
    f = first(doc(STALE_LIBS))
    assert f.id == "driver_failure_unexplained"
    assert "384.130" in f.title and "387.26" in f.title  # the stale libraries are named
    assert any("libnvidia-ml.so.387.26" in e for e in f.evidence)
    assert "version_mismatch_pending_reboot" not in ids(doc(STALE_LIBS))
    assert not [s for s in steps(doc(STALE_LIBS)) if s[0] in ("modprobe", "dkms", "update-initramfs", "reboot")]


def test_the_kernel_naming_a_newer_client_makes_it_a_version_mismatch_again():
    def api_line(d):
        d["commands"]["dmesg"] = {
            "rc": 0,
            "stdout": "[ 9.1] NVRM: API mismatch: the client has the version 396.54, but\n"
            "[ 9.1] NVRM: this kernel module has the version 396.44.  Please\n",
            "stderr": "",
        }

    # the module on disk is the loaded one, so with a newer client it is the stale-module class
    found = ids(changed(doc(STALE_LIBS), api_line))
    assert found[:1] == ["version_mismatch_stale_module"], found


def test_a_newer_userspace_package_makes_it_a_version_mismatch_again():
    def newer_package(d):
        d["commands"]["dpkg_list"]["stdout"] += "ii\tlibnvidia-compute-410\t410.48-0ubuntu1\n"

    found = ids(changed(doc(STALE_LIBS), newer_package))
    assert found[:1] == ["version_mismatch_stale_module"], found


def test_a_newer_module_on_disk_makes_it_a_pending_reboot_again():
    def newer_module_on_disk(d):
        d["commands"]["modinfo_nvidia"]["stdout"] = d["commands"]["modinfo_nvidia"]["stdout"].replace(
            "396.44", "396.54"
        )
        d["commands"]["dpkg_list"]["stdout"] += "ii\tlibnvidia-compute-396\t396.54-0ubuntu0~gpu16.04.1\n"

    found = ids(changed(doc(STALE_LIBS), newer_module_on_disk))
    assert found[:1] == ["version_mismatch_pending_reboot"], found


# --- nouveau holding the GPU after nvidia refused it is a consequence ----------------------------

KEPLER = "mint22-gtx760-kepler-nvidia-driver-470-transitional-pulls-580-gpu-ignored"
SB_DKMS = "rhel97-a5500-kmod-nvidia-open-dkms-595-built-unavailable-key-rejected-nouveau-stays"


def test_a_branch_that_ignores_the_gpu_is_the_cause_not_nouveau():
    found = ids(doc(KEPLER))
    assert found[:1] == ["gpu_unsupported_by_branch"]
    assert "nouveau_bound" not in found and "conflicting_driver_bound" not in found
    assert not [s for s in steps(doc(KEPLER)) if s[0] == "update-initramfs"]


def test_without_the_refusal_in_the_kernel_log_nouveau_is_the_cause_again():
    def no_refusal(d):
        d["commands"]["dmesg"]["stdout"] = "[    5.912034] nvidia: loading out-of-tree module taints kernel.\n"

    found = ids(changed(doc(KEPLER), no_refusal))
    assert "nouveau_bound" in found and "gpu_unsupported_by_branch" not in found


def test_the_kernel_saying_nouveau_took_the_device_keeps_nouveau_bound():
    def probe_not_called(d):
        d["commands"]["dmesg"]["stdout"] += (
            "[    6.1] NVRM: The NVIDIA probe routine was not called for 1 device(s).\n"
            "[    6.1] NVRM: This can occur when a driver such as: \n"
            "NVRM: nouveau, rivafb, nvidiafb or rivatv \n"
            "NVRM: was loaded and obtained ownership of the NVIDIA device(s).\n"
        )

    assert "nouveau_bound" in ids(changed(doc(KEPLER), probe_not_called))


def test_secure_boot_rejection_is_the_cause_not_nouveau():
    found = ids(doc(SB_DKMS))
    assert found[:1] == ["secure_boot_module_rejected"]
    assert "nouveau_bound" not in found


def test_without_the_rejection_line_nouveau_is_reported_again():
    def no_rejection(d):
        d["commands"]["dmesg"]["stdout"] = (
            "[    0.000000] Kernel is locked down from EFI Secure Boot mode; see man kernel_lockdown.7\n"
        )

    assert "nouveau_bound" in ids(changed(doc(SB_DKMS), no_rejection))


# --- 'No devices were found' in a VM with a readable, silent kernel log: unexplained -------------

GCE = "gce-ubuntu2004-cuda-repo-driver-510-39-loads-no-devices-found-regression"


def test_no_devices_in_a_vm_without_the_kernels_words_is_unexplained():
    found = ids(doc(GCE))
    assert found[:1] == ["driver_failure_unexplained"]
    assert "vm_passthrough_init_failure" not in found
    assert steps(doc(GCE)) == []


def test_rm_init_adapter_failed_in_the_vm_makes_it_a_platform_fault_again():
    def init_failed(d):
        d["commands"]["dmesg"]["stdout"] += "[    7.2] NVRM: GPU 0000:00:04.0: RmInitAdapter failed! (0x26:0x56:1463)\n"

    assert ids(changed(doc(GCE), init_failed))[:1] == ["vm_passthrough_init_failure"]


def test_an_unreadable_kernel_log_keeps_the_platform_suspicion():
    def unreadable(d):
        d["commands"]["dmesg"] = {
            "rc": 1,
            "stdout": "",
            "stderr": "dmesg: read kernel buffer failed: Operation not permitted\n",
        }

    assert ids(changed(doc(GCE), unreadable))[:1] == ["vm_passthrough_init_failure"]


# --- a DKMS patch shipped by the package that does not apply -------------------------------------

PATCH = "pop2404-kernel-7-0-9-nvidia-dkms-470-patch-does-not-apply-exit-status-6"


def test_patch_failure_is_read_from_apts_log_for_the_kernel_being_built():
    events = parse_apt_log(
        "Building initial module for 7.0.9-76070009-generic\n"
        "ERROR (dkms apport): kernel package linux-headers-7.0.9-76070009-generic is not supported\n"
        "Error! Application of patch buildfix_kernel_6.19_part2.patch failed.\n"
    )
    assert [(e.kind, e.kernel) for e in events] == [("build_failed", "7.0.9-76070009-generic")]


def test_a_patch_that_does_not_apply_is_a_failed_build_never_rerun():
    f = first(doc(PATCH))
    assert f.id == "dkms_build_failed"
    assert "patch" in f.title and "make.log" not in f.title
    assert any("Application of patch" in e for e in f.evidence)
    assert "6.18.7-76061807-generic" in f.fix.manual  # the kernel that still has a module
    assert not [s for s in steps(doc(PATCH)) if s[0] in ("dkms", "dpkg") or s[:3] == ("apt-get", "install", "-f")]


def test_without_the_patch_line_the_generic_build_failure_is_back():
    def no_patch_line(d):
        d["files"]["/var/log/apt/term.log"] = "\n".join(
            ln for ln in d["files"]["/var/log/apt/term.log"].splitlines() if "Application of patch" not in ln
        )

    f = first(changed(doc(PATCH), no_patch_line))
    assert f.id == "dkms_build_failed" and "patch" not in f.title


# --- fix texts: a vendor-signed module, a transitional legacy package ----------------------------

VENDOR_SIGNED = "rhel97-precompiled-kmod-nvidia-590-48-signed-by-nvidia-secure-boot-rejects"


def test_a_vendor_signed_module_names_the_vendor_key_not_dkms():
    f = first(doc(VENDOR_SIGNED))
    assert f.id == "secure_boot_module_rejected"
    assert "'NVIDIA'" in f.fix.manual and "/var/lib/dkms/mok.pub" not in f.fix.manual and not f.fix.steps


def test_a_dkms_signed_module_keeps_the_dkms_key_text():
    def dkms_signed(d):
        d["commands"]["modinfo_nvidia"]["stdout"] = d["commands"]["modinfo_nvidia"]["stdout"].replace(
            "signer:         NVIDIA", "signer:         DKMS module signing key"
        )

    f = first(changed(doc(VENDOR_SIGNED), dkms_signed))
    assert f.id == "secure_boot_module_rejected" and "/var/lib/dkms/mok.pub" in f.fix.manual


def _unsupported_fix(d: dict):
    return next(f for f in run(d)[1].findings if f.id == "gpu_unsupported_by_branch").fix


def test_a_transitional_legacy_package_is_named_as_the_trap():
    fix = _unsupported_fix(doc(KEPLER))
    assert "transitional" in fix.manual and "nvidia-driver-470-server" in fix.manual and not fix.steps


def test_a_real_legacy_branch_package_keeps_the_plain_advice():
    def real_470(d):
        d["commands"]["dpkg_list"]["stdout"] = d["commands"]["dpkg_list"]["stdout"].replace(
            "nvidia-driver-470\t580.95.05-0ubuntu0.24.04.2", "nvidia-driver-470\t470.256.02-0ubuntu0.24.04.1"
        )

    fix = _unsupported_fix(changed(doc(KEPLER), real_470))
    assert "transitional" not in fix.manual and "apt-get install nvidia-driver-470" in fix.manual
