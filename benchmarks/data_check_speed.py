"""`mlops data check` speed and memory on generated JSON Lines (ShareGPT records of 0.5-4 KiB).

Usage: python benchmarks/data_check_speed.py [--sizes 64,256,1024,2048] [--dir /tmp] [--pure]
Each size (MiB) is generated, checked in a child process pinned to one core (the reader is
single-threaded), timed (CPU time, which a busy shared machine does not inflate, and wall time) and
measured (peak RSS), then deleted. Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys


def generate(path: str, mib: int) -> int:
    """ShareGPT JSON Lines like real SFT sets: 2-6 turns, English with punctuation (colons, quotes,
    newlines; a colon or an escaped quote costs the duplicate-key check a second look) and one
    record in four in Chinese (multi-byte UTF-8)."""
    rnd = random.Random(7)
    words = [
        "the",
        "of",
        "model",
        "data",
        "train",
        "token",
        "layer",
        "value",
        "gradient",
        "batch",
        "answer",
        "question",
        "loss",
        "Here",
        "are:",
        "1.",
        "note:",
        '"quoted"',
        "step\n2.",
        "https://example.com/a?b=c",
    ]
    zh = ["模型", "数据", "训练", "问题", "回答", "梯度", "批次", "损失", "你好", "请问", "如何", "因为", "所以"]
    target, written, n = mib << 20, 0, 0
    with open(path, "w") as fh:
        while written < target:
            pool = zh if rnd.random() < 0.25 else words
            turns = []
            for i in range(rnd.choice((2, 2, 4, 6))):
                text = " ".join(rnd.choice(pool) for _ in range(rnd.randint(15, 120)))
                turns.append({"from": "human" if i % 2 == 0 else "gpt", "value": text})
            line = json.dumps({"conversations": turns, "system": "You are helpful."}, ensure_ascii=False) + "\n"
            fh.write(line)
            written += len(line.encode())
            n += 1
    return n


def measure(path: str, env: dict) -> tuple[float, float, float, str]:
    """(wall seconds, CPU seconds, peak RSS MiB, parser) of one `run_check` in a child pinned to one core."""
    code = (
        "import os,resource,sys,time; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
        "from mlops_cli.data.check import run_check, CheckOptions; "
        "t=time.perf_counter(); c=time.process_time(); r=run_check(CheckOptions(files=[sys.argv[1]])); "
        "w=time.perf_counter()-t; c=time.process_time()-c; "
        "print(w, c, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, r.records, r.parser)"
    )
    out = subprocess.run([sys.executable, "-c", code, path], env=env, capture_output=True, text=True, check=True)
    wall, cpu, rss_kib, _records, parser = out.stdout.split(maxsplit=4)
    return float(wall), float(cpu), int(rss_kib) / 1024, parser.strip()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="64,256,1024,2048")
    ap.add_argument("--dir", default="/tmp")
    ap.add_argument("--pure", action="store_true", help="also time the pure-Python parser")
    args = ap.parse_args()
    print("| size | records | parser | CPU s | MB/s (CPU) | wall s | MB/s (wall) | peak RSS |")
    print("|---|---|---|---|---|---|---|---|")
    for mib in (int(s) for s in args.sizes.split(",")):
        path = os.path.join(args.dir, f"mlops-bench-{mib}.jsonl")
        try:
            records = generate(path, mib)
            size = os.path.getsize(path)
            envs = [dict(os.environ)]
            if args.pure:
                envs.append(dict(os.environ, MLOPS_DATA_PURE_PYTHON="1"))
            for env in envs:
                wall, cpu, rss, parser = measure(path, env)
                print(
                    f"| {size / 2**20:.0f} MiB | {records} | {parser.split()[0]} | {cpu:.1f} | {size / 1e6 / cpu:.0f} | "
                    f"{wall:.1f} | {size / 1e6 / wall:.0f} | {rss:.0f} MiB |",
                    flush=True,
                )
        finally:
            if os.path.exists(path):
                os.remove(path)


if __name__ == "__main__":
    main()
