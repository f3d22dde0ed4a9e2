"""The rule classes changed for the eighth held-out corpus (tests/fixtures/driver/heldout8), each with
its preconditions: the real case gets the class, and the same case changed where the test says (the
evidence the rule needs taken away or added) flips back. Snapshots are the heldout8 ones."""

from __future__ import annotations

import json

from driver_helpers import FIXTURES, changed, diagnosed, plan_steps

from mlops_cli.driver.buildlogs import classify

HELDOUT8 = FIXTURES / "heldout8"


def doc(name: str) -> dict:
    return json.loads((HELDOUT8 / f"{name}.json").read_text())


run, steps = diagnosed, plan_steps


def first(d: dict):
    return run(d)[1].findings[0]


# --- two branches installed, the loaded module one and the userspace the other: which stays is not known ----

TWO_BRANCHES = "ubuntu1204-nvidia-304-updates-and-319-updates-both-dkms-api-mismatch-after-reboot"


def _no_mismatch_lines(d):
    d["commands"]["dmesg"]["stdout"] = ""
    d["commands"]["nvidia_smi"]["stdout"] = (
        "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
        "Make sure that the latest NVIDIA driver is installed and running.\n"
    )


def test_branches_split_between_module_and_userspace_are_not_purged_automatically():
    f = first(doc(TWO_BRANCHES))
    assert f.id == "multiple_driver_branches"
    # the thread removed the OLD branch (304, the loaded one); purging 319 would undo the upgrade
    assert not [s for s in steps(doc(TWO_BRANCHES)) if s[:2] == ("apt-get", "purge")]
    assert "304" in f.fix.manual and "319" in f.fix.manual
    assert any("API mismatch: the client has the version 319.32" in e for e in f.evidence)


def test_without_the_mismatch_the_branch_not_loaded_is_purged_as_before():
    plan = steps(changed(doc(TWO_BRANCHES), _no_mismatch_lines))
    assert ("apt-get", "purge", "-y", "nvidia-319-updates") in plan, plan


def test_a_client_branch_that_is_not_installed_is_not_a_contest():
    def client_550(d):
        d["commands"]["dmesg"]["stdout"] = d["commands"]["dmesg"]["stdout"].replace("319.32", "550.54.14")

    plan = steps(changed(doc(TWO_BRANCHES), client_550))
    assert ("apt-get", "purge", "-y", "nvidia-319-updates") in plan, plan


# --- the old compiler check ('gcc-version-check failed'), and a check made against the running kernel ------

VOID = "void-linux-4-8-12-kernel-install-nvidia340-dkms-gcc-version-check-uses-running-kernel-next-boot"
MAKE_LOG = "/var/lib/dkms/nvidia/340.101/build/make.log"


def test_the_old_wrapped_compiler_check_is_read():
    log = classify(doc(VOID)["files"][MAKE_LOG], MAKE_LOG)
    assert (log.kind, log.kernel_cc, log.used_cc) == ("cc_check", "4.9", "6.2")
    assert "?" not in first(doc(VOID)).title


def test_a_check_against_the_running_kernels_compiler_gets_no_compiler_steps():
    d = doc(VOID)
    f = first(d)
    assert f.id == "dkms_build_fail_gcc_mismatch" and f.kernel == "4.8.12_1"
    assert "Boot 4.8.12_1" in f.fix.manual and "/proc/version" in f.fix.manual
    plan = steps(d)
    assert not [s for s in plan if any(a.startswith(("CC=", "gcc-")) for a in s)], plan


def test_when_the_running_kernel_was_built_by_another_compiler_the_kernels_compiler_is_used_again():
    def running_built_by_gcc6(d):
        d["files"]["/proc/version"] = d["files"]["/proc/version"].replace("gcc version 4.9.4", "gcc version 6.2.1")

    plan = steps(changed(doc(VOID), running_built_by_gcc6))
    assert ("env", "CC=gcc-4", "dkms", "install", "nvidia/340.101", "-k", "4.8.12_1") in plan, plan


CLEAR = "clearlinux-33110-kernel-lts-5-4-40-gcc-9-3-vs-10-1-nvidia-440-82-cc-version-check-failed"


def test_a_build_for_the_running_kernel_keeps_the_compiler_fix():
    # the same /proc/version-named compiler, but the build was for the running kernel: its compiler is right
    d = doc(CLEAR)
    f = first(d)
    assert f.id == "dkms_build_fail_gcc_mismatch" and f.kernel == "5.4.40-38.lts2019"
    assert ("env", "CC=gcc-9", "dkms", "install", "nvidia/440.82", "-k", "5.4.40-38.lts2019") in steps(d)


# --- the kernel log says the GPU did not initialise and no rule knows why: quote it, ask for nothing read ---

REBAR = "ubuntu2404-rtx5090-open-570-no-devices-found-rminitadapter-bios-rebar-above4g-off"
TURING_OPEN = "ubuntu2204-rtx2060-cuda-repo-515-open-kernel-module-gsp-missing-nvdec0-proprietary-works"


