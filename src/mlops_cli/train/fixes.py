"""The fixes from the notes, made specific to the run: its lr, its framework's flag names (pure)."""

from __future__ import annotations

import shlex
from typing import Optional

from mlops_cli.train.events import Context
from mlops_cli.train.oom import OomNumbers
from mlops_cli.train.values import fmt

# framework -> how to say: clip gradients, use bf16, warm up, set the lr
_FLAGS = {
    "hf": ("--max_grad_norm 1.0", "--bf16 true --fp16 false", "--warmup_ratio 0.03", "--learning_rate"),
    "trl": ("max_grad_norm=1.0", "bf16=True, fp16=False", "warmup_ratio=0.03", "learning_rate"),
    "llamafactory": ("max_grad_norm: 1.0", "bf16: true (and fp16: false)", "warmup_ratio: 0.03", "learning_rate:"),
    "ms-swift": ("--max_grad_norm 1.0", "--torch_dtype bfloat16", "--warmup_ratio 0.03", "--learning_rate"),
    "axolotl": ("max_grad_norm: 1.0", "bf16: true (and fp16: false)", "warmup_ratio: 0.03", "learning_rate:"),
    "deepspeed": (
        '"gradient_clipping": 1.0',
        '"bf16": {"enabled": true} instead of "fp16"',
        "a WarmupLR/WarmupDecayLR scheduler",
        "the optimizer lr",
    ),
    "megatron": ("--clip-grad 1.0", "--bf16 instead of --fp16", "--lr-warmup-fraction 0.01", "--lr"),
    "lightning": (
        "Trainer(gradient_clip_val=1.0)",
        'Trainer(precision="bf16-mixed")',
        "a warmup scheduler (e.g. LinearLR for the first steps)",
        "the optimizer lr",
    ),
    "torchtune": ("clip_grad_norm=1.0", "dtype=bf16", "lr_scheduler.num_warmup_steps=100", "optimizer.lr="),
    "verl": (
        "actor_rollout_ref.actor.grad_clip=1.0 (or optim.clip_grad)",
        "bf16 mixed precision",
        "optim.lr_warmup_steps_ratio=0.05",
        "optim.lr=",
    ),
    "fairseq": ("--clip-norm 1.0", "--bf16 instead of --fp16", "--warmup-updates 4000 --warmup-init-lr 1e-07", "--lr"),
    "nemo": ("trainer.gradient_clip_val=1.0", "trainer.precision=bf16-mixed", "a warmup in the scheduler", "optim.lr="),
}
_GENERIC = (
    "torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)",
    "bf16 autocast (torch.autocast(dtype=torch.bfloat16))",
    "a linear warmup over the first ~1-3% of steps",
    "the lr",
)


def flags(framework: str) -> tuple[str, str, str, str]:
    return _FLAGS.get(framework, _GENERIC)


def _lower_lr(lr: Optional[float], framework: str) -> str:
    lr_flag = flags(framework)[3]
    if lr is None or lr <= 0:
        return f"lower the learning rate ({lr_flag}) by 3-10x"
    return f"lower the learning rate from {fmt(lr)} (to {fmt(lr / 3)}, or {fmt(lr / 10)}) ({lr_flag})"


