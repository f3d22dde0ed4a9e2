"""The training peak is the largest phase, in three metrics; states per GPU by sharding."""

from __future__ import annotations

import pytest

from mlops_cli.mem.phases import training_peak
from mlops_cli.mem.presets import load_preset
from mlops_cli.mem.spec import GiB, Setup
from mlops_cli.mem.stacks import resolve


def peak(model: str, **kw):
    s, _ = resolve(Setup(**kw))
    return training_peak(load_preset(model), s.validated())


def test_full_finetune_peaks_at_the_foreach_adamw_step():
    # pure bf16 AdamW on one GPU: weights 2P + grads 2P + m,v 4P, and foreach AdamW's
    # exp_avg_sq.sqrt() list (2P) at the step: 10 bytes per parameter.
    t = peak("mistralai/Mistral-7B-v0.1", method="full", batch=4, seq_len=4096, grad_ckpt=True, attn="flash")
    P = load_preset("mistralai/Mistral-7B-v0.1").total_params
    step = next(p for p in t.phases if p.name == "optimizer_step")
    assert t.peak_phase == "optimizer_step"
    assert step.total == pytest.approx(10 * P)
    # measured on an A100 (fms-acceleration refs/a100_80gb.csv): peak allocated 67.46 GiB
    assert t.allocated / GiB == pytest.approx(67.46, rel=0.02)


def test_fused_adamw_has_no_step_temporaries():
    foreach = peak("mistralai/Mistral-7B-v0.1", method="full", grad_ckpt=True, optimizer="adamw")
    fused = peak("mistralai/Mistral-7B-v0.1", method="full", grad_ckpt=True, optimizer="adamw-fused")
    step = {
        t: next(p for p in r.phases if p.name == "optimizer_step") for t, r in (("foreach", foreach), ("fused", fused))
    }
    assert step["foreach"].total - step["fused"].total == pytest.approx(
        2 * load_preset("mistralai/Mistral-7B-v0.1").total_params
    )
    assert fused.peak_phase != "optimizer_step"  # without the temporaries the step is no longer the peak


def test_logits_and_recomputed_layer_never_coexist():
    t = peak("meta-llama/Llama-3.1-8B", method="lora", grad_ckpt=True, seq_len=4096)
    by = {p.name: p for p in t.phases}
    assert "logits" in by["backward_start"].parts and "logits" not in by["recompute"].parts
    assert by["recompute"].parts["activations"] > by["backward_start"].parts["activations"]


def test_gradients_only_overlap_forward_when_accumulating():
    one = {p.name: p for p in peak("meta-llama/Llama-3.2-1B", method="full").phases}
    acc = {p.name: p for p in peak("meta-llama/Llama-3.2-1B", method="full", grad_accum=4).phases}
    assert one["forward"].parts["gradients"] == 0  # zero_grad(set_to_none=True) freed them
    assert acc["forward"].parts["gradients"] > 0


def test_optimizer_in_backward_drops_the_step_and_the_gradients():
    t = peak("meta-llama/Llama-3.1-8B", method="full", stack="torchtune", batch=2)
    assert (
        t.states.gradients < 0.1 * 2 * load_preset("meta-llama/Llama-3.1-8B").total_params
    )  # vs 2 B/param for all grads
    assert "optimizer_step" not in {p.name for p in t.phases}


def test_metrics_are_ordered_and_paged_states_only_count_on_the_device():
    t = peak("meta-llama/Llama-3.1-8B", method="full", optimizer="paged-adamw-8bit", grad_ckpt=True)
    assert t.allocated <= t.reserved <= t.device
    assert t.states.optimizer == 0 and t.states.paged == pytest.approx(
        2 * load_preset("meta-llama/Llama-3.1-8B").total_params
    )
    assert t.device - t.reserved == pytest.approx(t.states.paged + t.context)


def test_fsdp1_keeps_the_root_unsharded_fsdp2_does_not():
    kw = dict(method="lora", gpus=8, sharding="fsdp", grad_ckpt=True)
    v1 = peak("meta-llama/Llama-3.1-70B", fsdp_version=1, **kw)
    v2 = peak("meta-llama/Llama-3.1-70B", fsdp_version=2, **kw)
    m = load_preset("meta-llama/Llama-3.1-70B")
    root = (m.embedding_params + m.lm_head_params + m.hidden) * 2 * (1 - 1 / 8)
    assert v1.states.gathered - v2.states.gathered == pytest.approx(root)


def test_fsdp_qlora_gathers_packed_4bit_units_and_zero3_has_its_own_knobs():
    m = load_preset("meta-llama/Llama-3.1-70B")
    q = peak("meta-llama/Llama-3.1-70B", method="qlora", stack="fsdp-qlora", gpus=2, offload="none")
    root = (m.embedding_params + m.lm_head_params + m.hidden) * 2 / 2  # bf16, FSDP1 root, half not local
    assert q.states.gathered == pytest.approx(2 * m.layer_params * (0.5 + 0.127 / 8) + root)
    # stage3_max_live_parameters above the largest layer (the 525M-parameter embedding of 8B)
    small = peak("meta-llama/Llama-3.1-8B", method="full", gpus=8, sharding="zero3", zero3_live_params=6 * 10**8)
    large = peak("meta-llama/Llama-3.1-8B", method="full", gpus=8, sharding="zero3", zero3_live_params=9 * 10**8)
    assert large.states.gathered - small.states.gathered == pytest.approx(2 * 3 * 10**8)
    fsdp = peak("meta-llama/Llama-3.1-8B", method="full", gpus=8, sharding="fsdp", zero3_live_params=6 * 10**8)
    assert (
        fsdp.states.gathered == peak("meta-llama/Llama-3.1-8B", method="full", gpus=8, sharding="fsdp").states.gathered
    )


def test_the_peak_phase_is_named_and_is_the_maximum():
    t = peak("Qwen/Qwen2.5-7B", method="lora", batch=8, seq_len=4096)
    assert t.peak_phase == max(t.phases, key=lambda p: p.total).name
    assert t.allocated == max(p.total for p in t.phases)


def test_fsdp_unit_model_gathers_everything():
    m = load_preset("meta-llama/Llama-3.1-8B")
    layer = peak("meta-llama/Llama-3.1-8B", method="full", gpus=4, sharding="fsdp", fsdp_version=2)
    whole = peak("meta-llama/Llama-3.1-8B", method="full", gpus=4, sharding="fsdp", fsdp_version=2, fsdp_unit="model")
    assert layer.states.gathered == pytest.approx(2 * 2 * m.layer_params)
    assert whole.states.gathered == pytest.approx(2 * m.layers * m.layer_params)
