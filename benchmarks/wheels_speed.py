#!/usr/bin/env python3
"""`mlops wheels swanlab==0.5.7` against `pip download`, cold caches, side by side.

Each round runs, in turn: mlops wheels (fresh cache dir, fresh output), the machine's pip
(`python3 -m pip download ... -d DIR --no-cache-dir`) and the newest pip (installed into a
venv first), every one isolated from pip configuration (PIP_CONFIG_FILE=/dev/null, no PIP_*
variables). The floor is the resolver's own time (`uv pip compile`, cold cache) plus the
payload at link speed (best single-stream throughput of the largest wheel).
Writes/replaces the "wheels" section of docs/benchmarks.md.

    python benchmarks/wheels_speed.py [--rounds 3] [--set 'swanlab==0.5.7'] [--set 'transformers datasets'] [--no-write]
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


def measure(reqs: list[str], rounds: int, work: Path, machine_python: str, newest: Path, cross: bool) -> dict:
    """Every tool on one requirement set, interleaved; medians and what the floor is."""
    from uv import find_uv_bin

    newest_py = str(newest / "bin/python")
    machine_label = f"pip {pip_version(machine_python)} (machine)"
    newest_label = f"pip {pip_version(newest_py)} (newest)"
    mlops_cmd = [sys.executable, "-m", "mlops_cli", "wheels", *reqs]
    runners = {
        "mlops wheels": lambda d, c: [*mlops_cmd, "-o", str(d), "--json"],
        machine_label: lambda d, c: [
            machine_python,
            "-m",
            "pip",
            "download",
            *reqs,
            "-d",
            str(d),
            "--no-cache-dir",
            "--index-url",
            INDEX,
        ],
        newest_label: lambda d, c: [
            newest_py,
            "-m",
            "pip",
            "download",
            *reqs,
            "-d",
            str(d),
            "--no-cache-dir",
            "--index-url",
            INDEX,
        ],
        "uv pip compile (resolver only)": lambda d, c: [
            find_uv_bin(),
            "pip",
            "compile",
            "-",
            "--no-config",
            "--no-header",
            "--python",
            sys.executable,
            "--no-python-downloads",
            "--cache-dir",
            str(c),
            "--index-url",
            INDEX,
        ],
        "uv pip compile + pip (newest) download of its pins": lambda d, c: ["compile+download", str(d), str(c)],
    }
    if cross:
        runners["mlops wheels --target ubuntu22.04-aarch64 (cross)"] = lambda d, c: [
            *mlops_cmd,
            "--target",
            "ubuntu22.04-aarch64",
            "-o",
            str(d),
            "--json",
        ]
        runners[f"{newest_label}, cp310 aarch64, 3x --platform (cross)"] = lambda d, c: [
            newest_py,
            "-m",
            "pip",
            "download",
            *reqs,
            "-d",
            str(d),
            "--no-cache-dir",
            "--index-url",
            INDEX,
            "--only-binary=:all:",
            "--python-version",
            "3.10",
            "--platform",
            "manylinux_2_35_aarch64",
            "--platform",
            "manylinux_2_17_aarch64",
            "--platform",
            "manylinux2014_aarch64",
        ]
    warm_label = "mlops wheels, warm cache (second run, new output)"
    times: dict[str, list[float]] = {k: [] for k in [*runners, warm_label]}
    sizes: dict[str, tuple[int, int]] = {}
    last_json = None
    phase_runs: list[dict] = []
    stdin = "\n".join(reqs) + "\n"
    for rnd in range(rounds + 1):  # round 0 warms the index's own caches, not ours
        for name, make in runners.items():
            out, cache = work / f"out-{rnd}-{abs(hash(name))}", work / f"cache-{rnd}-{abs(hash(name))}"
            env = clean_env(MLOPS_CACHE_DIR=str(cache))
            argv = make(out, cache)
            start = time.perf_counter()
            if argv[0] == "compile+download":
                pins = subprocess.run(
                    runners["uv pip compile (resolver only)"](out, cache),
                    input=stdin,
                    env=env,
                    cwd=work,
                    capture_output=True,
                    text=True,
                    timeout=900,
                    check=True,
                ).stdout
                (work / "pins.txt").write_text(pins)
                timed(
                    [
                        newest_py,
                        "-m",
                        "pip",
                        "download",
                        "--no-deps",
                        "-r",
                        str(work / "pins.txt"),
                        "-d",
                        str(out),
                        "--no-cache-dir",
                        "--index-url",
                        INDEX,
                    ],
                    env,
                    work,
                )
                elapsed = time.perf_counter() - start
                sizes[name] = dir_stats(out)
            elif argv[1:3] == ["pip", "compile"]:
                proc = subprocess.run(argv, input=stdin, env=env, cwd=work, capture_output=True, text=True, timeout=900)
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
                    warm, _ = timed([*mlops_cmd, "-o", str(out) + "-warm", "--json"], env, work)
                    if rnd:
                        times[warm_label].append(warm)
                    sizes[warm_label] = dir_stats(Path(str(out) + "-warm"))
            if rnd:
                times[name].append(elapsed)
            print(f"round {rnd} {name}: {elapsed:.2f} s", file=sys.stderr)
            for leftover in (out, Path(str(out) + "-warm"), cache):
                shutil.rmtree(leftover, ignore_errors=True)
    biggest = max(last_json["packages"], key=lambda p: p["size"])
    speed = link_speed(biggest["source_url"])
    med = {k: statistics.median(v) for k, v in times.items() if v}
    resolver = med["uv pip compile (resolver only)"]
    floor = resolver + last_json["total_bytes"] / speed
    return {
        "reqs": reqs,
        "times": times,
        "med": med,
        "sizes": sizes,
        "floor": floor,
        "resolver": resolver,
        "speed": speed,
        "biggest": biggest["filename"],
        "payload": last_json["total_bytes"],
        "phases": phase_runs,
        "machine_label": machine_label,
        "newest_label": newest_label,
    }


def render(m: dict) -> list[str]:
    med, mlops, floor = m["med"], m["med"]["mlops wheels"], m["floor"]
    rows = []
    for k, v in m["times"].items():
        if not v:
            continue
        files, size = m["sizes"].get(k, (None, None))
        shown = f"{files} files, {size / 2**20:.1f} MiB" if files else "pins only"
        rows.append(
            f"| {k} | **{med[k]:.2f}** | {' / '.join(f'{x:.2f}' for x in v)} | {shown} | {med[k] / mlops:.2f}x |"
        )
    newest = med[m["newest_label"]]
    goals = [
        ("<= 1.5x the floor", mlops <= 1.5 * floor, f"{mlops / floor:.2f}x the floor"),
        ("<= 0.5x the newest pip", mlops <= 0.5 * newest, f"{mlops / newest:.2f}x of it"),
        (
            "<= 1/3 of the machine's pip",
            mlops <= med[m["machine_label"]] / 3,
            f"{mlops / med[m['machine_label']]:.2f} of it",
        ),
    ]
    return [
        f"### `{' '.join(m['reqs'])}`",
        "",
        "| command | median s | runs s | result | time / mlops |",
        "| --- | --- | --- | --- | --- |",
        *rows,
        "",
        f"Floor = resolver ({m['resolver']:.2f} s) + payload {m['payload'] / 2**20:.1f} MiB at link speed "
        f"{m['speed'] / 2**20:.0f} MiB/s (best single stream of {m['biggest']}) = **{floor:.2f} s**.",
        "",
        "Where mlops wheels spends its time (medians, s): "
        + ", ".join(f"{k} {statistics.median(r[k] for r in m['phases']):.2f}" for k in m["phases"][0])
        + f"; start-up and exit (process less the phases) {statistics.median(r['process'] - sum(v for k, v in r.items() if k != 'process') for r in m['phases']):.2f}"
        + f". `resolve` is uv inside mlops, beside the page fetches and downloads; uv alone took {m['resolver']:.2f}.",
        "",
        "| goal | met | measured |",
        "| --- | --- | --- |",
        *[f"| {g} | {'yes' if ok else 'NO'} | {txt} |" for g, ok, txt in goals],
        "",
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--set",
        action="append",
        dest="sets",
        help="a requirement set, space-separated (repeatable; default: swanlab==0.5.7, and transformers datasets)",
    )
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--no-cross", action="store_true", help="skip the cp310/aarch64 cross-target rows")
    args = ap.parse_args()
    sets = [s.split() for s in (args.sets or ["swanlab==0.5.7", "transformers datasets"])]
    work = Path(tempfile.mkdtemp(prefix="wheels-bench-"))
    # the machine's own interpreter and pip (not this venv's): the base of the running Python
    machine_python = os.path.realpath(getattr(sys, "_base_executable", "") or shutil.which("python3") or sys.executable)
    newest = work / "newest-pip"
    subprocess.run([machine_python, "-m", "venv", str(newest)], check=True)
    subprocess.run(
        [str(newest / "bin/python"), "-m", "pip", "install", "-q", "-U", "pip", "--index-url", INDEX],
        check=True,
        env=clean_env(),
    )
    # mlops as a pip install leaves it: byte-compiled (an editable checkout under
    # PYTHONDONTWRITEBYTECODE would compile every module on every run, ~0.05 s here)
    import mlops_cli

    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(Path(mlops_cli.__file__).parent)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    load = os.getloadavg()
    results = [
        measure(reqs, args.rounds, work, machine_python, newest, not args.no_cross and i == 0)
        for i, reqs in enumerate(sets)
    ]
    section = "\n".join(
        [
            "## wheels",
            "",
            "`benchmarks/wheels_speed.py`: each requirement set for the host target with cold caches (fresh cache",
            "and output folder per run, `--no-cache-dir` for pip), every tool isolated from pip configuration and",
            f"pointed at `{INDEX}`; one warm-up round, then {args.rounds} rounds, tools interleaved, all in one",
            "run. The warm-cache row is a second mlops run into a new folder with the cache the first one filled.",
            "mlops runs byte-compiled, as a pip install leaves it (the script compiles the package first).",
            "The (cross) rows build for Python 3.10 on aarch64 from this x86_64 host; they are not part of the goals.",
            f"Machine: {platform.node()}, {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"load average at the start {load[0]:.1f}, at the end {os.getloadavg()[0]:.1f} (the machine is shared with other jobs); "
            f"{datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}.",
            "",
            *[line for m in results for line in render(m)],
            "The floor counts the resolver and the transfer back to back; mlops overlaps them: uv starts first",
            "(before the HTTP stack is even imported), each index page is fetched as soon as uv's log names the",
            "project, and each file as soon as uv reads a candidate's metadata or selects it. What remains above",
            "the floor is Python start-up (before uv starts) and uv itself running slower beside mlops' own page",
            "fetches, hashing and downloads on the same two cores and link (compare `resolve` with uv alone).",
            "On a loaded machine every ratio moves by tenths; compare runs of one session only.",
            "",
        ]
    )
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
