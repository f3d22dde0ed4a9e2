"""`--stack` presets: the defaults each training framework really uses (pure data + resolution).

A user knows their framework, not its internals. Each preset fills only the fields the user
left unset (`None` in `Setup`); explicit flags always win. `resolve()` returns the completed
setup and, per field, where its value came from ("flag", "stack:<name>", "default"), which the
JSON output echoes. Sources are the framework files named in `SOURCES` (read at the commits
given in docs/mem.md); where a default depends on the method it is keyed by method.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Optional

from mlops_cli.errors import UsageError
from mlops_cli.mem.spec import STACKS, Setup  # noqa: F401  (STACKS is re-exported for callers)

# Generic defaults when neither a flag nor a stack sets a field (plain PyTorch + HF conventions).
GENERIC: dict[str, Any] = {
    "precision": "bf16",
    "grad_ckpt": False,
    "attn": "sdpa",
    "optimizer": "adamw",
    "optimizer_in_bwd": False,
    "lora_rank": 8,
    "lora_targets": "all-linear",
    "lora_dropout": False,
    "lora_dtype": "fp32",
    "keep_fp32_non_quantized": False,
    "loss": "full",
    "packing": False,
    "sharding": "none",
    "offload": "none",
    "ac_mode": "full",
    "fsdp_version": 1,
    "kernels": "torch",
}

PRESETS: dict[str, dict[str, Any]] = {
    # transformers Trainer + PEFT: TrainingArguments.gradient_checkpointing=False, optim adamw_torch
    # (foreach); PEFT LoraConfig r=8, lora_dropout=0.0, target_modules=None -> model default q,v;
    # autocast_adapter_dtype=True keeps adapters fp32; prepare_model_for_kbit_training casts the
    # non-quantized parameters (embeddings, LM head, norms) to fp32; loss = ForCausalLMLoss (fp32 upcast).
    "hf": {"grad_ckpt": False, "lora_targets": "q,v", "lora_dropout": False, "keep_fp32_non_quantized": True},
    # TRL SFTTrainer: the transformers/PEFT defaults above, and by release (trl_defaults below):
    # SFTConfig gradient_checkpointing=True from v0.22.0 (transformers' False before), loss_type
    # "chunked_nll" (lm_head and cross-entropy in 256-token chunks, never the full logits) from v1.7.0.
    "trl": {"lora_targets": "q,v", "keep_fp32_non_quantized": True},
    # LLaMA-Factory hparams: finetuning_args.py lora_rank=8, lora_target="all", lora_dropout=0.0;
    # model_args.py disable_gradient_checkpointing=False (GC on), flash_attn=auto, upcast_layernorm=False
    # (non-quantized weights stay 16-bit).
    "llamafactory": {"grad_ckpt": True, "lora_targets": "all-linear", "lora_dropout": False},
    # Unsloth: use_gradient_checkpointing="unsloth" offloads the checkpoints to CPU; fused
    # cross-entropy; notebooks use r=16 on all linear layers, lora_dropout=0, optim adamw_8bit;
    # embeddings/LM head stay 16-bit.
    "unsloth": {
        "grad_ckpt": True,
        "offload": "activations",
        "loss": "fused",
        "lora_rank": 16,
        "lora_targets": "all-linear",
        "lora_dropout": False,
        "optimizer": "adamw-8bit",
        "kernels": "unsloth",
    },
    # torchtune recipes/configs: CEWithChunkedOutputLoss, enable_activation_checkpointing=True,
    # dtype bf16 everywhere (adapters too), torchao NF4 for QLoRA; full single-device configs use
    # bitsandbytes PagedAdamW8bit with optimizer_in_bwd=True; LoRA configs AdamW (fused) on q,v r8.
    "torchtune": {
        "grad_ckpt": True,
        "loss": "chunked",
        "lora_dtype": "bf16",
        "lora_targets": "q,v",
        "fsdp_version": 2,
        "by_method": {
            "full": {"optimizer": "paged-adamw-8bit", "optimizer_in_bwd": True},
            "lora": {"optimizer": "adamw-fused"},
            "qlora": {"optimizer": "adamw-fused"},
        },
    },
    # Axolotl examples: gradient_checkpointing true, flash_attention true, sample_packing true,
    # lora_r 32, lora_dropout 0.05, lora_target_linear true. QLoRA goes through
    # prepare_model_for_kbit_training, but `_configure_embedding_dtypes` then casts the embeddings,
    # LM head and norms back to torch_dtype for LoRA/QLoRA (src/axolotl/loaders/model.py
    # `should_convert` at 067b021): non-quantized weights stay 16-bit.
    "axolotl": {
        "grad_ckpt": True,
        "attn": "flash",
        "packing": True,
        "lora_rank": 32,
        "lora_dropout": True,
        "lora_targets": "all-linear",
        "keep_fp32_non_quantized": False,
    },
    # ms-swift 3.x: target_modules all-linear, lora_rank 8, lora_dropout 0.05, gradient_checkpointing True.
    "ms-swift": {"grad_ckpt": True, "lora_targets": "all-linear", "lora_dropout": True},
    # Answer.AI fsdp_qlora train.py defaults: lora_rank 64, target 'all', lora_dropout 0.1, pure bf16,
    # use_gradient_checkpointing True, FSDP FULL_SHARD with limit_all_gathers, use_cpu_offload True,
    # SDPA; adapters bf16; non-quantized weights bf16 (quant_storage bf16).
    "fsdp-qlora": {
        "grad_ckpt": True,
        "lora_rank": 64,
        "lora_targets": "all-linear",
        "lora_dropout": True,
        "lora_dtype": "bf16",
        "sharding": "fsdp",
        "offload": "params",
        "quant": "nf4",
    },
    # torchtitan train_configs/llama3_8b.toml: FSDP2 fully_shard with MixedPrecisionPolicy (bf16
    # params, fp32 reduce) over fp32 sharded parameters and AdamW states; activation_checkpoint
    # mode 'selective' with option 'op' (parallelize_llama.py _save_list: every second mm and the
    # SDPA outputs are saved); cross_entropy on the .float() logits.
    "torchtitan": {
        "precision": "amp-bf16",
        "grad_ckpt": True,
        "ac_mode": "selective",
        "sharding": "fsdp",
        "fsdp_version": 2,
        "attn": "sdpa",
    },
    # transformers Trainer with a DeepSpeed ZeRO-3 config: stage3_max_live_parameters 1e9,
    # stage3_prefetch_bucket_size 5e7 (DeepSpeed defaults), reduce_bucket_size "auto" (hidden²).
    "deepspeed": {"sharding": "zero3", "lora_targets": "q,v", "keep_fp32_non_quantized": True},
}

SOURCES = {
    "hf": "transformers training_args.py (gradient_checkpointing=False, optim adamw_torch); peft LoraConfig "
    "(r=8, lora_dropout=0.0, autocast_adapter_dtype=True); peft.prepare_model_for_kbit_training",
    "trl": "trl/trainer/sft_config.py: gradient_checkpointing default=True from v0.22.0 (L111-112 there; absent, "
    "i.e. transformers' False, at v0.21.0), loss_type default 'chunked_nll' from v1.7.0 (sft_trainer.py "
    "_CHUNKED_LM_HEAD_CHUNK_SIZE = 256); grpo_config.py beta 0.04 until v0.18, 0.0 from v0.19.0",
    "llamafactory": "src/llamafactory/hparams/finetuning_args.py L73-83 (lora_dropout 0.0, lora_rank 8, lora_target "
    "all); model_args.py L117-158 (flash_attn auto, disable_gradient_checkpointing False, "
    "upcast_layernorm False, upcast_lmhead_output False) at ff6d4d1",
    "unsloth": "unsloth/models/llama.py get_peft_model defaults L3063-3079 (r=16 on q,k,v,o,gate,up,down, "
    "lora_dropout 0, use_gradient_checkpointing='unsloth'), fused CE loss "
    "(models/llama.py unsloth_fused_ce_loss), kernels/fast_lora.py + rms_layernorm.py at 015bdef; notebooks "
    "(unslothai/notebooks) r=16, optim adamw_8bit",
    "torchtune": "recipes/configs/llama3_1/*.yaml at 30b8519 (CEWithChunkedOutputLoss, AC on, PagedAdamW8bit + "
    "optimizer_in_bwd for full single device, lora q,v r8)",
    "axolotl": "examples/*/qlora*.yml (gradient_checkpointing, flash_attention, sample_packing, lora_r 32, "
    "lora_dropout 0.05, lora_target_linear); src/axolotl/loaders/model.py _configure_embedding_dtypes at 067b021",
    "ms-swift": "swift/arguments/tuner_args.py L126-135 (target_modules all-linear, lora_rank 8, lora_alpha 32, "
    "lora_dropout 0.05); swift/trainers/arguments.py L134 (gradient_checkpointing True) at 3602360",
    "fsdp-qlora": "AnswerDotAI/fsdp_qlora train.py fsdp_qlora() defaults (commit 05ed9f2)",
    "torchtitan": "torchtitan train_configs/llama3_8b.toml and parallelisms/parallelize_llama.py at 9dec370",
    "deepspeed": "DeepSpeed runtime/zero/config.py defaults; transformers integrations/deepspeed.py 'auto' values",
}


CURRENT_TRL = "1.9.0"


def version_tuple(text: Optional[str], current: str) -> tuple[int, ...]:
    """'0.21.1' -> (0, 21, 1); None -> the current release; junk -> UsageError (exit 2)."""
    raw = (text or current).strip().lstrip("v")
    parts = [p for p in raw.split(".")[:3]]
    try:
        return tuple(int("".join(ch for ch in p if ch.isdigit())) for p in parts)
    except ValueError:
        raise UsageError(f"--stack-version {text!r} is not a version like 0.21.0") from None


def trl_defaults(version: Optional[str], objective: str = "sft") -> dict[str, Any]:
    """TRL's defaults at a release, for the trainer that runs the objective.

    `loss`: SFTConfig loss_type "chunked_nll" from v1.7.0 is the SFT trainer's; the RL trainers keep
    their own log-prob path (GRPO: `selective_log_softmax`; Liger's fused GRPO/DPO losses only with
    `use_liger_kernel`, i.e. --loss fused). `keep_fp32_non_quantized`: which trainer calls PEFT's
    `prepare_model_for_kbit_training` (it upcasts every non-quantized 16-bit weight to fp32):
    `git grep prepare_model_for_kbit_training <tag> -- trl/trainer` at the tags: sft_trainer.py up to
    v0.21.0, not from v0.22.0; grpo_trainer.py at no release; dpo_trainer.py up to v0.26.0, not at
    v1.0.0; kto/orpo (trl/experimental since v0.26) still do. PPO: as DPO (its trainer loads the
    models itself; no release checked), kept at the stack's generic value."""
    v = version_tuple(version, CURRENT_TRL)
    out: dict[str, Any] = {"grad_ckpt": v >= (0, 22, 0)}
    if objective == "sft":
        # SFT's upcast ended at v0.22.0 too, but the collected SFT rows (PEFT's FSDP/DeepSpeed docs,
        # early-2024 TRL) do not record their release and rely on the upcast: left as the preset's
        # True until those rows carry a version (docs/mem.md, known gaps)
        out["loss"] = "fused" if v >= (1, 7, 0) else "full"
    elif objective == "grpo":
        out["keep_fp32_non_quantized"] = False
    elif objective == "dpo":
        out["keep_fp32_non_quantized"] = v < (1, 0, 0)
    return out


