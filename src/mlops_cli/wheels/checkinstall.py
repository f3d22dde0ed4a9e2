"""`--check-install`: install the finished bundle into a throwaway venv, offline, and import it.

It runs the bundle's own `install.sh` (so the script is tested too) with the venv's python,
then imports the top-level modules of every requirement named on the command line.
"""

from __future__ import annotations

import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from mlops_cli import proc
from mlops_cli.errors import OperationFailed


def top_level_modules(wheel: Path) -> list[str]:
    """Importable top-level names in a wheel (packages and modules, not dist-info/data)."""
    names = set()
    with zipfile.ZipFile(wheel) as zf:
        for entry in zf.namelist():
            head, _, rest = entry.partition("/")
            if head.endswith((".dist-info", ".data")) or head.startswith("_") or head == "__pycache__":
                continue
            if rest and rest.split("/")[-1] == "__init__.py" and rest.count("/") == 0:
                names.add(head)
            elif not rest and head.endswith(".py"):
                names.add(head[:-3])
    return sorted(n for n in names if n.isidentifier())


def _tail(text: str, lines: int = 6) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])


def check_install(folder: Path, manifest: dict[str, Any], requirements: list[str]) -> list[str]:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    wanted = {canonicalize_name(Requirement(r).name) for r in requirements}
    modules: list[str] = []
    for pkg in manifest["packages"]:
        if canonicalize_name(pkg["name"]) in wanted:
            modules += top_level_modules(folder / "wheels" / pkg["filename"])
    with tempfile.TemporaryDirectory(prefix="mlops-check-install-") as tmp:
        venv = Path(tmp) / "venv"
        made = proc.run([sys.executable, "-m", "venv", str(venv)], timeout=300)
        if not made.ok:
            raise OperationFailed(f"--check-install: cannot create a virtual environment: {_tail(made.stderr)}")
        python = venv / "bin" / "python"
        env = {"PATH": "/usr/bin:/bin", "PYTHON": str(python), "HOME": tmp, "LANG": "C.UTF-8"}
        inst = proc.run(["sh", str(folder / "install.sh")], env=env, timeout=900)
        if not inst.ok:
            raise OperationFailed(f"--check-install: the offline install failed: {_tail(inst.stderr + inst.stdout)}",
                                  hint="the bundle was not written")
        if modules:
            code = "import importlib, sys\nfor m in sys.argv[1:]: importlib.import_module(m)\n"
            imp = proc.run([str(python), "-c", code, *modules], timeout=300, env=env)
            if not imp.ok:
                raise OperationFailed(f"--check-install: import failed after the offline install: {_tail(imp.stderr)}",
                                      hint="the bundle was not written")
    return modules
