"""Accuracy of `mlops mem estimate` against measured peaks (memory-datapoints.csv).

Compares like with like: each source's metric (torch max_memory_reserved, max allocated,
nvidia-smi used memory including the CUDA context) decides which terms are counted.
The same table is computed with `accelerate estimate-memory`'s documented method
(fp32 meta-model size, "Training using Adam" = max over stages, batch 1, no activations).

    python benchmarks/mem_accuracy.py [--csv PATH] [--write docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import csv
import math
import platform
import re
import statistics
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from mlops_cli.mem.estimate import estimate
from mlops_cli.mem.presets import find_preset, load_preset
from mlops_cli.mem.setup import GiB, Setup

REPO = Path(__file__).resolve().parent.parent
CSV = REPO.parent / "shared" / "research" / "memory-datapoints.csv"
MiB = 1024**2


@dataclass
class Point:
    row: int
    label: str
    measured: float | None  # GiB
    oom_over: float | None  # "OOM>80": did not fit in this many GiB
    setup: Setup | None
    model: str
    metric: str  # reserved | allocated | nvml
    group: str  # headline | informational | skipped
    why: str = ""


def parse_row(i: int, r: dict[str, str]) -> Point:
    notes = r["notes"]
    model = find_preset(r["model"]) or r["model"]
    label = (
        f"{r['model'].split('/')[-1]} {r['method']} {r['precision'].split(' ')[0]} b{r['batch']} s{r['seq_len'].split(' ')[0]}"
        f" gc={r['grad_ckpt']} fa={r['flash_attn'].split(' ')[0]} {r['optimizer'].split(' ')[0]} x{r['gpus']} {r['zero'].split(' ')[0]}"
    )
    measured, oom = None, None
    m = re.match(r"OOM>(\d+)", r["measured_gib"])
    if m:
        oom = float(m.group(1))
    else:
        measured = float(r["measured_gib"])
    skip = None
    if "galore" in r["method"] or "galore" in r["optimizer"]:
        skip = "GaLore projection optimizer is not modelled"
    if "device_map" in notes:
        skip = "naive model parallel (device_map split across GPUs) is not modelled"
    if find_preset(r["model"]) is None:
        skip = "no preset for this model"
    metric = "reserved"
    if "nvidia-smi" in notes or "NVML" in notes:
        metric = "nvml"
    elif "PEFT README" in notes:
        metric = "allocated"
    if skip:
        return Point(i, label, measured, oom, None, model, metric, "skipped", skip)
    method = r["method"]
    prec = r["precision"]
    quant = None
    if method == "qlora":
        quant = "int4" if "int4" in prec else "int8" if "int8" in prec else "nf4"
        precision = "bf16"
    else:
        precision = {"fp16-amp": "amp-fp16", "bf16": "bf16", "fp32": "fp32"}[prec]
    seq = r["seq_len"]
    seq_len = 64 if seq.startswith("short") else int(seq)
    fa = r["flash_attn"]
    attn = "flash" if fa == "yes" else "sdpa" if fa.startswith("sdpa") else "eager"
    opt = r["optimizer"]
    optimizer = "adamw-8bit" if "8bit" in opt else "adafactor" if "adafactor" in opt else "adamw"
    zero_text = r["zero"]
    sharding = (
        "fsdp"
        if "fsdp" in zero_text
        else "zero3"
        if "zero3" in zero_text
        else "zero2"
        if "zero2" in zero_text
        else None
    )
    offload = "params" if "offload" in zero_text else None
    context = 1343 * MiB if metric == "nvml" else 0
    fused_ce = "liger" in notes.lower() and "use_liger_kernel" in notes
    # ZeRO-3 buffers as each source configured them. PEFT README rows: accelerate's DeepSpeed plugin
    # config (examples/conditional_generation, accelerate_ds_zero3_cpu_offload_config.yaml) sets no
    # bucket sizes, so DeepSpeed's defaults hold (reduce_bucket_size 5e8, max_live_parameters 1e9).
    # ms-swift rows: swift/llm/ds_config/zero3.json, reduce_bucket_size "auto" (= hidden²),
    # stage3_max_live_parameters 1e9 (the Setup defaults). FSDP has no live-parameter pool.
    zero_bucket = 500_000_000 if metric == "allocated" else 0
    live = 0 if "fsdp" in zero_text else Setup().zero3_live_params
    setup = Setup(
        method=method,
        precision=precision,
        batch=int(r["batch"]),
        seq_len=seq_len,
        grad_ckpt=r["grad_ckpt"] == "yes",
        attn=attn,
        optimizer=optimizer,
        quant=quant,
        lora_targets="attention"
        if ("c_attn" in notes and "all-linear" not in notes and "all-linear" not in label)
        else "all-linear",
        gpus=int(r["gpus"]),
        sharding=sharding,
        offload=offload,
        # every harness here predates transformers 4.46 (torch 2.1 / transformers 4.3x): the
        # model returned fp32 logits and the loss made a shifted fp32 copy
        loss="fused" if fused_ce else "full-legacy",
        cuda_context=context,
        zero_bucket=zero_bucket,
        zero3_live_params=live,
        stack="ms-swift" if "ms-swift" in notes else "hf" if "PEFT README" in notes else None,
    )
    group, why = "headline", ""
    if "effective seq" in notes or "padding_free" in notes:
        group, why = "informational", "samples shorter than max_length / padded per batch: true token count unknown"
    elif measured is not None and measured >= 79.9:
        group, why = "informational", "reported at the 80 GiB capacity: a bound, not a peak"
    elif oom is not None:
        group, why = "classification", f"OOM on {oom:.0f} GiB"
    return Point(i, label, measured, oom, setup, model, metric, group, why)


def accelerate_method(model_key: str, setup: Setup) -> float:
    """accelerate estimate-memory: fp32 meta size P·4; per dtype ÷2 (16-bit); training = max of stages."""
    P = load_preset(model_key).total_params
    fp32 = 4 * P
    if setup.precision == "fp32":
        stages = {"model": fp32, "gradients": fp32, "optimizer": 2 * fp32, "step": 2 * fp32}
    else:
        # fp16/bf16: fp32 master model 4P, gradients 4P + 2P ("weight gradient + computation"),
        # Adam 8P, step = optimizer; printed value = max of the stages = 8P.
        stages = {"model": 4 * P, "gradients": 6 * P, "optimizer": 8 * P, "step": 8 * P}
    if setup.method == "qlora":
        return float("nan")
    return max(stages.values()) / GiB


def our_estimate(p: Point) -> float:
    """The figure in the source's own metric: reserved, allocated, or the device (nvidia-smi)."""
    est = estimate(load_preset(p.model), p.setup)
    total = {"reserved": est.torch_peak_bytes, "allocated": est.allocated_peak_bytes, "nvml": est.device_peak_bytes}[
        p.metric
    ]
    return total / GiB


