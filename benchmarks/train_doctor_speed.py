"""Throughput and memory of `mlops train-doctor` on large logs, by format and size.

Writes realistic logs of several shapes (same line formats as the fixtures in
tests/fixtures/train) at several sizes into a temporary folder, then reads each in a fresh child
process that runs the command's core (`mlops_cli.train.analyse.analyse`) on one core and reports
its CPU time and peak RSS (getrusage). CPU time, not wall time, because the benchmark machine is
shared; one core because train-doctor is single-threaded. Throughput = bytes / CPU seconds.
Peak RSS at each size is the memory growth curve. Also times one full CLI run
(`mlops train-doctor FILE --json`) of the largest mixed log.

Writes the "train-doctor" section of docs/benchmarks.md unless --no-write.

    python benchmarks/train_doctor_speed.py [--sizes 16,64,256] [--rounds 3] [--against REF] [--no-write]

--against REF also reads every log with the code of git REF (a temporary worktree), each log by
both in turn, and adds a side-by-side table with the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"
MiB = 1 << 20


def hf_lines(rng: random.Random):
    """HF Trainer / TRL / LLaMA-Factory: a tqdm redraw per step (\\r), a dict every 10 steps, and the
    per-step warning transformers >= 4.53 prints with gradient checkpointing."""
    total, step = 10**7, 0
    while True:
        step += 1
        pct = step * 100 // total
        yield (
            f"\r{pct:3d}%|{'█' * (pct // 10):10s}| {step}/{total} [{step // 3600:02d}:{step // 60 % 60:02d}<99:00:00,"
            f" {1 + rng.random():.2f}s/it]Caching is incompatible with gradient checkpointing in Qwen2DecoderLayer."
            " Setting `past_key_value=None`.\n"
        )
        if step % 10 == 0:
            yield (
                f"{{'loss': {2.0 / (1 + step / 5e4) + 0.05 * rng.random():.4f}, 'grad_norm': {0.5 + rng.random()!r}, "
                f"'learning_rate': {2e-5 * (1 - step / total)!r}, 'epoch': {step / 30000:.2f}}}\n"
            )


def megatron_lines(rng: random.Random):
    it = 0
    while True:
        it += 1
        yield (
            f"[2026-05-28 22:{it // 60 % 60:02d}:{it % 60:02d}] iteration {it:8d}/ 99999999 | consumed samples: {it * 512:12d} |"
            f" elapsed time per iteration (ms): {27000 + 900 * rng.random():.1f} | learning rate: {6e-5:.6E} |"
            f" global batch size:   512 | lm loss: {2.0 / (1 + it / 5e4) + 0.05 * rng.random():.6E} | loss scale: 1.0 |"
            f" grad norm: {0.7 + rng.random():.3f} | number of skipped iterations:   0 | number of nan iterations:   0 |\n"
        )


def deepspeed_lines(rng: random.Random):
    """HF Trainer under DeepSpeed fp16: bars, DeepSpeed step/timer lines, a few calibration overflows."""
    step, scale = 0, 2**16
    while True:
        step += 1
        yield f"\r  1%|▉         | {step}/99999999 [01:00<99:00:00,  3.52s/it]"
        if step < 8:
            yield (
                f"[2024-01-01 10:00:{step:02d},825] [INFO] [loss_scaler.py:181:update_scale] [deepspeed] OVERFLOW! "
                f"Rank 0 Skipping step. Attempted loss scale: {scale}, reducing to {scale // 2}\n"
            )
            scale //= 2
        if step % 10 == 0:
            yield (
                f"\n[2024-01-01 10:00:00,066] [INFO] [logging.py:96:log_dist] [Rank 0] step={step}, skipped=7, "
                f"lr=[{2e-5!r}], mom=[(0.9, 0.999)]\n[2024-01-01 10:00:00,066] [INFO] [timer.py:260:stop] epoch=0/"
                f"micro_step={step}/global_step={step}, RunningAvgSamplesPerSec={30 + rng.random():.3f}, "
                f"CurrSamplesPerSec={30 + rng.random():.3f}, MemAllocated=13.8GB, MaxMemAllocated=21.6GB\n"
            )
            yield f"{{'loss': {1.5 + 0.1 * rng.random():.4f}, 'learning_rate': {2e-5!r}, 'epoch': {step / 9000:.2f}}}\n"


def lightning_lines(rng: random.Random):
    """Lightning 2.x progress bar: a \\r redraw with the running loss per batch."""
    epoch, batch, total = 0, 0, 50000
    while True:
        batch += 1
        if batch > total:
            epoch, batch = epoch + 1, 1
            yield "\n"
        yield (
            f"\rEpoch {epoch}:  {batch * 100 // total:2d}%|{'█' * (batch * 10 // total):10s}| {batch}/{total} "
            f"[1:02:03<4:05:06,  4.47it/s, v_num=3, train_loss_step={0.5 + rng.random() / 5:.3f}]"
        )


def mixed_lines(rng: random.Random):
    """A long run's log: NCCL_DEBUG=INFO at start, then HF records interleaved with vLLM-style INFO
    lines (RL rollouts) and the occasional warning."""
    for i in range(20000):
        yield f"node-7:1234:1234 [{i % 8}] NCCL INFO Channel {i % 32:02d}/0 : {i % 8}[{i % 8}] -> {(i + 1) % 8}[{(i + 1) % 8}] via P2P/IPC/read\n"
    hf = hf_lines(rng)
    while True:
        yield next(hf)
        if rng.random() < 0.3:
            yield "INFO 11-14 13:37:34 [block_pool.py:321] Successfully reset prefix cache\n"


FORMATS = {
    "hf": hf_lines,
    "megatron": megatron_lines,
    "deepspeed": deepspeed_lines,
    "lightning": lightning_lines,
    "mixed": mixed_lines,
}


def write_log(path: Path, gen, size: int) -> None:
    rng = random.Random(7)
    lines = gen(rng)
    written = 0
    with open(path, "w", encoding="utf-8") as out:
        buf: list[str] = []
        n = 0
        for line in lines:
            buf.append(line)
            n += len(line.encode())
            if n >= MiB:
                out.write("".join(buf))
                written += n
                buf, n = [], 0
                if written >= size:
                    break


CHILD = r"""
import json, resource, sys, time
from mlops_cli.train.analyse import analyse
t0 = time.process_time(); w0 = time.perf_counter()
with open(sys.argv[1], "rb") as fh:
    r = analyse([(sys.argv[1], fh)])
