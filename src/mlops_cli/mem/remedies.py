"""When a setup does not fit: the changes that make it fit, cheapest first (pure).

Each remedy is a change to the setup; its new estimate comes from running the
estimator again on the changed setup, so a remedy can only claim what the model
of memory says it saves. The order is the cost order of memory-anchors §3: free
changes first, then throughput (CPU offload included), then method, then hardware, then
data; the list shows first the remedies that fit on their own, in that order, then those that
only help. Checked against public OOM threads (tests/fixtures/mem/oom-cases.json).
"""

from __future__ import annotations

import math
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Optional

from mlops_cli.mem.config import ModelConfig
from mlops_cli.mem.estimate import estimate
from mlops_cli.mem.setup import Setup
from mlops_cli.mem.stacks import TRANSFORMERS_STACKS, UNSLOTH_EAGER_MODEL_TYPES, transformers_defaults

# A fit with less headroom than this share of the GPU is inside the estimate's own error (held-out
# median absolute error 9 %, docs/benchmarks.md "mem out-of-sample"): oom-check calls it "tight",
# says what to measure, and lists the remedies that would add headroom. Public OOM threads at 93 %
# and 99 % of the GPU (tests/fixtures/mem/oom-cases.json) did run out of memory.
TIGHT_SHARE = 0.10


def is_tight(required_bytes: int, capacity: int) -> bool:
    """Fits, but by less than TIGHT_SHARE of the GPU."""
    return required_bytes <= capacity and capacity - required_bytes < TIGHT_SHARE * capacity


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
        return {
            "name": self.name,
            "change": self.change,
            "what": self.what,
            "cost": self.cost,
            "new_required_bytes": self.new_bytes,
            "saves_bytes": self.saves_bytes,
            "fits": self.fits,
            "capacity_bytes": self.capacity_bytes,
        }


@dataclass
class Advice:
    remedies: list[Remedy] = field(default_factory=list)
    plan: list[Remedy] = field(default_factory=list)  # cumulative, cheapest first, until it fits
    plan_fits: bool = False
    largest_batch: Optional[int] = None
    largest_seq_len: Optional[int] = None


# The GPU's name while `advise` runs: vLLM's engine defaults depend on it (serving.engine_defaults:
# H100/H200 by name in 0.8.0-0.8.4, A100s excluded from 0.9.0), so every re-estimate of a remedy must
# see the same GPU as the estimate it is compared with.
_GPU_NAME: ContextVar[str] = ContextVar("gpu_name", default="")


def required(model: ModelConfig, setup: Setup, capacity: int) -> int:
    return estimate(model, setup, capacity, _GPU_NAME.get()).required_bytes


def largest_fitting(
    model: ModelConfig, setup: Setup, capacity: int, field_name: str, upper: int, step: int = 1
) -> Optional[int]:
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


