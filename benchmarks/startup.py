"""Start-up time of `mlops --help` and `mlops --version` (the conventions: both stay fast).

Runs, interleaved in one session so that machine noise hits all alike: the bare interpreter
(`python -c pass`), `python -c "import typer"` (the floor a Typer CLI cannot go under),
`mlops --version`, `mlops --help`, and `mlops wheels --help` (one command's own, rich-rendered
help, which imports that command's module). Reports medians and ratios to the bare interpreter,
and writes the "startup" section of docs/benchmarks.md unless --no-write.

    python benchmarks/startup.py [-n 15] [--no-write]
"""

from __future__ import annotations

import argparse
import platform
import re
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"

CASES = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "python -c 'import typer'": [sys.executable, "-c", "import typer"],
    "mlops --version": [sys.executable, "-m", "mlops_cli", "--version"],
    "mlops --help": [sys.executable, "-m", "mlops_cli", "--help"],
    "mlops wheels --help": [sys.executable, "-m", "mlops_cli", "wheels", "--help"],
}


def once(argv: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=15)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    for argv in CASES.values():  # warm the page cache and .pyc files
        once(argv)
    runs: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(args.n):
        for name, argv in CASES.items():
            runs[name].append(once(argv))
    base = statistics.median(runs["python -c pass"])
    rows = [
        f"| `{name}` | {statistics.median(t) * 1000:.0f} ms | {statistics.median(t) / base:.1f}x |"
        for name, t in runs.items()
    ]
    section = "\n".join(
        [
            "## startup",
            "",
            f"Machine: {platform.node()}, {platform.machine()}, Python {platform.python_version()}. "
            f"Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. `python benchmarks/startup.py -n {args.n}`: "
            "medians of child processes run interleaved (`python -m mlops_cli ...`, no console-script "
            "shim). The root help is rendered by plain click formatting and imports no command "
            "module; a command's own help imports that command's module and Typer's rich renderer.",
            "",
            "| command | median | vs bare python |",
            "| --- | --- | --- |",
            *rows,
            "",
        ]
    )
    print(section)
    if not args.no_write:
        text = DOCS.read_text()
        pattern = re.compile(r"^## startup\n.*?(?=^## |\Z)", re.S | re.M)
        text = pattern.sub(section + "\n", text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
        DOCS.write_text(text)


if __name__ == "__main__":
    main()
