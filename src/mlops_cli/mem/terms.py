"""Byte formulas for the pieces of a training step (pure arithmetic, no policy).

Each function answers one question about one tensor family; `phases.py` decides which of
them are alive at the same time. Sources (details in docs/mem.md, "Sources"):
- activations of a Llama-style block: Korthikanti et al. (arXiv:2205.05198) adapted tensor by
  tensor to SwiGLU, GQA, RMSNorm with fp32 upcast and fused attention (output + fp32 log-sum-exp);
- eager attention: the fp32 softmax output and its cast back, a·s² per layer (HF eager path);
- LoRA: PEFT `lora.Linear.forward` keeps `dropout(x)` (a new tensor when lora_dropout > 0, plus
  its 1-byte mask) and the rank-r output of lora_A for backward;
- logits: HF `ForCausalLMLoss` upcasts the bf16 logits to fp32 before `cross_entropy`
  (transformers loss_utils.py); torchtune `CEWithChunkedOutputLoss` keeps the bf16 logits in 8
  chunks and upcasts one chunk at a time; fused linear-cross-entropy (Liger, unsloth, Cut CE)
  never materialises the full-vocabulary logits.
"""

from __future__ import annotations

from mlops_cli.mem.config import ModelConfig

CHUNKED_CE_CHUNKS = 8  # torchtune CEWithChunkedOutputLoss(num_output_chunks=8)
FUSED_CE_TOKENS = 1024  # Liger fused linear cross-entropy processes tokens in chunks of this order
LOSS_KINDS = ("full", "full-legacy", "chunked", "fused")


def activation_bytes(precision: str) -> int:
    return 4 if precision == "fp32" else 2


def layer_activations_per_token(
    model: ModelConfig, precision: str, compiled: bool = False, kernels: str = "torch", adapters: bool = False
) -> float:
    """Bytes one transformer block keeps for backward per token (fused attention).

    Under torch.compile, inductor fuses RMSNorm's fp32 upcast and the MLP activation into the
    neighbouring kernels, so neither is saved (torchtune's ladder: compile alone saves 15 % of
    the peak of an activation-bound run). Fused Triton kernels save less than the eager modules:
    Liger's RMSNorm keeps X and one fp32 rstd per row, its SwiGLU keeps the gate and up outputs
    (liger_kernel/ops/rms_norm.py and swiglu.py save_for_backward, at ead96b6), so no fp32 row
    copy and no activation output; unsloth's RMSNorm keeps X and r the same way
    (unsloth/kernels/rms_layernorm.py L205) and its LoRA MLP keeps only X, gate and up outputs,
    recomputing the SwiGLU product for the down projection in backward (kernels/fast_lora.py L110,
    at 015bdef)."""
    bpa = activation_bytes(precision)
    h, hd = model.hidden, model.head_dim
    fused_norm = compiled or kernels in ("liger", "unsloth")
    upcast = 4 * h if bpa < 4 and not model.dropout and not fused_norm else 0
    norm = bpa * h + upcast  # HF RMSNorm keeps its fp32 upcast
    linear_inputs = 2 * bpa * h  # normed inputs of the attention and MLP projections
    qkv = bpa * (model.heads * hd + 2 * model.kv_heads * hd)
    attn_out = bpa * model.heads * hd + 4 * model.heads  # output + fp32 log-sum-exp per head
    saved = 4 if model.gated_mlp else 2  # gate, up, activation output, down input (eager SwiGLU)
    if kernels == "unsloth" and adapters and model.gated_mlp:
        saved = 2  # LoRA_MLP: gate and up outputs only
    elif compiled or kernels in ("liger", "unsloth"):
        saved -= 1
    mlp = saved * model.active_mlp_intermediate * bpa
    masks = 2 * h if model.dropout else 0
    return 2 * norm + linear_inputs + qkv + attn_out + mlp + masks


