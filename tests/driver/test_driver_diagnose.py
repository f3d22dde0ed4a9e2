"""Every snapshot fixture gives its expected diagnosis; every finding id has a fixture."""

from __future__ import annotations

import json
import re

import pytest
from driver_helpers import FIXTURES, load_doc
from tests.conftest import SHARED

from mlops_cli.driver.check import check
from mlops_cli.driver.model import ERROR, PRIORITY, SPEC_IDS
from mlops_cli.host import Snapshot, SnapshotHost

ALL = sorted(p.stem for p in FIXTURES.glob("*.json"))


def diagnose_doc(doc: dict, kernel: str | None = None):
    return check(SnapshotHost(Snapshot.from_json(doc)), kernel)


@pytest.mark.parametrize("name", ALL)
def test_fixture_gives_expected_diagnosis(name):
    doc = load_doc(name)
    assert doc.get("source"), "every fixture cites its source"
    expect = doc["expect"]
    d = diagnose_doc(doc)
    ids = [f.id for f in d.findings]
    assert d.status == expect["status"], ids
    assert set(expect["ids"]) <= set(ids), ids
    for absent in expect.get("absent", []):
        assert absent not in ids
    if expect.get("first"):
        assert ids[0] == expect["first"]
        assert d.findings[0].severity == ERROR
    if expect["status"] == "ok":
        assert not [f for f in d.findings if f.severity == ERROR]
        assert set(ids) == set(expect["ids"])  # a healthy box gets nothing it did not ask for
    for probe in expect.get("not_seen", []):
        assert probe in [n.probe for n in d.not_seen]
    for bad in expect.get("evidence_excludes", []):
        assert not any(bad in line for f in d.findings for line in f.evidence)


@pytest.mark.parametrize("name", [n for n in ALL if load_doc(n)["expect"]["ids"]])
def test_evidence_quotes_the_snapshot_verbatim(name):
    """Each finding quotes at least one line exactly as the machine printed it."""
    doc = load_doc(name)
    recorded = "\n".join(
        [v["stdout"] + "\n" + v["stderr"] for v in doc["commands"].values()] + [t for t in doc["files"].values() if t]
    )
    for f in diagnose_doc(doc).findings:
        if f.id in doc["expect"]["ids"]:
            assert f.evidence, f.id
            assert f.fix.summary and (f.fix.steps or f.fix.manual), f.id
            verbatim = [line for line in f.evidence if line in recorded]
            assert verbatim or f.id in (
                "reboot_required",
                "no_nvidia_gpu",
                "inside_container_no_gpu_passed",
                "container_toolkit_missing",
            ), (f.id, f.evidence)


def test_every_spec_id_and_every_added_id_has_a_fixture_that_raises_it():
    raised = {fid for n in ALL for fid in load_doc(n)["expect"]["ids"]}
    for folder in (
        "real",
        "heldout",
        "heldout3",
        "heldout4",
        "heldout5",
        "heldout6",
        "heldout7",
    ):  # replayed by test_driver_real.py
        for path in (FIXTURES / folder).glob("*.json"):
            raised |= set(json.loads(path.read_text())["_source"]["expect"]["ids"])
    assert set(SPEC_IDS) <= set(PRIORITY)
    missing = [i for i in PRIORITY if i not in raised]
    assert not missing, f"ids without a fixture: {missing}"


def test_spec_table_ids_are_all_known():
    spec = SHARED / "specs" / "driver-check.md"
    if not spec.exists():
        pytest.skip("the shared spec is not next to this checkout")
    text = spec.read_text()
    section = text[text.index("## Finding ids") : text.index("## Probes")]
    ids = re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.M)
    assert set(ids) == set(SPEC_IDS)


def test_half_broken_box_orders_root_cause_first():
    """A pending-reboot mismatch now AND a next kernel without headers: the running kernel's
    problem comes first, the next kernel's cause before its consequence."""
    doc = load_doc("mismatch-pending-reboot")
    nxt = "5.15.0-160-generic"
    doc["files"]["/var/log/apt/term.log"] = (
        f"dkms: autoinstall for kernel {nxt} was skipped since the kernel headers for this kernel do not seem to be installed\n"
    )
    doc["dirs"][f"/lib/modules/{nxt}"] = ["kernel", "modules.dep"]
    ids = [f.id for f in diagnose_doc(doc).findings]
    assert ids == ["version_mismatch_pending_reboot", "kernel_headers_missing", "next_boot_kernel_missing_module"]


