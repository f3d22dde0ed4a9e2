"""`mlops patch` against a real Docker engine: image and running-container workflows.

Needs the engine `.ci/run` starts (`.ci/docker-up.sh`); skipped with the reason when none is
reachable, and a failure when MLOPS_REQUIRE_CONTAINER_TESTS=1 (CI).
"""

from __future__ import annotations

import json

import pytest

from .conftest import (
    MODELING,
    SHA_5_20_2,
    SHA_PATCHED,
    SITE_IN_IMAGE,
    container_sha,
    docker,
    image_sha,
    mrope_edit,
)

pytestmark = pytest.mark.container
FILE_IN_IMAGE = f"{SITE_IN_IMAGE}/{MODELING}"


def _containers() -> set[str]:
    return set(docker("ps", "-aq").stdout.split())


def _images() -> set[str]:
    return set(docker("images", "-aq", "--no-trunc").stdout.split())


def test_image_workflow_extract_diff_apply_status(mlops, vllm_image, tmp_path):
    before_containers = _containers()
    work = tmp_path / "work"
    r = mlops("patch", "extract", vllm_image, MODELING, "-o", str(work), "--json")
    assert r.returncode == 0, r
    doc = r.json()
    assert doc["package"] == "transformers" and doc["version"] == "5.20.2"
    assert doc["site"] == SITE_IN_IMAGE  # asked the image's own python3, not guessed
    assert doc["files"][0]["sha256"] == SHA_5_20_2
    assert any("--model-impl transformers" in n for n in doc["notes"])  # the vLLM caveat
    assert _containers() == before_containers  # no container left behind
    edited = work / MODELING
    edited.write_text(mrope_edit(edited.read_text()))

    patch = tmp_path / "qwen-mrope.patch"
    r = mlops("patch", "diff", str(work), "-o", str(patch), "--json")
    assert r.returncode == 0, r
    assert r.json()["files"][0]["sha256_after"] == SHA_PATCHED
    text = patch.read_text()
    assert "# version: 5.20.2" in text and SHA_5_20_2 in text and SHA_PATCHED in text

    images_before = _images()
    r = mlops("patch", "apply", str(patch), "--image", vllm_image, "--dry-run")
    assert r.returncode == 0, r
    assert "+                    current_pos = int(vision_position_ids.max()) + 1" in r.stdout
    assert "build " in r.stdout and "['vllm', 'serve']" in r.stdout
    base_id = json.loads(docker("image", "inspect", vllm_image).stdout)[0]["Id"]
    assert base_id[:19] in r.stdout
    assert _images() == images_before  # a dry run builds nothing

    r = mlops("patch", "apply", str(patch), "--image", vllm_image, "--yes", "--json")
    assert r.returncode == 0, r
    doc = r.json()
    tag = doc["new_image"]
    assert doc["result"] == "applied" and tag.startswith(vllm_image + "-mlops-")
    assert doc["files"][0]["sha256_before"] == SHA_5_20_2 and doc["files"][0]["sha256_after"] == SHA_PATCHED
    try:
        info = json.loads(docker("image", "inspect", tag).stdout)[0]
        assert info["Config"]["Entrypoint"] == ["vllm", "serve"]
        labels = info["Config"]["Labels"]
        assert labels["org.mlops.patch.sha256"] == doc["patch"]["sha256"]
        assert labels["org.mlops.patch.package"] == "transformers"
        assert labels["org.mlops.patch.version"] == "5.20.2"
        assert labels["org.mlops.patch.base-image"] == vllm_image
        assert labels["org.mlops.patch.base-image-id"] == base_id
        assert image_sha(tag, FILE_IN_IMAGE) == SHA_PATCHED
        assert image_sha(vllm_image, FILE_IN_IMAGE) == SHA_5_20_2  # the base is untouched
        assert _containers() == before_containers

        r = mlops("patch", "status", str(patch), "--image", tag, "--json")
        assert r.returncode == 0 and r.json()["result"] == "applied", r
        r = mlops("patch", "status", str(patch), "--image", vllm_image)
        assert r.returncode == 1 and "status: not-applied" in r.stdout, r

        # Applying to the patched image is a no-op that says so.
        r = mlops("patch", "apply", str(patch), "--image", tag, "--yes")
        assert r.returncode == 0 and "already applied" in r.stdout, r
        # Applying again to the base finds the derived tag already built from this base and patch.
        r = mlops("patch", "apply", str(patch), "--image", vllm_image, "--yes", "--json")
        assert r.returncode == 0 and r.json()["result"] == "already-applied", r
    finally:
        docker("rmi", tag, check=False)


