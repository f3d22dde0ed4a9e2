#!/usr/bin/env python3
"""Hard (requirements, target) pairs: `mlops wheels` against the newest pip, on the real index.

For each pair: `mlops wheels ... --json` into a temporary folder, and the newest pip's
`pip download --only-binary=:all: --platform ... --python-version ... --implementation cp --abi ...`
for the same target (every manylinux level the target's glibc accepts is passed to pip, so pip
is given its best chance; pairs that need an sdist run pip without `--platform`, with the
target's own interpreter from pyenv when there is one). Recorded: served or not by each, the
files each picked, whether mlops' files are installable on the target (every file's tags among
the target's tags, computed here with `packaging.tags`, independently of mlops), and for
targets whose CPython is on this machine (this one, or ~/.pyenv/versions/X.Y.*) a real offline
install with the bundle's own `install.sh --venv` (which ends with `pip check`).

Not part of the test suite: it needs the real indexes (pypi.org, download.pytorch.org).
Each pair names why it is hard and where that comes from (its `source`).

    python benchmarks/wheels_hard.py [--only ID,ID] [--out results.jsonl] [--write] [--no-install]
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYPI = "https://pypi.org/simple"
TORCH_CPU = "https://download.pytorch.org/whl/cpu"

# Presets as the battery sees them (python X.Y, glibc, arch): only what pip needs to be told.
PRESETS = {
    "ubuntu20.04": ("3.8", "2.31", "x86_64"),
    "ubuntu22.04": ("3.10", "2.35", "x86_64"),
    "ubuntu24.04": ("3.12", "2.39", "x86_64"),
    "ubuntu26.04": ("3.14", "2.43", "x86_64"),
    "debian11": ("3.9", "2.31", "x86_64"),
    "debian12": ("3.11", "2.36", "x86_64"),
    "debian13": ("3.13", "2.41", "x86_64"),
    "rhel8": ("3.9", "2.28", "x86_64"),
    "rhel9": ("3.9", "2.34", "x86_64"),
    "rhel10": ("3.12", "2.39", "x86_64"),
}
_LEGACY = {"manylinux2014": "2.17", "manylinux2010": "2.12", "manylinux1": "2.5"}


def P(
    pid,
    reqs,
    why,
    source,
    *,
    preset=None,
    python=None,
    platform_tag=None,
    index=PYPI,
    extra=(),
    sdist=False,
    files=None,
    expect=None,
):
    """One pair. `platform_tag` with `python` is the `--python X.Y --platform TAG` form."""
    return {
        "id": pid,
        "reqs": list(reqs),
        "why": why,
        "source": source,
        "preset": preset,
        "python": python,
        "platform": platform_tag,
        "index": index,
        "extra": list(extra),
        "sdist": sdist,
        "files": files or {},
        "expect": expect,
    }


PAIRS = [
    # old glibc: CentOS 7 / Amazon Linux 2 (glibc 2.17 / 2.26) with the scientific stack
    P(
        "sci-cp38-2014",
        ["numpy", "pandas", "scipy"],
        "glibc 2.17 + py3.8: newest releases need 2_28 or py>=3.9",
        "https://github.com/pablocael/pynear/pull/69",
        python="3.8",
        platform_tag="manylinux2014_x86_64",
    ),
    P(
        "sklearn-cp39-2014-arm",
        ["scikit-learn"],
        "Amazon Linux 2 on Graviton: aarch64, glibc 2.26, py3.9",
        "https://github.com/scikit-learn/scikit-learn/pull/32603",
        python="3.9",
        platform_tag="manylinux2014_aarch64",
    ),
    P(
        "torch-cpu-2014",
        ["torch"],
        "torch CPU from the PyTorch index for glibc 2.17: recent torch needs 2_28",
        "https://github.com/pytorch/pytorch/issues/123649",
        python="3.10",
        platform_tag="manylinux2014_x86_64",
        index=TORCH_CPU,
    ),
    P(
        "torch-local-label",
        ["torch==2.5.1+cpu"],
        "local version label +cpu pinned from the PyTorch CPU index",
        "https://github.com/astral-sh/uv/issues/1497",
        preset="ubuntu22.04",
        index=TORCH_CPU,
    ),
    P(
        "torch-cpu-arm-py312",
        ["torch==2.6.0", "numpy"],
        "PyTorch CPU index, aarch64, py3.12 (no +cpu label on arm)",
        "https://github.com/pytorch/pytorch/issues/142043",
        python="3.12",
        platform_tag="manylinux_2_28_aarch64",
        index=TORCH_CPU,
        extra=[PYPI],
    ),
    P(
        "torch-pypi-arm-2014",
        ["torch<2.6", "numpy"],
        "torch from PyPI for aarch64 glibc 2.17, py3.10: 2.6+ needs 2_28",
        "https://github.com/pytorch/pytorch/issues/142043",
        python="3.10",
        platform_tag="manylinux2014_aarch64",
    ),
    P(
        "centos6-numpy-py36",
        ["numpy", "pyyaml"],
        "glibc 2.12 (CentOS 6, manylinux2010), py3.6: below uv's lowest level 2_17",
        "https://peps.python.org/pep-0571/",
        python="3.6",
        platform_tag="manylinux2010_x86_64",
    ),
    P(
        "manylinux1-py37",
        ["psutil", "msgpack"],
        "glibc 2.5 (manylinux1), py3.7",
        "https://pypi.org/project/msgpack/1.0.5/#files",
        python="3.7",
        platform_tag="manylinux1_x86_64",
    ),
    P(
        "ubuntu18-py313",
        ["numpy", "scikit-learn"],
        "glibc 2.27 (Ubuntu 18.04): wheels tagged manylinux_2_27 lie between uv's 2_17 and 2_28",
        "https://github.com/scikit-learn/scikit-learn/pull/32603",
        python="3.13",
        platform_tag="manylinux_2_27_x86_64",
    ),
    P(
        "amzn2-py310",
        ["numpy", "scipy", "pandas"],
        "glibc 2.26 (Amazon Linux 2): resolved at uv's 2_28, then 2_27/2_28-only releases excluded",
        "https://github.com/scikit-learn/scikit-learn/pull/32603",
        python="3.10",
        platform_tag="manylinux_2_26_x86_64",
    ),
    P(
        "pyarrow-rhel8",
        ["pyarrow"],
        "pyarrow ships manylinux_2_28 / 2_17 wheels; RHEL 8 = glibc 2.28, py3.9",
        "https://pypi.org/project/pyarrow/#files",
        preset="rhel8",
    ),
    P(
        "matplotlib-rhel8-arm",
        ["matplotlib"],
        "rhel8 aarch64 (py3.9): contourpy/kiwisolver wheels per arch",
        "https://pypi.org/project/contourpy/#files",
        python="3.9",
        platform_tag="manylinux_2_28_aarch64",
    ),
    # Python versions at the edges
    P(
        "pandas-py38",
        ["pandas"],
        "pandas >= 2.1 requires Python 3.9: pip picks 2.0.3 for 3.8",
        "https://github.com/apache/spark/pull/46159",
        preset="ubuntu20.04",
    ),
    P(
        "numpy-py314",
        ["numpy", "pydantic"],
        "3.14 target: numpy and pydantic-core cp314 wheels",
        "https://pypi.org/project/pydantic-core/#files",
        preset="ubuntu26.04",
    ),
    P(
        "ruamel-py314",
        ["ruamel.yaml"],
        "ruamel.yaml.clib marker python_version<'3.14' on a 3.14 target",
        "https://github.com/mjordan/islandora_workbench/issues/834",
        python="3.14",
        platform_tag="manylinux_2_28_x86_64",
    ),
    P(
        "grpc-py313-arm",
        ["grpcio", "protobuf"],
        "py3.13 on aarch64 glibc 2.17",
        "https://pypi.org/project/grpcio/#files",
        python="3.13",
        platform_tag="manylinux2014_aarch64",
    ),
    P(
        "pillow-py36",
        ["pillow", "lxml"],
        "py3.6 (RHEL 8 platform python): last releases for 3.6",
        "https://pypi.org/project/pillow/8.4.0/#files",
        python="3.6",
        platform_tag="manylinux2014_x86_64",
    ),
    P(
        "crypto-py37",
        ["cryptography", "paramiko"],
        "py3.7 glibc 2.17: abi3 wheels of an older cryptography",
        "https://github.com/pyca/cryptography/issues/5676",
        python="3.7",
        platform_tag="manylinux2014_x86_64",
    ),
    P(
        "pandas-py313-arm",
        ["pandas"],
        "py3.13 aarch64 glibc 2.17",
        "https://pypi.org/project/pandas/#files",
        python="3.13",
        platform_tag="manylinux2014_aarch64",
    ),
    # abi3
    P(
        "crypto-abi3-arm",
        ["cryptography"],
        "abi3 wheels (cp39-abi3 / cp311-abi3) for a py3.9 aarch64 box",
        "https://github.com/pyca/cryptography/issues/5629",
        python="3.9",
        platform_tag="manylinux2014_aarch64",
    ),
    P(
        "bcrypt-debian13-arm",
        ["bcrypt", "pynacl"],
        "abi3 wheels on debian13 aarch64 (py3.13)",
        "https://pypi.org/project/bcrypt/#files",
        preset="debian13-aarch64",
    ),
    P(
        "tokenizers-py39",
        ["tokenizers"],
        "tokenizers ships cp39-abi3 wheels only",
        "https://pypi.org/project/tokenizers/#files",
        python="3.9",
        platform_tag="manylinux2014_x86_64",
    ),
    P(
        "opencv-abi3",
        ["opencv-python-headless"],
        "opencv cp37-abi3 wheels, numpy for py3.10 glibc 2.17",
        "https://pypi.org/project/opencv-python-headless/#files",
        python="3.10",
        platform_tag="manylinux2014_x86_64",
    ),
    # markers and extras
    P(
        "requests-socks-rhel8",
        ["requests[socks]"],
        "extra pulling PySocks (an any wheel) on rhel8 py3.9",
        "https://pypi.org/project/PySocks/#files",
        preset="rhel8",
    ),
    P(
        "httpx-extras-py38",
        ["httpx[http2,socks]"],
        "two extras on py3.8: versions that still support 3.8",
        "https://pypi.org/project/httpx/#history",
        python="3.8",
        platform_tag="manylinux_2_28_x86_64",
    ),
    P(
        "markers-pyver",
        ["pytest", 'exceptiongroup; python_version<"3.11"', 'tomli; python_version < "3.11"'],
        "python_version markers on a 3.9 target (true) mixed with pytest's own",
        "https://github.com/pypa/pip/issues/11664",
        preset="rhel9",
    ),
    P(
        "markers-machine",
        ["orjson", 'uvloop; platform_machine=="aarch64"', 'pywin32; sys_platform=="win32"'],
        "platform_machine / sys_platform markers evaluated for an aarch64 target",
        "https://github.com/pypa/pip/issues/10050",
        preset="ubuntu22.04-aarch64",
    ),
    P(
        "uvicorn-standard",
        ["uvicorn[standard]"],
        "extra with platform markers (uvloop, httptools, watchfiles) on rhel9",
        "https://pypi.org/project/uvicorn/",
        preset="rhel9",
    ),
    # yanked releases
    P(
        "yanked-exact",
        ["requests==2.32.0"],
        "an exact pin of a yanked release (PEP 592: allowed, with a warning)",
        "https://github.com/spdx/spdx-online-tools/issues/546",
        preset="ubuntu22.04",
    ),
    P(
        "yanked-range",
        ["requests>=2.32.0,<2.32.3"],
        "a range over yanked releases: the unyanked one wins",
        "https://github.com/spdx/spdx-online-tools/issues/546",
        preset="ubuntu22.04",
    ),
    # sdist-only, pure Python
    P(
        "sdist-pure-py38",
        ["docopt==0.6.2", "jieba"],
        "projects that ship only sdists (pure Python), py3.8",
        "https://github.com/pypa/pip/issues/13442",
        preset="ubuntu20.04",
        sdist=True,
    ),
    P(
        "sdist-dep-feedparser",
        ["feedparser"],
        "wheel whose dependency sgmllib3k is sdist-only, debian12",
        "https://github.com/pypa/pip/issues/11310",
        preset="debian12",
        sdist=True,
    ),
    # resolution: upper bounds and Requires-Python
    P(
        "upper-bound-numpy",
        ["scipy", "numpy<1.22"],
        "numpy<1.22 forces an older scipy with cp310 wheels",
        "https://pypi.org/project/scipy/#history",
        python="3.10",
        platform_tag="manylinux2014_x86_64",
    ),
    P(
        "no-wheel-for-py",
        ["numpy==1.24.4"],
        "no cp312 wheel for this pin: nobody can serve (clear failure expected)",
        "https://pypi.org/project/numpy/1.24.4/#files",
        preset="ubuntu24.04",
        expect="neither",
    ),
    P(
        "constraints-file",
        ["-r", "{reqs.txt}"],
        "-c constraints inside a requirements file (urllib3<2 under requests)",
        "https://pypi.org/project/botocore/",
        preset="debian11",
        files={"reqs.txt": "requests\nbotocore\n-c constraints.txt\n", "constraints.txt": "urllib3<2\n"},
    ),
    P(
        "direct-url",
        [
            "pip @ https://files.pythonhosted.org/packages/ef/7d/"
            "500c9ad20238fcfcb4cb9243eede163594d7020ce87bd9610c9e02771876/pip-24.3.1-py3-none-any.whl"
        ],
        "direct URL reference: mlops refuses (no index hash to pin), pip downloads it",
        "https://peps.python.org/pep-0440/#direct-references",
        preset="ubuntu22.04",
        expect="mlops-refuses",
    ),
    # big dependency sets
    P(
        "jupyterlab-rhel9",
        ["jupyterlab"],
        "big closure (~70) with compiled deps (pyzmq, tornado, rpds-py) on py3.9",
        "https://pypi.org/project/jupyterlab/",
        preset="rhel9",
    ),
    P(
        "airflow-constraints",
        ["-r", "{reqs.txt}"],
        "apache-airflow 2.10.5 under a constraints file, ubuntu22.04",
        "https://airflow.apache.org/docs/apache-airflow/stable/installation/installing-from-pypi.html",
        preset="ubuntu22.04",
        files={
            "reqs.txt": "apache-airflow==2.10.5\n-c constraints.txt\n",
            "constraints.txt": "sqlalchemy<2\nflask<2.3\n",
        },
    ),
    P(
        "psycopg-rhel8-arm",
        ["psycopg2-binary", "psycopg[binary]"],
        "libpq bundled wheels; rhel8 aarch64",
        "https://pypi.org/project/psycopg-binary/#files",
        preset="rhel8-aarch64",
    ),
    P(
        "black-mypyc-py312",
        ["black"],
        "mypyc-compiled per-python wheels; py3.12 glibc 2.17",
        "https://pypi.org/project/black/#files",
        python="3.12",
        platform_tag="manylinux2014_x86_64",
    ),
]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", **extra)
    return env


def target_of(pair: dict) -> tuple[str, str, str]:
    """(python X.Y, glibc, arch) of the pair's target."""
    if pair["preset"]:
        name = pair["preset"]
        arm = name.endswith("-aarch64")
        py, glibc, _ = PRESETS[name.removesuffix("-aarch64")]
        return py, glibc, "aarch64" if arm else "x86_64"
    m = re.fullmatch(r"manylinux_(\d+)_(\d+)_(\w+)|(manylinux2014|manylinux2010|manylinux1)_(\w+)", pair["platform"])
    glibc = f"{m.group(1)}.{m.group(2)}" if m.group(1) else _LEGACY[m.group(4)]
    return pair["python"], glibc, m.group(3) or m.group(5)