# Stacks that run HF transformers' own modelling code and loss (the others bring their own model or
# kernels: torchtune, torchtitan; unsloth patches attention and the loss).
TRANSFORMERS_STACKS = (None, "hf", "trl", "llamafactory", "axolotl", "ms-swift", "fsdp-qlora", "deepspeed")
SDPA_SINCE = (4, 36, 0)
LOSS_UTILS_SINCE = (4, 46, 0)


def transformers_defaults(version: Optional[str]) -> dict[str, Any]:
    """What a transformers release did by default for a Llama-style decoder (only fields it decides).

    - attention: `LlamaSdpaAttention` arrived in v4.36.0; the docs (perf_infer_gpu_one) say SDPA "is
      used by default for `torch>=2.1.1` when an implementation is available". Before 4.36, Llama,
      Mistral and Qwen2-style models ran the eager path (fp32 softmax over heads × seq² per layer)
      unless flash-attention 2 was asked for -- which is why axolotl shipped
      `llama_attn_hijack_sdp.py` ("Patched LlamaAttention to use ... scaled_dot_product_attention");
    - loss: before 4.46 (loss_utils.py `ForCausalLMLoss`) the model upcast `logits.float()` itself and
      shifted the logits with `.contiguous()`: --loss full-legacy."""
    if version is None:
        return {}
    v = version_tuple(version, "99.0.0")
    out: dict[str, Any] = {}
    if v < SDPA_SINCE:
        out["attn"] = "eager"
    if v < LOSS_UTILS_SINCE:
        out["loss"] = "full-legacy"
    return out


