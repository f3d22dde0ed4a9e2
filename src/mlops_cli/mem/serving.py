"""vLLM serving memory, following vLLM's own start-up profiling release by release (pure).

What vLLM subtracts from `total_gpu_memory × gpu_memory_utilization` before sizing the KV
cache changed between releases (sources: vllm/worker/worker.py `determine_num_available_blocks`,
vllm/v1/worker/gpu_worker.py `determine_available_memory` and `init_device`, vllm/utils.py
`memory_profiling`; PRs and line-level notes in docs/mem.md, "vLLM versions"):

- `< 0.6.4` (V0): the profile run's allocated peak (weights included) plus every byte not held by
  torch after it (`mem_get_info` used − torch allocated: CUDA context, NCCL and custom
  all-reduce buffers, cuBLAS workspaces, other processes).
- `0.6.4 - 0.7.x` (V0, PR #9352 / #10511 `memory_profiling`): weights + the torch peak increase of
  the profile run + the non-torch increase since the worker started.
- `0.8.0 - 0.9.1` (V1 default engine): the V0 `< 0.6.4` rule again (`peak_memory +
  non_torch_allocations`, context and other processes included).
- `0.9.2 - 0.10.x` (PR #19312: V1 reuses `memory_profiling`; snapshot after the CUDA context,
  before NCCL): weights + torch peak increase + non-torch increase (NCCL and custom all-reduce
  buffers included, context not).
- `0.11.0 -` (PR #25359: NCCL initialised before the snapshot): NCCL buffers are no longer
  subtracted either.
- `0.21.0 -` (PR #30515, default on since v0.21.0): the CUDA graphs' memory is estimated before
  KV sizing and subtracted (`VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=1`); before that, graphs are
  captured after the KV cache is allocated and come out of the (1 − utilization) margin.

The profile run (`profile_run`) pushes `max_num_batched_tokens` tokens through the model and the
sampler over `max_num_seqs` rows of logits. V0 without chunked prefill profiles
`max(max_model_len, 2048)` tokens; V1 (chunked prefill always on) uses the engine defaults of
`arg_utils._set_default_args_v1`: 8192 tokens / 1024 sequences for `vllm serve` on GPUs with at
least 70 GiB that are not A100s, 2048 / 256 otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional

from mlops_cli.mem import terms
from mlops_cli.mem.config import ModelConfig
from mlops_cli.mem.spec import GiB, Setup
from mlops_cli.mem.quant import QuantInfo
from mlops_cli.mem.quant import weight_bytes as quant_weight_bytes
from mlops_cli.mem.states import QUANT_BYTES

DEFAULT_VLLM_VERSION = "0.29.0"
BLOCK_SIZE = 16
CUDA_CONTEXT = 0.5 * GiB  # memory-anchors §1.8 (lazy module loading)
CUBLAS_AND_MISC = 0.2 * GiB  # non-torch growth during a TP=1 profile run (v0.10.1 A100 logs: ≈0.25 GiB)
NCCL_TP = 0.45 * GiB  # NCCL + custom all-reduce buffers per rank on one node (v0.10.1 A100 TP2 logs)
# Hopper/Blackwell NVSwitch systems: NCCL's NVLS buffers. PR #25359: free memory 78.59 GiB before
# NCCL init, 74.07 GiB after ("~4.5 GiB for tensor parallelism").
NCCL_TP_NVLS = 4.5 * GiB
NVLS_GPUS = ("H100", "H200", "H800", "H20", "B200", "B300", "GB200", "GB300")
NCCL_TP_V0 = 1.8 * GiB  # V0 0.6.x: non_torch 1.79 GiB at TP1 vs 3.58 GiB at TP2 on H100 (PR #10511)
CUDA_GRAPHS = 0.5 * GiB  # "Graph capturing finished ... took 0.65 GiB" (v0.10.1, TP2); 0.36 GiB (v0.27.1 log)
SAMPLER_COPIES = 2  # fp32 logits rows and their softmax / top-k scratch during the dummy sampler run


@dataclass
class ServingEstimate:
    era: str
    weights: float
    activation_peak: float
    non_torch: float
    cuda_graphs_subtracted: float
    kv_bytes_per_token: int
    max_num_seqs: int
    max_num_batched_tokens: int
    requested: Optional[float] = None  # total × utilization
    kv_cache_bytes: Optional[float] = None
    kv_cache_tokens: Optional[int] = None
    max_concurrency: Optional[float] = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {k: (int(v) if isinstance(v, float) and k not in ("max_concurrency",) else v)
                for k, v in self.__dict__.items()}


def parse_version(text: Optional[str]) -> tuple[int, int, int]:
    raw = (text or DEFAULT_VLLM_VERSION).strip().lstrip("v")
    parts = []
    for piece in raw.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    if not parts:
        from mlops_cli.errors import UsageError

        raise UsageError(f"--vllm-version {text!r} is not a version like 0.10.1")
    while len(parts) < 3:
        parts.append(0)
    return parts[0], parts[1], parts[2]


def era(version: tuple[int, int, int]) -> str:
    if version < (0, 6, 4):
        return "v0-absolute"
    if version < (0, 8, 0):
        return "v0-profiling"
    if version < (0, 9, 2):
        return "v1-absolute"
    if version < (0, 11, 0):
        return "v1-profiling"
    if version < (0, 21, 0):
        return "v1-nccl-in-baseline"
    return "v1-cudagraphs-estimated"


def engine_defaults(s: Setup, version: tuple[int, int, int], gpu_name: str, capacity: Optional[float]) -> tuple[int, int]:
    """(max_num_seqs, max_num_batched_tokens) the profile run uses, unless given."""
    if version < (0, 8, 0):
        seqs = 256
        tokens = max(s.serving_len, 2048) if s.serving_len <= 32768 else 512  # chunked prefill > 32K
    else:
        big = capacity is not None and capacity >= 70 * GiB and "a100" not in gpu_name.lower()
        seqs, tokens = (1024, 8192) if big else (256, 2048)
    return s.max_seqs or seqs, s.max_batched_tokens or tokens


def weights_per_rank(model: ModelConfig, s: Setup, q: "Optional[QuantInfo]" = None) -> float:
    tp = s.gpus
    if q is not None:
        return quant_weight_bytes(model, q) / tp
    if s.quant:
        q = QUANT_BYTES[s.quant]
        return (model.linear_params * q + (model.total_params - model.linear_params) * 2) / tp
    bpa = terms.activation_bytes(s.precision or "bf16")
    return model.total_params * bpa / tp


def activation_peak(model: ModelConfig, s: Setup, tokens: int, seqs: int) -> float:
    """Torch peak increase of the profile run: one block's widest moment for `tokens` tokens
    (residual + hidden + gate/up output + activation output, TP-split where vLLM splits), or the
    sampler's fp32 logits over `seqs` rows, whichever is larger."""
    tp = s.gpus
    bpa = terms.activation_bytes(s.precision or "bf16")
    inter = model.active_mlp_intermediate
    if model.experts:  # fused MoE: top-k copies of each token through the experts' gate/up/down
        inter = model.experts_per_token * model.expert_intermediate + model.shared_expert_intermediate
    forward = tokens * bpa * (2 * model.hidden + 3 * inter / tp)
    sampler = min(seqs, tokens) * model.vocab * 4 * SAMPLER_COPIES
    return float(max(forward, sampler) + tokens * bpa * model.hidden)  # + the hidden states returned