def platforms_for(glibc: str, arch: str) -> list[str]:
    """Every manylinux tag a glibc `glibc` machine accepts, best first (what pip on it would see)."""
    minor = int(glibc.split(".")[1])
    out = []
    for m in range(minor, 4, -1):
        out.append(f"manylinux_2_{m}_{arch}")
        legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}.get(m)
        if legacy and (arch in ("x86_64", "i686") or legacy == "manylinux2014"):
            out.append(f"{legacy}_{arch}")
    return out + [f"linux_{arch}"]


def target_tags(py: str, glibc: str, arch: str) -> set[str]:
    from packaging import tags

    major, minor = (int(x) for x in py.split("."))
    plats = platforms_for(glibc, arch)
    out = set(str(t) for t in tags.cpython_tags((major, minor), [abi_of(py)], plats))
    out |= set(str(t) for t in tags.compatible_tags((major, minor), f"cp{major}{minor}", plats))
    return out


def abi_of(py: str) -> str:
    """The ABI tag of a release build of CPython X.Y: 3.6 and 3.7 carry pymalloc's `m` (cp37m)."""
    major, minor = (int(x) for x in py.split("."))
    return f"cp{major}{minor}" + ("m" if (major, minor) < (3, 8) else "")


def wheel_tags(filename: str) -> set[str]:
    from packaging.utils import parse_wheel_filename

    return {str(t) for t in parse_wheel_filename(filename)[3]}


