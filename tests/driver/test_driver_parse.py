"""Parsers over every format variant of research/driver-scenarios.md (quoted verbatim)."""

from mlops_cli.driver import kernlog as K
from mlops_cli.driver import parse as P


def test_dkms_status_new_old_added_and_suffixes():
    text = (
        "nvidia/535.86.05, 6.5.0-060500rc5-generic, x86_64: installed\n"
        "nvidia/390.157: added\n"
        "nvidia, 396.45, 4.17.14-202.fc28.x86_64, x86_64: installed (original_module exists)\n"
        "i915-sriov-dkms/2025.03.26, 6.11.11-2-pve, x86_64: installed (WARNING! Diff between built and installed module!)\n"
        "Error! Could not locate dkms.conf file.\n"
        "File: /var/lib/dkms/nvidia/390.48/source/dkms.conf does not exist.\n"
    )
    entries = P.parse_dkms_status(text)
    assert [(e.module, e.version, e.kernel, e.state) for e in entries] == [
        ("nvidia", "535.86.05", "6.5.0-060500rc5-generic", "installed"),
        ("nvidia", "390.157", None, "added"),
        ("nvidia", "396.45", "4.17.14-202.fc28.x86_64", "installed"),
        ("i915-sriov-dkms", "2025.03.26", "6.11.11-2-pve", "installed"),
    ]
    assert P.dkms_errors(text) == [
        "Error! Could not locate dkms.conf file.",
        "File: /var/lib/dkms/nvidia/390.48/source/dkms.conf does not exist.",
    ]


def test_dkms_kernel_is_matched_on_the_whole_field():
    entries = P.parse_dkms_status("nvidia/550.1, 6.8.0-106-generic, x86_64: installed\n")
    assert [e for e in entries if e.kernel == "6.8.0-10-generic"] == []


def test_nvidia_smi_banners_and_failures():
    assert (
        P.parse_nvidia_smi(
            0, "| NVIDIA-SMI 510.68.02    Driver Version: 510.68.02    CUDA Version: 11.6     |\n", ""
        ).driver_version
        == "510.68.02"
    )
    s = P.parse_nvidia_smi(
        0, "| NVIDIA-SMI 570.133.20             Driver Version: 570.133.20     CUDA Version: 12.8     |\n", ""
    )
    assert (s.kind, s.driver_version, s.cuda_version) == ("ok", "570.133.20", "12.8")
    s = P.parse_nvidia_smi(
        0, "| NVIDIA-SMI 610.43.03              KMD Version: 610.43.03     CUDA UMD Version: 13.3     |\n", ""
    )
    assert (s.kind, s.driver_version, s.cuda_version) == ("ok", "610.43.03", "13.3")
    s = P.parse_nvidia_smi(
        18, "Failed to initialize NVML: Driver/library version mismatch\nNVML library version: 570.124\n", ""
    )
    assert (s.kind, s.nvml_version) == ("version_mismatch", "570.124")
    assert (
        P.parse_nvidia_smi(
            9,
            "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.\n",
            "",
        ).kind
        == "no_driver"
    )
    assert (
        P.parse_nvidia_smi(
            12,
            "NVIDIA-SMI couldn't find libnvidia-ml.so library in your system. Please make sure that the NVIDIA Display Driver is properly installed and present in your system.\n",
            "",
        ).kind
        == "no_nvml_lib"
    )
    assert (
        P.parse_nvidia_smi(255, "Unable to determine the device handle for GPU 0000:0B:00.0: Unknown Error\n", "").kind
        == "device_handle"
    )
    assert P.parse_nvidia_smi(255, "Failed to initialize NVML: Unknown Error\n", "").kind == "nvml_unknown"
    assert P.parse_nvidia_smi(6, "No devices were found\n", "").kind == "no_devices"
    assert P.parse_nvidia_smi(127, "", "bash: nvidia-smi: command not found").kind == "not_installed"
    assert P.parse_nvidia_smi(124, "", "\n[mlops] timed out after 20 s").kind == "timed_out"


def test_smi_query_and_pci_addresses():
    gpus = P.parse_smi_query("0, NVIDIA H100 80GB HBM3, 00000000:04:00.0, 535.129.03, 81559 MiB, 72459 MiB\n")
    assert gpus[0].pci == "0000:04:00.0" and gpus[0].driver_version == "535.129.03"
    assert P.normalise_pci("5a:00.0") == "0000:5a:00.0"


