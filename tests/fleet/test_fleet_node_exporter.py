"""The .prom files, read by a real node_exporter (Debian's prometheus-node-exporter) through its
textfile collector, as on a GPU node: no scrape error, every mlops metric served."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.request

import pytest
from fleet_helpers import DRIVER_FIXTURES, GPU_FIXTURES, one


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def node_exporter(tmp_path):
    binary = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
    if binary is None:
        pytest.skip("node_exporter is not installed (Debian: apt-get install prometheus-node-exporter; .ci/run does)")
    textfile = tmp_path / "textfile_collector"
    textfile.mkdir()
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            "--collector.disable-defaults",
            "--collector.textfile",
            f"--collector.textfile.directory={textfile}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )

    def scrape() -> str:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                    return resp.read().decode()
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        f"node_exporter did not serve: {proc.stderr.read().decode()[-2000:]}"
                    ) from None
                time.sleep(0.2)

    try:
        yield textfile, scrape
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_node_exporter_serves_what_driver_check_and_gpu_write(mlops, node_exporter):
    textfile, scrape = node_exporter
    r = mlops(
        "driver-check",
        "--snapshot",
        str(DRIVER_FIXTURES / "next-boot-headers-missing.json"),
        "--prometheus",
        str(textfile / "mlops_driver.prom"),
    )
    assert r.returncode == 1, r
    r = mlops(
        "gpu", "--snapshot", str(GPU_FIXTURES / "a800-2gpu.json"), "--prometheus", str(textfile / "mlops_gpu.prom")
    )
    assert r.returncode == 0, r
    m = parse_prom_any(scrape())
    assert one(m, "node_textfile_scrape_error") == 0  # node_exporter parsed both files
    files = {lab["file"] for lab, _ in m["node_textfile_mtime_seconds"]}
    assert {f.rsplit("/", 1)[-1] for f in files} == {"mlops_driver.prom", "mlops_gpu.prom"}
    assert one(m, "mlops_driver_check_healthy") == 1
    assert one(m, "mlops_driver_check_next_boot_healthy", kernel="6.8.0-45-generic") == 0
    assert one(m, "mlops_gpu_memory_total_bytes", gpu="0") == 81920 * 1024**2


def test_node_exporter_reports_a_broken_file_so_the_check_is_not_vacuous(node_exporter):
    textfile, scrape = node_exporter
    (textfile / "broken.prom").write_text("mlops_driver_check_healthy{ 1\n")
    assert one(parse_prom_any(scrape()), "node_textfile_scrape_error") == 1


def parse_prom_any(text: str) -> dict:
    """node_exporter's page holds counters and untyped metrics too: parse it all, keep gauges' checks out."""
    parser = pytest.importorskip("prometheus_client.parser", reason="prometheus_client (test extra) is not installed")
    out: dict = {}
    for family in parser.text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((dict(s.labels), s.value))
    return out
