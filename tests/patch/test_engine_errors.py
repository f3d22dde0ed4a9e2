"""A missing or stopped engine is one clear error (exit 1) with a hint, never a traceback.

These use the real docker client against a socket nobody listens on, and a PATH without any
engine; they need no running engine, so they run everywhere.
"""

from __future__ import annotations

import os
import shutil
import sys

import pytest


@pytest.fixture
def dead_socket(tmp_path):
    return f"unix://{tmp_path}/nobody-listens.sock"


@pytest.mark.skipif(shutil.which("docker") is None, reason="the docker client is not installed")
def test_stopped_docker_engine_is_exit_1_with_a_hint(mlops, dead_socket, pinned_patch, tmp_path):
    env = {"DOCKER_HOST": dead_socket, "MLOPS_ENGINE": ""}
    for argv in (
        ["apply", str(pinned_patch), "--image", "vllm/vllm-openai:latest", "--yes"],
        ["extract", "vllm/vllm-openai:latest", "transformers/x.py", "-o", str(tmp_path / "w")],
        ["status", str(pinned_patch), "--container", "vllm"],
    ):
        r = mlops("patch", *argv, env=env)
        assert r.returncode == 1, r
        assert r.stderr.startswith(f"error: cannot reach the docker engine at DOCKER_HOST={dead_socket}"), r
        assert "hint: start it" in r.stderr and "--engine podman" in r.stderr
        assert "Traceback" not in r.stderr and r.no_report()
    assert not (tmp_path / "w").exists()


def test_no_engine_installed_is_exit_1_with_a_hint(mlops, pinned_patch, tmp_path):
    bare = tmp_path / "bin"
    bare.mkdir()
    os.symlink(sys.executable, bare / "python3")
    env = {"PATH": str(bare), "MLOPS_ENGINE": ""}
    r = mlops("patch", "apply", str(pinned_patch), "--image", "x:1", "--yes", env=env)
    assert r.returncode == 1 and "no container engine found" in r.stderr and "hint: install" in r.stderr, r
    r = mlops("patch", "apply", str(pinned_patch), "--image", "x:1", "--yes", "--engine", "podman", env=env)
    assert r.returncode == 1 and "podman is not installed" in r.stderr and "hint:" in r.stderr, r
    r = mlops("patch", "apply", str(pinned_patch), "--image", "x:1", "--engine", "rkt", env=env)
    assert r.returncode == 2 and "unknown container engine" in r.stderr, r


def test_one_target_only_and_revert_refuses_images(mlops, pinned_patch):
    r = mlops("patch", "apply", str(pinned_patch), "--image", "a", "--container", "b")
    assert r.returncode == 2 and "choose one target" in r.stderr, r
    r = mlops("patch", "revert", str(pinned_patch), "--image", "a")
    assert r.returncode == 2 and "never changed" in r.stderr, r


@pytest.mark.parametrize("tag", ["Bad Tag!!", "UPPER/case:1", "x:", "name:" + "t" * 129, "-lead:1"])
def test_invalid_tag_is_exit_2_before_any_engine_work(mlops, pinned_patch, tag):
    # no engine at all: the tag is refused before one is looked for (it used to start a build, exit 1)
    env = {"PATH": "/nonexistent", "DOCKER_HOST": "unix:///nonexistent.sock"}
    r = mlops("patch", "apply", str(pinned_patch), "--image", "x:1", "--tag", tag, "--yes", env=env)
    assert r.returncode == 2 and r.stderr.startswith("error: not a valid image tag"), r


def test_tag_without_image_is_exit_2(mlops, pinned_patch):
    r = mlops("patch", "apply", str(pinned_patch), "--tag", "a:1", "--yes")
    assert r.returncode == 2 and "--image only" in r.stderr, r


def test_help_has_examples(mlops):
    for sub in ([], ["extract"], ["diff"], ["apply"], ["status"], ["revert"]):
        r = mlops("patch", *sub, "--help")
        assert r.returncode == 0 and "Example" in r.stdout, (sub, r)


def test_engine_choice_docker_first_then_podman():
    from mlops_cli.errors import OperationFailed
    from mlops_cli.patch.engine import select_engine

    both = {"docker": "/usr/bin/docker", "podman": "/usr/bin/podman"}.get
    only_podman = {"podman": "/usr/bin/podman"}.get
    assert select_engine(None, which=both, env={}).name == "docker"
    assert select_engine(None, which=only_podman, env={}).name == "podman"  # docker absent
    assert select_engine("podman", which=both, env={}).name == "podman"
    assert select_engine(None, which=both, env={"MLOPS_ENGINE": "podman"}).name == "podman"
    assert select_engine("docker", which=both, env={"MLOPS_ENGINE": "podman"}).name == "docker"
    with pytest.raises(OperationFailed, match="docker is not installed"):
        select_engine("docker", which=only_podman, env={})
