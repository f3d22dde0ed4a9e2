"""The extra parts of preference and RL training (DPO, KTO, ORPO, PPO, GRPO), per GPU (pure).

References (docs/mem.md, "RL methods"):
- reference model: TRL `DPOTrainer`/`KTOTrainer`/`GRPOTrainer` keep a frozen copy of the policy
  (`create_reference_model`), except with a PEFT policy, where the reference is the same model
  with the adapters disabled (`model.disable_adapter()`), and with `precompute_ref_log_probs`,
  where reference log-probs are computed before training. OpenRLHF `--ref_offload` and verl
  `ref.fsdp_config.param_offload` keep it on the CPU. Under ZeRO-3/FSDP it is sharded like the
  policy. GRPO needs it only when `beta > 0` (TRL's default became 0.0 in v0.19);
- PPO: TRL `PPOTrainer` (and OpenRLHF, verl) hold policy, reference, reward model and a value
  model; the value model trains (weights, gradients, optimizer states). verl's default
  `reward_model.enable: False` scores with a rule/function instead (config.rst: "If False, we compute
  the reward only with the user-defined reward functions"): --reward-model function, no copy;
- DPO/ORPO concatenate chosen and rejected sequences into one forward (`concatenated_forward`),
  so activations and logits are for 2 × batch rows; ORPO has no reference model; KTO runs a
  separate KL batch without gradients;
- GRPO: `per_device_train_batch_size` counts completions (TRL PR #2776), each prompt + completion
  long; generation either in the trainer (`model.generate`, a dynamic KV cache for the whole
  generation batch) or in vLLM: `vllm_mode="colocate"` starts an engine in every training
  process that takes `vllm_gpu_memory_utilization` (default 0.3) of the GPU; `"server"` runs it on
  other GPUs. PPO generates its responses the same way (TRL `PPOTrainer` and torchtune with
  `model.generate` / a KV cache; verl and OpenRLHF with a colocated vLLM engine), so the engine,
  the generation phase and the response tokens apply to PPO too;
- GRPO log-probs: TRL's default path keeps the 16-bit logits of the completion tokens and their
  gradient; `use_liger_kernel=True` swaps in Liger's `LigerFusedLinearGRPOLoss`
  (trl/trainer/grpo_trainer.py at c9a9e25, L584/L2097), which runs the LM head in chunks and never
  holds the full logits: --loss fused.
"""

from __future__ import annotations

from typing import Optional

from mlops_cli.mem import terms
from mlops_cli.mem.config import ModelConfig
from mlops_cli.mem.spec import ONLINE, Setup
from mlops_cli.mem.states import States, replica_weights


def ref_mode(s: Setup) -> str:
    """What holds the reference log-probs: none | copy | offload | precomputed."""
    if s.objective in ("sft", "orpo"):
        return "none"
    if s.ref_model != "auto":
        return s.ref_model
    if s.objective == "grpo":
        # TRL GRPOConfig beta = 0.0 since v0.19.0 (0.04 before): no reference model is loaded then
        if s.stack == "trl" and s.stack_version:
            from mlops_cli.mem.stacks import version_tuple

            if version_tuple(s.stack_version, "1.9.0") < (0, 19, 0):
                return "none" if s.adapters else "copy"
        return "none"
    return "none" if s.adapters else "copy"


def _frozen_copy(model: ModelConfig, s: Setup) -> float:
    """A frozen 16-bit copy of the policy, sharded like the policy's weights."""
    w = replica_weights(model, s.with_changes(method="full", tuning=None, precision="bf16"))
    if s.sharding in ("fsdp", "zero3"):
        w /= s.gpus
    return w


def persistent_parts(model: ModelConfig, s: Setup, st: States, capacity: Optional[float]) -> dict[str, float]:
    parts: dict[str, float] = {}
    if ref_mode(s) == "copy":
        parts["reference_model"] = _frozen_copy(model, s)
    if s.objective == "ppo":
        if s.reward_model == "model":  # --reward-model function: rule rewards computed on the CPU, no copy
            parts["reward_model"] = _frozen_copy(model, s)
        parts["value_model"] = st.weights + st.adapters + st.optimizer + st.master + st.gradients
    if s.objective in ONLINE and s.gen_engine == "vllm-colocate" and capacity is not None:
        parts["generation_engine"] = s.gen_memory_utilization * capacity
    return parts


