"""Model states per GPU: weights, adapters, gradients, optimizer states, and what sharding keeps
unsharded (pure).

Replica sizes follow the dtype rules of each setup; `per_gpu()` then applies the sharding:
- DDP: a full replica, plus gradient buckets (a second copy of the gradients; DDP's
  gradient_as_bucket_view defaults to False);
- FSDP FULL_SHARD: everything sharded over N, plus the unsharded working set: with
  limit_all_gathers at most `fsdp_prefetch_units` units (a decoder layer each) gathered at once,
  plus the root unit (embeddings, LM head, final norm), which FSDP1 does not reshard after
  forward; one unit's unsharded gradients before its reduce-scatter. FSDP-QLoRA gathers the
  4-bit packed storage (bnb quant_storage), so a unit costs its packed bytes;
- DeepSpeed ZeRO-1/2/3: DeepSpeed's estimators (stage_1_and_2.py, stage3.py): 16-bit params and
  grads, fp32 master copy and fp32 optimizer states; ZeRO-3 adds the live-parameter pool
  (stage3_max_live_parameters), the prefetch bucket and the contiguous gradient bucket
  (reduce_bucket_size).
"""

from __future__ import annotations

from dataclasses import dataclass

from mlops_cli.mem.config import ModelConfig
from mlops_cli.mem.spec import Setup

# Bytes per parameter of quantized base weights: bitsandbytes NF4 with double quant (4 bits +
# 0.127 bit of constants); GPTQ/AWQ int4 g128 (4 bits + fp16 scale and packed zero per 128);
# int8 / fp8 one byte plus per-channel scales.
QUANT_BYTES = {"nf4": 0.5 + 0.127 / 8, "int4": 0.5 + 4 / 128, "int8": 1.02, "fp8": 1.0, "mxfp4": 0.5 + 1 / 32}


@dataclass
class States:
    weights: float  # resident base weights (quantized + 16-bit parts), sharded share
    adapters: float
    gradients: float
    optimizer: float  # in torch's counters
    paged: float  # paged optimizer states: CUDA unified memory, outside torch's counters
    master: float  # fp32 master copy kept by DeepSpeed / AMP
    gathered: float  # FSDP / ZeRO-3 unsharded working set during forward and backward
    grad_buckets: float  # DDP buckets / ZeRO gradient buckets / one unsharded unit's grads
    step_transient: float  # optimizer-step temporaries (foreach AdamW)
    trainable: int
    notes: list[str]

    @property
    def persistent(self) -> float:
        return self.weights + self.adapters + self.optimizer + self.master


def param_bytes(precision: str) -> int:
    return 4 if precision in ("fp32", "amp-fp16", "amp-bf16") else 2


def trainable_params(model: ModelConfig, s: Setup) -> int:
    if s.adapters:
        return model.lora_params(s.lora_rank or 8, s.lora_targets or "all-linear")
    if s.tune == "freeze":
        return min(s.freeze_layers_trained, model.layers) * model.layer_params
    return model.total_params


def deepspeed_half(s: Setup) -> bool:
    """DeepSpeed with fp16/bf16 casts the whole module to that dtype when it wraps it
    (deepspeed/runtime/engine.py `_configure_distributed_model`: `self.module.half()` /
    `.bfloat16()`, 0.15.4 L1142-1149): fp32 embeddings/norms left by prepare_model_for_kbit_training
    and PEFT's fp32 adapters become 16-bit (DeepSpeed keeps its own fp32 master copy)."""
    return s.sharding in ("zero1", "zero2", "zero3") and (s.precision or "bf16") in ("fp16", "bf16")


def replica_weights(model: ModelConfig, s: Setup) -> float:
    """Bytes of the base weights on one replica (before sharding)."""
    P = model.total_params
    if s.tune == "qlora":
        other = P - model.linear_params
        other_bytes = 4 if ((s.keep_fp32_non_quantized and not deepspeed_half(s)) or s.precision == "fp32") else 2
        return model.linear_params * QUANT_BYTES[s.quant or "nf4"] + other * other_bytes
    if s.adapters:
        return P * (4 if s.precision == "fp32" else 2)
    return P * param_bytes(s.precision or "bf16")


def unit_bytes(model: ModelConfig, s: Setup) -> float:
    """One FSDP unit in the dtype it is gathered in: a decoder layer (transformer auto-wrap), or
    the whole model when nothing is wrapped (`--fsdp-unit model`)."""
    params = model.layer_params if s.fsdp_unit == "layer" else model.layers * model.layer_params
    if s.tune == "qlora":
        return params * QUANT_BYTES[s.quant or "nf4"]
    return params * (4 if s.precision == "fp32" else 2)


def root_bytes(model: ModelConfig, s: Setup) -> float:
    """The FSDP root unit: embeddings, LM head (if untied) and final norm, kept unsharded."""
    wb = 4 if (s.tune == "qlora" and s.keep_fp32_non_quantized) or s.precision == "fp32" else 2
    return (model.embedding_params + model.lm_head_params + model.hidden) * wb


