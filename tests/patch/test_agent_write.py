"""The agent's `write` (the program mlops runs with the target's own interpreter, in a running
container or a venv) is all or nothing: when one file of a multi-file patch cannot be written,
no file is changed and no temporary file is left behind."""

from __future__ import annotations

import base64
import json
import subprocess
import sys

from mlops_cli.patch import agent


def run_write(site, files: dict[str, bytes]) -> tuple[int, dict]:
    payload = {"site": str(site), "files": {rel: base64.b64encode(d).decode() for rel, d in files.items()}}
    proc = subprocess.run(
        [sys.executable, "-c", agent.SOURCE, "write", "{}"],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc.returncode, json.loads(proc.stdout.strip().splitlines()[-1])


def test_second_file_unwritable_changes_nothing(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "a.py").write_text("A = 1\n")
    (pkg / "b.py").write_text("B = 1\n")
    # The temporary name of b.py is taken by a folder, so b.py cannot be staged (even as root).
    (pkg / "b.py.mlops-tmp").mkdir()
    rc, doc = run_write(tmp_path, {"pkg/a.py": b"A = 2\n", "pkg/b.py": b"B = 2\n"})
    assert rc == 1 and doc["error"] == "unwritable" and doc["path"] == "pkg/b.py"
    assert (pkg / "a.py").read_text() == "A = 1\n", "a.py was changed although b.py failed"
    assert (pkg / "b.py").read_text() == "B = 1\n"
    assert sorted(p.name for p in pkg.iterdir()) == ["a.py", "b.py", "b.py.mlops-tmp"]


def test_all_files_written_when_all_can_be(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "a.py").write_text("A = 1\n")
    (pkg / "b.py").write_text("B = 1\n")
    (pkg / "b.py").chmod(0o640)
    rc, doc = run_write(tmp_path, {"pkg/a.py": b"A = 2\n", "pkg/b.py": b"B = 2\n"})
    assert rc == 0 and set(doc["written"]) == {"pkg/a.py", "pkg/b.py"}
    assert (pkg / "a.py").read_text() == "A = 2\n" and (pkg / "b.py").read_text() == "B = 2\n"
    assert (pkg / "b.py").stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in pkg.iterdir()) == ["a.py", "b.py"]
