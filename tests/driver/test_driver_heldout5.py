"""The rule classes changed for the fifth held-out corpus (tests/fixtures/driver/heldout5), each with
its preconditions: the real case gets the class, and the same case changed where the test says (the
evidence the rule needs taken away or added) flips back. Snapshots are the heldout5 ones."""

from __future__ import annotations

import json

from driver_helpers import FIXTURES, changed, diagnosed, finding_ids, plan_steps

from mlops_cli.driver import gate
from mlops_cli.driver.context import vgpu_names
from mlops_cli.driver.parse import parse_nvidia_smi

HELDOUT5 = FIXTURES / "heldout5"


def doc(name: str) -> dict:
    return json.loads((HELDOUT5 / f"{name}.json").read_text())


run, ids, steps = diagnosed, finding_ids, plan_steps


# --- GRID K520 is a physical board, not a vGPU profile --------------------------------------

EC2_K520 = "ec2-ubuntu1404-runfile-361-restart-nouveau-from-initramfs-uvm-fails"


def test_physical_grid_boards_are_not_vgpu_profiles():
    assert vgpu_names(["GK104GL [GRID K520]", "GRID K1", "GRID K2", "GRID K340"]) == []
    assert vgpu_names(["GRID K260Q", "GRID K200", "GRID T4-16Q", "NVIDIA A100-4C"]) == [
        "GRID K260Q",
        "GRID K200",
        "GRID T4-16Q",
        "NVIDIA A100-4C",
    ]


def test_k520_on_ec2_gets_the_driver_diagnosis_and_a_profile_name_flips_it():
    found = ids(doc(EC2_K520))
    # no module for the changed kernel: nouveau holding the GPU is the consequence, the .run module the cause
    assert "vgpu_guest_driver" not in found and found[0] == "runfile_module_missing_after_kernel_upgrade"

    def profile(d):
        d["commands"]["lspci_nvidia"]["stdout"] = d["commands"]["lspci_nvidia"]["stdout"].replace(
            "GRID K520", "GRID K260Q"
        )

    assert ids(changed(doc(EC2_K520), profile))[0] == "vgpu_guest_driver"


# --- Arch's vmlinuz-<package> names are not kernel releases --------------------------------

CACHYOS = "cachyos-nvidia-dkms-not-built-for-linux-cachyos-works-on-arch-kernel"


def test_unversioned_vmlinuz_names_are_not_kernels():
    facts, d = run(doc(CACHYOS))
    assert facts.next_kernel and facts.next_kernel[0].isdigit()
    assert [f.id for f in d.findings][0] == "dkms_module_not_built_for_running_kernel"
    assert "kernel_headers_missing" not in [f.id for f in d.findings]


# --- DKMS failures in pacman.log ----------------------------------------------------------------

ARCH470 = "arch-nvidia-470xx-dkms-fails-for-6-14-4-mkinitcpio-module-not-found"


def test_pacman_log_dkms_failure_is_a_failed_build_and_is_not_rerun():
    d = doc(ARCH470)
    assert ids(d)[0] in ("dkms_build_failed", "dkms_build_fail_kernel_too_new")
    assert not [s for s in steps(d) if gate.program(s) == "dkms" and "install" in s]

    def no_log(x):
        del x["files"]["/var/log/pacman.log"]

    assert ids(changed(d, no_log))[0] == "dkms_module_not_built_for_running_kernel"


# --- a table of ERR! fields plus a reset Xid ----------------------------------------------------

G5_GSP = "eks-al2-g5-a10g-ami-with-gsp-nvml-unknown-error-xid-119"


def test_err_fields_are_seen_by_the_parser():
    s = parse_nvidia_smi(
        0,
        "| NVIDIA-SMI 535.54.03   Driver Version: 535.54.03 |\n|   0  NVIDIA A10G  On | 00000000:00:1E.0 Off | ERR! |\n",
        "",
    )
    assert s.kind == "ok" and s.err_fields
    assert not parse_nvidia_smi(0, "| NVIDIA-SMI 535.54.03   Driver Version: 535.54.03 |\n", "").err_fields


def test_err_fields_with_xid_119_need_a_reset_and_no_reinstall():
    d = doc(G5_GSP)
    _, diag = run(d)
    assert diag.status == "problem" and diag.findings[0].id == "gpu_needs_reset"
    assert not [s for s in steps(d) if gate.program(s) in ("dkms", "apt-get", "yum", "dnf")]

    def clean_table(x):
        out = x["commands"]["nvidia_smi"]["stdout"]
        x["commands"]["nvidia_smi"]["stdout"] = out.replace("ERR!", "  0%")

    assert run(changed(d, clean_table))[1].status == "ok"


# --- 575.64 is not 575.64.03: the file on disk is the loaded old version ---------------------------

NEGATIVO = "rhel96-negativo17-kmod-575-64-left-beside-575-64-03-userspace-mismatch"


def test_api_line_full_versions_make_it_stale_and_the_plan_names_the_package():
    d = doc(NEGATIVO)
    _, diag = run(d)
    first = diag.findings[0]
    assert first.id == "version_mismatch_stale_module"
    assert not first.fix.steps and "rpm -qf" in first.fix.manual

    def new_file_on_disk(x):
        x["commands"]["modinfo_nvidia"]["stdout"] = x["commands"]["modinfo_nvidia"]["stdout"].replace(
            "575.64\n", "575.64.03\n"
        )

    assert ids(changed(d, new_file_on_disk))[0] == "version_mismatch_pending_reboot"


# --- 'Kernel configuration is invalid' with the headers package installed ----------------------------

