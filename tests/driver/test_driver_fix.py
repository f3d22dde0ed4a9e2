"""--fix through the seam: a host that replays a snapshot and records the commands run."""

from __future__ import annotations

import pytest
from driver_helpers import FixHost, snapshot

from mlops_cli.driver.check import check_and_fix
from mlops_cli.errors import ExitCode, UsageError
from mlops_cli.host import CommandResult
from mlops_cli.output import confirm


def fix(host, *, yes=True, dry_run=False, root=True, ask=None):
    return check_and_fix(
        host,
        kernel=None,
        source="test",
        is_root=root,
        assume_yes=yes,
        dry_run=dry_run,
        ask=ask or confirm,
        show_plan=lambda r: None,
        progress=lambda m: None,
    )


def test_apt_dkms_plan_runs_in_order_then_rediagnoses_healthy():
    host = FixHost(snapshot("headers-missing"), after=snapshot("healthy"))
    report = fix(host)
    assert host.ran == [
        ["apt-get", "install", "-y", "linux-headers-6.8.0-45-generic"],
        ["apt-get", "install", "-y", "linux-headers-generic"],
        ["dkms", "autoinstall", "-k", "6.8.0-45-generic"],
        ["modprobe", "nvidia"],
    ]
    assert report.diagnosis.status == "ok" and report.exit_code == ExitCode.OK
    doc = report.to_json()
    assert doc["before_fix"]["findings"] == ["kernel_headers_missing"]
    assert [r["rc"] for r in doc["fix_run"]["ran"]] == [0, 0, 0, 0]


