"""Shared fixtures: the loopback index, a runner with a private cache, fresh venvs.

Roles of the packages in `fakeindex.standard_index()`:
alpha -> beta>=1.0 -> delta (a chain); alpha -> gamma only when python_version < "3.11";
alpha -> winonly only on win32 (its one wheel is win_amd64); plat has wheels for cp310
aarch64/x86_64 and cp311 x86_64 only; puresd/platsd are sdist-only (pure / platform);
yanky 1.0 is yanked (0.9 is not); badhash is listed with a wrong sha256.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from . import fakeindex

# Ambient configuration that must NOT reach uv or pip (the tool isolates itself).
HOSTILE_ENV = {
    "UV_INDEX_URL": "http://127.0.0.1:9/simple",
    "UV_EXTRA_INDEX_URL": "http://127.0.0.1:9/extra",
    "UV_PYTHON_DOWNLOADS": "automatic",
    "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
    "PIP_FIND_LINKS": "/nonexistent-find-links",
}


@pytest.fixture(scope="session")
def index():
    idx = fakeindex.standard_index()
    server = fakeindex.serve(idx)
    yield idx
    server.shutdown()


@pytest.fixture(scope="session")
def html_index():
    idx = fakeindex.standard_index()
    idx.json_ok = False
    server = fakeindex.serve(idx)
    yield idx
    server.shutdown()


@pytest.fixture
def wheels(tmp_path, mlops):
    """wheels(*args, index=URL) runs `mlops wheels` in tmp_path/work with a private cache."""
    work = tmp_path / "work"
    work.mkdir()
    cache = tmp_path / "cache"

    def run(*args, index_url=None, env=None, cwd=None):
        argv = ["wheels", *args]
        if index_url:
            argv += ["--index-url", index_url]
        full_env = dict(HOSTILE_ENV, MLOPS_CACHE_DIR=str(cache), **(env or {}))
        return mlops(*argv, env=full_env, cwd=cwd or work)

    run.work = work
    run.cache = cache
    return run


def make_venv(path: Path, python: str = sys.executable) -> Path:
    subprocess.run([python, "-m", "venv", str(path)], check=True, capture_output=True, timeout=300)
    return path / "bin" / "python"


def run_install_sh(bundle: Path, python: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(HOSTILE_ENV, PATH="/usr/bin:/bin", PYTHON=str(python), HOME=str(bundle.parent))
    return subprocess.run(
        ["sh", str(bundle / "install.sh"), *args], capture_output=True, text=True, env=env, timeout=600
    )


def manifest(bundle: Path) -> dict:
    return json.loads((bundle / "manifest.json").read_text())
