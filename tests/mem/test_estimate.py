"""The estimator's terms against values computed by hand for a tiny config."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops_cli.mem.estimate import estimate
from mlops_cli.mem.models import load_from_path
from mlops_cli.mem.presets import load_preset, preset_names
from mlops_cli.mem.spec import GiB, Setup
from mlops_cli.mem.terms import kv_bytes_per_token

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


def phases(est):
    return {p.name: p.parts for p in est.train.phases}


def test_parameter_count_by_hand(tiny):
    assert P_LAYER == 36992 and P == 202048
    assert tiny.total_params == P


def test_full_bf16_phases_by_hand(tiny):
    est = estimate(tiny, Setup(batch=2, seq_len=8, cuda_context=0))
    ph, tokens = phases(est), 16
    assert ph["optimizer_step"] == {
        "weights": 2 * P,
        "adapters": 0,
        "optimizer_states": 4 * P,
        "master": 0,
        "gradients": 2 * P,
        "optimizer_temporaries": 2 * P,
    }
    assert ph["forward"]["activations"] == tokens * L * PER_TOKEN_LAYER + tokens * 2 * 2 * H
    assert ph["forward"]["gradients"] == 0  # freed by zero_grad(set_to_none=True) after the last step
    # bf16 logits, their fp32 upcast, the log-softmax output, the gradient in the loss backward
    assert ph["backward_start"]["logits"] == tokens * V * (2 + 4 + 4 + 4)
    assert "recompute" not in ph
    assert est.allocated_peak_bytes == max(sum(p.values()) for p in ph.values())


def test_eager_attention_adds_the_score_matrix(tiny):
    eager = phases(estimate(tiny, Setup(batch=2, seq_len=8, attn="eager")))
    # per layer and token: heads × seq × (fp32 softmax output + its bf16 copy), for every layer,
    # plus one layer's score gradient during the softmax backward
    assert eager["forward"]["attention_scores"] == (L + 1) * 16 * A * 8 * (4 + 2)
    sdpa = phases(estimate(tiny, Setup(batch=2, seq_len=8, attn="sdpa")))
    assert sdpa["forward"]["attention_scores"] == 0


def test_gradient_checkpointing_keeps_layer_inputs_and_recomputes_one_layer(tiny):
    ph = phases(estimate(tiny, Setup(batch=2, seq_len=8, grad_ckpt=True)))
    saved = 16 * L * 2 * H + 16 * 2 * 2 * H
    assert ph["forward"]["activations"] == saved
    layer_grads = 16 * 2 * (2 * H + 2 * I)
    assert ph["recompute"]["activations"] == saved + 16 * PER_TOKEN_LAYER + layer_grads
    assert "logits" not in ph["recompute"] and ph["recompute"]["gradients"] == 2 * P


def test_fp32_and_amp_model_states(tiny):
    fp32 = phases(estimate(tiny, Setup(precision="fp32")))["optimizer_step"]
    assert (fp32["weights"], fp32["gradients"], fp32["optimizer_states"]) == (4 * P, 4 * P, 8 * P)
    amp = phases(estimate(tiny, Setup(precision="amp-bf16")))
    assert amp["forward"]["autocast_copies"] == 2 * P  # autocast's bf16 casts live until backward
    assert (amp["optimizer_step"]["weights"], amp["optimizer_step"]["optimizer_states"]) == (4 * P, 8 * P)


def test_lora_and_qlora(tiny):
    lora_params = 8 * L * ((H + A * HD) * 2 + 2 * (H + KV * HD) + 3 * (H + I))
    lora = estimate(tiny, Setup(method="lora"))
    assert lora.trainable_params == lora_params
    step = phases(lora)["optimizer_step"]
    assert step["weights"] == 2 * P and step["adapters"] == 4 * lora_params  # PEFT keeps adapters fp32
    assert step["gradients"] == 4 * lora_params and step["optimizer_states"] == 8 * lora_params
    linear = L * (P_LAYER - 2 * H)
    q = phases(estimate(tiny, Setup(method="qlora")))["optimizer_step"]
    assert q["weights"] == pytest.approx(linear * (0.5 + 0.127 / 8) + (P - linear) * 2)
    # HF + PEFT prepare_model_for_kbit_training: non-quantized weights in fp32
    hf = phases(estimate(tiny, Setup(method="qlora", stack="hf")))["optimizer_step"]
    assert hf["weights"] == pytest.approx(linear * (0.5 + 0.127 / 8) + (P - linear) * 4)


def test_zero_sharding_follows_deepspeed(tiny):
    z2 = phases(estimate(tiny, Setup(gpus=4, sharding="zero2", cuda_context=0)))["optimizer_step"]
    # DeepSpeed stage 2: 2P + 18P/N (16-bit params; 16+32-bit grads, fp32 master, Adam states sharded)
    assert z2["weights"] + z2["gradients"] + z2["optimizer_states"] + z2["master"] == pytest.approx(2 * P + 18 * P / 4)
    off = phases(estimate(tiny, Setup(gpus=4, sharding="zero2", offload="optimizer")))["optimizer_step"]
    assert off["optimizer_states"] == 0 and off["weights"] == 2 * P


def test_kv_cache_per_token_and_serving(tiny):
    assert kv_bytes_per_token(tiny, 1, 2) == 2 * L * KV * HD * 2
    s = Setup(inference=True, max_model_len=100, max_seqs=3, vllm_version="0.10.1")
    est = estimate(tiny, s, capacity=4 * GiB)
    sv = est.serve
    free = 4 * GiB * 0.9 - sv.weights - sv.activation_peak - sv.non_torch
    assert sv.kv_cache_tokens == int(free // (256 * 16)) * 16
    # get_max_concurrency_for_kv_cache_config (0.9.1+): blocks / cdiv(max_model_len, block_size)
    assert sv.max_concurrency == round(sv.kv_cache_tokens / 16 / 7, 2)
    fp8 = estimate(tiny, s.with_changes(kv_dtype="fp8"), capacity=4 * GiB)
    assert fp8.serve.kv_bytes_per_token == 128


def test_vllm_anchor_llama3_8b_on_h100():
    """vLLM PR #10511 log: Meta-Llama-3-8B on H100, 0.90 -> weights 14.96 GiB, KV cache 53.29 GiB."""
    m = load_preset("meta-llama/Llama-3.1-8B")
    est = estimate(m, Setup(inference=True, max_model_len=8192, vllm_version="0.6.5"), capacity=int(79.22 * GiB))
    assert est.serve.weights / GiB == pytest.approx(14.96, abs=0.01)
    assert est.serve.kv_cache_bytes / GiB == pytest.approx(53.29, rel=0.05)