def test_an_unexplained_init_failure_quotes_the_kernel_and_points_at_the_machine():
    f = first(doc(REBAR))
    assert f.id == "driver_failure_unexplained"
    assert "RmInitAdapter failed" in f.title
    assert any("RmInitAdapter failed! (0x22:0x56:884)" in e for e in f.evidence)
    assert "Above 4G Decoding" in f.fix.manual and "dmesg" not in f.fix.manual
    assert "flavour" not in f.fix.manual  # Blackwell runs only with the open modules
    assert steps(doc(REBAR)) == []


def test_a_gpu_that_runs_both_flavours_gets_the_other_flavour_as_a_manual_test():
    f = first(doc(TURING_OPEN))
    assert f.id == "driver_failure_unexplained" and "open flavour" in f.fix.manual
    assert any("Cannot initialize GSP firmware RM" in e for e in f.evidence)
    assert steps(doc(TURING_OPEN)) == []


def test_without_the_init_lines_the_generic_collect_advice_comes_back():
    def no_klog(d):
        d["commands"]["dmesg"]["stdout"] = ""

    f = first(changed(doc(REBAR), no_klog))
    assert f.id == "driver_failure_unexplained"
    assert "RmInitAdapter" not in f.title and "dmesg" in f.fix.manual


# --- the next-boot kernel on a dracut family: build, then regenerate that kernel's initramfs --------------

NOBARA = "nobara-sync-dkms-nvidia-autoinstall-before-kernel-devel-new-kernel-7-2-3-no-module-next-boot"
NEW = "7.2.3-200.fc42.x86_64"


def test_a_next_boot_kernel_on_a_dracut_family_gets_its_initramfs_regenerated_after_the_build():
    plan = steps(doc(NOBARA))
    assert plan[0] == ("dkms", "install", "nvidia/580.95.05", "-k", NEW), plan
    assert ("dracut", "-f", "--kver", NEW) in plan
    assert plan.index(("dracut", "-f", "--kver", NEW)) > 0
    manual = first(doc(NOBARA)).fix.manual
    assert "dnf versionlock" in manual and "apt-mark" not in manual


def test_the_same_next_boot_gap_on_a_debian_family_keeps_its_own_tools():
    def as_ubuntu(d):
        d["files"]["/etc/os-release"] = 'NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID="24.04"\n'
        d["commands"].pop("rpm_list")
        d["commands"]["dpkg_list"] = {
            "rc": 0,
            "stdout": "ii\tnvidia-driver-580-open\t580.95.05-0ubuntu1\nii\tnvidia-dkms-580-open\t580.95.05-0ubuntu1\n"
            f"ii\tlinux-headers-{NEW}\t1\nii\tdkms\t3.0.11-1ubuntu13\n",
            "stderr": "",
        }

    d = changed(doc(NOBARA), as_ubuntu)
    plan = steps(d)
    assert ("dkms", "install", "nvidia/580.95.05", "-k", NEW) in plan, plan
    assert not [s for s in plan if s[0] == "dracut"]
    assert "apt-mark hold" in first(d).fix.manual


def test_the_next_boot_evidence_quotes_the_kernels_dkms_did_build_for():
    f = next(x for x in run(doc(NOBARA))[1].findings if x.id == "next_boot_kernel_missing_module")
    assert f"dkms status has no installed nvidia line for {NEW}" in f.evidence
    assert "nvidia/580.95.05, 7.2.0-202.fc42.x86_64, x86_64: installed" in f.evidence


# --- Ubuntu: the userspace branch is installed and no package provides its kernel module ----------------

OEM_LAG = "mint20-oem-5-10-0-1057-linux-modules-nvidia-470-not-installable-prebuilt-lags-driver-470-103"


def test_userspace_without_any_kernel_module_package_is_named_and_changes_nothing():
    f = first(doc(OEM_LAG))
    assert f.id == "driver_failure_unexplained"
    assert "no package provides its kernel module for 5.10.0-1057-oem" in f.title
    assert "apt-cache policy linux-modules-nvidia-470-5.10.0-1057-oem nvidia-dkms-470" in f.fix.manual
    assert steps(doc(OEM_LAG)) == []


def test_a_dkms_package_present_is_not_this_case():
    def with_dkms(d):
        d["commands"]["dpkg_list"]["stdout"] += "ii\tnvidia-dkms-470\t470.103.01-0ubuntu0.20.04.1\n"

    f = first(changed(doc(OEM_LAG), with_dkms))
    assert "no package provides its kernel module" not in f.title, f.title


def test_a_prebuilt_package_for_another_kernel_is_not_this_case():
    def with_prebuilt(d):
        d["commands"]["dpkg_list"]["stdout"] += "ii\tlinux-modules-nvidia-470-5.10.0-1052-oem\t5.10.0-1052.54\n"

    f = first(changed(doc(OEM_LAG), with_prebuilt))
    assert "no package provides its kernel module" not in f.title, (f.id, f.title)
