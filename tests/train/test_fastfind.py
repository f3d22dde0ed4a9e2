"""The scanner's substring search: glibc's memmem through ctypes must give bytes.find's answers,
never read outside its bytes, and leave every report unchanged."""

from __future__ import annotations

import json
import os
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.train.conftest import FIXTURES, analyse_bytes

from mlops_cli.train import fastfind
from mlops_cli.train.scan import NEEDLES

GLIBC = fastfind._glibc_version()
needs_memmem = pytest.mark.skipif(
    GLIBC is None or GLIBC < fastfind.GLIBC_MIN,
    reason=f"memmem is used on glibc >= 2.29 only; this C library is {GLIBC}: bytes.find is the search here",
)


@pytest.fixture
def every_size(monkeypatch):
    """memmem for every search, however short (by default short ones go to bytes.find)."""
    monkeypatch.setattr(fastfind, "SHORT", 0)


@pytest.fixture
def no_memmem(monkeypatch):
    monkeypatch.setattr(fastfind, "_memmem", False)


@needs_memmem
def test_memmem_is_found_on_this_glibc():
    assert fastfind.available()
    data = b"x" * 10_000 + b"Exitcode" + b"y" * 10_000
    find = fastfind.finder(data)
    assert find is not data.find  # the ctypes path, not the fallback
    assert find(b"Exitcode", 0, len(data)) == 10_000


def test_the_kill_switch_gives_bytes_find(monkeypatch):
    monkeypatch.setattr(fastfind, "_memmem", None)  # not loaded yet
    monkeypatch.setenv("MLOPS_NO_MEMMEM", "1")
    data = b"a" * 10_000
    assert not fastfind.available()
    assert fastfind.finder(data) == data.find


ALPHABET = b"an\x00\nl"


@needs_memmem
@settings(derandomize=True, max_examples=400, deadline=None)
@given(
    st.binary(max_size=300).map(lambda b: bytes(ALPHABET[c % len(ALPHABET)] for c in b)),
    st.binary(min_size=1, max_size=4).map(lambda b: bytes(ALPHABET[c % len(ALPHABET)] for c in b)),
    st.integers(min_value=-400, max_value=400),
    st.integers(min_value=-400, max_value=400),
)
def test_same_answer_as_bytes_find_for_any_bounds(data, needle, start, stop):
    fastfind.SHORT, old = 0, fastfind.SHORT
    try:
        assert fastfind.finder(data)(needle, start, stop) == data.find(needle, start, stop)
    finally:
        fastfind.SHORT = old


@needs_memmem
def test_same_answer_on_a_big_block_with_every_needle_planted():
    rng = random.Random(5)
    words = [b"loss", b"step", b"nan", b"error", b"nccl", b"kill", b"exit", b"over", b"iteration", b"\n", b" ", b"0.1"]
    parts = [rng.choice(words) for _ in range(600_000)]
    for needle in NEEDLES:
        for _ in range(3):
            parts.insert(rng.randrange(len(parts)), needle)
    data = b" ".join(parts)
    assert len(data) > 2 << 20
    find = fastfind.finder(data)
    for needle in NEEDLES:
        pos, mine, theirs = 0, [], []
        while (i := find(needle, pos, len(data))) >= 0:
            mine.append(i)
            pos = i + 1
        pos = 0
        while (i := data.find(needle, pos)) >= 0:
            theirs.append(i)
            pos = i + 1
        assert mine == theirs and len(mine) >= 3, needle
        assert find(needle, len(data) - 1, len(data) + 10) == -1


def _logs():
    return sorted(p for p in FIXTURES.rglob("*.log") if p.stat().st_size)


def _report(data: bytes, name: str) -> str:
    return json.dumps(analyse_bytes(data, name).to_json(), sort_keys=True)


@needs_memmem
def test_every_fixture_log_gets_the_same_report_with_memmem_and_without(monkeypatch):
    logs = _logs()
    assert len(logs) > 300
    monkeypatch.setattr(fastfind, "SHORT", 0)
    with_memmem = {p: _report(p.read_bytes(), p.name) for p in logs}
    monkeypatch.setattr(fastfind, "_memmem", False)
    for p in logs:
        assert _report(p.read_bytes(), p.name) == with_memmem[p], os.fspath(p.relative_to(FIXTURES))


@needs_memmem
def test_a_long_log_gets_the_same_report_with_memmem_and_without(monkeypatch):
    """Several 4 MiB blocks, so sampling, look-behind and the block seams all run on memmem's answers."""
    healthy = (FIXTURES / "healthy_llamafactory3753_lora.log").read_bytes()
    failing = (FIXTURES / "nanogpt210_nan_at_iter1.log").read_bytes()
    data = healthy * ((10 << 20) // len(healthy)) + failing
    with_memmem = _report(data, "long.log")
    assert json.loads(with_memmem)["healthy"] is False
    monkeypatch.setattr(fastfind, "_memmem", False)
    assert _report(data, "long.log") == with_memmem