def test_image_wrong_content_conflict_builds_nothing(mlops, vllm_image, pinned_patch, tmp_path):
    # A "new release" image: same version string, different file content (upstream moved the code).
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    edit = f"p={FILE_IN_IMAGE!r}; s=open(p).read(); open(p, 'w').write(chr(35) + ' moved' + chr(10) + s)"
    (ctx / "Dockerfile").write_text(f"FROM {vllm_image}\nRUN {json.dumps(['python3', '-c', edit])}\n")
    tag = "mlops-test/vllm-openai:moved"
    docker("build", "--force-rm", "--network", "none", "-q", "-t", tag, str(ctx))
    try:
        images = _images()
        r = mlops("patch", "apply", str(pinned_patch), "--image", tag, "--yes")
        assert r.returncode == 1, r
        assert "matches neither the pinned original" in r.stderr and "conflict" in r.stdout.lower()
        assert _images() == images
        r = mlops("patch", "status", str(pinned_patch), "--image", tag, "--json")
        assert r.returncode == 1 and r.json()["result"] == "conflict", r
    finally:
        docker("rmi", tag, check=False)


def test_image_import_check(mlops, vllm_image, wheel_pinned, tmp_path):
    """The patched module must import in the new image, unless it did not import before either."""
    from mlops_cli.patch import patchfile as pf

    from .conftest import wheel_file

    # transformers/dependency_versions_table.py imports in the stand-in (stdlib only, stub __init__).
    rel = "transformers/dependency_versions_table.py"
    original = wheel_file(wheel_pinned, rel)
    good, broken = tmp_path / "good.patch", tmp_path / "broken.patch"
    good.write_bytes(pf.make_patch("transformers", "5.20.2", [(rel, original, original + b"# pinned by mlops\n")]))
    broken.write_bytes(
        pf.make_patch("transformers", "5.20.2", [(rel, original, b"import mlops_no_such_module_xyz\n" + original)])
    )
    tag = "mlops-test/import-check:1"
    r = mlops("patch", "apply", str(broken), "--image", vllm_image, "--tag", tag, "--yes")
    assert r.returncode == 1, r
    assert "does not import" in r.stderr and "mlops_no_such_module_xyz" in r.stderr and "removed" in r.stderr
    assert docker("image", "inspect", tag, check=False).returncode != 0  # the failed image is gone
    try:
        r = mlops("patch", "apply", str(good), "--image", vllm_image, "--tag", tag, "--yes", "--json")
        assert r.returncode == 0 and r.json()["import_check"]["ok"] is True, r
        docker("rmi", tag)
        # The modeling file needs torch, absent from the stand-in: it did not import before the
        # patch either, so the check is inconclusive (a warning), not a failure.
        original = wheel_file(wheel_pinned, MODELING)
        mrope = tmp_path / "mrope.patch"
        mrope.write_bytes(
            pf.make_patch("transformers", "5.20.2", [(MODELING, original, mrope_edit(original.decode()).encode())])
        )
        r = mlops("patch", "apply", str(mrope), "--image", vllm_image, "--tag", tag, "--yes", "--json")
        assert r.returncode == 0 and r.json()["import_check"]["ok"] is None, r
        assert "import check inconclusive" in r.stderr
        docker("rmi", tag)
        # Switched off, the broken patch builds (the file still compiles).
        r = mlops(
            "patch", "apply", str(broken), "--image", vllm_image, "--tag", tag, "--yes", "--no-import-check", "--json"
        )
        assert r.returncode == 0 and r.json()["import_check"]["skipped"] is True, r
    finally:
        docker("rmi", tag, check=False)


def test_corrupt_patch_on_image_is_exit_2_and_builds_nothing(mlops, vllm_image, pinned_patch, tmp_path):
    bad = tmp_path / "bad.patch"
    bad.write_text(pinned_patch.read_text().replace("@@ -1044,7 +1044,10 @@", "@@ -1044,7 +1044,12 @@"))
    images = _images()
    r = mlops("patch", "apply", str(bad), "--image", vllm_image, "--yes")
    assert r.returncode == 2, r
    assert r.stderr.startswith("error: corrupt patch") and "Traceback" not in r.stderr
    assert _images() == images


def test_running_container_apply_status_revert(mlops, running_container, pinned_patch, tmp_path):
    name = running_container
    r = mlops("patch", "extract", "--container", name, MODELING, "-o", str(tmp_path / "w"), "--json")
    assert r.returncode == 0 and r.json()["files"][0]["sha256"] == SHA_5_20_2, r
    assert (tmp_path / "w" / MODELING).read_bytes() == (tmp_path / "w" / ".mlops" / "original" / MODELING).read_bytes()
    r = mlops("patch", "status", str(pinned_patch), "--container", name)
    assert r.returncode == 1 and "not-applied" in r.stdout, r
    r = mlops("patch", "apply", str(pinned_patch), "--container", name, "--yes", "--json")
    assert r.returncode == 0, r
    doc = r.json()
    assert doc["target"]["kind"] == "container" and doc["result"] == "applied"
    assert doc["site"] == SITE_IN_IMAGE
    assert container_sha(name, FILE_IN_IMAGE) == SHA_PATCHED
    r = mlops("patch", "apply", str(pinned_patch), "--container", name, "--yes")
    assert r.returncode == 0 and "already applied" in r.stdout, r
    r = mlops("patch", "status", str(pinned_patch), "--container", name, "--json")
    assert r.returncode == 0 and r.json()["result"] == "applied"
    r = mlops("patch", "revert", str(pinned_patch), "--container", name, "--yes", "--json")
    assert r.returncode == 0 and r.json()["result"] == "reverted", r
    assert container_sha(name, FILE_IN_IMAGE) == SHA_5_20_2
    r = mlops("patch", "revert", str(pinned_patch), "--container", name, "--yes")
    assert r.returncode == 0 and "not applied" in r.stdout, r
    assert json.loads(docker("inspect", name).stdout)[0]["State"]["Running"]


