"""The headline, for real: `mlops wheels swanlab==0.5.7` against the real index, then an
offline install into a fresh venv and `import swanlab`. Skipped (with the reason) offline."""

from __future__ import annotations

import subprocess

import pytest

from .conftest import make_venv, run_install_sh

pytestmark = pytest.mark.network


def _reachable(url: str) -> str | None:
    import requests

    try:
        r = requests.get(url, timeout=10)
    except requests.RequestException as exc:
        return f"{url} unreachable: {type(exc).__name__}"
    return None if r.status_code == 200 else f"{url} answered HTTP {r.status_code}"


def test_swanlab_bundle_installs_offline(wheels, tmp_path):
    why = _reachable("https://pypi.org/simple/swanlab/")
    if why:
        pytest.skip(f"the real index cannot be reached: {why}")
    r = wheels("swanlab==0.5.7", "--json")  # exactly the headline, default index and output name
    assert r.returncode == 0, r
    doc = r.json()
    bundle = wheels.work / "swanlab-0.5.7-bundle"
    assert doc["bundle"] == str(bundle) and len(doc["packages"]) >= 20
    assert any(p["name"] == "swanlab" and p["version"] == "0.5.7" for p in doc["packages"])
    python = make_venv(tmp_path / "venv")
    inst = run_install_sh(bundle, python)
    assert inst.returncode == 0, inst.stderr[-2000:]
    out = subprocess.run(
        [str(python), "-c", "import swanlab; print(swanlab.__version__)"], capture_output=True, text=True, timeout=120
    )
    assert out.stdout.strip().splitlines()[-1] == "0.5.7", out


def test_headline_text_output_says_where_and_how(wheels):
    why = _reachable("https://pypi.org/simple/swanlab/")
    if why:
        pytest.skip(f"the real index cannot be reached: {why}")
    r = wheels("swanlab==0.5.7")
    assert r.returncode == 0, r
    assert f"bundle: {wheels.work / 'swanlab-0.5.7-bundle'}" in r.stdout
    assert "sh swanlab-0.5.7-bundle/install.sh" in r.stdout


def _tags_ok(doc: dict) -> None:
    """Every file of every target is installable there: one of its tags is the target's."""
    from packaging.utils import parse_wheel_filename

    for target in doc["targets"]:
        accepted = set(target["tags"])
        for p in doc["packages"]:
            if target["name"] in p["targets"]:
                tags = {str(t) for t in parse_wheel_filename(p["filename"])[3]}
                assert tags & accepted, f"{p['filename']} does not install on {target['name']}"


def test_paramiko_for_rhel9_takes_cryptographys_wheel(wheels):
    """Issue 10 #1: RHEL 9's Python 3.9 and cryptography's !=3.9.0,!=3.9.1 (was a Rust build, exit 1)."""
    why = _reachable("https://pypi.org/simple/paramiko/")
    if why:
        pytest.skip(f"the real index cannot be reached: {why}")
    r = wheels("paramiko", "--target", "rhel9", "-o", "p", "--json")
    assert r.returncode == 0, r
    doc = r.json()
    pkgs = {p["name"]: p for p in doc["packages"]}
    assert {"paramiko", "cryptography", "bcrypt", "pynacl", "cffi"} <= set(pkgs)
    assert not any(p["built_from_sdist"] for p in doc["packages"])
    _tags_ok(doc)


def test_numpy_pandas_for_manylinux2014_take_releases_with_such_wheels(wheels):
    """Issue 10 #2: the newest numpy/pandas have no manylinux2014 wheels; pip picks numpy 2.2.6
    and pandas 2.3.2. mlops compiled numpy on the host and failed."""
    why = _reachable("https://pypi.org/simple/numpy/")
    if why:
        pytest.skip(f"the real index cannot be reached: {why}")
    r = wheels("numpy", "pandas", "--platform", "manylinux2014_x86_64", "--python", "3.10", "-o", "np", "--json")
    assert r.returncode == 0, r
    doc = r.json()
    pkgs = {p["name"]: p for p in doc["packages"]}
    assert not any(p["built_from_sdist"] for p in doc["packages"])
    assert doc["targets"][0]["requires_glibc"] == "2.17"
    from packaging.version import Version

    assert Version(pkgs["numpy"]["version"]) >= Version("2.2.6") and Version(pkgs["pandas"]["version"]) >= Version(
        "2.3.2"
    )
    _tags_ok(doc)


def _other_minor_python():
    import glob
    import os
    import sys

    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    for minor in ("3.12", "3.10", "3.13"):
        if minor == f"{sys.version_info[0]}.{sys.version_info[1]}":
            continue
        found = sorted(glob.glob(f"{root}/versions/{minor}.*/bin/python{minor}"))
        if found:
            return minor, found[-1]
    return None, None


def test_offline_install_into_a_cpython_of_another_minor(wheels, tmp_path):
    """A bundle for another Python minor than the host's, installed offline into that CPython."""
    minor, python = _other_minor_python()
    if python is None:
        pytest.skip("no CPython of another minor than this one under ~/.pyenv/versions")
    why = _reachable("https://pypi.org/simple/paramiko/")
    if why:
        pytest.skip(f"the real index cannot be reached: {why}")
    r = wheels("paramiko", "pyyaml", "--python", minor, "-o", "other", "--json")
    assert r.returncode == 0, r
    _tags_ok(r.json())
    venv_python = make_venv(tmp_path / "venv", python)
    inst = run_install_sh(wheels.work / "other", venv_python)
    assert inst.returncode == 0, inst.stderr[-2000:]
    out = subprocess.run(
        [str(venv_python), "-c", "import sys, paramiko, yaml, cryptography; print(sys.version_info[:2])"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0 and out.stdout.strip() == str(tuple(int(x) for x in minor.split("."))), out