# Model types unsloth loads without SDPA, i.e. with transformers' eager attention (the heads·seq² scores):
# `DISABLE_SDPA_MODEL_NAMES = ["gemma3,", "gemma3_text", "gpt_oss"]` and "Fix SDPA issues ... supports_sdpa =
# False" in unsloth/models/_utils.py and loader.py at 015bdef (in loader.py since 61da0d3, September 2025);
# before that unsloth's compiler already made the switch for Gemma-3: a published run log of Unsloth
# 2025.5.7 with transformers 4.51.3 prints "Unsloth: Gemma3 does not support SDPA - switching to eager!"
# (https://future-architect.github.io/articles/20250620a/).
UNSLOTH_EAGER_MODEL_TYPES = ("gemma3", "gemma3_text", "gpt_oss")


def resolve(setup: Setup, model_type: str = "") -> tuple[Setup, dict[str, str]]:
    """Fill every unset field from the stack preset, then the generic defaults. `model_type` (the
    config's) matters where a stack treats a model family differently (unsloth: eager attention for
    UNSLOTH_EAGER_MODEL_TYPES).

    Returns the completed setup and the origin of each filled field."""
    origin: dict[str, str] = {}
    preset = dict(PRESETS.get(setup.stack or "", {}))
    if setup.stack == "unsloth" and model_type in UNSLOTH_EAGER_MODEL_TYPES:
        preset["attn"] = "eager"
    if setup.stack == "trl":
        preset.update(trl_defaults(setup.stack_version, setup.objective))
    by_method = preset.pop("by_method", {}).get(setup.tune, {})
    preset.update(by_method)
    from_release: set[str] = set()
    if setup.stack in TRANSFORMERS_STACKS:
        # the release's own behaviour, unless the stack sets that field itself (axolotl: flash-attn)
        for name, value in transformers_defaults(setup.transformers_version).items():
            if name not in preset:
                preset[name] = value
                from_release.add(name)
    changes: dict[str, Any] = {}
    for name, generic in GENERIC.items():
        current = getattr(setup, name)
        if current is not None:
            origin[name] = "flag"
            continue
        if name in from_release:
            changes[name], origin[name] = preset[name], f"transformers {setup.transformers_version}"
        elif name in preset:
            changes[name], origin[name] = preset[name], f"stack:{setup.stack}"
        else:
            changes[name], origin[name] = generic, "default"
    if setup.quant is None and setup.tune == "qlora":
        changes["quant"] = preset.get("quant", "nf4")
        origin["quant"] = f"stack:{setup.stack}" if "quant" in preset else "default"
    elif setup.quant is not None:
        origin["quant"] = "flag"
    resolved = replace(setup, **changes)
    if resolved.sharding == "none" and resolved.gpus > 1 and not resolved.inference:
        resolved, origin["sharding"] = replace(resolved, sharding="ddp"), "default (several GPUs: data parallel)"
    return resolved, origin
