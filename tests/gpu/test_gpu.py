"""`mlops gpu` on NVML snapshots transcribed from real nvidia-smi outputs, and live here (no GPU)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlops_cli.gpu.nvml import RecordingNvml, SnapshotNvml
from mlops_cli.gpu.status import collect

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "gpu"
MiB = 1024**2


def replay(mlops, name, *extra):
    return mlops("gpu", "--snapshot", str(FIXTURES / name), *extra)


def test_several_gpus(mlops):
    r = replay(mlops, "a800-2gpu.json", "--json")
    assert r.returncode == 0, r
    doc = r.json()
    assert doc["driver_version"] == "535.86.10" and doc["gpu_count"] == 2
    g0, g1 = doc["gpus"]
    assert g0["name"] == "NVIDIA A800-SXM4-80GB"
    assert g0["memory"] == {"total_bytes": 81920 * MiB, "used_bytes": 34447 * MiB, "free_bytes": 47473 * MiB}
    assert (g0["utilization_percent"], g0["temperature_c"], g0["power_w"], g0["power_limit_w"]) == (
        72,
        49,
        125.0,
        400.0,
    )
    assert (g1["utilization_percent"], g1["temperature_c"], g1["power_w"]) == (68, 42, 139.0)
    text = replay(mlops, "a800-2gpu.json")
    assert "34,447 MiB / 81,920 MiB" in text.stdout and "139 W / 400 W" in text.stdout


def test_processes_with_users(mlops):
    doc = replay(mlops, "t4-4gpu-processes.json", "--json").json()
    assert doc["gpu_count"] == 4
    procs = doc["gpus"][0]["processes"]
    assert [p["pid"] for p in procs] == [69081, 59963]  # largest first
    assert procs[0] == {
        "pid": 69081,
        "user": "podda",
        "command": "python",
        "used_bytes": 12693 * MiB,
        "used_mib": 12693,
    }
    assert doc["gpus"][1]["processes"] == [
        {"pid": 77124, "user": None, "command": None, "used_bytes": 13613 * MiB, "used_mib": 13613}
    ]
    text = replay(mlops, "t4-4gpu-processes.json").stdout
    assert "Processes holding GPU memory" in text and "/home/podda/.miniconda3/envs/chem/bin/python" in text


def test_process_on_a_gpu_of_an_eight_gpu_box(mlops):
    doc = replay(mlops, "a100-8gpu-processes.json", "--json").json()
    assert doc["gpu_count"] == 8
    assert doc["gpus"][0]["processes"][0]["command"] == "python3"
    assert doc["gpus"][7]["utilization_percent"] == 100 and doc["gpus"][6]["temperature_c"] == 70


def test_unsupported_fields_are_null_with_reason(mlops):
    r = replay(mlops, "gb10-unsupported.json", "--json")
    assert r.returncode == 0, r
    g = r.json()["gpus"][0]
    assert g["memory"] == {"total_bytes": None, "used_bytes": None, "free_bytes": None}
    assert g["power_limit_w"] is None and g["power_w"] == 11.0 and g["temperature_c"] == 41
    assert g["unavailable"]["memory"] == "NOT_SUPPORTED" and g["unavailable"]["power_limit_w"] == "NOT_SUPPORTED"
    text = replay(mlops, "gb10-unsupported.json").stdout
    assert "n/a / n/a" in text and "11 W / n/a" in text and "memory: NOT_SUPPORTED" in text


def test_recording_replays_identically(tmp_path):
    original = SnapshotNvml.load(FIXTURES / "t4-4gpu-processes.json")
    recorder = RecordingNvml(original, {"source": {"kind": "test"}})
    first = collect(recorder, "x").to_json()
    out = tmp_path / "rec.json"
    recorder.save(out)
    again = collect(SnapshotNvml.load(out), "x").to_json()
    assert again == first
    saved = json.loads(out.read_text())
    assert saved["format"] == "mlops-nvml/1" and saved["calls"]["memory/0"] == {"error": "NOT_RECORDED"}


def test_watch_emits_one_json_line_per_sample(mlops):
    r = replay(mlops, "a800-2gpu.json", "--watch", "0.1", "--count", "3", "--json")
    assert r.returncode == 0, r
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 3 and all(json.loads(line)["gpu_count"] == 2 for line in lines)


def test_replay_and_record_together_is_exit_2(mlops, tmp_path):
    r = replay(mlops, "a800-2gpu.json", "--save-snapshot", str(tmp_path / "x.json"))
    assert r.returncode == 2 and "not both" in r.stderr and not (tmp_path / "x.json").exists()


def test_not_a_snapshot_is_exit_2(mlops, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"calls": {}}')
    r = mlops("gpu", "--snapshot", str(bad))
    assert r.returncode == 2 and "not an NVML snapshot" in r.stderr


def _nvml_works() -> bool:
    try:
        import pynvml

        pynvml.nvmlInit()
        return True
    except Exception:
        return False


def test_live_without_gpu_is_exit_3_one_line(mlops, tmp_path):
    if _nvml_works():
        pytest.skip("this machine has a working NVML; the no-GPU path cannot be shown here")
    out = tmp_path / "snap.json"
    for args in ([], ["--json"], ["--save-snapshot", str(out)]):
        r = mlops("gpu", *args)
        assert r.returncode == 3, r
        assert r.no_report()
        assert r.stderr.splitlines()[0].startswith("error: no NVIDIA GPU available")
        assert "Traceback" not in r.stderr
    assert not out.exists()


def test_watch_text_mode_repeats_the_table(mlops):
    r = replay(mlops, "a800-2gpu.json", "--watch", "0.1", "--count", "2")
    assert r.returncode == 0, r
    assert r.stdout.count("NVIDIA A800-SXM4-80GB") == 4  # 2 GPUs × 2 samples


@pytest.mark.parametrize(
    "calls",
    [
        {"device_count": {"value": "two"}},
        {"device_count": 5},
        {"device_count": {"value": 1}, "memory/0": {"value": 5}},
        {"device_count": {"value": 1}, "memory/0": {"value": {"total": "80GB", "used": 1, "free": 1}}},
        {"device_count": {"value": 1}, "processes/0": {"value": [{"x": 1}]}},
        {"device_count": {"value": 1}, "processes/0": {"value": [{"pid": 1, "used_bytes": "1 GiB"}]}},
        {"device_count": {"value": 1}, "power_usage/0": {"value": "12"}},
        {
            "device_count": {"value": 1},
            "processes/0": {"value": [{"pid": 7, "used_bytes": 1}]},
            "process/7": {"value": 3},
        },
    ],
)
def test_malformed_snapshot_values_are_exit_2_not_an_internal_error(mlops, tmp_path, calls):
    """A hand-edited or damaged snapshot is bad input: one error line naming the key, exit 2."""
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "mlops-nvml/1", "calls": calls}))
    r = mlops("gpu", "--snapshot", str(bad), "--json")
    assert r.returncode == 2, r
    assert r.no_report()
    assert r.stderr.startswith("error: NVML snapshot ") and "malformed answer for" in r.stderr
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("where", ["missing-folder/rec.json", "."])
def test_save_snapshot_to_a_bad_path_is_a_usage_error(tmp_path, where):
    """--save-snapshot into a folder that does not exist (or onto a folder): one clear error,
    exit 2, nothing half-written (it was an internal error, exit 1, and the report was lost)."""
    from mlops_cli.errors import UsageError

    recorder = RecordingNvml(SnapshotNvml.load(FIXTURES / "a800-2gpu.json"))
    collect(recorder, "x")
    with pytest.raises(UsageError, match="cannot write NVML snapshot"):
        recorder.save(tmp_path / where)
    assert [p.name for p in tmp_path.rglob("*")] == []


@pytest.mark.parametrize("dest", ["", "{tmp}/missing/x.json", "{tmp}/newdir/"])
def test_bad_save_snapshot_destination_is_refused_before_nvml(mlops, tmp_path, dest):
    """Checked before NVML is asked: so it is exit 2 here (no GPU) too, not exit 3, and an empty
    name is no longer silently ignored."""
    r = mlops("gpu", "--save-snapshot", dest.format(tmp=tmp_path), "--json")
    assert r.returncode == 2, r
    assert r.no_report() and r.stderr.startswith("error: cannot write snapshot")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_device_count_is_reported_not_hidden(mlops, tmp_path):
    """NVML answered but could not count the GPUs: the report said '0 GPU(s)' with no reason
    (the error was collected and dropped). It is now in JSON 'unavailable' and the text note."""
    snap = tmp_path / "s.json"
    snap.write_text(
        json.dumps(
            {
                "format": "mlops-nvml/1",
                "calls": {"driver_version": {"value": "550.127.05"}, "device_count": {"error": "UNKNOWN"}},
            }
        )
    )
    r = mlops("gpu", "--snapshot", str(snap), "--json")
    doc = r.json()
    assert doc["gpu_count"] == 0 and doc["unavailable"] == {"device_count": "UNKNOWN"}
    assert r.returncode == 3  # no NVIDIA GPU to show (spec: exit 3)
    assert "device_count: UNKNOWN" in mlops("gpu", "--snapshot", str(snap)).stdout


def test_nvml_with_no_gpu_is_exit_3_with_the_report(mlops, tmp_path):
    """NVML started but counts 0 GPUs (every GPU unbound or off the bus): it was exit 0 with an
    empty table; the spec's 'no NVIDIA GPU: exit 3' now holds, the report is still printed."""
    snap = tmp_path / "s.json"
    snap.write_text(
        json.dumps(
            {
                "format": "mlops-nvml/1",
                "calls": {"driver_version": {"value": "550.127.05"}, "device_count": {"value": 0}},
            }
        )
    )
    r = mlops("gpu", "--snapshot", str(snap), "--json")
    assert r.returncode == 3 and r.json()["gpu_count"] == 0
    text = mlops("gpu", "--snapshot", str(snap))
    assert text.returncode == 3 and "NVML reports no NVIDIA GPU." in text.stdout


def test_count_without_watch_is_a_usage_error(mlops):
    """--count N alone was silently ignored (one sample, exit 0): a script asking for N samples
    got one and could not tell."""
    r = replay(mlops, "a800-2gpu.json", "--count", "3", "--json")
    assert r.returncode == 2 and r.no_report() and "--count only applies with --watch" in r.stderr


def test_binary_snapshot_is_exit_2_not_an_internal_error(mlops, tmp_path):
    bad = tmp_path / "snap.json"
    bad.write_bytes(b"\xff\xfe{\x8c\x00garbage")
    r = mlops("gpu", "--snapshot", str(bad), "--json")
    assert r.returncode == 2, r
    assert r.no_report() and "not UTF-8" in r.stderr and "internal error" not in r.stderr
