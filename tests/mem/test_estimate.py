"""The estimator's terms against values computed by hand for a tiny config, and its shape."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops_cli.mem.estimate import TERMS, estimate, kv_bytes_per_token
from mlops_cli.mem.models import load_from_path
from mlops_cli.mem.presets import load_preset, preset_names
from mlops_cli.mem.setup import GiB, Setup

TINY = Path(__file__).resolve().parent.parent / "fixtures" / "mem" / "tiny-llama" / "config.json"

# Hand computation for the tiny config: h=64, L=2, heads=4, kv=2, head_dim=16, i=128, V=1000.
H, L, A, KV, HD, I, V = 64, 2, 4, 2, 16, 128, 1000
P_LAYER = (H * A * HD) + 2 * (H * KV * HD) + (A * HD * H) + 3 * H * I + 2 * H  # q, k+v, o, SwiGLU, 2 norms
P = 2 * V * H + L * P_LAYER + H  # embedding + untied LM head + layers + final norm
# Bytes kept per token per layer (bf16): 2 norms (bf16 input + fp32 upcast), 2 projection inputs,
# q/k/v, attention output + fp32 log-sum-exp per head, 4 SwiGLU tensors of width i.
PER_TOKEN_LAYER = 2 * (2 * H + 4 * H) + 2 * 2 * H + 2 * (A * HD + 2 * KV * HD) + (2 * A * HD + 4 * A) + 4 * I * 2


@pytest.fixture(scope="module")
def tiny():
    return load_from_path(TINY)


def test_parameter_count_by_hand(tiny):
    assert P_LAYER == 36992 and P == 202048
    assert tiny.total_params == P


def test_full_bf16_training_terms_by_hand(tiny):
    s = Setup(batch=2, seq_len=8, cuda_context=0)
    b = estimate(tiny, s).breakdown
    tokens = 16
    assert b["weights"] == 2 * P
    assert b["gradients"] == 2 * P
    assert b["optimizer_states"] == 4 * P  # AdamW m and v in bf16 (pure bf16 run)
    assert b["activations"] == tokens * L * PER_TOKEN_LAYER + tokens * 2 * 2 * H
    assert b["attention_scores"] == 0  # flash: no seq² term
    # bf16 logits, fp32 upcast, shifted fp32 copy, log-softmax output, loss-backward buffer
    assert b["logits"] == tokens * V * (2 + 4 + 4 + 4 + 4)
    assert b["kv_cache"] == 0 and b["cuda_context"] == 0
    allocated = sum(v for k, v in b.items() if k not in ("allocator_reserve", "cuda_context"))
    assert b["allocator_reserve"] == round(allocated * 0.10)


def test_eager_attention_adds_the_score_matrix(tiny):
    flash = estimate(tiny, Setup(batch=2, seq_len=8, attn="flash")).breakdown
    eager = estimate(tiny, Setup(batch=2, seq_len=8, attn="eager")).breakdown
    # per layer, per token: heads × seq × (fp32 softmax output + its bf16 copy), kept for every
    # layer, plus one layer's score gradient during the softmax backward
    assert eager["attention_scores"] == (L + 1) * 16 * A * 8 * (4 + 2)
    ckpt = estimate(tiny, Setup(batch=2, seq_len=8, attn="eager", grad_ckpt=True)).breakdown
    assert ckpt["attention_scores"] == 2 * 16 * A * 8 * (4 + 2)  # one recomputed layer + its gradient
    assert eager["activations"] == flash["activations"]
    sdpa = estimate(tiny, Setup(batch=2, seq_len=8, attn="sdpa")).breakdown
    assert sdpa["attention_scores"] == 0


def test_gradient_checkpointing_keeps_layer_inputs_plus_one_layer(tiny):
    b = estimate(tiny, Setup(batch=2, seq_len=8, grad_ckpt=True)).breakdown
    assert b["activations"] == 16 * (L * 2 * H + PER_TOKEN_LAYER) + 16 * 2 * 2 * H


def test_fp32_and_amp_model_states(tiny):
    fp32 = estimate(tiny, Setup(precision="fp32")).breakdown
    assert (fp32["weights"], fp32["gradients"], fp32["optimizer_states"]) == (4 * P, 4 * P, 8 * P)
    amp = estimate(tiny, Setup(precision="amp-bf16")).breakdown
    # HF anatomy: 6 B/param weights (fp32 + 16-bit copy), 4 B grads, 8 B AdamW
    assert (amp["weights"], amp["gradients"], amp["optimizer_states"]) == (6 * P, 4 * P, 8 * P)


def test_lora_and_qlora(tiny):
    lora_params = 8 * L * ((H + A * HD) * 2 + 2 * (H + KV * HD) + 3 * (H + I))
    lora = estimate(tiny, Setup(method="lora"))
    assert lora.trainable_params == lora_params
    assert lora.breakdown["weights"] == 2 * P + 4 * lora_params  # frozen bf16 base + fp32 adapters
    assert lora.breakdown["gradients"] == 4 * lora_params
    assert lora.breakdown["optimizer_states"] == 8 * lora_params
    q = estimate(tiny, Setup(method="qlora"))
    linear = L * (P_LAYER - 2 * H)
    expected = linear * (0.5 + 0.127 / 8) + (P - linear) * 4 + 4 * lora_params
    assert q.breakdown["weights"] == round(expected)


def test_zero_sharding_follows_deepspeed(tiny):
    z2 = estimate(tiny, Setup(gpus=4, zero=2, cuda_context=0)).breakdown
    # DeepSpeed stage 2: 2P + 18P/N (16-bit params; 16+32-bit grads, fp32 master, Adam states sharded)
    assert z2["weights"] + z2["gradients"] + z2["optimizer_states"] == pytest.approx(2 * P + 18 * P / 4, abs=2)
    largest = max(V * H, H * I)
    # With no live-parameter allowance it is DeepSpeed's estimator (4·largest_layer + 18P/N) plus the
    # contiguous gradient bucket (HF "auto": hidden² elements, 16-bit).
    z3 = estimate(tiny, Setup(gpus=4, zero=3, zero3_live_params=0)).breakdown
    assert z3["weights"] + z3["gradients"] + z3["optimizer_states"] == pytest.approx(
        4 * largest + 18 * P / 4 + 2 * H * H, abs=2)
    # Default stage3_max_live_parameters 1e9 > P: the whole tiny model stays gathered (2P).
    z3 = estimate(tiny, Setup(gpus=4, zero=3)).breakdown
    assert z3["weights"] + z3["gradients"] + z3["optimizer_states"] == pytest.approx(
        2 * P + 2 * largest + 18 * P / 4 + 2 * H * H, abs=2)
    off = estimate(tiny, Setup(gpus=4, zero=2, offload="optimizer")).breakdown
    assert off["optimizer_states"] == 0 and off["weights"] == 2 * P


def test_kv_cache_per_token_and_serving(tiny):
    s = Setup(inference=True, max_model_len=100, max_seqs=3)
    assert kv_bytes_per_token(tiny, s) == 2 * L * KV * HD * 2
    est = estimate(tiny, s, capacity=4 * GiB)
    assert est.breakdown["kv_cache"] == 3 * 100 * 256
    assert est.serving["kv_cache_tokens"] == int((4 * GiB * 0.9 - est.serving["static_bytes"]) // 256)
    assert est.serving["max_concurrency"] == round(est.serving["kv_cache_tokens"] / 100, 2)
    fp8 = estimate(tiny, s.with_changes(kv_dtype="fp8"))
    assert fp8.breakdown["kv_cache"] == est.breakdown["kv_cache"] // 2


def test_vllm_anchor_llama3_8b_on_h100():
    """vLLM PR #10511 log: Meta-Llama-3-8B on H100, 0.90 -> weights 14.96 GiB, KV cache 53.29 GiB."""
    m = load_preset("meta-llama/Llama-3.1-8B")
    est = estimate(m, Setup(inference=True, max_model_len=8192), capacity=int(79.22 * GiB))
    assert est.breakdown["weights"] / GiB == pytest.approx(14.96, abs=0.01)
    assert est.serving["kv_cache_bytes"] / GiB == pytest.approx(53.29, rel=0.05)
    assert est.serving["kv_bytes_per_token"] == 128 * 1024


