"""Real parts for `mlops patch` tests: a real transformers wheel, a real venv, a real Docker engine.

- The wheel of a pinned transformers release (5.20.2, the one shared/research/vllm-patch.md §2.4
  made its example patch against) is downloaded once from PyPI into the pytest cache.
- Local mode: a venv with that wheel installed by pip (--no-deps).
- Container tests (marked ``container``): the Docker engine that `.ci/run` starts
  (`.ci/docker-up.sh`, DOCKER_HOST). A minimal Debian base image is made once with
  debootstrap + `docker import` (reused while it exists in the engine), and a stand-in
  "vllm/vllm-openai" image is built on it with the real layout: the wheel's files under
  /usr/local/lib/python3.12/dist-packages/, entrypoint `vllm serve`. The real
  transformers/__init__.py cannot import without its dependencies (packaging, huggingface_hub;
  research §2.1), so the image carries a stub __init__.py with __version__; every other file,
  and the dist-info, are the release's own.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

PINNED = "5.20.2"
OTHER = "5.23.0"
# Later real releases `patch port` carries the 5.20.2 patch to (with OTHER).
LATER = ("5.22.2", "5.24.0")
# A real upstream fix: 5.5.4 changed exactly get_rope_index's temporal scaling of still images
# (transformers issue #45325, PR #45330; shared/research/vllm-patch.md §3 item 6).
BEFORE_FIX, AFTER_FIX = "5.5.3", "5.5.4"
MODELING = "transformers/models/qwen2_5_vl/modeling_qwen2_5_vl.py"
SHA_5_20_2 = "8ca7f8ac3af58071bc6058e5f9017e8b152034cd85090d7fbbd80dd0fbb329d0"  # research §2.4
SHA_PATCHED = "cc6fd330a8324e892e51e949023f4cacd90e2cb79663a225361f0c5781af01dd"  # research §2.4
SITE_IN_IMAGE = "/usr/local/lib/python3.12/dist-packages"
BASE_IMAGE = "mlops-test/debian-py:bookworm"
OLD_LINE = "                    current_pos += max(grid_thw[1], grid_thw[2]) // spatial_merge_size\n"
NEW_LINES = (
    "                    # Continue after the largest position id used by this vision block.\n"
    "                    # For videos the temporal axis (t * time_interval) can exceed max(h, w);\n"
    "                    # this matches transformers<=5.2 and vLLM's native get_mrope_input_positions.\n"
    "                    current_pos = int(vision_position_ids.max()) + 1\n"
)


def mrope_edit(text: str) -> str:
    """The example edit of research §2.4 (m-RoPE: continue after the largest vision position id)."""
    assert text.count(OLD_LINE) == 1
    return text.replace(OLD_LINE, NEW_LINES)


def clean_pip_env() -> dict:
    """pip without this machine's ambient config (extra index, find-links)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


def _wheel(request, version: str, package: str = "transformers") -> Path:
    if getattr(request.config, "cache", None) is not None:
        cache = Path(request.config.cache.mkdir("mlops-patch-wheels"))
    else:  # pytest -p no:cacheprovider
        cache = Path(tempfile.gettempdir(), "mlops-patch-wheels")
        cache.mkdir(exist_ok=True)
    found = list(cache.glob(f"{package}-{version}-*.whl"))
    if not found:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--no-deps",
                "--index-url",
                "https://pypi.org/simple",
                f"{package}=={version}",
                "-d",
                str(cache),
            ],
            capture_output=True,
            text=True,
            env=clean_pip_env(),
            timeout=300,
        )
        found = list(cache.glob(f"{package}-{version}-*.whl"))
        if proc.returncode != 0 or not found:
            pytest.skip(f"cannot download {package}=={version} from PyPI: {proc.stderr.strip()[-300:]}")
    return found[0]


