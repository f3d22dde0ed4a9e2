"""quantization_config handling and --stack resolution."""

from __future__ import annotations

import pytest

from mlops_cli.errors import UsageError
from mlops_cli.mem.presets import load_preset
from mlops_cli.mem.quant import from_config, weight_bytes
from mlops_cli.mem.spec import Setup
from mlops_cli.mem.stacks import PRESETS, SOURCES, STACKS, resolve


def test_awq_and_gptq_keep_embeddings_and_head_16bit():
    m = load_preset("meta-llama/Llama-3.1-8B")
    q = from_config({"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True})
    expect = m.linear_params * (0.5 + (2 + 0.5) / 128) + (m.total_params - m.linear_params) * 2
    assert weight_bytes(m, q) == pytest.approx(expect)
    per_channel = from_config({"quant_method": "gptq", "bits": 4, "group_size": -1})
    assert weight_bytes(m, per_channel) < weight_bytes(m, q)


def test_compressed_tensors_bits_and_ignore_list():
    q = from_config(
        {
            "quant_method": "compressed-tensors",
            "ignore": ["lm_head", "re:.*mlp.gate$"],
            "config_groups": {"group_0": {"weights": {"num_bits": 4}}},
        }
    )
    assert q.bits == 4 and q.skips("lm_head") and q.skips("model.layers.3.mlp.gate")
    assert not q.skips("model.layers.3.mlp.gate_proj")


def test_unknown_quantization_config_is_ignored():
    assert from_config({"quant_method": "mystery"}) is None
    assert from_config("fp8") is None


def test_every_stack_has_a_preset_and_a_source():
    assert set(STACKS) == set(PRESETS) == set(SOURCES)


def test_explicit_flags_override_the_stack_and_origins_are_recorded():
    s, origin = resolve(Setup(method="lora", stack="torchtune", loss="full"))
    assert s.loss == "full" and origin["loss"] == "flag"
    assert s.grad_ckpt is True and origin["grad_ckpt"] == "stack:torchtune"
    assert s.lora_dtype == "bf16" and s.lora_targets == "q,v"
    plain, origin = resolve(Setup(method="lora"))
    assert plain.grad_ckpt is False and origin["grad_ckpt"] == "default"


def test_stack_defaults_keyed_by_method():
    full, _ = resolve(Setup(method="full", stack="torchtune"))
    lora, _ = resolve(Setup(method="lora", stack="torchtune"))
    assert (full.optimizer, full.optimizer_in_bwd) == ("paged-adamw-8bit", True)
    assert (lora.optimizer, lora.optimizer_in_bwd) == ("adamw-fused", False)


def test_several_gpus_default_to_ddp_and_qlora_to_nf4():
    s, origin = resolve(Setup(method="qlora", gpus=4))
    assert s.sharding == "ddp" and s.quant == "nf4"


def test_trl_defaults_follow_the_release():
    # trl sft_config.py: gradient_checkpointing=True from v0.22.0; loss_type chunked_nll from v1.7.0
    old, _ = resolve(Setup(method="lora", stack="trl", stack_version="0.19.1"))
    mid, _ = resolve(Setup(method="lora", stack="trl", stack_version="0.22.0"))
    new, origin = resolve(Setup(method="lora", stack="trl"))
    assert (old.grad_ckpt, old.loss) == (False, "full")
    assert (mid.grad_ckpt, mid.loss) == (True, "full")
    assert (new.grad_ckpt, new.loss) == (True, "fused") and origin["loss"] == "stack:trl"
    with pytest.raises(UsageError):
        resolve(Setup(stack="trl", stack_version="latest"))


def test_grpo_reference_model_before_trl_0_19():
    from mlops_cli.mem.rl import ref_mode

    assert ref_mode(Setup(method="grpo", stack="trl", stack_version="0.18.0")) == "copy"  # beta 0.04
    assert ref_mode(Setup(method="grpo", tuning="lora", stack="trl", stack_version="0.18.0")) == "none"
    assert ref_mode(Setup(method="grpo", stack="trl")) == "none"  # beta 0.0


def test_deepspeed_casts_fp32_embeddings_and_adapters_to_half():
    from mlops_cli.mem.states import model_states, replica_weights

    m = load_preset("Qwen/Qwen2.5-7B")
    plain, _ = resolve(Setup(method="qlora", stack="hf"))
    ds, _ = resolve(Setup(method="qlora", stack="hf", sharding="zero2"))
    emb = m.total_params - m.linear_params
    assert replica_weights(m, plain) - replica_weights(m, ds) == pytest.approx(2 * emb)
    assert model_states(m, ds).adapters * 2 == model_states(m, plain).adapters


def test_axolotl_qlora_keeps_embeddings_16bit():
    from mlops_cli.mem.states import replica_weights

    m = load_preset("meta-llama/Llama-3.1-8B")
    ax, _ = resolve(Setup(method="qlora", stack="axolotl"))
    hf, _ = resolve(Setup(method="qlora", stack="hf"))
    assert ax.keep_fp32_non_quantized is False and hf.keep_fp32_non_quantized is True
    assert replica_weights(m, hf) > replica_weights(m, ax)


def test_fused_kernels_save_less_than_eager_modules():
    from mlops_cli.mem.terms import layer_activations_per_token

    m = load_preset("meta-llama/Llama-3.1-8B")
    eager = layer_activations_per_token(m, "bf16")
    liger = layer_activations_per_token(m, "bf16", kernels="liger")
    unsloth = layer_activations_per_token(m, "bf16", kernels="unsloth", adapters=True)
    assert eager - liger == 2 * 4 * m.hidden + 2 * m.intermediate  # two fp32 norm rows, the SwiGLU output
    assert liger - unsloth == 2 * m.intermediate  # LoRA_MLP recomputes the down projection's input
    assert resolve(Setup(method="qlora", stack="unsloth"))[0].kernels == "unsloth"
