"""The setup flags shared by `mem estimate` and `oom-check`, and their translation into a Setup.

A flag left unset stays `None`, so the `--stack` preset (then the generic default) decides it;
the JSON output echoes every resolved value and where it came from. Contradictory flags are
refused here with exit 2 (`--fsdp` with `--zero N`, `--sharding` against either).
"""

from __future__ import annotations

from typing import Any, Optional

import typer

from mlops_cli.errors import UsageError
from mlops_cli.mem.spec import DEFAULT_CUDA_CONTEXT, Setup


def setup_options() -> dict[str, tuple[Any, Any]]:
    O = typer.Option
    return {
        "method": (
            str,
            O("full", "--method", help="full | freeze | lora | qlora, or an RL method: dpo | kto | orpo | ppo | grpo"),
        ),
        "tuning": (Optional[str], O(None, "--tuning", help="With an RL method: full | lora | qlora [full].")),
        "stack": (
            Optional[str],
            O(
                None,
                "--stack",
                help="hf | trl | llamafactory | unsloth | torchtune | axolotl | "
                "ms-swift | fsdp-qlora | deepspeed | torchtitan: that framework's defaults",
            ),
        ),
        "stack_version": (
            Optional[str],
            O(
                None,
                "--stack-version",
                help="Release of the --stack framework whose defaults "
                "apply (TRL: gradient checkpointing from 0.22, chunked "
                "loss from 1.7, GRPO beta 0 from 0.19) [current]",
            ),
        ),
        "transformers_version": (
            Optional[str],
            O(
                None,
                "--transformers-version",
                help="HF transformers release of the run: before 4.36 Llama-style "
                "attention is eager (no SDPA), before 4.46 the loss makes a "
                "shifted fp32 logits copy (full-legacy) [current]",
            ),
        ),
        "precision": (Optional[str], O(None, "--precision", help="fp32 | fp16 | bf16 | amp-fp16 | amp-bf16 [bf16]")),
        "batch": (int, O(1, "--batch", min=1, help="Micro-batch per GPU (GRPO: completions per GPU).")),
        "seq_len": (int, O(2048, "--seq-len", min=1, help="Tokens per sample (GRPO: prompt tokens).")),
        "grad_accum": (
            int,
            O(1, "--grad-accum", min=1, help="Gradient accumulation steps (gradients then live through forward)."),
        ),
        "grad_ckpt": (
            Optional[bool],
            O(None, "--grad-ckpt/--no-grad-ckpt", help="Gradient checkpointing [stack default]."),
        ),
        "ac_mode": (Optional[str], O(None, "--ac-mode", help="full | selective (torchtitan op-level) checkpointing.")),
        "compile": (bool, O(False, "--compile", help="torch.compile (fused norm upcasts and MLP activation).")),
        "kernels": (
            Optional[str],
            O(None, "--kernels", help="torch | liger | unsloth: fused norm/SwiGLU kernels [stack default]"),
        ),
        "attn": (Optional[str], O(None, "--attn", help="flash | sdpa | eager (eager stores the seq² scores) [sdpa]")),
        "optimizer": (
            Optional[str],
            O(
                None,
                "--optimizer",
                help="adamw | adamw-fused | adamw-8bit | paged-adamw-8bit | "
                "paged-adamw | sgd | adafactor [adamw: foreach]",
            ),
        ),
        "optimizer_in_bwd": (
            Optional[bool],
            O(None, "--optimizer-in-bwd/--no-optimizer-in-bwd", help="Optimizer step fused into backward (torchtune)."),
        ),
        "lora_rank": (Optional[int], O(None, "--lora-rank", min=1, help="LoRA rank r [stack default, else 8].")),
        "lora_targets": (
            Optional[str],
            O(None, "--lora-targets", help="all-linear | attention | q,k,v,o,gate,up,down,mlp"),
        ),
        "lora_dropout": (
            Optional[bool],
            O(None, "--lora-dropout/--no-lora-dropout", help="LoRA dropout > 0 (saves a copy of x)."),
        ),
        "quant": (
            Optional[str],
            O(
                None,
                "--quant",
                help="Base-weight format: nf4 | int4 | int8 | fp8 | mxfp4 "
                "(qlora default nf4; with --inference: quantized weights)",
            ),
        ),
        "loss": (
            Optional[str],
            O(
                None,
                "--loss",
                help="full (fp32 logits) | full-legacy (transformers < 4.46: + a shifted fp32 copy) | chunked (torchtune) | fused (Liger, unsloth)",
            ),
        ),
        "fused_ce": (bool, O(False, "--fused-ce", help="Same as --loss fused.")),
        "gpus": (int, O(1, "--gpus", min=1, help="GPUs (data parallel; with --inference: tensor parallel).")),
        "sharding": (Optional[str], O(None, "--sharding", help="none | ddp | fsdp | zero1 | zero2 | zero3")),
        "zero": (Optional[int], O(None, "--zero", min=0, max=3, help="DeepSpeed ZeRO stage 0-3.")),
        "fsdp": (bool, O(False, "--fsdp", help="PyTorch FSDP full shard (not the same as ZeRO-3).")),
        "fsdp_unit": (
            str,
            O("layer", "--fsdp-unit", help="FSDP wrap unit: layer (transformer block auto-wrap) | model (one unit)."),
        ),
        "fsdp_version": (
            Optional[int],
            O(None, "--fsdp-version", help="1 (root unit kept unsharded) | 2 (fully_shard)."),
        ),
        "fsdp_prefetch_units": (
            int,
            O(2, "--fsdp-prefetch-units", min=1, help="Units gathered at once (limit_all_gathers: 2)."),
        ),
        "zero3_live_params": (int, O(1_000_000_000, "--zero3-live-params", min=0, help="stage3_max_live_parameters.")),
        "zero3_prefetch": (int, O(50_000_000, "--zero3-prefetch", min=0, help="stage3_prefetch_bucket_size.")),
        "zero_bucket": (int, O(0, "--zero-bucket", min=0, help="reduce_bucket_size (0 = hidden² as HF 'auto').")),
        "offload": (Optional[str], O(None, "--offload", help="none | optimizer | params | activations (CPU offload)")),
        "ref_model": (
            str,
            O("auto", "--ref-model", help="RL reference model: auto | copy | none | offload | precomputed"),
        ),
        "num_generations": (int, O(8, "--num-generations", min=1, help="GRPO completions per prompt.")),
        "gen_engine": (
            str,
            O(
                "hf",
                "--gen-engine",
                help="GRPO/PPO generation: hf | vllm-colocate | vllm-hybrid "
                "(verl: engine memory released outside generation) | vllm-server",
            ),
        ),
        "reward_model": (
            str,
            O(
                "model",
                "--reward-model",
                help="PPO rewards: model (a frozen reward-model copy) | "
                "function (rule/function rewards: verl reward_model.enable=False)",
            ),
        ),
        "gen_memory_utilization": (
            float,
            O(
                0.3,
                "--gen-memory-utilization",
                help="GRPO colocated vLLM share of each GPU (TRL vllm_gpu_memory_utilization).",
            ),
        ),
        "ds3_gather_for_generation": (
            bool,
            O(
                True,
                "--ds3-gather-for-generation/--no-ds3-gather-for-generation",
                help="GRPO/PPO generated in the trainer under ZeRO-3: gather the whole model for generation "
                "(TRL ds3_gather_for_generation, default on) or keep it sharded (slow).",
            ),
        ),
        "max_completion_len": (
            Optional[int],
            O(None, "--max-completion-len", min=1, help="GRPO/PPO generated tokens per completion [256]."),
        ),
        "inference": (bool, O(False, "--inference", help="Serving (vLLM) instead of training.")),
        "max_model_len": (Optional[int], O(None, "--max-model-len", min=1, help="Serving: tokens per sequence.")),
        "max_seqs": (Optional[int], O(None, "--max-seqs", min=1, help="Serving: vLLM max_num_seqs [engine default].")),
        "max_batched_tokens": (
            Optional[int],
            O(None, "--max-batched-tokens", min=1, help="Serving: vLLM max_num_batched_tokens [engine default]."),
        ),
        "kv_dtype": (str, O("auto", "--kv-dtype", help="auto | fp8 | bf16 | fp16 | fp32")),
        "gpu_memory_utilization": (
            float,
            O(0.9, "--gpu-memory-utilization", help="Serving: share of GPU memory vLLM may use."),
        ),
        "vllm_version": (
            Optional[str],
            O(None, "--vllm-version", help="vLLM release whose profiling rule applies [current]."),
        ),
        "enforce_eager": (bool, O(False, "--enforce-eager", help="Serving: no CUDA graphs.")),
        "vllm_sampler": (
            str,
            O(
                "auto",
                "--vllm-sampler",
                help="Serving: top-k/top-p sampler of the profile run: auto | native "
                "(PyTorch sort) | flashinfer (0.8-0.11 Docker image) [auto: by release]",
            ),
        ),
        "cuda_context": (
            Optional[str],
            O(None, "--cuda-context", metavar="SIZE", help="CUDA context per process [0.5GiB]."),
        ),
    }


