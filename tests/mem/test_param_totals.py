"""The config formula against published parameter totals of 32 checkpoints (16 architectures)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlops_cli.errors import UsageError
from mlops_cli.mem.config import config_from_dict

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "mem" / "param-totals.json"
MODELS = json.loads(FIX.read_text(encoding="utf-8"))["models"]


def test_enough_architectures():
    assert len(MODELS) >= 30
    assert len({m["config"]["model_type"] for m in MODELS}) >= 14


@pytest.mark.parametrize("entry", MODELS, ids=[m["name"] for m in MODELS])
def test_formula_matches_the_published_total(entry):
    assert config_from_dict(entry["config"], entry["name"]).total_params == entry["total"]


def test_phi_is_not_a_gated_mlp():
    phi2 = next(m for m in MODELS if m["name"] == "microsoft/phi-2")
    m = config_from_dict(phi2["config"], "phi-2")
    assert not m.gated_mlp and m.total_params == 2779683840  # was 3.62B when read as SwiGLU (1.82B for phi-1.5)


@pytest.mark.parametrize(
    "key,value",
    [
        ("hidden_size", float("nan")),
        ("rope_theta", float("inf")),
        ("vocab_size", float("-inf")),
        ("initializer_range", float("nan")),
    ],
)
def test_non_finite_numbers_name_the_key(key, value):
    cfg = {**MODELS[0]["config"], key: value}
    with pytest.raises(UsageError, match=key):
        config_from_dict(cfg, "x")


def test_more_experts_per_token_than_experts_is_refused():
    cfg = {**next(m for m in MODELS if m["name"] == "mistralai/Mixtral-8x7B-v0.1")["config"], "num_experts_per_tok": 9}
    with pytest.raises(UsageError, match="num_experts_per_tok"):
        config_from_dict(cfg, "x")


def test_quantization_config_is_read():
    cfg = {**MODELS[3]["config"], "quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 128}}
    q = config_from_dict(cfg, "x").quantization
    assert (q.method, q.bits, q.group_size) == ("awq", 4, 128)
