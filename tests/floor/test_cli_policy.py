"""The one error policy at the top (cli.main), tried from the real command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
GPU_SNAPSHOT = FIXTURES / "gpu" / "a800-2gpu.json"


def _mlops_raw(args, stdout, env=None):
    full = dict(os.environ, **(env or {}))
    full.pop("MLOPS_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "mlops_cli", *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=full,
        timeout=120,
    )


def test_json_failure_prints_a_json_error_document(mlops, tmp_path):
    r = mlops("gpu", "--snapshot", str(tmp_path / "missing.json"), "--json")
    assert r.returncode == 2 and r.stderr.startswith("error: cannot read")
    assert r.json() == {"error": {"message": r.stderr.splitlines()[0][len("error: ") :], "hint": None, "exit_code": 2}}
    r = mlops("gpu", "--no-such-flag", "--json")
    assert r.returncode == 2 and r.json()["error"]["exit_code"] == 2


def test_report_to_a_full_disk_is_one_error_not_a_traceback():
    with open("/dev/full", "w") as full:
        r = _mlops_raw(["gpu", "--snapshot", str(GPU_SNAPSHOT), "--json"], full)
    assert r.returncode == 1, r.stderr
    assert r.stderr.splitlines() == ["error: could not write the report to stdout: No space left on device"]


def test_closed_stdout_is_one_error_not_a_traceback():
    full = dict(os.environ)
    full.pop("MLOPS_DEBUG", None)
    r = subprocess.run(
        ["bash", "-c", f"{sys.executable} -m mlops_cli gpu --snapshot {GPU_SNAPSHOT} >&-"],
        stderr=subprocess.PIPE,
        text=True,
        env=full,
        timeout=120,
    )
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith("error: could not write the report to stdout")


def test_ascii_only_output_encoding_does_not_crash(tmp_path):
    doc = json.loads(GPU_SNAPSHOT.read_text())
    doc["calls"]["name/0"] = {"value": "NVIDIA A800 — ünïcode"}
    snap = tmp_path / "s.json"
    snap.write_text(json.dumps(doc))
    r = _mlops_raw(["gpu", "--snapshot", str(snap)], subprocess.PIPE, env={"PYTHONIOENCODING": "ascii"})
    assert r.returncode == 0, r.stderr
    assert "A800" in r.stdout and "internal error" not in r.stderr


def test_escape_sequences_in_a_snapshot_never_reach_the_terminal(mlops, tmp_path):
    """D3: GPU names, kernel log lines and file names from a snapshot are shown inert."""
    doc = json.loads(GPU_SNAPSHOT.read_text())
    doc["calls"]["name/0"] = {"value": "A800\x1b[2J\x1b]0;pwned\x07\rX"}
    snap = tmp_path / "s.json"
    snap.write_text(json.dumps(doc))
    r = mlops("gpu", "--snapshot", str(snap))
    assert r.returncode == 0 and "\x1b" not in r.stdout and "\x07" not in r.stdout and "\r" not in r.stdout
    assert "\\x1b[2J" in r.stdout


def test_interrupt_exit_code_and_message():
    """Ctrl-C in a prompt or a long step: exit 130, one line."""
    code = "from mlops_cli.cli import _fail; import sys; sys.exit(_fail(KeyboardInterrupt(), True))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 130 and r.stderr == "error: interrupted\n"
    assert json.loads(r.stdout)["error"]["exit_code"] == 130


@pytest.mark.parametrize("args", [["gpu", "--watch", "inf"], ["gpu", "--watch", "nan"], ["gpu", "--watch", "1e9"]])
def test_watch_takes_a_sane_number_of_seconds(mlops, args):
    r = mlops(*args, "--snapshot", str(GPU_SNAPSHOT))
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "internal error" not in r.stderr
