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
- `0.20.0 -` (PR #30515; vllm/envs.py: the variable appears in 0.18.0 with default "0", the
  default is "1" from 0.20.0): the CUDA graphs' memory is estimated before KV sizing and
  subtracted (`VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS`); before that, graphs are captured after
  the KV cache is allocated and come out of the (1 − utilization) margin.

The profile run (`profile_run`) pushes `max_num_batched_tokens` tokens through the model, then
the sampler over `max_num_seqs` rows of logits (`_dummy_sampler_run`: top-k = vocab − 1 and
top-p = 0.9, so the top-k/top-p path runs). What the sampler allocates depends on its backend
(`vllm/v1/sample/ops/topk_topp_sampler.py`), see `sampler_backend`. V0 without chunked prefill
profiles `max(max_model_len, 2048)` tokens; V1 (chunked prefill always on) uses the engine defaults
of `arg_utils.py` (`_set_default_args[_v1]`): 8192 tokens / 1024 sequences for `vllm serve` on
GPUs with at least 70 GiB (0.8.x: A100s too; 0.9.0-0.27.x: not A100s), 16384 / 1024 from 0.28.0 on
GPUs with at least 160 GiB, 2048 / 256 otherwise.

KV cache layout (`vllm/v1/core/kv_cache_utils.py`, `vllm/v1/kv_cache_interface.py`): every
attention layer gets the same page (block_size × 2 × KV heads per rank × head dim × bytes; MLA:
block_size × (kv_lora_rank + qk_rope_head_dim) × bytes, not split by TP). Models that mix layer
kinds (sliding window, chunked, linear/Mamba state): before 0.9.2 `unify_hybrid_kv_cache_specs`
turns sliding layers into full ones; from 0.9.2 `_get_kv_cache_config_uniform_page_size` groups
layers by kind into groups of `min(count per kind)` layers (padding the rest) that share one block
pool, so the reported "GPU KV cache size" (`num_blocks // groups × block_size`) equals the memory
divided by the per-token cost of all (padded) layers, while "Maximum concurrency" counts what one
request really needs per group (`max_memory_usage_bytes`: sliding = window − 1 + batched tokens,
chunked = chunk + batched tokens, full = max_model_len). From 0.21.0 the reported size is
`max_concurrency × max_model_len` (`_report_kv_cache_config`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional

from mlops_cli.mem import terms
from mlops_cli.mem.config import ModelConfig
from mlops_cli.mem.quant import QuantInfo
from mlops_cli.mem.quant import weight_bytes as quant_weight_bytes
from mlops_cli.mem.spec import GiB, Setup
from mlops_cli.mem.states import QUANT_BYTES

DEFAULT_VLLM_VERSION = "0.29.0"
BLOCK_SIZE = 16
CUDA_CONTEXT = 0.5 * GiB  # memory-anchors §1.8 (lazy module loading)
CUBLAS_AND_MISC = (
    0.2 * GiB
)  # non-torch growth during a TP=1 profile run (v0.10.1 A100 logs: ≈0.25 GiB; llm-d H100: 0.13)
NCCL_TP = 0.45 * GiB  # NCCL + custom all-reduce buffers per rank, NVLink without NVSwitch (v0.10.1 A100 TP2 logs)
NCCL_TP_PCIE = 0.1 * GiB  # PCIe-only cards (L40S/L4/RTX): issue #15815 prints non_torch 0.30 GiB at TP2 on L40S
# Hopper/Blackwell NVSwitch systems: NCCL's NVLS buffers. PR #25359: free memory 78.59 GiB before
# NCCL init, 74.07 GiB after ("~4.5 GiB for tensor parallelism").
NCCL_TP_NVLS = 4.5 * GiB
NVLS_GPUS = ("H100", "H200", "H800", "H20", "B200", "B300", "GB200", "GB300")
PCIE_GPUS = ("L40", "L4", "RTX", "A10", "A40", "A6000", "T4", "3090", "4090", "5090")
NCCL_TP_V0 = 1.8 * GiB  # V0 0.6.x: non_torch 1.79 GiB at TP1 vs 3.58 GiB at TP2 on H100 (PR #10511)
# From 0.11 NCCL is set up before the baseline snapshot (PR #25359), yet several ranks still grow
# non-torch memory during the profile run: llm-d H100 logs print 0.13 GiB at TP1 and 0.54-0.55 at TP2.
TP_NON_TORCH_IN_BASELINE_ERA = 0.4 * GiB
CUDA_GRAPHS = 0.5 * GiB  # "Graph capturing finished ... took 0.65 GiB" (v0.10.1, TP2); 0.36 GiB (v0.27.1 log)
SAMPLER_COPIES = 2  # V0: fp32 logits rows and their softmax / top-k scratch during the dummy sampler run
# Bytes per logit element (max_num_seqs × vocab) held at the peak of the V1 dummy sampler run:
# - "native" (sort-based apply_top_k_top_p: bf16 logits, fp32 copy, sorted values + int64 indices,
#   the sort's scratch, probabilities, scatter): 38.4 B measured -- llm-d H100 logs give a torch peak
#   increase of 4.76 GiB (Llama-3.1-8B, vocab 128256), 5.56 (Qwen3-0.6B, 151936) and 7.38
#   (gpt-oss-20b, 201088) at 1024 sequences, all 38.0-38.5 B per element; vLLM issue #23278
#   (0.10.1 without FlashInfer) implies the same for gpt-oss-120b;
# - "flashinfer" (FlashInfer's fused top-k/top-p kernel samples from the fp32 logits without a sort or
#   a probability copy: bf16 logits + their fp32 copy + scratch): 8 B -- the v0.10.1.1 A100 logs that
#   print "Using FlashInfer for top-p & top-k sampling" (vllm-points.csv, dennislee22) leave 0.53 GiB
#   for activation + non-torch memory at 256 sequences x 152064 (0.29 GiB at 8 B);
# - "triton" (0.17-0.20 apply_top_k_top_p_triton masks the fp32 logits in place, then softmax
#   probabilities and the exponential draw `q` of random_sample): 14 B, counted from the code.
SAMPLER_BYTES = {"native": 38.4, "flashinfer": 8.0, "triton": 14.0}
SAMPLERS = ("auto", "native", "flashinfer")


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
    sampler: str = "v0"
    kv_layout: str = "uniform"
    requested: Optional[float] = None  # total × utilization
    kv_cache_bytes: Optional[float] = None
    kv_cache_tokens: Optional[int] = None
    max_concurrency: Optional[float] = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            k: (int(v) if isinstance(v, float) and k not in ("max_concurrency",) else v)
            for k, v in self.__dict__.items()
        }


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
    if version < (0, 20, 0):
        return "v1-nccl-in-baseline"
    return "v1-cudagraphs-estimated"


