"""The machine seam: live, snapshot replay (the spec's rules), and record -> replay."""

import json
import sys

import pytest

from mlops_cli.host import LiveHost, RecordingHost, Snapshot, SnapshotError, SnapshotHost

SNAP = {
    "format": 1,
    "captured_at": "2026-11-22T10:00:00Z",
    "commands": {"uname_r": {"rc": 0, "stdout": "6.8.0-45-generic\n", "stderr": ""}},
    "files": {
        "/proc/driver/nvidia/version": "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.127.05\n",
        "/usr/bin/nvidia-uninstall": "",
        "/lib/modules/6.8.0-41-generic/updates/dkms/nvidia.ko.zst": "",
        "/var/log/secret-but-unreadable": None,
    },
    "dirs": {"/lib/modules/6.8.0-45-generic/updates/dkms": []},
}


@pytest.fixture
def host():
    return SnapshotHost(Snapshot.from_json(SNAP))


def test_replay_commands(host):
    assert host.run(["uname", "-r"], 5, key="uname_r").stdout == "6.8.0-45-generic\n"
    missing = host.run(["dkms", "status"], 5, key="dkms_status")
    assert missing.not_installed and missing.rc == 127


def test_replay_files(host):
    assert host.read("/proc/driver/nvidia/version").startswith("NVRM")
    assert host.read("/usr/bin/nvidia-uninstall") == ""
    with pytest.raises(FileNotFoundError):
        host.read("/etc/os-release")
    with pytest.raises(PermissionError):
        host.read("/var/log/secret-but-unreadable")
    assert host.exists("/var/log/secret-but-unreadable")


def test_replay_dirs_implied_and_explicit(host):
    assert host.listdir("/lib/modules") == ["6.8.0-41-generic", "6.8.0-45-generic"]
    assert host.listdir("/lib/modules/6.8.0-45-generic/updates/dkms") == []
    assert host.listdir("/lib/modules/6.8.0-41-generic/updates/dkms") == ["nvidia.ko.zst"]
    assert host.exists("/lib/modules/6.8.0-41-generic")
    with pytest.raises(FileNotFoundError):
        host.listdir("/lib/firmware/nvidia")
    with pytest.raises(NotADirectoryError):
        host.listdir("/usr/bin/nvidia-uninstall")


def test_tail_lines(host, tmp_path):
    log = tmp_path / "big.log"
    log.write_text("".join(f"line {i}\n" for i in range(100000)))
    assert LiveHost().read(str(log), tail_lines=3) == "line 99997\nline 99998\nline 99999\n"


def test_live_run_missing_program_and_timeout():
    live = LiveHost()
    assert live.run(["definitely-not-a-program-xyz"], 5).rc == 127
    slow = live.run([sys.executable, "-c", "import time; time.sleep(5)"], 0.3)
    assert slow.timed_out


def test_record_then_replay_answers_the_same(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("hello\n")
    (tmp_path / "locked").write_text("x")
    rec = RecordingHost(LiveHost())
    out = rec.run([sys.executable, "-c", "print('hi')"], 10, key="py")
    text = rec.read(str(tmp_path / "d" / "a.txt"))
    names = rec.listdir(str(tmp_path / "d"))
    with pytest.raises(FileNotFoundError):
        rec.read(str(tmp_path / "nope"))
    saved = tmp_path / "snap.json"
    rec.snapshot.save(saved)
    replay = SnapshotHost(Snapshot.load(saved))
    assert replay.run(["whatever"], 1, key="py") == out
    assert replay.read(str(tmp_path / "d" / "a.txt")) == text
    assert replay.listdir(str(tmp_path / "d")) == names
    assert not replay.exists(str(tmp_path / "nope"))


@pytest.mark.parametrize(
    "doc,msg",
    [
        ({"format": 2}, "unsupported snapshot format"),
        ([], "JSON object"),
        ({"format": 1, "files": {"/x": 3}}, "'files'"),
        ({"format": 1, "commands": {"k": "text"}}, "command 'k'"),
    ],
)
def test_bad_snapshots_are_refused(doc, msg):
    with pytest.raises(SnapshotError, match=msg):
        Snapshot.from_json(doc)


def test_unreadable_and_invalid_snapshot_files(tmp_path):
    from mlops_cli.errors import UsageError

    with pytest.raises(UsageError, match="cannot read snapshot"):
        Snapshot.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(UsageError, match="not valid JSON"):
        Snapshot.load(bad)
    json.dumps(SNAP)
