"""Issue 14 against the real Docker engine `.ci/run` starts: the Dockerfile flow (`mlops patch
apply --yes` in local mode inside `docker build`, printed by `mlops patch dockerfile`), its
failure on another version, `status` over a folder of patches, and `port --image`.

Nothing can be pulled here, so two things stand in for the internet: the stand-in vLLM images of
conftest.py (real transformers files, real layout) get pip from its real wheel, as the real image
has it; and `pip install mlops-cli` reads a wheelhouse copied into the build (this checkout's
mlops wheel and its real dependencies, downloaded from PyPI) instead of the index.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import (
    MODELING,
    OTHER,
    PINNED,
    SHA_5_20_2,
    SHA_PATCHED,
    SITE_IN_IMAGE,
    clean_pip_env,
    docker,
    image_sha,
)

pytestmark = pytest.mark.container
REPO = Path(__file__).resolve().parents[2]
FILE_IN_IMAGE = f"{SITE_IN_IMAGE}/{MODELING}"
OFFLINE_INSTALL = "PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --no-index --find-links /tmp/wheels mlops-cli"


def _pip(*args: str, timeout: float = 600) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", *args], capture_output=True, text=True, env=clean_pip_env(), timeout=timeout
    )
    if proc.returncode != 0:
        pytest.fail(f"pip {' '.join(args[:2])} failed: {proc.stderr.strip()[-600:]}", pytrace=False)


@pytest.fixture(scope="session")
def image_python(vllm_image) -> str:
    return docker(
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "python3",
        vllm_image,
        "-c",
        "import sys; print('%d.%d' % sys.version_info[:2])",
    ).stdout.strip()


@pytest.fixture(scope="session")
def wheelhouse(request, image_python, tmp_path_factory) -> Path:
    """pip, this checkout's mlops-cli and its dependencies, as wheels for the image's Python."""
    cache = Path(request.config.cache.mkdir(f"mlops-wheelhouse-{image_python}"))
    if not list(cache.glob("pip-*.whl")):
        _pip(
            "download",
            "-q",
            "--index-url",
            "https://pypi.org/simple",
            "--only-binary=:all:",
            "--no-deps",
            "-d",
            str(cache),
            "pip",
        )
    if not list(cache.glob("uv-*.whl")):
        deps = ["typer>=0.12", "rich>=13.7", "nvidia-ml-py>=12.535", "packaging>=23.2", "requests>=2.31", "uv>=0.4.20"]
        _pip(
            "download",
            "-q",
            "--index-url",
            "https://pypi.org/simple",
            "--only-binary=:all:",
            "--python-version",
            image_python,
            "--implementation",
            "cp",
            "--platform",
            "manylinux2014_x86_64",
            "--platform",
            "manylinux_2_17_x86_64",
            "-d",
            str(cache),
            *deps,
        )
    house = tmp_path_factory.mktemp("wheelhouse")
    for wheel in cache.glob("*.whl"):
        shutil.copy(wheel, house)
    _pip("wheel", "-q", "--no-deps", "--index-url", "https://pypi.org/simple", "-w", str(house), str(REPO))
    return house


@pytest.fixture(scope="session")
def with_pip(vllm_image, vllm_image_other, wheelhouse, tmp_path_factory) -> dict[str, str]:
    """The stand-ins with pip installed from its wheel (the real vLLM image ships pip)."""
    pip = next(wheelhouse.glob("pip-*.whl"))
    tags = {}
    for version, base in ((PINNED, vllm_image), (OTHER, vllm_image_other)):
        tag = f"{base}-pip"
        if docker("image", "inspect", tag, check=False).returncode != 0:
            ctx = tmp_path_factory.mktemp("with-pip")
            shutil.copy(pip, ctx / pip.name)
            (ctx / "Dockerfile").write_text(
                f"FROM {base}\nCOPY {pip.name} /tmp/{pip.name}\n"
                f"RUN PIP_BREAK_SYSTEM_PACKAGES=1 python3 /tmp/{pip.name}/pip install -q --no-index /tmp/{pip.name} "
                f"&& rm /tmp/{pip.name}\n"
            )
            docker("build", "--force-rm", "--network", "none", "-q", "-t", tag, str(ctx))
        tags[version] = tag
    return tags


def _build_context(tmp_path: Path, wheelhouse: Path, patch: Path, dockerfile: str) -> Path:
    """The user's build context: the patch file and the Dockerfile `mlops patch dockerfile` printed.
    The only change for the offline test: the wheelhouse is copied in right after FROM."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    shutil.copy(patch, ctx / patch.name)
    shutil.copytree(wheelhouse, ctx / "wheels")
    first, rest = dockerfile.split("\n", 1)
    (ctx / "Dockerfile").write_text(f"{first}\nCOPY wheels /tmp/wheels\n{rest}")
    return ctx


