"""Result objects of `mem estimate` and `oom-check`: one object, text and JSON."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from rich.console import Console
from rich.table import Table

from mlops_cli.mem.estimate import Estimate
from mlops_cli.mem.remedies import Advice
from mlops_cli.errors import ExitCode
from mlops_cli.units import format_bytes

TERM_LABELS = {
    "weights": "weights",
    "gradients": "gradients",
    "optimizer_states": "optimizer states",
    "activations": "activations",
    "attention_scores": "attention scores / masks (seq²)",
    "logits": "logits / loss buffers",
    "kv_cache": "KV cache",
    "cuda_context": "CUDA context (+NCCL)",
    "cuda_graphs": "CUDA graphs",
    "allocator_reserve": "allocator reserve",
}


def _gib(n: Optional[int]) -> str:
    return format_bytes(n, precision=2) if n is not None else "n/a"


def estimate_json(est: Estimate) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "model": {"name": est.model.name, "source": est.model.source, "total_params": est.model.total_params,
                  "hidden_size": est.model.hidden, "layers": est.model.layers, "heads": est.model.heads,
                  "kv_heads": est.model.kv_heads, "head_dim": est.model.head_dim,
                  "intermediate_size": est.model.intermediate, "vocab_size": est.model.vocab,
                  "tied_embeddings": est.model.tied, "experts": est.model.experts},
        "setup": est.setup.to_json(),
        "mode": "serving" if est.setup.inference else "training",
        "peak_bytes": est.peak_bytes,
        "required_bytes": est.required_bytes,
        "breakdown": dict(est.breakdown),
        "trainable_params": est.trainable_params,
        "notes": list(est.notes),
    }
    if est.serving is not None:
        doc["serving"] = dict(est.serving)
    return doc


def render_estimate(est: Estimate, console: Console) -> None:
    m, s = est.model, est.setup
    console.print(f"{m.name}: {m.total_params / 1e9:.2f}B params, {m.layers} layers, hidden {m.hidden}, "
                  f"{m.heads} heads ({m.kv_heads} KV), vocab {m.vocab}", markup=False)
    if s.inference:
        what = (f"serving (vLLM-style): max-model-len {s.serving_len}, max-seqs {s.max_seqs}, "
                f"kv {s.kv_dtype}, TP {s.gpus}")
    else:
        what = (f"training: {s.method}, {s.precision}, batch {s.batch} × seq {s.seq_len}, attn {s.attn}, "
                f"{s.optimizer}, grad-ckpt {'on' if s.grad_ckpt else 'off'}, {s.gpus} GPU(s), ZeRO {s.zero}"
                + (f", offload {s.offload}" if s.offload else ""))
    console.print(what, markup=False)
    table = Table(title_justify="left")
    table.add_column("term")
    table.add_column("per GPU", justify="right")
    table.add_column("share", justify="right")
    peak = est.peak_bytes or 1
    for key, label in TERM_LABELS.items():
        value = est.breakdown.get(key, 0)
        if value:
            table.add_row(label, _gib(value), f"{value / peak * 100:.0f} %")
    table.add_row("peak", _gib(est.peak_bytes), "100 %", style="bold")
    console.print(table)
    if est.serving:
        sv = est.serving
        console.print(f"KV cache {sv['kv_bytes_per_token'] / 1024:.0f} KiB/token; {s.max_seqs} sequences × "
                      f"{sv['max_model_len']} tokens need {_gib(est.breakdown['kv_cache'])}; serving one full-length "
                      f"sequence needs a {_gib(sv['required_bytes'])} GPU at --gpu-memory-utilization "
                      f"{s.gpu_memory_utilization}.", markup=False)
        if "kv_cache_tokens" in sv:
            console.print(f"On {_gib(sv['capacity_bytes'])} × {s.gpu_memory_utilization}: KV cache "
                          f"{_gib(sv['kv_cache_bytes'])} = {sv['kv_cache_tokens']:,} tokens; maximum concurrency "
                          f"for {sv['max_model_len']} tokens per request: {sv['max_concurrency']:.2f}x", markup=False)
    for note in est.notes:
        console.print(f"note: {note}", markup=False)


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
    def exit_code(self) -> int:
        return ExitCode.OK if self.fits else ExitCode.PROBLEM

    def to_json(self) -> dict[str, Any]:
        doc = estimate_json(self.estimate)
        doc.update({"capacity_bytes": self.capacity_bytes, "capacity_source": self.capacity_source,
                    "fits": self.fits, "headroom_bytes": self.capacity_bytes - self.estimate.required_bytes})
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
        verdict = "FITS" if self.fits else "DOES NOT FIT"
        console.print(f"{verdict}: needs {_gib(need)} per GPU, {self.capacity_source} has {_gib(have)} "
                      f"({'headroom' if self.fits else 'short by'} {_gib(abs(have - need))})",
                      style="bold green" if self.fits else "bold red", markup=False)
        a = self.advice
        if a is None:
            return
        seq_name = "max-model-len" if self.estimate.setup.inference else "sequence length"
        if a.largest_batch is not None or not self.estimate.setup.inference:
            console.print(f"largest batch that fits as configured: {a.largest_batch if a.largest_batch else 'none'}",
                          markup=False)
        console.print(f"largest {seq_name} that fits as configured: {a.largest_seq_len or 'none'}", markup=False)
        if self.fits:
            return
        if not a.remedies:
            console.print("no remedy in the catalogue lowers this estimate; a larger GPU is needed", markup=False)
            return
        table = Table(title="Remedies, cheapest first (each alone, new estimate re-computed)", title_justify="left")
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
