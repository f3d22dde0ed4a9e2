"""vLLM mechanisms read from the vLLM sources at pinned releases (docs/mem.md, "Serving"): the
dummy sampler's backend by release, hybrid KV layouts (sliding window, chunked, linear, MLA),
engine defaults, MXFP4 expert padding, and the logs that check them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlops_cli.mem.config import config_from_dict
from mlops_cli.mem.presets import load_preset
from mlops_cli.mem.quant import from_config, weight_bytes
from mlops_cli.mem.serving import (
    BLOCK_SIZE,
    SAMPLER_BYTES,
    activation_peak,
    engine_defaults,
    kv_capacity,
    kv_groups,
    kv_layer_bytes,
    parse_version,
    sampler_backend,
    serving,
)
from mlops_cli.mem.spec import GiB, Setup

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "mem"


def load(name: str):
    cfg = json.loads((FIX / "configs" / f"{name}.json").read_text())
    return config_from_dict(cfg, name), from_config(cfg.get("quantization_config"))


@pytest.mark.parametrize(
    "version,expected",
    [
        ("0.7.3", "v0"),
        ("0.8.5", "native"),
        ("0.11.0", "native"),
        ("0.14.1", "native"),
        ("0.16.0", "native"),
        ("0.17.0", "triton"),
        ("0.20.2", "triton"),
        ("0.21.0", "flashinfer"),
        ("0.29.0", "flashinfer"),
    ],
)
def test_sampler_backend_by_release(version, expected):
    assert sampler_backend(Setup(inference=True), parse_version(version)) == expected


def test_flashinfer_can_be_named_for_the_docker_image():
    s = Setup(inference=True, vllm_sampler="flashinfer")
    assert sampler_backend(s, parse_version("0.10.1")) == "flashinfer"
    assert sampler_backend(s, parse_version("0.7.0")) == "v0"  # the V0 sampler is another code path


def test_native_sampler_matches_the_llm_d_h100_activations():
    # llm-d config_explorer/empirical-vllm-memory-results.md: 'Activation' 4.76 GiB (Llama-3.1-8B),
    # 5.56 GiB (Qwen3-0.6B) at the H100 defaults (8192 tokens, 1024 sequences)
    llama = load_preset("meta-llama/Llama-3.1-8B")
    act = activation_peak(llama, Setup(inference=True), 8192, 1024, "native")
    assert act / GiB == pytest.approx(4.76, rel=0.03)
    light = activation_peak(llama, Setup(inference=True), 8192, 1024, "flashinfer")
    assert light < act / 3


def test_engine_defaults_by_release_and_gpu():
    s = Setup(inference=True)
    assert engine_defaults(s, parse_version("0.8.5"), "A100-80GB", 79.15 * GiB) == (1024, 8192)  # A100s included
    assert engine_defaults(s, parse_version("0.9.2"), "A100-80GB", 79.15 * GiB) == (256, 2048)
    assert engine_defaults(s, parse_version("0.14.0"), "H100", 79.18 * GiB) == (1024, 8192)
    assert engine_defaults(s, parse_version("0.27.0"), "B200", 178 * GiB) == (1024, 8192)
    assert engine_defaults(s, parse_version("0.28.0"), "B200", 178 * GiB) == (1024, 16384)
    assert engine_defaults(s, parse_version("0.28.0"), "RTX4090", 23.6 * GiB) == (256, 2048)


def test_gpt_oss_layer_kinds_and_hybrid_grouping():
    m, _ = load("openai--gpt-oss-120b")
    assert m.layer_kinds[:4] == ("sliding", "full", "sliding", "full") and m.sliding_window == 128
    assert kv_groups(m, parse_version("0.10.1")) == ({"sliding": 18, "full": 18}, 18)
    assert kv_groups(m, parse_version("0.9.1")) == ({"full": 36}, 36)  # unify_hybrid_kv_cache_specs


def test_gpt_oss_120b_tp4_log_tokens_and_concurrency():
    # dennislee22 log: 45.32 GiB -> 'GPU KV cache size: 2,640,144 tokens', 'Maximum concurrency for
    # 16,384 tokens per request: 284.25x' (v0.10.1.1, TP4, max_num_batched_tokens 2048)
    m, _ = load("openai--gpt-oss-120b")
    s = Setup(inference=True, gpus=4, max_model_len=16384, vllm_version="0.10.1.1")
    tokens, concurrency, per_token, layout = kv_capacity(m, s, parse_version("0.10.1.1"), 45.32 * GiB, 2048)
    assert per_token == 36 * 2 * 2 * 64 * 2
    assert tokens == pytest.approx(2640144, rel=0.001)
    assert concurrency == pytest.approx(284.25, rel=0.005)
    assert layout.startswith("hybrid")
    # from 0.21 the reported size is max_concurrency x max_model_len
    later, conc, _, _ = kv_capacity(
        m, s.with_changes(vllm_version="0.21.0"), parse_version("0.21.0"), 45.32 * GiB, 2048
    )
    assert later == pytest.approx(conc * 16384, rel=1e-3) and later > tokens


def test_gemma3_pattern_and_padding():
    cfg = {
        "model_type": "gemma3_text",
        "hidden_size": 5376,
        "num_hidden_layers": 62,
        "num_attention_heads": 32,
        "num_key_value_heads": 16,
        "head_dim": 128,
        "intermediate_size": 21504,
        "vocab_size": 262208,
        "sliding_window": 1024,
        "sliding_window_pattern": 6,
    }
    m = config_from_dict(cfg, "gemma-3-27b")
    assert m.layer_kinds.count("full") == 10 and m.layer_kinds.count("sliding") == 52
    counts, group = kv_groups(m, parse_version("0.11.0"))
    assert group == 10 and counts == {"sliding": 60, "full": 10}  # 52 sliding layers padded to 6 groups of 10


def test_mla_cache_is_the_latent_and_not_split():
    cfg = {
        "model_type": "deepseek_v3",
        "hidden_size": 7168,
        "num_hidden_layers": 61,
        "num_attention_heads": 128,
        "num_key_value_heads": 128,
        "intermediate_size": 18432,
        "moe_intermediate_size": 2048,
        "n_routed_experts": 256,
        "num_experts_per_tok": 8,
        "vocab_size": 129280,
        "kv_lora_rank": 512,
        "qk_rope_head_dim": 64,
    }
    m = config_from_dict(cfg, "DeepSeek-V3")
    assert kv_layer_bytes(m, 8, 2) == kv_layer_bytes(m, 1, 2) == (512 + 64) * 2


def test_mxfp4_experts_are_padded_like_vllm():
    # llm-d logs: 'Model loading took' 13.47 GiB (gpt-oss-20b) and 64.38 GiB (gpt-oss-120b) on H100
    for name, logged in (("openai--gpt-oss-20b", 13.47), ("openai--gpt-oss-120b", 64.38)):
        m, q = load(name)
        assert weight_bytes(m, q) / GiB == pytest.approx(logged, rel=0.02)
        assert q.skips("model.layers.3.self_attn")


def test_llm_d_h100_rows():
    # the decomposition printed in those logs: weights + activation + non-torch + KV = 0.9 x 79.18 GiB
    m = load_preset("meta-llama/Llama-3.1-8B")
    est = serving(m, Setup(inference=True, max_model_len=16000, vllm_version="0.14.0"), 79.18 * GiB, "H100")
    assert est.sampler == "native"
    assert est.kv_cache_bytes / GiB == pytest.approx(51.38, rel=0.02)
    assert est.kv_cache_tokens % BLOCK_SIZE == 0
    assert SAMPLER_BYTES["native"] > SAMPLER_BYTES["triton"] > SAMPLER_BYTES["flashinfer"]
