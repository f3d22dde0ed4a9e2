"""The three classes the oom3 held-out set (tests/fixtures/mem/oom-cases-heldout2.json) exposed, each
pinned to its source, and the held-out threads that show them (replayed through the real CLI).

- vLLM V1 engine defaults by release: 1024 sequences on every GPU in 0.8.0-0.8.3 (arg_utils.py);
- in-trainer generation under ZeRO-3 gathers the whole model (TRL unwrap_model_for_generation);
- unsloth runs Gemma-3 with eager attention (DISABLE_SDPA_MODEL_NAMES).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path

import pytest

from mlops_cli.mem import rl
from mlops_cli.mem.config import config_from_dict
from mlops_cli.mem.estimate import estimate
from mlops_cli.mem.presets import load_preset
from mlops_cli.mem.remedies import advise
from mlops_cli.mem.serving import engine_defaults, parse_version
from mlops_cli.mem.spec import GiB, Setup
from mlops_cli.mem.stacks import resolve

REPO = Path(__file__).resolve().parents[2]
FIX = REPO / "tests" / "fixtures" / "mem"
HELDOUT2 = FIX / "oom-cases-heldout2.json"
_spec = importlib.util.spec_from_file_location("oom_cases_bench", REPO / "benchmarks" / "oom_cases.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)
CASES = {c["id"]: c for c in bench.load_cases(HELDOUT2)}


def check(mlops, case, args=None):
    r = mlops(*bench.command(case, args)[3:])
    assert r.returncode in (0, 1), r.stderr
    return r.json()


def _model(name: str):
    return config_from_dict(json.loads((FIX / "configs" / name).read_text(encoding="utf-8")), name)


# ------------------------------------------------------------------ the case file
def test_the_heldout2_file_has_the_oom_cases_format_and_no_thread_of_the_first_set():
    first = {c["source"] for c in bench.load_cases()}
    assert len(CASES) >= 20
    outcomes = [c["outcome"] for c in CASES.values()]
    assert outcomes.count("oom") >= 10 and outcomes.count("fits") >= 5
    for c in CASES.values():
        assert c["source"].startswith("https://") and c["source"] not in first, c["id"]
        assert c["kind"] in ("training", "serving") and c["filled_in"], c["id"]
        assert c.get("error") or c.get("quote"), c["id"]
        assert not c["model"].startswith("configs/") or (FIX / c["model"]).is_file(), c["id"]
        assert bool(c.get("gpu")) != bool(c.get("gpu_mem")), c["id"]


def test_benchmark_takes_a_case_file_and_checks_a_flag_it_can_turn_off():
    assert bench.with_change(["--no-grad-ckpt"], {"grad_ckpt": True}) == ["--grad-ckpt"]
    assert bench.with_change([], {"ds3_gather_for_generation": False}) == ["--no-ds3-gather-for-generation"]
    # an engine default is the base of a --max-seqs fix (vLLM's 1024 -> the thread's 8 is "lower")
    doc = {"setup": {"max_seqs": None}, "serving": {"max_num_seqs": 1024}}
    assert bench.matches({"max_seqs": 256}, {"max_seqs": 8}, ["max_seqs"], doc)


# ------------------------------------------------------------------ vLLM 0.8.x engine defaults
@pytest.mark.parametrize(
    "version,gpu,total_gib,expected",
    [
        ("0.8.0", "RTX3090", 23.58, (1024, 2048)),  # 0.8.0-0.8.3: default_max_num_seqs = 1024 everywhere
        ("0.8.1", "RTX4090", 23.65, (1024, 2048)),
        ("0.8.3", "H100", 79.22, (1024, 8192)),  # tokens 8192 only for "h100"/"h200" in the device name
        ("0.8.3", "A100-80GB", 79.15, (1024, 2048)),
        ("0.8.4", "RTX4090", 23.65, (256, 2048)),  # 0.8.4: both by device name
        ("0.8.4", "A100-80GB", 79.15, (256, 2048)),
        ("0.8.4", "H100", 79.22, (1024, 8192)),
        ("0.8.5", "A100-80GB", 79.15, (1024, 8192)),  # 0.8.5: device memory >= 70 GiB
        ("0.8.5", "RTX4090", 23.65, (256, 2048)),
        ("0.7.3", "RTX4090", 23.65, (256, 32768)),  # V0: max(max_model_len, 2048) up to 32K
    ],
)
def test_vllm_v1_engine_defaults_follow_each_release(version, gpu, total_gib, expected):
    s = Setup(inference=True, max_model_len=32768, vllm_version=version)
    assert engine_defaults(s, parse_version(version), gpu, total_gib * GiB) == expected


def test_vllm_081_sampler_warm_up_of_1024_sequences_does_not_fit_two_3090s(mlops):
    # vLLM #17238: Qwen2.5-32B W8A16 at TP2 on 3090s, 0.8.1: "No available memory for the cache blocks";
    # --max-num-seqs 8 started it (42 GB in all)
    case = CASES["vllm17238-qwen25-32b-w8a16-tp2-3090-v081"]
    doc = check(mlops, case)
    assert doc["verdict"] == "does not fit" and doc["serving"]["max_num_seqs"] == 1024
    first = doc["remedies"][0]
    assert first["name"] == "fewer-max-seqs" and first["fits"]
    assert check(mlops, CASES["vllm17238-qwen25-32b-w8a16-tp2-3090-v081-seqs8"])["verdict"] == "fits"


def test_vllm_080_qwen25_32b_on_four_4090s_ran_on_073_not_on_080(mlops):
    assert check(mlops, CASES["vllm15092-qwen25-32b-tp4-4090-v080"])["verdict"] == "does not fit"
    assert check(mlops, CASES["vllm15092-qwen25-32b-tp4-4090-v073"])["verdict"] != "does not fit"


def test_remedies_are_re_estimated_on_the_gpu_the_estimate_used():
    # 0.8.3 on an H100 profiles 8192 tokens (by device name); a remedy computed without the name would
    # compare a 2048-token estimate with an 8192-token one
    m = load_preset("meta-llama/Llama-3.1-70B")
    s = Setup(inference=True, gpus=2, max_model_len=131072, vllm_version="0.8.3")
    cap = int(79.22 * GiB)
    current = estimate(m, s, cap, "H100").required_bytes
    for r in advise(m, s, cap, 2, None, "H100").remedies:
        assert r.new_bytes < current
    named = advise(m, s, cap, 2, None, "H100").remedies
    unnamed = advise(m, s, cap, 2, None, "").remedies
    assert [r.new_bytes for r in named] != [r.new_bytes for r in unnamed]


# ------------------------------------------------------------------ ZeRO-3 generation gather
def _gen(est):
    return next(p.parts for p in est.train.phases if p.name == "generation")


def test_zero3_generation_holds_the_whole_model_unless_ds3_gather_is_off():
    m = load_preset("Qwen/Qwen2.5-7B")
    s = Setup(method="grpo", sharding="zero3", gpus=8, batch=8, seq_len=256, max_completion_len=256)
    parts = _gen(estimate(m, s, int(79.22 * GiB)))
    assert parts["generation_gather"] == pytest.approx(2 * m.total_params)  # a 16-bit replica on every GPU
    off = _gen(estimate(m, s.with_changes(ds3_gather_for_generation=False), int(79.22 * GiB)))
    assert "generation_gather" not in off and off["gathered"] < 0.2 * parts["generation_gather"]
    # not for FSDP, not for a vLLM engine, not for offline objectives
    assert rl.ds3_generation_gather_bytes(m, s.with_changes(sharding="fsdp")) == 0
    assert rl.ds3_generation_gather_bytes(m, s.with_changes(gen_engine="vllm-server")) == 0
    assert rl.ds3_generation_gather_bytes(m, Setup(method="dpo", sharding="zero3", gpus=8)) == 0
    # PPO: TRL gathers PolicyAndValueWrapper(policy, value_model)
    ppo = Setup(method="ppo", sharding="zero3", gpus=8)
    assert rl.ds3_generation_gather_bytes(m, resolve(ppo)[0]) == pytest.approx(4 * m.total_params)


def test_ms_swift_ppo_full_zero3_is_its_published_65_gib():
    # rl-points.csv, collected before this change and 29 % low until then: ms-swift's PPO subclasses
    # TRL's PPOTrainer, which generates inside unwrap_model_for_generation(policy + value model)
    sys.path.insert(0, str(REPO / "benchmarks"))
    import mem_rl_points

    row = next(r for r in mem_rl_points.load() if r["id"] == "swift-ppo-full-llama3.1-8b-zero3")
    got = mem_rl_points.score_row(row)
    assert abs(got.estimate_gib / float(row["measured_gib"]) - 1) < 0.05


def test_ppo_lora_72b_on_eight_a800s_runs_out_in_the_sampling_stage(mlops):
    # LLaMA-Factory #5273: "OOM，在ppo采样阶段" (in the PPO sampling stage)
    doc = check(mlops, CASES["lf5273-qwen2-72b-ppo-lora-z3-8xa800"])
    assert doc["verdict"] == "does not fit" and doc["peak_phase"] == "generation"
    assert "no-ds3-gather" in [r["name"] for r in doc["remedies"]]


def test_rloo_70b_lists_turning_the_gather_off(mlops):
    # TRL #2250 -> PR #2557 made the gather optional: ds3_gather_for_generation=False
    case = CASES["trl2250-llama31-70b-lora-z3-8xh100-rloo"]
    doc = check(mlops, case)
    assert any(bench.matches(r["change"], case["fix"]["change"], case["fix"]["match"], doc) for r in doc["remedies"])


# ------------------------------------------------------------------ unsloth + Gemma-3: eager attention
def test_unsloth_runs_gemma3_with_eager_attention_unless_told_otherwise():
    gemma3 = _model("google--gemma-3-12b-it.json")
    assert gemma3.model_type == "gemma3_text"
    s, origin = resolve(Setup(method="qlora", stack="unsloth"), gemma3.model_type)
    assert s.attn == "eager" and origin["attn"] == "stack:unsloth"
    s, origin = resolve(Setup(method="qlora", stack="unsloth", attn="sdpa"), gemma3.model_type)
    assert s.attn == "sdpa" and origin["attn"] == "flag"
    llama = load_preset("meta-llama/Llama-3.1-8B")
    assert resolve(Setup(method="qlora", stack="unsloth"), llama.model_type)[0].attn == "sdpa"
    assert resolve(Setup(method="qlora", stack="trl"), gemma3.model_type)[0].attn == "sdpa"


def test_gemma3_12b_8bit_lora_at_15k_tokens_does_not_fit_an_h100(mlops):
    # unsloth #2366: "Setting it to 15,000 or more consistently crashes due to memory exhaustion"
    case = CASES["unsloth2366-gemma3-12b-lora8bit-h100-15k"]
    doc = check(mlops, case)
    assert doc["verdict"] == "does not fit" and doc["setup"]["attn"] == "eager"
    names = [r["name"] for r in doc["remedies"]]
    assert "fused-attention" not in names  # unsloth forces eager for Gemma-3: no SDPA to switch to
    assert any(bench.matches(r["change"], case["fix"]["change"], case["fix"]["match"], doc) for r in doc["remedies"])


def test_every_csv_point_is_unchanged_by_the_unsloth_gemma3_rule():
    # no collected point is an unsloth Gemma-3 run: the rule moves none of them
    for name in ("training-points.csv", "oos-training-points.csv", "rl-points.csv"):
        for r in csv.DictReader((FIX / name).open(encoding="utf-8")):
            assert not (r.get("stack") == "unsloth" and "gemma-3" in r.get("model", "").lower()), r["id"]