def summarize(errors: list[float]) -> dict[str, float]:
    abs_err = [abs(e) for e in errors]
    return {
        "n": len(errors),
        "median_abs": statistics.median(abs_err) if errors else float("nan"),
        "within_25": sum(1 for e in abs_err if e <= 25) / len(errors) * 100 if errors else float("nan"),
        "within_15": sum(1 for e in abs_err if e <= 15) / len(errors) * 100 if errors else float("nan"),
        "median_signed": statistics.median(errors) if errors else float("nan"),
        "p10": sorted(errors)[int(0.1 * (len(errors) - 1))] if errors else float("nan"),
        "p90": sorted(errors)[int(0.9 * (len(errors) - 1))] if errors else float("nan"),
    }


def histogram(errors: list[float]) -> str:
    edges = [-50, -25, -15, -5, 5, 15, 25, 50]
    labels = ["< -50 %"] + [f"{a:+d}..{b:+d} %" for a, b in zip(edges, edges[1:])] + ["> +50 %"]
    counts = [0] * (len(edges) + 1)
    for e in errors:
        counts[sum(1 for edge in edges if e >= edge)] += 1
    return ", ".join(f"{label}: {n}" for label, n in zip(labels, counts))


def run(csv_path: Path) -> tuple[list[tuple[Point, float | None, float | None]], str]:
    rows = list(csv.DictReader(csv_path.open(encoding="utf-8")))
    points = [parse_row(i + 2, r) for i, r in enumerate(rows)]
    _NOTES.update({i + 2: r["notes"] for i, r in enumerate(rows)})
    results = []
    for p in points:
        if p.setup is None:
            results.append((p, None, None))
            continue
        results.append((p, our_estimate(p), accelerate_method(p.model, p.setup)))
    return results, render(results, csv_path)


def _err(est: float | None, measured: float | None) -> float | None:
    if est is None or measured is None or est != est:
        return None
    return (est - measured) / measured * 100


KERNEL_UNCERTAIN = "actual kernel depends on model code support"


