"""`--check-install`: install the finished bundle offline into a throwaway venv per target,
with an interpreter of that target's Python, and import it.

Any target whose interpreter is on this machine can be checked: this Python, one under
pyenv (`$PYENV_ROOT/versions/X.Y.*`), one `uv python find X.Y` knows, or `pythonX.Y` on the
PATH; each candidate is asked its version, CPU and glibc before it is used. The check runs the
bundle's own `install.sh --venv` (so the script is tested too), then imports the top-level
modules of every requirement named on the command line.
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


_FACTS = (
    "import json, platform, sys; libc, v = platform.libc_ver(); "
    "print(json.dumps(['%d.%d' % sys.version_info[:2], platform.machine(), v if libc == 'glibc' else None]))"
)


def _facts(python: str) -> tuple[str, str, str | None] | None:
    import json

    r = proc.run([python, "-I", "-c", _FACTS], timeout=30)
    if not r.ok:
        return None
    try:
        version, machine, glibc = json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None
    return version, {"amd64": "x86_64", "arm64": "aarch64"}.get(machine.lower(), machine), glibc


def _candidates(version: str) -> list[str]:
    import glob
    import os

    from mlops_cli.wheels.resolve import clean_env, uv_binary

    out = [sys.executable]
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    out += sorted(glob.glob(os.path.join(root, "versions", f"{version}.*", "bin", f"python{version}")), reverse=True)
    try:
        found = proc.run([uv_binary(), "python", "find", "--no-python-downloads", version], timeout=30, env=clean_env())
        if found.ok and found.stdout.strip():
            out.append(found.stdout.strip().splitlines()[-1])
    except OperationFailed:
        pass
    on_path = proc.which(f"python{version}")
    if on_path and "/shims/" not in on_path:
        out.append(on_path)
    return list(dict.fromkeys(out))


def _glibc_ok(have: str | None, need: str) -> bool:
    def parts(v):
        return tuple(int(x) for x in v.split(".")[:2])

    return have is not None and parts(have) >= parts(need)


def find_interpreter(target, requires_glibc: str | None = None) -> str | None:
    """An interpreter on this machine that can stand for `target` (same X.Y and CPU, glibc at
    least the target's), or None."""
    for python in _candidates(target.python):
        facts = _facts(python)
        if (
            facts
            and facts[0] == target.python
            and facts[1] == target.arch
            and _glibc_ok(facts[2], requires_glibc or "2.5")
        ):
            return python
    return None


def interpreters_for(targets) -> dict[str, str]:
    """target name -> interpreter, before any work; exit 2 naming the targets with none here."""
    from mlops_cli.errors import UsageError

    found, missing = {}, []
    for t in targets:
        python = find_interpreter(t)
        if python is None:
            missing.append(f"{t.name} (Python {t.python}, {t.arch})")
        else:
            found[t.name] = python
    if missing:
        raise UsageError(
            "--check-install: no interpreter on this machine for target " + ", ".join(missing),
            hint="install that Python here (pyenv install X.Y, uv python install X.Y), "
            "or build without --check-install",
        )
    return found


def check_install(folder: Path, manifest: dict[str, Any], requirements: list[str], targets) -> list[str]:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    wanted = {canonicalize_name(Requirement(r).name) for r in requirements}
    pythons = interpreters_for(targets)
    checked: list[str] = []
    for entry in manifest["targets"]:
        modules: list[str] = []
        for pkg in manifest["packages"]:
            if canonicalize_name(pkg["name"]) in wanted and entry["name"] in pkg["targets"]:
                modules += top_level_modules(folder / "wheels" / pkg["filename"])
        with tempfile.TemporaryDirectory(prefix="mlops-check-install-") as tmp:
            venv = Path(tmp) / "venv"
            env = {"PATH": "/usr/bin:/bin", "PYTHON": pythons[entry["name"]], "HOME": tmp, "LANG": "C.UTF-8"}
            inst = proc.run(
                ["sh", str(folder / "install.sh"), "--venv", str(venv), "--target", entry["name"]], env=env, timeout=900
            )
            if not inst.ok:
                raise OperationFailed(
                    f"--check-install: the offline install for {entry['name']} failed: "
                    f"{_tail(inst.stderr + inst.stdout)}",
                    hint="the bundle was not written",
                )
            if modules:
                code = "import importlib, sys\nfor m in sys.argv[1:]: importlib.import_module(m)\n"
                imp = proc.run([str(venv / "bin" / "python"), "-c", code, *modules], timeout=300, env=env)
                if not imp.ok:
                    raise OperationFailed(
                        f"--check-install: import failed after the offline install for "
                        f"{entry['name']}: {_tail(imp.stderr)}",
                        hint="the bundle was not written",
                    )
        checked += modules
    return checked