@pytest.mark.parametrize(
    "setup",
    [
        Setup(),
        Setup(method="lora", grad_ckpt=True),
        Setup(attn="eager"),
        Setup(method="qlora"),
        Setup(gpus=4, sharding="zero3"),
        Setup(gpus=4, sharding="fsdp"),
        Setup(precision="fp32", optimizer="sgd"),
        Setup(method="dpo", tuning="lora"),
        Setup(stack="torchtune", method="lora"),
    ],
)
def test_monotonic_in_batch_and_sequence_length(setup):
    m = load_preset("Qwen/Qwen2.5-7B")
    by_batch = [estimate(m, setup.with_changes(batch=b)).device_peak_bytes for b in (1, 2, 3, 4, 8, 32)]
    by_seq = [estimate(m, setup.with_changes(seq_len=n)).device_peak_bytes for n in (128, 512, 2048, 8192, 32768)]
    assert by_batch == sorted(by_batch) and by_batch[-1] > by_batch[0]
    assert by_seq == sorted(by_seq) and by_seq[-1] > by_seq[0]


def test_presets_load_and_match_published_sizes():
    names = preset_names()
    assert len(names) >= 20
    for name in names:
        assert load_preset(name).total_params > 1e8, name


@pytest.mark.parametrize("length", [8192, 131072, 400000, 600000])
def test_serving_fits_exactly_when_one_full_sequence_fits_in_the_kv_cache(length):
    m = load_preset("meta-llama/Llama-3.1-8B")
    cap = int(79.22 * GiB)
    est = estimate(m, Setup(inference=True, max_model_len=length), cap)
    one_sequence_fits = est.serve.kv_cache_tokens >= length
    assert (est.required_bytes <= cap) == one_sequence_fits


def test_alibi_bias_is_counted_once_whatever_the_kernel():
    from mlops_cli.mem.config import config_from_dict

    base = {
        "model_type": "baichuan",
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 128,
        "vocab_size": 1000,
    }
    alibi = config_from_dict(base, "b13")
    rope = config_from_dict({**base, "max_position_embeddings": 4096}, "b7")
    assert alibi.alibi_mask and not rope.alibi_mask
    s = Setup(batch=2, seq_len=8, attn="flash")
    diff = phases(estimate(alibi, s))["forward"]["activations"] - phases(estimate(rope, s))["forward"]["activations"]
    assert diff == 2 * 4 * 8 * 8 * 2  # batch · heads · seq² · 2 bytes (bf16)
