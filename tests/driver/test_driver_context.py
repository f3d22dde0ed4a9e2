"""The context and the weighing rules on small constructed snapshots (the wordings are those of
the real cases in tests/fixtures/driver/real; only the combinations are constructed), so each
precondition is pinned by a test that fails when it breaks."""

from __future__ import annotations

import pytest

from mlops_cli.driver.apply import build_plan
from mlops_cli.driver.check import check
from mlops_cli.driver.timeline import read
from mlops_cli.host import Snapshot, SnapshotHost

NO_DRIVER = (
    "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
    "Make sure that the latest NVIDIA driver is installed and running.\n"
)
A100 = "41:00.0 3D controller [0302]: NVIDIA Corporation GA100 [A100 PCIe 40GB] [10de:20f1] (rev a1)\n"
DKMS_550 = "ii \tnvidia-driver-550-server\t550.127.05-0ubuntu0.24.04.1\nii \tnvidia-dkms-550-server\t550.127.05-0ubuntu0.24.04.1\n"


def C(out="", rc=0, err=""):
    return {"rc": rc, "stdout": out, "stderr": err}


def diagnose(commands, files=None, dirs=None):
    d = check(
        SnapshotHost(Snapshot.from_json({"format": 1, "commands": commands, "files": files or {}, "dirs": dirs or {}}))
    )
    return d, [f.id for f in d.findings], [list(p.step.argv) for p in build_plan(d.findings).steps]


def test_wsl_from_the_kernel_release_alone_is_a_problem_not_a_cpu_node():
    d, ids, steps = diagnose(
        {
            "uname_r": C("5.15.153.1-microsoft-standard-WSL2\n"),
            "nvidia_smi": C("Failed to initialize NVML: GPU access blocked by the operating system\n", 255),
        }
    )
    assert d.status == "problem" and ids == ["wsl_gpu_unavailable"] and steps == []
    assert d.context["kind"] == "wsl" and d.context["gated"]


def test_a_container_in_wsl_without_the_gpu_is_told_to_pass_it():
    d, ids, steps = diagnose(
        {
            "uname_r": C("5.15.153.1-microsoft-standard-WSL2\n"),
            "nvidia_smi": C("", 127, "nvidia-smi: command not found\n"),
        },
        {"/.dockerenv": ""},
        {"/dev": ["null", "pts"]},
    )
    assert ids == ["inside_container_no_gpu_passed"] and steps == []


@pytest.mark.parametrize(
    "marker",
    [{"/proc/1/environ": "PATH=/usr/bin\x00container=lxc\x00TERM=linux"}, {"/run/systemd/container": "lxc\n"}],
)
def test_lxc_is_recognised_without_dockerenv_and_gets_no_kernel_step(marker):
    files = {
        "/proc/driver/nvidia/version": "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.90.07  Fri May 31 09:35:42 UTC 2024\n",
        **marker,
    }
    d, ids, steps = diagnose(
        {
            "uname_r": C("6.8.0-45-generic\n"),
            "nvidia_smi": C(
                "Failed to initialize NVML: Driver/library version mismatch\nNVML library version: 550.127\n", 18
            ),
            "dpkg_list": C("ii \tnvidia-utils-550\t550.127.05-0ubuntu1\n"),
        },
        files,
        {"/dev": ["nvidia0", "nvidiactl"]},
    )
    assert d.context["kind"] == "container" and d.context["container"] == "lxc"
    assert ids == ["container_driver_mismatch"] and steps == []


def test_a_proxmox_kernel_without_its_modules_is_an_lxc_container():
    d, ids, _ = diagnose(
        {
            "uname_r": C("6.8.12-4-pve\n"),
            "nvidia_smi": C("Failed to initialize NVML: Driver/library version mismatch\n", 18),
        },
        {
            "/proc/driver/nvidia/version": "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.90.07  Fri May 31 09:35:42 UTC 2024\n"
        },
        {"/lib/modules": [], "/dev": ["nvidia0"]},
    )
    assert d.context["kind"] == "container"


def test_a_kubernetes_node_whose_module_comes_from_no_package_is_operator_managed():
    d, ids, steps = diagnose(
        {"uname_r": C("5.15.0-1060-gke\n"), "dpkg_list": C("ii \tkubelet\t1.29.1-1.1\n")},
        {"/proc/modules": "nvidia 56213504 1 - Live 0x0 (POE)\n", "/sys/module/nvidia/version": "535.161.08\n"},
        {"/var/lib/kubelet": ["pods"]},
    )
    assert d.status == "ok" and ids == ["driver_managed_by_operator"] and steps == []