def test_two_findings_in_fixtures_are_ordered():
    ids = [f.id for f in diagnose_doc(load_doc("container-host-driver-broken")).findings]
    assert ids.index("version_mismatch_pending_reboot") < ids.index("container_host_driver_broken")
    ids = [f.id for f in diagnose_doc(load_doc("next-boot-headers-missing")).findings]
    assert ids == ["kernel_headers_missing", "next_boot_kernel_missing_module", "reboot_required"]


def test_platform_faults_are_not_blamed_on_the_driver():
    for name, fid in (
        ("gpu-fallen-off-bus", "gpu_fallen_off_bus"),
        ("vm-passthrough-init-failure", "vm_passthrough_init_failure"),
    ):
        d = diagnose_doc(load_doc(name))
        assert [f.id for f in d.errors] == [fid]
        assert d.findings[0].fix.needs_person
        assert not any("apt-get" in " ".join(s.argv) for f in d.findings for s in f.fix.steps)


def test_fix_commands_fit_the_install_method():
    def steps(name):
        return [" ".join(s.argv) for f in diagnose_doc(load_doc(name)).findings for s in f.fix.steps]

    assert steps("headers-missing") == [
        "apt-get install -y linux-headers-6.8.0-45-generic",
        "apt-get install -y linux-headers-generic",
        "dkms autoinstall -k 6.8.0-45-generic",
        "modprobe nvidia",
    ]
    assert steps("prebuilt-module-missing")[0] == "apt-get install -y linux-modules-nvidia-525-5.15.0-60-generic"
    assert steps("runfile-after-kernel-upgrade") == [
        "apt-get install -y linux-headers-3.13.0-116-generic build-essential dkms"
    ]
    assert (
        "sh NVIDIA-Linux-x86_64-460.73.01.run --dkms"
        in diagnose_doc(load_doc("runfile-after-kernel-upgrade")).findings[0].fix.manual
    )
    assert steps("build-fail-gcc-mismatch")[0] == "apt-get install -y gcc-11 g++-11"
    assert steps("next-boot-grub-default")[0] == "apt-get install -y linux-modules-nvidia-550-server-6.8.0-45-generic"
    assert steps("mismatch-stale-module")[:2] == ["dkms remove nvidia/595.80 --all", "depmod -a"]


def test_kernel_option_judges_a_kernel_that_is_not_running():
    doc = load_doc("healthy")
    doc["dirs"]["/lib/modules/5.15.0-91-generic"] = ["build", "kernel", "modules.dep"]
    doc["dirs"]["/lib/modules/5.15.0-91-generic/updates/dkms"] = []
    # the newest installed kernel is judged automatically...
    assert "next_boot_kernel_missing_module" in [f.id for f in diagnose_doc(doc).findings]
    # ...and an older one only when asked for
    doc2 = load_doc("healthy")
    doc2["dirs"]["/lib/modules/5.15.0-70-generic"] = ["build", "kernel", "modules.dep"]
    assert diagnose_doc(doc2).status == "ok"
    d = diagnose_doc(doc2, kernel="5.15.0-70-generic")
    assert [(f.id, f.kernel) for f in d.findings] == [("next_boot_kernel_missing_module", "5.15.0-70-generic")]
    assert d.kernel["judged"] == "5.15.0-70-generic"


def test_unknown_kernel_option_is_a_usage_error():
    from mlops_cli.errors import UsageError

    with pytest.raises(UsageError):
        diagnose_doc(load_doc("healthy"), kernel="9.9.9-1-generic")


def test_missing_probes_degrade_and_are_reported():
    d = diagnose_doc(load_doc("healthy-not-root"))
    assert d.status == "ok"
    reasons = {n.probe: n.reason for n in d.not_seen}
    assert "permission denied" in reasons["dmesg"] and "not installed" in reasons["lspci_nvidia"]
    assert "/var/log/nvidia-installer.log" in reasons


def test_nouveau_on_a_box_without_driver_is_not_a_second_problem():
    doc = load_doc("driver-not-installed")
    doc["commands"]["lspci_nvidia"]["stdout"] = (
        "17:00.0 3D controller [0302]: NVIDIA Corporation GH100 [H100 SXM5 80GB] [10de:2330] (rev a1)\n"
        "\tKernel driver in use: nouveau\n\tKernel modules: nvidiafb, nouveau\n"
    )
    assert [f.id for f in diagnose_doc(doc).findings] == ["driver_not_installed"]


