"""The issue's "done means", as close as this x86 host gets: a bundle built here for an
aarch64 box is installed offline by its install.sh into a real aarch64 CPython (Debian 12's,
run through qemu-user), and the compiled wheels in it (pydantic-core, psutil, pyyaml) import.

Needs qemu-aarch64-static and an arm64 root (tests/wheels/make_arm64_root.sh) named by
MLOPS_TEST_ARM64_ROOT, and the real index; skipped with the reason otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import run_install_sh
from .test_real_index import _reachable

pytestmark = pytest.mark.network


@pytest.fixture
def arm64_python(tmp_path) -> Path:
    root = os.environ.get("MLOPS_TEST_ARM64_ROOT")
    qemu = shutil.which("qemu-aarch64-static")
    if not root or not Path(root, "usr/bin/python3").exists():
        pytest.skip("no arm64 root: set MLOPS_TEST_ARM64_ROOT (see tests/wheels/make_arm64_root.sh)")
    if not qemu:
        pytest.skip("qemu-aarch64-static is not installed (apt-get install qemu-user-static)")
    env = dict(os.environ, QEMU_LD_PREFIX=root)
    venv = tmp_path / "armvenv"
    # --without-pip: ensurepip would start an aarch64 child, which needs binfmt; Debian's pip
    # comes in through --system-site-packages instead.
    subprocess.run(
        [qemu, f"{root}/usr/bin/python3", "-m", "venv", "--without-pip", "--system-site-packages", str(venv)],
        check=True,
        env=env,
        timeout=300,
    )
    wrapper = tmp_path / "python-aarch64"
    wrapper.write_text(f'#!/bin/sh\nQEMU_LD_PREFIX={root} exec {qemu} {venv}/bin/python3 "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def test_aarch64_bundle_installs_on_a_real_aarch64_python(arm64_python, wheels):
    why = _reachable("https://pypi.org/simple/swanlab/")
    if why:
        pytest.skip(f"the real index cannot be reached: {why}")
    # Two aarch64 targets: install.sh must pick the one matching the interpreter (Debian 12: 3.11).
    r = wheels("swanlab==0.5.7", "--target", "ubuntu22.04-aarch64", "--target", "debian12-aarch64", "-o", "arm")
    assert r.returncode == 0, r
    inst = run_install_sh(wheels.work / "arm", arm64_python)
    assert inst.returncode == 0, inst.stderr[-2000:] + inst.stdout[-2000:]
    assert "requirements-debian12-aarch64.txt" in inst.stderr and "No broken requirements found" in inst.stdout
    code = "import platform, swanlab, pydantic_core, psutil, yaml; print(platform.machine(), swanlab.__version__)"
    out = subprocess.run([str(arm64_python), "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.split()[-2:] == ["aarch64", "0.5.7"], out.stderr[-2000:]