def selective_activations_per_token(model: ModelConfig, precision: str) -> float:
    """torchtitan selective AC, 'op' policy: every second matmul output and the SDPA output (+ its
    fp32 log-sum-exp) are saved; norms and SwiGLU elementwise ops are recomputed. In call order the
    saved matmuls are wq, wv, w1 (gate) and w2 (down); the block input is kept too."""
    bpa = activation_bytes(precision)
    q = model.heads * model.head_dim
    v = model.kv_heads * model.head_dim
    saved = q + v + model.active_mlp_intermediate + model.hidden  # wq, wv, w1, w2 outputs
    return float(bpa * (saved + q + model.hidden) + 4 * model.heads)  # + SDPA output, block input, lse


def lora_activations_per_token(model: ModelConfig, precision: str, rank: int, targets: str, dropout: bool) -> float:
    """Extra bytes per token and layer that LoRA adapters keep (PEFT lora.Linear)."""
    bpa = activation_bytes(precision)
    inputs = {  # input width of each adapted projection
        "q": model.hidden,
        "k": model.hidden,
        "v": model.hidden,
        "o": model.heads * model.head_dim,
        "gate": model.hidden,
        "up": model.hidden,
        "down": model.active_mlp_intermediate,
    }
    names = target_modules(targets, model.gated_mlp)
    total = 0.0
    for name in names:
        width = inputs[name]
        total += rank * 4  # lora_A output (adapter dtype, fp32 by default in PEFT)
        if dropout:
            total += width * bpa + width  # dropout(x) copy + its 1-byte mask
    return total


def target_modules(targets: str, gated: bool) -> tuple[str, ...]:
    """Normalised LoRA target list: all-linear | attention | a comma list of q,k,v,o,gate,up,down,mlp."""
    mlp = ("gate", "up", "down") if gated else ("up", "down")
    if targets in ("all-linear", "all"):
        return ("q", "k", "v", "o") + mlp
    if targets == "attention":
        return ("q", "k", "v", "o")
    out: list[str] = []
    for part in targets.split(","):
        part = part.strip()
        if part == "mlp":
            out.extend(mlp)
        elif part:
            out.append(part)
    return tuple(dict.fromkeys(out))


def attention_scores_per_token(model: ModelConfig, precision: str, attn: str, seq_len: int) -> float:
    """The a·s² term per token of one layer when attention is not fused (eager)."""
    if attn != "eager":
        return 0.0
    bpa = activation_bytes(precision)
    per = 2 * bpa + 1 if model.dropout else 4 + (bpa if bpa < 4 else 0)
    return float(model.heads * seq_len * per)


def logits_bytes(model: ModelConfig, tokens: int, precision: str, loss: str) -> float:
    """Logits and loss buffers alive at the start of backward, for `tokens` tokens."""
    bpa = activation_bytes(precision)
    V = model.vocab
    if loss == "fused":
        return float(min(tokens, FUSED_CE_TOKENS) * V * 8)  # one fp32 chunk and its gradient
    if loss == "chunked":
        # every chunk's bf16 logits stay for backward; one chunk at a time is upcast (fp32 copy,
        # log-softmax output, gradient)
        return float(tokens * V * bpa + tokens * V * 12 / CHUNKED_CE_CHUNKS)
    if loss == "full-legacy":
        # transformers < 4.46: the model upcasts `logits.float()` itself and the loss shifts the
        # logits with `.contiguous()`: one more fp32 b·s·V copy than today's ForCausalLMLoss
        return float(tokens * V * (bpa + (4 if bpa < 4 else 0) + 4 + 4 + 4))
    # HF ForCausalLMLoss: the model's logits in the compute dtype (kept in the output), their fp32
    # upcast, the log-softmax output kept for backward, and the gradient of the upcast logits
    # during the loss backward -- all b·s·V (labels are shifted, not the logits, since
    # transformers 4.46; older releases also made a shifted .contiguous() fp32 copy)
    return float(tokens * V * (bpa + (4 if bpa < 4 else 0) + 4 + 4))


def kv_bytes_per_token(model: ModelConfig, tp: int, dtype_bytes: int) -> int:
    """vLLM get_cache_block_size / block_size: 2 (K and V) · L · kv_heads per rank · head_dim · bytes."""
    kv_per_rank = max(1, model.kv_heads // tp)
    return 2 * model.layers * kv_per_rank * model.head_dim * dtype_bytes