def hybrid_engine_bytes(s: Setup, capacity: Optional[float]) -> float:
    """verl's hybrid engine: the colocated vLLM engine holds `gpu_memory_utilization` of the GPU only
    while it generates. verl docs/examples/config.rst: rollout `free_cache_engine` "Offload the KVCache
    after rollout generation stage. Default is True" (ppo_trainer.yaml at 008db45: free_cache_engine
    True, enforce_eager True), and for vLLM >= 0.7 gpu_memory_utilization is "the fraction of total
    GPU memory to be used for the vLLM instance". So the engine is a part of the generation phase
    only, never of forward/backward/optimizer step."""
    if s.objective not in ONLINE or s.gen_engine != "vllm-hybrid" or capacity is None:
        return 0.0
    return s.gen_memory_utilization * capacity


def ds3_generation_gather_bytes(model: ModelConfig, s: Setup) -> float:
    """In-trainer generation under DeepSpeed ZeRO-3 with TRL's default `ds3_gather_for_generation=True`:
    `unwrap_model_for_generation` runs `deepspeed.zero.GatheredParameters(model.parameters())` around the
    whole generation (trl/models/utils.py at v0.9.6 and v0.14.0, "For ZeRO-3 models, we gather the weights
    once to speed up generation", PR #1483), so every GPU holds a full 16-bit replica of the trained module
    while it generates. Used by TRL's GRPO/PPO/RLOO/Online-DPO trainers, LLaMA-Factory's PPO trainer
    (`unwrap_model_for_generation(self.model, ...)`) and ms-swift's PPO (a subclass of TRL's). For PPO the
    module is TRL's `PolicyAndValueWrapper(policy, value_model)`: both are gathered (LLaMA-Factory's value
    head shares the policy's backbone, so there this counts one replica too many). TRL PR #2557 (PPO/RLOO/
    Online DPO) and #2667 (GRPO) added `ds3_gather_for_generation=False` for models that do not fit."""
    if s.objective not in ONLINE or s.gen_engine != "hf" or s.sharding != "zero3" or not s.ds3_gather_for_generation:
        return 0.0
    replica = replica_weights(model, s)
    if s.adapters:
        replica += 2.0 * model.lora_params(s.lora_rank or 8, s.lora_targets or "all-linear")
    return replica * (2 if s.objective == "ppo" else 1)


def generation_bytes(model: ModelConfig, s: Setup) -> float:
    """GRPO/PPO with in-trainer generation: HF DynamicCache for every completion of the batch
    (prompt + completion tokens), plus one step's fp32 logits for them."""
    if s.objective not in ONLINE or s.gen_engine != "hf":
        return 0.0
    rows = s.batch
    length = s.seq_len + (s.max_completion_len or 256)
    bpa = terms.activation_bytes(s.precision or "bf16")
    kv = rows * length * terms.kv_bytes_per_token(model, 1, bpa)
    return float(kv + rows * model.vocab * 4)


def notes(s: Setup, capacity: Optional[float]) -> list[str]:
    out: list[str] = []
    mode = ref_mode(s)
    if s.objective in ("dpo", "orpo"):
        out.append(f"{s.objective.upper()}: chosen and rejected sequences in one forward (2 × {s.batch} rows)")
    if mode == "copy":
        out.append(
            "reference model: a frozen 16-bit copy of the policy (a LoRA policy would reuse the base "
            "with adapters disabled; --ref-model offload|precomputed moves it off the GPU)"
        )
    elif s.objective in ("dpo", "kto") and mode == "none":
        out.append("reference model: the base model with the adapters disabled (no extra copy)")
    if s.objective == "ppo":
        reward = "reward model" if s.reward_model == "model" else "function rewards (no reward model)"
        out.append(
            f"PPO: policy, reference, {reward} and a trainable value model on every GPU; {s.batch} "
            f"responses per GPU of {s.seq_len} prompt + {s.max_completion_len or 256} generated tokens; "
            f"generation: {s.gen_engine}"
        )
    if s.objective == "grpo":
        out.append(
            f"GRPO: {s.batch} completions per GPU of {s.seq_len} prompt + {s.max_completion_len or 256} "
            f"completion tokens; generation: {s.gen_engine}"
        )
    if s.objective in ONLINE and s.gen_engine == "vllm-hybrid":
        out.append(
            "vllm-hybrid (verl): the engine's share of the GPU is held during generation only "
            "(free_cache_engine), so it peaks with the model states, not with activations"
        )
    if s.objective in ONLINE and s.gen_engine in ("vllm-colocate", "vllm-hybrid") and capacity is None:
        out.append("colocated vLLM takes --gen-memory-utilization of the GPU: give --gpu or --gpu-mem to count it")
    return out
