"""`--prometheus FILE` on driver-check and gpu: the metrics of every recorded snapshot, read back
with prometheus_client's text parser and linted by `promtool check metrics`."""

from __future__ import annotations

import os
import stat
from collections import Counter

import pytest
from fleet_helpers import (
    DRIVER_FIXTURES,
    GPU_FIXTURES,
    driver_names,
    driver_report,
    gpu_names,
    one,
    parse_prom,
    promtool_check_metrics,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from mlops_cli.driver.metrics import build as driver_metrics
from mlops_cli.gpu.metrics import build as gpu_metrics
from mlops_cli.gpu.nvml import SnapshotNvml
from mlops_cli.gpu.status import collect
from mlops_cli.metrics import MAX_LABEL_VALUE, Family, render
from mlops_cli.text import clean, shorten


def driver_prom(name: str, kernel: str | None = None) -> tuple[dict, int, str]:
    report = driver_report(name, kernel)
    doc = report.to_json()
    text = render(driver_metrics(doc, exit_code=report.exit_code, timestamp=1_700_000_000.5, duration=0.25))
    return doc, int(report.exit_code), text


def gpu_prom(name: str) -> tuple[dict, str]:
    status = collect(SnapshotNvml.load(str(GPU_FIXTURES / f"{name}.json")), name)
    doc = status.to_json()
    return doc, render(gpu_metrics(doc, exit_code=status.exit_code, timestamp=1_700_000_000.0))


@pytest.mark.parametrize("name", driver_names())
def test_driver_metrics_say_what_the_json_says(name):
    doc, code, text = driver_prom(name)
    m = parse_prom(text)
    assert all(n.startswith("mlops_driver_check_") for n in m)
    drv = doc["driver"]
    info = one(m, "mlops_driver_check_info")
    assert info == 1
    ((labels, _),) = m["mlops_driver_check_info"]
    assert labels["status"] == doc["status"] and labels["exit_code"] == str(code)
    assert labels["install_method"] == drv["install_method"]
    assert labels["driver_version"] == (drv["module_loaded"] or drv["userspace"] or "none")
    assert labels["kernel"] == doc["kernel"]["running"]
    errors = [f for f in doc["findings"] if f["severity"] == "error"]
    works_now = doc["status"] == "ok" or (
        doc["status"] != "no-gpu" and all(f.get("kernel") not in (None, doc["kernel"]["running"]) for f in errors)
    )
    assert one(m, "mlops_driver_check_healthy") == works_now
    for severity in ("error", "warning", "info"):
        want = sum(f["severity"] == severity for f in doc["findings"])
        assert one(m, "mlops_driver_check_findings", finding_severity=severity) == want
    got = {(lab["finding"], lab["finding_severity"]): v for lab, v in m.get("mlops_driver_check_finding", [])}
    assert got == dict(Counter((f["id"], f["severity"]) for f in doc["findings"]))
    assert one(m, "mlops_driver_check_gpus") == len(doc["gpus"])
    assert one(m, "mlops_driver_check_not_seen_probes") == len(doc["not_seen"])
    assert one(m, "mlops_driver_check_timestamp_seconds") == 1_700_000_000.5
    assert one(m, "mlops_driver_check_duration_seconds") == 0.25


@pytest.mark.parametrize(
    "name, kernel, now, module, after",
    [
        ("healthy", None, 1, 1, 1),
        ("reboot-required", None, 1, 1, 1),
        # apt installed 6.8.0-45 without its headers: works now, the next boot has no module
        ("next-boot-headers-missing", None, 1, 0, 0),
        ("next-boot-headers-missing", "6.8.0-45-generic", 1, 0, 0),
        # userspace upgraded, old module loaded: broken now, the reboot loads the new module
        ("mismatch-pending-reboot", None, 0, 1, 1),
        ("nouveau", None, 0, 1, 0),
        ("headers-missing", None, 0, 0, 0),
        ("no-gpu", None, 0, None, None),
    ],
)
def test_next_boot_metrics(name, kernel, now, module, after):
    _, _, text = driver_prom(name, kernel)
    m = parse_prom(text)
    assert one(m, "mlops_driver_check_healthy") == now
    if module is None:
        assert "mlops_driver_check_next_boot_module_present" not in m
        assert "mlops_driver_check_next_boot_healthy" not in m
        return
    nb = driver_report(name, kernel).to_json()["kernel"]["next_boot"]
    assert one(m, "mlops_driver_check_next_boot_module_present", kernel=nb) == module
    assert one(m, "mlops_driver_check_next_boot_healthy", kernel=nb) == after


@pytest.mark.parametrize("name", gpu_names())
def test_gpu_metrics_say_what_the_json_says(name):
    doc, text = gpu_prom(name)
    m = parse_prom(text)
    assert all(n.startswith("mlops_gpu_") for n in m)  # never a DCGM_FI_* name
    assert one(m, "mlops_gpu_devices") == doc["gpu_count"]
    for g in doc["gpus"]:
        gpu = str(g["index"])
        ((labels, _),) = [s for s in m["mlops_gpu_info"] if s[0]["gpu"] == gpu]
        assert labels["model_name"] == (g["name"] or "unknown")
        assert labels["driver_version"] == (doc["driver_version"] or "unknown")
        assert labels.get("UUID") == g["uuid"]  # DCGM exporter's label name, so the two join
        for key, metric in (
            ("total_bytes", "mlops_gpu_memory_total_bytes"),
            ("used_bytes", "mlops_gpu_memory_used_bytes"),
            ("free_bytes", "mlops_gpu_memory_free_bytes"),
        ):
            values = [v for lab, v in m.get(metric, []) if lab["gpu"] == gpu]
            assert values == ([] if g["memory"][key] is None else [g["memory"][key]])  # n/a: no sample, not 0
        util = [v for lab, v in m.get("mlops_gpu_utilization_ratio", []) if lab["gpu"] == gpu]
        assert util == ([] if g["utilization_percent"] is None else [pytest.approx(g["utilization_percent"] / 100)])
        procs = [v for lab, v in m.get("mlops_gpu_processes", []) if lab["gpu"] == gpu]
        assert procs == ([] if "processes" in g["unavailable"] else [len(g["processes"])])


def test_gpu_metrics_of_a_board_without_memory_reporting_leave_memory_out():
    _, text = gpu_prom("gb10-unsupported")
    m = parse_prom(text)
    assert "mlops_gpu_memory_used_bytes" not in m and "mlops_gpu_power_limit_watts" not in m
    assert one(m, "mlops_gpu_power_watts", gpu="0") == 11.0


@pytest.mark.parametrize("name", driver_names())
def test_promtool_accepts_the_driver_metrics(name):
    r = promtool_check_metrics(driver_prom(name)[2])
    assert r.returncode == 0 and r.stdout + r.stderr == "", r


@pytest.mark.parametrize("name", gpu_names())
def test_promtool_accepts_the_gpu_metrics(name):
    r = promtool_check_metrics(gpu_prom(name)[1])
    assert r.returncode == 0 and r.stdout + r.stderr == "", r


def test_promtool_lint_catches_what_these_names_avoid():
    """The check above is not vacuous: promtool flags names that break the conventions."""
    bad = render([Family("mlops_gpu_count", "x").add(1), Family("mlops_gpu_temp_c", "").add(1)])
    r = promtool_check_metrics(bad)
    assert "_count" in r.stdout + r.stderr


# --- through the real command line -----------------------------------------------------------


def test_driver_check_writes_the_file_beside_its_normal_output(mlops, tmp_path):
    out = tmp_path / "mlops_driver.prom"
    r = mlops("driver-check", "--snapshot", str(DRIVER_FIXTURES / "nouveau.json"), "--json", "--prometheus", str(out))
    assert r.returncode == 1, r
    assert r.json()["findings"][0]["id"] == "nouveau_bound"  # stdout: the JSON document, unchanged
    m = parse_prom(out.read_text())
    ((labels, _),) = m["mlops_driver_check_info"]
    assert labels["exit_code"] == "1" and labels["status"] == "problem"
    assert one(m, "mlops_driver_check_finding", finding="nouveau_bound") == 1
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~_umask()
    assert [p.name for p in tmp_path.iterdir()] == ["mlops_driver.prom"]  # no temporary file left
    text = mlops("driver-check", "--snapshot", str(DRIVER_FIXTURES / "healthy.json"), "--prometheus", str(out))
    assert text.returncode == 0 and text.stdout.startswith("OK:"), text
    assert one(parse_prom(out.read_text()), "mlops_driver_check_healthy") == 1  # replaced whole


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_gpu_writes_the_file_each_sample_with_watch(mlops, tmp_path):
    out = tmp_path / "mlops_gpu.prom"
    r = mlops(
        "gpu",
        "--snapshot",
        str(GPU_FIXTURES / "a800-2gpu.json"),
        "--watch",
        "0.1",
        "--count",
        "2",
        "--json",
        "--prometheus",
        str(out),
    )
    assert r.returncode == 0, r
    assert len(r.stdout.splitlines()) == 2  # the NDJSON samples, unchanged
    m = parse_prom(out.read_text())
    assert one(m, "mlops_gpu_memory_used_bytes", gpu="1") == 34639 * 1024**2
    assert one(m, "mlops_gpu_exit_code") == 0


@pytest.mark.parametrize(
    "command",
    [
        ["driver-check", "--snapshot", str(DRIVER_FIXTURES / "healthy.json")],
        ["gpu", "--snapshot", str(GPU_FIXTURES / "a800-2gpu.json")],
    ],
)
def test_an_unwritable_metrics_path_is_refused_before_any_work(mlops, tmp_path, command):
    target = tmp_path / "real.prom"
    target.write_text("kept\n")
    link = tmp_path / "link.prom"
    link.symlink_to(target)
    for dest, words in (
        (link, "symbolic link"),
        (tmp_path / "missing" / "x.prom", "does not exist"),
        (tmp_path, "folder"),
    ):
        r = mlops(*command, "--json", "--prometheus", str(dest))
        assert r.returncode == 2 and r.no_report(), r
        assert words in r.stderr and r.stderr.count("error:") == 1, r
    assert target.read_text() == "kept\n"


def test_a_name_node_exporter_would_ignore_gets_a_warning(mlops, tmp_path):
    out = tmp_path / "driver.txt"
    r = mlops("driver-check", "--snapshot", str(DRIVER_FIXTURES / "healthy.json"), "--prometheus", str(out))
    assert r.returncode == 0 and "*.prom" in r.stderr and out.exists(), r


# --- the exposition format itself ------------------------------------------------------------


@settings(derandomize=True, max_examples=60, deadline=None)
@given(version=st.text(max_size=300), kernel=st.text(max_size=50), finding=st.text(min_size=1, max_size=40))
def test_hostile_text_from_a_machine_stays_one_label_value(version, kernel, finding):
    doc = driver_report("healthy").to_json()
    doc["driver"]["module_loaded"] = version
    doc["kernel"]["running"] = kernel
    doc["findings"] = [{"id": finding, "severity": "error"}]
    text = render(driver_metrics(doc, exit_code=1, timestamp=0.0, duration=None))
    m = parse_prom(text)
    ((labels, _),) = m["mlops_driver_check_info"]

    def shown(s: str) -> str | None:
        return shorten(clean(s).replace("\n", " "), MAX_LABEL_VALUE) or None

    assert labels["driver_version"] == (shown(version) if version else doc["driver"]["userspace"])
    assert labels.get("kernel") == shown(kernel)
    assert [lab["finding"] for lab, _ in m["mlops_driver_check_finding"]] == [shown(finding)]
    assert all(line.startswith(("#", "mlops_")) for line in text.splitlines())


def test_the_format_refuses_what_prometheus_would_reject():
    with pytest.raises(ValueError):
        Family("mlops-gpu", "dash")
    with pytest.raises(ValueError):
        Family("mlops_gpu_seconds_total", "a gauge named like a counter")
    fam = Family("mlops_x", "x").add(1, gpu="0")
    with pytest.raises(ValueError):
        fam.add(2, gpu="0")
    with pytest.raises(ValueError):
        fam.add(2, **{"0bad": "x"})
    with pytest.raises(ValueError):
        render([fam, Family("mlops_x", "again").add(1)])
    assert render([Family("mlops_empty", "no samples")]) == ""
    assert render([Family("mlops_y", 'a "help"\nline\\').add(float("nan")).add(float("inf"), a="b")]) == (
        '# HELP mlops_y a "help"\\nline\\\\\n# TYPE mlops_y gauge\nmlops_y NaN\nmlops_y{a="b"} +Inf\n'
    )