def test_proc_version_proprietary_open_and_jetson():
    p = P.parse_proc_version(
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  384.98  Thu Oct 26 15:16:01 PDT 2017\nGCC version:  gcc version 7.2.0 (Ubuntu 7.2.0-8ubuntu3) \n"
    )
    assert (p.version, p.open) == ("384.98", False)
    o = P.parse_proc_version(
        "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  565.57.01  Release Build  (dvs-builder@U16-A24-9-2)  Thu Oct 10 12:15:00 UTC 2024\n"
    )
    assert (o.version, o.open) == ("565.57.01", True)
    j = P.parse_proc_version("NVRM version: NVIDIA UNIX Open Kernel Module for aarch64  35.3.1  Release Build\n")
    assert (j.version, j.open) == ("35.3.1", True)


def test_lspci_with_and_without_numeric_ids():
    devs = P.parse_lspci(
        "01:00.0 VGA compatible controller: NVIDIA Corporation GM204 [GeForce GTX 970] (rev a1) (prog-if 00 [VGA controller])\n"
        "\tKernel driver in use: nouveau\n\tKernel modules: nouveau, nvidia_drm, nvidia\n"
        "17:00.0 3D controller [0302]: NVIDIA Corporation GH100 [H100 SXM5 80GB] [10de:2330] (rev a1)\n\tKernel driver in use: nvidia\n"
        "17:00.1 Audio device [0403]: NVIDIA Corporation Device [10de:22bb] (rev a1)\n"
    )
    assert [(d.slot, d.driver_in_use, d.is_gpu) for d in devs] == [
        ("0000:01:00.0", "nouveau", True),
        ("0000:17:00.0", "nvidia", True),
        ("0000:17:00.1", None, False),
    ]
    assert devs[0].name == "NVIDIA Corporation GM204 [GeForce GTX 970]" and devs[1].device_id == "2330"


def test_dpkg_query_and_dpkg_l_rows_held_and_removed():
    pkgs = P.parse_dpkg(
        "ii \tnvidia-driver-535\t535.113.01-0ubuntu0.22.04.1\n"
        "hi \tnvidia-dkms-535\t535.113.01-0ubuntu0.22.04.1\n"
        "rc  nvidia-compute-utils-525                   525.78.01-0ubuntu0.22.04.1                       amd64        NVIDIA compute utilities\n"
        "ii  libnvidia-compute-525:amd64                525.78.01-0ubuntu0.22.04.1                       amd64        NVIDIA libcompute package\n"
    )
    assert [(p.status, p.name, p.installed) for p in pkgs] == [
        ("ii", "nvidia-driver-535", True),
        ("hi", "nvidia-dkms-535", True),
        ("rc", "nvidia-compute-utils-525", False),
        ("ii", "libnvidia-compute-525", True),
    ]
    assert P.upstream_version(pkgs[0].version) == "535.113.01"


def test_make_log_compiler_warning_alone_is_not_a_mismatch():
    same = P.parse_make_log(
        "warning: the compiler differs from the one used to build the kernel\n"
        "  The kernel was built by: x86_64-linux-gnu-gcc-13 (Ubuntu 13.3.0-6ubuntu2~24.04) 13.3.0\n"
        "  You are using:           cc (Ubuntu 13.3.0-6ubuntu2~24.04) 13.3.0\n"
    )
    assert not same.compilers_differ and same.errors == []
    real = P.parse_make_log(
        "DKMS make.log for nvidia-560.35.03 for kernel 6.12.10-76061203-generic (x86_64)\n"
        "warning: the compiler differs from the one used to build the kernel\n"
        "  The kernel was built by: x86_64-linux-gnu-gcc-14 (Ubuntu 14.2.0-4ubuntu2~24.04) 14.2.0\n"
        "  You are using:           cc (Ubuntu 13.3.0-6ubuntu2~24.04) 13.3.0\n"
        "gcc: error: unrecognized command-line option ‘-ftrivial-auto-var-init=zero’\n"
    )
    assert real.compilers_differ and real.kernel_compiler_major == "14"
    assert (real.module_version, real.kernel) == ("560.35.03", "6.12.10-76061203-generic")
    assert real.compiler_errors == ["gcc: error: unrecognized command-line option ‘-ftrivial-auto-var-init=zero’"]


def test_make_log_api_errors():
    log = P.parse_make_log(
        "/var/lib/dkms/nvidia/530.30.02/build/nvidia/nv-mmap.c:681:23: error: assignment of read-only member ‘vm_flags’\n  681 |         vma->vm_flags &= ~VM_MAYWRITE;\n"
    )
    assert len(log.errors) == 1 and not log.compiler_errors