def test_container_that_cannot_see_the_pci_bus_is_no_gpu_not_a_problem():
    """A CPU-only CI container (no /sys/bus/pci, no lspci, no /dev/nvidia*) must exit 3, not 1."""
    doc = load_doc("inside-container-no-gpu")
    doc["files"] = {k: v for k, v in doc["files"].items() if not k.startswith("/sys/bus/pci")}
    d = diagnose_doc(doc)
    assert d.status == "no-gpu" and [f.id for f in d.findings] == ["no_nvidia_gpu"]


def _healthy_with_next_kernel(next_kernel: str, make_log: str | None = None, term_log: str | None = None) -> dict:
    doc = load_doc("healthy")
    doc["dirs"][f"/lib/modules/{next_kernel}"] = ["build", "kernel", "modules.dep"]
    doc["dirs"][f"/lib/modules/{next_kernel}/updates/dkms"] = []
    if make_log is not None:
        doc["files"]["/var/lib/dkms/nvidia/535.129.03/build/make.log"] = make_log
    if term_log is not None:
        doc["files"]["/var/log/apt/term.log"] = term_log
    return doc


def test_next_kernel_gcc_mismatch_is_its_cause():
    """Ubuntu 22.04 HWE: the next kernel was built with gcc-12, the box has gcc-11 (research §7)."""
    k = "6.8.0-101-generic"
    log = load_doc("build-fail-gcc-mismatch")["files"]["/var/lib/dkms/nvidia/525.125.06/build/make.log"]
    log = (
        log.replace("5.15.0-78-generic", k)
        .replace("nvidia-525.125.06", "nvidia-535.129.03")
        .replace(
            "gcc (Ubuntu 11.3.0-1ubuntu1~22.04.1) 11.3.0",
            "x86_64-linux-gnu-gcc-12 (Ubuntu 12.3.0-1ubuntu1~22.04) 12.3.0",
        )
        .replace("gcc (Ubuntu 9.5.0-1ubuntu1~22.04) 9.5.0", "gcc (Ubuntu 11.4.0-1ubuntu1~22.04) 11.4.0")
    )
    d = diagnose_doc(_healthy_with_next_kernel(k, make_log=log))
    assert [(f.id, f.kernel) for f in d.findings] == [
        ("dkms_build_fail_gcc_mismatch", k),
        ("next_boot_kernel_missing_module", k),
    ]
    assert [" ".join(s.argv) for s in d.findings[0].fix.steps][:2] == [
        "apt-get install -y gcc-12 g++-12",
        f"env CC=gcc-12 dkms install nvidia/535.129.03 -k {k}",
    ]
    assert d.status == "problem"


def test_next_kernel_too_new_for_the_branch():
    k = "6.8.0-101-generic"
    log = load_doc("build-fail-kernel-too-new")["files"]["/var/lib/dkms/nvidia/530.30.02/build/make.log"].replace(
        "6.5.0-41-generic", k
    )
    d = diagnose_doc(_healthy_with_next_kernel(k, make_log=log))
    assert [f.id for f in d.findings] == ["dkms_build_fail_kernel_too_new", "next_boot_kernel_missing_module"]
    assert "5.15.0-86-generic" in d.findings[0].fix.manual  # boot the last good kernel


def test_next_kernel_failed_build_from_apt_log_only():
    k = "6.8.0-101-generic"
    term = (
        f"Error! Bad return status for module build on kernel: {k} (x86_64)\n"
        f"Consult /var/lib/dkms/nvidia/535.129.03/build/make.log for more information.\n"
    )
    d = diagnose_doc(_healthy_with_next_kernel(k, term_log=term))
    assert [f.id for f in d.findings] == ["dkms_build_failed", "next_boot_kernel_missing_module"]


def test_next_kernel_with_module_built_is_fine():
    k = "5.15.0-91-generic"
    doc = _healthy_with_next_kernel(k)
    doc["commands"]["dkms_status"]["stdout"] += f"nvidia/535.129.03, {k}, x86_64: installed\n"
    assert diagnose_doc(doc).status == "ok"


