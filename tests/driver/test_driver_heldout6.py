"""The rule classes changed for the sixth held-out corpus (tests/fixtures/driver/heldout6), each with
its preconditions: the real case gets the class, and the same case changed where the test says (the
evidence the rule needs taken away or added) flips back. Snapshots are the heldout6 ones."""

from __future__ import annotations

import json

from driver_helpers import FIXTURES, changed, diagnosed, finding_ids, plan_steps

from mlops_cli.driver.apply import build_plan
from mlops_cli.driver.buildlogs import classify

HELDOUT6 = FIXTURES / "heldout6"


def doc(name: str) -> dict:
    return json.loads((HELDOUT6 / f"{name}.json").read_text())


run, ids, steps = diagnosed, finding_ids, plan_steps


# --- Jetson / L4T: not applicable ------------------------------------------------------------

ORIN = "jetson-orin-l4t-r36-nvidia-smi-driver-version-na-integrated-nvgpu"
JP5 = "jetpack5-orin-nvidia-smi-command-not-found-integrated-gpu"
NANO = "jetson-nano-ubuntu2004-image-apt-nvidia-driver-535-unmet-dependencies"


def test_jetson_boards_are_not_applicable_with_no_plan():
    for name in (ORIN, JP5, NANO):
        _, d = run(doc(name))
        assert d.status == "no-gpu", name
        assert [f.id for f in d.findings] == ["tegra_integrated_gpu"], name
        assert not build_plan(d.findings).steps, name


def test_each_tegra_signal_alone_is_enough():
    def only(keep: str):
        def fn(d):
            if keep != "release":
                d["files"].pop("/etc/nv_tegra_release")
            if keep != "compatible":
                d["files"].pop("/proc/device-tree/compatible")
            if keep != "uname":
                d["commands"]["uname_r"]["stdout"] = "5.10.120\n"
            if keep != "package":
                d["commands"]["dpkg_list"]["stdout"] = ""

        return fn

    for keep in ("release", "compatible", "uname", "package"):
        assert ids(changed(doc(JP5), only(keep)))[:1] == ["tegra_integrated_gpu"], keep


def test_without_any_tegra_signal_it_is_no_gpu_again():
    def strip(d):
        d["files"].pop("/etc/nv_tegra_release")
        d["files"].pop("/proc/device-tree/compatible")
        d["commands"]["uname_r"]["stdout"] = "5.10.120\n"
        d["commands"]["dpkg_list"]["stdout"] = ""

    found = ids(changed(doc(JP5), strip))
    assert "tegra_integrated_gpu" not in found and found[:1] == ["no_nvidia_gpu"]


def test_a_discrete_gpu_on_a_tegra_board_is_judged_normally():
    def add_dgpu(d):
        d["dirs"]["/sys/bus/pci/devices"] = ["0005:01:00.0"]
        for k, v in (("vendor", "0x10de"), ("device", "0x26b1"), ("class", "0x030200")):
            d["files"][f"/sys/bus/pci/devices/0005:01:00.0/{k}"] = v + "\n"
        d["commands"]["lspci_nvidia"]["stdout"] = (
            "0005:01:00.0 3D controller [0302]: NVIDIA Corporation AD102GL [RTX 6000 Ada] [10de:26b1] (rev a1)\n"
        )

    assert "tegra_integrated_gpu" not in ids(changed(doc(JP5), add_dgpu))


# --- PREEMPT_RT: the build refuses the kernel by design; never rebuild -------------------------

RT_UBUNTU = "ubuntu2404-ubuntu-realtime-kernel-6-8-1-1015-nvidia-open-610-preempt-rt-sanity-check"
RT_XANMOD = "ubuntu2004-xanmod-rt-edge-5-6-17-rt10-nvidia-dkms-440-100-preempt-rt-bails-out"


def test_preempt_rt_refusal_is_its_own_build_class():
    assert classify("*** Failed PREEMPT_RT sanity check. Bailing out! ***\n", "make.log").kind == "preempt_rt"
    assert classify("The kernel you are installing for is a PREEMPT_RT kernel!\n", "make.log").failed
    assert classify("make[1]: *** [Makefile:248: __sub-make] Error 2\n", "make.log").kind == "unknown"


def test_rt_kernels_get_the_rt_finding_and_no_rebuild():
    for name in (RT_UBUNTU, RT_XANMOD):
        found = ids(doc(name))
        assert found[:1] == ["kernel_preempt_rt_unsupported"], (name, found)
        assert not any(s[0] in ("dkms", "nvidia-installer", "update-initramfs") for s in steps(doc(name))), name


def test_without_the_rt_message_the_xanmod_log_is_not_the_rt_class():
    log = "/var/lib/dkms/nvidia/440.100/build/make.log"

    def plain(d):
        d["files"][log] = "\n".join(ln for ln in d["files"][log].splitlines() if "PREEMPT_RT" not in ln) + "\n"

    assert "kernel_preempt_rt_unsupported" not in ids(changed(doc(RT_XANMOD), plain))


# --- NVML 'GPU is lost' without an Xid needs a reset -----------------------------------------

LOST = "ubuntu1804-4-gpu-training-gpu-is-lost-reboot-to-recover-no-kernel-log"


def test_gpu_is_lost_needs_a_reset_and_plans_nothing():
    assert ids(doc(LOST))[:1] == ["gpu_needs_reset"]
    assert steps(doc(LOST)) == []


def test_an_unknown_error_handle_without_lost_stays_unexplained():
    def unknown(d):
        d["commands"]["nvidia_smi"]["stdout"] = (
            "Unable to determine the device handle for GPU 0000:02:00.0: Unknown Error\n"
        )

    found = ids(changed(doc(LOST), unknown))
    assert "gpu_needs_reset" not in found and found[:1] == ["driver_failure_unexplained"]


# --- two owners of the driver: no fabric manager steps ----------------------------------------

DGX = "dgx-a100-dgxos5-microk8s-enable-gpu-driver-460-73-01-host-fabricmanager-460-91-03"


def test_dgx_with_operator_driver_over_dgx_os_driver_plans_no_fabric_manager_change():
    found = ids(doc(DGX))
    assert "fabricmanager_version_mismatch" in found and "operator_driver_conflicts_with_host_driver" in found
    assert steps(doc(DGX)) == []


def test_without_the_operator_the_fabric_manager_fix_is_planned_again():
    def no_operator(d):
        d["files"].pop("/run/nvidia/driver")
        d["dirs"].pop("/run/nvidia/validations")

    found = ids(changed(doc(DGX), no_operator))
    assert "operator_driver_conflicts_with_host_driver" not in found
    assert any("fabricmanager" in " ".join(s) for s in steps(changed(doc(DGX), no_operator)))


# --- nvidia-prime's 'intel' profile: switch the profile, do not edit its file -----------------

PRIME = "ubuntu2004-laptop-prime-select-intel-alias-nvidia-off-cuda-only-nvidia-smi-fails"


def _fix(d: dict):
    return next(f for f in run(d)[1].findings if f.id == "module_not_loaded").fix


def test_nvidia_prime_blacklist_points_at_prime_select():
    fix = _fix(doc(PRIME))
    assert "prime-select" in fix.summary and not fix.steps


def test_a_hand_written_blacklist_keeps_the_remove_it_fix():
    def hand_written(d):
        d["files"]["/lib/modprobe.d/blacklist-nvidia.conf"] = "blacklist nvidia\n"

    fix = _fix(changed(doc(PRIME), hand_written))
    assert "prime-select" not in fix.summary and "remove the blacklist" in fix.summary