def sampler_backend(s: Setup, version: tuple[int, int, int]) -> str:
    """Which top-k/top-p implementation the V1 dummy sampler run uses (topk_topp_sampler.py):
    0.8.0-0.11.0 FlashInfer when it is installed (an optional extra of the pip wheel, bundled in the
    Docker image; the default here is the pip case, `--vllm-sampler flashinfer` for the image);
    0.11.1-0.16.x PyTorch-native sort unless VLLM_USE_FLASHINFER_SAMPLER=1 (opt-in); 0.17-0.20
    `apply_top_k_top_p_triton` for 8+ rows; from 0.21.0 FlashInfer by default (envs.py default True)."""
    if version < (0, 8, 0):
        return "v0"
    if s.vllm_sampler and s.vllm_sampler != "auto":
        return s.vllm_sampler
    if version < (0, 17, 0):
        return "native"
    if version < (0, 21, 0):
        return "triton"
    return "flashinfer"


def engine_defaults(
    s: Setup, version: tuple[int, int, int], gpu_name: str, capacity: Optional[float]
) -> tuple[int, int]:
    """(max_num_seqs, max_num_batched_tokens) the profile run uses, unless given (arg_utils.py,
    `_set_default_args_v1`, read in the PyPI sdists of each release):

    - 0.8.0-0.8.3: `default_max_num_seqs = 1024` on every GPU; max_num_batched_tokens for `vllm serve`
      8192 when the device name contains "h100" or "h200", else 2048;
    - 0.8.4: both by device name: H100/H200 1024 / 8192, every other GPU 256 / 2048;
    - 0.8.5 on: by `get_device_total_memory() >= 70 GiB` (0.9.0 on: and not an A100), 16384 tokens
      on >= 160 GiB GPUs from 0.28.0."""
    if version < (0, 8, 0):
        seqs = 256
        tokens = max(s.serving_len, 2048) if s.serving_len <= 32768 else 512  # chunked prefill > 32K
    elif version < (0, 8, 5):
        hopper = any(n in gpu_name.lower() for n in ("h100", "h200"))
        tokens = 8192 if hopper else 2048
        seqs = 1024 if (hopper or version < (0, 8, 4)) else 256
    else:
        a100_ok = version < (0, 9, 0)  # 0.8.x: `device_memory >= 70 GiB` alone; 0.9.0 adds `"a100" not in name`
        big = capacity is not None and capacity >= 70 * GiB and (a100_ok or "a100" not in gpu_name.lower())
        seqs, tokens = (1024, 8192) if big else (256, 2048)
        if version >= (0, 28, 0) and capacity is not None and capacity >= 160 * GiB:
            seqs, tokens = 1024, 16384
    return s.max_seqs or seqs, s.max_batched_tokens or tokens


