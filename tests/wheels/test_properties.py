"""Property tests (issue 8): index pages, target files and requirement files from anywhere give a
result or one clean error (exit 2 for user input, exit 1 for an index's page), never an internal
error, and quickly. Fixed seed, small counts: CI stays fast."""

from __future__ import annotations

import json
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from mlops_cli.errors import MlopsError, OperationFailed, UsageError
from mlops_cli.wheels import index as I
from mlops_cli.wheels import targets as T
from mlops_cli.wheels.reqfile import scan_text

FAST = settings(derandomize=True, max_examples=150, deadline=None)
BOUND_S = 2.0  # per example: a linear parser takes milliseconds; a quadratic one takes minutes

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=30,
)
file_entry = st.fixed_dictionaries(
    {},
    optional={
        "filename": st.one_of(
            st.text(max_size=40), st.sampled_from(["a-1.0-py3-none-any.whl", "../x.whl", "a-1.0.tar.gz"]), json_values
        ),
        "url": st.one_of(st.text(max_size=40), st.just("http://[::1/x"), json_values),
        "hashes": st.one_of(
            st.dictionaries(
                st.sampled_from(["sha256", "SHA256", "md5", "sha512", "x"]),
                st.one_of(st.text(max_size=130), st.integers(), st.none()),
                max_size=3,
            ),
            json_values,
        ),
        "requires-python": st.one_of(st.text(max_size=30), json_values),
        "yanked": json_values,
        "size": json_values,
    },
)


def _timed(fn, *args):
    start = time.monotonic()
    try:
        return fn(*args)
    finally:
        assert time.monotonic() - start < BOUND_S


@FAST
@given(st.one_of(json_values, st.fixed_dictionaries({"files": st.lists(file_entry, max_size=8)})))
def test_any_json_page_gives_files_or_the_index_failure(doc):
    try:
        out = _timed(I.parse_json_page, doc, "http://i/simple/p/", "http://i/simple", None)
    except OperationFailed as exc:
        assert "malformed page" in exc.message
        return
    for f in out:
        assert I.safe_filename(f.filename)
        assert f.sha256 is None or (len(f.sha256) == 64 and f.sha256 == f.sha256.lower())


html_pieces = st.sampled_from(
    [
        '<a href="',
        '">',
        "</a>",
        "<a ",
        "#sha256=",
        "=",
        "'",
        '"',
        " ",
        "a-1.0-py3-none-any.whl",
        "../",
        "data-yanked",
        "&amp;",
        "<",
        ">",
        "\x00",
        "\n",
    ]
)


@FAST
@given(st.lists(html_pieces | st.text(max_size=8), max_size=200))
def test_any_html_page_gives_files(pieces):
    page = "".join(pieces)
    for f in _timed(I.parse_html_page, page, "http://i/simple/p/", "http://i/simple", None):
        assert I.safe_filename(f.filename)


target_keys = st.sampled_from(
    [
        "format",
        "implementation",
        "system",
        "libc",
        "python",
        "python_full_version",
        "machine",
        "glibc",
        "name",
        "tags",
        "externally_managed",
    ]
)
_GOOD = {
    "format": "mlops-wheels-target/1",
    "implementation": "cpython",
    "system": "Linux",
    "libc": "glibc",
    "python": "3.11",
    "machine": "x86_64",
    "glibc": "2.36",
}


@FAST
@given(
    st.dictionaries(
        target_keys, st.one_of(json_values, st.sampled_from(["3.0", "2.99999999", "3.11.abc", "2.17"])), max_size=6
    )
)
def test_any_target_file_gives_a_target_or_exit_2(changes):
    text = json.dumps(dict(_GOOD, **changes))
    try:
        target = _timed(T.parse_target_file, text, "box.json")
    except UsageError:
        return
    assert len(_timed(target.tags)) < 20_000
    target.to_json()


@FAST
@given(st.text(max_size=300))
def test_any_target_file_text_gives_a_target_or_exit_2(text):
    try:
        _timed(T.parse_target_file, text, "box.json")
    except UsageError:
        pass


req_pieces = st.sampled_from(
    [
        "alpha",
        "==1.0",
        " --hash=sha256:",
        "a" * 64,
        "-i",
        "-r ",
        "--index-url",
        "-e .",
        "\\\n",
        "#",
        "[x]",
        "; python_version < '3.11'",
        "@ https://x/a.whl",
        "\n",
        " ",
        "-ihttp://x",
        "--extra-index",
        "md5:",
        "--hash=",
        "-c",
        "https://x/r.txt",
        "\ufeff",
    ]
)


@FAST
@given(st.lists(req_pieces | st.text(max_size=10), max_size=60))
def test_any_requirements_file_gives_pins_or_exit_2(pieces):
    text = "".join(pieces)
    try:
        nested, hashes = _timed(scan_text, text, "r.txt")
    except UsageError as exc:
        assert exc.message.startswith("r.txt:")
        assert "\n" not in exc.message
        return
    except MlopsError as exc:  # pragma: no cover - any other class would be a wrong exit code
        raise AssertionError(exc) from None
    for value in hashes.values():
        for h in value:
            algo, _, digest = h.partition(":")
            assert algo in I.HASH_LENGTHS and len(digest) == I.HASH_LENGTHS[algo]
