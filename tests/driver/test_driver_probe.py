"""The probes: concurrency, timeouts, keys, and recording through the seam."""

from __future__ import annotations

import json
import threading
import time

from driver_helpers import snapshot

from mlops_cli.driver.probe import NVIDIA_SMI_TIMEOUT, PROBES, collect
from mlops_cli.host import CommandResult, RecordingHost, SnapshotHost


class SlowHost(SnapshotHost):
    """Each program takes 0.2 s; records keys, timeouts and how many ran at once."""

    def __init__(self, snap):
        super().__init__(snap)
        self.calls: dict[str, float] = {}
        self.active = 0
        self.peak = 0
        self._lock = threading.Lock()

    def run(self, argv, timeout, key=None):
        with self._lock:
            self.calls[key] = timeout
            self.active += 1
            self.peak = max(self.peak, self.active)
        time.sleep(0.2)
        with self._lock:
            self.active -= 1
        return super().run(argv, timeout, key)


def test_probes_run_concurrently_with_their_keys_and_timeouts():
    host = SlowHost(snapshot("healthy"))
    started = time.perf_counter()
    collected = collect(host)
    elapsed = time.perf_counter() - started
    assert set(host.calls) == set(PROBES)
    assert host.calls["nvidia_smi"] == NVIDIA_SMI_TIMEOUT and all(t > 0 for t in host.calls.values())
    assert host.peak > 4 and elapsed < 0.2 * len(PROBES) / 2
    assert collected.commands["uname_r"].stdout == "5.15.0-86-generic\n"


def test_a_hung_probe_is_evidence_not_a_crash():
    class Hung(SnapshotHost):
        def run(self, argv, timeout, key=None):
            if key == "nvidia_smi":
                return CommandResult(124, "", f"\n[mlops] timed out after {timeout:g} s")
            return super().run(argv, timeout, key)

    from mlops_cli.driver.assemble import read_facts

    facts = read_facts(collect(Hung(snapshot("healthy"))))
    assert facts.smi.kind == "timed_out"


def test_recording_replays_identically():
    rec = RecordingHost(SnapshotHost(snapshot("next-boot-headers-missing")))
    first = collect(rec)
    second = collect(SnapshotHost(rec.snapshot))
    assert first.commands == second.commands and first.files == second.files and first.dirs == second.dirs


def test_large_logs_are_read_from_their_tail():
    doc_snap = snapshot("headers-missing")
    doc_snap.files["/var/log/apt/term.log"] = (
        "".join(f"noise {i}\n" for i in range(5000)) + doc_snap.files["/var/log/apt/term.log"]
    )
    collected = collect(SnapshotHost(doc_snap))
    assert len(collected.files["/var/log/apt/term.log"].splitlines()) <= 400
    assert "was skipped since the kernel headers" in collected.files["/var/log/apt/term.log"]


def test_secrets_on_the_kernel_command_line_are_not_saved(mlops, tmp_path):
    from driver_helpers import load_doc

    doc = load_doc("healthy")
    doc["files"]["/proc/cmdline"] = (
        "BOOT_IMAGE=/vmlinuz ro quiet ds=nocloud api_token=s3cr3t root_password=hunter2 modprobe.blacklist=nouveau\n"
    )
    src, out = tmp_path / "in.json", tmp_path / "out.json"
    src.write_text(json.dumps(doc))
    r = mlops("driver-check", "--snapshot", str(src), "--save-snapshot", str(out), "--json")
    assert r.returncode == 0, r
    saved = out.read_text()
    assert "s3cr3t" not in saved and "hunter2" not in saved
    assert "api_token=<redacted>" in saved and "modprobe.blacklist=nouveau" in saved