@pytest.mark.parametrize("setup", [
    Setup(), Setup(method="lora", grad_ckpt=True), Setup(attn="eager"), Setup(method="qlora", precision="bf16"),
    Setup(gpus=4, zero=3), Setup(precision="fp32", optimizer="sgd"),
])
def test_monotonic_in_batch_and_sequence_length(setup):
    m = load_preset("Qwen/Qwen2.5-7B")
    by_batch = [estimate(m, setup.with_changes(batch=b)).peak_bytes for b in (1, 2, 3, 4, 8)]
    by_seq = [estimate(m, setup.with_changes(seq_len=n)).peak_bytes for n in (128, 512, 1024, 2048, 4096, 8192)]
    assert by_batch == sorted(by_batch) and len(set(by_batch)) == len(by_batch)
    assert by_seq == sorted(by_seq) and len(set(by_seq)) == len(by_seq)


def test_breakdown_has_every_term_and_sums_to_peak(tiny):
    est = estimate(tiny, Setup())
    assert tuple(est.breakdown) == TERMS
    assert est.peak_bytes == sum(est.breakdown.values())


def test_presets_load_and_match_published_sizes():
    names = preset_names()
    assert len(names) >= 20
    for name in names:
        assert load_preset(name).total_params > 1e8, name
    # published parameter counts
    for name, billions in (("meta-llama/Llama-3.1-8B", 8.03), ("Qwen/Qwen2.5-7B", 7.62),
                           ("meta-llama/Llama-2-7b-hf", 6.74), ("Qwen/Qwen2.5-72B", 72.7),
                           ("mistralai/Mixtral-8x7B-v0.1", 46.7)):
        assert load_preset(name).total_params / 1e9 == pytest.approx(billions, abs=0.02)


