"""End to end through the real command line (child process, no TTY)."""

from __future__ import annotations

import glob
import json

import pytest
from driver_helpers import FIXTURES


def has_nvidia_gpu() -> bool:
    for path in glob.glob("/sys/bus/pci/devices/*/vendor"):
        try:
            if open(path).read().strip().lower() == "0x10de":
                return True
        except OSError:
            pass
    return False


def fixture(name: str) -> str:
    return str(FIXTURES / f"{name}.json")


@pytest.mark.parametrize(
    "name, code, status, first",
    [
        ("healthy", 0, "ok", None),
        ("reboot-required", 0, "ok", "reboot_required"),
        ("headers-missing", 1, "problem", "kernel_headers_missing"),
        ("secure-boot", 1, "problem", "secure_boot_module_rejected"),
        ("mismatch-pending-reboot", 1, "problem", "version_mismatch_pending_reboot"),
        ("next-boot-headers-missing", 1, "problem", "kernel_headers_missing"),
        ("no-gpu", 3, "no-gpu", "no_nvidia_gpu"),
    ],
)
def test_snapshot_json_and_exit_codes(mlops, name, code, status, first):
    r = mlops("driver-check", "--snapshot", fixture(name), "--json")
    assert r.returncode == code, r
    doc = r.json()
    assert doc["status"] == status
    assert set(doc) >= {"status", "kernel", "driver", "gpus", "findings"}
    assert set(doc["kernel"]) >= {"running", "next_boot"}
    assert set(doc["driver"]) >= {"userspace", "module_loaded", "install_method"}
    for f in doc["findings"]:
        assert set(f) >= {"id", "severity", "title", "evidence", "fix"}
        assert f["severity"] in ("error", "warning", "info")
        assert set(f["fix"]) >= {"summary", "steps"}
        for s in f["fix"]["steps"]:
            assert set(s) == {"argv", "why", "reboot_after"} and isinstance(s["argv"], list)
    if first:
        assert doc["findings"][0]["id"] == first
    assert "Traceback" not in r.stderr


def test_json_matches_spec_example_shape(mlops):
    doc = mlops("driver-check", "--snapshot", fixture("healthy"), "--json").json()
    assert doc["kernel"]["running"] == "5.15.0-86-generic"
    assert doc["driver"]["userspace"] == "535.129.03" and doc["driver"]["module_loaded"] == "535.129.03"
    assert doc["driver"]["install_method"] == "apt-dkms"
    assert doc["gpus"] == [{"pci": "0000:04:00.0", "name": "NVIDIA H100 80GB HBM3", "kernel_driver": "nvidia"}]


def test_text_output_has_verdict_evidence_and_commands(mlops):
    r = mlops("driver-check", "--snapshot", fixture("headers-missing"))
    assert r.returncode == 1
    lines = r.stdout.splitlines()
    assert lines[0].startswith("PROBLEM: kernel headers for the running kernel 6.8.0-45-generic are missing")
    assert (
        "dkms: autoinstall for kernel 6.8.0-45-generic was skipped since the kernel headers for this kernel do not seem to be installed"
        in r.stdout
    )
    assert "$ sudo apt-get install -y linux-headers-6.8.0-45-generic" in r.stdout
    assert "\x1b[" not in r.stdout  # no colour off a TTY


def test_fix_dry_run_on_a_snapshot_prints_the_plan(mlops):
    r = mlops("driver-check", "--snapshot", fixture("nouveau"), "--fix", "--dry-run", "--json")
    assert r.returncode == 1
    run = r.json()["fix_run"]
    assert run["dry_run"] and run["ran"] == []
    assert [s["argv"][0] for s in run["plan"]["steps"]] == ["install", "update-initramfs"]
    assert run["plan"]["steps"][-1]["reboot_after"] is True


def test_fix_on_a_snapshot_without_dry_run_is_refused(mlops):
    r = mlops("driver-check", "--snapshot", fixture("nouveau"), "--fix", "--yes")
    assert r.returncode == 2 and r.stderr.startswith("error: ") and r.no_report()


@pytest.mark.parametrize(
    "content, msg",
    [("{not json", "not valid JSON"), ('{"format": 7}', "unsupported snapshot format"), ("[]", "JSON object")],
)
def test_invalid_snapshot_is_one_error_line_exit_2(mlops, tmp_path, content, msg):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    r = mlops("driver-check", "--snapshot", str(bad))
    assert r.returncode == 2, r
    assert r.stderr.splitlines()[0].startswith("error: ") and msg in r.stderr
    assert "Traceback" not in r.stderr and r.no_report()