def _candidates(
    model: ModelConfig, s: Setup, capacity: int, gpus_available: int
) -> list[tuple[str, dict[str, Any], str, str]]:
    """(name, change, what, cost) in cost order; only those that apply to this setup."""
    out: list[tuple[str, dict[str, Any], str, str]] = []
    if s.inference:
        return _serving_candidates(model, s, capacity, gpus_available)
    if s.batch > 1:
        batch = largest_fitting(model, s, capacity, "batch", s.batch - 1) or 1
        steps = math.ceil(s.batch / batch)
        what = (
            f"{batch} completions per GPU (fewer GRPO generations per step, or more gradient accumulation)"
            if s.objective == "grpo"
            else f"micro-batch {batch} with gradient accumulation ×{steps} (same global batch)"
        )
        out.append(("smaller-micro-batch", {"batch": batch}, what, "throughput: fewer tokens per step"))
    out.extend(_rl_candidates(model, s, capacity))
    if (
        s.attn == "eager"
        and s.stack in TRANSFORMERS_STACKS
        and transformers_defaults(s.transformers_version).get("attn")
    ):
        # a transformers release without SDPA (stacks.transformers_defaults): upgrading removes the scores
        out.append(
            (
                "fused-attention",
                {"attn": "sdpa", "transformers_version": "4.36.0"},
                "transformers >= 4.36 (SDPA attention by default with torch >= 2.1.1): no seq² score matrix",
                "an upgrade; none at run time (any GPU)",
            )
        )
    elif s.attn == "eager" and not (s.stack == "unsloth" and model.model_type in UNSLOTH_EAGER_MODEL_TYPES):
        out.append(
            (
                "fused-attention",
                {"attn": "flash" if s.precision != "fp32" else "sdpa"},
                "FlashAttention / SDPA: no seq² score matrix",
                "none; usually faster (FlashAttention: Ampere+, fp16/bf16)",
            )
        )
    if s.loss != "fused":
        out.append(
            (
                "fused-cross-entropy",
                {"loss": "fused"},
                "fused linear cross-entropy (Liger use_liger_kernel, unsloth; torchtune chunked CE)",
                "none to slight",
            )
        )
    if not s.grad_ckpt:
        out.append(
            (
                "gradient-checkpointing",
                {"grad_ckpt": True, "ac_mode": "full"},
                "gradient checkpointing",
                "~20-35 % slower steps (recompute)",
            )
        )
    if s.precision in ("fp32", "amp-fp16", "amp-bf16"):
        out.append(
            (
                "bf16",
                {"precision": "bf16"},
                "pure bf16 weights, gradients and states",
                "needs Ampere+; no fp32 master copy (small precision risk)",
            )
        )
    if s.optimizer in ("adamw", "adamw-fused", "sgd") and not s.adapters:
        out.append(
            (
                "8bit-optimizer",
                {"optimizer": "adamw-8bit"},
                "8-bit AdamW (bitsandbytes)",
                "small quality/stability risk",
            )
        )
    if s.offload == "none" and not s.adapters:
        host = 18 * 1.5 * model.total_params / 1024**3
        sharding = s.sharding if s.sharding in ("zero1", "zero2", "zero3", "fsdp") else "zero2"
        out.append(
            (
                "cpu-offload",
                {"offload": "optimizer", "sharding": sharding},
                "offload optimizer states to CPU (DeepSpeed ZeRO offload_optimizer / FSDP CPUOffload)",
                f"much slower on weak PCIe; needs ≈{host:.0f} GiB host RAM",
            )
        )
    tune_key = "tuning" if s.objective != "sft" else "method"
    if not s.adapters:
        out.append(
            ("lora", {tune_key: "lora"}, f"LoRA rank {s.lora_rank} on {s.lora_targets}", "quality vs full fine-tuning")
        )
    if s.tune != "qlora":
        out.append(
            (
                "qlora",
                {tune_key: "qlora", "quant": "nf4"},
                "QLoRA: 4-bit NF4 base weights, LoRA adapters",
                "~10-40 % slower (dequantization); some quality loss",
            )
        )
    gpus = max(gpus_available, s.gpus)
    if gpus > 1 and s.sharding not in ("zero3", "fsdp"):
        out.append(
            (
                "zero3",
                {"sharding": "fsdp", "gpus": gpus},
                f"FSDP full shard (or ZeRO-3) across {gpus} GPUs",
                "communication per step; needs the GPUs",
            )
        )
    more = more_gpus(model, s, capacity)
    if more:
        out.append(
            (
                "more-gpus",
                {"gpus": more},
                f"shard over {more} GPUs ({s.sharding}, as now)",
                "needs the GPUs; more communication per step",
            )
        )
    seq = largest_fitting(model, s, capacity, "seq_len", s.seq_len - 1, 64)
    if seq and seq < s.seq_len:
        out.append(
            (
                "shorter-sequences",
                {"seq_len": seq},
                f"--seq-len {seq} (truncate or pack)",
                "data change: long samples are cut",
            )
        )
    return out