def test_dockerfile_flow_builds_a_patched_image_with_the_labels_of_apply_image(
    mlops, with_pip, wheelhouse, pinned_patch, tmp_path
):
    base = with_pip[PINNED]
    patch = tmp_path / "qwen-mrope.patch"
    shutil.copy(pinned_patch, patch)
    r = mlops("patch", "dockerfile", patch.name, "--image", base, "--install", OFFLINE_INSTALL, "--json", cwd=tmp_path)
    assert r.returncode == 0, r
    doc = r.json()
    text = doc["dockerfile"]
    assert text.startswith(f"FROM {base}\n") and f'COPY ["{patch.name}", "/tmp/mlops-patch/{patch.name}"]' in text
    assert "mlops patch apply /tmp/mlops-patch/qwen-mrope.patch --python python3 --yes" in text
    assert "|| " not in text and doc["checked_state"] == "not-applied"
    # The labels are exactly those `apply --image` gives this base.
    r = mlops("patch", "apply", str(patch), "--image", base, "--dry-run", "--json")
    assert r.returncode == 0 and r.json()["labels"] == doc["labels"], (r, doc["labels"])
    r = mlops("patch", "dockerfile", patch.name, "--image", base, cwd=tmp_path)
    assert (
        r.returncode == 0
        and r.stdout.replace("PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --no-cache-dir mlops-cli==", "")
        != r.stdout
    ), r
    ctx = _build_context(tmp_path, wheelhouse, patch, text)
    tag = "mlops-test/dockerfile-flow:1"
    build = docker("build", "--force-rm", "--network", "none", "-t", tag, str(ctx), check=False, timeout=900)
    try:
        assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
        assert "result: patch applied" in build.stdout + build.stderr
        assert image_sha(tag, FILE_IN_IMAGE) == SHA_PATCHED and image_sha(base, FILE_IN_IMAGE) == SHA_5_20_2
        info = json.loads(docker("image", "inspect", tag).stdout)[0]
        labels = {k: v for k, v in info["Config"]["Labels"].items() if k.startswith("org.mlops.patch")}
        assert labels == doc["labels"] and info["Config"]["Entrypoint"] == ["vllm", "serve"]
        r = mlops("patch", "status", str(patch), "--image", tag, "--json")
        assert r.returncode == 0 and r.json()["result"] == "applied" and r.json()["labels"] == labels, r
        left = docker("run", "--rm", "--network", "none", "--entrypoint", "ls", tag, "/tmp").stdout.split()
        assert "mlops-patch" not in left  # the patch copy, backups and journal are removed in the same layer
        state = docker("run", "--rm", "--network", "none", "--entrypoint", "ls", tag, "-a", "/root", check=False)
        assert ".local" not in state.stdout.split()
    finally:
        docker("rmi", tag, check=False)


