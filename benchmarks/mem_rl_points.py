"""Accuracy of `mlops mem estimate` on published preference/RL memory points (rl-points.csv).

Every row is a DPO/ORPO/PPO/GRPO setup from a public source (TRL's GRPO notebook, ms-swift's
example scripts, verl's resource tables, torchtune's PPO config, issues), with the figure it
printed. Numeric rows are compared in their metric (torch reserved, or device memory);
`fit` / `oom` rows say whether the setup ran on the named GPU: the estimate agrees when its
device peak is at most (fit) or above (oom) that GPU's capacity. A setup the estimator refuses
(a flag combination it does not accept) counts as a miss of its kind.

    python benchmarks/mem_rl_points.py [--rows] [--write docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mem_points import FIX, model_for  # noqa: E402
from mlops_cli.errors import UsageError  # noqa: E402
from mlops_cli.mem.estimate import estimate  # noqa: E402
from mlops_cli.mem.spec import GiB, Setup  # noqa: E402

CSV_PATH = FIX / "rl-points.csv"
MARKER = "## mem RL and preference points (rl-points.csv)"
PREFACE = (
    "The same 27 rows after the fixes by class (the BLIND score, on the estimator as merged, is the section above: "
    "numeric 21.0 % / 67 %, fit/OOM 8 of 12). What changed, each from the frameworks' source (docs/mem.md, "
    "'Preference and RL methods'): GRPO honours `--loss fused` (TRL `use_liger_kernel` = Liger's fused GRPO loss); "
    "the `trl` stack upcasts non-quantized QLoRA weights to fp32 only where the trainer calls "
    "`prepare_model_for_kbit_training` (GRPO never, DPO before 1.0.0); PPO takes `--gen-engine` and trains on "
    "prompt + response with a generation phase; an unset `--max-completion-len` counts its default 256 tokens "
    "everywhere; paged optimizer states are left out of `required_bytes` (evictable unified memory). No constant "
    "was fitted to these rows. No regression on the other scorers (same figures before and after, 2026-11-30): "
    "`mem_points.py` dev 8.4 % / 98 %, holdout 8.0 % / 96 %, vLLM kv_gib 3.8 % / 89 % and 1.6 % / 100 %; "
    "`--points oos` 7.1 % / 82 %, vLLM kv_gib 0.7 % / 92 %; `mem_accuracy.py` (shared set) 14.0 % / 81.2 %. "
    "The misses that remain, and what to collect for them, are in docs/mem.md (Accuracy). "
    "Later (oom3): in-trainer generation under ZeRO-3 holds the whole gathered model (TRL "
    "`unwrap_model_for_generation`, which ms-swift's PPO inherits: policy and value model), which moved "
    "swift-ppo-full-llama3.1-8b-zero3 from 46.21 GiB (-28.9 %) to 65.11 GiB (+0.2 %); numeric 6.1 % / 93 % -> "
    "4.5 % / 100 %; no other row moved (docs/benchmarks.md, 'mem oom3')."
)


@dataclass
class Result:
    row: dict[str, str]
    estimate_gib: float | None  # in the row's metric (fit/oom rows: the device peak)
    error: float | None  # % for numeric rows
    agrees: bool | None  # fit/oom rows
    refused: str = ""


def _yes(value: str) -> bool | None:
    return None if not value else value == "yes"


def setup_for(r: dict[str, str]) -> Setup:
    def num(key: str, default: int | None = None) -> int | None:
        return int(r[key]) if r.get(key) else default

    return Setup(
        method=r["method"],
        tuning=r["tuning"] or None,
        stack=r["stack"] or None,
        stack_version=r["stack_version"] or None,
        precision=r["precision"] or None,
        quant=r["quant"] or None,
        batch=int(r["batch"]),
        seq_len=int(r["seq_len"]),
        max_completion_len=num("max_completion_len"),
        num_generations=num("num_generations", 8),
        packing=_yes(r["packing"]),
        grad_ckpt=_yes(r["grad_ckpt"]),
        attn=r["attn"] or None,
        optimizer=r["optimizer"] or None,
        optimizer_in_bwd=_yes(r["optimizer_in_bwd"]),
        lora_rank=num("lora_rank"),
        lora_targets=r["lora_targets"] or None,
        gpus=int(r["gpus"]),
        sharding=r["sharding"] or None,
        offload=r["offload"] or None,
        loss=r["loss"] or None,
        kernels=r["kernels"] or None,
        compile=r["compile"] == "yes",
        ref_model=r["ref_model"] or "auto",
        gen_engine=r["gen_engine"] or "hf",
        reward_model=r.get("reward_model") or "model",
        gen_memory_utilization=float(r["gen_memory_utilization"]) if r["gen_memory_utilization"] else 0.3,
        cuda_context=int(0.5 * GiB),
    )


def score_row(r: dict[str, str]) -> Result:
    model = model_for(r["model"])
    if model is None:
        return Result(r, None, None, None, refused=f"no config for {r['model']}")
    capacity = int(float(r["gpu_total_gib"]) * GiB) if r["gpu_total_gib"] else None
    try:
        est = estimate(model, setup_for(r), capacity=capacity, gpu_name=r["gpu"])
    except UsageError as exc:
        return Result(r, None, None, False if r["metric"] in ("fit", "oom") else None, refused=str(exc))
    # fit/oom rows: what `oom-check` compares with the GPU (required_bytes); numeric rows: their metric
    value = {
        "torch_reserved": est.torch_peak_bytes,
        "torch_allocated": est.allocated_peak_bytes,
        "device": est.device_peak_bytes,
    }.get(r["metric"], est.required_bytes) / GiB
    if r["metric"] in ("fit", "oom"):
        fits = value <= float(r["gpu_total_gib"])
        return Result(r, value, None, fits == (r["metric"] == "fit"))
    measured = float(r["measured_gib"])
    return Result(r, value, (value - measured) / measured * 100, None)


def load() -> list[dict[str, str]]:
    with CSV_PATH.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def score(rows: list[dict[str, str]] | None = None) -> list[Result]:
    return [score_row(r) for r in (rows if rows is not None else load())]


def summary(results: list[Result]) -> dict[str, float]:
    numeric = [x for x in results if x.row["metric"] not in ("fit", "oom")]
    errors = [x.error for x in numeric if x.error is not None]
    fit = [x for x in results if x.row["metric"] in ("fit", "oom")]
    a = [abs(e) for e in errors]
    return {
        "numeric": len(numeric),
        "scored": len(errors),
        "refused": sum(1 for x in results if x.refused),
        "median_abs": statistics.median(a) if a else float("nan"),
        "within25": sum(1 for e in a if e <= 25) / len(numeric) * 100 if numeric else float("nan"),
        "median_signed": statistics.median(errors) if errors else float("nan"),
        "fit_points": len(fit),
        "fit_agree": sum(1 for x in fit if x.agrees),
    }


def render(results: list[Result], title: str = MARKER, preface: str = "") -> str:
    import platform
    from datetime import datetime, timezone

    s = summary(results)
    out = [title, ""]
    out.append(
        f"Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.node() or 'unknown'} "
        f"({platform.machine()}, Python {platform.python_version()}), no GPU: the estimator is arithmetic. "
        "Script: `benchmarks/mem_rl_points.py`; data: `tests/fixtures/mem/rl-points.csv` (27 published "
        "DPO/ORPO(SimPO)/PPO/GRPO setups, each with its source URL, quote, and what was filled in)."
    )
    if preface:
        out += ["", preface]
    out += [
        "",
        f"- numeric points: {s['numeric']} (scored {s['scored']}, refused by the estimator "
        f"{s['numeric'] - s['scored']}); median |error| {s['median_abs']:.1f} %, within ±25 %: "
        f"{s['within25']:.0f} % (a refused row counts as outside), median signed {s['median_signed']:+.1f} %",
        f"- fit/OOM points: {s['fit_points']}, the estimate agrees on {s['fit_agree']}",
        "",
        "| id | metric | measured GiB | estimate GiB | error / verdict |",
        "| --- | --- | --- | --- | --- |",
    ]
    for x in results:
        r = x.row
        est = "refused" if x.refused else f"{x.estimate_gib:.2f}"
        if r["metric"] in ("fit", "oom"):
            verdict = ("agrees" if x.agrees else "WRONG") + (f" ({x.refused})" if x.refused else "")
            meas = f"{r['metric']} on {float(r['gpu_total_gib']):.2f}"
        else:
            verdict = x.refused if x.refused else f"{x.error:+.1f} %"
            meas = r["measured_gib"]
        out.append(f"| {r['id']} | {r['metric']} | {meas} | {est} | {verdict} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", action="store_true", help="print every row")
    ap.add_argument("--write", type=Path, help="replace this section of a markdown file (docs/benchmarks.md)")
    args = ap.parse_args(argv)
    results = score()
    text = render(results, MARKER, PREFACE)
    sys.stdout.write(text if args.rows else "\n".join(text.splitlines()[:6]) + "\n")
    if args.write:
        from mem_accuracy import write_section

        write_section(args.write, text, MARKER)
    return 0


if __name__ == "__main__":
    sys.exit(main())