def mlops_argv(pair: dict, work: Path, out: Path) -> list[str]:
    reqs = [r.replace("{reqs.txt}", str(work / "reqs.txt")) for r in pair["reqs"]]
    argv = [sys.executable, "-m", "mlops_cli", "wheels", *reqs, "-o", str(out), "--json", "--index-url", pair["index"]]
    argv += [a for url in pair["extra"] for a in ("--extra-index-url", url)]
    if pair["preset"]:
        argv += ["--target", pair["preset"]]
    else:
        argv += ["--python", pair["python"], "--platform", pair["platform"]]
    if pair["python"] in ("3.6", "3.7"):
        argv += ["--with-pip"]  # pyenv 3.6/3.7 carry pip 18/22: the bundle brings its own for the install check
    return argv


def pyenv_python(py: str) -> str | None:
    if platform.python_version().rsplit(".", 1)[0] == py:
        return sys.executable
    found = sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{py}.*/bin/python{py}")))
    return found[-1] if found else None


def pip_argv(pair: dict, work: Path, out: Path, newest_py: str) -> tuple[list[str], str]:
    py, glibc, arch = target_of(pair)
    reqs = [r.replace("{reqs.txt}", str(work / "reqs.txt")) for r in pair["reqs"]]
    index = ["--index-url", pair["index"]] + [a for u in pair["extra"] for a in ("--extra-index-url", u)]
    if pair["sdist"]:
        # pip refuses --platform without --only-binary :all:; run the target's own interpreter instead
        interp = pyenv_python(py)
        if interp is None or arch != platform.machine():
            return [], "no interpreter of the target here: pip cannot download sdists for another platform"
        return [interp, "-m", "pip", "download", *reqs, "-d", str(out), *index], f"pip of {interp}"
    argv = [
        newest_py,
        "-m",
        "pip",
        "download",
        *reqs,
        "-d",
        str(out),
        *index,
        "--only-binary=:all:",
        "--python-version",
        py,
        "--implementation",
        "cp",
        "--abi",
        abi_of(py),
    ]
    for plat in platforms_for(glibc, arch):  # linux_<arch> too: pip on that machine accepts it
        argv += ["--platform", plat]
    return argv, "newest pip"


