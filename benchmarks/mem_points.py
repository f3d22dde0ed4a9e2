"""Accuracy of `mlops mem estimate` on the collected public points (tests/fixtures/mem/).

Training peaks (training-points.csv) are compared in the metric each source printed
(torch reserved / allocated / active, or the device figure); vLLM start-up logs
(vllm-points.csv) on the KV cache the log printed. Rows carry a fixed dev/holdout split;
both are reported, per stack, so a constant chosen on dev can be judged on holdout.

    python benchmarks/mem_points.py [--rows] [--write docs/benchmarks.md]
    python benchmarks/mem_points.py --points oos [--rows] [--write docs/benchmarks.md]

`--points oos` scores the out-of-sample files (oos-training-points.csv, oos-vllm-points.csv): points
collected from sources the estimator's constants never saw, to judge it honestly.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from pathlib import Path

from mlops_cli.mem.config import ModelConfig, config_from_dict
from mlops_cli.mem.phases import training_peak
from mlops_cli.mem.presets import find_preset, load_preset
from mlops_cli.mem.spec import GiB, Setup
from mlops_cli.mem.stacks import resolve

REPO = Path(__file__).resolve().parent.parent
FIX = REPO / "tests" / "fixtures" / "mem"


def model_for(name: str) -> ModelConfig | None:
    key = find_preset(name)
    if key:
        return load_preset(key)
    path = FIX / "configs" / (name.replace("/", "--") + ".json")
    if path.is_file():
        return config_from_dict(json.loads(path.read_text(encoding="utf-8")), name, source=str(path))
    for entry in json.loads((FIX / "param-totals.json").read_text(encoding="utf-8"))["models"]:
        if entry["name"].lower() == name.lower():
            return config_from_dict(entry["config"], entry["name"], source=entry["source"])
    return None


def _flag(value: str | None) -> bool | None:
    """Optional yes/no column: '' -> None (the stack decides)."""
    if not value:
        return None
    return value == "yes"


def setup_for(r: dict[str, str]) -> Setup:
    opt = r["optimizer"] or "adamw"
    in_bwd = opt.endswith("-in-bwd")
    opt = opt.replace("-in-bwd", "").replace("-fused-cpu", "")
    prec = {"amp-bf16-weights-bf16": "bf16"}.get(r["precision"], r["precision"] or "bf16")
    loss = {"hf-full-fp32": "full"}.get(r["loss"], r["loss"] or None)
    targets = r["lora_targets"] or None
    return Setup(
        method=r["method"],
        stack=r["stack"] or None,
        precision=prec,
        batch=int(r["batch"]),
        seq_len=int(r["seq_len"]),
        grad_ckpt=r["grad_ckpt"] in ("yes", "selective-op"),
        ac_mode="selective" if r["grad_ckpt"] == "selective-op" else None,
        attn=r["attn"] or None,
        optimizer=opt,
        optimizer_in_bwd=in_bwd or None,
        lora_rank=int(r["lora_rank"]) if r["lora_rank"] else None,
        lora_targets=targets,
        quant=r["quant"] or None,
        loss=loss,
        gpus=int(r["gpus"]),
        sharding=r["sharding"] or None,
        offload=r["offload"] or None,
        lora_dropout=_flag(r.get("lora_dropout"))
        if r.get("lora_dropout")
        else (True if r["stack"] in ("hf",) and r["method"] != "full" else None),
        lora_dtype=r.get("lora_dtype") or None,
        grad_accum=int(r.get("grad_accum") or 1),
        compile=r["compile"] == "yes",
        packing=r["packing"] not in ("", "no"),
        cuda_context=int(0.5 * GiB),
    )


def estimate_row(r: dict[str, str]) -> float | None:
    model = model_for(r["model"])
    if model is None:
        return None
    s, _ = resolve(setup_for(r))
    peak = training_peak(model, s.validated())
    value = {
        "torch_reserved": peak.reserved,
        "torch_allocated": peak.allocated,
        "torch_active": peak.allocated,
        "device": peak.device,
    }[r["metric"]]
    return value / GiB


def summarize(errors: list[float]) -> str:
    if not errors:
        return "n=0"
    a = [abs(e) for e in errors]
    return (
        f"n={len(errors)}, median |err| {statistics.median(a):.1f} %, within ±25 %: "
        f"{sum(1 for e in a if e <= 25) / len(a) * 100:.0f} %, median signed {statistics.median(errors):+.1f} %"
    )


SECTIONS = {
    "public": ("", "## mem (collected points: training stacks and vLLM start-up logs)"),
    "oos": ("oos-", "## mem out-of-sample (points from sources the constants never saw)"),
}


def family(url: str) -> str:
    """The source a row came from, for per-source summaries: owner/repo of a GitHub URL, else the host."""
    parts = url.split("/")
    if "github.com" in url and len(parts) > 4:
        return f"{parts[3]}/{parts[4]}"
    return parts[2] if len(parts) > 2 else url


def render(
    rows: list[dict[str, str]], results: dict[str, float], serving_lines: list[str], points: str = "public"
) -> str:
    import platform
    from datetime import datetime, timezone

    from mlops_cli.mem import allocator

    out = [SECTIONS[points][1], ""]
    out.append(
        f"Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.node() or 'unknown'} "
        f"({platform.machine()}, Python {platform.python_version()}), no GPU: the estimator is arithmetic. "
        f"Script: `benchmarks/mem_points.py{' --points oos' if points == 'oos' else ''} --write docs/benchmarks.md`; "
        f"data: `tests/fixtures/mem/{SECTIONS[points][0]}*.csv` "
        "(every row with its source URL). Errors are (estimate − measured) / measured, in the metric the "
        "source printed. The split (dev / holdout) was fixed before any constant was chosen (sha256 of the "
        f"row id); the two fitted constants are the allocator's transient shares "
        f"({allocator.RESERVE_OF_TRANSIENT} packed, on dev rows; {allocator.RESERVE_OF_TRANSIENT_UNPACKED} "
        "unpacked, on the shared public set). No GPU was available, so nothing here was measured by this "
        "project."
    )
    out.append("")
    if points == "oos":
        out.append(
            "What was chosen with these rows after the BEFORE run (section above): the native vLLM sampler's "
            "38.4 B per logit element comes from the activation figures of three llm-d dev rows (Llama-3.1-8B, "
            "Qwen3-0.6B, gpt-oss-20b) and is confirmed by issue #23278; the MXFP4 expert padding was read from "
            "vLLM's mxfp4.py and checked on the llm-d gpt-oss weights; the llm-d gpt-oss-120b row's utilization "
            "was corrected to 0.95 (its own figures add up only at 0.95). Every other change was read from the "
            "frameworks' source (docs/mem.md, Sources). No constant was chosen on a holdout row, but the "
            "mechanisms to look into were picked from the BEFORE misses, holdout rows included, so these "
            "rows are no longer a blind test; only new sources would be."
        )
        out.append("")
    by: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        if r["id"] in results:
            e = results[r["id"]]
            keys = [
                (r["split"], r["stack"] or "none"),
                (r["split"], "ALL"),
                ("both", r["stack"] or "none"),
                ("both", "ALL"),
            ]
            if points == "oos":
                keys.append(("source", family(r["source"])))
            for key in keys:
                by.setdefault(key, []).append(e)
    out.append("| split | stack (or source) | n | median abs error | within ±25 % | median signed |")
    out.append("| --- | --- | --- | --- | --- | --- |")
    for key in sorted(by, key=lambda k: (k[0] != "holdout", k[0], k[1] != "ALL", k[1])):
        a = [abs(e) for e in by[key]]
        out.append(
            f"| {key[0]} | {key[1]} | {len(a)} | {statistics.median(a):.1f} % | "
            f"{sum(1 for x in a if x <= 25) / len(a) * 100:.0f} % | {statistics.median(by[key]):+.1f} % |"
        )
    out.append("")
    out.append("Per row (training):")
    out.append("")
    out.append("| split | id | metric | measured GiB | estimate GiB | error |")
    out.append("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        if r["id"] in results:
            meas = float(r["measured_gib"])
            est = meas * (1 + results[r["id"]] / 100)
            out.append(
                f"| {r['split']} | {r['id']} | {r['metric']} | {meas:.2f} | {est:.2f} | {results[r['id']]:+.1f} % |"
            )
    out.append("")
    out.append("vLLM start-up logs (weights, Available KV cache memory in GiB, GPU KV cache size in tokens):")
    out.append("")
    out.append("| split | id | what | measured | estimate | error | rule |")
    out.append("| --- | --- | --- | --- | --- | --- | --- |")
    out.extend(serving_lines)
    out.append("")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", action="store_true", help="print every row")
    ap.add_argument("--write", type=Path, help="replace this section of a markdown file (docs/benchmarks.md)")
    ap.add_argument(
        "--points",
        choices=sorted(SECTIONS),
        default="public",
        help="public: the collected points the constants were chosen on; oos: the out-of-sample points",
    )
    args = ap.parse_args(argv)
    prefix = SECTIONS[args.points][0]
    rows = list(csv.DictReader((FIX / f"{prefix}training-points.csv").open(encoding="utf-8")))
    by: dict[tuple[str, str], list[float]] = {}
    results: dict[str, float] = {}
    for r in rows:
        est = estimate_row(r)
        if est is None:
            print(f"skip {r['id']}: no config for {r['model']}")
            continue
        err = (est - float(r["measured_gib"])) / float(r["measured_gib"]) * 100
        results[r["id"]] = err
        by.setdefault((r["split"], r["stack"] or "none"), []).append(err)
        by.setdefault((r["split"], "ALL"), []).append(err)
        if args.points == "oos":
            by.setdefault(("source", family(r["source"])), []).append(err)
            by.setdefault(("all", "ALL"), []).append(err)
        if args.rows:
            print(
                f"{r['split']:7} {r['id']:58} {r['metric']:15} meas {float(r['measured_gib']):7.2f} est {est:7.2f} {err:+6.1f} %"
            )
    for key in sorted(by):
        print(f"{key[0]:7} {key[1]:12} {summarize(by[key])}")
    lines: list[str] = []
    sv = serving_rows(args.rows, lines, prefix)
    for key in sorted(sv):
        print(f"vllm {key[0]:7} {key[1]:9} {summarize(sv[key])}")
    if args.write:
        section = render(rows, results, lines, args.points)
        for key in sorted(sv):
            section += f"- vLLM {key[0]} {key[1]}: {summarize(sv[key])}\n"
        write_section(args.write, section, SECTIONS[args.points][1][:24])
    return 0


def write_section(doc: Path, section: str, marker: str) -> None:
    """mem_accuracy.write_section (the same replace-or-append), imported from beside this file."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from mem_accuracy import write_section as replace_section

    replace_section(doc, section, marker)