def _miss_group(p: Point) -> str:
    notes = _notes_of(p)
    if KERNEL_UNCERTAIN in notes:
        return "kernel-uncertain ms-swift rows"
    if p.setup.method == "qlora":
        return "2023 QLoRA stacks"
    if p.setup.offload == "params":
        return "ZeRO-3 with parameter offload"
    if "1_8B" in p.label:
        return "Qwen-1.8B"
    return "other"


def _residuals_text(results) -> str:
    """Where the misses are, and a sensitivity run (not the headline) for kernel-uncertain rows."""
    headline = [(p, ours) for p, ours, _ in results if p.group == "headline"]
    errs, alt, misses = [], [], {}
    for p, ours in headline:
        errs.append(_err(ours, p.measured))
        if abs(errs[-1]) > 25:
            misses.setdefault(_miss_group(p), []).append(f"{p.row} ({errs[-1]:+.0f} %)")
        if KERNEL_UNCERTAIN in _notes_of(p) and p.setup.attn == "flash":
            from dataclasses import replace

            q = replace(p, setup=p.setup.with_changes(attn="eager"))
            alt.append(_err(our_estimate(q), p.measured))
        else:
            alt.append(errs[-1])
    s1, s2 = summarize(errs), summarize(alt)
    listed = "; ".join(f"{group}: rows {', '.join(rows)}" for group, rows in misses.items())
    return (
        f"Headline misses beyond ±25 % ({sum(len(v) for v in misses.values())} of {len(errs)}): {listed}. "
        'What is known about them (details and sources in docs/mem.md, "Accuracy and limits"): '
        '(1) for the rows marked "actual kernel depends on model code", the model code was read — ChatGLM3 '
        "calls SDPA with is_causal, Baichuan2 runs xformers / SDPA with its ALiBi bias as the mask (xformers is in "
        "that environment), ms-swift 1.x requests FlashAttention-2 for Yi and OpenBuddy-Zephyr through "
        "config._flash_attn_2_enabled (Yi's remote code of that time not verified) — so the kernels are fused; the headline keeps the requested kernel and counts the one documented seq² tensor, Baichuan-13B's "
        "materialised ALiBi bias; the remaining 4K-8K jumps are not explained by a score matrix; "
        "(2) the 2023 bitsandbytes/GPTQ QLoRA stacks carry the same gap as the bf16 LoRA run of the same model plus "
        "an unexplained ≈0.2-0.3 B/param for NF4; "
        "(3) ZeRO-3 with parameter offload now counts DeepSpeed's live-parameter pool "
        "(stage3_max_live_parameters) and contiguous gradient bucket (reduce_bucket_size 5e8 in the PEFT "
        "accelerate config); "
        "(4) Qwen-1.8B: non-monotonic reserved peaks (allocator fragmentation with unpacked variable-length "
        "batches), not modelled; "
        "(5) other: Qwen-7B LoRA at micro-batch 2 and 4 grows by 10-15 GiB per extra 2K-token sample, 2-3x what "
        "activations plus logits account for, and the longer-sample (ms-agent) and packing+DDP rows run above the "
        "estimate too — not explained.\n\n"
        f"Sensitivity (not the headline): evaluating the kernel-uncertain rows with `--attn eager` gives "
        f"median |error| {s2['median_abs']:.1f} % and {s2['within_25']:.0f} % within ±25 % "
        f"(headline, with the requested fused kernel: {s1['median_abs']:.1f} % and {s1['within_25']:.0f} %); "
        "the model code does not support that reading.\n"
    )


def _notes_of(p: Point) -> str:
    return _NOTES.get(p.row, "")


_NOTES: dict[int, str] = {}


