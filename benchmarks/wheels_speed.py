#!/usr/bin/env python3
"""`mlops wheels swanlab==0.5.7` against `pip download`, cold caches, side by side.

Each round runs, in turn: mlops wheels (fresh cache dir, fresh output), the machine's pip
(`python3 -m pip download ... -d DIR --no-cache-dir`) and the newest pip (installed into a
venv first), every one isolated from pip configuration (PIP_CONFIG_FILE=/dev/null, no PIP_*
variables). The floor is the resolver's own time (`uv pip compile`, cold cache) plus the
payload at link speed (best single-stream throughput of the largest wheel).
Writes/replaces the "wheels" section of docs/benchmarks.md.

    python benchmarks/wheels_speed.py [--rounds 3] [--requirement swanlab==0.5.7] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
INDEX = "https://pypi.org/simple"


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", **extra)
    return env


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=900)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(argv)}\n{proc.stderr[-2000:]}")
    return elapsed, proc


def dir_stats(folder: Path) -> tuple[int, int]:
    files = [p for p in folder.rglob("*") if p.is_file() and p.suffix in (".whl", ".gz", ".zip")]
    return len(files), sum(p.stat().st_size for p in files)


def pip_version(python: str) -> str:
    out = subprocess.run([python, "-m", "pip", "--version"], capture_output=True, text=True, env=clean_env())
    return out.stdout.split()[1]


def link_speed(url: str, tries: int = 3) -> float:
    import requests

    best = 0.0
    for _ in range(tries):
        start, n = time.perf_counter(), 0
        with requests.get(url, stream=True, timeout=120) as r:
            for chunk in r.iter_content(1 << 20):
                n += len(chunk)
        best = max(best, n / (time.perf_counter() - start))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requirement", default="swanlab==0.5.7")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--no-cross", action="store_true", help="skip the cp310/aarch64 cross-target rows")
    args = ap.parse_args()
    req = args.requirement
    work = Path(tempfile.mkdtemp(prefix="wheels-bench-"))
    machine_python = shutil.which("python3") or sys.executable
    newest = work / "newest-pip"
    subprocess.run([machine_python, "-m", "venv", str(newest)], check=True)
    subprocess.run([str(newest / "bin/python"), "-m", "pip", "install", "-q", "-U", "pip", "--index-url", INDEX],
                   check=True, env=clean_env())
    from uv import find_uv_bin

    runners = {
        "mlops wheels": lambda d, c: [sys.executable, "-m", "mlops_cli", "wheels", req, "-o", str(d), "--json"],
        f"pip {pip_version(machine_python)} (machine)": lambda d, c: [machine_python, "-m", "pip", "download", req,
                                                                      "-d", str(d), "--no-cache-dir", "--index-url", INDEX],
        f"pip {pip_version(str(newest / 'bin/python'))} (newest)": lambda d, c: [
            str(newest / "bin/python"), "-m", "pip", "download", req, "-d", str(d), "--no-cache-dir", "--index-url", INDEX],
        "uv pip compile (resolver only)": lambda d, c: [
            find_uv_bin(), "pip", "compile", "-", "--no-config", "--no-header", "--python", sys.executable,
            "--no-python-downloads", "--cache-dir", str(c), "--index-url", INDEX],
    }
    if not args.no_cross:
        newest_label = f"pip {pip_version(str(newest / 'bin/python'))} (newest)"
        runners["mlops wheels --target ubuntu22.04-aarch64 (cross)"] = lambda d, c: [
            sys.executable, "-m", "mlops_cli", "wheels", req, "--target", "ubuntu22.04-aarch64", "-o", str(d), "--json"]
        runners[f"{newest_label}, cp310 aarch64, 3x --platform (cross)"] = lambda d, c: [
            str(newest / "bin/python"), "-m", "pip", "download", req, "-d", str(d), "--no-cache-dir", "--index-url", INDEX,
            "--only-binary=:all:", "--python-version", "3.10", "--platform", "manylinux_2_35_aarch64",
            "--platform", "manylinux_2_17_aarch64", "--platform", "manylinux2014_aarch64"]
    times: dict[str, list[float]] = {k: [] for k in runners}
    sizes: dict[str, tuple[int, int]] = {}
    last_json = None
    phase_runs: list[dict] = []
    for rnd in range(args.rounds + 1):  # round 0 warms the index's own caches, not ours
        for name, make in runners.items():
            out, cache = work / f"out-{rnd}-{len(times[name])}-{abs(hash(name))}", work / f"cache-{rnd}-{abs(hash(name))}"
            env = clean_env(MLOPS_CACHE_DIR=str(cache))
            argv = make(out, cache)
            if argv[1:3] == ["pip", "compile"]:
                start = time.perf_counter()
                proc = subprocess.run(argv, input=req + "\n", env=env, cwd=work, capture_output=True, text=True, timeout=600)
                elapsed = time.perf_counter() - start
                if proc.returncode:
                    raise SystemExit(proc.stderr)
            else:
                elapsed, proc = timed(argv, env, work)
                sizes[name] = dir_stats(out)
                if name == "mlops wheels":
                    last_json = json.loads(proc.stdout)
                    if rnd:
                        phase_runs.append(dict(last_json["phases"], process=elapsed))
            if rnd:
                times[name].append(elapsed)
            print(f"round {rnd} {name}: {elapsed:.2f} s", file=sys.stderr)
            shutil.rmtree(out, ignore_errors=True)
            shutil.rmtree(cache, ignore_errors=True)
    biggest = max(last_json["packages"], key=lambda p: p["size"])
    speed = link_speed(biggest["source_url"])
    payload = last_json["total_bytes"]
    med = {k: statistics.median(v) for k, v in times.items()}
    resolver = med["uv pip compile (resolver only)"]
    floor = resolver + payload / speed
    mlops = med["mlops wheels"]
    machine_pip = next(k for k in med if k.endswith("(machine)"))
    newest_pip = next(k for k in med if k.endswith("(newest)"))
    rows = []
    for k, v in times.items():
        files, size = sizes.get(k, (None, None))
        shown = f"{files} files, {size / 2**20:.1f} MiB" if files else "pins only"
        rows.append(f"| {k} | **{med[k]:.2f}** | {' / '.join(f'{x:.2f}' for x in v)} | {shown} | "
                    f"{med[k] / mlops:.1f}x |")
    goals = [
        ("<= 1/3 of the machine's pip", mlops <= med[machine_pip] / 3, f"{mlops / med[machine_pip]:.2f} of it"),
        ("faster than the newest pip", mlops < med[newest_pip], f"{med[newest_pip] / mlops:.1f}x faster" if mlops < med[newest_pip] else "slower"),
        ("within 2x of the floor", mlops <= 2 * floor, f"{mlops / floor:.1f}x the floor"),
    ]
    section = "\n".join([
        "## wheels",
        "",
        f"`benchmarks/wheels_speed.py`: `{req}`, host target, cold caches (fresh cache and output folder per",
        "run, `--no-cache-dir` for pip), every tool isolated from pip configuration and pointed at",
        f"`{INDEX}`; one warm-up round, then {args.rounds} rounds, tools interleaved. The (cross) rows build",
        "for Python 3.10 on aarch64 from this x86_64 host; they are not part of the goals below.",
        f"Machine: {platform.node()}, {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"{datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}.",
        "",
        "| command | median s | runs s | result | time / mlops |",
        "| --- | --- | --- | --- | --- |",
        *rows,
        "",
        f"Floor = resolver ({resolver:.2f} s) + payload {payload / 2**20:.1f} MiB at link speed "
        f"{speed / 2**20:.0f} MiB/s (best single stream of {biggest['filename']}) = **{floor:.2f} s**.",
        "",
        "Where mlops wheels spends its time (medians, s): " + ", ".join(
            f"{k} {statistics.median(r[k] for r in phase_runs):.2f}" for k in phase_runs[0])
        + ". `setup` to `build_and_write` run inside `build_bundle`; the rest of `process` is Python"
        " start-up, imports (typer, rich, requests) and argument parsing before uv can start.",
        "",
        "| goal | met | measured |",
        "| --- | --- | --- |",
        *[f"| {g} | {'yes' if ok else 'NO'} | {m} |" for g, ok, m in goals],
        "",
        "Caveats: the machine is shared (other jobs run at the same time), so single runs vary by a few",
        "tenths of a second; the floor ratio is the sensitive one, and a result near 2.0x is borderline.",
        "The floor counts the resolver and the transfer back to back; mlops overlaps them (downloads",
        "start as uv selects packages), so what remains above it is mostly Python start-up and",
        "imports (~0.25 s) and uv running a little slower while downloads share the two CPUs.",
        "The research notes (../shared/research/wheels-anchors.md, section 2) timed pip 23.2.1 at 13.8 s and",
        "pip 26.3 at 5.6 s for the same download against a mirror; through pypi.org here both pips are",
        "faster, so the ratios above are the harder comparison.",
        "",
    ])
    print(section)
    if not args.no_write:
        path = REPO / "docs" / "benchmarks.md"
        text = path.read_text()
        if "\n## wheels\n" in text:
            text = re.sub(r"\n## wheels\n.*?(?=\n## |\Z)", "\n" + section, text, flags=re.S)
        else:
            text = text.rstrip("\n") + "\n\n" + section
        path.write_text(text)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
