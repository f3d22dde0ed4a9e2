"""Issue 10, the far side, with real interpreters: PEP 668 system Pythons, `install.sh --venv`,
a failure halfway and `--rollback`, `--with-pip` that leaves a system pip alone,
`--check-install` for another Python minor, and the bundle as a pylock.toml and a PEP 503 index
for pip (>= 25.1) and uv, offline."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from .conftest import HOSTILE_ENV, make_venv, manifest, run_install_sh

PYENV = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"


def copied_python(dest: Path, managed: bool) -> Path:
    """A system-like interpreter (not a venv) of this Python: its binary copied, its stdlib linked
    entry by entry, an empty site-packages of its own; with `managed`, the stdlib carries the
    EXTERNALLY-MANAGED file that Debian 12 / Ubuntu 24.04 ship (PEP 668)."""
    ver = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    real = Path(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))
    stdlib = Path(sysconfig.get_paths(vars={"base": sys.base_prefix, "installed_base": sys.base_prefix})["stdlib"])
    (dest / "bin").mkdir(parents=True)
    shutil.copy2(real, dest / "bin" / ver)
    (dest / "bin" / "python3").symlink_to(ver)
    lib = dest / "lib" / ver
    lib.mkdir(parents=True)
    for entry in stdlib.iterdir():
        if entry.name == "site-packages":
            (lib / "site-packages").mkdir()
        elif entry.name != "EXTERNALLY-MANAGED":
            (lib / entry.name).symlink_to(entry)
    if managed:
        (lib / "EXTERNALLY-MANAGED").write_text(
            "[externally-managed]\nError=To install Python packages system-wide, try apt install python3-xyz\n"
        )
    python = dest / "bin" / "python3"
    out = subprocess.run(
        [str(python), "-c", "import sys; print(sys.prefix == sys.base_prefix, sys.prefix)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if out.returncode != 0 or out.stdout.split()[0] != "True":
        pytest.skip(f"this Python cannot be copied into a system-like prefix: {out.stderr.strip()[-200:]}")
    return python


def _imports(python: Path, code: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=120)


def test_pep668_python_is_refused_and_venv_installs(index, wheels, tmp_path):
    r = wheels("alpha==1.0", "-o", "b", index_url=index.url)
    assert r.returncode == 0, r
    bundle = wheels.work / "b"
    system = copied_python(tmp_path / "sys", managed=True)
    refused = run_install_sh(bundle, system)
    assert refused.returncode == 1, refused
    assert "is externally managed (PEP 668)" in refused.stderr and "--venv" in refused.stderr
    assert _imports(system, "import alpha").returncode != 0
    venv = tmp_path / "site-venv"
    made = run_install_sh(bundle, system, "--venv", str(venv))
    assert made.returncode == 0, made.stderr + made.stdout
    out = _imports(
        venv / "bin" / "python", "import alpha, beta, sys; print(beta.VERSION, sys.prefix != sys.base_prefix)"
    )
    assert out.stdout.split() == ["1.1", "True"], out
    assert _imports(system, "import alpha").returncode != 0  # the system python is untouched
    again = run_install_sh(bundle, system, "--venv", str(venv))
    assert again.returncode == 2 and "already exists" in again.stderr


def test_failure_halfway_says_what_changed_and_rollback_restores(index, wheels, tmp_path):
    """pip failed partway and left 5 packages installed, setuptools upgraded, no word of it."""
    old = wheels("beta==1.0", "-o", "old", index_url=index.url)
    assert old.returncode == 0, old
    r = wheels("zbroken==1.0", "-o", "b", index_url=index.url)
    assert r.returncode == 0, r
    python = make_venv(tmp_path / "venv")
    state = {"MLOPS_BUNDLE_STATE": str(tmp_path / "state")}
    assert run_install_sh(wheels.work / "old", python).returncode == 0
    env = dict(HOSTILE_ENV, PATH="/usr/bin:/bin", PYTHON=str(python), HOME=str(tmp_path), **state)
    inst = subprocess.run(
        ["sh", str(wheels.work / "b" / "install.sh")], capture_output=True, text=True, env=env, timeout=600
    )
    assert inst.returncode == 1, inst
    assert "the install failed partway; so far it installed" in inst.stderr
    assert "changed 1: beta 1.0 -> 1.1" in inst.stderr and "alpha" in inst.stderr
    assert "sh install.sh --rollback" in inst.stderr
    assert _imports(python, "import beta; print(beta.VERSION)").stdout.strip() == "1.1"
    back = subprocess.run(
        ["sh", str(wheels.work / "b" / "install.sh"), "--rollback"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert back.returncode == 0, back
    assert _imports(python, "import beta; print(beta.VERSION)").stdout.strip() == "1.0"
    for gone in ("alpha", "delta"):
        assert _imports(python, f"import {gone}").returncode != 0, gone
    freeze = subprocess.run(
        [str(python), "-m", "pip", "--isolated", "freeze"],
        capture_output=True,
        text=True,
        env={"PIP_CONFIG_FILE": "/dev/null"},
    )
    assert freeze.stdout.split() == ["beta==1.0"], freeze


def test_failure_halfway_into_a_new_venv_removes_it(index, wheels, tmp_path):
    r = wheels("zbroken==1.0", "-o", "b", index_url=index.url)
    assert r.returncode == 0, r
    venv = tmp_path / "new-venv"
    inst = run_install_sh(wheels.work / "b", Path(sys.executable), "--venv", str(venv))
    assert inst.returncode == 1 and "the half-made venv" in inst.stderr and "was removed" in inst.stderr, inst
    assert not venv.exists()


def test_with_pip_runs_the_bundled_pip_but_never_replaces_a_system_pip(index, wheels, tmp_path):
    if "pip" not in index.projects:
        pytest.skip("this Python's ensurepip bundles no pip wheel to serve")
    r = wheels("alpha==1.0", "--with-pip", "-o", "wp", index_url=index.url)
    assert r.returncode == 0, r
    system = copied_python(tmp_path / "sys", managed=False)  # no pip at all, not a venv
    inst = run_install_sh(wheels.work / "wp", system)
    assert inst.returncode == 0, inst.stderr + inst.stdout
    assert "the bundled pip is not installed into" in inst.stderr
    assert _imports(system, "import alpha").returncode == 0
    assert _imports(system, "import pip").returncode != 0


@pytest.mark.skipif(not list(PYENV.glob("3.10.*/bin/python3.10")), reason=f"no CPython 3.10 under {PYENV}")
def test_check_install_uses_an_interpreter_of_another_minor(index, wheels):
    assert sys.version_info[:2] != (3, 10)
    r = wheels("alpha==1.0", "--python", "3.10", "--check-install", "-o", "ci310", "--json", index_url=index.url)
    assert r.returncode == 0, r
    assert {p["name"] for p in r.json()["packages"]} >= {"alpha", "gamma"}  # gamma: python_version < "3.11"


def _new_pip() -> list[str]:
    """This test environment's pip (>= 25.1, from the test extra) to run against other venvs."""
    import pip
    from packaging.version import Version

    if Version(pip.__version__) < Version("25.1"):
        pytest.skip(f"pip {pip.__version__} here reads no pylock.toml (needs >= 25.1: pip install -e '.[test]')")
    return [sys.executable, "-m", "pip", "--isolated"]


