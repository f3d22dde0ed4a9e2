"""The rule classes changed for the fourth held-out corpus (tests/fixtures/driver/heldout4), each
with its preconditions: the real case gets the class, and the same case changed where the test
says (the evidence the rule needs taken away or added) flips back. Snapshots are the heldout4 ones."""

from __future__ import annotations

import json

from driver_helpers import FIXTURES, changed, diagnosed, finding_ids, plan_steps

from mlops_cli.driver import distro, gate

HELDOUT4 = FIXTURES / "heldout4"
UBUNTU = 'NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID="22.04"\n'


def doc(name: str) -> dict:
    return json.loads((HELDOUT4 / f"{name}.json").read_text())


run, ids, steps = diagnosed, finding_ids, plan_steps


def programs(d: dict) -> set[str]:
    return {gate.program(s) for s in steps(d)}


# --- the distribution's own tools ---------------------------------------------------------

CENTOS7 = "centos7-kernel-957-running-kernel-devel-1127-dkms-450-not-built"
FEDORA33 = "fedora33-negativo17-dkms-nvidia-455-28-no-kernel-devel"


def test_headers_on_rhel_family_use_yum_on_el7_and_dnf_on_fedora():
    d = doc(CENTOS7)
    assert ids(d)[0] == "kernel_headers_missing"
    assert ("yum", "install", "-y", "kernel-devel-3.10.0-957.el7.x86_64") in steps(d)
    assert "apt-get" not in programs(d)
    assert ("dnf", "install", "-y", "kernel-devel-5.8.15-301.fc33.x86_64") in steps(doc(FEDORA33))


def test_the_same_case_on_a_dpkg_system_keeps_the_debian_plan():
    def to_ubuntu(d):
        d["files"]["/etc/os-release"] = UBUNTU
        del d["commands"]["rpm_list"]
        d["commands"]["dpkg_list"] = {"rc": 0, "stdout": "ii \tnvidia-dkms-450\t450.51.06-0ubuntu1\n", "stderr": ""}

    assert "apt-get" in programs(changed(doc(CENTOS7), to_ubuntu))


def test_family_evidence_order():
    rel = {"ID": "rocky", "ID_LIKE": "rhel centos fedora"}
    assert distro.family(rel, dpkg=False, rpm=True, pacman=False) == distro.RHEL
    assert distro.family({"ID": "opensuse-leap", "ID_LIKE": "suse opensuse"}, False, True, False) == distro.SUSE
    assert distro.family({}, dpkg=True, rpm=True, pacman=False) == distro.DEBIAN  # dpkg answered
    assert distro.family({"ID": "arch"}, False, False, False) == distro.ARCH
    assert distro.family({}, False, False, False) == distro.UNKNOWN
    assert distro.family({"ID": "debian"}, False, False, False, kernel="6.12.33-production+truenas") == distro.APPLIANCE
    assert distro.family({"ID": "fedora"}, False, True, False, ostree=True) == distro.OSTREE


def test_initramfs_step_becomes_dracut_or_mkinitcpio_and_appliances_get_none():
    rel = {"ID": "fedora"}
    assert distro.translate(("update-initramfs", "-u"), distro.RHEL, rel) == ("dracut", "-f", "--regenerate-all")
    assert distro.translate(("update-initramfs", "-u", "-k", "all"), distro.ARCH, {}) == ("mkinitcpio", "-P")
    assert distro.translate(("update-initramfs", "-u"), distro.APPLIANCE, {}) is None
    assert distro.translate(("apt-get", "install", "-y", "nvidia-driver-550"), distro.RHEL, rel) is None
    assert distro.translate(("dkms", "autoinstall"), distro.RHEL, rel) == ("dkms", "autoinstall")
    assert distro.headers_package(distro.ARCH, "6.6.30-1-lts") == "linux-lts-headers"
    assert distro.headers_package(distro.SUSE, "6.4.0-150600.23.25-default") == "kernel-default-devel"


def test_truenas_and_silverblue_get_no_package_step():
    truenas = doc("truenas-scale-2510-community-script-nvml-580-178-module-580-173-02")
    assert not programs(truenas) & (distro.DEBIAN_ONLY | {"dnf", "dracut"})
    silverblue = doc("fedora42-silverblue-akmod-nvidia-open-builds-proprietary-rtx5070ti")
    assert ids(silverblue)[0] == "wrong_kernel_module_flavor"
    assert not programs(silverblue) & (distro.DEBIAN_ONLY | {"dnf"})
    # the same Fedora without /run/ostree-booted: the flavour change is by hand too (no dnf
    # package name is known for it), but nothing Debian-only slips through either
    plain = changed(silverblue, lambda d: d["files"].pop("/run/ostree-booted"))
    assert "apt-get" not in programs(plain)


# --- package history of other families in the timeline -------------------------------------

