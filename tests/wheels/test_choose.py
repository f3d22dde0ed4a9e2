"""The pure decisions: which file a target gets, what glibc a set of wheels needs, uv's errors."""

from __future__ import annotations

import pytest

from mlops_cli.wheels.choose import choose_file
from mlops_cli.wheels.index import IndexFile, parse_html_page, parse_json_page, strip_credentials
from mlops_cli.wheels.plan import required_glibc
from mlops_cli.wheels.resolve import _SELECTING, index_args, parse_hint, parse_pins, summarize_uv_error
from mlops_cli.wheels.targets import from_preset

U22 = from_preset("ubuntu22.04")


def f(filename, yanked=False, requires_python=None):
    return IndexFile(
        filename, f"https://files.example/{filename}", "ab" * 32, requires_python, yanked, None, None, "idx"
    )


def test_best_tag_wins_in_the_targets_order():
    files = [
        f("x-1.0-py3-none-any.whl"),
        f("x-1.0-cp310-cp310-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"),
        f("x-1.0-cp310-cp310-manylinux_2_28_x86_64.whl"),
        f("x-1.0-cp310-cp310-manylinux_2_36_x86_64.whl"),
        f("x-1.0-cp311-cp311-manylinux_2_28_x86_64.whl"),
        f("x-1.0.tar.gz"),
    ]
    c = choose_file(files, "x", "1.0", U22.tags(), "3.10.12")
    assert c.file.filename == "x-1.0-cp310-cp310-manylinux_2_28_x86_64.whl" and not c.needs_build  # 2.36 > 2.35


def test_requires_python_and_yanked_files_are_skipped_unless_nothing_else():
    files = [f("x-1.0-py3-none-any.whl", requires_python=">=3.11"), f("x-1.0-py2.py3-none-any.whl", yanked=True)]
    assert choose_file(files, "x", "1.0", U22.tags(), "3.10.12").file is None
    only_yanked = [f("x-1.0-py3-none-any.whl", yanked=True)]
    c = choose_file(only_yanked, "x", "1.0", U22.tags(), "3.10.12")
    assert c.file.yanked  # uv chose it, so it was pinned exactly; the plan warns


def test_sdist_only_is_marked_for_building_and_nothing_at_all_is_a_problem():
    assert choose_file([f("x-1.0.tar.gz")], "x", "1.0", U22.tags(), "3.10.12").needs_build
    c = choose_file([f("x-1.0-cp310-cp310-win_amd64.whl")], "x", "1.0", U22.tags(), "3.10.12")
    assert c.file is None and "no wheel for this target (it has: cp310-cp310-win_amd64)" in c.problem


def test_required_glibc_is_the_newest_floor():
    assert required_glibc(["a-1-py3-none-any.whl"]) is None
    assert (
        required_glibc(
            [
                "a-1-cp310-cp310-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
                "b-1-cp310-cp310-manylinux_2_28_x86_64.whl",
            ]
        )
        == "2.28"
    )
    assert required_glibc(["c-1-cp310-cp310-manylinux1_x86_64.whl"]) == "2.5"


def test_index_pages_both_formats_and_no_credentials():
    html = (
        '<a href="../../files/x-1.0-py3-none-any.whl#sha256=' + "c" * 64 + '" data-requires-python="&gt;=3.8" '
        'data-yanked="">x-1.0-py3-none-any.whl</a><a href="../../files/x-2.0.tar.gz">x-2.0.tar.gz</a>'
    )
    (one,) = parse_html_page(html, "http://u:p@h/simple/x/", "http://h/simple", "1.0")
    assert (one.sha256, one.requires_python, one.yanked, one.url) == (
        "c" * 64,
        ">=3.8",
        True,
        "http://h/files/x-1.0-py3-none-any.whl",
    )
    doc = {
        "files": [
            {
                "filename": "x-1.0-py3-none-any.whl",
                "url": "https://f/x-1.0-py3-none-any.whl",
                "hashes": {"sha256": "d" * 64},
                "yanked": "bad",
                "size": 10,
            }
        ]
    }
    (two,) = parse_json_page(doc, "https://h/simple/x/", "https://h/simple", "1.0")
    assert (two.yanked, two.yanked_reason, two.size) == (True, "bad", 10)
    assert strip_credentials("https://__token__:s3cr3t@h/simple") == "https://h/simple"


def test_uv_glue():
    assert index_args(["A"]) == ["--default-index", "A"]
    assert index_args(["A", "B", "C"]) == ["--index", "A", "--index", "B", "--default-index", "C"]
    assert [(p.name, p.version) for p in parse_pins("a==1.0\n    # via x\nb-c==2.0 ; python_version < '3.11'\n")] == [
        ("a", "1.0"),
        ("b-c", "2.0"),
    ]
    err = (
        "  × No solution found when resolving dependencies:\n  ╰─▶ Because there is no version of x==9 and you require "
        "x==9, we can conclude that your requirements are unsatisfiable.\n"
    )
    assert summarize_uv_error(err).startswith("Because there is no version of x==9")
    assert "s3cr3t" not in summarize_uv_error("error: Failed to fetch https://u:s3cr3t@h/simple/x/")
    # uv -v lines that start page fetches early (recorded from uv 0.13.9)
    for line in (
        "DEBUG Selecting: swanlab==0.5.7 [compatible] (swanlab-0.5.7-py3-none-any.whl)",
        "DEBUG Selecting: swanlab[dashboard]==0.5.7 [compatible]",
    ):
        assert _SELECTING.search(line).groups() == ("swanlab", "0.5.7")


