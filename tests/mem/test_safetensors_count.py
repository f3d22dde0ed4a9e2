"""Exact parameter counts from real safetensors bytes (written by the safetensors library when
it is installed, else laid out by hand per the published format)."""

from __future__ import annotations

import json
import struct

import pytest

from mlops_cli.errors import UsageError
from mlops_cli.mem.safetensors_count import count_from_hub, count_from_index, count_header, header_length


def _file_bytes(tensors: dict[str, tuple[str, list[int]]]) -> bytes:
    header, offset = {}, 0
    size = {"BF16": 2, "F32": 4, "U8": 1}
    for name, (dtype, shape) in tensors.items():
        n = 1
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n * size[dtype]]}
        offset += n * size[dtype]
    header["__metadata__"] = {"format": "pt"}
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + b"\0" * offset


def test_counts_by_dtype_from_a_header():
    blob = _file_bytes({"a.weight": ("BF16", [4, 8]), "b.weight": ("U8", [16, 2]), "c.bias": ("F32", [3])})
    n = header_length(blob[:8], "x")
    count = count_header(blob[8 : 8 + n], "x")
    assert count.by_dtype == {"BF16": 32, "U8": 32, "F32": 3} and count.total == 67
    assert count.total_bytes == 32 * 2 + 32 + 12


def test_real_library_file_when_available(tmp_path):
    np = pytest.importorskip("numpy", reason="numpy not installed")
    st = pytest.importorskip("safetensors.numpy", reason="safetensors not installed")
    path = tmp_path / "model.safetensors"
    st.save_file({"w": np.zeros((5, 7), dtype=np.float16), "b": np.zeros((7,), dtype=np.float32)}, str(path))
    blob = path.read_bytes()
    n = header_length(blob[:8], "model.safetensors")
    assert count_header(blob[8 : 8 + n], "model.safetensors").by_dtype == {"F16": 35, "F32": 7}


@pytest.mark.parametrize("blob", [b"\x01\x02", struct.pack("<Q", 10**12), struct.pack("<Q", 1)])
def test_not_safetensors_is_a_usage_error(blob):
    with pytest.raises(UsageError):
        header_length(blob, "f")


@pytest.mark.parametrize(
    "header",
    [
        b"\xff\xfe",
        b"[1, 2]",
        b'{"t": {"dtype": "BF16"}}',
        b'{"t": {"dtype": "BF16", "shape": [-1]}}',
        b'{"t": {"dtype": "BF16", "shape": [true]}}',
        b"[" * 5000,
    ],
)
def test_malformed_headers(header):
    with pytest.raises(UsageError):
        count_header(header, "f")


def test_index_total_size_and_hub_metadata():
    # Llama-3.1-8B model.safetensors.index.json: total_size 16060522496 bytes of bf16
    assert count_from_index({"metadata": {"total_size": 16060522496}}, "bfloat16", "i").total == 8030261248
    with pytest.raises(UsageError):
        count_from_index({"metadata": {"total_size": float("inf")}}, "bfloat16", "i")
    hub = count_from_hub({"safetensors": {"parameters": {"F16": 2779683840}, "total": 2779683840}}, "hub")
    assert hub.total == 2779683840  # microsoft/phi-2 as the Hub API reports it
