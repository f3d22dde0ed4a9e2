"""`mlops mem estimate` / `mlops oom-check` end to end: JSON schema, exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

GPU_FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "gpu"


def test_estimate_json_schema(mlops):
    r = mlops(
        "mem",
        "estimate",
        "Qwen/Qwen2.5-7B",
        "--method",
        "lora",
        "--seq-len",
        "4096",
        "--no-grad-ckpt",
        "--attn",
        "eager",
        "--json",
    )
    assert r.returncode == 0, r
    doc = r.json()
    assert doc["allocated_peak_bytes"] <= doc["torch_peak_bytes"] <= doc["device_peak_bytes"] == doc["peak_bytes"]
    assert doc["peak_phase"] in {p["name"] for p in doc["phases"]}
    peak = max(doc["phases"], key=lambda p: p["allocated_bytes"])
    assert peak["name"] == doc["peak_phase"] and peak["allocated_bytes"] == doc["allocated_peak_bytes"]
    sdpa = mlops(
        "mem",
        "estimate",
        "Qwen/Qwen2.5-7B",
        "--method",
        "lora",
        "--seq-len",
        "4096",
        "--no-grad-ckpt",
        "--attn",
        "sdpa",
        "--json",
    ).json()
    assert sdpa["allocated_peak_bytes"] < doc["allocated_peak_bytes"]  # eager keeps the seq² scores
    assert doc["setup"]["method"] == "lora" and doc["setup"]["seq_len"] == 4096 and doc["setup"]["grad_ckpt"] is False
    assert doc["setup"]["origin"]["grad_ckpt"] == "flag" and doc["setup"]["origin"]["loss"] == "default"
    assert doc["mode"] == "training" and doc["model"]["total_params"] == 7615616512
    # the first contract's fields stay beside their successors (deprecated, docs/mem.md)
    assert doc["setup"]["zero"] == 0 and doc["setup"]["fused_ce"] is False and doc["setup"]["offload"] is None
    assert doc["setup"]["sharding"] == "none" and doc["setup"]["loss"] == "full"


def test_deprecated_setup_fields_follow_the_new_ones(mlops):
    fsdp = mlops(
        "mem", "estimate", "Qwen/Qwen2.5-7B", "--gpus", "2", "--fsdp", "--offload", "params", "--fused-ce", "--json"
    ).json()["setup"]
    assert (fsdp["sharding"], fsdp["zero"], fsdp["offload"]) == ("fsdp", 3, "params")  # zero 3 meant FSDP too
    assert fsdp["loss"] == "fused" and fsdp["fused_ce"] is True
    z2 = mlops("mem", "estimate", "Qwen/Qwen2.5-7B", "--gpus", "2", "--zero", "2", "--json").json()["setup"]
    assert (z2["sharding"], z2["zero"], z2["offload"]) == ("zero2", 2, None)


def test_estimate_serving_reports_concurrency(mlops):
    r = mlops(
        "mem",
        "estimate",
        "meta-llama/Llama-3.1-8B",
        "--inference",
        "--max-model-len",
        "8192",
        "--gpu",
        "H100",
        "--json",
    )
    assert r.returncode == 0, r
    sv = r.json()["serving"]
    assert sv["kv_bytes_per_token"] == 131072 and sv["era"] == "v1-cudagraphs-estimated"
    assert sv["max_concurrency"] == pytest.approx(sv["kv_cache_tokens"] / 8192, abs=0.01)
    assert sv["sampler"] == "flashinfer" and sv["kv_layout"] == "uniform"
    native = mlops(
        "mem",
        "estimate",
        "meta-llama/Llama-3.1-8B",
        "--inference",
        "--max-model-len",
        "8192",
        "--gpu",
        "H100",
        "--vllm-version",
        "0.14.0",
        "--json",
    ).json()["serving"]
    assert native["sampler"] == "native" and native["activation_peak"] > 3 * sv["activation_peak"]
    text = mlops(
        "mem", "estimate", "meta-llama/Llama-3.1-8B", "--inference", "--max-model-len", "8192", "--gpu", "H100"
    )
    assert "maximum concurrency for 8192 tokens per request" in text.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["--method", "bogus"],
        ["--zero", "5"],
        ["--batch", "0"],
        ["--gpu-memory-utilization", "1.5"],
        ["--offload", "params"],
        ["--inference", "--method", "lora"],
        ["--fsdp", "--zero", "1"],
        ["--fsdp", "--zero", "3"],
        ["--sharding", "zero2", "--zero", "3"],
        ["--stack", "keras"],
        ["--vllm-version", "banana", "--inference"],
        ["--method", "lora", "--tuning", "full"],
        ["--method", "ppo", "--reward-model", "none"],
        ["--method", "grpo", "--reward-model", "function"],
        ["--transformers-version", "four"],
    ],
)
def test_bad_setup_is_exit_2(mlops, args):
    r = mlops("mem", "estimate", "Qwen/Qwen2.5-7B", *args)
    assert r.returncode == 2, r
    assert r.stderr.startswith("error: ") and "Traceback" not in r.stderr


def test_oom_check_fits_exit_0(mlops):
    r = mlops("oom-check", "Qwen/Qwen2.5-7B", "--method", "lora", "--grad-ckpt", "--gpu-mem", "80GiB", "--json")
    assert r.returncode == 0, r
    doc = r.json()
    assert doc["fits"] is True and doc["capacity_bytes"] == 80 * 1024**3 and doc["remedies"] == []
    assert doc["largest_batch"] >= 1 and doc["largest_seq_len"] >= 2048


def test_oom_check_does_not_fit_exit_1_with_remedies(mlops):
    r = mlops("oom-check", "Qwen/Qwen2.5-7B", "--batch", "4", "--seq-len", "4096", "--gpu", "A100-80GB", "--json")
    assert r.returncode == 1, r
    doc = r.json()
    assert doc["fits"] is False and doc["headroom_bytes"] < 0
    assert doc["remedies"] and all(x["new_required_bytes"] < doc["required_bytes"] for x in doc["remedies"])
    text = mlops("oom-check", "Qwen/Qwen2.5-7B", "--batch", "4", "--seq-len", "4096", "--gpu", "A100-80GB")
    assert text.returncode == 1 and "DOES NOT FIT" in text.stdout and "Remedies, cheapest first" in text.stdout


def test_oom_check_against_replayed_nvml_free_memory(mlops):
    snap = str(GPU_FIXTURES / "a800-2gpu.json")  # GPU 0: 47,473 MiB free, GPU 1: 47,281 MiB
    fits = mlops("oom-check", "Qwen/Qwen2.5-7B", "--method", "lora", "--grad-ckpt", "--snapshot", snap, "--json")
    assert fits.returncode == 0, fits
    assert fits.json()["capacity_bytes"] == 47473 * 1024**2
    two = mlops("oom-check", "Qwen/Qwen2.5-7B", "--gpus", "2", "--zero", "3", "--snapshot", snap, "--json")
    assert two.json()["setup"]["sharding"] == "zero3"
    assert two.json()["capacity_bytes"] == 47281 * 1024**2  # the least free of the two
    # AMP keeps fp32 weights and grads (18 B/param); ZeRO-3 over the 2 GPUs NVML shows halves that.
    full = mlops("oom-check", "Qwen/Qwen2.5-7B", "--precision", "amp-bf16", "--snapshot", snap, "--json")
    assert full.returncode == 1
    z3 = next(x for x in full.json()["remedies"] if x["name"] == "zero3")
    assert z3["change"]["gpus"] == 2
    # The run alone uses GPU 0; ZeRO-3 over both is judged on the least free of the two.
    assert full.json()["capacity_bytes"] == 47473 * 1024**2 and z3["capacity_bytes"] == 47281 * 1024**2


def test_oom_check_without_gpu_or_capacity_is_exit_3(mlops):
    try:
        import pynvml

        pynvml.nvmlInit()
        pytest.skip("this machine has a working NVML; the no-GPU path cannot be shown here")
    except Exception:
        pass
    r = mlops("oom-check", "Qwen/Qwen2.5-7B")
    assert r.returncode == 3, r
    assert r.stderr.startswith("error: no GPU to check against") and "--gpu-mem" in r.stderr


@pytest.mark.parametrize("size", ["80", "0", "0GiB", "100MiB"])
def test_gpu_mem_too_small_is_bad_input_not_does_not_fit(mlops, size):
    # a provisioning script passing a bare '80' must not read "does not fit" (exit 1)
    r = mlops("oom-check", "Qwen/Qwen2.5-7B", "--method", "lora", "--gpu-mem", size, "--json")
    assert r.returncode == 2, r
    assert r.no_report() and r.stderr.startswith("error: --gpu-mem")
    if size == "80":
        assert "--gpu-mem 80GiB" in r.stderr
    if size in ("0", "0GiB"):
        hint = r.stderr.split("hint:")[-1]
        assert "hint:" in r.stderr and "0GiB" not in hint.replace("80GiB", "")  # never suggests a zero-sized GPU


def test_unknown_gpu_name_is_exit_2(mlops):
    r = mlops("oom-check", "Qwen/Qwen2.5-7B", "--gpu", "Z9000")
    assert r.returncode == 2 and "unknown GPU" in r.stderr


def test_oom_check_on_a_gpu_without_memory_readings_is_exit_3(mlops):
    # DGX Spark (GB10): nvidia-smi prints memory as "Not Supported" (unified memory)
    r = mlops("oom-check", "Qwen/Qwen2.5-7B", "--snapshot", str(GPU_FIXTURES / "gb10-unsupported.json"))
    assert r.returncode == 3, r
    assert "no GPU with readable free memory" in r.stderr and "--gpu-mem" in r.stderr


def test_oom_check_with_a_binary_snapshot_is_exit_2(mlops, tmp_path):
    snap = tmp_path / "snap.json"
    snap.write_bytes(b"\xff\xfe\x00")
    r = mlops("oom-check", "Qwen/Qwen2.5-7B", "--snapshot", str(snap), "--json")
    assert r.returncode == 2 and "not UTF-8" in r.stderr and "internal error" not in r.stderr, r


def test_serving_longer_than_the_model_positions_says_vllm_refuses_it(mlops):
    r = mlops("mem", "estimate", "meta-llama/Llama-3.1-8B", "--inference", "--max-model-len", "1000000", "--json")
    assert r.returncode == 0, r
    assert any("longer than the model's 131072 positions" in n for n in r.json()["notes"])
    ok = mlops("mem", "estimate", "meta-llama/Llama-3.1-8B", "--inference", "--max-model-len", "8192", "--json")
    assert not any("positions" in n for n in ok.json()["notes"])


def test_empty_gpu_name_is_bad_input_not_no_gpu(mlops):
    r = mlops("oom-check", "Qwen/Qwen2.5-7B", "--gpu", "")
    assert r.returncode == 2 and "--gpu is empty" in r.stderr, r


def test_stack_preset_is_echoed_and_flags_override_it(mlops):
    r = mlops(
        "mem",
        "estimate",
        "meta-llama/Llama-3.1-8B",
        "--method",
        "lora",
        "--stack",
        "torchtune",
        "--loss",
        "full",
        "--json",
    )
    assert r.returncode == 0, r
    setup = r.json()["setup"]
    assert setup["stack"] == "torchtune" and setup["loss"] == "full" and setup["origin"]["loss"] == "flag"
    assert setup["grad_ckpt"] is True and setup["origin"]["grad_ckpt"] == "stack:torchtune"


def test_text_output_labels_both_metrics(mlops):
    r = mlops("mem", "estimate", "meta-llama/Llama-3.1-8B", "--method", "qlora", "--stack", "trl")
    assert r.returncode == 0, r
    assert "torch peak (max_memory_reserved)" in r.stdout and "device (nvidia-smi" in r.stdout
    assert "peak phase:" in r.stdout


def test_rl_method_reports_its_parts(mlops):
    r = mlops("mem", "estimate", "Qwen/Qwen2.5-7B", "--method", "ppo", "--tuning", "lora", "--json")
    assert r.returncode == 0, r
    doc = r.json()
    assert {"reference_model", "reward_model", "value_model"} <= set(doc["breakdown"]) or {
        "reward_model",
        "value_model",
    } <= set(doc["breakdown"])
    assert doc["setup"]["objective"] == "ppo" and doc["setup"]["tuning"] == "lora"


def test_ppo_reward_model_and_hybrid_engine_flags_reach_the_estimate(mlops):
    """--reward-model function drops the reward-model copy; --gen-engine vllm-hybrid puts the engine
    in a generation phase only (verl defaults: reward_model.enable False, free_cache_engine True)."""
    base = [
        "mem",
        "estimate",
        "Qwen/Qwen2.5-0.5B",
        "--method",
        "ppo",
        "--batch",
        "1",
        "--seq-len",
        "512",
        "--gpu-mem",
        "24GiB",
        "--json",
    ]
    with_rm = mlops(*base, "--gen-engine", "vllm-colocate").json()
    verl = mlops(*base, "--gen-engine", "vllm-hybrid", "--reward-model", "function").json()
    assert with_rm["setup"]["reward_model"] == "model" and verl["setup"]["reward_model"] == "function"
    assert "reward_model" in with_rm["breakdown"] and "reward_model" not in verl["breakdown"]
    assert verl["peak_phase"] == "generation" and verl["required_bytes"] < with_rm["required_bytes"]