def test_a_rejected_module_in_the_kernel_log_is_never_driver_not_installed():
    """Direct kernel evidence outranks package inference: no packages, but the kernel refused one."""
    d, ids, steps = diagnose(
        {
            "uname_r": C("6.8.0-45-generic\n"),
            "mokutil_sb_state": C("SecureBoot enabled\n"),
            "nvidia_smi": C(NO_DRIVER, 9),
            "dmesg": C("[  342.118201] Loading of unsigned module is rejected\n"),
            "dpkg_list": C("ii \tbuild-essential\t12.10ubuntu1\n"),
            "lspci_nvidia": C(A100),
        },
    )
    assert ids[0] == "secure_boot_module_rejected" and "driver_not_installed" not in ids
    assert not [s for s in steps if s[0] == "ubuntu-drivers"]


@pytest.mark.parametrize("passthrough", [False, True])
def test_vfio_pci_owning_the_gpu_is_reported_and_never_unbound_automatically(passthrough):
    files = {"/lib/modules/6.8.0-45-generic/updates/dkms/nvidia.ko.zst": ""}
    if passthrough:
        files["/etc/modprobe.d/vfio.conf"] = "options vfio-pci ids=10de:20f1\n"
    d, ids, steps = diagnose(
        {
            "uname_r": C("6.8.0-45-generic\n"),
            "nvidia_smi": C(NO_DRIVER, 9),
            "lspci_nvidia": C(A100 + "\tKernel driver in use: vfio-pci\n"),
            "dkms_status": C("nvidia/550.127.05, 6.8.0-45-generic, x86_64: installed\n"),
            "dpkg_list": C(DKMS_550),
        },
        files,
    )
    assert ids[0] == "conflicting_driver_bound" and steps == []
    assert ("on purpose" in d.findings[0].fix.summary) == passthrough


def test_nouveau_without_any_nvidia_module_is_a_consequence_not_the_cause():
    d, ids, _ = diagnose(
        {
            "uname_r": C("6.1.0-21-amd64\n"),
            "nvidia_smi": C("", 127, "nvidia-smi: command not found\n"),
            "lspci_nvidia": C(A100 + "\tKernel driver in use: nouveau\n"),
            "dkms_status": C("nvidia-current/535.161.08: added\n"),
            "dpkg_list": C(
                "iF \tnvidia-kernel-dkms:amd64\t535.161.08-2~deb12u1\niU \tnvidia-driver\t535.161.08-2~deb12u1\n"
            ),
        },
        {"/var/log/apt/term.log": "Error! Bad return status for module build on kernel: 6.1.0-21-amd64 (x86_64)\n"},
        {"/lib/modules/6.1.0-21-amd64": ["build", "kernel"]},
    )
    assert ids[0] == "dkms_build_failed" and "nouveau_bound" not in ids and "driver_not_installed" not in ids


def test_module_load_time_after_the_upgrade_makes_the_mismatch_stale():
    commands = {
        "uname_r": C("5.15.0-100-generic\n"),
        "nvidia_smi": C(
            "Failed to initialize NVML: Driver/library version mismatch\nNVML library version: 535.183\n", 18
        ),
        "dmesg": C(
            "[Mon Jun 10 09:00:01 2024] NVRM: loading NVIDIA UNIX x86_64 Kernel Module  535.161.08  Wed Feb 28 21:00:00 UTC 2024\n"
        ),
        "modinfo_nvidia": C(
            "filename:       /lib/modules/5.15.0-100-generic/updates/dkms/nvidia.ko\nversion:        535.183.01\n"
        ),
        "dpkg_list": C(
            "ii \tnvidia-dkms-535\t535.183.01-0ubuntu0.22.04.1\nii \tnvidia-utils-535\t535.183.01-0ubuntu0.22.04.1\n"
        ),
    }
    term = "Log started: 2024-06-08  06:10:01\nSetting up nvidia-utils-535 (535.183.01-0ubuntu0.22.04.1) ...\n"
    files = {"/sys/module/nvidia/version": "535.161.08\n", "/lib/modules/5.15.0-100-generic/updates/dkms/nvidia.ko": ""}
    _, ids, steps = diagnose(commands, {**files, "/var/log/apt/term.log": term})
    assert ids[0] == "version_mismatch_stale_module" and ["update-initramfs", "-u", "-k", "all"] in steps
    # the same upgrade AFTER the module was loaded: a pending reboot
    later = term.replace("2024-06-08", "2024-06-12")
    _, ids, _ = diagnose(commands, {**files, "/var/log/apt/term.log": later})
    assert ids[0] == "version_mismatch_pending_reboot"


def test_timeline_reads_dpkg_log_and_reboot_required():
    tl = read("2024-09-01 10:00:00\n", "2024-09-04 06:12:01 upgrade nvidia-driver-550:amd64 550.90.07-0 550.107.02-0\n")
    assert tl.rebooted_since_change is False
    tl = read("2024-09-05 10:00:00\n", "2024-09-04 06:12:01 upgrade nvidia-driver-550:amd64 550.90.07-0 550.107.02-0\n")
    assert tl.rebooted_since_change is True
    assert read("", "", reboot_pkgs=["nvidia-dkms-550"]).rebooted_since_change is False
    assert read("garbage", "also garbage").rebooted_since_change is None