def weights_per_rank(model: ModelConfig, s: Setup, q: Optional[QuantInfo] = None) -> float:
    tp = s.gpus
    if q is not None:
        return quant_weight_bytes(model, q) / tp
    if s.quant:
        q = QUANT_BYTES[s.quant]
        return (model.linear_params * q + (model.total_params - model.linear_params) * 2) / tp
    bpa = terms.activation_bytes(s.precision or "bf16")
    return model.total_params * bpa / tp


def activation_peak(model: ModelConfig, s: Setup, tokens: int, seqs: int, sampler: str = "v0") -> float:
    """Torch peak increase of the profile run: one block's widest moment for `tokens` tokens
    (residual + hidden + gate/up output + activation output, TP-split where vLLM splits), or the
    dummy sampler run over `min(seqs, tokens)` rows of logits, whichever is larger."""
    tp = s.gpus
    bpa = terms.activation_bytes(s.precision or "bf16")
    inter = model.active_mlp_intermediate
    if model.experts:  # fused MoE: top-k copies of each token through the experts' gate/up/down
        inter = model.experts_per_token * model.expert_intermediate + model.shared_expert_intermediate
    forward = tokens * bpa * (2 * model.hidden + 3 * inter / tp)
    rows = min(seqs, tokens)
    per_element = SAMPLER_COPIES * 4 if sampler == "v0" else SAMPLER_BYTES[sampler]
    sampler_bytes = rows * model.vocab * per_element
    return float(max(forward, sampler_bytes) + tokens * bpa * model.hidden)  # + the hidden states returned


def nccl_per_rank(s: Setup, gpu_name: str) -> float:
    if s.gpus <= 1:
        return 0.0
    name = gpu_name.upper().replace(" ", "")
    if any(g in name for g in NVLS_GPUS):
        return NCCL_TP_NVLS
    if any(g in name for g in PCIE_GPUS) and "A100" not in name:
        return NCCL_TP_PCIE
    return NCCL_TP


