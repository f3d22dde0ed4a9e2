"""Helpers for the fleet tests: results of the real commands on recorded snapshots, and the
real Prometheus parsers (prometheus_client's text parser, promtool when installed)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

from mlops_cli.driver.check import check
from mlops_cli.driver.report import DriverReport
from mlops_cli.host import Snapshot, SnapshotHost

TESTS = Path(__file__).resolve().parent.parent
REPO = TESTS.parent
DRIVER_FIXTURES = TESTS / "fixtures" / "driver"
GPU_FIXTURES = TESTS / "fixtures" / "gpu"
CONTRIB = REPO / "contrib"


def driver_names() -> list[str]:
    return sorted(p.stem for p in DRIVER_FIXTURES.glob("*.json"))


def gpu_names() -> list[str]:
    return sorted(p.stem for p in GPU_FIXTURES.glob("*.json"))


def driver_report(name: str, kernel: str | None = None) -> DriverReport:
    """driver-check's result on a recorded snapshot, in process (the same path the CLI takes)."""
    path = DRIVER_FIXTURES / f"{name}.json"
    snap = Snapshot.from_json(json.loads(path.read_text()))
    return DriverReport(check(SnapshotHost(snap), kernel), str(path))


def parse_prom(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """A .prom text parsed by prometheus_client's own parser: metric name -> (labels, value)."""
    parser = pytest.importorskip("prometheus_client.parser", reason="prometheus_client (test extra) is not installed")
    out: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for family in parser.text_string_to_metric_families(text):
        assert family.type == "gauge", family
        for sample in family.samples:
            assert sample.timestamp is None  # node_exporter refuses client-side timestamps
            out[sample.name].append((dict(sample.labels), sample.value))
    return dict(out)


def one(samples: dict, name: str, **labels: str) -> float:
    found = [v for lab, v in samples.get(name, []) if all(lab.get(k) == v2 for k, v2 in labels.items())]
    assert len(found) == 1, (name, labels, samples.get(name))
    return found[0]


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus; .ci/run installs it)")
    return path


def promtool_check_metrics(text: str) -> subprocess.CompletedProcess:
    return subprocess.run([promtool(), "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