def test_apt_log_events_and_apport_noise():
    events = P.parse_apt_log(
        "ERROR (dkms apport): kernel package linux-headers-6.17.9-76061709-generic is not supported\n"
        "Error! Bad return status for module build on kernel: 6.17.9-76061709-generic (x86_64)\n"
        "dkms autoinstall on 6.8.10-300.fc40.x86_64/x86_64 failed for nvidia(10)\n"
        "dkms: autoinstall for kernel 6.8.0-45-generic was skipped since the kernel headers for this kernel do not seem to be installed\n"
        "Module build for kernel 6.8.0-46-generic was skipped since the\n"
        "Error! Your kernel headers for kernel 6.6.15-amd64 cannot be found at /lib/modules/6.6.15-amd64/build or /lib/modules/6.6.15-amd64/source.\n"
        "dkms autoinstall on 6.8.0-63-generic/x86_64 succeeded for dattobd\n"
    )
    assert [(e.kind, e.kernel) for e in events] == [
        ("build_failed", "6.17.9-76061709-generic"),
        ("build_failed", "6.8.10-300.fc40.x86_64"),
        ("headers_skipped", "6.8.0-45-generic"),
        ("headers_skipped", "6.8.0-46-generic"),
        ("headers_skipped", "6.6.15-amd64"),
    ]


def test_kernel_log_multiline_and_012_joined():
    new = K.KernelLog(
        "[    9.424670] NVRM: API mismatch: the client 'kwin_wayland' (pid 1005)\n               NVRM: has the version 595.84, but this kernel module has\n               NVRM: the version 595.80.  Please make sure that this\n"
    )
    assert new.find(K.API_MISMATCH).groups == ("595.84", "595.80")
    syslog = K.KernelLog(
        "Jun 30 11:07:05 gpu-0 kernel: NVRM: API mismatch: the client has the version 535.54.03, but#012NVRM: this kernel module has the version 530.30.02.  Please#012NVRM: make sure\n"
    )
    m = syslog.find(K.API_MISMATCH)
    assert m.groups == ("535.54.03", "530.30.02") and len(m.lines) == 1 and "#012" in m.lines[0]
    bare = K.KernelLog(
        "NVRM: API mismatch: the client has the version 570.172.08, but\nNVRM: this kernel module has the version 570.158.01.  Please\n"
    )
    assert bare.find(K.API_MISMATCH).groups == ("570.172.08", "570.158.01")


def test_kernel_log_old_and_new_probe_wording():
    old = K.KernelLog(
        "[188549.976351] NVRM: The NVIDIA probe routine was not called for 3 device(s).\n[188549.977053] NVRM: This can occur when a driver such as: \nNVRM: nouveau, rivafb, nvidiafb or rivatv \n"
    )
    assert old.find(K.PROBE_NOT_CALLED).groups == ("3",) and old.find(K.NOUVEAU_NAMED)
    new = K.KernelLog(
        "NVRM: The NVIDIA probe routine was not called for 1 device(s).\nNVRM: This can occur when another driver was loaded and \nNVRM: obtained ownership of the NVIDIA device(s).\n"
    )
    assert new.find(K.PROBE_NOT_CALLED) and not new.find(K.NOUVEAU_NAMED)


def test_secure_boot_states():
    assert P.parse_secure_boot("SecureBoot enabled\n") is True
    assert P.parse_secure_boot("SecureBoot disabled\n") is False
    assert P.parse_secure_boot("EFI variables are not supported on this system\n") is False
    assert P.parse_secure_boot("") is None


def test_grub_default_and_version_sort():
    assert (
        P.grub_default_kernel("saved_entry=gnulinux-advanced-0b5e>gnulinux-6.8.0-49-generic-advanced-0b5e\n")[0]
        == "6.8.0-49-generic"
    )
    assert (
        P.grub_default_kernel(
            "saved_entry=Advanced options for Ubuntu>Ubuntu, with Linux 6.8.0-41-generic\nnext_entry=\n"
        )[0]
        == "6.8.0-41-generic"
    )
    assert P.grub_default_kernel("saved_entry=0\n")[0] is None
    assert sorted(["6.8.0-106-generic", "6.8.0-49-generic", "6.8.0-5-generic"], key=P.version_key) == [
        "6.8.0-5-generic",
        "6.8.0-49-generic",
        "6.8.0-106-generic",
    ]


def test_same_driver_version_compares_what_both_sides_have():
    assert P.same_driver_version("570.124", "570.124.06")
    assert not P.same_driver_version("580.159", "580.126.09")


def test_xid_79_short_and_long_forms():
    short = K.KernelLog("NVRM: Xid (PCI:0000:44:00): 79, GPU has fallen off the bus.\n")
    assert short.find(K.XID_79).groups == ("0000:44:00",)
    long = K.KernelLog(
        "[ 99.1] NVRM: Xid (PCI:0000:3b:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus.\n"
    )
    assert long.find(K.XID_79)
