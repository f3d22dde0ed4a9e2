"""Cross-target resolution and file choice, JSON and HTML index pages, several targets."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from packaging.utils import parse_wheel_filename

from mlops_cli.wheels import targets as T

from .conftest import make_venv, run_install_sh

PY310 = Path.home() / ".pyenv/versions/3.10.13/bin/python3.10"


@pytest.mark.parametrize("flavour", ["json", "html"])
def test_py310_aarch64_bundle_has_what_that_target_needs(flavour, index, html_index, wheels):
    idx = index if flavour == "json" else html_index
    before = dict(idx.served)
    r = wheels(
        "alpha==1.0",
        "plat",
        "--python",
        "3.10",
        "--platform",
        "manylinux_2_17_aarch64",
        "-o",
        "arm",
        "--json",
        index_url=idx.url,
    )
    assert r.returncode == 0, r
    doc = r.json()
    served = {k: idx.served[k] - before[k] for k in before}
    assert served["json" if flavour == "json" else "html"] > 0 and served["html" if flavour == "json" else "json"] == 0
    pkgs = {p["name"]: p for p in doc["packages"]}
    # target markers, not the host's: gamma (python < 3.11) is in, winonly (win32) is out
    assert set(pkgs) == {"alpha", "beta", "delta", "gamma", "plat"}
    assert pkgs["plat"]["filename"] == "plat-1.0-cp310-cp310-manylinux_2_17_aarch64.manylinux2014_aarch64.whl"
    (target,) = doc["targets"]
    assert target["python"] == "3.10" and target["arch"] == "aarch64" and target["markers"]["python_version"] == "3.10"
    accepted = set(T.from_flags("3.10", "manylinux_2_17_aarch64", T.from_preset("ubuntu22.04")).tags())
    for p in doc["packages"]:
        tags = {str(t) for t in parse_wheel_filename(p["filename"])[3]}
        assert tags & accepted, f"{p['filename']} is not installable on cp310 aarch64"
    req = (wheels.work / "arm" / target["requirements_file"]).read_text()
    assert "gamma==1.0" in req and "winonly" not in req


def test_several_targets_share_pure_wheels(index, wheels):
    r = wheels(
        "alpha==1.0",
        "plat",
        "--target",
        "ubuntu22.04",
        "--target",
        "ubuntu22.04-aarch64",
        "--target",
        "debian12",
        "-o",
        "multi",
        "--json",
        index_url=index.url,
    )
    assert r.returncode == 0, r
    doc = r.json()
    bundle = wheels.work / "multi"
    files = sorted(p.name for p in (bundle / "wheels").iterdir())
    assert len(files) == len(set(files)) == len(doc["packages"])
    by_file = {p["filename"]: p for p in doc["packages"]}
    assert sorted(by_file["alpha-1.0-py3-none-any.whl"]["targets"]) == [
        "debian12",
        "ubuntu22.04",
        "ubuntu22.04-aarch64",
    ]
    assert by_file["gamma-1.0-py3-none-any.whl"]["targets"] == ["ubuntu22.04", "ubuntu22.04-aarch64"]  # 3.10 only
    plats = sorted(f for f in files if f.startswith("plat-"))
    assert plats == [
        "plat-1.0-cp310-cp310-manylinux_2_17_aarch64.manylinux2014_aarch64.whl",
        "plat-1.0-cp310-cp310-manylinux_2_28_x86_64.whl",
        "plat-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    ]
    names = sorted(p.name for p in bundle.glob("requirements-*.txt"))
    assert names == [
        "requirements-debian12.txt",
        "requirements-ubuntu22.04-aarch64.txt",
        "requirements-ubuntu22.04.txt",
    ]
    needs = {t["name"]: t["requires_glibc"] for t in doc["targets"]}
    assert needs == {"ubuntu22.04": "2.28", "ubuntu22.04-aarch64": "2.17", "debian12": "2.17"}


def test_no_wheel_for_an_old_glibc_target(index, wheels):
    # plat's only cp310 x86_64 wheel needs glibc 2.28: Ubuntu 20.04 (2.31) with Python 3.10 is fine ...
    r = wheels("plat", "--target", "ubuntu20.04", "--python", "3.10", "--json", index_url=index.url)
    assert r.returncode == 0, r
    assert r.json()["targets"][0]["requires_glibc"] == "2.28"
    # ... a manylinux2014 (glibc 2.17) box is not: one clear line, exit 1, nothing written
    r2 = wheels("plat", "--python", "3.10", "--platform", "manylinux2014_x86_64", "-o", "old", index_url=index.url)
    assert r2.returncode == 1, r2
    (line,) = [ln for ln in r2.stderr.splitlines() if ln.startswith("error:")]
    assert "plat==1.0 has no wheels with a matching platform tag" in line and "Traceback" not in r2.stderr
    assert not (wheels.work / "old").exists()
    assert [p.name for p in wheels.work.iterdir()] == ["plat-bundle"]  # only the first, good bundle


@pytest.mark.skipif(not PY310.exists(), reason="no CPython 3.10 at ~/.pyenv/versions/3.10.13 to install into")
def test_py310_bundle_installs_on_a_real_python310(index, wheels, tmp_path):
    r = wheels("alpha==1.0", "plat", "--python", "3.10", "-o", "py310", index_url=index.url)
    assert r.returncode == 0, r
    python = make_venv(tmp_path / "venv310", str(PY310))
    inst = run_install_sh(wheels.work / "py310", python)
    assert inst.returncode == 0, inst.stderr + inst.stdout
    out = subprocess.run([str(python), "-c", "import gamma, plat; print(plat.TAG)"], capture_output=True, text=True)
    assert out.stdout.strip() == "cp310-cp310-manylinux_2_28_x86_64", out


def test_target_file_from_the_far_machine(index, wheels, mlops, tmp_path):
    probe = mlops("wheels", "target")
    assert probe.returncode == 0, probe
    data = json.loads(probe.stdout)
    assert data["format"] == "mlops-wheels-target/1" and data["tags"]
    # pretend the far machine is a 3.10 aarch64 box: the exact tag list travels with it
    data.update(
        python="3.10",
        python_full_version="3.10.12",
        machine="aarch64",
        glibc="2.35",
        name="farbox",
        tags=[t.replace("cp311", "cp310").replace("x86_64", "aarch64") for t in data["tags"]],
    )
    f = tmp_path / "farbox.json"
    f.write_text(json.dumps(data))
    r = wheels("alpha==1.0", "plat", "--target-file", str(f), "-o", "far", "--json", index_url=index.url)
    assert r.returncode == 0, r
    doc = r.json()
    assert doc["targets"][0]["name"] == "farbox"
    assert {p["name"] for p in doc["packages"]} >= {"gamma", "plat"}
    assert (wheels.work / "far" / "requirements-farbox.txt").is_file()


def test_docs_snippet_is_the_probe(index):
    """docs/wheels.md carries the stdlib-only probe; it must be the one the tool runs."""
    from mlops_cli.wheels.probe import PROBE_SOURCE

    doc = (Path(__file__).resolve().parents[2] / "docs" / "wheels.md").read_text()
    assert PROBE_SOURCE.strip() in doc
    out = subprocess.run(["python3", "-I", "-c", PROBE_SOURCE], capture_output=True, text=True)
    T.parse_target_file(out.stdout, "snippet")


def test_preset_tags_and_uv_platforms():
    t = T.from_preset("rhel8-aarch64")
    assert (t.python, t.arch, t.glibc, t.uv_platform()) == ("3.9", "aarch64", "2.28", "aarch64-manylinux_2_28")
    tags = T.from_preset("ubuntu22.04").tags()
    assert tags[0] == "cp310-cp310-manylinux_2_35_x86_64"
    assert "cp310-cp310-manylinux2014_x86_64" in tags and "cp310-abi3-manylinux_2_17_x86_64" in tags
    assert "py3-none-any" in tags
    # linux_x86_64 ranks last within each interpreter/ABI, as pip on that machine ranks it
    assert tags.index("cp310-cp310-linux_x86_64") == tags.index("cp310-abi3-manylinux_2_35_x86_64") - 1
    # between uv's levels: the next one up (uv sees every wheel the target takes; bundle.py excludes the rest)
    assert T.from_flags("3.10", "manylinux_2_30_x86_64", t).uv_platform() == "x86_64-manylinux_2_31"
    assert T.from_flags("3.10", "manylinux_2_27_x86_64", t).uv_platform() == "x86_64-manylinux_2_28"
    assert T.from_flags("3.6", "manylinux2010_x86_64", t).uv_platform() == "x86_64-manylinux_2_17"
    with pytest.raises(T.UsageError):
        T.from_preset("ubuntu18.10")


def test_a_mac_or_musl_host_can_still_build_for_linux_targets(monkeypatch):
    from mlops_cli.wheels import cli, probe

    mac = {
        "format": "mlops-wheels-target/1",
        "implementation": "cpython",
        "python": "3.12",
        "python_full_version": "3.12.4",
        "system": "Darwin",
        "machine": "arm64",
        "libc": None,
        "glibc": None,
    }
    monkeypatch.setattr(probe, "probe_this_interpreter", lambda with_tags=True: dict(mac))
    chosen, host = cli._targets(["ubuntu22.04-aarch64"], None, [], [])
    assert host is None and [t.name for t in chosen] == ["ubuntu22.04-aarch64"]
    with pytest.raises(T.UsageError, match="name the target instead"):  # --platform alone takes Python from here
        cli._targets([], None, ["manylinux_2_28_x86_64"], [])
    chosen, _ = cli._targets([], "3.11", ["manylinux_2_28_x86_64"], [])
    assert [t.name for t in chosen] == ["cp311-manylinux_2_28_x86_64"]
    with pytest.raises(T.UsageError, match="only CPython on Linux.*name the target instead"):
        cli._targets([], None, [], [])


_GOOD = {
    "format": "mlops-wheels-target/1",
    "implementation": "cpython",
    "system": "Linux",
    "libc": "glibc",
    "python": "3.11",
    "machine": "x86_64",
    "glibc": "2.36",
}


@pytest.mark.parametrize(
    "change, words",
    [
        ({"machine": ["x86_64"]}, "machine must be a string"),
        ({"glibc": "abc"}, "glibc must look like 2.35"),
        ({"tags": "cp311-cp311-manylinux_2_36_x86_64"}, "tags must be a list of strings"),
        ({"name": 7}, "name must be a string"),
    ],
)
def test_malformed_target_file_is_exit_2_not_a_crash(change, words, index, wheels):
    (wheels.work / "box.json").write_text(json.dumps(dict(_GOOD, **change)))
    r = wheels("alpha", "--target-file", "box.json", "-o", "out", "--json", index_url=index.url)
    assert r.returncode == 2, r
    assert r.stderr.startswith("error: box.json: malformed target file") and words in r.stderr, r.stderr
    assert r.no_report() and not (wheels.work / "out").exists()


def test_binary_target_file_is_exit_2(index, wheels):
    (wheels.work / "box.json").write_bytes(b"\xff\xfe\x00")
    r = wheels("alpha", "--target-file", "box.json", "-o", "out", index_url=index.url)
    assert r.returncode == 2 and r.stderr.startswith("error: cannot read target file box.json: not UTF-8"), r


def test_target_file_with_a_three_part_glibc_is_accepted():
    assert T.from_probe(dict(_GOOD, glibc="2.28.9000"), "box.json").glibc_minor == 28


@pytest.mark.parametrize("python", ["3.99", "3.1", "3.5"])
def test_python_version_that_is_no_cpython_release_is_exit_2(python, mlops, tmp_path):
    # uv resolves for any number; a typo must not become a bundle no interpreter can install.
    r = mlops("wheels", "anyio", "--python", python, "--platform", "manylinux_2_28_x86_64", "-o", str(tmp_path / "b"))
    assert r.returncode == 2, r
    assert r.stderr.splitlines()[0] == (
        f"error: Python {python} is not a CPython release mlops can build for (3.6 to 3.16)"
    )
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("python", ["3.6", "3.10", "3.16"])
def test_python_versions_in_range_are_accepted(python):
    assert T.from_flags(python, "manylinux_2_28_aarch64", None).python == python
