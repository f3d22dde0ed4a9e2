from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlops_cli.data.check import CheckOptions, run_check

DEMO = Path(__file__).resolve().parent.parent / "fixtures" / "data" / "demo"


@pytest.fixture
def check(tmp_path):
    """Write records (or raw bytes) to a file, optionally with a dataset_info entry, and check it."""

    def run(records, *, entry=None, name="x.json", stage=None, version=None, lines=False, **kw):
        path = tmp_path / name
        if isinstance(records, (bytes, str)):
            path.write_bytes(records if isinstance(records, bytes) else records.encode())
        elif lines:
            path.write_text("".join(json.dumps(r) + "\n" for r in records))
        else:
            path.write_text(json.dumps(records))
        info = None
        if entry is not None:
            info = tmp_path / "dataset_info.json"
            info.write_text(json.dumps({"e": dict(entry, file_name=name)}))
        opts = CheckOptions(
            files=[str(path)],
            info=str(info) if info else None,
            name="e" if info else None,
            stage=stage,
            version=version,
            **kw,
        )
        return run_check(opts)

    return run


def by_record(result):
    """record number -> set of (code, consequence)."""
    out = {}
    for f in result.findings:
        if f.record is not None:
            out.setdefault(f.record, set()).add((f.code, f.consequence))
    return out
