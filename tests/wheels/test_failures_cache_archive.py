"""Bad input, refusals, the cache and resume, reproducible archives, private-index credentials."""

from __future__ import annotations

import hashlib
import os

import pytest

from .conftest import manifest


def _one_error_line(r) -> str:
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r
    return lines[0]


def _nothing_written(work) -> None:
    assert [p.name for p in work.iterdir()] == [], list(work.iterdir())


@pytest.mark.parametrize(
    "args, code, words",
    [
        (["swanlab==="], 2, "malformed requirement"),
        (["alpha", "--target", "ubuntu18.10"], 2, "unknown target preset"),
        (["alpha", "--platform", "win_amd64"], 2, "unsupported platform tag"),
        (["alpha", "-r", "missing.txt"], 2, "cannot read requirements file"),
        (["alpha==7.0"], 1, "there is no version of alpha==7.0"),
        (["platsd"], 1, "platsd-1.0.tar.gz has no wheel for the target and is not pure Python"),
        (["puresd", "--sdist", "refuse"], 1, "sdist-only dependencies (no wheel for the target): puresd-1.0.tar.gz"),
        (["badhash"], 1, "sha256 mismatch for badhash-1.0-py3-none-any.whl"),
        (
            ["alpha", "--target", "ubuntu22.04-aarch64", "--check-install"],
            2,
            "--check-install: no interpreter on this machine for target ubuntu22.04-aarch64 (Python 3.10, aarch64)",
        ),
        (["--sdist", "refuse"], 2, "nothing to bundle"),
        (["alpha", "--archive", "zip"], 2, "--archive must be dir or tar.gz"),
        (["--verify", "no-such-bundle"], 2, "no such bundle folder or archive"),
        (["alpha", "--extra-index-url", "pypi.org/simple"], 2, "not an index URL: 'pypi.org/simple'"),
        (["alpha", "--extra-index-url", "ftp://mirror/simple"], 2, "not an index URL"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(args, code, words, index, wheels):
    r = wheels(*args, "-o", "out", index_url=index.url)
    assert r.returncode == code, r
    assert words in _one_error_line(r)
    assert r.no_report()
    _nothing_written(wheels.work)


def test_refused_hash_never_reaches_the_cache(index, wheels):
    r = wheels("badhash", index_url=index.url)
    assert r.returncode == 1
    real = hashlib.sha256(index.file("badhash-1.0-py3-none-any.whl").data).hexdigest()
    assert not list(wheels.cache.rglob(real)) and not list(wheels.cache.rglob("*.part"))


def test_index_down_is_one_clear_line(wheels):
    r = wheels("alpha==1.0", "-o", "out", index_url="http://127.0.0.1:9/simple")
    assert r.returncode == 1
    assert "package index http://127.0.0.1:9/simple is unreachable" in _one_error_line(r)
    _nothing_written(wheels.work)


def test_yanked_release_only_when_pinned_exactly(index, wheels):
    r = wheels("yanky", "-o", "a", "--json", index_url=index.url)
    assert r.returncode == 0, r
    assert [(p["version"], p["yanked"]) for p in r.json()["packages"]] == [("0.9", False)]
    assert "yanked" not in r.stderr
    r2 = wheels("yanky==1.0", "-o", "b", "--json", index_url=index.url)
    assert r2.returncode == 0, r2
    (pkg,) = r2.json()["packages"]
    assert (pkg["version"], pkg["yanked"], pkg["yanked_reason"]) == ("1.0", True, "broken build")
    assert "warning: yanky==1.0 is yanked (broken build)" in r2.stderr
    assert r2.json()["warnings"] == ["yanky==1.0 is yanked (broken build); it is used because it is pinned exactly"]
    assert manifest(wheels.work / "b")["packages"][0]["yanked"] is True


def test_second_bundle_downloads_nothing_and_partial_downloads_resume(index, wheels):
    first = wheels("alpha==1.0", "-o", "one", "--json", index_url=index.url).json()
    assert first["cache_hits"] == 0 and first["downloaded_bytes"] > 0
    second = wheels("alpha==1.0", "-o", "two", "--json", index_url=index.url).json()
    assert second["downloaded_bytes"] == 0 and second["cache_hits"] == len(second["packages"])
    # damage: drop beta from the cache and leave half of it as an interrupted download
    beta = next(p for p in second["packages"] if p["name"] == "beta")
    blob = wheels.cache / "wheels" / "blobs" / beta["sha256"][:2] / beta["sha256"]
    data = blob.read_bytes()
    blob.unlink()
    part = wheels.cache / "wheels" / "partial" / f"{beta['sha256']}.part"
    part.write_bytes(data[: len(data) // 2])
    ranges = index.served["mlops_range"]
    third = wheels("alpha==1.0", "-o", "three", "--json", index_url=index.url).json()
    assert third["downloaded_bytes"] == len(data) - len(data) // 2
    assert index.served["mlops_range"] == ranges + 1 and blob.read_bytes() == data and not part.exists()


def test_archive_is_reproducible_and_verifiable(index, wheels, mlops, tmp_path):
    r1 = wheels("alpha==1.0", "puresd", "--archive", "tar.gz", "-o", "x/site", index_url=index.url)
    assert r1.returncode == 0, r1
    a = wheels.work / "x" / "site.tar.gz"
    first = a.read_bytes()
    os.utime(a, (0, 0))
    r2 = wheels("alpha==1.0", "puresd", "--archive", "tar.gz", "-o", "x/site", "--json", index_url=index.url)
    assert r2.returncode == 0, r2
    assert a.read_bytes() == first
    assert sorted(p.name for p in (wheels.work / "x").iterdir()) == ["site.tar.gz"]
    v = mlops("wheels", "--verify", str(a), "--json")
    # every file of the bundle but manifest.json: wheels, requirements file, lock, simple/, the tool files
    import tarfile

    with tarfile.open(a) as tar:
        members = [m.name for m in tar.getmembers() if m.isfile()]
    assert v.returncode == 0 and v.json()["ok"] and v.json()["files_checked"] == len(members) - 1, v
    assert {"site/install.sh", "site/_bundle.py", "site/README.txt"} <= set(members)


def test_credentials_are_used_but_never_written(wheels, tmp_path):
    from . import fakeindex

    idx = fakeindex.standard_index()
    idx.auth = ("robot", "s3cr3t-token")
    server = fakeindex.serve(idx)
    try:
        denied = wheels("alpha==1.0", "-o", "no", index_url=idx.url)
        assert denied.returncode == 1 and "refused access" in _one_error_line(denied)
        url = idx.url.replace("http://", "http://robot:s3cr3t-token@")
        r = wheels("alpha==1.0", "-o", "yes", "--json", index_url=url)
        assert r.returncode == 0, r
        assert "s3cr3t" not in r.stdout
        for path in (wheels.work / "yes").rglob("*"):
            if path.is_file():
                assert b"s3cr3t" not in path.read_bytes(), path
        # the same credentials from ~/.netrc
        home = tmp_path / "home"
        home.mkdir()
        (home / ".netrc").write_text("machine 127.0.0.1 login robot password s3cr3t-token\n")
        os.chmod(home / ".netrc", 0o600)
        r2 = wheels("alpha==1.0", "-o", "netrc", index_url=idx.url, env={"HOME": str(home)})
        assert r2.returncode == 0, r2
    finally:
        server.shutdown()


def test_extra_index_fills_gaps_but_never_overrides_the_first(index, wheels):
    """First-index rule: a name the first index has is never taken from the extra one
    (the dependency-confusion attack); a name only the extra index has comes from there."""
    from . import fakeindex

    extra = fakeindex.FakeIndex()
    for project, version in (("alpha", "9.0"), ("zeta", "1.0")):  # a hostile alpha 9.0, a real zeta
        name, data = fakeindex.make_wheel(project, version)
        extra.add(project, fakeindex.Listed(name, data))
    server = fakeindex.serve(extra)
    try:
        r = wheels("alpha", "zeta", "--extra-index-url", extra.url, "-o", "mixed", "--json", index_url=index.url)
        assert r.returncode == 0, r
        pkgs = {p["name"]: p for p in r.json()["packages"]}
        assert pkgs["alpha"]["version"] == "1.0" and pkgs["alpha"]["index"] == index.url
        assert pkgs["zeta"]["index"] == extra.url and pkgs["zeta"]["source_url"].startswith(extra.url.rsplit("/", 1)[0])
        assert manifest(wheels.work / "mixed")["inputs"]["index_urls"] == [index.url, extra.url]
    finally:
        server.shutdown()


def test_output_that_is_not_a_bundle_is_not_replaced(index, wheels):
    (wheels.work / "precious").mkdir()
    (wheels.work / "precious" / "thesis.tex").write_text("years of work")
    r = wheels("alpha==1.0", "-o", "precious", index_url=index.url)
    assert r.returncode == 2 and "is not a bundle" in _one_error_line(r)
    assert (wheels.work / "precious" / "thesis.tex").read_text() == "years of work"
    # an existing bundle is replaced whole
    assert wheels("alpha==1.0", "-o", "b", index_url=index.url).returncode == 0
    assert wheels("yanky<1", "-o", "b", index_url=index.url).returncode == 0
    assert [p["name"] for p in manifest(wheels.work / "b")["packages"]] == ["yanky"]
    # ... but not once someone put a file of theirs into it (W2: nothing unlisted)
    (wheels.work / "b" / "notes.txt").write_text("mine")
    r = wheels("alpha==1.0", "-o", "b", index_url=index.url)
    assert r.returncode == 2 and "notes.txt not listed in its manifest.json" in _one_error_line(r)
    assert (wheels.work / "b" / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in wheels.work.iterdir()) == ["b", "precious"]


def test_archive_never_replaces_a_folder_of_that_name(index, wheels):
    # -o data --archive tar.gz writes data.tar.gz; a *folder* by that name is someone's data
    (wheels.work / "data.tar.gz").mkdir()
    (wheels.work / "data.tar.gz" / "keep.txt").write_text("precious")
    r = wheels("alpha==1.0", "-o", "data", "--archive", "tar.gz", index_url=index.url)
    assert r.returncode == 2 and "it is not a file" in _one_error_line(r)
    assert (wheels.work / "data.tar.gz" / "keep.txt").read_text() == "precious"


@pytest.mark.parametrize("doc", ["[]", '{"files": "x"}', '{"files": [{"path": 1}]}', '{"files": [7]}'])
def test_verify_a_manifest_of_the_wrong_shape_is_exit_2(doc, wheels):
    (wheels.work / "b").mkdir()
    (wheels.work / "b" / "manifest.json").write_text(doc)
    r = wheels("--verify", "b", "--json")
    assert r.returncode == 2, r
    assert "manifest.json is damaged" in _one_error_line(r) and r.no_report()


def test_printed_install_command_can_be_pasted_for_a_name_with_spaces(index, wheels):
    r = wheels("alpha==1.0", "-o", "my bundle", index_url=index.url)
    assert r.returncode == 0, r
    assert "  sh 'my bundle/install.sh'" in r.stdout, r.stdout
    r = wheels("alpha==1.0", "-o", "my bundle", "--archive", "tar.gz", index_url=index.url)
    assert "tar xzf 'my bundle.tar.gz' && sh 'my bundle/install.sh'" in r.stdout, r.stdout


def test_sigterm_mid_resolution_leaves_nothing_behind(tmp_path):
    """A CI timeout (SIGTERM) while uv waits on a silent index: no temporary folder, no orphaned uv."""
    import signal
    import socket
    import subprocess
    import sys
    import time

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # accepts connections, never answers
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/simple"
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_"))}
    env["MLOPS_CACHE_DIR"] = str(tmp_path / "cache")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlops_cli", "wheels", "alpha", "-o", "out", "--index-url", url],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 60
        while not any(p.name.endswith(".tmp") for p in work.iterdir()) and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # uv is running by now
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
        silent.close()
    assert proc.returncode == 130 and "error: interrupted" in stderr, stderr
    assert list(work.iterdir()) == []
    leftover = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(work) not in leftover, "uv was left running"