def test_rc_leftovers_and_an_old_dpkg_conflict_alone_are_not_multiple_branches():
    """research §13: `rc` rows of older branches are harmless (tensorflow#52530)."""
    doc = load_doc("healthy")
    doc["commands"]["dpkg_list"]["stdout"] += (
        "rc  nvidia-compute-utils-450                        450.102.04-0ubuntu0.20.04.1   amd64        NVIDIA compute utilities\n"
        "rc  nvidia-compute-utils-460                        460.91.03-0ubuntu0.20.04.1   amd64        NVIDIA compute utilities\n"
    )
    doc["files"]["/var/log/apt/term.log"] = load_doc("multiple-branches")["files"]["/var/log/apt/term.log"]
    assert diagnose_doc(doc).status == "ok"


def test_mismatch_whose_new_module_failed_to_build_is_not_a_pending_reboot():
    """apt upgraded userspace, the DKMS build of the new module failed: a reboot would leave no
    module at all, so the build failure is the root cause and no 'reboot' fix is offered."""
    doc = load_doc("mismatch-pending-reboot")
    k = "5.15.0-157-generic"
    doc["commands"]["modinfo_nvidia"] = {"rc": 1, "stdout": "", "stderr": "modinfo: ERROR: Module nvidia not found.\n"}
    doc["commands"]["dkms_status"]["stdout"] = "nvidia/570.172.08: added\n"
    doc["commands"]["modprobe_dry_run"] = {
        "rc": 1,
        "stdout": "",
        "stderr": f"modprobe: FATAL: Module nvidia not found in directory /lib/modules/{k}\n",
    }
    log = load_doc("build-fail-kernel-too-new")["files"]["/var/lib/dkms/nvidia/530.30.02/build/make.log"]
    doc["files"]["/var/lib/dkms/nvidia/570.172.08/build/make.log"] = log.replace("6.5.0-41-generic", k).replace(
        "nvidia-530.30.02", "nvidia-570.172.08"
    )
    doc["dirs"][f"/lib/modules/{k}/updates/dkms"] = []
    ids = [f.id for f in diagnose_doc(doc).findings]
    assert ids[0] == "dkms_build_fail_kernel_too_new" and "version_mismatch_pending_reboot" not in ids


def test_headers_metapackage_follows_the_kernel_flavour():
    from mlops_cli.driver import fixes
    from mlops_cli.driver.assemble import read_facts
    from mlops_cli.driver.probe import collect

    doc = load_doc("headers-missing")
    doc["commands"]["dpkg_list"]["stdout"] = (
        "ii \tlinux-image-unsigned-6.8.0-45-generic\t6.8.0-45.45\nii \tlinux-image-generic-hwe-22.04\t6.8.0.45.45~22.04.1\n"
        "ii \tnvidia-dkms-550-server\t550.127.05-0ubuntu0.22.04.1\n"
    )
    facts = read_facts(collect(SnapshotHost(Snapshot.from_json(doc))))
    assert fixes.header_meta(facts) == "linux-headers-generic-hwe-22.04"


@pytest.mark.parametrize(
    "dpkg, want",
    [
        # prebuilt open modules, nvidia-smi's package removed (research §12 with the -open flavour)
        (
            "ii  libnvidia-compute-525:amd64\t525.78.01-0ubuntu0.22.04.1\n"
            "ii  linux-modules-nvidia-525-open-5.15.0-58-generic\t5.15.0-58.64+1\n"
            "rc  nvidia-compute-utils-525\t525.78.01-0ubuntu0.22.04.1\n"
            "ii  nvidia-kernel-common-525\t525.78.01-0ubuntu0.22.04.1\n",
            [
                "apt-get install -y nvidia-headless-no-dkms-525-open nvidia-utils-525",
                "apt-mark manual nvidia-headless-no-dkms-525-open",
            ],
        ),
        # DKMS open modules, server branch
        (
            "ii  nvidia-dkms-580-server-open\t580.95.05-0ubuntu1\n"
            "ii  nvidia-driver-580-server-open\t580.95.05-0ubuntu1\n"
            "rc  nvidia-utils-580-server\t580.95.05-0ubuntu1\n",
            [
                "apt-get install -y nvidia-driver-580-server-open nvidia-utils-580-server",
                "apt-mark manual nvidia-driver-580-server-open",
            ],
        ),
    ],
)
def test_packages_removed_on_open_flavour_reinstalls_utils_that_exist(dpkg, want):
    """There is no nvidia-utils-<br>-open package: the plan asked apt for one and failed."""
    doc = load_doc("packages-removed")
    # the probe's own format: ${db:Status-Abbrev}<TAB>${Package}<TAB>${Version}
    doc["commands"]["dpkg_list"]["stdout"] = "".join(ln[:2] + " \t" + ln[4:] for ln in dpkg.splitlines(keepends=True))
    d = diagnose_doc(doc)
    f = next(x for x in d.findings if x.id == "driver_packages_removed")
    assert [" ".join(s.argv) for s in f.fix.steps] == want