def run(argv: list[str], timeout: int = 1500, **kw) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, env=kw.pop("env", clean_env()), **kw
        )
    except subprocess.TimeoutExpired as exc:
        return subprocess.CompletedProcess(argv, 124, "", f"timed out after {timeout} s: {exc}")


def last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


def real_install(bundle: Path, target_name: str, py: str, arch: str, work: Path) -> dict:
    interp = pyenv_python(py)
    if interp is None or arch != platform.machine():
        return {"ran": False, "why": f"no CPython {py} on {arch} here"}
    venv = work / "venv"
    res = run(
        ["sh", str(bundle / "install.sh"), "--venv", str(venv), "--target", target_name],
        env=clean_env(PYTHON=interp, MLOPS_BUNDLE_STATE=str(work / "state")),
        timeout=900,
    )
    return {
        "ran": True,
        "python": interp,
        "ok": res.returncode == 0,
        "detail": last_line(res.stderr) if res.returncode else last_line(res.stdout),
    }


def one(pair: dict, root: Path, newest_py: str, install: bool, cache: Path) -> dict:
    work = root / pair["id"]
    work.mkdir(parents=True)
    for name, text in pair["files"].items():
        (work / name).write_text(text)
    py, glibc, arch = target_of(pair)
    res: dict = {
        "id": pair["id"],
        "reqs": pair["reqs"],
        "target": pair["preset"] or f"{py} {pair['platform']}",
        "why": pair["why"],
        "source": pair["source"],
        "expect": pair["expect"],
    }
    pip_out = work / "pip"
    pargv, plabel = pip_argv(pair, work, pip_out, newest_py)
    box: dict = {}

    def do_pip():
        if not pargv:
            box["pip"] = {"served": False, "files": [], "detail": plabel, "by": None}
            return
        r = run(pargv)
        files = sorted(p.name for p in pip_out.glob("*")) if pip_out.exists() else []
        box["pip"] = {
            "served": r.returncode == 0,
            "files": files,
            "by": plabel,
            "detail": "" if r.returncode == 0 else last_line(r.stderr),
        }

    t = threading.Thread(target=do_pip)
    t.start()
    bundle = work / "bundle"
    r = run(mlops_argv(pair, work, bundle), env=clean_env(MLOPS_CACHE_DIR=str(cache)))
    t.join()
    res["pip"] = box["pip"]
    try:
        doc = json.loads(r.stdout)
    except ValueError:
        doc = {"error": {"message": last_line(r.stderr) or "no JSON"}}
    served = r.returncode == 0 and "error" not in doc
    mfiles = sorted(p["filename"] for p in doc.get("packages", []))
    res["mlops"] = {
        "served": served,
        "exit": r.returncode,
        "files": mfiles,
        "detail": "" if served else doc.get("error", {}).get("message", "")[:400],
        "warnings": [w[:200] for w in doc.get("warnings", [])],
    }
    if served:
        accepted = target_tags(py, glibc, arch)
        bad = [f for f in mfiles if not f.endswith(".whl") or not (wheel_tags(f) & accepted)]
        res["mlops"]["not_installable"] = bad
        res["mlops"]["installable"] = not bad
        if install:
            res["mlops"]["real_install"] = real_install(bundle, doc["targets"][0]["name"], py, arch, work)
    res["verdict"] = verdict(res)
    return res


