"""oom-check replayed on the public OOM threads (tests/fixtures/mem/oom-cases.json) through the real CLI.

What each thread shows is the test: a remedy the thread says did not help must not be among the
first three; a first remedy must fit on its own whenever any does; the serving fixes people used
(a shorter --max-model-len, quantized weights, a higher --gpu-memory-utilization) must be the first
remedy where the estimate says they fit; a near-capacity estimate must say "tight", not "fits".
The matching rules are benchmarks/oom_cases.py's (the score in docs/benchmarks.md).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from mlops_cli.mem.presets import load_preset
from mlops_cli.mem.remedies import advise
from mlops_cli.mem.spec import GiB, Setup

REPO = Path(__file__).resolve().parents[2]
FIX = REPO / "tests" / "fixtures" / "mem"
_spec = importlib.util.spec_from_file_location("oom_cases_bench", REPO / "benchmarks" / "oom_cases.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)
CASES = bench.load_cases()


def check(mlops, case, args=None):
    cmd = bench.command(case, args)[3:]  # drop "python -m mlops_cli"
    r = mlops(*cmd)
    assert r.returncode in (0, 1), r.stderr
    doc = r.json()
    assert doc["fits"] == (r.returncode == 0)
    assert doc["verdict"] in ("fits", "tight", "does not fit")
    assert (doc["verdict"] == "does not fit") == (r.returncode == 1)
    return doc


def test_the_case_file_is_what_the_brief_asks_for():
    oom = [c for c in CASES if c["outcome"] == "oom"]
    assert len(oom) >= 25 and len(CASES) - len(oom) >= 5
    for c in CASES:
        assert c["source"].startswith("https://"), c["id"]
        assert c.get("filled_in"), c["id"]
        assert c.get("error") or c.get("quote"), c["id"]
        model = c["model"]
        assert not model.startswith("configs/") or (FIX / model).is_file(), c["id"]
    assert len({c["id"] for c in CASES}) == len(CASES)


@pytest.mark.parametrize(
    "case", [c for c in CASES if c["outcome"] == "oom" and c.get("not_helped")], ids=lambda c: c["id"]
)
def test_no_first_three_remedy_is_one_the_thread_shows_did_not_help(mlops, case):
    doc = check(mlops, case)
    for r in doc["remedies"][:3]:
        for nh in case["not_helped"]:
            assert not bench.matches(r["change"], nh["change"], list(nh["change"]), doc), (r["name"], nh)


@pytest.mark.parametrize("case", [c for c in CASES if c["outcome"] == "oom"], ids=lambda c: c["id"])
def test_remedies_that_fit_alone_come_first_and_each_claim_is_recomputed(mlops, case):
    doc = check(mlops, case)
    fits = [r["fits"] for r in doc["remedies"]]
    assert fits == sorted(fits, reverse=True)
    for r in doc["remedies"]:
        assert r["fits"] == (r["new_required_bytes"] <= r["capacity_bytes"])
        assert r["new_required_bytes"] < doc["required_bytes"]


SERVING_FIXES = [
    c
    for c in CASES
    if c["kind"] == "serving"
    and c["outcome"] == "oom"
    and c.get("fix")
    and set(c["fix"]["match"]) & {"max_model_len", "quant", "gpu_memory_utilization"}
]


@pytest.mark.parametrize("case", SERVING_FIXES, ids=lambda c: c["id"])
def test_serving_fix_people_used_is_the_first_remedy_when_it_fits(mlops, case):
    doc = check(mlops, case)
    if doc["verdict"] != "does not fit":
        pytest.skip("the estimate says it fits: a verdict miss (docs/benchmarks.md), no remedies to rank")
    fixing = [
        r for r in doc["remedies"] if bench.matches(r["change"], case["fix"]["change"], case["fix"]["match"], doc)
    ]
    assert fixing, "the thread's fix is not among the remedies"
    if fixing[0]["fits"]:
        assert doc["remedies"][0]["name"] == fixing[0]["name"] or doc["remedies"][0]["fits"]
        assert doc["remedies"].index(fixing[0]) < 3


def test_kv_side_remedies_are_not_offered_when_the_weights_alone_do_not_fit(mlops):
    # vLLM #188: Mistral-7B in fp16 on an 11 GB card; raising --gpu-memory-utilization "doesn't seem to make a difference"
    case = next(c for c in CASES if c["id"] == "vllm188-mistral7b-fp16-2080ti")
    names = [r["name"] for r in check(mlops, case)["remedies"]]
    assert names[0] == "int4-weights"
    assert "gpu-memory-utilization" not in names and "fp8-kv-cache" not in names


def test_fp32_serving_gets_16_bit_weights_first(mlops):
    case = next(c for c in CASES if c["id"] == "vllm2140-qwen2-7b-fp32-2080ti22g")
    doc = check(mlops, case)
    assert doc["remedies"][0]["name"] == "16-bit-weights" and doc["remedies"][0]["change"] == {"precision": "bf16"}
    fixed = check(mlops, case, bench.with_change(case["args"], {}) + ["--precision", "bf16"])
    assert fixed["required_bytes"] < doc["required_bytes"]


def test_a_near_capacity_estimate_says_tight(mlops):
    # LLaMA-Factory #1221: full fine-tuning under ZeRO-2 on 8x V100-32GB; estimated at 99 % of the GPU, it OOMed.
    # Without its transformers release (SDPA attention) the estimate is that near-capacity one.
    case = dict(next(c for c in CASES if c["id"] == "lf1221-llama7b-full-zero2-8xv100"))
    i = case["args"].index("--transformers-version")
    case["args"] = case["args"][:i] + case["args"][i + 2 :]
    doc = check(mlops, case)
    assert doc["verdict"] == "tight" and doc["headroom_bytes"] < 0.1 * doc["capacity_bytes"]
    # what to do if it does run out: the remedies that add headroom, the thread's ZeRO-3 among them
    assert doc["remedies"] and all(r["new_required_bytes"] < doc["required_bytes"] for r in doc["remedies"])
    assert any(bench.matches(r["change"], case["fix"]["change"], case["fix"]["match"], doc) for r in doc["remedies"])
    roomy = check(mlops, case, bench.with_change(case["args"], {"sharding": "zero3"}))
    assert roomy["verdict"] == "fits"
    r = mlops(*bench.command(case)[3:-1])
    assert r.returncode == 0 and "FITS, BUT TIGHT" in r.stdout and "max_memory_reserved" in r.stdout
    assert "For more headroom" in r.stdout


def test_offload_ranks_before_changing_the_method():
    m = load_preset("meta-llama/Llama-3.1-8B")
    s = Setup(method="full", precision="bf16", sharding="zero3", gpus=8, seq_len=1024, grad_ckpt=True)
    names = [r.name for r in advise(m, s, int(23.58 * GiB), 8).remedies]
    assert names.index("cpu-offload") < names.index("lora") < names.index("qlora")


def test_more_gpus_for_a_run_already_sharded():
    from mlops_cli.mem.remedies import required

    m, cap = load_preset("Qwen/Qwen2.5-32B"), int(79.22 * GiB)
    s = Setup(method="full", precision="bf16", fsdp_version=2, sharding="fsdp", gpus=4, seq_len=2048, grad_ckpt=True)
    assert required(m, s, cap) > cap
    more = [r for r in advise(m, s, cap, 4).remedies if r.name == "more-gpus"]
    assert more and more[0].fits
    n = more[0].change["gpus"]
    assert n in (8, 16, 32)
    assert required(m, s.with_changes(gpus=n // 2), cap) > cap  # the fewest GPUs that fit is what is named


def test_fewer_max_seqs_and_enforce_eager_are_serving_remedies():
    m = load_preset("meta-llama/Llama-3.1-70B")
    s = Setup(method="full", inference=True, gpus=2, max_model_len=32768, vllm_version="0.20.0")
    names = {r.name: r for r in advise(m, s, int(79.22 * GiB), 2).remedies}
    assert "enforce-eager" in names and names["enforce-eager"].change == {"enforce_eager": True}
    assert "fewer-max-seqs" in names and names["fewer-max-seqs"].change["max_seqs"] < 1024


def test_the_case_file_parses_as_strict_json():
    json.loads((FIX / "oom-cases.json").read_text(encoding="utf-8"))


def test_a_release_before_sdpa_turns_the_tight_zero2_case_into_an_oom(mlops):
    """lf1221 ran transformers of October 2023 (no SDPA for Llama before 4.36): with the release given,
    the eager score matrices push it over the card, as it happened; the thread's ZeRO-3 still fits."""
    case = next(c for c in CASES if c["id"] == "lf1221-llama7b-full-zero2-8xv100")
    assert "--transformers-version" in case["args"]
    doc = check(mlops, case)
    assert doc["verdict"] == "does not fit" and doc["setup"]["attn"] == "eager"
    assert check(mlops, case, bench.with_change(case["args"], {"sharding": "zero3"}))["verdict"] == "fits"