@pytest.mark.parametrize(
    "images, meta",
    [
        (["linux-image-extra-virtual", "linux-image-generic"], "linux-headers-generic"),
        (["linux-image-extra-virtual", "linux-image-virtual"], "linux-headers-virtual"),
        (["linux-image-extra-virtual"], "linux-headers-virtual"),
    ],
)
def test_headers_metapackage_exists_for_extra_virtual(images, meta):
    """linux-image-extra-virtual sorts before linux-image-generic, and the plan asked apt for
    linux-headers-extra-virtual, which does not exist: --fix stopped after the first step."""
    doc = load_doc("headers-missing")
    lines = [ln for ln in doc["commands"]["dpkg_list"]["stdout"].splitlines() if "linux-image-generic" not in ln]
    doc["commands"]["dpkg_list"]["stdout"] = (
        "\n".join(sorted(lines + [f"ii \t{i}\t6.8.0-45.45" for i in images])) + "\n"
    )
    f = diagnose_doc(doc).findings[0]
    assert f.id == "kernel_headers_missing"
    assert [" ".join(s.argv) for s in f.fix.steps][1] == f"apt-get install -y {meta}"


def test_could_not_see_lists_only_real_blind_spots():
    """dmesg worked, so a missing journalctl hides nothing; no docker means no container problem
    to miss. Both used to be listed under 'the diagnosis may miss causes there'."""
    d = diagnose_doc(load_doc("mismatch-pending-reboot"))
    probes = [n.probe for n in d.not_seen]
    assert "journal_kernel" not in probes and "docker_runtimes" not in probes
    assert "mokutil_sb_state" in probes  # Secure Boot state really is unknown there
    doc = load_doc("healthy-not-root")  # dmesg and journal both refused: still listed
    probes = [n.probe for n in diagnose_doc(doc).not_seen]
    assert "dmesg" in probes and "journal_kernel" in probes


def test_no_evidence_is_never_an_ok_verdict():
    """A snapshot that shows nothing ('{"format": 1}', or a partial hand-written one) was
    'OK: the NVIDIA driver works', exit 0: a healthy verdict with no evidence at all."""
    d = diagnose_doc({"format": 1})
    assert d.status == "no-gpu" and [f.id for f in d.findings] == ["no_nvidia_gpu"]
    # a GPU is seen, but no driver: no nvidia-smi, no module, no dpkg to say more
    doc = {
        "format": 1,
        "commands": {
            "uname_r": {"rc": 0, "stdout": "6.8.0-45-generic\n", "stderr": ""},
            "lspci_nvidia": {
                "rc": 0,
                "stdout": (
                    "17:00.0 3D controller [0302]: NVIDIA Corporation GH100 [H100 SXM5 80GB] [10de:2330] (rev a1)\n"
                    "\tSubsystem: NVIDIA Corporation Device [10de:16c1]\n"
                ),
                "stderr": "",
            },
        },
    }
    d = diagnose_doc(doc)
    assert d.status == "problem" and d.errors[0].id == "driver_failure_unexplained"
    # the healthy fixtures stay healthy
    for name in ("healthy", "healthy-not-root", "healthy-prebuilt-610-open"):
        assert diagnose_doc(load_doc(name)).status == "ok"


def test_plans_that_install_a_bundled_file_say_what_it_holds():
    """The install step names this mlops's own copy of the file (a path on the machine that ran
    the check): a person fixing by hand from a snapshot read elsewhere needs the content."""
    from mlops_cli.driver import fixes

    plan = diagnose_doc(load_doc("nouveau")).findings[0].fix
    data = open(fixes.data_file("blacklist-nouveau.conf")).read()
    for line in data.splitlines():
        assert f"'{line}'" in plan.manual
    assert not plan.needs_person  # --fix still runs the steps
    rule = open(fixes.data_file("71-nvidia-dev-char.rules")).read().splitlines()[-1]
    assert rule in fixes.dev_char_symlinks(inside=False).manual