def verdict(res: dict) -> str:
    m, p = res["mlops"], res["pip"]
    if m["served"] and not m.get("installable", True):
        return "BUG: mlops files not installable"
    if m["served"] and m.get("real_install", {}).get("ran") and not m["real_install"]["ok"]:
        return "BUG: real install failed"
    if p["served"] and not m["served"]:
        return "refused as documented" if res["expect"] == "mlops-refuses" else "BUG: pip serves, mlops does not"
    if m["served"] and not p["served"]:
        return "mlops only"
    if not m["served"] and not p["served"]:
        return "neither (ok)" if res["expect"] == "neither" else "neither"
    return "same files" if difference(res) == "same" else "both, different files"


def newest_pip(root: Path) -> str:
    venv = root / "newest-pip"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin/python"), "-m", "pip", "install", "-q", "-U", "pip", "packaging", "--index-url", PYPI],
        check=True,
        env=clean_env(),
    )
    return str(venv / "bin/python")


def _dist(filename: str) -> str:
    """name==version of a wheel or sdist file name (for the table)."""
    from packaging.utils import parse_sdist_filename, parse_wheel_filename

    try:
        n, v = parse_wheel_filename(filename)[:2] if filename.endswith(".whl") else parse_sdist_filename(filename)
    except ValueError:
        return filename
    return f"{n}=={v}"