@pytest.fixture(scope="session", autouse=True)
def _private_cache_and_state(tmp_path_factory):
    """The store `patch port` reads bases from, and the backups and journals of local applies:
    fresh ones for these tests (tests that look at them set their own), never the user's."""
    saved = {k: os.environ.get(k) for k in ("MLOPS_CACHE_DIR", "MLOPS_STATE_DIR")}
    os.environ["MLOPS_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    os.environ["MLOPS_STATE_DIR"] = str(tmp_path_factory.mktemp("state"))
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def wheel_of(request):
    """wheel_of("5.22.2") -> the downloaded wheel of that transformers release."""
    return lambda version: _wheel(request, version)


@pytest.fixture(scope="session")
def venv_of(tmp_path_factory, wheel_of):
    """venv_of("5.22.2") -> a LocalEnv with that real transformers release (made once per run)."""
    made: dict[str, LocalEnv] = {}

    def get(version: str) -> LocalEnv:
        if version not in made:
            wheel = wheel_of(version)
            python = _venv(tmp_path_factory.mktemp(f"venv-{version}"), wheel)
            made[version] = LocalEnv(python, wheel_file(wheel, MODELING))
        made[version].reset()
        return made[version]

    yield get
    for env in made.values():
        env.reset()


@pytest.fixture(scope="session")
def package_env(tmp_path_factory, request):
    """package_env("accelerate", "1.12.0") -> (python, wheel) of a venv with that real release
    (pip --no-deps; small pure-Python wheels from PyPI, cached like the transformers ones)."""
    made: dict[tuple[str, str], tuple[Path, Path]] = {}

    def get(package: str, version: str) -> tuple[Path, Path]:
        if (package, version) not in made:
            wheel = _wheel(request, version, package)
            made[(package, version)] = (_venv(tmp_path_factory.mktemp(f"venv-{package}-{version}"), wheel), wheel)
        return made[(package, version)]

    return get


@pytest.fixture(scope="session")
def wheel_pinned(request) -> Path:
    return _wheel(request, PINNED)


@pytest.fixture(scope="session")
def wheel_other(request) -> Path:
    return _wheel(request, OTHER)


def wheel_file(wheel: Path, rel: str) -> bytes:
    with zipfile.ZipFile(wheel) as zf:
        return zf.read(rel)


def _venv(root: Path, wheel: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120)
    python = root / "bin" / "python"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            "--ignore-requires-python",  # 5.23 wants 3.11+; the tests only read its files
            str(wheel),
        ],
        check=True,
        env=clean_pip_env(),
        timeout=300,
    )
    return python


class LocalEnv:
    def __init__(self, python: Path, original: bytes):
        self.python = python
        self.original = original
        out = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        self.site = Path(out)
        self.file = self.site / MODELING

    def reset(self) -> None:
        self.file.write_bytes(self.original)


@pytest.fixture(scope="session")
def _local_env_session(venv_of) -> LocalEnv:
    return venv_of(PINNED)


@pytest.fixture
def local_env(_local_env_session, tmp_path, monkeypatch) -> LocalEnv:
    """A venv with the real transformers 5.20.2 (pip --no-deps); its modeling file reset per test."""
    _local_env_session.reset()
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "state"))
    yield _local_env_session
    _local_env_session.reset()


@pytest.fixture
def local_env_other(venv_of) -> LocalEnv:
    return venv_of(OTHER)


@pytest.fixture(scope="session")
def pinned_patch(tmp_path_factory, wheel_pinned) -> Path:
    """The research §2.4 patch, made by `mlops patch diff` from a work folder of the real file."""
    from mlops_cli.patch.workdir import diff

    root = tmp_path_factory.mktemp("pinned-patch")
    work = root / "work"
    (work / ".mlops" / "original" / MODELING).parent.mkdir(parents=True)
    original = wheel_file(wheel_pinned, MODELING)
    (work / ".mlops" / "original" / MODELING).write_bytes(original)
    (work / MODELING).parent.mkdir(parents=True)
    (work / MODELING).write_text(mrope_edit(original.decode()))
    import json

    (work / ".mlops" / "extract.json").write_text(
        json.dumps(
            {
                "format": 1,
                "package": "transformers",
                "version": PINNED,
                "source": {"kind": "local", "ref": "wheel"},
                "files": [{"path": MODELING, "sha256": hashlib.sha256(original).hexdigest()}],
            }
        )
    )
    diff(work, root / "qwen-mrope.patch")
    return root / "qwen-mrope.patch"


# --- the container engine -----------------------------------------------------------------


def docker(*args: str, check: bool = True, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args[:3])} failed: {proc.stderr.strip()[-500:]}")
    return proc


def _engine_problem() -> str | None:
    if not shutil.which("docker"):
        return "docker is not installed"
    try:
        proc = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True, timeout=20
        )
    except subprocess.TimeoutExpired:
        return "docker version timed out"
    if proc.returncode != 0:
        return f"no Docker engine reachable (DOCKER_HOST={os.environ.get('DOCKER_HOST', 'unset')}): {proc.stderr.strip()[:200]}"
    return None


@pytest.fixture(scope="session")
def engine() -> None:
    problem = _engine_problem()
    if problem:
        message = f"{problem}; start one with `. .ci/docker-up.sh && docker_up` (as .ci/run does)"
        if os.environ.get("MLOPS_REQUIRE_CONTAINER_TESTS") == "1":
            pytest.fail("MLOPS_REQUIRE_CONTAINER_TESTS=1 but " + message, pytrace=False)
        pytest.skip(message)