def render(results, csv_path: Path) -> str:
    lines = []
    out = lines.append
    out("## mem (`mlops mem estimate` accuracy)")
    out("")
    out(
        f"Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.node() or 'unknown'} "
        f"({platform.machine()}, Python {platform.python_version()}), no GPU: the estimator is pure arithmetic. "
        f"Script: `benchmarks/mem_accuracy.py`; data: `{csv_path.name}` (shared research). "
        "Real-peak measurements on a GPU grid (torch.cuda.max_memory_reserved on random-weight models) were "
        "NOT done: no GPU was available to this work."
    )
    out("")
    out(
        "Like with like: ms-swift rows report `torch.cuda.max_memory_reserved` (CUDA context excluded, "
        "allocator reserve included); the HF bert rows report nvidia-smi used memory (context of 1343 MiB, "
        "as measured in that source, included); the PEFT README rows report peak allocated memory "
        "(context and allocator reserve excluded). `accelerate` = its documented method "
        '(fp32 meta-model size; "Training using Adam" = max over stages, batch 1, no activations; '
        "N/A for quantized bases), reimplemented here since the hub cannot be reached."
    )
    out("")
    out(_residuals_text(results))
    groups = {}
    for p, ours, acc in results:
        groups.setdefault(p.group, []).append((p, ours, acc))
    for group, title in (
        ("headline", "Headline points"),
        ("informational", "Informational points"),
        ("classification", "Fit/OOM points"),
        ("skipped", "Skipped points"),
    ):
        items = groups.get(group, [])
        if not items:
            continue
        out(f"### {title} ({len(items)})")
        out("")
        if group == "skipped":
            for p, _, _ in items:
                out(f"- row {p.row}: {p.label}: {p.why}")
            out("")
            continue
        out("| row | setup | metric | measured GiB | mlops GiB | err % | accelerate GiB | err % | note |")
        out("|---|---|---|---|---|---|---|---|---|")
        for p, ours, acc in items:
            meas = f"{p.measured:.2f}" if p.measured is not None else f"OOM>{p.oom_over:.0f}"
            e1, e2 = _err(ours, p.measured), _err(acc, p.measured)
            if p.oom_over is not None:
                e1s = "correct" if ours > p.oom_over else "WRONG"
                e2s = "correct" if acc == acc and acc > p.oom_over else "WRONG"
            else:
                e1s = f"{e1:+.1f}" if e1 is not None else "n/a"
                e2s = f"{e2:+.1f}" if e2 is not None else "n/a"
            accs = f"{acc:.2f}" if acc == acc else "N/A"
            out(f"| {p.row} | {p.label} | {p.metric} | {meas} | {ours:.2f} | {e1s} | {accs} | {e2s} | {p.why} |")
        out("")
        if group in ("headline", "informational"):
            if group == "headline":
                errs = [e for e in (_err(item[1], item[0].measured) for item in items) if e is not None]
                s = summarize(errs)
                met1 = "met" if s["median_abs"] <= 15 else "NOT met"
                met2 = "met" if s["within_25"] >= 80 else "NOT met"
                inside = sum(1 for e in errs if abs(e) <= 25)
                spare = inside - math.ceil(0.8 * len(errs))
                margin = (
                    "no margin: one more miss fails it"
                    if spare == 0
                    else f"margin {spare} point(s)"
                    if spare > 0
                    else f"short by {-spare} point(s)"
                )
                out(
                    f"**Bar** (spec): median |error| ≤ 15 %: {met1} ({s['median_abs']:.1f} %); "
                    f"≥ 80 % of points within ±25 %: {met2} ({s['within_25']:.1f} %, {inside} of {len(errs)}; "
                    f"{margin})."
                )
                out("")
                out("Error distribution of mlops (signed, estimate vs measured): " + histogram(errs))
                out("")
            for name, idx in (("mlops", 1), ("accelerate", 2)):
                errs = [e for e in (_err(item[idx], item[0].measured) for item in items) if e is not None]
                s = summarize(errs)
                out(
                    f"- {name}: n={s['n']}, median |error| {s['median_abs']:.1f} %, within ±25 %: "
                    f"{s['within_25']:.0f} %, within ±15 %: {s['within_15']:.0f} %, median signed error "
                    f"{s['median_signed']:+.1f} %, 10th/90th percentile {s['p10']:+.1f} / {s['p90']:+.1f} %"
                )
            out("")
    return "\n".join(lines) + "\n"


def write_section(doc: Path, section: str, marker: str = "## mem (`mlops mem estimate` accuracy)") -> None:
    """Replace the section starting with `marker` (up to the next '## ') or append it."""
    text = doc.read_text(encoding="utf-8") if doc.exists() else "# Benchmarks\n"
    start = text.find(marker)
    if start >= 0:
        end = text.find("\n## ", start + 1)
        text = text[:start] + section + (text[end + 1 :] if end >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    from mlops_cli.files import write_atomic

    write_atomic(doc, text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", type=Path, default=CSV)
    ap.add_argument("--write", type=Path, help="replace the 'mem' section of this markdown file")
    args = ap.parse_args(argv)
    _, section = run(args.csv)
    sys.stdout.write(section)
    if args.write:
        write_section(args.write, section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