def optimizer_bytes(s: Setup, trainable: int, state_dtype: int) -> tuple[float, float, float]:
    """(states in torch's counters, paged states, step temporaries) for `trainable` parameters."""
    opt = s.optimizer or "adamw"
    if opt == "adamw-8bit":
        return 2.0 * trainable, 0.0, 0.0
    if opt == "paged-adamw-8bit":
        return 0.0, 2.0 * trainable, 0.0
    if opt == "paged-adamw":
        return 0.0, 8.0 * trainable, 0.0
    if opt == "sgd":
        return float(state_dtype * trainable), 0.0, 0.0
    if opt == "adafactor":  # factored second moment: rows + columns of each matrix
        return 4.0 * trainable * 2 / 4096, 0.0, 0.0
    states = 2.0 * state_dtype * trainable
    # torch AdamW with foreach=True (the CUDA default, HF adamw_torch) builds the list
    # exp_avg_sq.sqrt() of every parameter at once: one more tensor the size of the states.
    # fused=True (adamw-fused) works in place.
    transient = state_dtype * trainable if opt == "adamw" and not s.optimizer_in_bwd else 0.0
    return states, 0.0, float(transient)


def model_states(model: ModelConfig, s: Setup) -> States:
    trainable = trainable_params(model, s)
    full_like = not s.adapters
    weights = replica_weights(model, s)
    notes: list[str] = []
    if full_like:
        tb = param_bytes(s.precision or "bf16")  # grads and states in the trainable params' dtype
        adapters = 0.0
    else:
        tb = 2 if (s.lora_dtype == "bf16" or deepspeed_half(s)) else 4
        adapters = float(tb * trainable)
    grads = float(tb * trainable)
    opt, paged, transient = optimizer_bytes(s, trainable, tb)
    master = 0.0
    if full_like and (s.precision or "").startswith("amp"):
        notes.append(
            "AMP: fp32 weights, gradients and AdamW states; autocast keeps 16-bit copies of the weights in use"
        )
    if s.optimizer_in_bwd:
        grads = float(tb * model.largest_layer_params) if full_like else grads  # one parameter's grad at a time
        notes.append("optimizer step fused into backward: gradients are freed parameter by parameter")
    st = States(weights, adapters, grads, opt, paged, master, 0.0, 0.0, transient, trainable, notes)
    return _shard(model, s, st, full_like)


def _shard(model: ModelConfig, s: Setup, st: States, full_like: bool) -> States:
    N, sharding = s.gpus, s.sharding or "none"
    if sharding in ("none", "ddp"):
        if N > 1 or sharding == "ddp":
            st.grad_buckets = st.gradients  # DDP bucket copies of the gradients
            st.notes.append("DDP: a full replica on every GPU; gradient buckets hold a second copy of the gradients")
        return _offload(s, st)
    if sharding == "fsdp":
        for name in ("weights", "adapters", "gradients", "optimizer", "paged", "step_transient"):
            setattr(st, name, getattr(st, name) / N)
        root = root_bytes(model, s) * (1 - 1 / N) if (s.fsdp_version or 1) == 1 else 0.0
        units = s.fsdp_prefetch_units if s.fsdp_unit == "layer" else 1
        st.gathered = units * unit_bytes(model, s) + root
        if full_like:
            st.grad_buckets = model.layer_params * param_bytes(s.precision or "bf16")  # one unit's unsharded grads
        st.notes.append(
            f"FSDP FULL_SHARD over {N} GPU(s): sharded states plus {s.fsdp_prefetch_units} gathered "
            "unit(s) and the unsharded root (embeddings, LM head)"
        )
        return _offload(s, st)
    return _deepspeed(model, s, st, full_like)


def _deepspeed(model: ModelConfig, s: Setup, st: States, full_like: bool) -> States:
    N, stage, T = s.gpus, s.zero, st.trainable
    sixteen = s.precision != "fp32"
    pb = 2 if sixteen else 4
    base = model.total_params * pb if full_like else st.weights
    master = 4.0 * T if sixteen else 0.0
    grad16, grad32 = float(pb * T), (4.0 * T if sixteen else 0.0)
    opt = (
        8.0 * T if (s.optimizer or "adamw").startswith("adamw") and "8bit" not in (s.optimizer or "") else st.optimizer
    )
    st.master, st.step_transient, st.paged = master / N, 0.0, 0.0
    if stage == 1:
        st.weights, st.gradients, st.optimizer = base, grad16 + grad32 / N, opt / N
    elif stage == 2:
        st.weights, st.gradients, st.optimizer = base, (grad16 + grad32) / N, opt / N
    else:
        live = max(model.largest_layer_params, min(model.total_params, s.zero3_live_params))
        gathered_elems = live if full_like or s.tune != "qlora" else live * QUANT_BYTES[s.quant or "nf4"] / pb
        st.weights = base / N
        st.gathered = float(pb * gathered_elems + pb * s.zero3_prefetch)
        st.gradients = (grad32 if sixteen else grad16) / N
        st.grad_buckets = float(pb * (s.zero_bucket or model.hidden * model.hidden)) + (
            pb * model.largest_layer_params if full_like else 0.0
        )
        st.optimizer = opt / N
        st.notes.append(
            f"ZeRO-3 over {N} GPU(s): sharded states plus up to {live / 1e6:.0f}M live parameters "
            "(stage3_max_live_parameters) and the prefetch and gradient buckets"
        )
    if full_like is False:
        st.adapters = st.adapters / (N if stage == 3 else 1)
    return _offload(s, st)


def _offload(s: Setup, st: States) -> States:
    if s.offload in ("optimizer", "params"):
        st.optimizer, st.master, st.step_transient, st.paged = 0.0, 0.0, 0.0, 0.0
        st.notes.append("optimizer states (and the fp32 master copy) live in CPU RAM")
    if s.offload == "params":
        st.weights, st.gradients = 0.0, 0.0
        st.notes.append("parameters live in CPU RAM; only the gathered units are on the GPU")
    return st
