"""Exact parameter counts from safetensors headers and index files (pure parsing).

A safetensors file starts with an 8-byte little-endian header length N, then N bytes of JSON:
`{"tensor.name": {"dtype": "BF16", "shape": [..], "data_offsets": [a, b]}, "__metadata__": {..}}`
(https://github.com/huggingface/safetensors, "Format"). Summing the shapes per dtype gives the
exact count the Hub shows as "Safetensors · Model size". `model.safetensors.index.json` holds
`metadata.total_size` in bytes, which gives the count when every tensor has one dtype.
Malformed input raises UsageError (exit 2) with one line.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Any

from mlops_cli.errors import UsageError
from mlops_cli.files import parse_json
from mlops_cli.text import one_line, shorten

MAX_HEADER = 100 * 1024 * 1024  # safetensors itself refuses headers above 100 MB
# No checkpoint holds more parameters than this (2**50, about 10**15; the largest are ~10**12):
# a larger count is a malformed or hostile file, and would overflow the float arithmetic after.
MAX_PARAMS = 2**50
DTYPE_BYTES = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "F8_E8M0": 1,
    "U16": 2,
    "U32": 4,
    "U64": 8,
    "F4": 0.5,
    "F6_E2M3": 0.75,
    "F6_E3M2": 0.75,
}
TORCH_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float8_e4m3fn": 1, "int8": 1}


@dataclass
class ParamCount:
    by_dtype: dict[str, int] = field(default_factory=dict)
    bytes_by_dtype: dict[str, int] = field(default_factory=dict)
    source: str = ""

    @property
    def total(self) -> int:
        return sum(self.by_dtype.values())

    @property
    def total_bytes(self) -> int:
        return sum(self.bytes_by_dtype.values())

    def add(self, other: ParamCount) -> None:
        for k, v in other.by_dtype.items():
            self.by_dtype[k] = self.by_dtype.get(k, 0) + v
        for k, v in other.bytes_by_dtype.items():
            self.bytes_by_dtype[k] = self.bytes_by_dtype.get(k, 0) + v

    def to_json(self) -> dict[str, Any]:
        return {"total": self.total, "by_dtype": dict(self.by_dtype), "bytes": self.total_bytes, "source": self.source}


def header_length(prefix: bytes, what: str) -> int:
    if len(prefix) < 8:
        raise UsageError(f"{what}: not a safetensors file (shorter than its 8-byte header length)")
    (n,) = struct.unpack("<Q", prefix[:8])
    if n < 2 or n > MAX_HEADER:
        raise UsageError(f"{what}: not a safetensors file (header length {n} is out of range)")
    return n


def count_header(header: bytes, what: str) -> ParamCount:
    """Counts per dtype from one safetensors JSON header."""
    try:
        doc = parse_json(header.decode("utf-8"), what=f"{what}: the safetensors header")
    except UnicodeDecodeError:
        raise UsageError(f"{what}: the safetensors header is not UTF-8") from None
    if not isinstance(doc, dict):
        raise UsageError(f"{what}: the safetensors header is not a JSON object")
    out = ParamCount(source=what)
    for name, info in doc.items():
        if name == "__metadata__":
            continue
        if (
            not isinstance(info, dict)
            or not isinstance(info.get("shape"), list)
            or not isinstance(info.get("dtype"), str)
        ):
            raise UsageError(f"{what}: tensor {shorten(one_line(name), 80)!r} has no dtype/shape")
        shape = info["shape"]
        if not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**40 for d in shape):
            raise UsageError(f"{what}: tensor {shorten(one_line(name), 80)!r} has a malformed shape")
        n = math.prod(shape)
        dtype = info["dtype"].upper()
        if n > MAX_PARAMS or out.by_dtype.get(dtype, 0) + n > MAX_PARAMS:
            raise UsageError(f"{what}: tensor {shorten(one_line(name), 80)!r} has more elements than any model")
        out.by_dtype[dtype] = out.by_dtype.get(dtype, 0) + n
        out.bytes_by_dtype[dtype] = out.bytes_by_dtype.get(dtype, 0) + int(n * DTYPE_BYTES.get(dtype, 2))
    return out


def count_from_index(doc: Any, torch_dtype: str, what: str) -> ParamCount:
    """Counts from model.safetensors.index.json's total_size, assuming one dtype (torch_dtype)."""
    meta = doc.get("metadata") if isinstance(doc, dict) else None
    total = meta.get("total_size") if isinstance(meta, dict) else None
    if isinstance(total, bool) or not isinstance(total, (int, float)) or total <= 0 or total > 2**50:
        raise UsageError(f"{what}: no usable metadata.total_size")
    per = TORCH_DTYPE_BYTES.get(torch_dtype, 2)
    name = {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "float8_e4m3fn": "F8_E4M3", "int8": "I8"}.get(
        torch_dtype, "BF16"
    )
    return ParamCount({name: int(total // per)}, {name: int(total)}, source=what)


def count_from_hub(doc: Any, what: str) -> ParamCount:
    """The Hub API's `safetensors` field: {"parameters": {"BF16": n, ...}, "total": n}."""
    st = doc.get("safetensors") if isinstance(doc, dict) else None
    params = st.get("parameters") if isinstance(st, dict) else None
    if not isinstance(params, dict) or not params:
        raise UsageError(f"{what}: no safetensors parameter counts")
    out = ParamCount(source=what)
    for dtype, n in params.items():
        if isinstance(n, bool) or not isinstance(n, int) or n < 0 or n > MAX_PARAMS:
            raise UsageError(f"{what}: malformed parameter count for {shorten(one_line(dtype), 20)}")
        out.by_dtype[str(dtype).upper()] = n
        out.bytes_by_dtype[str(dtype).upper()] = int(n * DTYPE_BYTES.get(str(dtype).upper(), 2))
    return out