def non_torch(s: Setup, which: str, version: tuple[int, int, int], gpu_name: str = "") -> float:
    nccl = nccl_per_rank(s, gpu_name)
    if which in ("v0-absolute", "v1-absolute"):
        return CUDA_CONTEXT + CUBLAS_AND_MISC + nccl
    if which == "v0-profiling":
        v0_nccl = NCCL_TP_V0 if nccl == NCCL_TP_NVLS else nccl
        return CUBLAS_AND_MISC + (v0_nccl if s.gpus > 1 else 0.0)
    if which == "v1-profiling":
        return CUBLAS_AND_MISC + nccl
    return CUBLAS_AND_MISC + (TP_NON_TORCH_IN_BASELINE_ERA if s.gpus > 1 else 0.0)


def kv_dtype_bytes(s: Setup) -> int:
    return {"fp8": 1, "bf16": 2, "fp16": 2, "fp32": 4}.get(s.kv_dtype, 4 if s.precision == "fp32" else 2)


# ---------------------------------------------------------------------------------------------- KV layout
def layer_kinds(model: ModelConfig) -> tuple[str, ...]:
    return model.layer_kinds or ("full",) * model.layers


def kv_layer_bytes(model: ModelConfig, tp: int, dtype_bytes: int) -> int:
    """Bytes per token of one attention layer's KV cache on one rank (MLA: the latent, replicated)."""
    if model.kv_lora_rank:
        return (model.kv_lora_rank + model.qk_rope_head_dim) * dtype_bytes
    return 2 * max(1, model.kv_heads // tp) * model.head_dim * dtype_bytes


def kv_groups(model: ModelConfig, version: tuple[int, int, int]) -> tuple[dict[str, int], int]:
    """({kind: layers after padding}, layers per group) as vLLM groups them, or every layer full
    before the hybrid allocator (0.9.2) and in V0."""
    kinds = layer_kinds(model)
    counts: dict[str, int] = {}
    for k in kinds:
        counts[k] = counts.get(k, 0) + 1
    if len(counts) > 1 and version < (0, 9, 2):  # unify_hybrid_kv_cache_specs: sliding -> full
        counts = {"full": sum(counts.values())}
    if len(counts) == 1:
        return counts, next(iter(counts.values()))
    group = min(counts.values())
    return {k: math.ceil(n / group) * group for k, n in counts.items()}, group


def request_blocks(model: ModelConfig, kind: str, max_len: int, batched: int, block: int) -> int:
    """Blocks one request holds in one layer of this kind (max_memory_usage_bytes / page size)."""
    if kind == "sliding":
        return math.ceil(min(model.sliding_window - 1 + batched, max_len) / block) + 1
    if kind == "chunked":
        return math.ceil(min(model.attention_chunk + batched, max_len) / block)
    if kind == "linear":
        return 1
    return math.ceil(max_len / block)


def kv_capacity(
    model: ModelConfig, s: Setup, version: tuple[int, int, int], kv_bytes: float, batched: int
) -> tuple[int, float, int, str]:
    """(reported "GPU KV cache size" tokens, maximum concurrency, bytes per token over all layers, layout)."""
    per_layer = kv_layer_bytes(model, s.gpus, kv_dtype_bytes(s))
    counts, group = kv_groups(model, version)
    layers = sum(counts.values())
    per_token = per_layer * layers
    blocks = max(0, int(kv_bytes // (per_token * BLOCK_SIZE)))  # blocks of every group's pool
    max_len = s.serving_len
    if version < (0, 8, 0):  # V0: every layer full; concurrency = tokens / max_model_len
        tokens = blocks * BLOCK_SIZE
        return tokens, round(tokens / max_len, 2), per_token, "v0"
    need = sum(request_blocks(model, k, max_len, batched, BLOCK_SIZE) * (n // group) for k, n in counts.items())
    pool = blocks * (layers // group)  # blocks in one group's pool (num_blocks)
    concurrency = pool / need if need else 0.0
    if len(counts) == 1 and version < (
        0,
        9,
        1,
    ):  # 0.8.x-0.9.0 _get_kv_cache_config_uniform_type: num_tokens / max_model_len
        concurrency = blocks * BLOCK_SIZE / max_len
    layout = "uniform" if len(counts) == 1 else "hybrid " + "+".join(f"{n} {k}" for k, n in sorted(counts.items()))
    if version >= (0, 21, 0):
        return int(concurrency * max_len), round(concurrency, 2), per_token, layout
    return blocks * BLOCK_SIZE, round(concurrency, 2), per_token, layout


def serving(
    model: ModelConfig, s: Setup, capacity: Optional[float], gpu_name: str = "", q: Optional[QuantInfo] = None
) -> ServingEstimate:
    """`capacity`: total GPU memory as torch sees it (cudaMemGetInfo total), or None."""
    version = parse_version(s.vllm_version)
    which = era(version)
    seqs, tokens = engine_defaults(s, version, gpu_name, capacity)
    sampler = sampler_backend(s, version)
    weights = weights_per_rank(model, s, q)
    act = activation_peak(model, s, tokens, seqs, sampler)
    other = non_torch(s, which, version, gpu_name)
    graphs = CUDA_GRAPHS if (which == "v1-cudagraphs-estimated" and not s.enforce_eager) else 0.0
    _, _, per_token, layout = kv_capacity(model, s, version, 0.0, tokens)
    est = ServingEstimate(which, weights, act, other, graphs, per_token, seqs, tokens, sampler, layout)
    est.notes.append(
        f"vLLM {'.'.join(map(str, version))} ({which}): KV cache = total × {s.gpu_memory_utilization} − "
        "weights − profile-run peak − non-torch memory" + (" − CUDA graphs" if graphs else "")
    )
    if sampler != "v0":
        est.notes.append(
            f"profile run: {min(seqs, tokens)} dummy sequences through the {sampler} top-k/top-p sampler "
            f"({SAMPLER_BYTES[sampler]:.0f} B per logit element); --vllm-sampler and --max-seqs change it"
        )
    if layout.startswith("hybrid"):
        est.notes.append(
            f"KV layout ({layout}): the reported token count divides the memory by every layer's "
            "per-token cost; the concurrency counts the sliding/chunked/linear layers' smaller needs"
        )
    if capacity is not None:
        est.requested = capacity * s.gpu_memory_utilization
        kv = est.requested - weights - act - other - graphs
        est.kv_cache_bytes = kv
        est.kv_cache_tokens, est.max_concurrency, _, _ = kv_capacity(model, s, version, max(0.0, kv), tokens)
    return est


def required_capacity(
    model: ModelConfig, s: Setup, gpu_name: str = "", capacity: Optional[float] = None, q: Optional[QuantInfo] = None
) -> float:
    """The smallest GPU (torch-visible total) on which one full-length sequence fits; the engine
    defaults are those vLLM would pick on the GPU of `capacity` when it is known."""
    version = parse_version(s.vllm_version)
    which = era(version)
    seqs, tokens = engine_defaults(s, version, gpu_name, capacity)
    static = (
        weights_per_rank(model, s, q)
        + activation_peak(model, s, tokens, seqs, sampler_backend(s, version))
        + non_torch(s, which, version, gpu_name)
    )
    if which == "v1-cudagraphs-estimated" and not s.enforce_eager:
        static += CUDA_GRAPHS
    per_layer = kv_layer_bytes(model, s.gpus, kv_dtype_bytes(s))
    counts, group = kv_groups(model, version)
    if version < (0, 8, 0):
        blocks = math.ceil(s.serving_len / BLOCK_SIZE) * (sum(counts.values()))
    else:
        blocks = sum(request_blocks(model, k, s.serving_len, tokens, BLOCK_SIZE) * n for k, n in counts.items())
    return (static + blocks * BLOCK_SIZE * per_layer) / s.gpu_memory_utilization
