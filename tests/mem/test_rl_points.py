"""The preference/RL model against published points (tests/fixtures/mem/rl-points.csv) and its
mechanisms one by one, so a change that breaks one of them fails here."""

from __future__ import annotations

import csv
import importlib
import sys
from pathlib import Path

import pytest

from mlops_cli.errors import UsageError
from mlops_cli.mem import terms
from mlops_cli.mem.estimate import estimate
from mlops_cli.mem.presets import load_preset
from mlops_cli.mem.spec import GiB, Setup
from mlops_cli.mem.stacks import resolve

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
mem_rl_points = importlib.import_module("mem_rl_points")  # benchmarks/mem_rl_points.py


@pytest.fixture(scope="module")
def qwen7b():
    return load_preset("Qwen/Qwen2.5-7B")


def _parts(est, phase):
    return next(p.parts for p in est.train.phases if p.name == phase)


def test_every_rl_point_names_its_source_and_what_was_filled_in():
    rows = list(csv.DictReader((REPO / "tests" / "fixtures" / "mem" / "rl-points.csv").open(encoding="utf-8")))
    assert len(rows) >= 20
    assert len({r["id"] for r in rows}) == len(rows)
    for r in rows:
        assert r["source"].startswith("https://"), r["id"]
        assert r["quote"] and r["notes"], r["id"]
        assert r["method"] in ("dpo", "kto", "orpo", "ppo", "grpo"), r["id"]
        assert r["metric"] in ("torch_reserved", "device", "fit", "oom"), r["id"]
        if r["metric"] in ("fit", "oom"):
            assert float(r["gpu_total_gib"]) > 0, r["id"]
        else:
            assert float(r["measured_gib"]) > 0, r["id"]


def test_rl_points_meet_the_bar():
    """After the class fixes: numeric rows median |error| <= 15 % and >= 80 % within ±25 %, and the
    fit/OOM verdicts right on at least 9 of the 12 (the blind score was 21 %, 67 %, 8 of 12)."""
    s = mem_rl_points.summary(mem_rl_points.score())
    assert s["numeric"] >= 15 and s["refused"] == 0
    assert s["median_abs"] <= 15 and s["within25"] >= 80, s
    assert s["fit_agree"] >= 9, s


def test_grpo_fused_loss_keeps_one_chunk_not_the_completion_logits(qwen7b):
    base = Setup(method="grpo", tuning="lora", batch=8, seq_len=256, max_completion_len=512, grad_ckpt=True)
    full = estimate(qwen7b, base)
    fused = estimate(qwen7b, base.with_changes(loss="fused"))
    completion = 8 * 512
    assert _parts(full, "backward_start")["logits"] == completion * qwen7b.vocab * 2 * 2
    assert _parts(fused, "backward_start")["logits"] == terms.logits_bytes(qwen7b, completion, "bf16", "fused")
    assert fused.allocated_peak_bytes < full.allocated_peak_bytes


@pytest.mark.parametrize(
    ("method", "version", "upcast"),
    [
        ("grpo", None, False),
        ("grpo", "0.15.0", False),  # GRPOTrainer never calls prepare_model_for_kbit_training
        ("dpo", "0.26.0", True),
        ("dpo", "1.0.0", False),  # DPOTrainer did until v0.26.0
    ],
)
def test_trl_fp32_upcast_follows_the_trainer_and_release(method, version, upcast):
    s, origin = resolve(Setup(method=method, tuning="qlora", stack="trl", stack_version=version))
    assert s.keep_fp32_non_quantized is upcast
    assert origin["keep_fp32_non_quantized"] == "stack:trl"


def test_trl_grpo_qlora_weights_stay_16_bit(qwen7b):
    s = Setup(method="grpo", tuning="qlora", stack="trl", batch=8, seq_len=256, max_completion_len=256)
    trl = estimate(qwen7b, s)
    upcast = estimate(qwen7b, s.with_changes(stack="hf"))  # the hf stack keeps PEFT's fp32 upcast
    emb = 2 * qwen7b.vocab * qwen7b.hidden  # untied embedding + LM head, 16-bit instead of fp32
    assert _parts(upcast, "forward")["weights"] - _parts(trl, "forward")["weights"] == pytest.approx(2 * emb, rel=0.05)


