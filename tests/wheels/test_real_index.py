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
    out = subprocess.run([str(python), "-c", "import swanlab; print(swanlab.__version__)"],
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "0.5.7", out


def test_headline_text_output_says_where_and_how(wheels):
    why = _reachable("https://pypi.org/simple/swanlab/")
    if why:
        pytest.skip(f"the real index cannot be reached: {why}")
    r = wheels("swanlab==0.5.7")
    assert r.returncode == 0, r
    assert f"bundle: {wheels.work / 'swanlab-0.5.7-bundle'}" in r.stdout
    assert "sh swanlab-0.5.7-bundle/install.sh" in r.stdout