def test_pylock_installs_offline_with_pip_and_with_uv(index, wheels, tmp_path):
    r = wheels("alpha==1.0", "omega[fast]==1.0", "-o", "lk", "--json", index_url=index.url)
    assert r.returncode == 0, r
    bundle = wheels.work / "lk"
    (target,) = r.json()["targets"]
    lock = bundle / target["pylock"]
    assert lock.name.startswith("pylock.") and "." not in lock.name[len("pylock.") : -len(".toml")]
    import tomllib

    doc = tomllib.loads(lock.read_text())
    assert doc["lock-version"] == "1.0" and {p["name"] for p in doc["packages"]} == {
        p["name"] for p in r.json()["packages"]
    }
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PIP_CONFIG_FILE": "/dev/null", "PIP_NO_INDEX": "1"}
    py_pip = make_venv(tmp_path / "by-pip")
    inst = subprocess.run(
        [*_new_pip(), "--python", str(py_pip), "install", "--no-index", "-r", str(lock)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert inst.returncode == 0, inst.stderr
    assert _imports(py_pip, "import alpha, beta, delta, omega, gamma").returncode == 0
    from uv import find_uv_bin

    py_uv = make_venv(tmp_path / "by-uv")
    inst = subprocess.run(
        [find_uv_bin(), "pip", "install", "--offline", "--no-config", "--python", str(py_uv), "-r", str(lock)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert inst.returncode == 0, inst.stderr
    assert _imports(py_uv, "import alpha, beta, delta, omega, gamma").returncode == 0


def test_simple_index_in_the_bundle_serves_pip_and_uv_offline(index, wheels, tmp_path):
    r = wheels("alpha==1.0", "-o", "sx", index_url=index.url)
    assert r.returncode == 0, r
    bundle = wheels.work / "sx"
    url = (bundle / "simple").as_uri()
    assert "simple/index.html" in {e["path"] for e in manifest(bundle)["files"]}
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PIP_CONFIG_FILE": "/dev/null"}
    py_pip = make_venv(tmp_path / "by-pip")
    inst = subprocess.run(
        [str(py_pip), "-m", "pip", "install", "--index-url", url, "alpha==1.0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert inst.returncode == 0, inst.stderr
    assert _imports(py_pip, "import alpha, beta, delta").returncode == 0
    from uv import find_uv_bin

    py_uv = make_venv(tmp_path / "by-uv")
    inst = subprocess.run(
        [find_uv_bin(), "pip", "install", "--no-config", "--index-url", url, "--python", str(py_uv), "alpha==1.0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert inst.returncode == 0, inst.stderr
    assert _imports(py_uv, "import alpha, beta, delta").returncode == 0
