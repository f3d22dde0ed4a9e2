"""`-r` files: comments and continuations work; index options, -e and URLs are bad input (uv would
otherwise resolve from a source mlops neither fetches from nor records); --hash pins are held."""

from __future__ import annotations

import pytest

from .conftest import manifest


@pytest.mark.parametrize(
    "content, words",
    [
        ("alpha\n--extra-index-url https://pypi.org/simple\n", "r.txt:2: --extra-index-url in a requirements file"),
        ("-i http://127.0.0.1:9/simple\nalpha\n", "r.txt:1: --index-url in a requirements file"),
        ("--find-links /tmp\nalpha\n", "r.txt:1: --find-links"),
        ("-e .\nalpha\n", "r.txt:1: -e/--editable"),
        ("https://example.com/alpha-1.0-py3-none-any.whl\n", "r.txt:1: malformed requirement"),
        ("# a comment\nalpha @ https://example.com/a.whl\n", "r.txt:2: direct URL requirement"),
        ("-r nested.txt\nalpha\n", "nested.txt:1: --index-url in a requirements file"),
    ],
)
def test_unbundlable_lines_are_exit_2_naming_file_and_line(content, words, index, wheels):
    (wheels.work / "r.txt").write_text(content)
    (wheels.work / "nested.txt").write_text("--index-url http://127.0.0.1:9/simple\n")
    r = wheels("-r", "r.txt", "-o", "out", "--json", index_url=index.url)
    assert r.returncode == 2, r
    assert r.no_report() and r.stderr.startswith(f"error: {words}"), r.stderr
    assert not (wheels.work / "out").exists()


def test_binary_requirements_file_is_exit_2(index, wheels):
    (wheels.work / "r.txt").write_bytes(b"\xff\xfe\x00\x00")
    r = wheels("-r", "r.txt", "-o", "out", index_url=index.url)
    assert r.returncode == 2, r
    assert r.stderr.startswith("error: cannot read requirements file r.txt: not UTF-8")


def test_hash_pins_in_the_file_are_held(index, wheels):
    first = wheels("alpha==1.0", "-o", "first", "--json", index_url=index.url)
    real = next(p["sha256"] for p in first.json()["packages"] if p["name"] == "alpha")
    # comments, a continuation line and a second (wrong) hash beside the right one: accepted
    (wheels.work / "ok.txt").write_text(
        f"# pinned\nalpha==1.0 \\\n    --hash=sha256:{'0' * 64} \\\n    --hash=sha256:{real}  # ours\n"
    )
    ok = wheels("-r", "ok.txt", "-o", "ok", "--json", index_url=index.url)
    assert ok.returncode == 0, ok
    assert {p["name"] for p in manifest(wheels.work / "ok")["packages"]} >= {"alpha", "beta", "delta"}
    (wheels.work / "bad.txt").write_text(f"alpha==1.0 --hash=sha256:{'0' * 64}\n")
    bad = wheels("-r", "bad.txt", "-o", "bad", "--json", index_url=index.url)
    assert bad.returncode == 1, bad
    assert "matches none of the --hash pins for alpha" in bad.stderr and bad.no_report()
    assert not (wheels.work / "bad").exists()