GCP70 = "gcp-ubuntu2404-gcp-kernel-7-0-cuda-repo-590-dkms-kernel-configuration-invalid"


def test_config_invalid_with_headers_installed_is_a_failed_build_not_missing_headers():
    d = doc(GCP70)
    _, diag = run(d)
    assert diag.findings[0].id == "dkms_build_failed"
    assert "dpkg -V" in diag.findings[0].fix.manual
    assert not [s for s in steps(d) if s[:2] == ("dkms", "install")]

    def no_headers(x):
        rows = x["commands"]["dpkg_list"]["stdout"].splitlines(keepends=True)
        x["commands"]["dpkg_list"]["stdout"] = "".join(r for r in rows if "linux-headers-" not in r)

    assert ids(changed(d, no_headers))[0] == "kernel_headers_missing"


# --- Secure Boot on an akmods system names akmods' key and rebuild --------------------------------

FEDORA_SB = "fedora43-akmod-580-105-rtx5060-laptop-smi-fails-mok-reenrolled-no-kernel-log"


def test_secure_boot_on_akmods_names_the_akmods_key_not_dkms():
    d = doc(FEDORA_SB)
    first = run(d)[1].findings[0]
    assert first.id == "secure_boot_module_rejected"
    assert "/etc/pki/akmods/certs/public_key.der" in first.fix.manual and "akmods --force" in first.fix.manual
    assert "/var/lib/dkms/mok.pub" not in first.fix.manual

    def no_akmods(x):
        rows = x["commands"]["rpm_list"]["stdout"].splitlines(keepends=True)
        x["commands"]["rpm_list"]["stdout"] = "".join(r for r in rows if not r.startswith("akmod"))

    assert "/var/lib/dkms/mok.pub" in run(changed(d, no_akmods))[1].findings[0].fix.manual


# --- 'Unknown symbol drm_*' on a kernel without its extra modules ------------------------------------

EC2_DRM = "ec2-ubuntu1604-runfile-361-unknown-symbol-drm-linux-image-extra-missing"


def test_unknown_drm_symbols_without_the_extra_modules_name_the_package():
    d = doc(EC2_DRM)
    first = run(d)[1].findings[0]
    assert first.id == "kernel_modules_extra_missing"
    argvs = [s.argv for s in first.fix.steps]
    assert argvs == [
        ("apt-get", "install", "-y", "linux-image-extra-4.4.0-36-generic")
    ]  # 16.04's name; no modprobe: no nvidia.ko

    def extra_installed(x):
        x["commands"]["dpkg_list"]["stdout"] += "ii \tlinux-image-extra-4.4.0-36-generic\t4.4.0-36.55\n"

    assert "kernel_modules_extra_missing" not in ids(changed(d, extra_installed))

    def jammy(x):
        x["files"]["/etc/os-release"] = x["files"]["/etc/os-release"].replace(
            'VERSION_ID="16.04"', 'VERSION_ID="22.04"'
        )

    assert ("apt-get", "install", "-y", "linux-modules-extra-4.4.0-36-generic") in steps(changed(d, jammy))


def test_inferred_secure_boot_without_a_kernel_log_says_it_is_not_confirmed():
    d = doc(FEDORA_SB)
    first = run(d)[1].findings[0]
    assert "not confirmed" in first.title and any("run as root to confirm" in ln for ln in first.evidence)

    def readable_log(x):
        x["commands"]["dmesg"] = {
            "rc": 0,
            "stdout": "[    1.000000] Linux version 6.17.10-300.fc43.x86_64\n",
            "stderr": "",
        }

    assert "not confirmed" not in run(changed(d, readable_log))[1].findings[0].title


# --- prebuilt flavour switch: the kernel flavour's metapackage and the userspace follow -------------

G7E = "aws-g7e-ubuntu2404-linux-modules-nvidia-580-aws-proprietary-on-blackwell"


def test_prebuilt_flavour_switch_moves_the_metapackages_too():
    d = doc(G7E)
    assert steps(d) == [
        (
            "apt-get",
            "install",
            "-y",
            "linux-modules-nvidia-580-open-6.14.0-1015-aws",
            "linux-modules-nvidia-580-open-aws",
            "nvidia-driver-580-open",
        )
    ]

    def no_metas(x):
        rows = x["commands"]["dpkg_list"]["stdout"].splitlines(keepends=True)
        keep = ("linux-modules-nvidia-580-aws", "nvidia-driver-580\t")
        x["commands"]["dpkg_list"]["stdout"] = "".join(r for r in rows if not any(k in r for k in keep))

    assert steps(changed(d, no_metas)) == [
        ("apt-get", "install", "-y", "linux-modules-nvidia-580-open-6.14.0-1015-aws")
    ]


# --- NVML failing on its own with the module loaded: look at the library first -----------------------

NVML_FNF = "rhel-ppc64le-yum-update-nvml-function-not-found-survives-reboot"


def test_nvml_failure_with_module_loaded_points_at_the_library_and_changes_nothing():
    d = doc(NVML_FNF)
    first = run(d)[1].findings[0]
    assert first.id == "driver_failure_unexplained" and not first.fix.steps
    assert "libnvidia-ml.so.1" in first.fix.manual

    def not_loaded(x):
        x["files"]["/proc/modules"] = ""
        del x["files"]["/sys/module/nvidia/version"]
        x["files"].pop("/proc/driver/nvidia/version", None)

    assert "libnvidia-ml.so.1" not in (run(changed(d, not_loaded))[1].findings[0].fix.manual or "")
