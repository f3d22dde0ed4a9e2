#!/usr/bin/env python3
"""`mlops images match` on N references against N model outputs: time, and how it grows with N.

The image set is made once for the largest N (smaller N take its first references, hard-linked)
under --workdir (default /tmp/mlops-images-bench) with the test suite's generator (tests/images/synth.py): photo-like 1024x768 JPEGs (gradient, shapes, noise)
and, per reference, one output under a shuffled name, made by one of four effects in turn
(blur + JPEG recompression, colour shift, resize to 75 %, blur + resize to 16:9). Each run is the
real command line (`python -m mlops_cli images match REF OUT -o DIR --json`) in a child process
pinned to --cpus; the JSON gives the phases (decode, match, stitch) and the pairs, which are
checked against the truth. Writes/replaces the "images" section of docs/benchmarks.md.

    python benchmarks/images_match_speed.py [--n 250,500,1000,2000] [--rounds 3] [--cpus 0,1] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.images import synth  # noqa: E402

EFFECTS = (
    ("blur + JPEG q25", lambda p: synth.recompress(synth.blur(p, 2.0), 25)),
    ("colour shift", lambda p: synth.colour_shift(p)),
    ("resize 75 %", lambda p: synth.resize(p, 0.75)),
    ("blur + 16:9", lambda p: synth.resize(synth.blur(p, 1.0), 0.6, aspect=4 / 3)),
)


def make_set(workdir: Path, n: int, width: int, height: int) -> tuple[Path, Path, dict[str, str]]:
    """refs/ and outs/ with n images each (made once, then reused), and the truth."""
    base = workdir / f"set-{n}-{width}x{height}"
    truth_file = base / "truth.json"
    if truth_file.exists():
        return base / "refs", base / "outs", json.loads(truth_file.read_text())
    shutil.rmtree(base, ignore_errors=True)
    names = synth.shuffled_names(n, 7, "out")
    truth = {}
    for i in range(n):
        pic = synth.picture(100_000 + i, width, height)
        ref = f"img_{i:05d}.jpg"
        synth.save(pic, base / "refs" / ref, quality=90)
        synth.save(EFFECTS[i % len(EFFECTS)][1](pic), base / "outs" / names[i], quality=90)
        truth[ref] = names[i]
    truth_file.write_text(json.dumps(truth))
    return base / "refs", base / "outs", truth


def subset(
    workdir: Path, full: tuple[Path, Path, dict[str, str]], n: int, tag: str
) -> tuple[Path, Path, dict[str, str]]:
    """The first n references of the full set and their outputs, as hard links (made in no time)."""
    refs, outs, truth = full
    if n >= len(truth):
        return full
    base = workdir / f"subset-{n}-{tag}"
    shutil.rmtree(base, ignore_errors=True)
    (base / "refs").mkdir(parents=True)
    (base / "outs").mkdir()
    part = {ref: truth[ref] for ref in sorted(truth)[:n]}
    for ref, out in part.items():
        os.link(refs / ref, base / "refs" / ref)
        os.link(outs / out, base / "outs" / out)
    return base / "refs", base / "outs", part


def run_once(refs: Path, outs: Path, out: Path, metric: str) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlops_cli",
            "images",
            "match",
            str(refs),
            str(outs),
            "-o",
            str(out),
            "--metric",
            metric,
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"mlops images match failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    doc = json.loads(proc.stdout)
    return {"wall": wall, **doc["timings_s"], "doc": doc}


def accuracy(doc: dict, truth: dict[str, str]) -> tuple[int, int]:
    right = sum(1 for s in doc["strips"] if s["matches"][0]["file"] == truth[s["reference"]])
    return right, len(doc["strips"])


def skimage_pair_ms() -> float | None:
    """scikit-image's SSIM of one 64x64 pair (the per-pair way this command does not take)."""
    try:
        import numpy as np
        from skimage.metrics import structural_similarity
    except ImportError:
        return None
    rng = np.random.default_rng(0)
    a, b = rng.random((64, 64)), rng.random((64, 64))
    start = time.perf_counter()
    for _ in range(300):
        structural_similarity(a, b, data_range=1.0)
    return (time.perf_counter() - start) / 300 * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", default="250,500,1000,2000")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cpus", default="0,1", help="CPUs the command may use (the target is 2 cores)")
    ap.add_argument("--size", default="1024x768", help="width x height of the generated pictures")
    ap.add_argument("--metrics", default="ssim,phash", help="other metrics, timed once at the largest N")
    ap.add_argument("--workdir", default="/tmp/mlops-images-bench")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    ns = [int(x) for x in args.n.split(",")]
    width, height = (int(x) for x in args.size.split("x"))
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    cpus = {int(c) for c in args.cpus.split(",")}
    os.sched_setaffinity(0, cpus)  # children inherit it

    t0 = time.perf_counter()
    full = make_set(workdir, max(ns), width, height)
    print(f"image set of {max(ns)} + {max(ns)} ready in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    load_before = os.getloadavg()
    rows = []
    for n in ns:
        refs, outs, truth = subset(workdir, full, n, f"{width}x{height}")
        runs = [run_once(refs, outs, workdir / "out", "mse") for _ in range(args.rounds)]
        right, total = accuracy(runs[-1]["doc"], truth)
        med = {k: statistics.median(r[k] for r in runs) for k in ("wall", "decode", "match", "stitch")}
        rows.append(
            {
                "n": n,
                **med,
                "runs": [r["wall"] for r in runs],
                "right": right,
                "total": total,
                "greedy": runs[-1]["doc"]["folders"][0]["greedy_disagreements"],
            }
        )
        print(f"N={n}: {med}", file=sys.stderr)
    extra = []
    refs, outs, truth = full
    for metric in [m for m in args.metrics.split(",") if m]:
        r = run_once(refs, outs, workdir / "out", metric)
        right, total = accuracy(r["doc"], truth)
        extra.append(
            {
                "metric": metric,
                "n": ns[-1],
                **{k: r[k] for k in ("wall", "decode", "match", "stitch")},
                "right": right,
                "total": total,
                "greedy": r["doc"]["folders"][0]["greedy_disagreements"],
            }
        )
    shutil.rmtree(workdir / "out", ignore_errors=True)
    load = (load_before[1], os.getloadavg()[1])
    section = render(rows, extra, args, width, height, sorted(cpus), skimage_pair_ms(), load)
    print(section)
    if not args.no_write:
        write_section(section)


def growth(rows: list[dict], key: str) -> str:
    if len(rows) < 2 or rows[-2][key] <= 0 or rows[-1][key] <= 0:
        return "n/a"
    return f"{math.log(rows[-1][key] / rows[-2][key]) / math.log(rows[-1]['n'] / rows[-2]['n']):.2f}"


def render(rows, extra, args, width, height, cpus, ssim_ms, load) -> str:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "## images",
        "",
        f"`benchmarks/images_match_speed.py --n {args.n} --rounds {args.rounds} --cpus {args.cpus}`: N reference "
        f"JPEGs ({width}x{height}, photo-like: gradient, shapes, noise) against N outputs under shuffled names "
        "(blur + JPEG q25, colour shift, resize 75 %, blur + 16:9 in turn), `--metric mse`, default strips; "
        f"the real command line in a child process pinned to CPUs {cpus}. Medians of {args.rounds} runs; the "
        "phases come from the command's `timings_s`. Machine: "
        f"{platform.node() or 'vm'}, {platform.machine()}, {os.cpu_count()} CPUs (using {len(cpus)}), "
        f"Python {platform.python_version()}; {now}. Load average (5 min) {load[0]:.1f} before and "
        f"{load[1]:.1f} after: other jobs share these CPUs, so single phases vary between runs.",
        "",
        "| N x N | wall s | decode s | match s | decode + match s | stitch s | right pairs | greedy would differ |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']} x {r['n']} | {r['wall']:.1f} | {r['decode']:.1f} | {r['match']:.2f} | "
            f"**{r['decode'] + r['match']:.1f}** | {r['stitch']:.1f} | {r['right']}/{r['total']} | "
            f"{r['greedy']} |"
        )
    lines += [
        "",
        f"Growth from N={rows[-2]['n'] if len(rows) > 1 else '-'} to N={rows[-1]['n']} (exponent of N): "
        f"decode {growth(rows, 'decode')}, match {growth(rows, 'match')}, stitch {growth(rows, 'stitch')}, "
        f"wall {growth(rows, 'wall')}.",
    ]
    if extra:
        lines += [
            "",
            "Other metrics, once, at the largest N:",
            "",
            "| metric | wall s | decode s | match s | stitch s | right pairs | greedy would differ |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for e in extra:
            lines.append(
                f"| {e['metric']} | {e['wall']:.1f} | {e['decode']:.1f} | {e['match']:.2f} | "
                f"{e['stitch']:.1f} | {e['right']}/{e['total']} | {e['greedy']} |"
            )
    if ssim_ms is not None:
        n = rows[-1]["n"]
        lines += [
            "",
            f"scikit-image's `structural_similarity` takes {ssim_ms:.2f} ms for one 64x64 pair here, so "
            f"{n} x {n} pairs one by one would take ~{ssim_ms * n * n / 1000 / 60:.0f} min; the command's "
            "block SSIM is a few matrix products per window instead (the `match` column).",
        ]
    return "\n".join(lines) + "\n"


def write_section(section: str) -> None:
    path = REPO / "docs" / "benchmarks.md"
    text = path.read_text()
    pattern = re.compile(r"^## images\n.*?(?=^## |\Z)", re.S | re.M)
    text = (
        pattern.sub(section.replace("\\", "\\\\") + "\n", text)
        if pattern.search(text)
        else (text.rstrip("\n") + "\n\n" + section)
    )
    path.write_text(text)
    print(f"wrote the images section of {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
