"""When a setup does not fit: the changes that make it fit, cheapest first (pure).

Each remedy is a change to the setup; its new estimate comes from running the
estimator again on the changed setup, so a remedy can only claim what the model
of memory says it saves. The order is the cost order of memory-anchors §3: free
changes first, then throughput, then method, then hardware, then data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from mlops_cli.mem.config import ModelConfig
from mlops_cli.mem.estimate import Estimate, estimate
from mlops_cli.mem.setup import Setup


@dataclass
class Remedy:
    name: str
    change: dict[str, Any]
    what: str
    cost: str
    new_bytes: int
    saves_bytes: int
    fits: bool
    capacity_bytes: int = 0  # per-GPU memory this remedy is judged against (its own GPU set)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "change": self.change, "what": self.what, "cost": self.cost,
                "new_required_bytes": self.new_bytes, "saves_bytes": self.saves_bytes, "fits": self.fits,
                "capacity_bytes": self.capacity_bytes}


@dataclass
class Advice:
    remedies: list[Remedy] = field(default_factory=list)
    plan: list[Remedy] = field(default_factory=list)  # cumulative, cheapest first, until it fits
    plan_fits: bool = False
    largest_batch: Optional[int] = None
    largest_seq_len: Optional[int] = None


def required(model: ModelConfig, setup: Setup, capacity: int) -> int:
    return estimate(model, setup, capacity).required_bytes


def largest_fitting(model: ModelConfig, setup: Setup, capacity: int, field_name: str,
                    upper: int, step: int = 1) -> Optional[int]:
    """The largest value of `field_name` (batch, seq_len, max_model_len) that fits, by bisection."""
    def fits(value: int) -> bool:
        return required(model, setup.with_changes(**{field_name: value}), capacity) <= capacity

    low = step
    if not fits(low):
        return None
    high = max(upper, low)
    if fits(high):
        return high
    while high - low > step:
        mid = (low + high) // 2 // step * step
        mid = max(mid, low + step) if mid <= low else mid
        if mid >= high:
            break
        if fits(mid):
            low = mid
        else:
            high = mid
    return low


def _candidates(model: ModelConfig, s: Setup, capacity: int, gpus_available: int) -> list[tuple[str, dict[str, Any], str, str]]:
    """(name, change, what, cost) in cost order; only those that apply to this setup."""
    out: list[tuple[str, dict[str, Any], str, str]] = []
    if s.inference:
        if s.kv_dtype != "fp8":
            out.append(("fp8-kv-cache", {"kv_dtype": "fp8"}, "--kv-cache-dtype fp8 halves the KV cache",
                        "slight accuracy risk; fastest on Hopper/Ada"))
        if s.gpu_memory_utilization < 0.95:
            out.append(("gpu-memory-utilization", {"gpu_memory_utilization": 0.95},
                        "--gpu-memory-utilization 0.95", "less headroom for other processes on the GPU"))
        length = largest_fitting(model, s, capacity, "max_model_len", s.serving_len, 256)
        if length and length < s.serving_len:
            out.append(("shorter-max-model-len", {"max_model_len": length}, f"--max-model-len {length}",
                        "longer prompts are rejected"))
        if not s.quant:
            out.append(("int4-weights", {"quant": "int4"}, "serve an AWQ/GPTQ int4 checkpoint",
                        "quality loss; needs a quantized checkpoint"))
        # vLLM refuses a tensor-parallel size that does not divide the attention heads
        tp = max((n for n in range(s.gpus + 1, gpus_available + 1) if model.heads % n == 0), default=None)
        if tp:
            out.append(("tensor-parallel", {"gpus": tp}, f"--tensor-parallel-size {tp}",
                        "needs the GPUs; NCCL traffic"))
        return out
    if s.batch > 1:
        batch = largest_fitting(model, s, capacity, "batch", s.batch - 1) or 1
        steps = math.ceil(s.batch / batch)
        out.append(("smaller-micro-batch", {"batch": batch},
                    f"micro-batch {batch} with gradient accumulation ×{steps} (same global batch)",
                    "throughput: fewer tokens per step"))
    if s.attn == "eager":
        out.append(("fused-attention", {"attn": "flash" if s.precision != "fp32" else "sdpa"},
                    "FlashAttention / SDPA: no seq² score matrix", "none; usually faster (FlashAttention: Ampere+, fp16/bf16)"))
    if not s.fused_ce:
        out.append(("fused-cross-entropy", {"fused_ce": True},
                    "fused/chunked cross-entropy (Liger use_liger_kernel, torchtune chunked CE)", "none to slight"))
    if not s.grad_ckpt:
        out.append(("gradient-checkpointing", {"grad_ckpt": True}, "gradient checkpointing",
                    "~20-35 % slower steps (recompute)"))
    if s.precision in ("fp32", "amp-fp16", "amp-bf16"):
        out.append(("bf16", {"precision": "bf16"}, "pure bf16 weights, gradients and states",
                    "needs Ampere+; no fp32 master copy (small precision risk)"))
    if s.optimizer in ("adamw", "sgd") and s.method in ("full", "freeze"):
        out.append(("8bit-optimizer", {"optimizer": "adamw-8bit"}, "8-bit AdamW (bitsandbytes)",
                    "small quality/stability risk"))
    if s.method in ("full", "freeze"):
        out.append(("lora", {"method": "lora"}, f"LoRA rank {s.lora_rank} on all linear layers",
                    "quality vs full fine-tuning"))
    if s.method != "qlora":
        out.append(("qlora", {"method": "qlora", "quant": "nf4"}, "QLoRA: 4-bit NF4 base weights, LoRA adapters",
                    "~10-40 % slower (dequantization); some quality loss"))
    gpus = max(gpus_available, s.gpus)
    if gpus > 1 and s.zero < 3:
        out.append(("zero3", {"zero": 3, "gpus": gpus}, f"ZeRO-3 / FSDP full shard across {gpus} GPUs",
                    "communication per step; needs the GPUs"))
    if s.offload is None and s.method in ("full", "freeze"):
        host = 18 * 1.5 * model.total_params / 1024**3
        out.append(("cpu-offload", {"offload": "optimizer", "zero": max(s.zero, 2)},
                    "DeepSpeed ZeRO offload of optimizer states to CPU",
                    f"much slower on weak PCIe; needs ≈{host:.0f} GiB host RAM"))
    seq = largest_fitting(model, s, capacity, "seq_len", s.seq_len - 1, 64)
    if seq and seq < s.seq_len:
        out.append(("shorter-sequences", {"seq_len": seq}, f"--seq-len {seq} (truncate or pack)",
                    "data change: long samples are cut"))
    return out


def capacity_for(gpus: int, capacity: int, free_by_gpu: Optional[list[int]]) -> int:
    """Per-GPU memory a run on `gpus` GPUs can count on: the least free of the `gpus` freest GPUs.

    Without a per-GPU list (--gpu-mem / --gpu: every GPU alike) it is `capacity`."""
    if not free_by_gpu:
        return capacity
    ranked = sorted(free_by_gpu, reverse=True)
    return ranked[min(gpus, len(ranked)) - 1]


def advise(model: ModelConfig, setup: Setup, capacity: int, gpus_available: int = 1,
           free_by_gpu: Optional[list[int]] = None) -> Advice:
    """Remedies with their new estimates, a cumulative plan, and the largest batch/seq that fit.

    `free_by_gpu` (NVML free bytes per GPU) lets a remedy that spreads the run over more GPUs
    (ZeRO-3, tensor parallel) be judged against the least free GPU of that larger set."""
    current = required(model, setup, capacity)
    advice = Advice()
    candidates = _candidates(model, setup, capacity, gpus_available) if current > capacity else []
    for name, change, what, cost in candidates:
        trial = setup.with_changes(**change)
        cap = capacity_for(trial.gpus, capacity, free_by_gpu) if trial.gpus != setup.gpus else capacity
        new = required(model, trial, cap)
        if new < current:
            advice.remedies.append(Remedy(name, change, what, cost, new, current - new, new <= cap, cap))
    # The plan: apply remedies in cost order, keeping those that still lower the estimate.
    planned, planned_bytes, planned_cap = setup, current, capacity
    for remedy in advice.remedies:
        if planned_bytes <= planned_cap:
            break
        trial = planned.with_changes(**remedy.change)
        cap = capacity_for(trial.gpus, capacity, free_by_gpu) if trial.gpus != setup.gpus else capacity
        new = required(model, trial, cap)
        if new < planned_bytes:
            planned, planned_bytes, planned_cap = trial, new, cap
            advice.plan.append(Remedy(remedy.name, remedy.change, remedy.what, remedy.cost, new,
                                      current - new, new <= cap, cap))
    advice.plan_fits = planned_bytes <= planned_cap
    if setup.inference:
        # vLLM refuses a max-model-len beyond the model's max_position_embeddings, so the answer
        # stops at that limit when the config names one.
        upper = model.max_positions if model.max_positions > 0 else 1 << 21
        advice.largest_seq_len = largest_fitting(model, setup, capacity, "max_model_len", upper, 256)
    else:
        advice.largest_batch = largest_fitting(model, setup, capacity, "batch", 4096)
        advice.largest_seq_len = largest_fitting(model, setup, capacity, "seq_len", 1 << 20, 64)
    return advice