def debian_mirror() -> str:
    """The Debian mirror this machine's apt already uses (sources.list or deb822 .sources)."""
    candidates = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in candidates:
        try:
            text = path.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            words = line.split()
            urls = [w for w in words if w.startswith(("http://", "https://"))]
            if not urls or line.lstrip().startswith("#"):
                continue
            url = urls[0]
            if "security" not in url and "debian" in url:
                return url
    pytest.fail("no Debian mirror configured for apt (needed by debootstrap for the base image)", pytrace=False)


@pytest.fixture(scope="session")
def base_image(engine, tmp_path_factory) -> str:
    """A minimal Debian with python3, imported into the engine once (reused while it exists)."""
    if docker("image", "inspect", BASE_IMAGE, check=False).returncode == 0:
        return BASE_IMAGE
    if not shutil.which("debootstrap"):
        pytest.fail("debootstrap is needed to build the local base image (apt-get install debootstrap)", pytrace=False)
    rootfs = tmp_path_factory.mktemp("rootfs") / "root"
    proc = subprocess.run(
        [
            "debootstrap",
            "--variant=minbase",
            "--include=python3-minimal,python3",
            "bookworm",
            str(rootfs),
            debian_mirror(),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0:
        pytest.fail(f"debootstrap failed: {proc.stderr.strip()[-500:]}", pytrace=False)
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    docker("import", "-c", 'CMD ["/bin/bash"]', "-", BASE_IMAGE, stdin=tar.stdout)
    tar.wait()
    shutil.rmtree(rootfs, ignore_errors=True)
    return BASE_IMAGE


VLLM_STANDIN = """#!/bin/sh
# Stand-in for vLLM's `vllm` console script: `vllm serve` keeps running like a server.
echo "stand-in vllm $*"
exec python3 -c 'import signal, sys, time; signal.signal(signal.SIGTERM, lambda *a: sys.exit(0)); time.sleep(10**9)'
"""


def build_standin(base_image: str, wheel: Path, version: str, ctx: Path) -> str:
    """A stand-in for vllm/vllm-openai with the real layout and the real files of one transformers release."""
    digest = hashlib.sha256(wheel.read_bytes() + VLLM_STANDIN.encode()).hexdigest()[:12]
    tag = f"mlops-test/vllm-openai:tf{version}-{digest}"
    if docker("image", "inspect", tag, check=False).returncode == 0:
        return tag
    site = ctx / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    (site / "transformers" / "__init__.py").write_text(f'__version__ = "{version}"\n')
    (ctx / "vllm").write_text(VLLM_STANDIN)
    os.chmod(ctx / "vllm", 0o755)
    (ctx / "Dockerfile").write_text(
        f"FROM {base_image}\n"
        f"COPY site/ {SITE_IN_IMAGE}/\n"
        "COPY vllm /usr/local/bin/vllm\n"
        f"ENV PYTHONPATH={SITE_IN_IMAGE}\n"
        'ENTRYPOINT ["vllm", "serve"]\n'
    )
    docker("build", "--force-rm", "--network", "none", "-q", "-t", tag, str(ctx))
    shutil.rmtree(ctx, ignore_errors=True)
    return tag


@pytest.fixture(scope="session")
def vllm_image(base_image, wheel_pinned, tmp_path_factory) -> str:
    """A stand-in for vllm/vllm-openai with the real layout and the real transformers 5.20.2 files."""
    return build_standin(base_image, wheel_pinned, PINNED, tmp_path_factory.mktemp("vllm-image"))


@pytest.fixture(scope="session")
def vllm_image_other(base_image, wheel_other, tmp_path_factory) -> str:
    """The same stand-in for a later release: the real transformers 5.23.0 files."""
    return build_standin(base_image, wheel_other, OTHER, tmp_path_factory.mktemp("vllm-image-other"))


@pytest.fixture
def running_container(vllm_image):
    name = f"mlops-test-vllm-{os.getpid()}-{next(_counter)}"
    docker("run", "-d", "--network", "none", "--name", name, vllm_image)
    yield name
    docker("rm", "-f", name, check=False)


def _count():
    n = 0
    while True:
        n += 1
        yield n


_counter = _count()


def image_sha(image: str, path: str) -> str:
    out = docker("run", "--rm", "--network", "none", "--entrypoint", "sha256sum", image, path).stdout
    return out.split()[0]


def container_sha(container: str, path: str) -> str:
    return docker("exec", container, "sha256sum", path).stdout.split()[0]