def nan_fixes(
    cause: Optional[str],
    framework: str,
    ctx: Context,
    *,
    lr: Optional[float],
    step: Optional[int],
    op: Optional[str] = None,
    max_grad: Optional[float] = None,
) -> list[str]:
    clip, bf16, warmup, _ = flags(framework)
    clip_now = f" (now {fmt(ctx.max_grad_norm)})" if ctx.max_grad_norm else ""
    at = f" at step {step}" if step is not None else ""
    if cause == "numerical_op":
        return [
            f"the op `{op}` produced the NaN: guard its input with an epsilon or a clamp "
            "(log(x + 1e-8), sqrt(x + 1e-12), x / (y + 1e-8), clamp before pow/exp)",
            "use the stable form where there is one: log_softmax instead of log(softmax), "
            "logsumexp, F.normalize(eps=...)",
            "find the forward line with torch.autograd.set_detect_anomaly(True) (the traceback above the error)",
        ]
    if cause == "fp16_overflow_loss_scale":
        out = [f"switch fp16 to bf16: {bf16} (Ampere or newer GPUs)"]
        out.append(
            "if the GPU has no bf16 (V100, T4): lower the lr, clip gradients "
            f'({clip}), and start the loss scale lower (DeepSpeed: "initial_scale_power": 16, '
            '"hysteresis": 2, "loss_scale_window": 1000)'
        )
        out.append("a model pretrained in bf16 often overflows fp16 activations: keep it in bf16 or fp32")
        return out
    if cause == "lr_too_high":
        return [
            _lower_lr(lr, framework),
            f"add or lengthen warmup: {warmup}" + (f" (now {ctx.warmup})" if ctx.warmup else ""),
            f"clip gradients: {clip}{clip_now}",
        ]
    if cause == "grad_explosion":
        seen = f" (grad norm reached {fmt(max_grad)})" if max_grad else ""
        return [
            f"clip gradients: {clip}{clip_now}{seen}",
            _lower_lr(lr, framework),
            f"look at the batch{at}: a long or corrupt sample often makes the spike",
        ]
    if cause == "bad_data":
        return [
            f"find the batch{at}: log the sample ids (mlops_cli.nanguard writes them) and check them for "
            "NaN/Inf features, empty or all-masked labels (every label -100 gives 0/0 = NaN)",
            "drop or repair those samples; for SFT/DPO make sure the prompt does not fill max_length "
            "(responses truncated to nothing)",
            "if it happens from the first step with a tiny lr, check the config instead: precision "
            f"({bf16}), attention implementation, the loss for this model type",
        ]
    out = [_lower_lr(lr, framework), f"clip gradients: {clip}{clip_now}", f"add warmup: {warmup}"]
    if ctx.precision == "fp16":
        out.append(f"switch fp16 to bf16: {bf16}")
    out.append(f"check the data at the onset{at} for NaN/Inf or empty labels")
    return out


def oom_fixes(split: str, n: OomNumbers, framework: str, ctx: Context, runtime: Optional[str] = None) -> list[str]:
    if runtime == "tensorflow":
        return [
            "lower the batch size (model.fit(batch_size=...)) or the input size; the tensor shape in the "
            "message shows which dimension is large",
            "use mixed precision (tf.keras.mixed_precision.set_global_policy('mixed_float16'))",
            "if other processes share the GPU: tf.config.experimental.set_memory_growth(gpu, True)",
        ]
    if runtime == "xla":
        return [
            "lower the per-device batch size or the sequence length; shard more (FSDP/tensor parallel mesh axes)",
            "turn on rematerialisation (jax.checkpoint / remat policy) and bfloat16 activations",
            "if another process holds the GPU: XLA_PYTHON_CLIENT_PREALLOCATE=false or a lower "
            "XLA_PYTHON_CLIENT_MEM_FRACTION for the other one",
        ]
    env = n.env_var or "PYTORCH_CUDA_ALLOC_CONF"
    if split == "fragmentation":
        return [
            f"set {env}=expandable_segments:True before starting (the allocator held enough free memory, "
            "but not in one block)",
            "pad to fixed or bucketed lengths (or pack sequences) so block sizes repeat; "
            "call torch.cuda.empty_cache() after evaluation",
            "if it still fails at the same step, treat it as capacity: lower the micro-batch",
        ]
    out = [
        "lower the micro-batch and raise gradient accumulation to keep the global batch",
        "turn on gradient checkpointing; use FlashAttention/SDPA",
        "shorter sequences, or LoRA/QLoRA instead of full fine-tuning; shard with ZeRO-3/FSDP across GPUs",
    ]
    if n.other_processes and n.total and n.other_processes > 0.9 * n.total and n.this_process is None:
        out.insert(0, "another process holds most of this GPU: check `mlops gpu` or nvidia-smi for leftovers")
    return out


def oom_check_command(model: Optional[str], n: OomNumbers, ctx: Context) -> Optional[str]:
    if not model:
        return None
    argv = ["mlops", "oom-check", model]
    if n.total:
        argv += ["--gpu-mem", f"{n.total / 1024**3:.2f}GiB"]
    if ctx.method in ("lora", "qlora", "full", "freeze"):
        argv += ["--method", ctx.method]
    if ctx.batch_size:
        argv += ["--batch", str(ctx.batch_size)]
    if ctx.seq_len:
        argv += ["--seq-len", str(ctx.seq_len)]
    if ctx.zero_stage in (1, 2, 3):
        argv += ["--zero", str(ctx.zero_stage)]
    return shlex.join(argv)
