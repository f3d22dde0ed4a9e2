"""Hostile input: any bytes give a report (or a clean exit 2) in bounded time; every regex is
linear (a 1 MB single-token line would take hours with a backtracking pattern)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from contextlib import contextmanager

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.train.conftest import analyse_bytes

from mlops_cli.errors import UsageError

BOUND_S = 20  # a guard against catastrophic backtracking, not a speed test (benchmarks/ measures speed)


@contextmanager
def time_bound(seconds: int):
    def expired(signum, frame):
        raise AssertionError(f"no result within {seconds} s: a regex or a loop is not linear")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def run_any(data: bytes):
    with time_bound(BOUND_S):
        try:
            report = analyse_bytes(data)
        except UsageError as exc:
            assert exc.exit_code == 2 and "not a text log" in exc.message
            return None
    assert report.exit_code in (0, 1)
    doc = report.to_json()
    import json

    json.dumps(doc, allow_nan=False)
    return report


TOKENS = [
    b"loss",
    b"'loss': ",
    b"nan",
    b"NaN",
    b"inf",
    b"-nan(ind)",
    b"Infinity",
    b"0.0",
    b"1e-05",
    b"3.5",
    b"|",
    b":",
    b"=",
    b" ",
    b"\n",
    b"\r",
    b"{",
    b"}",
    b"'",
    b'"',
    b"iteration",
    b"step=",
    b"skipped=",
    b" lm loss: ",
    b"grad norm: ",
    b"[rank3]:",
    b"OVERFLOW! Rank 0 Skipping step. Attempted loss scale: ",
    b"reducing to ",
    b"CUDA out of memory. ",
    b"Tried to allocate 2.00 GiB",
    b"WorkNCCL(",
    b"OpType=ALLREDUCE",
    b"Timeout(ms)=",
    b"ran for ",
    b"error",
    b"Error",
    b"Assertion `t >= 0 && t < n_classes` failed",
    b"device-side assert triggered",
    b"exitcode: -9",
    b"DataLoader worker (pid 1) is killed by signal: Killed",
    b"returned nan values in its 0th output",
    b"Function '",
    b"Backward0'",
    b"\x1b[31m",
    b"\t",
    b"10/100 [00:10<",
    b"Epoch [1][5/10]",
    b"\xff\xfe",
    b"\x00",
]


@settings(derandomize=True, max_examples=60, deadline=None)
@given(st.binary(max_size=4096))
def test_any_bytes_give_a_result_or_a_clean_usage_error(data):
    run_any(data)


@settings(derandomize=True, max_examples=80, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=400))
def test_any_mix_of_log_tokens_gives_a_result(tokens):
    run_any(b"".join(tokens))


@settings(derandomize=True, max_examples=20, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=200), st.integers(min_value=1, max_value=64))
def test_chunking_does_not_change_the_verdict(tokens, chunk):
    import io

    from mlops_cli.train.diagnose import Doctor
    from mlops_cli.train.parse import LogParser

    data = b"".join(tokens)
    if b"\x00" in data:
        return

    def verdict(step: int):
        p, d = LogParser("log"), Doctor()
        d.set_context("log", p.context)
        for i in range(0, len(data), step):
            p.feed(data[i : i + step])
            d.feed(p.drain())
        p.close()
        d.feed(p.drain())
        return [(f.cls, f.step, f.line) for f in d.finish()]

    with time_bound(BOUND_S):
        assert verdict(chunk) == verdict(len(data) or 1)
    del io


LINEAR = textwrap.dedent("""
    import sys
    from mlops_cli.train.analyse import analyse
    import io
    token = sys.argv[1].encode()
    data = token * (1_000_000 // len(token))
    analyse([("one-line", io.BytesIO(data))])
    analyse([("two-lines", io.BytesIO(b"step 1 | loss " + data + b"\\n" + data))])
    print("done")
""")


@pytest.mark.parametrize(
    "token",
    [
        "a",
        "9",
        " ",
        "loss",
        "loss:",
        "nan",
        "'",
        "{'",
        "|",
        "=",
        "1.",
        "e",
        "-",
        "WorkNCCL(",
        "Tried to allocate ",
        "iteration ",
        "[rank",
        "Epoch [",
        "x9:",
        "grad norm: ",
        "OVERFLOW! Attempted loss scal",
    ],
)
def test_a_1mb_single_token_line_is_read_in_bounded_time(token):
    r = subprocess.run([sys.executable, "-c", LINEAR, token], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "done" in r.stdout, r.stderr[-2000:]