def test_dockerfile_build_fails_loudly_on_another_version(mlops, with_pip, wheelhouse, pinned_patch, tmp_path):
    newer = with_pip[OTHER]
    patch = tmp_path / "qwen-mrope.patch"
    shutil.copy(pinned_patch, patch)
    # Checked against the local image first: no Dockerfile for a patch that cannot apply.
    r = mlops("patch", "dockerfile", patch.name, "--image", newer, cwd=tmp_path)
    assert r.returncode == 1 and r.stdout == "", r
    assert "patch is for transformers 5.20.2, the target has transformers 5.23.0" in r.stderr
    assert "mlops patch port qwen-mrope.patch --image" in r.stderr
    # A Dockerfile made for the old image, built on the new one (FROM bumped by hand, or a moved tag).
    r = mlops(
        "patch", "dockerfile", patch.name, "--image", newer, "--no-check", "--install", OFFLINE_INSTALL, cwd=tmp_path
    )
    assert r.returncode == 0, r
    ctx = _build_context(tmp_path, wheelhouse, patch, r.stdout)
    tag = "mlops-test/dockerfile-flow:mismatch"
    build = docker("build", "--force-rm", "--network", "none", "-t", tag, str(ctx), check=False, timeout=900)
    try:
        out = build.stdout + build.stderr
        assert build.returncode != 0, out[-2000:]
        assert "patch is for transformers 5.20.2, the target has transformers 5.23.0" in out
        assert docker("image", "inspect", tag, check=False).returncode != 0
    finally:
        docker("rmi", tag, check=False)


def test_status_over_a_folder_of_patches(mlops, vllm_image, vllm_image_other, pinned_patch, wheel_pinned, tmp_path):
    from mlops_cli.patch import patchfile as pf

    from .conftest import wheel_file

    folder = tmp_path / "patches"
    folder.mkdir()
    shutil.copy(pinned_patch, folder / "qwen-mrope.patch")
    rel = "transformers/dependency_versions_table.py"
    original = wheel_file(wheel_pinned, rel)
    (folder / "deps.patch").write_bytes(pf.make_patch("transformers", PINNED, [(rel, original, original + b"# x\n")]))
    r = mlops("patch", "status", str(folder), "--image", vllm_image, "--json")
    assert r.returncode == 1, r  # not applied in the base image
    assert {Path(p["path"]).name: p["result"] for p in r.json()["patches"]} == {
        "qwen-mrope.patch": "not-applied",
        "deps.patch": "not-applied",
    }
    r = mlops("patch", "status", str(folder), "--image", vllm_image, "--expect", "applicable")
    assert r.returncode == 0 and "2 not-applied" in r.stdout, r
    # On the newer release: both are pinned to another version; one CI step says so.
    r = mlops("patch", "status", str(folder), "--image", vllm_image_other, "--expect", "applicable", "--json")
    assert r.returncode == 1 and r.json()["counts"] == {"other-version": 2}, r
    assert r.json()["patches"][0]["target_version"] == OTHER
    # A derived image with one applied; a corrupt patch in the folder is exit 2.
    tag = "mlops-test/status-folder:1"
    assert (
        mlops(
            "patch",
            "apply",
            str(folder / "qwen-mrope.patch"),
            "--image",
            vllm_image,
            "--tag",
            tag,
            "--yes",
            "--no-import-check",
        ).returncode
        == 0
    )
    try:
        r = mlops("patch", "status", str(folder), "--image", tag)
        assert r.returncode == 1 and "applied" in r.stdout and "not-applied" in r.stdout, r
        (folder / "broken.patch").write_text("not a patch\n")
        r = mlops("patch", "status", str(folder), "--image", tag, "--json")
        assert r.returncode == 2 and r.json()["counts"]["invalid"] == 1, r
    finally:
        docker("rmi", tag, check=False)


def test_port_against_an_image_of_the_new_release(mlops, vllm_image_other, pinned_patch, tmp_path):
    new = tmp_path / "mrope-5.23.0.patch"
    r = mlops("patch", "port", str(pinned_patch), "--image", vllm_image_other, "-o", str(new), "--json")
    assert r.returncode == 0 and r.json()["result"] == "ported", r
    assert r.json()["files"][0]["hunks"][0]["offset"] == -13
    r = mlops("patch", "apply", str(new), "--image", vllm_image_other, "--dry-run", "--json")
    assert r.returncode == 0 and r.json()["result"] == "would-apply", r
    assert hashlib.sha256(new.read_bytes()).hexdigest() == r.json()["patch"]["sha256"]
