"""`--stack` presets: the defaults each training framework really uses (pure data + resolution).

A user knows their framework, not its internals. Each preset fills only the fields the user
left unset (`None` in `Setup`); explicit flags always win. `resolve()` returns the completed
setup and, per field, where its value came from ("flag", "stack:<name>", "default"), which the
JSON output echoes. Sources are the framework files named in `SOURCES` (read at the commits
given in docs/mem.md); where a default depends on the method it is keyed by method.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from mlops_cli.mem.spec import STACKS, Setup



# Generic defaults when neither a flag nor a stack sets a field (plain PyTorch + HF conventions).
GENERIC: dict[str, Any] = {
    "precision": "bf16", "grad_ckpt": False, "attn": "sdpa", "optimizer": "adamw", "optimizer_in_bwd": False,
    "lora_rank": 8, "lora_targets": "all-linear", "lora_dropout": False, "lora_dtype": "fp32",
    "keep_fp32_non_quantized": False, "loss": "full", "packing": False, "sharding": "none", "offload": "none",
    "ac_mode": "full", "fsdp_version": 1,
}

PRESETS: dict[str, dict[str, Any]] = {
    # transformers Trainer + PEFT: TrainingArguments.gradient_checkpointing=False, optim adamw_torch
    # (foreach); PEFT LoraConfig r=8, lora_dropout=0.0, target_modules=None -> model default q,v;
    # autocast_adapter_dtype=True keeps adapters fp32; prepare_model_for_kbit_training casts the
    # non-quantized parameters (embeddings, LM head, norms) to fp32; loss = ForCausalLMLoss (fp32 upcast).
    "hf": {"grad_ckpt": False, "lora_targets": "q,v", "lora_dropout": False, "keep_fp32_non_quantized": True},
    # TRL SFTTrainer: SFTConfig gradient_checkpointing=True and bf16=True by default (sft_config.py);
    # otherwise the transformers/PEFT defaults above.
    "trl": {"grad_ckpt": True, "lora_targets": "q,v", "keep_fp32_non_quantized": True},
    # LLaMA-Factory hparams: finetuning_args.py lora_rank=8, lora_target="all", lora_dropout=0.0;
    # model_args.py disable_gradient_checkpointing=False (GC on), flash_attn=auto, upcast_layernorm=False
    # (non-quantized weights stay 16-bit).
    "llamafactory": {"grad_ckpt": True, "lora_targets": "all-linear", "lora_dropout": False},
    # Unsloth: use_gradient_checkpointing="unsloth" offloads the checkpoints to CPU; fused
    # cross-entropy; notebooks use r=16 on all linear layers, lora_dropout=0, optim adamw_8bit;
    # embeddings/LM head stay 16-bit.
    "unsloth": {"grad_ckpt": True, "offload": "activations", "loss": "fused", "lora_rank": 16,
                "lora_targets": "all-linear", "lora_dropout": False, "optimizer": "adamw-8bit"},
    # torchtune recipes/configs: CEWithChunkedOutputLoss, enable_activation_checkpointing=True,
    # dtype bf16 everywhere (adapters too), torchao NF4 for QLoRA; full single-device configs use
    # bitsandbytes PagedAdamW8bit with optimizer_in_bwd=True; LoRA configs AdamW (fused) on q,v r8.
    "torchtune": {"grad_ckpt": True, "loss": "chunked", "lora_dtype": "bf16", "lora_targets": "q,v", "fsdp_version": 2,
                  "by_method": {"full": {"optimizer": "paged-adamw-8bit", "optimizer_in_bwd": True},
                                "lora": {"optimizer": "adamw-fused"}, "qlora": {"optimizer": "adamw-fused"}}},
    # Axolotl examples: gradient_checkpointing true, flash_attention true, sample_packing true,
    # lora_r 32, lora_dropout 0.05, lora_target_linear true; QLoRA goes through
    # prepare_model_for_kbit_training (fp32 non-quantized weights).
    "axolotl": {"grad_ckpt": True, "attn": "flash", "packing": True, "lora_rank": 32, "lora_dropout": True,
                "lora_targets": "all-linear", "keep_fp32_non_quantized": True},
    # ms-swift 3.x: target_modules all-linear, lora_rank 8, lora_dropout 0.05, gradient_checkpointing True.
    "ms-swift": {"grad_ckpt": True, "lora_targets": "all-linear", "lora_dropout": True},
    # Answer.AI fsdp_qlora train.py defaults: lora_rank 64, target 'all', lora_dropout 0.1, pure bf16,
    # use_gradient_checkpointing True, FSDP FULL_SHARD with limit_all_gathers, use_cpu_offload True,
    # SDPA; adapters bf16; non-quantized weights bf16 (quant_storage bf16).
    "fsdp-qlora": {"grad_ckpt": True, "lora_rank": 64, "lora_targets": "all-linear", "lora_dropout": True,
                   "lora_dtype": "bf16", "sharding": "fsdp", "offload": "params", "quant": "nf4"},
    # torchtitan train_configs/llama3_8b.toml: FSDP2 fully_shard with MixedPrecisionPolicy (bf16
    # params, fp32 reduce) over fp32 sharded parameters and AdamW states; activation_checkpoint
    # mode 'selective' with option 'op' (parallelize_llama.py _save_list: every second mm and the
    # SDPA outputs are saved); cross_entropy on the .float() logits.
    "torchtitan": {"precision": "amp-bf16", "grad_ckpt": True, "ac_mode": "selective", "sharding": "fsdp",
                   "fsdp_version": 2, "attn": "sdpa"},
    # transformers Trainer with a DeepSpeed ZeRO-3 config: stage3_max_live_parameters 1e9,
    # stage3_prefetch_bucket_size 5e7 (DeepSpeed defaults), reduce_bucket_size "auto" (hidden²).
    "deepspeed": {"sharding": "zero3", "lora_targets": "q,v", "keep_fp32_non_quantized": True},
}

SOURCES = {
    "hf": "transformers training_args.py (gradient_checkpointing=False, optim adamw_torch); peft LoraConfig "
          "(r=8, lora_dropout=0.0, autocast_adapter_dtype=True); peft.prepare_model_for_kbit_training",
    "trl": "trl/trainer/sft_config.py (gradient_checkpointing=True, bf16=True)",
    "llamafactory": "src/llamafactory/hparams/finetuning_args.py (lora_rank 8, lora_target all, lora_dropout 0.0); "
                    "model_args.py (disable_gradient_checkpointing False, flash_attn auto, upcast_layernorm False)",
    "unsloth": "unsloth FastLanguageModel.get_peft_model(use_gradient_checkpointing='unsloth'), fused CE loss, "
               "notebooks r=16, optim adamw_8bit",
    "torchtune": "recipes/configs/llama3_1/*.yaml at 30b8519 (CEWithChunkedOutputLoss, AC on, PagedAdamW8bit + "
                 "optimizer_in_bwd for full single device, lora q,v r8)",
    "axolotl": "examples/*/qlora*.yml (gradient_checkpointing, flash_attention, sample_packing, lora_r 32, "
               "lora_dropout 0.05, lora_target_linear)",
    "ms-swift": "swift/llm/argument/tuner_args.py (target_modules all-linear, lora_rank 8, lora_dropout 0.05)",
    "fsdp-qlora": "AnswerDotAI/fsdp_qlora train.py fsdp_qlora() defaults (commit 05ed9f2)",
    "torchtitan": "torchtitan train_configs/llama3_8b.toml and parallelisms/parallelize_llama.py at 9dec370",
    "deepspeed": "DeepSpeed runtime/zero/config.py defaults; transformers integrations/deepspeed.py 'auto' values",
}


def resolve(setup: Setup) -> tuple[Setup, dict[str, str]]:
    """Fill every unset field from the stack preset, then the generic defaults.

    Returns the completed setup and the origin of each filled field."""
    origin: dict[str, str] = {}
    preset = dict(PRESETS.get(setup.stack or "", {}))
    by_method = preset.pop("by_method", {}).get(setup.tune, {})
    preset.update(by_method)
    changes: dict[str, Any] = {}
    for name, generic in GENERIC.items():
        current = getattr(setup, name)
        if current is not None:
            origin[name] = "flag"
            continue
        if name in preset:
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

