"""Property-based: any model config, safetensors header or setup gives a result or a clean
UsageError (exit 2), never another exception (issue 8). Fixed seed, few examples."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from mlops_cli.errors import UsageError
from mlops_cli.mem.config import config_from_dict
from mlops_cli.mem.estimate import estimate
from mlops_cli.mem.models import parse_config
from mlops_cli.mem.presets import load_preset
from mlops_cli.mem.safetensors_count import count_header
from mlops_cli.mem.spec import METHODS, Setup

KEYS = [
    "model_type",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "intermediate_size",
    "vocab_size",
    "tie_word_embeddings",
    "num_experts",
    "num_experts_per_tok",
    "moe_intermediate_size",
    "quantization_config",
    "max_position_embeddings",
    "hidden_act",
    "text_config",
]
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-10, 10**7),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from(["llama", "phi", "bloom", "qwen3_moe", "gemma2", "t5"]),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.sampled_from(KEYS), st.integers(), max_size=3),
)


@settings(derandomize=True, max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=12))
def test_any_config_dict_is_a_model_or_a_usage_error(cfg):
    try:
        m = config_from_dict(cfg, "x")
    except UsageError:
        return
    assert m.total_params > 0 and m.layers > 0


@settings(derandomize=True, max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_any_config_text_parses_or_is_a_usage_error(text):
    try:
        config_from_dict(parse_config(text, "model config"), "x")
    except UsageError:
        pass


@settings(derandomize=True, max_examples=100, deadline=None)
@given(
    st.binary(max_size=300)
    | st.builds(
        lambda d: json.dumps(d).encode(),
        st.dictionaries(
            st.text(max_size=5),
            st.dictionaries(
                st.sampled_from(["dtype", "shape"]),
                st.one_of(st.text(max_size=4), st.lists(st.integers(-5, 10**6), max_size=3), st.integers()),
            ),
            max_size=4,
        ),
    )
)
def test_any_safetensors_header_counts_or_is_a_usage_error(header):
    try:
        count = count_header(header, "h")
    except UsageError:
        return
    assert count.total >= 0


@settings(derandomize=True, max_examples=60, deadline=None)
@given(
    method=st.sampled_from(METHODS),
    batch=st.integers(1, 64),
    seq=st.integers(1, 40000),
    gpus=st.integers(1, 8),
    sharding=st.sampled_from([None, "ddp", "fsdp", "zero1", "zero2", "zero3"]),
    ckpt=st.booleans(),
    stack=st.sampled_from([None, "hf", "trl", "torchtune", "unsloth", "fsdp-qlora", "torchtitan"]),
)
def test_any_setup_estimates_or_is_a_usage_error(method, batch, seq, gpus, sharding, ckpt, stack):
    m = load_preset("Qwen/Qwen2.5-0.5B")
    try:
        est = estimate(
            m, Setup(method=method, batch=batch, seq_len=seq, gpus=gpus, sharding=sharding, grad_ckpt=ckpt, stack=stack)
        )
    except UsageError:
        return
    assert 0 < est.allocated_peak_bytes <= est.torch_peak_bytes <= est.device_peak_bytes
