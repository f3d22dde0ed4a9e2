"""contrib/: the alert rules checked and unit-tested by promtool (also against the metrics the
real commands write), the systemd units by systemd-analyze, the APT hook by apt-config, the
Kubernetes manifest against the Kubernetes API schemas."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from fleet_helpers import CONTRIB, driver_report, promtool

from mlops_cli.driver.metrics import build as driver_metrics
from mlops_cli.metrics import render

RULES = CONTRIB / "prometheus" / "mlops-alerts.yml"
TEXTFILE_DIR = "/var/lib/node_exporter/textfile_collector"


def run(argv, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, **kw)


def test_promtool_checks_the_alert_rules():
    r = run([promtool(), "check", "rules", str(RULES)])
    assert r.returncode == 0 and "SUCCESS: 5 rules found" in r.stdout, r


def test_promtool_runs_the_shipped_alert_unit_tests():
    r = run([promtool(), "test", "rules", "mlops-alerts.test.yml"], cwd=CONTRIB / "prometheus")
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr


def _series(instance: str, text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        name_labels, value = line.rsplit(" ", 1)
        name, _, labels = name_labels.partition("{")
        labels = labels.rstrip("}")
        extra = f'instance="{instance}",job="node"'
        out.append({"series": f"{name}{{{extra}{',' if labels else ''}{labels}}}", "values": f"{value}x30"})
    return out


# What each recorded case must raise, whatever the rules' wording: a node whose driver is broken
# now, one that works but loses the GPU at the next boot, and fabric manager down.
EXPECTED = {
    "NvidiaDriverBroken": {"nouveau", "fabricmanager-mismatch", "mismatch-pending-reboot", "no-gpu", "headers-missing"},
    "NvidiaGpuLostAtNextBoot": {"next-boot-headers-missing"},
    "NvidiaFabricManagerDown": {"fabricmanager-mismatch"},
}
CASES = [
    "healthy",
    "reboot-required",
    "next-boot-headers-missing",
    "nouveau",
    "fabricmanager-mismatch",
    "mismatch-pending-reboot",
    "no-gpu",
    "headers-missing",
]


def test_the_alerts_fire_on_the_metrics_the_commands_write(tmp_path):
    """Each alert's expression, evaluated by promtool's PromQL engine over the series that
    `driver-check --prometheus` writes for recorded snapshots, finds exactly the right nodes."""
    yaml = pytest.importorskip("yaml", reason="PyYAML (comes with ansible-core, test extra) is not installed")
    rules = {r["alert"]: r["expr"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    series = []
    for name in CASES:
        report = driver_report(name)
        text = render(driver_metrics(report.to_json(), exit_code=report.exit_code, timestamp=0.0, duration=0.1))
        series += _series(name, text)
    tests = [
        {
            "expr": f"count by (instance) ({rules[alert]})",
            "eval_time": "20m",
            "exp_samples": [{"labels": f'{{instance="{i}"}}', "value": 1} for i in sorted(want)],
        }
        for alert, want in EXPECTED.items()
    ]
    doc = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": tests}],
    }
    test_file = tmp_path / "generated.test.yml"
    test_file.write_text(yaml.safe_dump(doc, sort_keys=False))
    r = run([promtool(), "test", "rules", str(test_file)])
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_unit_tests_are_not_vacuous(tmp_path):
    """promtool fails the generated test when an alert finds the wrong nodes."""
    broken = tmp_path / "rules.yml"
    broken.write_text(RULES.read_text().replace("mlops_driver_check_healthy == 0", "mlops_driver_check_healthy == 1"))
    shutil.copy(CONTRIB / "prometheus" / "mlops-alerts.test.yml", tmp_path / "t.yml")
    text = (tmp_path / "t.yml").read_text().replace("- mlops-alerts.yml", f"- {broken}")
    (tmp_path / "t.yml").write_text(text)
    r = run([promtool(), "test", "rules", str(tmp_path / "t.yml")])
    assert r.returncode != 0 and "NvidiaDriverBroken" in r.stdout + r.stderr


# --- systemd, APT, Kubernetes ----------------------------------------------------------------


def test_systemd_units_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (package systemd)")
    mlops_bin = shutil.which("mlops")
    if mlops_bin is None:
        pytest.skip("the mlops console script is not on PATH (pip install -e .)")
    units = sorted((CONTRIB / "systemd").iterdir())
    assert {u.name for u in units} == {"mlops-driver-check.service", "mlops-driver-check.timer", "mlops-gpu.service"}
    for unit in units:
        text = unit.read_text()
        # systemd-analyze checks that ExecStart's program exists: point it at this mlops.
        (tmp_path / unit.name).write_text(text.replace("/usr/local/bin/mlops", mlops_bin))
    r = run(
        [analyze, "verify", *[str(tmp_path / u.name) for u in units]],
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"},
    )
    assert r.returncode == 0 and r.stdout + r.stderr == "", r.stdout + r.stderr
    service = (CONTRIB / "systemd" / "mlops-driver-check.service").read_text()
    assert f"--prometheus {TEXTFILE_DIR}/mlops_driver.prom" in service and "SuccessExitStatus=1 3" in service
    assert "OnUnitActiveSec=15min" in (CONTRIB / "systemd" / "mlops-driver-check.timer").read_text()


def test_systemd_verify_is_not_vacuous(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (package systemd)")
    bad = tmp_path / "bad.service"
    bad.write_text(
        (CONTRIB / "systemd" / "mlops-gpu.service").read_text().replace("Restart=always", "Restart=sometimes")
    )
    r = run([analyze, "verify", str(bad)])
    assert "sometimes" in r.stdout + r.stderr


def test_the_apt_hook_parses_and_starts_the_check(tmp_path):
    apt_config = shutil.which("apt-config")
    if apt_config is None:
        pytest.skip("apt-config is not installed (not a Debian-family system)")
    hook = CONTRIB / "apt" / "99mlops-driver-check"
    r = run([apt_config, "-c", str(hook), "dump", "DPkg::Post-Invoke"])
    assert r.returncode == 0, r
    lines = [m.group(1) for m in re.finditer(r'DPkg::Post-Invoke:: "(.*)";', r.stdout)]
    ours = [c for c in lines if "mlops-driver-check.service" in c]
    assert len(ours) == 1 and "systemctl start --no-block mlops-driver-check.service" in ours[0]
    # Where systemd is not running (a container, a chroot) the hook must not fail apt.
    fake = tmp_path / "bin"
    fake.mkdir()
    r = run(["sh", "-c", ours[0].replace('\\"', '"')], env={"PATH": f"{fake}:/usr/bin:/bin"})
    assert r.returncode == 0, r


def test_the_kubernetes_manifest_is_valid():
    kv = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate (test extra) is not installed")
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed")
    manifest = CONTRIB / "k8s" / "mlops-node-checks.yaml"
    docs = list(yaml.safe_load_all(manifest.read_text()))
    for doc in docs:
        kv.validate(doc, "1.30.0", strict=True)  # raises on an unknown or wrongly typed field
    ds = next(d for d in docs if d["kind"] == "DaemonSet")
    spec = ds["spec"]["template"]["spec"]
    volumes = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"]}
    assert volumes["textfile"] == TEXTFILE_DIR and volumes["host-root"] == "/"
    for container in spec["containers"]:
        script = container["args"][0]
        assert f"--prometheus {TEXTFILE_DIR}/" in script and "chroot /host /usr/local/bin/mlops" in script
        assert run(["sh", "-n", "-c", script]).returncode == 0
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert mounts["textfile"] == "/host" + TEXTFILE_DIR
    assert "nvidia.com/gpu" not in str(spec["containers"])  # takes no GPU from the jobs


def test_the_kubernetes_validation_is_not_vacuous():
    kv = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate (test extra) is not installed")
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed")
    docs = list(yaml.safe_load_all((CONTRIB / "k8s" / "mlops-node-checks.yaml").read_text()))
    ds = next(d for d in docs if d["kind"] == "DaemonSet")
    ds["spec"]["template"]["spec"]["hostPIDD"] = True
    with pytest.raises(kv.ValidationError):
        kv.validate(ds, "1.30.0", strict=True)


def test_every_contrib_file_is_covered_here():
    files = {p.relative_to(CONTRIB).as_posix() for p in CONTRIB.rglob("*") if p.is_file()}
    assert files == {
        "prometheus/mlops-alerts.yml",
        "prometheus/mlops-alerts.test.yml",
        "systemd/mlops-driver-check.service",
        "systemd/mlops-driver-check.timer",
        "systemd/mlops-gpu.service",
        "apt/99mlops-driver-check",
        "k8s/mlops-node-checks.yaml",
        "ansible/driver-check.yml",
        "ansible/roles/mlops_driver_check/defaults/main.yml",
        "ansible/roles/mlops_driver_check/meta/main.yml",
        "ansible/roles/mlops_driver_check/tasks/main.yml",
    }, "a new contrib file needs a test"
    assert Path(__file__).parent.joinpath("test_fleet_ansible.py").exists()
