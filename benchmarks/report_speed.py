"""How fast `mlops report` summarises a fleet, and how its time grows with the number of nodes.

Writes synthetic fleets of N nodes (one driver-check --json file per node, as the Ansible role or
pdsh leaves them): each file is the real output of driver-check on one of the recorded snapshots
in tests/fixtures/driver, 80 % of the nodes healthy and the rest spread over every problem
recorded, so groups, plans and next-boot verdicts are all exercised. Then times, as a child
process, `mlops report DIR --json` (start-up, reading, parsing, summarising and printing), the
median of several runs per size, and its peak memory. Writes the "report" section of
docs/benchmarks.md unless --no-write.

    python benchmarks/report_speed.py [--sizes 1000,2500,5000,10000] [-n 5] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from mem_accuracy import write_section  # the one replace-or-append of a docs/benchmarks.md section

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"
FIXTURES = ROOT / "tests" / "fixtures" / "driver"


def fixture_documents() -> dict[str, str]:
    from mlops_cli.driver.check import check
    from mlops_cli.driver.report import DriverReport
    from mlops_cli.host import Snapshot, SnapshotHost

    docs = {}
    for path in sorted(FIXTURES.glob("*.json")):
        snap = Snapshot.from_json(json.loads(path.read_text()))
        report = DriverReport(check(SnapshotHost(snap), None), "live")
        docs[path.stem] = json.dumps(report.to_json(), indent=2) + "\n"  # as `--json` prints it
    return docs


def make_fleet(folder: Path, n: int, docs: dict[str, str], seed: int = 15) -> int:
    rng = random.Random(seed)
    problems = [k for k in docs if k != "healthy"]
    size = 0
    for i in range(n):
        text = docs["healthy"] if rng.random() < 0.8 else docs[rng.choice(problems)]
        (folder / f"gpu{i:05d}.json").write_text(text)
        size += len(text)
    return size


def run_report(folder: Path) -> tuple[float, int, int]:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "mlops_cli", "report", str(folder), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    elapsed = time.perf_counter() - t0
    assert proc.returncode in (0, 1), proc.returncode  # 1: some nodes are broken
    doc = json.loads(proc.stdout)
    return elapsed, doc["nodes_total"], len(doc["groups"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1,1000,2500,5000,10000")  # 1 node: the start-up alone
    ap.add_argument("-n", type=int, default=5)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    load = os.getloadavg()[0]
    docs = fixture_documents()
    rows = []
    medians = {}
    with tempfile.TemporaryDirectory(prefix="mlops-report-bench.") as tmp:
        for n in sizes:
            folder = Path(tmp) / str(n)
            folder.mkdir()
            size = make_fleet(folder, n, docs)
            run_report(folder)  # warm the page cache
            times = []
            for _ in range(args.n):
                elapsed, nodes, groups = run_report(folder)
                assert nodes == n
                times.append(elapsed)
            med = statistics.median(times)
            medians[n] = med
            rows.append((n, size, med, groups))
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = medians[min(sizes)]  # the run with the fewest nodes is mostly start-up
    base_n = min(n for n in sizes if n > min(sizes))
    base = medians[base_n] - start
    table = [
        f"| {n:,} | {size / 2**20:.1f} MiB | {med:.2f} s | "
        + (
            f"{(med - start) / (n - min(sizes)) * 1e6:.0f} µs | {(med - start) / base:.2f}x for {n / base_n:.1f}x the nodes"
            if n > min(sizes)
            else "(start-up) | "
        )
        + f" | {groups} |"
        for n, size, med, groups in rows
    ]
    section = "\n".join(
        [
            "## report (`mlops report`, fleet summary)",
            "",
            f"Machine: {platform.node()}, {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}. "
            f"Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. `python benchmarks/report_speed.py -n {args.n}`: "
            "synthetic fleets, one real driver-check `--json` output per node (80 % healthy, the rest every recorded "
            "problem), timed end to end as a child process (`mlops report DIR --json`: start-up, every file read "
            "through the floor, parsed, summarised, printed); medians. Peak memory of the largest run: "
            f"{peak_kib / 1024:.0f} MiB. Load average when it started: {load:.1f} (the machine is shared; "
            "compare the growth column, not single times).",
            "",
            "| nodes | JSON read | median | per node beyond start-up | growth beyond start-up | groups |",
            "| --- | --- | --- | --- | --- | --- |",
            *table,
            "",
        ]
    )
    print(section)
    if not args.no_write:
        write_section(DOCS, section + "\n", "## report (`mlops report`")


if __name__ == "__main__":
    main()
