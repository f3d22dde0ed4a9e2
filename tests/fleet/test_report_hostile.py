"""`mlops report` on hostile folders (issue 8, second attack round)."""

from __future__ import annotations

import json
import os
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def test_a_fifo_in_a_walked_folder_is_listed_not_waited_on(mlops, tmp_path):
    """A FIFO (or socket) left in the fact-cache folder hung the whole report before."""
    folder = tmp_path / "facts"
    folder.mkdir()
    os.mkfifo(folder / "gpu07.json")  # nobody ever writes to it
    doc = mlops("gpu", "--snapshot", str(FIXTURES / "gpu" / "a800-2gpu.json"), "--json").json()
    (folder / "gpu01.json").write_text(json.dumps(doc))
    r = mlops("report", str(folder), "--json", timeout=60)
    assert r.returncode == 2, r  # one input unusable, no node broken
    report = r.json()
    assert [u["reason"] for u in report["unusable"]] == ["it is not a regular file (a FIFO, socket or device)"]
    assert [n["node"] for n in report["nodes"]] == ["gpu01"]