def test_unreadable_snapshot_exit_2(mlops, tmp_path):
    r = mlops("driver-check", "--snapshot", str(tmp_path / "missing.json"), "--json")
    assert r.returncode == 2 and "cannot read snapshot" in r.stderr and r.no_report()


def test_unknown_kernel_exit_2(mlops):
    r = mlops("driver-check", "--snapshot", fixture("healthy"), "--kernel", "9.9.9-1-generic")
    assert r.returncode == 2 and "not installed" in r.stderr


@pytest.mark.parametrize(
    "name", ["headers-missing", "next-boot-grub-default", "secure-boot", "mismatch-syslog-012", "healthy"]
)
def test_save_then_replay_gives_the_same_json(mlops, tmp_path, name):
    """Re-recording a snapshot (RecordingHost over replay) and replaying it answers the same."""
    saved = tmp_path / "again.json"
    first = mlops("driver-check", "--snapshot", fixture(name), "--save-snapshot", str(saved), "--json")
    second = mlops("driver-check", "--snapshot", str(saved), "--json")
    a, b = first.json(), second.json()
    a.pop("source"), b.pop("source")
    assert a == b and first.returncode == second.returncode


def test_live_no_gpu_text(mlops):
    if has_nvidia_gpu():
        pytest.skip("this machine has an NVIDIA GPU; the no-GPU path cannot be checked live here")
    r = mlops("driver-check")
    assert r.returncode == 3, r
    assert r.stdout.splitlines()[0].startswith("NO GPU: no NVIDIA GPU")
    assert "no_nvidia_gpu" in r.stdout and "Traceback" not in r.stderr


def test_live_no_gpu_json_and_snapshot_round_trip(mlops, tmp_path):
    if has_nvidia_gpu():
        pytest.skip("this machine has an NVIDIA GPU; the no-GPU path cannot be checked live here")
    snap = tmp_path / "live.json"
    live = mlops("driver-check", "--json", "--save-snapshot", str(snap))
    assert live.returncode == 3, live
    doc = live.json()
    assert doc["status"] == "no-gpu" and doc["findings"][0]["id"] == "no_nvidia_gpu"
    saved = json.loads(snap.read_text())
    assert saved["format"] == 1 and "uname_r" in saved["commands"]
    replay = mlops("driver-check", "--snapshot", str(snap), "--json")
    assert replay.returncode == 3
    again = replay.json()
    doc.pop("source"), again.pop("source")
    assert again == doc


def test_save_snapshot_to_an_unwritable_place_exit_2(mlops, tmp_path):
    r = mlops(
        "driver-check", "--snapshot", fixture("healthy"), "--save-snapshot", str(tmp_path / "no" / "such" / "dir.json")
    )
    assert r.returncode == 2 and "cannot write snapshot" in r.stderr


def test_help_has_examples(mlops):
    r = mlops("driver-check", "--help")
    assert r.returncode == 0 and "Example" in r.stdout


def test_live_fix_on_a_box_without_gpu_runs_nothing(mlops):
    if has_nvidia_gpu():
        pytest.skip("this machine has an NVIDIA GPU; the no-GPU path cannot be checked live here")
    r = mlops("driver-check", "--fix", "--json")
    assert r.returncode == 3, r
    run = r.json()["fix_run"]
    assert run["plan"]["steps"] == [] and run["ran"] == [] and "stops_at" not in run["plan"]


def test_snapshot_text_does_not_suggest_a_fix_command_that_is_refused(mlops):
    """--fix on a snapshot exits 2, so the closing hint must not tell a person to run it here."""
    r = mlops("driver-check", "--snapshot", fixture("headers-missing"))
    assert r.returncode == 1
    assert "To run the fix: mlops driver-check --fix " not in r.stdout
    assert "on the machine the snapshot came from: sudo mlops driver-check --fix" in r.stdout
    suggested = r.stdout.split("plan only, here: ", 1)[1].split(")")[0].split()
    assert suggested[:2] == ["mlops", "driver-check"]
    dry = mlops(*suggested[1:])
    assert dry.returncode == 1 and "Fix plan:" in dry.stdout