def _sharding(opts: dict[str, Any]) -> Optional[str]:
    fsdp, zero, sharding = opts.pop("fsdp"), opts.pop("zero"), opts.pop("sharding")
    if fsdp and zero is not None:
        raise UsageError(
            f"--fsdp and --zero {zero} are two different sharding schemes",
            hint="FSDP full shard: --fsdp; DeepSpeed: --zero 1|2|3",
        )
    chosen = "fsdp" if fsdp else ({0: "none", 1: "zero1", 2: "zero2", 3: "zero3"}[zero] if zero is not None else None)
    if sharding is not None and chosen is not None and sharding != chosen:
        raise UsageError(f"--sharding {sharding} contradicts {'--fsdp' if fsdp else f'--zero {zero}'}")
    return sharding or chosen


def build_setup(flags: dict[str, Any], parse_bytes) -> Setup:
    """Flag values (names as in setup_options) -> an unresolved, validated Setup."""
    opts = dict(flags)
    opts["sharding"] = _sharding(opts)
    if opts.pop("fused_ce"):
        if opts.get("loss") not in (None, "fused"):
            raise UsageError(f"--fused-ce with --loss {opts['loss']}: pick one")
        opts["loss"] = "fused"
    context = opts.pop("cuda_context")
    opts["cuda_context"] = parse_bytes(context) if context else DEFAULT_CUDA_CONTEXT
    return Setup(**opts).validated()