ARCH_STALE = "arch-pacman-linux-then-nvidia-upgrade-initramfs-keeps-old-module-api-mismatch"


def test_pacman_log_dates_the_upgrade_so_a_mismatch_after_reboot_is_stale():
    d = doc(ARCH_STALE)
    assert ids(d)[0] == "version_mismatch_stale_module"
    assert ("mkinitcpio", "-P") in steps(d)
    assert "update-initramfs" not in programs(d)
    without = changed(d, lambda x: x["files"].pop("/var/log/pacman.log"))
    assert "version_mismatch_stale_module" not in ids(without)


# --- build logs -----------------------------------------------------------------------------

F43 = "fedora43-negativo17-akmods-590-48-fails-gcc-c++-missing"
F41 = "fedora41-akmods-565-77-build-fails-for-6-13-4-log-gives-no-cause"
ROCKY = "rocky98-dnf-module-575-open-build-fails-after-kernel-687"
CENTOS75 = "centos75-kernel-862-runfile-367-124-grid-k2-dkms-build-fails"


def test_missing_build_dependency_is_installed_with_the_family_tool_before_the_rebuild():
    d = doc(F43)
    assert ids(d)[0] == "build_dependency_missing"
    plan = steps(d)
    assert plan[0] == ("dnf", "install", "-y", "gcc-c++")
    assert plan[1][0] == "akmods"


def test_without_the_dependency_line_the_akmods_failure_is_unexplained_and_not_repeated():
    def drop(d):
        log = next(p for p in d["files"] if p.endswith(".failed.log"))
        d["files"][log] = "\n".join(ln for ln in d["files"][log].splitlines() if "needed by" not in ln) + "\n"

    d = changed(doc(F43), drop)
    assert ids(d)[0] == "dkms_build_failed"
    assert not [s for s in steps(d) if s[0] == "akmods"]
    # rpmbuild's summary ('error: Bad exit status from ... (%build)') is not a compiler error
    assert ids(doc(F41))[0] == "dkms_build_failed"


def test_dkms3_exit_code_footer_is_a_failed_build():
    d = doc(ROCKY)
    assert ids(d)[0] == "dkms_build_failed"
    assert not [s for s in steps(d) if s[:2] == ("dkms", "install")]

    def ok(x):
        path = "/var/lib/dkms/nvidia/575.57.08/build/make.log"
        x["files"][path] = x["files"][path].replace("# exit code: 2", "# exit code: 0")

    assert ids(changed(d, ok))[0] == "dkms_module_not_built_for_running_kernel"


def test_installer_log_names_the_kernel_of_the_failed_dkms_build():
    d = doc(CENTOS75)
    assert ids(d)[0] == "dkms_build_failed"
    assert ("dkms", "install", "nvidia/367.124", "-k", "3.10.0-862.2.3.el7.x86_64") not in steps(d)


# --- precompiled RPM kmods ------------------------------------------------------------------

ALMA = "alma97-kmod-nvidia-open-595-precompiled-none-for-new-kernel-611-45"


def test_precompiled_kmod_without_one_for_the_running_kernel():
    d = doc(ALMA)
    assert ids(d)[0] == "prebuilt_module_missing_for_kernel"
    assert not steps(d)  # by hand: nothing to build, a kmod to wait for or a kernel to boot

    def with_akmod(x):
        x["commands"]["rpm_list"]["stdout"] += "akmod-nvidia\t3:595.58.03-1.el9\n"

    assert "prebuilt_module_missing_for_kernel" not in ids(changed(d, with_akmod))


# --- fabric manager -------------------------------------------------------------------------

A40 = "ubuntu2004-2x-a40-nvlink-bridge-fabricmanager-nv-warn-nothing-to-do"
H200_OPERATOR = "k8s-operator-hgx-h200-driver-container-580-126-09-fabricmanager-590-48-01"


def test_nothing_to_do_without_nvswitch_is_not_a_fabric_problem():
    d = doc(A40)
    facts, diag = run(d)
    assert diag.status == "ok"

    def add_nvswitch(x):
        x["files"]["/sys/bus/pci/devices/0000:07:00.0/vendor"] = "0x10de\n"
        x["files"]["/sys/bus/pci/devices/0000:07:00.0/device"] = "0x22a3\n"
        x["files"]["/sys/bus/pci/devices/0000:07:00.0/class"] = "0x068000\n"
        x["dirs"]["/sys/bus/pci/devices"].append("0000:07:00.0")

    assert "fabricmanager_not_running" in ids(changed(d, add_nvswitch))


def test_operator_fabric_manager_log_shows_the_mismatch_and_nothing_runs_on_the_host():
    d = doc(H200_OPERATOR)
    assert "fabricmanager_version_mismatch" in ids(d)
    assert not steps(d)
    without = changed(d, lambda x: x["files"].pop("/run/nvidia/driver/var/log/fabricmanager.log"))
    assert "fabricmanager_version_mismatch" not in ids(without)