# Lines of uv's log, verbatim, with what each must hint. Sources: uv 0.13.9 on this project's
# machine (`uv pip compile -v`, swanlab==0.5.7, 2026-11-30); uv 0.7.x in astral-sh/uv#13443; the
# HTML-index form with a fragment in astral-sh/uv#12383 (host redacted there); a private index in
# astral-sh/uv#5351; a docker build log in astral-sh/uv#9246; a warm cache in astral-sh/uv#19745.
UV_LOG_HINTS = [
    ("DEBUG Selecting: swanlab==0.5.7 [compatible] (swanlab-0.5.7-py3-none-any.whl)", ("swanlab", "0.5.7", True)),
    ("DEBUG Adding direct dependency: swanlab>=0.5.7, <0.5.7+", ("swanlab", None, False)),
    ("DEBUG Adding transitive dependency for swanlab==0.5.7: botocore*", ("botocore", None, False)),
    ("DEBUG Adding transitive dependency for swanlab==0.5.7: swankit>=0.1.7, <0.1.7+", ("swankit", None, False)),
    ("#15 3.215 DEBUG Adding transitive dependency for xarray==2024.10.0: numpy>=1.24", ("numpy", None, False)),
    (
        "DEBUG Sending fresh HEAD request for: https://files.pythonhosted.org/packages/2f/17/07eed244563fb67782ea5ed3ec8646390"
        "d9baccb8a02b0d8bc42a6cdd064/botocore-1.44.8-py3-none-any.whl",
        ("botocore", "1.44.8", False),
    ),
    (
        "DEBUG No cache entry for: https://files.pythonhosted.org/packages/7e/f5/f66802a942d491edb555dd61e3a9961140fd64c90bce1e"
        "afd741609d334d/httpcore-1.0.9-py3-none-any.whl.metadata",
        ("httpcore", "1.0.9", False),
    ),
    (
        "TRACE Sending fresh GET request for https://files.pythonhosted.org/packages/7e/f5/f66802a942d491edb555dd61e3a9961140fd"
        "64c90bce1eafd741609d334d/httpcore-1.0.9-py3-none-any.whl.metadata",
        ("httpcore", "1.0.9", False),
    ),
    (
        "DEBUG No cache entry for: https://.../some_package-0.4.9-py3-none-any.whl.metadata#sha256=794e49d06747a5c210d3e11ecc9"
        "9930046348c278f7e53e5b87271962ba366da",
        ("some-package", "0.4.9", False),
    ),
    (
        "            0.643154s   1ms DEBUG uv_client::cached_client No cache entry for: https://<internal-repo>/repository/py"
        "pi-group/packages/cffi/1.16.0/cffi-1.16.0-cp39-cp39-win_amd64.whl#sha256=3686dffb02459559c74dd3d81748269ffb0eb027c3"
        "9a6fc99502de37d501faa8",
        ("cffi", "1.16.0", False),
    ),
    (
        "DEBUG Found fresh response for: https://files.pythonhosted.org/packages/fe/1c/e6e5e568f22be4fb05d6244234aba384c06b45"
        "1252453b821e1a529263cf/ruff-0.15.15-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        ("ruff", "0.15.15", False),
    ),
    # nothing to hint: an index page, a search, uv's summary
    ("DEBUG No cache entry for: https://pypi.org/simple/botocore/", None),
    ("DEBUG Searching for a compatible version of botocore (>=1.44.8, <1.45.0)", None),
    ("Resolved 24 packages in 668ms", None),
]


@pytest.mark.parametrize("line, hint", UV_LOG_HINTS)
def test_uv_log_lines_give_early_hints(line, hint):
    found = parse_hint(line)
    assert (found and (found.name, found.version, found.selected)) == (hint or None)


def test_hints_stay_linear_and_bounded_on_hostile_lines():
    import time

    start = time.perf_counter()
    for line in (
        "DEBUG No cache entry for: https://h/" + "/" * 200_000 + "x-1.0-py3-none-any.whl",
        "DEBUG Adding transitive dependency for a: " + "b" * 200_000,
        "DEBUG No cache entry for: https://h/" + "a.whl/" * 1000 + "not-a-wheel.whl",
    ):
        assert parse_hint(line) is None or len(parse_hint(line).name) < 1000
    assert time.perf_counter() - start < 5  # quadratic work on 200 kB would take minutes


def test_default_bundle_names():
    from pathlib import Path

    from mlops_cli.wheels.bundle import default_out_name

    assert default_out_name(["swanlab==0.5.7"]) == "swanlab-0.5.7-bundle"
    assert default_out_name(["swanlab[dashboard]>=0.5"]) == "swanlab-bundle"
    assert default_out_name([], [Path("deploy/ml.txt")]) == "ml-bundle"
