"""quantization_config handling and --stack resolution."""

from __future__ import annotations

import pytest

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
    q = from_config({"quant_method": "compressed-tensors", "ignore": ["lm_head", "re:.*mlp.gate$"],
                     "config_groups": {"group_0": {"weights": {"num_bits": 4}}}})
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