def serving_rows(show: bool, lines: list[str] | None = None, prefix: str = "") -> dict[tuple[str, str], list[float]]:
    from mlops_cli.mem.gpu_totals import torch_total
    from mlops_cli.mem.serving import serving

    out: dict[tuple[str, str], list[float]] = {}
    for r in csv.DictReader((FIX / f"{prefix}vllm-points.csv").open(encoding="utf-8")):
        model = model_for(r["model"])
        if model is None:
            print(f"skip {r['id']}: no config for {r['model']}")
            continue
        cap = float(r["gpu_total_gib"]) * GiB if r["gpu_total_gib"] else torch_total(r["gpu"])
        s = Setup(
            inference=True,
            gpus=int(r["tp"]),
            max_model_len=int(r["max_model_len"]),
            gpu_memory_utilization=float(r["gpu_memory_utilization"]),
            vllm_version=r["vllm_version"],
            quant=r["quant"] or None,
            max_seqs=int(r["max_num_seqs"]) if r["max_num_seqs"] else None,
            max_batched_tokens=int(r["max_num_batched_tokens"]) if r["max_num_batched_tokens"] else None,
            kv_dtype=r["kv_dtype"] or "auto",
            enforce_eager=r["enforce_eager"] == "yes",
            vllm_sampler=r.get("sampler") or "auto",
        )
        qinfo = None
        path = FIX / "configs" / (r["model"].replace("/", "--") + ".json")
        if path.is_file():
            from mlops_cli.mem.quant import from_config

            qinfo = from_config(json.loads(path.read_text(encoding="utf-8")).get("quantization_config"))
        est = serving(model, s, cap, r["gpu"], qinfo)
        for what, measured, ours in (
            ("weights", r["weights_gib"], est.weights / GiB),
            ("kv_gib", r["kv_gib"], (est.kv_cache_bytes or 0) / GiB),
            ("kv_tokens", r["kv_tokens"], est.kv_cache_tokens or 0),
            ("concurrency", r.get("max_concurrency", ""), est.max_concurrency or 0),
        ):
            if not measured:
                continue
            if float(measured) <= 0:  # a failed start ("Available KV cache memory: -2.14 GiB"): no relative error
                if lines is not None:
                    lines.append(
                        f"| {r['split']} | {r['id']} | {what} | {float(measured):,.2f} | {ours:,.2f} | "
                        f"{ours - float(measured):+.2f} GiB (not in the %) | {r['vllm_version']}: {est.era} |"
                    )
                continue
            err = (ours - float(measured)) / float(measured) * 100
            out.setdefault((r["split"], what), []).append(err)
            if prefix:
                out.setdefault(("all", what), []).append(err)
            if show:
                print(
                    f"{r['split']:7} {r['id']:42} {what:9} meas {float(measured):12.2f} est {ours:12.2f} {err:+6.1f} % [{est.era}]"
                )
            if lines is not None:
                lines.append(
                    f"| {r['split']} | {r['id']} | {what} | {float(measured):,.2f} | {ours:,.2f} | {err:+.1f} % | "
                    f"{r['vllm_version']}: {est.era} |"
                )
    return out


if __name__ == "__main__":
    sys.exit(main())