def test_ppo_takes_a_generation_engine_and_counts_its_share(qwen7b):
    s = Setup(
        method="ppo",
        batch=2,
        seq_len=256,
        max_completion_len=256,
        gen_engine="vllm-colocate",
        gen_memory_utilization=0.4,
    )
    est = estimate(qwen7b, s, capacity=80 * GiB)
    assert _parts(est, "forward")["generation_engine"] == pytest.approx(0.4 * 80 * GiB)
    assert "generation_engine" not in _parts(
        estimate(qwen7b, s.with_changes(gen_engine="vllm-server"), capacity=80 * GiB), "forward"
    )
    with pytest.raises(UsageError, match="grpo|ppo"):
        estimate(qwen7b, Setup(method="dpo", gen_engine="vllm-colocate"), capacity=80 * GiB)


def test_ppo_trains_on_prompt_plus_response_and_generates_in_the_trainer(qwen7b):
    s = Setup(method="ppo", batch=4, seq_len=256, max_completion_len=128)
    short, long = estimate(qwen7b, s), estimate(qwen7b, s.with_changes(max_completion_len=1024))
    assert _parts(long, "forward")["activations"] > _parts(short, "forward")["activations"]
    assert "generation" in {p.name for p in short.train.phases}
    assert _parts(short, "generation")["kv_cache"] > 0


def test_unset_completion_length_counts_the_default_256(qwen7b):
    s = Setup(method="grpo", batch=8, seq_len=256)
    assert (
        estimate(qwen7b, s).allocated_peak_bytes
        == estimate(qwen7b, s.with_changes(max_completion_len=256)).allocated_peak_bytes
    )


def test_paged_optimizer_states_are_not_part_of_what_must_fit(qwen7b):
    paged = estimate(qwen7b, Setup(method="full", optimizer="paged-adamw", batch=1, seq_len=512))
    assert paged.train.states.paged > 0
    assert paged.required_bytes == int(paged.device_peak_bytes - paged.train.states.paged)
    plain = estimate(qwen7b, Setup(method="full", optimizer="adamw", batch=1, seq_len=512))
    assert plain.required_bytes == plain.device_peak_bytes


def test_ppo_with_function_rewards_holds_no_reward_model_copy(qwen7b):
    """verl's reward_model.enable defaults to False (rule/function rewards): no frozen reward model."""
    s = Setup(method="ppo", batch=2, seq_len=256, max_completion_len=256)
    with_rm = _parts(estimate(qwen7b, s), "forward")
    without = _parts(estimate(qwen7b, s.with_changes(reward_model="function")), "forward")
    assert with_rm["reward_model"] == pytest.approx(with_rm["reference_model"])  # a 16-bit copy of the policy
    assert "reward_model" not in without
    assert sum(with_rm.values()) - sum(without.values()) == pytest.approx(with_rm["reward_model"])
    with pytest.raises(UsageError, match="--reward-model"):
        estimate(qwen7b, Setup(method="grpo", reward_model="function"))


def test_verl_hybrid_engine_is_held_during_generation_only(qwen7b):
    """verl free_cache_engine (default True): the engine's share is released after generation, so it
    is part of a generation phase and of no training phase; vllm-colocate keeps it in every phase."""
    s = Setup(
        method="grpo",
        tuning="lora",
        batch=8,
        seq_len=256,
        max_completion_len=256,
        gen_engine="vllm-hybrid",
        gen_memory_utilization=0.4,
    )
    est = estimate(qwen7b, s, capacity=80 * GiB)
    assert _parts(est, "generation")["generation_engine"] == pytest.approx(0.4 * 80 * GiB)
    for phase in est.train.phases:
        if phase.name != "generation":
            assert "generation_engine" not in phase.parts, phase.name
    colocated = estimate(qwen7b, s.with_changes(gen_engine="vllm-colocate"), capacity=80 * GiB)
    assert colocated.required_bytes > est.required_bytes
    assert "generation_engine" in _parts(colocated, "backward_start")
