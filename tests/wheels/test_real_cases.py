"""Real cases from pip, uv and manylinux issues and from the real index, kept verbatim where
marked, to test the class of problem (wheel tags a far side accepts, the pip there, PEP 668),
not one example.

Sources (fetched 2026-11-30 with the search tool or from pypi.org's JSON API):
- pypa/manylinux#1199: `pip debug` in quay.io/pypa/manylinux2014_aarch64, cp39 (verbatim tags).
- enola-labs/enola#280: "Installing 0.4.14 on Rocky 8 failed with 'no matching distribution
  found' ... pip only learned the PEP 600 manylinux_<major>_<minor> spelling in 20.3, and RHEL
  and Rocky 8 ship 20.2.4".
- aws/aws-graviton-getting-started#23 and pypa/manylinux#338: pip < 19.3 cannot install
  manylinux2014 wheels.
- https://pypi.org/simple/cryptography/ (PEP 691 JSON): cryptography 44.0.0's cp39-abi3 Linux
  wheel names and their requires-python `!=3.9.0,!=3.9.1,>=3.7` (verbatim).
- https://pypi.org/simple/pandas/ : pandas 2.3.3 has cp310 Linux wheels only for glibc 2.24/2.28
  (verbatim names); pandas 2.3.2 and numpy 2.2.6 have manylinux2014 ones (names from a bundle
  built from pypi.org on that date).
- raspiblitz/raspiblitz#4153 (Debian 12's /usr/lib/python3.11/EXTERNALLY-MANAGED, first lines
  verbatim) and pypa/pip#11820 (pip's rendering of it).
"""

from __future__ import annotations

import pytest

from mlops_cli.wheels import bundle_tool
from mlops_cli.wheels import targets as T
from mlops_cli.wheels.choose import choose_file
from mlops_cli.wheels.index import IndexFile
from mlops_cli.wheels.plan import required_glibc, required_pip

# pypa/manylinux#1199, verbatim (the first 10 of 75; pip on that machine ranks `linux_*` below
# the manylinux tags of each interpreter/ABI, and so do we).
PIP_DEBUG_MANYLINUX2014_AARCH64_CP39 = """\
  cp39-cp39-manylinux_2_17_aarch64
  cp39-cp39-manylinux2014_aarch64
  cp39-cp39-linux_aarch64
  cp39-abi3-manylinux_2_17_aarch64
  cp39-abi3-manylinux2014_aarch64
  cp39-abi3-linux_aarch64
  cp39-none-manylinux_2_17_aarch64
  cp39-none-manylinux2014_aarch64
  cp39-none-linux_aarch64
  cp38-abi3-manylinux_2_17_aarch64"""

# pypi.org/simple/cryptography/, verbatim: 44.0.0's cp39-abi3 Linux glibc wheels.
CRYPTOGRAPHY_44 = [
    "cryptography-44.0.0-cp39-abi3-manylinux_2_17_aarch64.manylinux2014_aarch64.whl",
    "cryptography-44.0.0-cp39-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    "cryptography-44.0.0-cp39-abi3-manylinux_2_28_aarch64.whl",
    "cryptography-44.0.0-cp39-abi3-manylinux_2_28_x86_64.whl",
    "cryptography-44.0.0-cp39-abi3-manylinux_2_34_aarch64.whl",
]
CRYPTOGRAPHY_REQUIRES_PYTHON = "!=3.9.0,!=3.9.1,>=3.7"
# pypi.org/simple/pandas/, verbatim: 2.3.3's cp310 glibc wheels.
PANDAS_233_CP310 = [
    "pandas-2.3.3-cp310-cp310-manylinux_2_24_aarch64.manylinux_2_28_aarch64.whl",
    "pandas-2.3.3-cp310-cp310-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
]


def _files(names, requires_python=None):
    return [
        IndexFile(n, f"https://files.example/{n}", "0" * 64, requires_python, False, None, None, "i") for n in names
    ]


def test_our_manylinux2014_aarch64_tags_are_pips():
    ours = T.from_flags("3.9", "manylinux2014_aarch64", None).tags()
    pips = [t.strip() for t in PIP_DEBUG_MANYLINUX2014_AARCH64_CP39.splitlines()]
    assert ours[: len(pips)] == pips