class HeaderHookHost(FixHost):
    """dkms as it behaves on Ubuntu: installing linux-headers-K runs the header_postinst.d hook,
    which builds and installs the module for K; a later 'dkms install' of the same
    module/version then dies with exit 5 (dkms-project/dkms: do_install, is_module_installed)."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.built_for: set[str] = set()

    def run(self, argv, timeout, key=None):
        if key is not None:
            return super().run(argv, timeout, key)
        cmd = list(argv[2:]) if list(argv[:2]) == ["sudo", "-n"] else list(argv)
        if cmd[:3] == ["apt-get", "install", "-y"]:
            self.built_for |= {p[len("linux-headers-") :] for p in cmd[3:] if p.startswith("linux-headers-")}
        if cmd[:2] == ["dkms", "install"] and cmd[-1] in self.built_for:
            self.ran.append(list(argv))
            return CommandResult(
                5, "", f"Error! This module/version combo is already installed for kernel {cmd[-1]} (x86_64).\n"
            )
        return super().run(argv, timeout, key)


def test_headers_fix_survives_the_dkms_header_hook():
    """After the headers are installed DKMS has already built the module: the next step must not
    fail on that (it did: 'dkms install' exit 5 stopped --fix before modprobe)."""
    host = HeaderHookHost(snapshot("headers-missing"), after=snapshot("healthy"))
    report = fix(host)
    assert report.fix.failed is None, report.fix.failed
    assert host.ran[-1] == ["modprobe", "nvidia"]
    assert report.exit_code == ExitCode.OK


def test_apt_prebuilt_plan():
    host = FixHost(snapshot("prebuilt-module-missing"), after=snapshot("healthy"))
    fix(host)
    assert host.ran == [
        ["apt-get", "install", "-y", "linux-modules-nvidia-525-5.15.0-60-generic"],
        ["modprobe", "nvidia"],
    ]


def test_runfile_plan_installs_build_deps_and_leaves_the_rebuild_to_a_person():
    host = FixHost(snapshot("runfile-after-kernel-upgrade"))
    report = fix(host)
    assert host.ran == [["apt-get", "install", "-y", "linux-headers-3.13.0-116-generic", "build-essential", "dkms"]]
    assert report.exit_code == ExitCode.PROBLEM  # still broken: the .run must be re-run by a person
    assert "--dkms" in report.diagnosis.findings[0].fix.manual


def test_sudo_is_prefixed_when_not_root():
    host = FixHost(snapshot("prebuilt-module-missing"))
    fix(host, root=False)
    assert host.ran[0][:3] == ["sudo", "-n", "apt-get"] and host.ran[1] == ["sudo", "-n", "modprobe", "nvidia"]


def test_stops_at_the_first_failed_step():
    host = FixHost(snapshot("headers-missing"), fail_on=("apt-get", "install", "-y", "linux-headers-generic"))
    report = fix(host)
    assert len(host.ran) == 2  # the failing step ran, nothing after it
    assert report.fix.failed.argv == ["apt-get", "install", "-y", "linux-headers-generic"]
    assert report.exit_code == ExitCode.PROBLEM
    assert report.to_json()["fix_run"]["failed_step"] == ["apt-get", "install", "-y", "linux-headers-generic"]


def test_exit_4_when_a_step_needs_a_reboot():
    host = FixHost(snapshot("nouveau"))
    report = fix(host)
    assert host.ran[-1] == ["update-initramfs", "-u"]
    assert host.ran[0][:3] == ["install", "-D", "-m"] and host.ran[0][-1] == "/etc/modprobe.d/blacklist-nouveau.conf"
    assert report.exit_code == ExitCode.REBOOT_NEEDED
    assert not any(a == "reboot" for argv in host.ran for a in argv)  # never reboots by itself


def test_stops_where_only_a_person_can_act():
    host = FixHost(snapshot("secure-boot"))
    report = fix(host)
    assert host.ran == []
    assert report.fix.plan.stop_at.id == "secure_boot_module_rejected"
    assert "MokManager" in report.fix.plan.stop_at.fix.manual
    assert report.exit_code == ExitCode.PROBLEM


def test_nothing_runs_without_yes_when_there_is_no_tty(monkeypatch):
    monkeypatch.setattr("mlops_cli.output.interactive", lambda: False)
    host = FixHost(snapshot("headers-missing"))
    with pytest.raises(UsageError) as exc:
        fix(host, yes=False)
    assert exc.value.exit_code == ExitCode.USAGE
    assert host.ran == []


def test_declined_at_the_prompt_runs_nothing():
    host = FixHost(snapshot("headers-missing"))
    report = fix(host, yes=False, ask=lambda q, y: False)
    assert host.ran == [] and report.fix.declined


def test_dry_run_runs_nothing_and_shows_the_plan():
    host = FixHost(snapshot("headers-missing"))
    report = fix(host, dry_run=True)
    assert host.ran == []
    plan = report.to_json()["fix_run"]["plan"]["steps"]
    assert [s["argv"][0] for s in plan] == ["apt-get", "apt-get", "dkms", "modprobe"]
    assert all(s["finding"] == "kernel_headers_missing" for s in plan)


def test_steps_are_idempotent_commands():
    """Running the plan twice is safe: every step is an install/build/load that converges."""
    host = FixHost(snapshot("headers-missing"))
    fix(host)
    first = list(host.ran)
    host2 = FixHost(snapshot("headers-missing"))
    fix(host2)
    fix(host2)
    assert host2.ran == first + first
    assert all(
        argv[0] in {"apt-get", "dkms", "modprobe", "modinfo", "install", "update-initramfs", "depmod"} for argv in first
    )


def test_healthy_box_has_nothing_to_run():
    host = FixHost(snapshot("healthy"))
    report = fix(host)
    assert host.ran == [] and report.exit_code == ExitCode.OK and report.fix.plan.steps == []


def test_fix_json_says_dry_run_only_when_asked():
    report = fix(FixHost(snapshot("secure-boot")))
    assert report.to_json()["fix_run"]["dry_run"] is False
    assert report.to_json()["fix_run"]["plan"]["stops_at"]["finding"] == "secure_boot_module_rejected"


def test_snapshot_saved_with_fix_holds_the_diagnosed_state_not_the_fixed_one(tmp_path):
    """--fix --save-snapshot used to write the machine as it was after the fix (and the fix's
    own commands): a ticket got a healthy-looking box. The snapshot is now written after the
    first diagnosis, before any step runs, and replaying it gives that diagnosis."""
    from mlops_cli.driver.check import check
    from mlops_cli.host import RecordingHost, Snapshot, SnapshotHost

    host = FixHost(snapshot("headers-missing"), after=snapshot("healthy"))
    recorder = RecordingHost(host)
    saved = tmp_path / "before.json"
    steps_run_at_save = []

    def on_diagnosed():
        steps_run_at_save.append(len(host.ran))
        recorder.snapshot.save(saved)

    report = check_and_fix(
        recorder,
        kernel=None,
        source="test",
        is_root=True,
        assume_yes=True,
        dry_run=False,
        ask=confirm,
        show_plan=lambda r: None,
        progress=lambda m: None,
        on_diagnosed=on_diagnosed,
    )
    assert report.diagnosis.status == "ok"  # the fix worked ...
    assert steps_run_at_save == [0]  # ... but the snapshot was taken before any step ran
    replayed = check(SnapshotHost(Snapshot.load(saved)))
    assert [f.id for f in replayed.findings][:1] == ["kernel_headers_missing"]
