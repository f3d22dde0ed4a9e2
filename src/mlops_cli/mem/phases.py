"""A training step's peak: the largest of its phases, in three metrics (pure).

Phases (what is alive at the same time):
- forward end: states + saved activations (+ gradients only when micro-batches accumulate;
  `zero_grad(set_to_none=True)`, the PyTorch 2 default, frees them after each step);
- backward start: the above + the logits and loss buffers;
- recompute (gradient checkpointing only): states + all gradients (worst case, at the last
  layer of backward) + the layer checkpoints + one layer's recomputed activations and their
  gradient buffers. Logits are gone by then, so the two never add up;
- optimizer step: states + gradients + the optimizer's temporaries (foreach AdamW's sqrt list).

Metrics:
- `allocated`: torch.cuda.max_memory_allocated;
- `torch_peak` (reserved): max_memory_reserved = allocated + what the caching allocator keeps
  cached but unused at that moment (`allocator.py`);
- `device`: what nvidia-smi / NVML shows = reserved + CUDA context + NCCL communicator buffers +
  paged optimizer states (unified memory, outside torch's counters).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from mlops_cli.mem import allocator, rl, terms
from mlops_cli.mem.config import ModelConfig
from mlops_cli.mem.spec import ONLINE, Setup
from mlops_cli.mem.states import States, model_states

PHASES = ("generation", "forward", "backward_start", "recompute", "optimizer_step")


@dataclass
class Phase:
    name: str
    parts: dict[str, float]

    @property
    def total(self) -> float:
        return sum(self.parts.values())


@dataclass
class TrainPeak:
    phases: list[Phase]
    states: States
    allocated: float
    reserved: float
    device: float
    peak_phase: str
    context: float
    notes: list[str] = field(default_factory=list)


def tokens_per_step(s: Setup) -> int:
    """Tokens in one micro-batch's forward (DPO/ORPO run chosen and rejected in one batch; GRPO and
    PPO train on prompt + generated response)."""
    seq = s.seq_len + ((s.max_completion_len or 256) if s.objective in ONLINE else 0)  # 256: the flag's default
    rows = s.batch * (2 if s.objective in ("dpo", "orpo") else 1)
    return rows * seq


def activation_parts(model: ModelConfig, s: Setup, tokens: int) -> dict[str, float]:
    """Saved activations (kept from forward to backward) and the recomputed layer."""
    prec = s.precision or "bf16"
    bpa = terms.activation_bytes(prec)
    layer = terms.layer_activations_per_token(model, prec, s.compile, s.kernels or "torch", s.adapters)
    if s.adapters:
        layer += terms.lora_activations_per_token(
            model, prec, s.lora_rank or 8, s.lora_targets or "all-linear", bool(s.lora_dropout)
        )
    seq = tokens // max(1, s.batch)
    scores = terms.attention_scores_per_token(model, prec, s.attn or "sdpa", seq)
    kept = min(s.freeze_layers_trained, model.layers) if s.tune == "freeze" else model.layers
    edge = tokens * 2 * bpa * model.hidden  # embedding output and final norm
    # Baichuan-13B's remote code builds its ALiBi bias as one [batch, heads, seq, seq] tensor
    # before the first layer and passes it to every layer (and checkpoint): counted once.
    alibi = float(s.batch * model.heads * seq * seq * bpa) if model.alibi_mask else 0.0
    edge += alibi
    if s.grad_ckpt and s.ac_mode == "selective":
        per = terms.selective_activations_per_token(model, prec)
        return {"saved": tokens * kept * per + edge, "recompute": tokens * layer, "scores": tokens * scores}
    if s.grad_ckpt:
        checkpoints = tokens * kept * bpa * model.hidden
        if s.offload == "activations":
            checkpoints = tokens * 2 * bpa * model.hidden  # offloaded to CPU; ~2 layers in flight
        one_layer = tokens * (layer + 2 * scores)  # recomputed layer + its score gradient (eager)
        # backward of one layer: gradient of its output and of the MLP intermediates
        layer_grads = tokens * bpa * (2 * model.hidden + 2 * model.active_mlp_intermediate)
        return {"saved": checkpoints + edge, "recompute": one_layer + layer_grads, "scores": 0.0}
    return {"saved": tokens * kept * layer + edge, "recompute": 0.0, "scores": tokens * (kept + 1) * scores}


def training_peak(model: ModelConfig, s: Setup, capacity: Optional[float] = None) -> TrainPeak:
    """`capacity` (bytes per GPU) only matters for a colocated generation engine (GRPO + vLLM)."""
    st = model_states(model, s)
    tokens = tokens_per_step(s)
    act = activation_parts(model, s, tokens)
    if s.objective == "grpo":
        # TRL computes log-probs of the completion tokens only (logits_to_keep) with a row-by-row
        # selective_log_softmax: the 16-bit logits and their gradient for batch × completion tokens
        completion = s.batch * (s.max_completion_len or 256)
        if s.loss == "fused":  # Liger's LigerFusedLinearGRPOLoss (TRL use_liger_kernel): one chunk
            logits = terms.logits_bytes(model, completion, s.precision or "bf16", "fused")
        else:
            logits = float(completion * model.vocab * 2 * terms.activation_bytes(s.precision or "bf16"))
    else:
        logits = terms.logits_bytes(model, tokens, s.precision or "bf16", s.loss or "full")
    # torch.autocast caches the 16-bit casts of the weights it uses until backward; FSDP's
    # mixed-precision policy casts inside the all-gather instead (the gathered units)
    amp_copies = (
        2.0 * st.trainable
        if (not s.adapters and (s.precision or "").startswith("amp") and s.sharding not in ("fsdp", "zero3"))
        else 0.0
    )
    base = {
        "weights": st.weights,
        "adapters": st.adapters,
        "optimizer_states": st.optimizer,
        "master": st.master,
        **rl.persistent_parts(model, s, st, capacity),
    }
    accum_grads = st.gradients + st.grad_buckets if s.grad_accum > 1 else 0.0
    working = st.gathered
    phases = [
        Phase(
            "forward",
            {
                **base,
                "gradients": accum_grads,
                "gathered": working,
                "activations": act["saved"],
                "attention_scores": act["scores"],
                "autocast_copies": amp_copies,
            },
        ),
        Phase(
            "backward_start",
            {
                **base,
                "gradients": accum_grads,
                "gathered": working,
                "activations": act["saved"],
                "attention_scores": act["scores"],
                "autocast_copies": amp_copies,
                "logits": logits,
            },
        ),
    ]
    if s.grad_ckpt:
        phases.append(
            Phase(
                "recompute",
                {
                    **base,
                    "gradients": st.gradients + st.grad_buckets,
                    "gathered": working,
                    "activations": act["saved"] + act["recompute"],
                    "autocast_copies": amp_copies,
                },
            )
        )
    generation = rl.generation_bytes(model, s)
    if generation:
        # ZeRO-3 + TRL's unwrap_model_for_generation: the whole module is gathered while it generates
        # (its full replica replaces the live-parameter pool)
        full = rl.ds3_generation_gather_bytes(model, s)
        gen_parts = {"generation_gather": full} if full > working else {"gathered": working}
        phases.insert(0, Phase("generation", {**base, **gen_parts, "kv_cache": generation}))
    hybrid = rl.hybrid_engine_bytes(s, capacity)
    if hybrid:  # verl: the engine exists only while it generates (its KV cache and weights are released after)
        phases.insert(0, Phase("generation", {**base, "gathered": working, "generation_engine": hybrid}))
    if not s.optimizer_in_bwd:
        phases.append(
            Phase(
                "optimizer_step",
                {**base, "gradients": st.gradients + st.grad_buckets, "optimizer_temporaries": st.step_transient},
            )
        )
    peak = max(phases, key=lambda p: p.total)
    allocated = peak.total
    reserved = allocated + allocator.reserve(phases, peak, s)
    context = s.cuda_context + allocator.nccl_bytes(s)
    device = reserved + context + st.paged
    return TrainPeak(phases, st, allocated, reserved, device, peak.name, context, st.notes + rl.notes(s, capacity))
