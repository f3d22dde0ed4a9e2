"""vLLM KV sizing by release, checked against start-up logs (tests/fixtures/mem/vllm-points.csv)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from mlops_cli.mem.config import config_from_dict
from mlops_cli.mem.presets import load_preset
from mlops_cli.mem.quant import from_config, weight_bytes
from mlops_cli.mem.serving import CUDA_GRAPHS, era, parse_version, serving
from mlops_cli.mem.spec import GiB, Setup

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "mem"


def qwen2_7b():
    return config_from_dict(json.loads((FIX / "configs" / "Qwen--Qwen2-7B-Instruct.json").read_text()), "Qwen2-7B")


@pytest.mark.parametrize(
    "version,expected",
    [
        ("0.5.3", "v0-absolute"),
        ("0.6.4", "v0-profiling"),
        ("0.7.3", "v0-profiling"),
        ("0.8.5", "v1-absolute"),
        ("0.9.2", "v1-profiling"),
        ("0.10.1.1", "v1-profiling"),
        ("0.11.0", "v1-nccl-in-baseline"),
        ("0.19.1", "v1-nccl-in-baseline"),
        ("0.20.0", "v1-cudagraphs-estimated"),
        ("0.21.0", "v1-cudagraphs-estimated"),
        ("v0.29.0rc1", "v1-cudagraphs-estimated"),
    ],
)
def test_release_eras(version, expected):
    assert era(parse_version(version)) == expected


def test_dennislee_a100_logs_within_three_percent():
    # vLLM 0.10.1.1, Qwen2-7B-Instruct, A100-80GB, --max-model-len 16384 (log/vllm-7B-*.log)
    rows = [
        r
        for r in csv.DictReader((FIX / "vllm-points.csv").open())
        if r["id"].startswith("dl-") and "40g" not in r["id"]
    ]
    assert len(rows) == 4
    for r in rows:
        s = Setup(
            inference=True,
            gpus=int(r["tp"]),
            max_model_len=16384,
            vllm_version=r["vllm_version"],
            gpu_memory_utilization=float(r["gpu_memory_utilization"]),
            vllm_sampler=r["sampler"],
        )
        est = serving(qwen2_7b(), s, 79.15 * GiB, "A100-80GB")
        assert est.weights / GiB == pytest.approx(float(r["weights_gib"]), rel=0.01)
        assert est.kv_cache_tokens == pytest.approx(int(r["kv_tokens"]), rel=0.03)


def test_nccl_counted_until_0_11_and_graphs_from_0_20():
    m = load_preset("meta-llama/Llama-3.1-8B")
    kv = {}
    for v in ("0.10.1", "0.11.0", "0.19.1", "0.20.0"):
        s = Setup(inference=True, gpus=2, max_model_len=8192, vllm_version=v)
        kv[v] = serving(m, s, 79.22 * GiB, "H100").kv_cache_bytes
    assert kv["0.11.0"] > kv["0.10.1"]  # NCCL buffers now sit in the baseline snapshot
    # VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS defaults to "1" from 0.20.0 (envs.py), "0" in 0.18/0.19
    assert kv["0.19.1"] - kv["0.20.0"] == pytest.approx(CUDA_GRAPHS)
    eager = serving(m, Setup(inference=True, gpus=2, vllm_version="0.20.0", enforce_eager=True), 79.22 * GiB, "H100")
    assert eager.kv_cache_bytes == pytest.approx(kv["0.19.1"])


def test_v0_profile_grows_with_max_model_len():
    # issue #10517 (v0.6.4, RTX 3090): peak_torch_memory 17.06 GiB at 20k, 17.98 GiB at 29k
    m = load_preset("meta-llama/Llama-3.1-8B")
    peaks = [
        serving(m, Setup(inference=True, max_model_len=n, vllm_version="0.6.4"), 23.58 * GiB).activation_peak
        for n in (20000, 29000)
    ]
    assert peaks[1] - peaks[0] == pytest.approx((17.98 - 17.06) * GiB, rel=0.2)


def test_fp8_405b_keeps_attention_and_edge_layers_bf16():
    cfg = json.loads((FIX / "configs" / "meta-llama--Llama-3.1-405B-Instruct-FP8.json").read_text())
    m = config_from_dict(cfg, "405B-FP8")
    q = from_config(cfg["quantization_config"])
    # issue #6746: "Loading model weights took 57.7520 GB" per rank at TP8
    assert weight_bytes(m, q) / 8 / GiB == pytest.approx(57.752, rel=0.03)
    everything_fp8 = (m.linear_params * 1.0 + (m.total_params - m.linear_params) * 2) / 8 / GiB
    assert everything_fp8 < 50  # ignoring modules_to_not_convert would be 17 % short
