"""Bundles from the loopback index, installed with no index into fresh venvs by install.sh."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

from .conftest import make_venv, manifest, run_install_sh

PLAT_FOR_HOST = {
    (3, 10): "plat-1.0-cp310-cp310-manylinux_2_28_x86_64.whl",
    (3, 11): "plat-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
}.get(sys.version_info[:2])


def _names(doc) -> dict[str, dict]:
    return {p["name"]: p for p in doc["packages"]}


@pytest.mark.skipif(
    PLAT_FOR_HOST is None or platform.machine() != "x86_64",
    reason="the test index has plat wheels for CPython 3.10/3.11 on x86_64 only",
)
def test_host_bundle_installs_offline_and_verifies(index, wheels, tmp_path):
    r = wheels("alpha==1.0", "plat", "-o", "out", "--json", index_url=index.url)
    assert r.returncode == 0, r
    doc = r.json()
    bundle = wheels.work / "out"
    assert doc["bundle"] == str(bundle)
    for key in ("targets", "packages", "downloaded_bytes", "cache_hits", "seconds"):
        assert key in doc
    pkgs = _names(doc)
    # chain resolved (beta 1.1 pulls delta), host markers: gamma only below 3.11, no winonly on linux
    assert set(pkgs) == {"alpha", "beta", "delta", "plat"} | ({"gamma"} if sys.version_info < (3, 11) else set()), pkgs
    assert pkgs["beta"]["version"] == "1.1"
    assert pkgs["plat"]["filename"] == PLAT_FOR_HOST
    assert doc["downloaded_bytes"] == sum(p["size"] for p in doc["packages"]) and doc["cache_hits"] == 0
    assert sorted(p.name for p in (bundle / "wheels").iterdir()) == sorted(p["filename"] for p in doc["packages"])
    (req_file,) = bundle.glob("requirements-*.txt")
    text = req_file.read_text()
    for p in doc["packages"]:
        assert f"{p['name']}=={p['version']} \\\n    --hash=sha256:{p['sha256']}" in text
    assert r.stdout == "" or r.stdout.startswith("{")
    # the far side: a fresh venv, no index, hostile pip environment variables
    python = make_venv(tmp_path / "venv")
    inst = run_install_sh(bundle, python)
    assert inst.returncode == 0, inst.stderr + inst.stdout
    assert "No broken requirements found" in inst.stdout
    out = subprocess.run(
        [str(python), "-c", "import alpha, beta, delta, plat; print(beta.VERSION, plat.TAG)"],
        capture_output=True,
        text=True,
    )
    assert out.stdout.split() == ["1.1", PLAT_FOR_HOST[len("plat-1.0-") : -len(".whl")]], out


def test_install_sh_verify_catches_a_tampered_wheel(index, wheels, tmp_path, mlops):
    r = wheels("alpha==1.0", "-o", "b", index_url=index.url)
    assert r.returncode == 0, r
    bundle = wheels.work / "b"
    python = make_venv(tmp_path / "venv")
    ok = run_install_sh(bundle, python, "--verify")
    assert ok.returncode == 0 and "verified" in ok.stderr, ok
    assert mlops("wheels", "--verify", str(bundle)).returncode == 0
    assert mlops("wheels", "verify", str(bundle)).returncode == 0  # the word form
    usage = run_install_sh(bundle, python, "--help")
    assert usage.returncode == 0 and "--verify" in usage.stdout and "set -eu" not in usage.stdout
    assert run_install_sh(bundle, python, "--bogus").returncode == 2
    wheel = next((bundle / "wheels").glob("beta-*.whl"))
    data = bytearray(wheel.read_bytes())
    data[-10] ^= 0xFF
    wheel.write_bytes(bytes(data))
    bad = run_install_sh(bundle, python, "--verify")
    assert bad.returncode == 1 and f"sha256 mismatch: wheels/{wheel.name}" in bad.stderr, bad
    # a full install refuses too, and installs nothing
    inst = run_install_sh(bundle, python)
    assert inst.returncode == 1
    probe = subprocess.run([str(python), "-c", "import alpha"], capture_output=True)
    assert probe.returncode != 0
    v = mlops("wheels", "--verify", str(bundle), "--json")
    assert v.returncode == 1 and v.json()["ok"] is False
    assert any(wheel.name in p for p in v.json()["problems"])
    # an extra file dropped into wheels/ is caught as well
    wheel.write_bytes(b"")
    (bundle / "wheels" / "evil-1.0-py3-none-any.whl").write_bytes(b"x")
    v2 = mlops("wheels", "--verify", str(bundle), "--json")
    assert any("evil" in p for p in v2.json()["problems"])


def test_preflight_refuses_an_interpreter_the_bundle_is_not_for(index, wheels, tmp_path):
    r = wheels("alpha==1.0", "--target", "ubuntu22.04-aarch64", "-o", "arm", index_url=index.url)
    assert r.returncode == 0, r
    python = make_venv(tmp_path / "venv")
    inst = run_install_sh(wheels.work / "arm", python)
    assert inst.returncode == 1
    assert "does not match this bundle" in inst.stderr and "ubuntu22.04-aarch64" in inst.stderr, inst.stderr


def test_pure_sdist_is_built_into_a_wheel_and_installs(index, wheels, tmp_path):
    r = wheels("puresd==1.0", "-o", "sd", "--json", index_url=index.url)
    assert r.returncode == 0, r
    (pkg,) = r.json()["packages"]
    assert pkg["built_from_sdist"] is True and pkg["filename"] == "puresd-1.0-py3-none-any.whl"
    assert pkg["sdist"]["filename"] == "puresd-1.0.tar.gz"
    python = make_venv(tmp_path / "venv")
    inst = run_install_sh(wheels.work / "sd", python)
    assert inst.returncode == 0, inst.stderr
    out = subprocess.run([str(python), "-c", "import puresd; print(puresd.BUILT)"], capture_output=True, text=True)
    assert out.stdout.strip() == "True"


def test_check_install_proves_the_bundle_complete(index, wheels):
    r = wheels("alpha==1.0", "--check-install", "-o", "ci", "--json", index_url=index.url)
    assert r.returncode == 0, r
    assert (wheels.work / "ci" / "manifest.json").is_file()
    assert json.loads((wheels.work / "ci" / "manifest.json").read_text())["inputs"]["requirements"] == ["alpha==1.0"]


def test_requirements_file_with_extras_and_several_requirements(index, wheels):
    (wheels.work / "reqs.txt").write_text("# our stack\nomega[fast]==1.0\n")
    r = wheels("alpha==1.0", "yanky<1", "-r", "reqs.txt", "-o", "stack", "--json", index_url=index.url)
    assert r.returncode == 0, r
    pkgs = {p["name"]: p["version"] for p in r.json()["packages"]}
    assert pkgs == {"alpha": "1.0", "beta": "1.1", "delta": "2.0", "omega": "1.0", "gamma": "1.0", "yanky": "0.9"}
    m = manifest(wheels.work / "stack")
    assert m["inputs"]["requirements"] == ["alpha==1.0", "yanky<1"] and m["inputs"]["requirement_files"] == ["reqs.txt"]


def test_uv_warnings_reach_the_user(index, wheels):
    r = wheels("alpha[nosuch]==1.0", "-o", "w", "--json", index_url=index.url)
    assert r.returncode == 0, r
    assert "warning: The package `alpha==1.0` does not have an extra named `nosuch`" in r.stderr
    assert any("nosuch" in w for w in r.json()["warnings"])


def test_with_pip_installs_where_there_is_no_pip(index, wheels, tmp_path):
    if "pip" not in index.projects:
        pytest.skip("this Python's ensurepip bundles no pip wheel to serve")
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True, timeout=300)
    python = bare / "bin" / "python"
    r = wheels("alpha==1.0", "-o", "nopip", index_url=index.url)
    assert r.returncode == 0, r
    refused = run_install_sh(wheels.work / "nopip", python)
    assert refused.returncode == 1 and "no pip in this interpreter" in refused.stderr, refused
    r2 = wheels("alpha==1.0", "--with-pip", "-o", "withpip", "--json", index_url=index.url)
    assert r2.returncode == 0, r2
    assert "pip" in {p["name"] for p in r2.json()["packages"]}
    inst = run_install_sh(wheels.work / "withpip", python)
    assert inst.returncode == 0, inst.stderr + inst.stdout
    assert "using the bundled wheels/pip-" in inst.stderr and "No broken requirements found" in inst.stdout
    assert subprocess.run([str(python), "-c", "import alpha, pip"]).returncode == 0
