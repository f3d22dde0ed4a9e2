"""Remedies: each lowers the estimate it claims, cheapest first; largest batch/seq fit exactly."""

from __future__ import annotations

import pytest

from mlops_cli.mem.estimate import estimate
from mlops_cli.mem.presets import load_preset
from mlops_cli.mem.remedies import advise
from mlops_cli.mem.setup import GiB, Setup

COST_ORDER = [
    "smaller-micro-batch",
    "lora-reference",
    "ref-offload",
    "smaller-generation-share",
    "vllm-sleep-or-server",
    "fused-attention",
    "fused-cross-entropy",
    "gradient-checkpointing",
    "bf16",
    "8bit-optimizer",
    "cpu-offload",
    "lora",
    "qlora",
    "zero3",
    "more-gpus",
    "shorter-sequences",
]


@pytest.mark.parametrize(
    "setup,capacity,gpus",
    [
        (Setup(batch=4, seq_len=4096, attn="eager", precision="amp-bf16"), 80 * GiB, 8),
        (Setup(method="lora", seq_len=8192), 24 * GiB, 1),
        (Setup(batch=2, seq_len=2048), 40 * GiB, 2),
        (Setup(method="dpo", seq_len=2048, grad_ckpt=True), 80 * GiB, 1),
        (
            Setup(
                method="grpo",
                tuning="lora",
                stack="trl",
                batch=16,
                seq_len=1024,
                max_completion_len=2048,
                gen_engine="vllm-colocate",
                gen_memory_utilization=0.6,
            ),
            80 * GiB,
            1,
        ),
    ],
)
def test_each_remedy_lowers_the_estimate_it_claims(setup, capacity, gpus):
    m = load_preset("Qwen/Qwen2.5-7B")
    current = estimate(m, setup, capacity).required_bytes
    assert current > capacity
    advice = advise(m, setup, capacity, gpus)
    assert advice.remedies
    names = [r.name for r in advice.remedies]
    fitting = [r.name for r in advice.remedies if r.fits]
    helping = [r.name for r in advice.remedies if not r.fits]
    assert names == fitting + helping  # what fits on its own first
    for group in (fitting, helping):
        assert group == [n for n in COST_ORDER if n in group]  # cheapest first within each
    for r in advice.remedies:
        recomputed = estimate(m, setup.with_changes(**r.change), capacity).required_bytes
        assert r.new_bytes == recomputed < current, r.name
        assert r.saves_bytes == current - r.new_bytes
        assert r.fits == (r.new_bytes <= capacity)
    # the plan is cumulative and ends where its last step says
    if advice.plan:
        changes = {}
        for step in advice.plan:
            changes.update(step.change)
        assert estimate(m, setup.with_changes(**changes), capacity).required_bytes == advice.plan[-1].new_bytes
        assert advice.plan_fits == (advice.plan[-1].new_bytes <= capacity)


def test_largest_batch_and_sequence_length_fit_exactly():
    m = load_preset("meta-llama/Llama-3.1-8B")
    s = Setup(method="lora", grad_ckpt=True, seq_len=4096, batch=16)
    cap = 40 * GiB
    advice = advise(m, s, cap)
    b = advice.largest_batch
    assert (
        b
        and estimate(m, s.with_changes(batch=b)).peak_bytes <= cap < estimate(m, s.with_changes(batch=b + 1)).peak_bytes
    )
    n = advice.largest_seq_len
    assert n and n % 64 == 0
    assert (
        estimate(m, s.with_changes(seq_len=n)).peak_bytes
        <= cap
        < estimate(m, s.with_changes(seq_len=n + 64)).peak_bytes
    )


def test_serving_remedies_and_max_model_len():
    m = load_preset("meta-llama/Llama-3.1-70B")
    s = Setup(inference=True, max_model_len=131072)
    cap = 80 * GiB
    advice = advise(m, s, cap, gpus_available=4)
    names = [r.name for r in advice.remedies]
    assert "tensor-parallel" in names and "int4-weights" in names
    tp = next(r for r in advice.remedies if r.name == "tensor-parallel")
    assert tp.fits and estimate(m, s.with_changes(gpus=4), cap).serve.max_concurrency >= 1