cpu = time.process_time() - t0
print(json.dumps({"cpu": cpu, "wall": time.perf_counter() - w0, "records": r.records, "errors": len(r.errors),
                  "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def measure(path: Path, src: Path = ROOT / "src") -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(src)},
    )
    return json.loads(out.stdout)


def against(ref: str, paths: dict, rounds: int, tmp: str) -> str:
    """This tree and git REF side by side: each log read by both in turn, `rounds` times."""
    tree = Path(tmp) / "against"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(tree), ref], check=True)
    try:
        rev = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        pairs: dict = {}
        for _ in range(rounds):
            for key, p in paths.items():
                new, old = measure(p), measure(p, tree / "src")
                pairs.setdefault(key, []).append(
                    (p.stat().st_size / 1e6 / new["cpu"], p.stat().st_size / 1e6 / old["cpu"])
                )
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
    rows = []
    ratios = []
    for (fmt, size), runs in pairs.items():
        new = statistics.median(r[0] for r in runs)
        old = statistics.median(r[1] for r in runs)
        ratios.append(new / old)
        rows.append(f"| {fmt} | {size} MiB | {old:.0f} MB/s | {new:.0f} MB/s | {new / old:.2f}x |")
    return "\n".join(
        [
            f"Side by side with {ref} ({rev.stdout.strip()}), each log read by both in turn {rounds} times (medians):",
            "",
            f"| format | size | {ref} | this tree | ratio |",
            "| --- | --- | --- | --- | --- |",
            *rows,
            "",
            f"Median ratio {statistics.median(ratios):.2f}x (lowest {min(ratios):.2f}x).",
            "",
        ]
    )


