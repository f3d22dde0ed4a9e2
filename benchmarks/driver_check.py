"""Benchmark `mlops driver-check` live on this machine.

Measures, as medians of N runs:
- the whole check in-process (probe + parse + diagnose), with probes concurrent (the default)
  and, for comparison, one at a time;
- each probe's own time (from the concurrent runs);
- the command end to end (`python -m mlops_cli driver-check --json`, a child process, so
  interpreter start-up and imports are included).

Writes the "driver-check" section of docs/benchmarks.md (replacing an earlier one) unless
--no-write. Usage: python benchmarks/driver_check.py [-n 20] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from mlops_cli.driver.assemble import read_facts
from mlops_cli.driver.diagnose import diagnose
from mlops_cli.driver.probe import PROBES, collect
from mlops_cli.host import LiveHost, Snapshot, SnapshotHost

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"
FIXTURE = ROOT / "tests" / "fixtures" / "driver" / "healthy.json"
SMI_SECONDS = 0.5


def timed_check(workers: int) -> tuple[float, dict[str, float], str]:
    started = time.perf_counter()
    collected = collect(LiveHost(), workers=workers)
    status = diagnose(read_facts(collected)).status
    return time.perf_counter() - started, collected.timings, status


class SlowSmiReplay(SnapshotHost):
    """The healthy GPU-server fixture, with nvidia-smi taking SMI_SECONDS as on a real box."""

    def run(self, argv, timeout, key=None):
        if key in ("nvidia_smi", "nvidia_smi_query"):
            time.sleep(SMI_SECONDS)
        return super().run(argv, timeout, key)


def replay_check() -> float:
    host = SlowSmiReplay(Snapshot.load(FIXTURE))
    started = time.perf_counter()
    diagnose(read_facts(collect(host)))
    return time.perf_counter() - started


def cli_run() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mlops_cli", "driver-check", "--json"], capture_output=True, check=False)
    return time.perf_counter() - started


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Linux {platform.release()}, Python {platform.python_version()}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=20)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()

    timed_check(16)  # warm the page cache
    concurrent, per_probe, status = [], {k: [] for k in [*PROBES, "files"]}, ""
    for _ in range(args.n):
        seconds, timings, status = timed_check(16)
        concurrent.append(seconds)
        for k, v in timings.items():
            per_probe[k].append(v)
    sequential = [timed_check(1)[0] for _ in range(args.n)]
    cli = [cli_run() for _ in range(args.n)]
    replay = [replay_check() for _ in range(args.n)]

    med = statistics.median
    lines = [
        "## driver-check",
        "",
        f"Machine: {machine()}. Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. "
        f"Medians of {args.n} runs of `python benchmarks/driver_check.py`. Live check on this machine "
        f"(status `{status}`: no NVIDIA GPU and no driver here, so `nvidia-smi` and most tools are absent; "
        "on a GPU server the check is dominated by `nvidia-smi`, which runs concurrently with everything else).",
        "",
        "| measurement | median |",
        "| --- | --- |",
        f"| whole check in-process, probes concurrent (default) | {med(concurrent) * 1000:.1f} ms |",
        f"| whole check in-process, probes one at a time | {med(sequential) * 1000:.1f} ms |",
        f"| ratio one-at-a-time / concurrent | {med(sequential) / med(concurrent):.2f}x |",
        f"| `mlops driver-check --json` end to end (child process, start-up included) | {med(cli) * 1000:.0f} ms |",
        f"| healthy GPU server replayed (tests/fixtures/driver/healthy.json), `nvidia-smi` made to take {SMI_SECONDS * 1000:.0f} ms | "
        f"{med(replay) * 1000:.0f} ms (overhead beyond nvidia-smi: {(med(replay) - SMI_SECONDS) * 1000:.1f} ms) |",
        "",
        "Per probe (concurrent runs; 'files' is every file and folder read, done meanwhile on the main thread):",
        "",
        "| probe | median |",
        "| --- | --- |",
    ]
    for key, values in sorted(per_probe.items(), key=lambda kv: -med(kv[1])):
        lines.append(f"| `{key}` | {med(values) * 1000:.2f} ms |")
    section = "\n".join(lines) + "\n"
    print(section)
    if args.no_write:
        return
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    pattern = re.compile(r"^## driver-check\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(section + "\n", text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    DOCS.write_text(text)


if __name__ == "__main__":
    main()
