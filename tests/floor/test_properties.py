"""Property tests for the model-config and NVML-snapshot readers (issue 8): whatever a config or
a snapshot holds, the answer is a result or one clean exit-2 error, fast. Driver outputs, index
pages, target files and patch files have theirs beside their own tests."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlops_cli.errors import MlopsError, UsageError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
LLAMA = (
    json.loads((FIXTURES / "mem" / "tiny-llama" / "config.json").read_text())
    if (FIXTURES / "mem" / "tiny-llama" / "config.json").exists()
    else {
        "model_type": "llama",
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "num_hidden_layers": 2,
        "vocab_size": 1000,
    }
)
GPU_SNAPSHOT = json.loads((FIXTURES / "gpu" / "a800-2gpu.json").read_text())

# JSON values a hostile or broken file can hold (parse_json already refuses NaN/Infinity/huge numbers).
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
values = st.recursive(
    scalars,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3),
    max_leaves=8,
)
SETTINGS = settings(derandomize=True, max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _mutated(base: dict, data) -> dict:
    doc = copy.deepcopy(base)
    for _ in range(data.draw(st.integers(1, 4))):
        key = data.draw(
            st.sampled_from(
                sorted(doc)
                + [
                    "num_experts_per_tok",
                    "num_local_experts",
                    "rope_scaling",
                    "quantization_config",
                    "text_config",
                    "head_dim",
                ]
            )
        )
        doc[key] = data.draw(values)
    return doc


@SETTINGS
@given(st.data())
def test_any_model_config_gives_an_estimate_or_one_usage_error(data):
    from mlops_cli.mem.config import config_from_dict
    from mlops_cli.mem.estimate import estimate
    from mlops_cli.mem.setup import Setup

    doc = _mutated(LLAMA, data)
    start = time.perf_counter()
    try:
        model = config_from_dict(doc, "fuzz", source="fuzz")
        est = estimate(model, Setup().validated())
        # A config that passes must give a sane answer, not negative or absurd bytes.
        assert model.total_params > 0 and 0 < est.allocated_peak_bytes <= est.torch_peak_bytes
    except UsageError as exc:
        assert exc.message and "\n" not in exc.message
    assert time.perf_counter() - start < 5


@SETTINGS
@given(st.data())
def test_any_nvml_snapshot_gives_a_status_or_one_usage_error(data):
    from mlops_cli.gpu.nvml import SnapshotNvml
    from mlops_cli.gpu.status import collect

    doc = copy.deepcopy(GPU_SNAPSHOT)
    calls = doc["calls"]
    for _ in range(data.draw(st.integers(1, 4))):
        key = data.draw(st.sampled_from(sorted(calls) + ["device_count", "memory/0", "processes/0", "name/1"]))
        calls[key] = data.draw(
            st.one_of(
                values, st.fixed_dictionaries({"value": values}), st.fixed_dictionaries({"error": st.text(max_size=10)})
            )
        )
    start = time.perf_counter()
    try:
        status = collect(SnapshotNvml(doc, origin="fuzz"), "fuzz")
        status.to_json()
    except MlopsError as exc:
        assert exc.exit_code in (2, 3) and "\n" not in exc.message
    assert time.perf_counter() - start < 5