def _serving_candidates(
    model: ModelConfig, s: Setup, capacity: int, gpus_available: int
) -> list[tuple[str, dict[str, Any], str, str]]:
    """vLLM start-up remedies, in cost order: the flag changes people make in the threads.

    KV-side changes (fp8 KV cache, a higher --gpu-memory-utilization) are offered only when they
    can make it fit together with the shortest context: when the weights and the profile run alone
    do not fit the GPU, no KV setting helps (vLLM issue #188: "playing with --gpu-memory-utilization
    doesn't seem to make a difference")."""
    out: list[tuple[str, dict[str, Any], str, str]] = []

    def can_fit(change: dict[str, Any]) -> bool:
        return required(model, s.with_changes(**change, max_model_len=MIN_MODEL_LEN), capacity) <= capacity

    if s.precision == "fp32":
        out.append(
            (
                "16-bit-weights",
                {"precision": "bf16"},
                "--dtype bfloat16 (or half): 16-bit weights, not fp32",
                "none (the checkpoints are 16-bit)",
            )
        )
    if s.kv_dtype != "fp8" and can_fit({"kv_dtype": "fp8"}):
        out.append(
            (
                "fp8-kv-cache",
                {"kv_dtype": "fp8"},
                "--kv-cache-dtype fp8 halves the KV cache",
                "slight accuracy risk; fastest on Hopper/Ada",
            )
        )
    if s.gpu_memory_utilization < 0.95 and can_fit({"gpu_memory_utilization": 0.95}):
        out.append(
            (
                "gpu-memory-utilization",
                {"gpu_memory_utilization": 0.95},
                "--gpu-memory-utilization 0.95",
                "less headroom for other processes on the GPU",
            )
        )
    length = largest_fitting(model, s, capacity, "max_model_len", s.serving_len, 256)
    if length and length < s.serving_len:
        out.append(
            (
                "shorter-max-model-len",
                {"max_model_len": length},
                f"--max-model-len {length}",
                "longer prompts are rejected",
            )
        )
    seqs = _fewer_max_seqs(model, s, capacity)
    if seqs:
        out.append(
            (
                "fewer-max-seqs",
                {"max_seqs": seqs},
                f"--max-num-seqs {seqs} (a smaller profile run and sampler)",
                "fewer sequences decoded at once",
            )
        )
    if not s.enforce_eager:
        out.append(
            (
                "enforce-eager",
                {"enforce_eager": True},
                "--enforce-eager: no CUDA graphs",
                "slower decoding (no graph replay)",
            )
        )
    if not s.quant and model.quantization is None:
        out.append(
            (
                "int4-weights",
                {"quant": "int4"},
                "serve an AWQ/GPTQ int4 checkpoint",
                "quality loss; needs a quantized checkpoint",
            )
        )
    # vLLM refuses a tensor-parallel size that does not divide the attention heads
    tp = max((n for n in range(s.gpus + 1, gpus_available + 1) if model.heads % n == 0), default=None)
    if tp:
        out.append(("tensor-parallel", {"gpus": tp}, f"--tensor-parallel-size {tp}", "needs the GPUs; NCCL traffic"))
    return out


MIN_MODEL_LEN = 256
MAX_SEQS_STEPS = (256, 128, 64, 32, 16)


def _fewer_max_seqs(model: ModelConfig, s: Setup, capacity: int) -> Optional[int]:
    """The largest --max-num-seqs below the engine's that fits; else the smallest step that lowers it."""
    current = estimate(model, s, capacity, _GPU_NAME.get())
    engine_seqs = current.serve.max_num_seqs if current.serve is not None else 0
    steps = [n for n in MAX_SEQS_STEPS if n < engine_seqs]
    best = None
    for n in steps:
        new = required(model, s.with_changes(max_seqs=n), capacity)
        if new <= capacity:
            return n
        if new < current.required_bytes:
            best = n
    return best


def more_gpus(model: ModelConfig, s: Setup, capacity: int) -> Optional[int]:
    """For a run already sharded (FSDP / ZeRO-3): the fewest GPUs (2x, 4x, 8x now) at which it fits."""
    if s.sharding not in ("fsdp", "zero3") or s.gpus < 2:
        return None
    current = required(model, s, capacity)
    best = None
    for factor in (2, 4, 8):
        new = required(model, s.with_changes(gpus=s.gpus * factor), capacity)
        if new <= capacity:
            return s.gpus * factor
        if new < current and best is None:
            best = s.gpus * factor
    return best


def _rl_candidates(model: ModelConfig, s: Setup, capacity: int) -> list[tuple[str, dict[str, Any], str, str]]:
    """Remedies that only exist for preference / RL training."""
    from mlops_cli.mem.rl import ref_mode

    out: list[tuple[str, dict[str, Any], str, str]] = []
    if ref_mode(s) == "copy":
        if not s.adapters:
            out.append(
                (
                    "lora-reference",
                    {"tuning": "lora"},
                    "LoRA policy: the reference is the base model with the adapters disabled (no second copy)",
                    "quality vs full fine-tuning",
                )
            )
        out.append(
            (
                "ref-offload",
                {"ref_model": "offload"},
                "reference model off the GPU (OpenRLHF --ref_offload, verl ref param_offload; or TRL "
                "precompute_ref_log_probs)",
                "slower reference forward, or one pass over the data first",
            )
        )
    from mlops_cli.mem.rl import ds3_generation_gather_bytes

    if ds3_generation_gather_bytes(model, s):
        out.append(
            (
                "no-ds3-gather",
                {"ds3_gather_for_generation": False},
                "ds3_gather_for_generation=False (TRL): generate with the ZeRO-3 shards instead of gathering "
                "the whole model on every GPU",
                "much slower generation (parameters all-gathered layer by layer at every decoding step)",
            )
        )
    if s.objective == "grpo" and s.gen_engine == "vllm-colocate" and s.gen_memory_utilization > 0.1:
        share = largest_share(model, s, capacity)
        if share is not None and share < s.gen_memory_utilization:
            out.append(
                (
                    "smaller-generation-share",
                    {"gen_memory_utilization": share},
                    f"vllm_gpu_memory_utilization {share} for the colocated vLLM engine",
                    "a smaller KV cache: fewer completions generated at once",
                )
            )
        out.append(
            (
                "vllm-sleep-or-server",
                {"gen_engine": "vllm-server"},
                "vLLM on other GPUs (vllm_mode server) or vllm_enable_sleep_mode during training",
                "needs GPUs for the server, or time to wake the engine each step",
            )
        )
    return out