def test_tensor_parallel_remedy_divides_the_heads(mlops):
    # 3 GPUs free, 64 heads: vLLM refuses --tensor-parallel-size 3; 2 is what can be offered
    m = load_preset("meta-llama/Llama-3.1-70B")
    s = Setup(inference=True, max_model_len=131072)
    advice = advise(m, s, 80 * GiB, gpus_available=3)
    tp = next(r for r in advice.remedies if r.name == "tensor-parallel")
    assert tp.change == {"gpus": 2} and m.heads % 2 == 0
    r = mlops("mem", "estimate", "meta-llama/Llama-3.1-8B", "--inference", "--gpus", "3")
    assert (
        r.returncode == 2 and "divide the 32 attention heads" in r.stderr and "hint: --gpus 1 | 2 | 4 | 8" in r.stderr
    ), r


def test_capacity_for_a_gpu_set_is_its_least_free_gpu():
    from mlops_cli.mem.remedies import capacity_for

    free = [10 * GiB, 80 * GiB, 70 * GiB, 75 * GiB]
    assert capacity_for(1, 5 * GiB, free) == 80 * GiB
    assert capacity_for(3, 5 * GiB, free) == 70 * GiB
    assert capacity_for(4, 5 * GiB, free) == 10 * GiB
    assert capacity_for(4, 5 * GiB, None) == 5 * GiB  # --gpu-mem: every GPU alike


def test_zero3_remedy_is_judged_on_the_least_free_gpu_of_the_larger_set():
    m = load_preset("Qwen/Qwen2.5-7B")
    s = Setup(precision="amp-bf16", seq_len=2048, grad_ckpt=True)  # 18 B/param: no fit on one 80 GiB GPU
    uniform = advise(m, s, 80 * GiB, gpus_available=4)
    z3 = next(r for r in uniform.remedies if r.name == "zero3")
    assert z3.fits and z3.capacity_bytes == 80 * GiB
    # Same run chosen on GPU 0 (80 GiB free), but two of the four GPUs are nearly full.
    mixed = advise(m, s, 80 * GiB, gpus_available=4, free_by_gpu=[80 * GiB, 80 * GiB, 6 * GiB, 6 * GiB])
    z3 = next(r for r in mixed.remedies if r.name == "zero3")
    assert z3.capacity_bytes == 6 * GiB and not z3.fits
    assert z3.new_bytes == uniform.remedies[[r.name for r in uniform.remedies].index("zero3")].new_bytes


def test_serving_largest_max_model_len_stops_at_the_models_context():
    # Qwen2.5-0.5B (32768 positions) on 80 GiB fits far longer contexts than it has; vLLM refuses
    # a --max-model-len beyond max_position_embeddings, so that limit is the answer.
    m = load_preset("Qwen/Qwen2.5-0.5B")
    assert m.max_positions == 32768
    advice = advise(m, Setup(inference=True, max_model_len=4096, max_seqs=1), 80 * GiB)
    assert advice.largest_seq_len == 32768


def test_rl_remedies_name_the_rl_levers():
    m = load_preset("Qwen/Qwen2.5-7B")
    dpo = advise(m, Setup(method="dpo", seq_len=2048, grad_ckpt=True), 80 * GiB)
    names = [r.name for r in dpo.remedies]
    assert "lora-reference" in names and "ref-offload" in names
    ref = next(r for r in dpo.remedies if r.name == "ref-offload")
    assert ref.saves_bytes == pytest.approx(2 * m.total_params, rel=0.05)  # the frozen bf16 copy
    grpo = advise(
        m,
        Setup(
            method="grpo",
            tuning="lora",
            stack="trl",
            batch=16,
            seq_len=1024,
            max_completion_len=2048,
            gen_engine="vllm-colocate",
            gen_memory_utilization=0.6,
        ),
        80 * GiB,
    )
    share = next(r for r in grpo.remedies if r.name == "smaller-generation-share")
    assert share.change["gen_memory_utilization"] < 0.6 and share.fits
    assert any(r.name == "smaller-micro-batch" and "completions" in r.what for r in grpo.remedies)