@pytest.mark.parametrize("length", [8192, 131072, 400000, 600000])
def test_serving_fits_exactly_when_one_full_sequence_fits_in_the_kv_cache(length):
    m = load_preset("meta-llama/Llama-3.1-8B")
    cap = int(79.65 * GiB)
    est = estimate(m, Setup(inference=True, max_model_len=length), cap)
    one_sequence_fits = est.serving["kv_cache_tokens"] >= length
    assert (est.required_bytes <= cap) == one_sequence_fits
    assert (est.serving["max_concurrency"] >= 1) == one_sequence_fits


def test_zero3_param_offload_keeps_live_parameters_and_bucket(tiny):
    """fp32 LoRA, ZeRO-3 with params and optimizer on the CPU (the PEFT README setup), by hand."""
    s = Setup(method="lora", precision="fp32", zero=3, offload="params", zero3_live_params=100_000,
              zero_bucket=1_000, cuda_context=0)
    est = estimate(tiny, s)
    adapters = est.trainable_params
    # Resident: max(largest layer 64,000, min(P, 100,000)) fp32 params; frozen base: no layer grads.
    assert est.breakdown["weights"] == 4 * 100_000 + 4 * adapters
    assert est.breakdown["gradients"] == 4 * 1_000 and est.breakdown["optimizer_states"] == 0
    small = estimate(tiny, s.with_changes(zero3_live_params=10)).breakdown["weights"]
    assert small == 4 * max(V * H, H * I) + 4 * adapters  # never below one gathered layer


def test_alibi_bias_is_counted_once_whatever_the_kernel():
    from mlops_cli.mem.config import config_from_dict

    base = {"model_type": "baichuan", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
            "intermediate_size": 128, "vocab_size": 1000}
    alibi = config_from_dict(base, "b13")
    rope = config_from_dict({**base, "max_position_embeddings": 4096}, "b7")
    assert alibi.alibi_mask and not rope.alibi_mask
    s = Setup(batch=2, seq_len=8, attn="flash")
    # batch · heads · seq² · 2 bytes (bf16): 2 · 4 · 64 · 2
    assert estimate(alibi, s).breakdown["attention_scores"] == 2 * 4 * 8 * 8 * 2
    assert estimate(rope, s).breakdown["attention_scores"] == 0
    assert load_preset("baichuan-inc/Baichuan2-13B-Chat").alibi_mask
    assert not load_preset("baichuan-inc/Baichuan2-7B-Chat").alibi_mask