def largest_share(model: ModelConfig, s: Setup, capacity: int) -> Optional[float]:
    """The largest colocated vLLM share (steps of 0.05) with which training still fits."""
    share = round(s.gen_memory_utilization - 0.05, 2)
    while share >= 0.05:
        if required(model, s.with_changes(gen_memory_utilization=share), capacity) <= capacity:
            return share
        share = round(share - 0.05, 2)
    return None


def capacity_for(gpus: int, capacity: int, free_by_gpu: Optional[list[int]]) -> int:
    """Per-GPU memory a run on `gpus` GPUs can count on: the least free of the `gpus` freest GPUs.

    Without a per-GPU list (--gpu-mem / --gpu: every GPU alike) it is `capacity`."""
    if not free_by_gpu:
        return capacity
    ranked = sorted(free_by_gpu, reverse=True)
    return ranked[min(gpus, len(ranked)) - 1]


def advise(
    model: ModelConfig,
    setup: Setup,
    capacity: int,
    gpus_available: int = 1,
    free_by_gpu: Optional[list[int]] = None,
    gpu_name: str = "",
) -> Advice:
    token = _GPU_NAME.set(gpu_name)
    try:
        return _advise(model, setup, capacity, gpus_available, free_by_gpu)
    finally:
        _GPU_NAME.reset(token)


def _advise(
    model: ModelConfig, setup: Setup, capacity: int, gpus_available: int, free_by_gpu: Optional[list[int]]
) -> Advice:
    """Remedies with their new estimates, a cumulative plan, and the largest batch/seq that fit.

    `free_by_gpu` (NVML free bytes per GPU) lets a remedy that spreads the run over more GPUs
    (ZeRO-3, tensor parallel) be judged against the least free GPU of that larger set."""
    from mlops_cli.mem.stacks import resolve

    setup, _ = resolve(setup, model.model_type)
    current = required(model, setup, capacity)
    advice = Advice()
    # Tight: the remedies that would add headroom, the searched values (batch, lengths) sized to
    # leave TIGHT_SHARE of the GPU free.
    target = int(capacity * (1 - TIGHT_SHARE)) if is_tight(current, capacity) else capacity
    wanted = current > capacity or target < capacity
    candidates = _candidates(model, setup, target, gpus_available) if wanted else []
    for name, change, what, cost in candidates:
        trial = setup.with_changes(**change)
        cap = capacity_for(trial.gpus, capacity, free_by_gpu) if trial.gpus != setup.gpus else capacity
        new = required(model, trial, cap)
        if new < current:
            advice.remedies.append(Remedy(name, change, what, cost, new, current - new, new <= cap, cap))
    # The plan: apply remedies in cost order, keeping those that still lower the estimate.
    planned, planned_bytes, planned_cap = setup, current, capacity
    for remedy in list(advice.remedies):
        if planned_bytes <= planned_cap:
            break
        trial = planned.with_changes(**remedy.change)
        cap = capacity_for(trial.gpus, capacity, free_by_gpu) if trial.gpus != setup.gpus else capacity
        new = required(model, trial, cap)
        if new < planned_bytes:
            planned, planned_bytes, planned_cap = trial, new, cap
            advice.plan.append(
                Remedy(remedy.name, remedy.change, remedy.what, remedy.cost, new, current - new, new <= cap, cap)
            )
    advice.plan_fits = planned_bytes <= planned_cap
    # Listed: first the changes that make it fit on their own, cheapest first; then those that only
    # help. A cheaper change that cannot fix it alone is no answer to put first (the plan above
    # still combines them in cost order).
    advice.remedies.sort(key=lambda r: not r.fits)
    if setup.inference:
        # vLLM refuses a max-model-len beyond the model's max_position_embeddings, so the answer
        # stops at that limit when the config names one.
        upper = model.max_positions if model.max_positions > 0 else 1 << 21
        advice.largest_seq_len = largest_fitting(model, setup, capacity, "max_model_len", upper, 256)
    else:
        advice.largest_batch = largest_fitting(model, setup, capacity, "batch", 4096)
        advice.largest_seq_len = largest_fitting(model, setup, capacity, "seq_len", 1 << 20, 64)
    return advice
