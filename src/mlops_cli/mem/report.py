"""Result objects of `mem estimate` and `oom-check`: one object, text and JSON."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from rich.console import Console
from rich.table import Table

from mlops_cli.errors import ExitCode
from mlops_cli.mem.estimate import Estimate, describe_setup
from mlops_cli.mem.remedies import TIGHT_SHARE, Advice, is_tight
from mlops_cli.text import clean
from mlops_cli.units import format_bytes

TERM_LABELS = {
    "weights": "weights",
    "adapters": "LoRA adapters",
    "gradients": "gradients",
    "optimizer_states": "optimizer states",
    "master": "fp32 master copy",
    "gathered": "gathered units (FSDP/ZeRO-3)",
    "activations": "activations",
    "attention_scores": "attention scores (seq², eager)",
    "autocast_copies": "autocast 16-bit weight copies",
    "logits": "logits / loss buffers",
    "optimizer_temporaries": "optimizer step temporaries",
    "kv_cache": "KV cache",
    "reference_model": "reference model",
    "reward_model": "reward model",
    "value_model": "value model (trainable)",
    "generation_engine": "colocated vLLM share",
    "allocator_reserve": "allocator reserve (cached, unused)",
    "cuda_context_and_nccl": "CUDA context (+NCCL)",
    "paged_optimizer_states": "paged optimizer states (unified memory)",
    "profile_activation_peak": "profile-run peak (activations, sampler)",
    "non_torch": "non-torch memory",
    "cuda_graphs": "CUDA graphs",
}
DEVICE_ONLY = ("cuda_context_and_nccl", "paged_optimizer_states")


def _gib(n: Optional[int]) -> str:
    return format_bytes(n, precision=2) if n is not None else "n/a"


def estimate_json(est: Estimate) -> dict[str, Any]:
    m = est.model
    doc: dict[str, Any] = {
        "model": {
            "name": m.name,
            "source": m.source,
            "total_params": m.total_params,
            "param_source": m.param_source,
            "hidden_size": m.hidden,
            "layers": m.layers,
            "heads": m.heads,
            "kv_heads": m.kv_heads,
            "head_dim": m.head_dim,
            "intermediate_size": m.intermediate,
            "vocab_size": m.vocab,
            "tied_embeddings": m.tied,
            "experts": m.experts,
            "quantization": m.to_json()["quantization"],
        },
        "setup": describe_setup(est),
        "mode": "serving" if est.setup.inference else "training",
        "allocated_peak_bytes": est.allocated_peak_bytes,
        "torch_peak_bytes": est.torch_peak_bytes,
        "device_peak_bytes": est.device_peak_bytes,
        "peak_bytes": est.device_peak_bytes,
        "peak_phase": est.peak_phase,
        "required_bytes": est.required_bytes,
        "breakdown": dict(est.breakdown),
        "trainable_params": est.trainable_params,
        "notes": list(est.notes),
    }
    if est.train:
        doc["phases"] = [
            {"name": p.name, "allocated_bytes": int(p.total), "parts": {k: int(v) for k, v in p.parts.items() if v}}
            for p in est.train.phases
        ]
    if est.serve is not None:
        sv = est.serve.to_json()
        sv["max_model_len"] = est.setup.serving_len
        doc["serving"] = sv
    return doc


def render_estimate(est: Estimate, console: Console) -> None:
    m, s = est.model, est.setup
    console.print(
        clean(
            f"{m.name}: {m.total_params / 1e9:.2f}B params, {m.layers} layers, hidden {m.hidden}, "
            f"{m.heads} heads ({m.kv_heads} KV), vocab {m.vocab}"
        ),
        markup=False,
    )
    if s.inference:
        what = (
            f"serving (vLLM {s.vllm_version or 'current'}): max-model-len {s.serving_len}, "
            f"TP {s.gpus}, kv {s.kv_dtype}, gpu-memory-utilization {s.gpu_memory_utilization}"
        )
    else:
        what = (
            f"training: {s.objective if s.objective != 'sft' else 'SFT'} {s.tune}, {s.precision}, batch {s.batch} × "
            f"seq {s.seq_len}, attn {s.attn}, {s.optimizer}{' in backward' if s.optimizer_in_bwd else ''}, "
            f"grad-ckpt {'on' if s.grad_ckpt else 'off'}, loss {s.loss}, {s.gpus} GPU(s), sharding {s.sharding}"
            + (f", offload {s.offload}" if s.offload != "none" else "")
            + (f", stack {s.stack}" if s.stack else "")
        )
    console.print(clean(what), markup=False)
    table = Table(title_justify="left")
    table.add_column("term")
    table.add_column("per GPU", justify="right")
    peak = est.device_peak_bytes or 1
    table.add_column("share", justify="right")
    for key, value in est.breakdown.items():
        if value:
            table.add_row(TERM_LABELS.get(key, key), _gib(value), f"{value / peak * 100:.0f} %")
    console.print(table)
    if est.train:
        console.print(
            f"peak phase: {est.peak_phase.replace('_', ' ')}  ("
            + ", ".join(f"{p.name.replace('_', ' ')} {_gib(int(p.total))}" for p in est.train.phases)
            + ")",
            markup=False,
        )
        console.print(
            f"torch peak (max_memory_reserved): {_gib(est.torch_peak_bytes)}   "
            f"allocated peak: {_gib(est.allocated_peak_bytes)}   "
            f"device (nvidia-smi, context included): {_gib(est.device_peak_bytes)}",
            style="bold",
            markup=False,
        )
    if est.serve:
        sv = est.serve
        console.print(
            f"KV cache {sv.kv_bytes_per_token / 1024:.0f} KiB/token; profile run: {sv.max_num_batched_tokens} "
            f"tokens, {sv.max_num_seqs} sequences; one full-length sequence needs a "
            f"{_gib(est.required_bytes)} GPU (torch-visible total) at --gpu-memory-utilization "
            f"{s.gpu_memory_utilization}.",
            markup=False,
        )
        if sv.kv_cache_tokens is not None:
            console.print(
                f"Available KV cache memory: {_gib(int(sv.kv_cache_bytes or 0))}; GPU KV cache size: "
                f"{sv.kv_cache_tokens:,} tokens; maximum concurrency for {s.serving_len} tokens per "
                f"request: {sv.max_concurrency:.2f}x",
                markup=False,
            )
    for note in est.notes:
        console.print(clean(f"note: {note}"), markup=False)


@dataclass
class EstimateReport:
    estimate: Estimate
    exit_code: int = ExitCode.OK

    def to_json(self) -> dict[str, Any]:
        return estimate_json(self.estimate)

    def render(self, console: Console) -> None:
        render_estimate(self.estimate, console)


@dataclass
class OomReport:
    estimate: Estimate
    capacity_bytes: int
    capacity_source: str
    advice: Optional[Advice]

    @property
    def fits(self) -> bool:
        return self.estimate.required_bytes <= self.capacity_bytes

    @property
    def verdict(self) -> str:
        """fits | tight (fits by less than the estimate's error) | does not fit."""
        if not self.fits:
            return "does not fit"
        return "tight" if is_tight(self.estimate.required_bytes, self.capacity_bytes) else "fits"

    @property
    def exit_code(self) -> int:
        return ExitCode.OK if self.fits else ExitCode.PROBLEM

    def to_json(self) -> dict[str, Any]:
        doc = estimate_json(self.estimate)
        doc.update(
            {
                "capacity_bytes": self.capacity_bytes,
                "capacity_source": self.capacity_source,
                "fits": self.fits,
                "verdict": self.verdict,
                "headroom_bytes": self.capacity_bytes - self.estimate.required_bytes,
            }
        )
        a = self.advice
        doc["remedies"] = [r.to_json() for r in a.remedies] if a else []
        doc["plan"] = [r.to_json() for r in a.plan] if a else []
        doc["plan_fits"] = a.plan_fits if a else None
        doc["largest_batch"] = a.largest_batch if a else None
        doc["largest_seq_len"] = a.largest_seq_len if a else None
        return doc

    def render(self, console: Console) -> None:
        render_estimate(self.estimate, console)
        need, have = self.estimate.required_bytes, self.capacity_bytes
        verdict = {"fits": "FITS", "tight": "FITS, BUT TIGHT", "does not fit": "DOES NOT FIT"}[self.verdict]
        console.print(
            clean(
                f"{verdict}: needs {_gib(need)} per GPU, {self.capacity_source} has {_gib(have)} "
                f"({'headroom' if self.fits else 'short by'} {_gib(abs(have - need))})"
            ),
            style="bold green" if self.verdict == "fits" else ("bold yellow" if self.fits else "bold red"),
            markup=False,
        )
        if self.verdict == "tight":
            console.print(
                f"the headroom is under {TIGHT_SHARE:.0%} of the GPU, inside this estimate's typical error: "
                "it may still run out of memory. To know, run a few steps and read "
                "torch.cuda.max_memory_reserved() (training) or vLLM's 'Available KV cache memory' line "
                "(serving), with nvidia-smi for the whole process.",
                markup=False,
            )
        a = self.advice
        if a is None:
            return
        seq_name = "max-model-len" if self.estimate.setup.inference else "sequence length"
        if a.largest_batch is not None or not self.estimate.setup.inference:
            console.print(
                f"largest batch that fits as configured: {a.largest_batch if a.largest_batch else 'none'}", markup=False
            )
        console.print(f"largest {seq_name} that fits as configured: {a.largest_seq_len or 'none'}", markup=False)
        if self.verdict == "fits" or (self.fits and not a.remedies):
            return
        if not a.remedies:
            console.print("no remedy in the catalogue lowers this estimate; a larger GPU is needed", markup=False)
            return
        title = (
            "Remedies, cheapest first (each alone, new estimate re-computed)"
            if not self.fits
            else "For more headroom, cheapest first (each alone, new estimate re-computed)"
        )
        table = Table(title=title, title_justify="left")
        for col in ("#", "change", "new estimate", "saves", "fits", "cost"):
            table.add_column(col, justify="right" if col in ("#", "new estimate", "saves") else "left")
        for i, r in enumerate(a.remedies, 1):
            fits = "yes" if r.fits else "no"
            if r.capacity_bytes and r.capacity_bytes != self.capacity_bytes:
                fits += f" (vs {_gib(r.capacity_bytes)} free)"  # judged on the least free GPU of its set
            table.add_row(str(i), r.what, _gib(r.new_bytes), _gib(r.saves_bytes), fits, r.cost)
        console.print(table)
        if a.plan:
            steps = " + ".join(r.name for r in a.plan)
            result = "fits" if a.plan_fits else "still does not fit"
            console.print(f"cheapest combination: {steps} -> {_gib(a.plan[-1].new_bytes)} ({result})", markup=False)
