"""Per-GPU peak memory of a training or serving setup, term by term (pure).

Every term follows a published formula (sources in docs/mem.md and
../shared/research/memory-anchors.md):
- model states (weights, gradients, optimizer states): HF "model memory anatomy",
  EleutherAI Transformer Math; ZeRO/FSDP sharding verbatim from DeepSpeed's
  ``estimate_zero{2,3}_model_states_mem_needs`` (2P + 18P/N, 4·largest_layer + 18P/N);
- activations: Korthikanti et al. (arXiv:2205.05198) adapted to HF Llama-style
  blocks tensor by tensor (SwiGLU, GQA, RMSNorm fp32 upcast, no dropout), with the
  a·s² attention-score term only when the attention kernel is not fused (eager);
- logits/loss: llm-analysis' output-embedding activations plus loss-backward buffer;
- KV cache: vLLM's block size formula 2·L·kv_heads·head_dim·bytes per token;
- CUDA context and allocator reserve: memory-anchors §1.8-1.9.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from mlops_cli.mem.config import ModelConfig
from mlops_cli.mem.setup import GiB, Setup
from mlops_cli.errors import UsageError

TERMS = ("weights", "gradients", "optimizer_states", "activations", "attention_scores", "logits",
         "kv_cache", "cuda_context", "cuda_graphs", "allocator_reserve")

# Bytes per parameter of quantized base weights (bitsandbytes NF4 with double quant:
# 4 bits + 0.127 bit of constants; GPTQ int4 g128 ≈ 4.16 bits; int8/fp8 ≈ 1 byte + scales).
QUANT_BYTES = {"nf4": 0.5 + 0.127 / 8, "int4": 0.52, "int8": 1.02, "fp8": 1.0}
NCCL_PER_RANK = int(1.0 * GiB)  # memory-anchors §1.8: ~1-2 GiB per rank when NCCL is used
CUDA_GRAPHS = int(0.5 * GiB)  # memory-anchors §1.7/§6.7: vLLM CUDA graphs ~0.5-1.3 GiB
FUSED_CE_CHUNK = 1024  # tokens per chunk of a chunked/fused cross-entropy (Liger, torchtune)


@dataclass
class Estimate:
    model: ModelConfig
    setup: Setup
    breakdown: dict[str, int]
    trainable_params: int
    notes: list[str] = field(default_factory=list)
    serving: dict[str, Any] | None = None

    @property
    def peak_bytes(self) -> int:
        return sum(self.breakdown.values())

    @property
    def required_bytes(self) -> int:
        """What must fit: the peak for training; for serving, room for one full-length sequence."""
        if self.serving is not None:
            return self.serving["required_bytes"]
        return self.peak_bytes


def weight_bytes_per_param(precision: str) -> int:
    return 4 if precision in ("fp32", "amp-fp16", "amp-bf16") else 2


def activation_bytes(precision: str) -> int:
    return 4 if precision == "fp32" else 2


def kv_bytes_per_token(model: ModelConfig, setup: Setup) -> int:
    """vLLM get_cache_block_size / block_size: 2 (K and V) · L · kv_heads per rank · head_dim · bytes."""
    dtype_bytes = {"fp8": 1, "bf16": 2, "fp16": 2, "fp32": 4}.get(setup.kv_dtype,
                                                              4 if setup.precision == "fp32" else 2)
    kv_per_rank = max(1, model.kv_heads // setup.gpus)
    return 2 * model.layers * kv_per_rank * model.head_dim * dtype_bytes


def trainable_params(model: ModelConfig, setup: Setup) -> int:
    if setup.method in ("lora", "qlora"):
        return model.lora_params(setup.lora_rank, setup.lora_targets)
    if setup.method == "freeze":
        return min(setup.freeze_layers_trained, model.layers) * model.layer_params
    return model.total_params


def layer_activation_per_token(model: ModelConfig, setup: Setup) -> float:
    """Bytes one transformer block keeps for backward per token (fused attention)."""
    bpa = activation_bytes(setup.precision)
    h, hd = model.hidden, model.head_dim
    # Norm input in the compute dtype, plus the fp32 upcast HF RMSNorm keeps (not in fp32 runs).
    norm = bpa * h + (4 * h if bpa < 4 and not model.dropout else 0)
    linear_inputs = 2 * bpa * h  # normed input of the attention and MLP projections
    qkv = bpa * (model.heads * hd + 2 * model.kv_heads * hd)
    attn_out = bpa * model.heads * hd + 4 * model.heads  # output + fp32 log-sum-exp per head
    inter = model.active_mlp_intermediate
    mlp = (4 if model.gated_mlp else 2) * inter * bpa  # gate, up, act(gate), product | act in, fc2 in
    masks = 2 * h if model.dropout else 0  # 1-byte dropout masks after attention and MLP
    return 2 * norm + linear_inputs + qkv + attn_out + mlp + masks


def alibi_mask_bytes(model: ModelConfig, setup: Setup) -> float:
    """A dense ALiBi bias the model code materialises: batch·heads·seq² in the compute dtype.

    Baichuan-13B's remote modeling code adds its ALiBi slopes to the causal mask as one
    [batch, heads, seq, seq] tensor before the first layer and hands it to every layer (also
    through the checkpoints), whatever the attention kernel. Counted once, not per layer.
    """
    if not model.alibi_mask:
        return 0.0
    return float(setup.batch * model.heads * setup.seq_len * setup.seq_len * activation_bytes(setup.precision))


def attention_scores_per_token(model: ModelConfig, setup: Setup, seq_len: int) -> float:
    """The a·s² term per token of one layer when attention is not fused (eager)."""
    if setup.attn != "eager":
        return 0.0
    bpa = activation_bytes(setup.precision)
    if model.dropout:  # softmax output, dropout mask (1 byte), dropout output (Megatron 5as/h at fp16)
        per = 2 * bpa + 1
    else:  # HF eager: fp32 softmax output plus its cast back to the compute dtype
        per = 4 + (bpa if bpa < 4 else 0)
    return model.heads * seq_len * per


def _model_states(model: ModelConfig, setup: Setup, trainable: int) -> tuple[float, float, float, list[str]]:
    P, N, notes = model.total_params, setup.gpus, []
    wb = weight_bytes_per_param(setup.precision)
    full_like = setup.method in ("full", "freeze")
    if setup.method == "qlora":
        # PEFT prepare_model_for_kbit_training casts the non-quantized parameters (embeddings,
        # LM head, norms) of a bitsandbytes model to fp32; GPTQ models keep them 16-bit.
        base_other = 4 if (setup.precision == "fp32" or setup.qlora_quant == "nf4") else 2
        weights = model.linear_params * QUANT_BYTES[setup.qlora_quant] + (P - model.linear_params) * base_other
    elif setup.method == "lora":
        weights = P * (2 if setup.precision.startswith("amp") else wb)
    else:
        weights = P * wb
    if full_like and setup.precision.startswith("amp"):
        weights += 2 * trainable  # autocast keeps 16-bit copies of trainable weights (HF: 6 B/param)
    # Trainable tensors: LoRA adapters are fp32 (PEFT default); else the weights' dtype.
    tb = 4 if not full_like else wb
    opt_state_count = {"adamw": 2, "sgd": 1}.get(setup.optimizer)
    if setup.optimizer in ("adamw-8bit", "paged-adamw-8bit"):
        states = 2.0 * trainable
    elif setup.optimizer == "adafactor":  # factored second moment: rows + cols per matrix
        states = 4.0 * trainable * 2 / model.hidden
    else:
        states = float(opt_state_count * tb * trainable)
    if setup.method in ("lora", "qlora"):
        weights += 4 * trainable
    grads = float(tb * trainable)

    if setup.zero == 0:
        if N > 1:
            grads *= 2  # DDP gradient buckets hold a second copy of the gradients
            notes.append("DDP across GPUs: every GPU holds a full replica; gradient buckets double the gradients")
        return weights, grads, states, notes

    # DeepSpeed ZeRO / FSDP: 16-bit params and grads, fp32 master copy and fp32 grad partition
    # in the optimizer (stage_1_and_2.py / stage3.py estimators).
    sixteen = setup.precision != "fp32"
    pb = 2 if sixteen else 4
    if full_like:
        base = P * pb  # DeepSpeed holds the 16-bit params itself: no autocast copies
    else:
        base = weights - 4 * trainable  # frozen base (quantized or 16-bit) + adapters below
    master = 4 * trainable if sixteen else 0
    grad16 = pb * trainable
    grad32 = 4 * trainable if sixteen else 0
    opt_states = (8.0 * trainable if setup.optimizer == "adamw" else states)
    adapters = 4 * trainable if not full_like else 0
    if setup.zero == 1:
        w, g, o = base + adapters, grad16 + grad32 / N, (master + opt_states) / N
    elif setup.zero == 2:
        w, g, o = base + adapters, (grad16 + grad32) / N, (master + opt_states) / N
    else:
        gathered, layer_grads, bucket = _zero3_gpu_buffers(model, setup, pb, full_like)
        w = (base + adapters) / N + gathered
        g = (grad32 / N if sixteen else grad16 / N) + layer_grads + bucket
        o = (master + opt_states) / N
        notes.append(f"ZeRO-3/FSDP: model states sharded over {N} GPU(s), plus up to "
                     f"{gathered / pb / 1e6:.0f}M gathered parameters (stage3_max_live_parameters) "
                     f"and a {bucket / pb / 1e6:.0f}M-element gradient bucket")
    if setup.offload in ("optimizer", "params"):
        o = 0.0
        # Gradients stream to the CPU partition (ZeRO-3 keeps its 16-bit partition and buffers).
        g = grad16 / N + layer_grads + bucket if setup.zero == 3 else 0.0
        notes.append("optimizer states and fp32 master weights live in CPU RAM (needs ≈ 16-18 B/param of host memory)")
    if setup.offload == "params":
        # Parameters live in CPU RAM; what is fetched stays resident up to the live-parameter bound.
        w = gathered + adapters
        g = layer_grads + bucket
    return w, g, o, notes


def _zero3_gpu_buffers(model: ModelConfig, setup: Setup, pb: int, full_like: bool) -> tuple[float, float, float]:
    """Bytes ZeRO-3 holds on each GPU beyond its shard: gathered params, one layer's grads, the grad bucket.

    DeepSpeed's estimator counts one gathered layer (params16 + grads16 = 4·largest_layer). Its
    parameter coordinator keeps fetched parameters resident until `stage3_max_live_parameters`
    (default 1e9 elements) are live; a parameter reused within `stage3_max_reuse_distance` (1e9)
    is not released, which at the forward/backward turn is the tail of the model. So the
    gathered working set is max(largest layer, min(P, max_live)) in the parameters' dtype (fp32
    when the run is fp32). With `contiguous_gradients` (default on) stage3.py allocates a flat
    gradient buffer of `reduce_bucket_size` elements up front (HF "auto": hidden_size²; DeepSpeed
    default 5e8). Only full fine-tuning computes grads for a gathered layer.
    """
    live = max(model.largest_layer_params, min(model.total_params, setup.zero3_live_params))
    gathered = float(pb * live)
    layer_grads = float(pb * model.largest_layer_params) if full_like else 0.0
    bucket = float(pb * (setup.zero_bucket or model.hidden * model.hidden))
    return gathered, layer_grads, bucket


def _training(model: ModelConfig, setup: Setup) -> Estimate:
    trainable = trainable_params(model, setup)
    weights, grads, states, notes = _model_states(model, setup, trainable)
    bpa = activation_bytes(setup.precision)
    tokens = setup.batch * setup.seq_len
    layer = layer_activation_per_token(model, setup)
    scores = attention_scores_per_token(model, setup, setup.seq_len)
    layers_kept = min(setup.freeze_layers_trained, model.layers) if setup.method == "freeze" else model.layers
    if setup.grad_ckpt:
        # HF checkpointing keeps each block's input; one block is recomputed at a time in backward.
        activations = tokens * (layers_kept * bpa * model.hidden + layer)
        attention = tokens * scores
    else:
        activations = tokens * layers_kept * layer
        attention = tokens * layers_kept * scores
    # Softmax backward materialises the gradient of one layer's score matrix (same size) on top.
    attention += tokens * scores + alibi_mask_bytes(model, setup)
    if model.alibi_mask:
        notes.append("the model code materialises its ALiBi bias as a batch·heads·seq² tensor (in attention scores)")
    activations += tokens * 2 * bpa * model.hidden  # embedding output and final norm
    if setup.attn == "flash" and setup.precision == "fp32":
        notes.append("FlashAttention needs fp16/bf16; an fp32 run falls back to SDPA (same memory)")
    if setup.fused_ce:
        logit_tokens = min(tokens, FUSED_CE_CHUNK)
        logits = logit_tokens * model.vocab * 8  # one fp32 chunk and its gradient
    else:
        # HF causal-LM loss path: logits in the compute dtype, their fp32 upcast (skipped in fp32 runs),
        # the shifted .contiguous() copy, the log-softmax output kept for backward, and the
        # loss-backward buffer of the same size (llm-analysis) — all b·s·V.
        logits = tokens * model.vocab * (bpa + (4 if bpa < 4 else 0) + 4 + 4 + 4)
    context = setup.cuda_context + (NCCL_PER_RANK if setup.gpus > 1 else 0)
    torch_allocated = weights + grads + states + activations + attention + logits
    breakdown = {
        "weights": weights, "gradients": grads, "optimizer_states": states, "activations": activations,
        "attention_scores": attention, "logits": logits, "kv_cache": 0, "cuda_context": context,
        "cuda_graphs": 0, "allocator_reserve": torch_allocated * setup.allocator_reserve,
    }
    if setup.attn == "eager":
        notes.append("eager attention stores the heads·seq² score matrix per layer; --attn flash/sdpa removes it")
    return Estimate(model, setup, {k: int(round(v)) for k, v in breakdown.items()}, trainable, notes)


def _serving(model: ModelConfig, setup: Setup, capacity: int | None) -> Estimate:
    tp = setup.gpus
    if model.heads % tp:
        raise UsageError(f"--gpus {tp} with --inference: vLLM needs the tensor-parallel size to divide the "
                         f"{model.heads} attention heads",
                         hint="--gpus " + " | ".join(str(n) for n in range(1, 9) if model.heads % n == 0))
    bpa = activation_bytes(setup.precision)
    if setup.quant or setup.method == "qlora":
        weights = (model.linear_params * QUANT_BYTES[setup.qlora_quant] + (model.total_params - model.linear_params) * 2) / tp
    else:
        weights = model.total_params * bpa / tp
    per_token = kv_bytes_per_token(model, setup)
    length = setup.serving_len
    # Profile run: max_num_batched_tokens through one block (hidden + MLP intermediates) + sampler logits.
    tokens = setup.max_batched_tokens
    activations = tokens * bpa * (4 * model.hidden + 3 * model.active_mlp_intermediate) / tp
    logits = setup.max_seqs * model.vocab * 4
    context = setup.cuda_context + (NCCL_PER_RANK if tp > 1 else 0)
    static = weights + activations + logits + context + CUDA_GRAPHS
    kv_demand = setup.max_seqs * length * per_token
    breakdown = {
        "weights": weights, "gradients": 0, "optimizer_states": 0, "activations": activations,
        "attention_scores": 0, "logits": logits, "kv_cache": kv_demand, "cuda_context": context,
        "cuda_graphs": CUDA_GRAPHS, "allocator_reserve": 0,
    }
    serving: dict[str, Any] = {
        "kv_bytes_per_token": per_token,
        "max_model_len": length,
        "max_seqs": setup.max_seqs,
        "static_bytes": int(static),
        # GPU memory needed for one full-length sequence when vLLM may use only this share of it.
        "required_bytes": int(math.ceil((static + length * per_token) / setup.gpu_memory_utilization)),
    }
    if capacity is not None:
        budget = capacity * setup.gpu_memory_utilization - static
        tokens_fit = max(0, int(budget // per_token))
        serving.update({
            "capacity_bytes": capacity,
            "usable_bytes": int(capacity * setup.gpu_memory_utilization),
            "kv_cache_bytes": int(max(0, budget)),
            "kv_cache_tokens": tokens_fit,
            "max_concurrency": round(tokens_fit / length, 2),
        })
    notes = [f"KV cache: {per_token / 1024:.0f} KiB per token "
             f"({model.layers} layers × {max(1, model.kv_heads // tp)} KV heads × {model.head_dim} head dim)"]
    if model.max_positions and length > model.max_positions:
        notes.append(f"--max-model-len {length} is longer than the model's {model.max_positions} positions "
                     "(max_position_embeddings): vLLM refuses it unless VLLM_ALLOW_LONG_MAX_MODEL_LEN=1 "
                     "(or RoPE scaling in the config)")
    return Estimate(model, setup, {k: int(round(v)) for k, v in breakdown.items()}, 0, notes, serving)


def estimate(model: ModelConfig, setup: Setup, capacity: int | None = None) -> Estimate:
    """The per-GPU memory estimate. `capacity` (bytes per GPU) only matters for serving."""
    setup = setup.validated()
    if setup.inference:
        return _serving(model, setup, capacity)
    return _training(model, setup)