def test_running_container_conflicting_hunk_changes_nothing(mlops, running_container, pinned_patch):
    name = running_container
    # Someone edited the very line the patch changes, by hand, inside the container.
    docker(
        "exec",
        name,
        "python3",
        "-c",
        f"p='{FILE_IN_IMAGE}'; s=open(p).read(); "
        "open(p,'w').write(s.replace('// spatial_merge_size\\n', '// spatial_merge_size  # hand edit\\n', 1))",
    )
    before = container_sha(name, FILE_IN_IMAGE)
    r = mlops("patch", "apply", str(pinned_patch), "--container", name, "--yes", "--allow-other-version")
    assert r.returncode == 1, r
    assert "hunks match neither" in r.stderr
    assert container_sha(name, FILE_IN_IMAGE) == before


def test_stopped_container_is_a_clear_error(mlops, vllm_image, pinned_patch):
    name = "mlops-test-stopped"
    docker("rm", "-f", name, check=False)
    docker("create", "--network", "none", "--name", name, vllm_image)
    try:
        r = mlops("patch", "apply", str(pinned_patch), "--container", name, "--yes")
        assert r.returncode == 1 and "is not running" in r.stderr and "hint: start it" in r.stderr, r
    finally:
        docker("rm", "-f", name, check=False)


def test_image_with_only_python_falls_back_to_it(mlops, vllm_image, pinned_patch, tmp_path):
    """No python3 on PATH: the image's `python` is asked instead; never a guessed path."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        f"FROM {vllm_image}\n"
        'RUN ["/bin/sh", "-c", "ln -s /usr/bin/python3.11 /usr/local/bin/python && rm /usr/bin/python3"]\n'
    )
    tag = "mlops-test/vllm-openai:only-python"
    docker("build", "--force-rm", "--network", "none", "-q", "-t", tag, str(ctx))
    try:
        r = mlops("patch", "status", str(pinned_patch), "--image", tag, "--json")
        assert r.returncode == 1 and r.json()["result"] == "not-applied", r
        assert r.json()["python"] == "/usr/local/bin/python" and r.json()["site"] == SITE_IN_IMAGE
    finally:
        docker("rmi", tag, check=False)


@pytest.fixture
def podman_image(vllm_image, tmp_path, monkeypatch):
    """The same stand-in image, loaded into Podman (which then runs the workflow on its own)."""
    import shutil
    import subprocess

    if not shutil.which("podman"):
        pytest.skip("podman is not installed (apt-get install podman); the Docker tests cover the workflow")
    # Hosts with a low hard nofile limit (like the CI VM) refuse podman's default rlimits
    # (research §1.2); containers.conf is podman's own place for that, not an mlops flag.
    conf = tmp_path / "containers.conf"
    conf.write_text('[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n')
    monkeypatch.setenv("CONTAINERS_CONF", str(conf))
    save = subprocess.Popen(["docker", "save", vllm_image], stdout=subprocess.PIPE)
    load = subprocess.run(["podman", "load"], stdin=save.stdout, capture_output=True, text=True, timeout=600)
    save.wait()
    assert load.returncode == 0, load.stderr
    return "localhost/" + vllm_image


def test_podman_engine_builds_the_derived_image(mlops, podman_image, pinned_patch):
    import subprocess

    tag = "localhost/mlops-test/podman:patched"
    env = {"DOCKER_HOST": "unix:///nonexistent.sock"}  # proves docker is not used
    r = mlops(
        "patch",
        "apply",
        str(pinned_patch),
        "--image",
        podman_image,
        "--engine",
        "podman",
        "--tag",
        tag,
        "--yes",
        "--json",
        env=env,
    )
    try:
        assert r.returncode == 0 and r.json()["result"] == "applied", r
        assert r.json()["target"]["engine"] == "podman"
        info = json.loads(
            subprocess.run(["podman", "image", "inspect", tag], capture_output=True, text=True, check=True).stdout
        )[0]
        assert info["Config"]["Entrypoint"] == ["vllm", "serve"]
        assert info["Config"]["Labels"]["org.mlops.patch.sha256"] == r.json()["patch"]["sha256"]
        r = mlops("patch", "status", str(pinned_patch), "--image", tag, "--json", env={**env, "MLOPS_ENGINE": "podman"})
        assert r.returncode == 0 and r.json()["result"] == "applied", r
    finally:
        subprocess.run(["podman", "rmi", tag], capture_output=True)