def difference(res: dict) -> str:
    """What mlops has that pip has not (+) and the other way round (-), by name==version (pip
    itself, bundled by `--with-pip` for the 3.6/3.7 installs, left out)."""
    m = {_dist(f) for f in res["mlops"]["files"] if not f.startswith("pip-")}
    p = {_dist(f) for f in res["pip"]["files"] if not f.startswith("pip-")}
    if not (res["mlops"]["served"] and res["pip"]["served"]):
        return ""
    diff = [f"+{d}" for d in sorted(m - p)] + [f"-{d}" for d in sorted(p - m)]
    return " ".join(diff) if diff else "same"


def table(results: list[dict], meta: dict) -> str:
    for r in results:
        r["verdict"] = verdict(r)  # by name==version (two equally good wheels of one release are the same)
    rows = [
        "| pair | target | pip | mlops | installable | real install | verdict | mlops vs pip |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        m, p = r["mlops"], r["pip"]
        ri = m.get("real_install") or {}
        inst = (
            "-" if not m["served"] else ("yes" if m["installable"] else "NO: " + ", ".join(m["not_installable"])[:80])
        )
        rin = "-" if not ri.get("ran") else ("ok (" + Path(ri["python"]).name + ")" if ri["ok"] else "FAILED")
        rows.append(
            f"| {r['id']} | {r['target']} | {'served' if p['served'] else 'no'} ({len(p['files'])}) | "
            f"{'served' if m['served'] else 'no'} ({len(m['files'])}) | {inst} | {rin} | {r['verdict']} | "
            f"{difference(r) or (m['detail'] or p['detail'])[:160].replace('|', '/')} |"
        )
    bugs = sum(r["verdict"].startswith("BUG") for r in results)
    pip_served = [r for r in results if r["pip"]["served"]]
    ok = [r for r in pip_served if r["mlops"]["served"] and r["mlops"].get("installable")]
    refused = [r for r in pip_served if r["verdict"] == "refused as documented"]
    installs = [r["mlops"]["real_install"] for r in results if r["mlops"].get("real_install", {}).get("ran")]
    head = (
        f"{meta['when']}, commit {meta['commit']}, {meta['machine']}, {meta['pip']}; {len(results)} pairs, "
        f"{bugs} BUG verdicts. **Score: pip served {len(pip_served)}; mlops served {len(ok)} of them with "
        f"installable files** ({len(refused)} refused as documented: a direct URL); mlops alone served "
        f"{sum(r['verdict'] == 'mlops only' for r in results)}; real offline installs: "
        f"{sum(i['ok'] for i in installs)} of {len(installs)} passed."
    )
    return head + "\n\n" + "\n".join(rows) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="")
    ap.add_argument("--out", default="wheels_hard.jsonl")
    ap.add_argument("--no-install", action="store_true")
    ap.add_argument("--table", help="print the Markdown table of results files (comma-separated) and exit")
    args = ap.parse_args()
    if args.table:  # several files: a later file's result for a pair replaces an earlier one
        by_id: dict[str, dict] = {}
        metas = []
        for name in args.table.split(","):
            lines = [json.loads(x) for x in Path(name).read_text().splitlines() if x.strip()]
            metas.append(lines[0])
            by_id.update({r["id"]: r for r in lines[1:]})
        order = [p["id"] for p in PAIRS]
        results = sorted(by_id.values(), key=lambda r: order.index(r["id"]) if r["id"] in order else len(order))
        print(table(results, metas[-1]))
        return
    only = set(filter(None, args.only.split(",")))
    pairs = [p for p in PAIRS if not only or p["id"] in only]
    with tempfile.TemporaryDirectory(prefix="wheels-hard-") as tmp:
        root = Path(tmp)
        npy = newest_pip(root)
        meta = {
            "when": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]).stdout.strip(),
            "machine": f"{platform.machine()} {platform.libc_ver()[1] and 'glibc ' + platform.libc_ver()[1]}, "
            f"{os.cpu_count()} CPUs, CPython {platform.python_version()}",
            "pip": run([npy, "-m", "pip", "--version"]).stdout.split(" from")[0],
        }
        with open(args.out, "w") as fh:
            fh.write(json.dumps(meta) + "\n")
            for pair in pairs:
                res = one(pair, root, npy, not args.no_install, root / "cache")
                fh.write(json.dumps(res) + "\n")
                fh.flush()
                print(f"{pair['id']}: {res['verdict']}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
