"""Issue 10, correctness where pip succeeds: the preset's real patch release, binary-only
resolution (a version with a wheel for the target wins), presets from one data file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from packaging.utils import parse_wheel_filename

from mlops_cli.wheels import targets as T


def _accepted(target: T.Target, filename: str) -> bool:
    return bool({str(t) for t in parse_wheel_filename(filename)[3]} & set(target.tags()))


@pytest.mark.parametrize("preset", ["rhel9", "rhel8-aarch64", "debian11"])
def test_python39_presets_take_the_wheel_that_excludes_3_9_0(preset, index, wheels):
    """cryptography excludes Python 3.9.0 and 3.9.1: checked against '3.9.0', its wheel was
    refused and the sdist built on this host (a Rust build that died)."""
    r = wheels("cryptolike==1.0", "--target", preset, "-o", "b", "--json", index_url=index.url)
    assert r.returncode == 0, r
    (pkg,) = r.json()["packages"]
    assert pkg["built_from_sdist"] is False
    assert pkg["filename"] == "cryptolike-1.0-cp37-abi3-manylinux_2_28_x86_64.manylinux_2_28_aarch64.whl"
    (target,) = r.json()["targets"]
    assert target["python_full_version"] == T.preset_table()[preset.split("-")[0]]["python_full"]
    assert not target["python_full_version"].endswith((".0", ".1"))


def test_python_x_y_alone_is_not_held_to_the_first_patch_release(index, wheels):
    r = wheels(
        "cryptolike==1.0",
        "--python",
        "3.9",
        "--platform",
        "manylinux_2_28_x86_64",
        "-o",
        "b",
        "--json",
        index_url=index.url,
    )
    assert r.returncode == 0, r
    assert r.json()["packages"][0]["built_from_sdist"] is False
    # ... and an exact patch release can be given
    r = wheels(
        "cryptolike==1.0", "--python", "3.9.0", "--platform", "manylinux_2_28_x86_64", "-o", "c", index_url=index.url
    )
    assert r.returncode == 1 and "cryptolike" in r.stderr, r


def test_a_resolver_chosen_wheel_is_never_replaced_by_a_host_build(index, wheels):
    """The release has wheels, none for this target: exit 1 naming it, never a build here."""
    r = wheels(
        "cryptolike==1.0", "--python", "3.10", "--platform", "manylinux_2_17_x86_64", "-o", "b", index_url=index.url
    )
    assert r.returncode == 1, r
    assert "building" not in r.stderr and "cryptolike" in r.stderr


def test_old_glibc_gets_the_last_release_with_a_wheel_for_it(index, wheels):
    """numpy/pandas for manylinux2014: the newest release (wheels for glibc 2.28 + an sdist) was
    picked and compiled here, and failed; pip picks the last release with manylinux2014 wheels."""
    r = wheels(
        "numpylike",
        "puresd",
        "--python",
        "3.10",
        "--platform",
        "manylinux2014_x86_64",
        "-o",
        "old",
        "--json",
        index_url=index.url,
    )
    assert r.returncode == 0, r
    pkgs = {p["name"]: p for p in r.json()["packages"]}
    assert pkgs["numpylike"]["version"] == "1.0" and not pkgs["numpylike"]["built_from_sdist"]
    # a project that ships no wheel at all is still built (pure) and bundled: `pip download
    # --platform ... --only-binary :all:` cannot get such a project at all (hhk7734/python3-gpiod#33)
    assert pkgs["puresd"]["built_from_sdist"] is True
    target = T.from_flags("3.10", "manylinux2014_x86_64", None)
    for p in r.json()["packages"]:
        assert _accepted(target, p["filename"]), p["filename"]
    # --sdist refuse works for such targets too: numpylike needs no build any more
    r = wheels(
        "numpylike",
        "--python",
        "3.10",
        "--platform",
        "manylinux2014_x86_64",
        "--sdist",
        "refuse",
        "-o",
        "r",
        index_url=index.url,
    )
    assert r.returncode == 0, r


def test_presets_come_from_one_data_file_with_sources():
    table = T.preset_table()
    for name in ("debian13", "rhel10", "ubuntu26.04"):
        assert name in table
    for name, entry in table.items():
        assert entry["python_full"].startswith(entry["python"] + "."), name
        assert entry["sources"], f"{name} has no source"
        t = T.from_preset(name + "-aarch64")
        assert t.uv_platform().startswith("aarch64-manylinux_2_") and t.python_full == entry["python_full"]
    assert (T.from_preset("debian13").python, T.from_preset("debian13").glibc) == ("3.13", "2.41")
    assert (T.from_preset("rhel10").python, T.from_preset("rhel10").glibc) == ("3.12", "2.39")
    assert (T.from_preset("ubuntu26.04").python, T.from_preset("ubuntu26.04").glibc) == ("3.14", "2.43")
    assert T.from_preset("ubuntu26.04").tags()[0] == "cp314-cp314-manylinux_2_43_x86_64"
    docs = (Path(__file__).resolve().parents[2] / "docs" / "wheels.md").read_text()
    for name, entry in table.items():
        assert f"| `{name}` | {entry['python_full']} |" in docs, f"docs/wheels.md lacks {name} as in presets.json"


def test_new_presets_build(index, wheels):
    r = wheels(
        "alpha==1.0",
        "--target",
        "debian13",
        "--target",
        "rhel10",
        "--target",
        "ubuntu26.04-aarch64",
        "-o",
        "new",
        "--json",
        index_url=index.url,
    )
    assert r.returncode == 0, r
    names = {t["name"]: t for t in r.json()["targets"]}
    assert names["debian13"]["externally_managed"] is True and names["rhel10"]["externally_managed"] is False
    readme = (wheels.work / "new" / "README.txt").read_text()
    assert readme.index("--venv") < readme.index("sh install.sh    ")  # the venv comes first


def test_target_file_records_an_externally_managed_python(mlops):
    out = mlops("wheels", "target")
    assert "externally_managed" in json.loads(out.stdout)


def test_printed_install_command_uses_a_venv_for_an_externally_managed_target(index, wheels):
    r = wheels("alpha==1.0", "--target", "debian12", "-o", "d12", index_url=index.url)
    assert r.returncode == 0, r
    assert "  sh d12/install.sh --venv /opt/venv" in r.stdout, r.stdout
    r = wheels("alpha==1.0", "--target", "rhel9", "-o", "r9", index_url=index.url)
    assert "  sh r9/install.sh  " in r.stdout and "--venv /opt/venv" not in r.stdout, r.stdout


def test_uv_log_names_every_pin_while_it_resolves(index, tmp_path):
    """The head start of the downloads: the installed uv's own -v log names each package (its
    page is fetched then), the wheel it reads metadata from, and its pick, before uv exits."""
    from mlops_cli.wheels.probe import probe_this_interpreter
    from mlops_cli.wheels.resolve import resolve

    host = T.host_target(probe_this_interpreter(with_tags=False))
    (tmp_path / "r.in").write_text("alpha==1.0\nomega[fast]\n")
    hints, started = [], []
    pins, _ = resolve(
        host,
        [tmp_path / "r.in"],
        [index.url],
        tmp_path / "uv",
        on_hint=hints.append,
        on_start=lambda: started.append(len(hints)),
    )
    pinned = {(p.name, p.version) for p in pins}
    assert started == [0]  # called once, as uv starts, before any line of its log
    assert pinned <= {(h.name, h.version) for h in hints if h.selected}
    assert pinned <= {(h.name, h.version) for h in hints if h.version and not h.selected}  # the wheel it read
    assert {"beta", "delta", "gamma"} <= {h.name for h in hints if h.version is None}  # named as dependencies
