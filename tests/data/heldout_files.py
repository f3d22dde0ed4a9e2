"""Held-out files too big (or too binary) to keep in git: written on demand, byte for byte the same
each time, into a copy of their case folder (tests/fixtures/data/heldout/<case>/).

Used by tests/data/test_heldout.py and by tests/data/lf_pipeline.py, which recorded the ground
truth from exactly these bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

LINES = 50_000  # records of ~230 bytes: past datasets' first 10 MiB batch


def _pad(i: int) -> dict:
    return {
        "conversations": [{"from": "human", "value": "x" * 150 + str(i)}, {"from": "gpt", "value": "ok"}],
        "system": "be brief",
    }


def _late(folder: Path, last: dict, system=_pad(0)["system"]) -> None:
    """LINES padding records (their system is `system`), then `last`."""
    with open(folder / "d.jsonl", "w", encoding="utf-8") as fh:
        for i in range(LINES):
            fh.write(json.dumps(dict(_pad(i), system=system)) + "\n")
        fh.write(json.dumps(last) + "\n")


def materialize(generated: str, folder: Path) -> None:
    """Write the generated file(s) of case `generated` into `folder`."""
    if generated == "late_key_top":
        _late(folder, dict(_pad(LINES), note="added late"))
    elif generated == "late_key_nested":
        last = _pad(LINES)
        last["conversations"][1]["weight"] = 1
        _late(folder, last)
    elif generated == "late_null_then_text":
        _late(folder, dict(_pad(LINES), system="now text"), system=None)
    elif generated == "parquet_images":
        import pyarrow as pa
        import pyarrow.parquet as pq

        msgs = lambda q: [{"from": "human", "value": q}, {"from": "gpt", "value": "a"}]  # noqa: E731
        table = pa.table(
            {
                "conversations": [msgs("<image>What?"), msgs("<image>And?"), msgs("No image."), msgs("<image>Null?")],
                "images": [["../media/a.png"], ["../media/b.png"], [], None],
            }
        )
        pq.write_table(table, folder / "d.parquet")
    elif generated == "parquet_alpaca":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table(
            {
                "instruction": ["q1", "q2", "q3", "q4"],
                "input": ["", "", None, ""],
                "output": ["a1", None, "a3", "a4"],
                "history": [[["h", "a"]], [], [["h", None]], None],
            }
        )
        pq.write_table(table, folder / "d.parquet")
    else:
        raise ValueError(f"unknown generated case {generated!r}")