def nccl_per_rank(s: Setup, gpu_name: str) -> float:
    if s.gpus <= 1:
        return 0.0
    name = gpu_name.upper().replace(" ", "")
    return NCCL_TP_NVLS if any(g in name for g in NVLS_GPUS) else NCCL_TP


def non_torch(s: Setup, which: str, version: tuple[int, int, int], gpu_name: str = "") -> float:
    nccl = nccl_per_rank(s, gpu_name)
    if which in ("v0-absolute", "v1-absolute"):
        return CUDA_CONTEXT + CUBLAS_AND_MISC + nccl
    if which == "v0-profiling":
        return CUBLAS_AND_MISC + (NCCL_TP_V0 if s.gpus > 1 else 0.0)
    if which == "v1-profiling":
        return CUBLAS_AND_MISC + nccl
    return CUBLAS_AND_MISC


def kv_dtype_bytes(s: Setup) -> int:
    return {"fp8": 1, "bf16": 2, "fp16": 2, "fp32": 4}.get(s.kv_dtype, 4 if s.precision == "fp32" else 2)


def serving(model: ModelConfig, s: Setup, capacity: Optional[float], gpu_name: str = "",
            q: Optional[QuantInfo] = None) -> ServingEstimate:
    """`capacity`: total GPU memory as torch sees it (cudaMemGetInfo total), or None."""
    version = parse_version(s.vllm_version)
    which = era(version)
    seqs, tokens = engine_defaults(s, version, gpu_name, capacity)
    weights = weights_per_rank(model, s, q)
    act = activation_peak(model, s, tokens, seqs)
    other = non_torch(s, which, version, gpu_name)
    graphs = CUDA_GRAPHS if (which == "v1-cudagraphs-estimated" and not s.enforce_eager) else 0.0
    per_token = terms.kv_bytes_per_token(model, s.gpus, kv_dtype_bytes(s))
    est = ServingEstimate(which, weights, act, other, graphs, per_token, seqs, tokens)
    est.notes.append(f"vLLM {'.'.join(map(str, version))} ({which}): KV cache = total × {s.gpu_memory_utilization} − "
                     "weights − profile-run peak − non-torch memory" + (" − CUDA graphs" if graphs else ""))
    if capacity is not None:
        est.requested = capacity * s.gpu_memory_utilization
        kv = est.requested - weights - act - other - graphs
        est.kv_cache_bytes = kv
        blocks = max(0, int(kv // (per_token * BLOCK_SIZE)))
        est.kv_cache_tokens = blocks * BLOCK_SIZE
        est.max_concurrency = round(est.kv_cache_tokens / s.serving_len, 2)
    return est


def required_capacity(model: ModelConfig, s: Setup, gpu_name: str = "", capacity: Optional[float] = None,
                      q: Optional[QuantInfo] = None) -> float:
    """The smallest GPU (torch-visible total) on which one full-length sequence fits; the engine
    defaults are those vLLM would pick on the GPU of `capacity` when it is known."""
    version = parse_version(s.vllm_version)
    which = era(version)
    seqs, tokens = engine_defaults(s, version, gpu_name, capacity)
    static = weights_per_rank(model, s, q) + activation_peak(model, s, tokens, seqs) + non_torch(s, which, version, gpu_name)
    if which == "v1-cudagraphs-estimated" and not s.enforce_eager:
        static += CUDA_GRAPHS
    per_token = terms.kv_bytes_per_token(model, s.gpus, kv_dtype_bytes(s))
    need_kv = math.ceil(s.serving_len / BLOCK_SIZE) * BLOCK_SIZE * per_token
    return (static + need_kv) / s.gpu_memory_utilization
