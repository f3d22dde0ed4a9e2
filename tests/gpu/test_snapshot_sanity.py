"""Issue 8, M2: implausible NVML snapshots are refused (exit 2), never "fits" or a hang."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

BASE = json.loads((Path(__file__).resolve().parent.parent / "fixtures" / "gpu" / "a800-2gpu.json").read_text())


def _snapshot(tmp_path: Path, **calls) -> str:
    doc = json.loads(json.dumps(BASE))
    for key, value in calls.items():
        doc["calls"][key.replace("__", "/")] = {"value": value}
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(doc))
    return str(path)


CASES = {
    "device_count 1e9": {"device_count": 10**9},
    "negative memory": {"memory__0": {"total": 85899345920, "used": -5, "free": 85899345925}},
    "used > total": {"memory__0": {"total": 1024**3, "used": 2 * 1024**3, "free": 0}},
    "free 2**70": {"memory__0": {"total": 85899345920, "used": 0, "free": 2**70}},
    "free > total": {"memory__0": {"total": 1024**3, "used": 0, "free": 2 * 1024**3}},
    "absurd temperature": {"temperature__0": 10**6},
}


@pytest.mark.parametrize("case", list(CASES))
def test_gpu_refuses_an_implausible_snapshot(mlops, tmp_path, case):
    r = mlops("gpu", "--snapshot", _snapshot(tmp_path, **CASES[case]), timeout=60)
    assert r.returncode == 2, r
    assert r.stderr.startswith("error: NVML snapshot") and "Traceback" not in r.stderr and r.stdout == ""


@pytest.mark.parametrize("case", ["negative memory", "free 2**70", "used > total"])
def test_oom_check_never_says_fits_on_an_implausible_snapshot(mlops, tmp_path, case):
    r = mlops(
        "oom-check",
        "Qwen/Qwen2.5-0.5B",
        "--method",
        "lora",
        "--snapshot",
        _snapshot(tmp_path, **CASES[case]),
        "--json",
        timeout=60,
    )
    assert r.returncode == 2, r
    error = r.json()["error"]  # --json: the error is the one JSON document
    assert error["exit_code"] == 2 and ("out of range" in error["message"] or "more than total" in error["message"])
    assert '"fits"' not in r.stdout


def test_plausible_snapshot_still_reads(mlops, tmp_path):
    r = mlops("gpu", "--snapshot", _snapshot(tmp_path), "--json")
    assert r.returncode == 0, r


@pytest.mark.parametrize("seconds", ["inf", "nan", "1e400", "-inf"])
def test_watch_interval_must_be_finite(mlops, seconds):
    # issue 8: `gpu --watch inf` was an internal error (time.sleep overflow); nan slipped past min=0.1
    r = mlops(
        "gpu",
        "--watch",
        seconds,
        "--count",
        "1",
        "--snapshot",
        str(Path(__file__).resolve().parent.parent / "fixtures" / "gpu" / "a800-2gpu.json"),
        timeout=30,
    )
    assert r.returncode == 2, r
    assert "--watch" in r.stderr and "internal error" not in r.stderr