def baseline_rss() -> int:
    code = "import resource, mlops_cli.train.analyse; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    return int(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="16,64,256", help="MiB, comma-separated")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--against", metavar="REF", help="also read every log with git REF's code, side by side")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict[tuple[str, int], list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="train-doctor-bench-") as tmp:
        paths = {}
        for fmt, gen in FORMATS.items():
            for size in sizes:
                p = Path(tmp) / f"{fmt}-{size}.log"
                write_log(p, gen, size * MiB)
                paths[(fmt, size)] = p
        for _ in range(args.rounds):  # interleaved, so machine noise hits all alike
            for key, p in paths.items():
                results.setdefault(key, []).append(measure(p))
        side = against(args.against, paths, args.rounds, tmp) if args.against else ""
        big = paths[("mixed", sizes[-1])]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        cli = subprocess.run(
            [sys.executable, "-m", "mlops_cli", "train-doctor", str(big), "--json"],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        )
        cli_wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cli_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        sizes_on_disk = {k: p.stat().st_size for k, p in paths.items()}
    base = baseline_rss()

    def mbps(key) -> float:
        return statistics.median(sizes_on_disk[key] / 1e6 / r["cpu"] for r in results[key])

    def rss(key) -> float:
        return max(r["maxrss_kib"] for r in results[key]) / 1024

    head = "| format | " + " | ".join(f"{s} MiB" for s in sizes) + " |"
    sep = "| --- |" + " --- |" * len(sizes)
    speed_rows = [f"| {fmt} | " + " | ".join(f"{mbps((fmt, s)):.0f} MB/s" for s in sizes) + " |" for fmt in FORMATS]
    rss_rows = [f"| {fmt} | " + " | ".join(f"{rss((fmt, s)):.0f} MiB" for s in sizes) + " |" for fmt in FORMATS]
    records = {fmt: results[(fmt, sizes[-1])][0]["records"] for fmt in FORMATS}
    all_speeds = [mbps(k) for k in results]
    section = "\n".join(
        [
            "## train-doctor",
            "",
            f"`python benchmarks/train_doctor_speed.py --sizes {args.sizes} --rounds {args.rounds}"
            + (f" --against {args.against}" if args.against else "")
            + "`. Machine: "
            f"{platform.node()}, {platform.machine()}, {os.cpu_count()} CPUs (shared), Python {platform.python_version()}; "
            f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. Each log is read in a fresh child process on one core; "
            "throughput = bytes / CPU seconds of that process (median of the rounds), memory = its peak RSS "
            f"(max of the rounds; the interpreter with the modules imported is {base / 1024:.0f} MiB).",
            "",
            "Throughput:",
            "",
            head,
            sep,
            *speed_rows,
            "",
            "Peak RSS (the growth curve: flat in the size of the log):",
            "",
            head,
            sep,
            *rss_rows,
            "",
            f"Median of all cases: {statistics.median(all_speeds):.0f} MB/s, slowest {min(all_speeds):.0f} MB/s "
            f"(goal: >= 100 MB/s on one core). Records read in the {sizes[-1]} MiB logs: "
            + ", ".join(f"{k} {v}" for k, v in records.items())
            + ". The first MiB is read record by record; after that, 4 MiB blocks with many step records and "
            "nothing unusual in them are sampled (docs/train-doctor.md, Limits), which is why throughput rises with size.",
            f"One CLI run, `mlops train-doctor mixed-{sizes[-1]}.log --json` (start-up, imports, report): "
            f"{cli_wall:.1f} s wall, {cli_cpu:.1f} s CPU, exit {cli.returncode} "
            f"({sizes_on_disk[('mixed', sizes[-1])] / 1e6 / cli_cpu:.0f} MB/s of CPU, start-up included).",
            "",
            side,
        ]
    )
    print(section)
    if not args.no_write:
        text = DOCS.read_text()
        if "## train-doctor" in text:
            text = re.sub(r"## train-doctor\n.*?(?=\n## |\Z)", section.rstrip("\n") + "\n", text, flags=re.S)
        else:
            text = text.rstrip("\n") + "\n\n" + section
        DOCS.write_text(text)


if __name__ == "__main__":
    main()
