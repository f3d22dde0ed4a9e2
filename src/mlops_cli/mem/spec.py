"""The training / serving setup an estimate is for: plain, validated data (pure).

A field left at `None` means "the stack's default"; `stacks.resolve()` fills it in from the
chosen `--stack` preset and then from the generic defaults below, so the JSON can echo exactly
what the estimate assumed and where each value came from.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Optional

from mlops_cli.errors import UsageError

# Any count or size a setup flag takes (batch, tokens, GPUs, ranks, bytes) stays below this:
# 2**40 is a trillion, far beyond any real setup, and keeps every product of them finite.
MAX_COUNT = 2**40
MIN_UTILIZATION = 0.01

GiB = 1024**3
MiB = 1024**2

OBJECTIVES = ("sft", "dpo", "kto", "orpo", "ppo", "grpo")
ONLINE = ("ppo", "grpo")  # objectives that generate their own completions during training
TUNINGS = ("full", "freeze", "lora", "qlora")
METHODS = TUNINGS + OBJECTIVES[1:]  # --method: a tuning (SFT) or an RL/preference objective
PRECISIONS = ("fp32", "fp16", "bf16", "amp-fp16", "amp-bf16")
ATTENTION = ("flash", "sdpa", "eager")
OPTIMIZERS = ("adamw", "adamw-fused", "adamw-8bit", "paged-adamw-8bit", "paged-adamw", "sgd", "adafactor")
QUANTS = ("nf4", "int4", "int8", "fp8", "mxfp4")
KV_DTYPES = ("auto", "fp8", "bf16", "fp16", "fp32")
LOSSES = ("full", "full-legacy", "chunked", "fused")
SHARDINGS = ("none", "ddp", "fsdp", "zero1", "zero2", "zero3")
OFFLOADS = ("none", "optimizer", "params", "activations")
REF_MODELS = ("auto", "copy", "none", "precomputed", "offload")
GEN_ENGINES = ("hf", "vllm-colocate", "vllm-hybrid", "vllm-server")
REWARD_MODELS = ("model", "function")
AC_MODES = ("full", "selective")
KERNELS = ("torch", "liger", "unsloth")
STACKS = (
    "hf",
    "trl",
    "llamafactory",
    "unsloth",
    "torchtune",
    "axolotl",
    "ms-swift",
    "fsdp-qlora",
    "deepspeed",
    "torchtitan",
)
DEFAULT_CUDA_CONTEXT = int(0.5 * GiB)  # memory-anchors §1.8: ~0.3-0.5 GiB with lazy loading


@dataclass(frozen=True)
class Setup:
    method: str = "full"
    tuning: Optional[str] = None  # for RL objectives: full | lora | qlora (default full)
    stack: Optional[str] = None
    stack_version: Optional[str] = None  # the framework release whose defaults apply (TRL); None = current
    transformers_version: Optional[str] = None  # the HF transformers release the run used; None = current
    precision: Optional[str] = None
    batch: int = 1
    seq_len: int = 2048
    grad_accum: int = 1
    grad_ckpt: Optional[bool] = None
    compile: bool = False  # torch.compile: inductor fuses the norm upcasts and the MLP activation
    kernels: Optional[str] = None  # torch | liger | unsloth: fused Triton norm/SwiGLU kernels save less
    ac_mode: Optional[str] = None  # full (HF/torch checkpoint of whole layers) | selective (torchtitan "op")
    attn: Optional[str] = None
    optimizer: Optional[str] = None
    optimizer_in_bwd: Optional[bool] = None
    lora_rank: Optional[int] = None
    lora_targets: Optional[str] = None
    lora_dropout: Optional[bool] = None
    lora_dtype: Optional[str] = None  # fp32 (PEFT autocast_adapter_dtype) | bf16 (torchtune, fsdp_qlora)
    quant: Optional[str] = None
    keep_fp32_non_quantized: Optional[bool] = None  # PEFT prepare_model_for_kbit_training
    loss: Optional[str] = None
    packing: Optional[bool] = None
    freeze_layers_trained: int = 2
    gpus: int = 1
    sharding: Optional[str] = None
    fsdp_unit: str = "layer"
    fsdp_version: Optional[int] = None  # 1: FSDP1 keeps the root unit unsharded; 2: fully_shard reshards it
    fsdp_prefetch_units: int = 2  # limit_all_gathers: the unit in use + the one prefetched
    zero3_live_params: int = 1_000_000_000  # stage3_max_live_parameters (DeepSpeed default)
    zero3_prefetch: int = 50_000_000  # stage3_prefetch_bucket_size (DeepSpeed default 5e7)
    zero_bucket: int = 0  # reduce_bucket_size; 0 = HF "auto" = hidden_size²
    offload: Optional[str] = None
    # RL / preference
    ref_model: str = "auto"
    num_generations: int = 8
    gen_engine: str = "hf"
    reward_model: str = "model"  # PPO: a reward-model copy, or rule/function rewards (verl reward_model.enable=False)
    gen_memory_utilization: float = 0.3  # TRL vllm_gpu_memory_utilization (colocate default)
    # TRL ds3_gather_for_generation (default True): under DeepSpeed ZeRO-3, in-trainer generation
    # gathers every parameter of the unwrapped model at once (trl/models/utils.py)
    ds3_gather_for_generation: bool = True
    max_completion_len: Optional[int] = None
    # serving
    inference: bool = False
    max_model_len: Optional[int] = None
    max_seqs: Optional[int] = None
    max_batched_tokens: Optional[int] = None
    kv_dtype: str = "auto"
    gpu_memory_utilization: float = 0.9
    vllm_version: Optional[str] = None
    enforce_eager: bool = False
    vllm_sampler: str = "auto"  # auto | native | flashinfer (serving.sampler_backend)
    cuda_context: int = DEFAULT_CUDA_CONTEXT

    # ------------------------------------------------------------------ derived
    @property
    def objective(self) -> str:
        return self.method if self.method in OBJECTIVES else "sft"

    @property
    def tune(self) -> str:
        """full | freeze | lora | qlora, whatever the objective."""
        if self.method in TUNINGS:
            return self.method
        return self.tuning or "full"

    @property
    def adapters(self) -> bool:
        return self.tune in ("lora", "qlora")

    @property
    def serving_len(self) -> int:
        return self.max_model_len or self.seq_len

    @property
    def zero(self) -> int:
        return {"zero1": 1, "zero2": 2, "zero3": 3}.get(self.sharding or "none", 0)

    def with_changes(self, **changes: Any) -> Setup:
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["objective"], doc["tuning"] = self.objective, self.tune
        # Fields of the first JSON contract, kept beside their successors (docs/mem.md, "Deprecated
        # fields"): `zero` (0-3; 3 also for FSDP full shard) before `sharding`, `fused_ce` before
        # `loss`, and `offload` null (not "none") when nothing is offloaded.
        doc["zero"] = 3 if self.sharding == "fsdp" else self.zero
        doc["fused_ce"] = self.loss == "fused"
        if doc.get("offload") == "none":
            doc["offload"] = None
        return doc

    # ------------------------------------------------------------------ checks
    def validated(self) -> Setup:
        _choice(self.method, METHODS, "--method")
        for value, allowed, flag in (
            (self.tuning, TUNINGS, "--tuning"),
            (self.precision, PRECISIONS, "--precision"),
            (self.attn, ATTENTION, "--attn"),
            (self.optimizer, OPTIMIZERS, "--optimizer"),
            (self.quant, QUANTS, "--quant"),
            (self.loss, LOSSES, "--loss"),
            (self.sharding, SHARDINGS, "--sharding"),
            (self.kernels, KERNELS, "--kernels"),
        ):
            if value is not None:
                _choice(value, allowed, flag)
        if self.ac_mode is not None:
            _choice(self.ac_mode, AC_MODES, "--ac-mode")
        _choice(self.fsdp_unit, ("layer", "model"), "--fsdp-unit")
        if self.fsdp_version not in (None, 1, 2):
            raise UsageError(f"--fsdp-version must be 1 or 2, got {self.fsdp_version}")
        if self.stack is not None:
            _choice(self.stack, STACKS, "--stack")
        _choice(self.kv_dtype, KV_DTYPES, "--kv-dtype")
        _choice(self.vllm_sampler, ("auto", "native", "flashinfer"), "--vllm-sampler")
        if self.offload is not None:
            _choice(self.offload, OFFLOADS, "--offload")
        _choice(self.ref_model, REF_MODELS, "--ref-model")
        _choice(self.gen_engine, GEN_ENGINES, "--gen-engine")
        _choice(self.reward_model, REWARD_MODELS, "--reward-model")
        for value, flag in (
            (self.batch, "--batch"),
            (self.seq_len, "--seq-len"),
            (self.gpus, "--gpus"),
            (self.grad_accum, "--grad-accum"),
            (self.num_generations, "--num-generations"),
            (self.fsdp_prefetch_units, "--fsdp-prefetch-units"),
        ):
            if value < 1:
                raise UsageError(f"{flag} must be at least 1, got {value}")
        for value, flag in (
            (self.lora_rank, "--lora-rank"),
            (self.max_seqs, "--max-seqs"),
            (self.max_batched_tokens, "--max-batched-tokens"),
            (self.max_model_len, "--max-model-len"),
            (self.max_completion_len, "--max-completion-len"),
        ):
            if value is not None and value < 1:
                raise UsageError(f"{flag} must be at least 1, got {value}")
        if self.zero3_live_params < 0 or self.zero_bucket < 0 or self.zero3_prefetch < 0:
            raise UsageError("ZeRO-3 live parameters, prefetch and bucket sizes must not be negative")
        for value, flag in (
            (self.gpu_memory_utilization, "--gpu-memory-utilization"),
            (self.gen_memory_utilization, "--gen-memory-utilization"),
        ):
            # Below 1 % no model loads; 1e-300 would make the required capacity infinite.
            if not MIN_UTILIZATION <= value <= 1:
                raise UsageError(f"{flag} must be between {MIN_UTILIZATION} and 1, got {value}")
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, int) and not isinstance(value, bool) and value > MAX_COUNT:
                raise UsageError(
                    f"--{f.name.replace('_', '-')} {str(value)[:40]} is out of range "
                    f"(at most {MAX_COUNT:,}; no GPU setup comes near it)"
                )
        self._check_contradictions()
        return self

    def _check_contradictions(self) -> None:
        if self.inference and self.method != "full":
            raise UsageError(
                f"--inference with --method {self.method}: serving has no training method",
                hint="drop --method, or drop --inference to estimate training",
            )
        if self.inference and self.sharding not in (None, "none"):
            raise UsageError(
                f"--inference with --sharding {self.sharding}: vLLM serving shards by tensor "
                "parallelism (--gpus), not by FSDP/ZeRO",
                hint="drop --fsdp/--zero/--sharding",
            )
        if self.tuning is not None and self.method in TUNINGS and self.tuning != self.method:
            raise UsageError(
                f"--method {self.method} with --tuning {self.tuning}: two different tunings",
                hint="--tuning goes with an RL method (--method dpo|kto|orpo|ppo|grpo)",
            )
        if self.offload == "params" and self.sharding not in (None, "fsdp", "zero3"):
            raise UsageError("--offload params needs --fsdp or --zero 3 (parameters are offloaded by a sharded run)")
        if self.offload == "optimizer" and self.sharding not in (None, "zero1", "zero2", "zero3", "fsdp"):
            raise UsageError("--offload optimizer needs DeepSpeed ZeRO (--zero 1|2|3) or --fsdp")
        if self.quant == "mxfp4" and not self.inference:
            raise UsageError(
                "--quant mxfp4 is a serving format (gpt-oss checkpoints)",
                hint="for training use --method qlora --quant nf4",
            )
        if self.optimizer_in_bwd and self.grad_accum > 1:
            raise UsageError(
                "--optimizer-in-bwd with --grad-accum > 1: the step runs in backward, so there are "
                "no gradients to accumulate (torchtune refuses this too)"
            )
        if self.gen_engine != "hf" and self.objective not in ONLINE:
            raise UsageError(f"--gen-engine {self.gen_engine} applies to --method grpo|ppo (online generation)")
        if self.reward_model != "model" and self.objective != "ppo":
            raise UsageError(
                f"--reward-model {self.reward_model} applies to --method ppo (GRPO rewards are functions already)"
            )


def _choice(value: Any, allowed: tuple[str, ...], flag: str) -> None:
    if value not in allowed:
        raise UsageError(f"{flag}: {value!r} is not one of {', '.join(allowed)}")


def field_names() -> list[str]:
    return [f.name for f in fields(Setup)]