@pytest.mark.parametrize(
    "preset, expected",
    [
        ("rhel9", "cryptography-44.0.0-cp39-abi3-manylinux_2_34_aarch64.whl"),
        ("rhel8", "cryptography-44.0.0-cp39-abi3-manylinux_2_28_aarch64.whl"),
        ("debian11", "cryptography-44.0.0-cp39-abi3-manylinux_2_28_aarch64.whl"),
    ],
)
def test_cryptography_on_every_python39_preset(preset, expected):
    target = T.from_preset(preset + "-aarch64")
    files = _files(CRYPTOGRAPHY_44, CRYPTOGRAPHY_REQUIRES_PYTHON)
    c = choose_file(files, "cryptography", "44.0.0", target.tags(), target.markers()["python_full_version"])
    assert c.file is not None and c.file.filename == expected and not c.needs_build
    # held to Python 3.9.0, as before the fix, no wheel fits
    c0 = choose_file(files, "cryptography", "44.0.0", target.tags(), "3.9.0")
    assert c0.file is None and c0.problem


def test_pandas_233_has_no_wheel_for_manylinux2014_and_is_never_built_here():
    target = T.from_flags("3.10", "manylinux2014_x86_64", None)
    c = choose_file(_files(PANDAS_233_CP310 + ["pandas-2.3.3.tar.gz"]), "pandas", "2.3.3", target.tags(), "3.10.99")
    assert c.file is None and "has no wheel for this target" in c.problem
    ok = choose_file(
        _files(["pandas-2.3.2-cp310-cp310-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"]),
        "pandas",
        "2.3.2",
        target.tags(),
        "3.10.99",
    )
    assert ok.file is not None


@pytest.mark.parametrize(
    "names, pip, glibc",
    [
        (["numpy-2.2.6-cp310-cp310-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"], "19.3", "2.17"),
        (["cffi-2.0.0-cp39-cp39-manylinux2014_x86_64.manylinux_2_17_x86_64.whl"], "19.3", "2.17"),
        (["enola-0.4.14-cp311-cp311-manylinux_2_17_x86_64.whl"], "20.3", "2.17"),  # enola#280's single tag
        (["cryptography-44.0.0-cp39-abi3-manylinux_2_28_x86_64.whl"], "20.3", "2.28"),
        (["x-1.0-cp36-cp36m-manylinux2010_x86_64.whl"], "19.0", "2.12"),
        (["six-1.17.0-py2.py3-none-any.whl"], None, None),
    ],
)
def test_the_pip_a_wheel_needs_on_the_far_side(names, pip, glibc):
    assert required_pip(names) == pip and required_glibc(names) == glibc


def test_rhel8s_pip_2024_is_refused_for_pep600_only_wheels_and_told_to_use_with_pip():
    facts = {"python": "3.9", "machine": "x86_64", "glibc": "2.28", "pip": "20.2.4", "executable": "/usr/bin/python3.9"}
    single = {"name": "rocky8", "python": "3.9", "arch": "x86_64", "requires_glibc": "2.17", "requires_pip": "20.3"}
    why = bundle_tool.target_fits(single, facts)
    assert why and "pip 20.2.4 is too old" in why and "--with-pip" in why
    dual = dict(single, requires_pip="19.3")
    assert bundle_tool.target_fits(dual, facts) is None
    # with the bundled pip wheel (--with-pip) the target fits: install.sh runs that pip
    assert bundle_tool.target_fits(single, facts, have_pip_wheel=True) is None


# raspiblitz#4153: the first lines of Debian 12's EXTERNALLY-MANAGED, verbatim; the rest of the
# message as pip renders it (pip#11820), re-indented as the file holds it.
DEBIAN12_EXTERNALLY_MANAGED = """\
[externally-managed]
Error=To install Python packages system-wide, try apt install
 python3-xyz, where xyz is the package you are trying to
 install.
 \n If you wish to install a non-Debian-packaged Python package,
 create a virtual environment using python3 -m venv path/to/venv.
 Then use path/to/venv/bin/python and path/to/venv/bin/pip. Make
 sure you have python3-full installed.
"""


def test_pep668_marker_is_what_debian_ships(tmp_path, monkeypatch):
    """The preflight looks where Debian puts it: the stdlib folder, outside a venv only."""
    import sys
    import sysconfig

    (tmp_path / "EXTERNALLY-MANAGED").write_text(DEBIAN12_EXTERNALLY_MANAGED)
    monkeypatch.setattr(sysconfig, "get_path", lambda name, *a, **k: str(tmp_path) if name == "stdlib" else "")
    monkeypatch.setattr(sys, "base_prefix", sys.prefix)
    assert bundle_tool.externally_managed() is True
    monkeypatch.setattr(sys, "base_prefix", "/usr")  # a venv made from it is not managed
    assert bundle_tool.externally_managed() is (sys.prefix == "/usr")