@pytest.mark.parametrize("dest", ["", "{tmp}/missing/x.json", "{tmp}/newdir/", "{tmp}"])
def test_bad_save_snapshot_destination_is_refused_up_front(mlops, tmp_path, dest):
    """An empty name was silently ignored, 'newdir/' wrote a FILE named newdir, and a missing
    folder was found out only after the whole check: each is now exit 2 before anything runs."""
    dest = dest.format(tmp=tmp_path)
    r = mlops("driver-check", "--snapshot", fixture("headers-missing"), "--save-snapshot", dest, "--json")
    assert r.returncode == 2, r
    assert r.no_report() and r.stderr.startswith("error: cannot write snapshot")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_fix_never_runs_when_the_snapshot_cannot_be_saved(monkeypatch, tmp_path):
    """--fix --yes --save-snapshot /missing/x.json used to run the fix on this machine, then fail
    to save with exit 2: the script saw 'bad usage' and no report of what was changed."""
    import mlops_cli.driver.check as check_mod
    from mlops_cli.cli import main

    called = []
    monkeypatch.setattr(check_mod, "check_and_fix", lambda *a, **k: called.append("fix"))
    monkeypatch.setattr(check_mod, "check", lambda *a, **k: called.append("check"))
    with pytest.raises(SystemExit) as exited:
        main(["driver-check", "--fix", "--yes", "--json", "--save-snapshot", str(tmp_path / "missing" / "x.json")])
    assert exited.value.code == 2
    assert called == []


@pytest.mark.parametrize("value", ["", " ", "../../etc"])
def test_odd_kernel_values_are_usage_errors(mlops, value):
    """--kernel '' used to be silently dropped (a script's empty variable judged nothing, exit 0/1)."""
    r = mlops("driver-check", "--snapshot", fixture("healthy"), "--kernel", value, "--json")
    assert r.returncode == 2, r
    assert r.no_report() and "is not a kernel release" in r.stderr


def test_kernel_option_is_answered_in_text_and_json(mlops):
    """--kernel K asks 'will the driver load on K?': the text said nothing about K when K was
    fine. Now a line answers it, and JSON has kernel.judged_has_module (added field)."""
    r = mlops("driver-check", "--snapshot", fixture("headers-missing"), "--kernel", "6.8.0-41-generic")
    assert "--kernel 6.8.0-41-generic: an nvidia module is installed for it" in r.stdout
    doc = mlops(
        "driver-check", "--snapshot", fixture("headers-missing"), "--kernel", "6.8.0-41-generic", "--json"
    ).json()
    assert doc["kernel"]["judged"] == "6.8.0-41-generic" and doc["kernel"]["judged_has_module"] is True
    doc = mlops(
        "driver-check", "--snapshot", fixture("next-boot-grub-default"), "--kernel", "6.8.0-31-generic", "--json"
    ).json()
    assert doc["kernel"]["judged_has_module"] is False
    assert any(
        f["id"] == "next_boot_kernel_missing_module" and f["kernel"] == "6.8.0-31-generic" for f in doc["findings"]
    )


def test_binary_snapshot_is_exit_2_not_an_internal_error(mlops, tmp_path):
    bad = tmp_path / "snap.json"
    bad.write_bytes(b"\xff\xfe{\x8c\x00garbage")
    r = mlops("driver-check", "--snapshot", str(bad), "--json")
    assert r.returncode == 2, r
    assert r.no_report() and "not UTF-8" in r.stderr and "internal error" not in r.stderr


@pytest.mark.parametrize("commands", [[1], "uname -r"])
def test_commands_not_a_mapping_is_exit_2(mlops, tmp_path, commands):
    bad = tmp_path / "snap.json"
    bad.write_text(json.dumps({"format": 1, "commands": commands}))
    r = mlops("driver-check", "--snapshot", str(bad), "--json")
    assert r.returncode == 2, r
    assert r.no_report() and "'commands' maps a probe key" in r.stderr and "internal error" not in r.stderr


def test_fix_with_save_snapshot_writes_the_broken_state_from_the_command_line(monkeypatch, tmp_path):
    """The whole command: `--fix --yes --save-snapshot F` on a box with missing headers (replayed
    through the seam instead of this machine) fixes it, and F holds the broken state."""
    from driver_helpers import FixHost, snapshot
    from typer.testing import CliRunner

    import mlops_cli.host as host_mod
    from mlops_cli.cli import app

    host = FixHost(snapshot("headers-missing"), after=snapshot("healthy"))
    monkeypatch.setattr(host_mod, "LiveHost", lambda: host)
    saved = tmp_path / "ticket.json"
    r = CliRunner().invoke(app, ["driver-check", "--fix", "--yes", "--json", "--save-snapshot", str(saved)])
    assert r.exit_code == 0, r.output
    assert host.ran, "the fix ran"
    from conftest import run_mlops

    replay = run_mlops("driver-check", "--snapshot", str(saved), "--json")
    assert replay.returncode == 1 and replay.json()["findings"][0]["id"] == "kernel_headers_missing"
