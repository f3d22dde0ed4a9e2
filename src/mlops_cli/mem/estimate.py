"""Per-GPU memory of a training or serving setup (pure facade over the phase and serving models).

Training: `phases.training_peak` (the largest of forward end, loss backward, checkpointed-layer
recompute and optimizer step) in three metrics: allocated, torch peak (reserved) and device
(nvidia-smi: reserved + CUDA context + NCCL + paged optimizer states). Serving: `serving.serving`
(vLLM's own profiling rule for the chosen `--vllm-version`). Sources: docs/mem.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from mlops_cli.errors import UsageError
from mlops_cli.mem import rl
from mlops_cli.mem.config import ModelConfig
from mlops_cli.mem.phases import TrainPeak, training_peak
from mlops_cli.mem.serving import ServingEstimate, required_capacity, serving
from mlops_cli.mem.spec import Setup
from mlops_cli.mem.stacks import resolve
from mlops_cli.mem.terms import kv_bytes_per_token


@dataclass
class Estimate:
    model: ModelConfig
    setup: Setup  # resolved: every field filled
    origin: dict[str, str]
    train: Optional[TrainPeak] = None
    serve: Optional[ServingEstimate] = None
    notes: list[str] = field(default_factory=list)
    capacity: Optional[int] = None
    gpu_name: str = ""

    @property
    def trainable_params(self) -> int:
        return self.train.states.trainable if self.train else 0

    @property
    def allocated_peak_bytes(self) -> int:
        if self.train:
            return int(self.train.allocated)
        sv = self.serve
        return int(sv.weights + sv.activation_peak) if sv else 0

    @property
    def torch_peak_bytes(self) -> int:
        if self.train:
            return int(self.train.reserved)
        sv = self.serve
        if sv and sv.kv_cache_bytes is not None:
            return int(sv.weights + sv.activation_peak + max(0.0, sv.kv_cache_bytes))
        return self.allocated_peak_bytes

    @property
    def device_peak_bytes(self) -> int:
        if self.train:
            return int(self.train.device)
        sv = self.serve
        assert sv is not None
        context = 0.5 * 1024**3
        if sv.requested is not None:  # vLLM fills its share of the GPU; graphs and context sit beside it
            extra = 0.0 if sv.cuda_graphs_subtracted else 0.5 * 1024**3
            return int(sv.requested + extra + context)
        return int(self.required_bytes)

    @property
    def peak_bytes(self) -> int:
        return self.device_peak_bytes

    @property
    def peak_phase(self) -> str:
        return self.train.peak_phase if self.train else "serving"

    @property
    def required_bytes(self) -> int:
        """What must fit on each GPU: the device peak for training, less paged optimizer states;
        for serving, the GPU size on which vLLM can hold one full-length sequence at this
        --gpu-memory-utilization.

        Paged optimizer states live in CUDA unified memory: nvidia-smi counts them while there is
        room, but the driver moves them to host memory "when GPU memory is exhausted" (bitsandbytes
        docs, reference/optim/adam: "paged optimizers which take advantage of CUDAs unified memory to
        transfer memory from the GPU to the CPU when GPU memory is exhausted"), so they never cause
        an out-of-memory error and are not part of what must fit."""
        if self.train:
            return int(self.train.device - self.train.states.paged)
        return int(required_capacity(self.model, self.setup, self.gpu_name, self.capacity, self.model.quantization))

    @property
    def breakdown(self) -> dict[str, int]:
        """The peak phase's parts plus the device-only terms."""
        if self.train:
            parts = {k: int(v) for k, v in max(self.train.phases, key=lambda p: p.total).parts.items() if v}
            parts["allocator_reserve"] = int(self.train.reserved - self.train.allocated)
            parts["cuda_context_and_nccl"] = int(self.train.context)
            if self.train.states.paged:
                parts["paged_optimizer_states"] = int(self.train.states.paged)
            return parts
        sv = self.serve
        assert sv is not None
        parts = {
            "weights": int(sv.weights),
            "profile_activation_peak": int(sv.activation_peak),
            "non_torch": int(sv.non_torch),
            "cuda_graphs": int(sv.cuda_graphs_subtracted),
        }
        if sv.kv_cache_bytes is not None:
            parts["kv_cache"] = int(max(0.0, sv.kv_cache_bytes))
        return parts


def _check_model(model: ModelConfig, s: Setup) -> None:
    if s.inference and model.heads % s.gpus:
        raise UsageError(
            f"--gpus {s.gpus} with --inference: vLLM needs the tensor-parallel size to divide the "
            f"{model.heads} attention heads",
            hint="--gpus " + " | ".join(str(n) for n in range(1, 9) if model.heads % n == 0),
        )


def estimate(model: ModelConfig, setup: Setup, capacity: Optional[int] = None, gpu_name: str = "") -> Estimate:
    """The per-GPU estimate. `capacity` (bytes per GPU) matters for serving (KV cache size) and
    for a colocated GRPO generation engine."""
    resolved, origin = resolve(setup.validated(), model.model_type)
    resolved = resolved.validated()
    _check_model(model, resolved)
    est = Estimate(model, resolved, origin, capacity=capacity, gpu_name=gpu_name)
    if resolved.inference:
        q = model.quantization
        est.serve = serving(model, resolved, capacity, gpu_name, q)
        est.notes.extend(est.serve.notes)
        per = kv_bytes_per_token(model, resolved.gpus, 2 if resolved.kv_dtype in ("auto", "bf16", "fp16") else 1)
        est.notes.append(
            f"KV cache: {per / 1024:.0f} KiB per token ({model.layers} layers × "
            f"{max(1, model.kv_heads // resolved.gpus)} KV heads × {model.head_dim} head dim)"
        )
        if model.max_positions and resolved.serving_len > model.max_positions:
            est.notes.append(
                f"--max-model-len {resolved.serving_len} is longer than the model's {model.max_positions} "
                "positions (max_position_embeddings): vLLM refuses it unless "
                "VLLM_ALLOW_LONG_MAX_MODEL_LEN=1 (or RoPE scaling in the config)"
            )
        return est
    est.train = training_peak(model, resolved, capacity)
    est.notes.extend(est.train.notes)
    if resolved.attn == "eager":
        est.notes.append("eager attention stores the heads·seq² score matrix per layer; --attn flash/sdpa removes it")
    return est


def describe_setup(est: Estimate) -> dict[str, Any]:
    doc = est.setup.to_json()
    doc["origin"] = dict(est.origin)
    doc["reference_model"] = rl.ref_mode(est.setup)
    return doc
