"""The training / serving setup the estimate is for (plain data, validated)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Optional

from mlops_cli.errors import UsageError

GiB = 1024**3
METHODS = ("full", "freeze", "lora", "qlora")
PRECISIONS = ("fp32", "fp16", "bf16", "amp-fp16", "amp-bf16")
ATTENTION = ("flash", "sdpa", "eager")
OPTIMIZERS = ("adamw", "adamw-8bit", "paged-adamw-8bit", "sgd", "adafactor")
QUANTS = ("nf4", "int4", "int8", "fp8")
KV_DTYPES = ("auto", "fp8", "bf16", "fp16", "fp32")
OFFLOAD = (None, "optimizer", "params")

DEFAULT_CUDA_CONTEXT = int(0.5 * GiB)  # memory-anchors §1.8: ~0.3-0.5 GiB with lazy loading


@dataclass(frozen=True)
class Setup:
    method: str = "full"
    precision: str = "bf16"
    batch: int = 1
    seq_len: int = 2048
    grad_ckpt: bool = False
    attn: str = "flash"
    optimizer: str = "adamw"
    lora_rank: int = 8
    lora_targets: str = "all-linear"
    quant: Optional[str] = None  # base weights: qlora default nf4; serving: quantized weights
    freeze_layers_trained: int = 2  # --method freeze: the last N layers train
    fused_ce: bool = False  # Liger / chunked cross-entropy: no full-vocab logits kept
    gpus: int = 1
    zero: int = 0  # 0 = DDP/replicated; 1, 2, 3 = DeepSpeed ZeRO stage (3 = FSDP full shard)
    offload: Optional[str] = None
    # DeepSpeed ZeRO-3 knobs that put memory on the GPU (DeepSpeed config docs, "ZeRO optimizations"):
    # stage3_max_live_parameters (default 1e9 elements, also ms-swift's zero3.json) and
    # reduce_bucket_size; 0 = HF Trainer "auto" = hidden_size² (transformers deepspeed integration).
    zero3_live_params: int = 1_000_000_000
    zero_bucket: int = 0
    inference: bool = False
    max_model_len: Optional[int] = None
    max_seqs: int = 256
    max_batched_tokens: int = 8192
    kv_dtype: str = "auto"
    gpu_memory_utilization: float = 0.9
    cuda_context: int = DEFAULT_CUDA_CONTEXT
    allocator_reserve: float = 0.10  # memory-anchors §1.9: reserved ≈ allocated × 1.05-1.10

    def validated(self) -> "Setup":
        for value, allowed, flag in ((self.method, METHODS, "--method"), (self.precision, PRECISIONS, "--precision"),
                                     (self.attn, ATTENTION, "--attn"), (self.optimizer, OPTIMIZERS, "--optimizer"),
                                     (self.quant, QUANTS + (None,), "--quant"), (self.kv_dtype, KV_DTYPES, "--kv-dtype"),
                                     (self.offload, OFFLOAD, "--offload")):
            if value not in allowed:
                shown = ", ".join(str(a) for a in allowed if a is not None)
                raise UsageError(f"{flag}: {value!r} is not one of {shown}")
        for value, flag in ((self.batch, "--batch"), (self.seq_len, "--seq-len"), (self.gpus, "--gpus"),
                            (self.lora_rank, "--lora-rank"), (self.max_seqs, "--max-seqs"),
                            (self.max_batched_tokens, "--max-batched-tokens")):
            if value < 1:
                raise UsageError(f"{flag} must be at least 1, got {value}")
        if self.zero not in (0, 1, 2, 3):
            raise UsageError(f"--zero must be 0, 1, 2 or 3, got {self.zero}")
        if self.zero3_live_params < 0 or self.zero_bucket < 0:
            raise UsageError("ZeRO-3 live parameters and bucket size must not be negative")
        if self.max_model_len is not None and self.max_model_len < 1:
            raise UsageError(f"--max-model-len must be at least 1, got {self.max_model_len}")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise UsageError(f"--gpu-memory-utilization must be in (0, 1], got {self.gpu_memory_utilization}")
        if self.offload == "params" and self.zero != 3:
            raise UsageError("--offload params needs --zero 3 (parameters are offloaded by ZeRO-3 / FSDP)")
        return self

    def with_changes(self, **changes: Any) -> "Setup":
        return replace(self, **changes)

    @property
    def qlora_quant(self) -> str:
        return self.quant or "nf4"

    @property
    def serving_len(self) -> int:
        return self.max_model_len or self.seq_len

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
