"""The pure decisions: which file a target gets, what glibc a set of wheels needs, uv's errors."""

from __future__ import annotations

from mlops_cli.wheels.choose import choose_file
from mlops_cli.wheels.index import IndexFile, parse_html_page, parse_json_page, strip_credentials
from mlops_cli.wheels.plan import required_glibc
from mlops_cli.wheels.resolve import _SELECTING, index_args, parse_pins, summarize_uv_error
from mlops_cli.wheels.targets import from_preset

U22 = from_preset("ubuntu22.04")


def f(filename, yanked=False, requires_python=None):
    return IndexFile(filename, f"https://files.example/{filename}", "ab" * 32, requires_python, yanked, None, None, "idx")


def test_best_tag_wins_in_the_targets_order():
    files = [f("x-1.0-py3-none-any.whl"), f("x-1.0-cp310-cp310-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"),
             f("x-1.0-cp310-cp310-manylinux_2_28_x86_64.whl"), f("x-1.0-cp310-cp310-manylinux_2_36_x86_64.whl"),
             f("x-1.0-cp311-cp311-manylinux_2_28_x86_64.whl"), f("x-1.0.tar.gz")]
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
    assert required_glibc(["a-1-cp310-cp310-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
                           "b-1-cp310-cp310-manylinux_2_28_x86_64.whl"]) == "2.28"
    assert required_glibc(["c-1-cp310-cp310-manylinux1_x86_64.whl"]) == "2.5"


def test_index_pages_both_formats_and_no_credentials():
    html = ('<a href="../../files/x-1.0-py3-none-any.whl#sha256=' + "c" * 64 + '" data-requires-python="&gt;=3.8" '
            'data-yanked="">x-1.0-py3-none-any.whl</a><a href="../../files/x-2.0.tar.gz">x-2.0.tar.gz</a>')
    (one,) = parse_html_page(html, "http://u:p@h/simple/x/", "http://h/simple", "1.0")
    assert (one.sha256, one.requires_python, one.yanked, one.url) == ("c" * 64, ">=3.8", True, "http://h/files/x-1.0-py3-none-any.whl")
    doc = {"files": [{"filename": "x-1.0-py3-none-any.whl", "url": "https://f/x-1.0-py3-none-any.whl",
                      "hashes": {"sha256": "d" * 64}, "yanked": "bad", "size": 10}]}
    (two,) = parse_json_page(doc, "https://h/simple/x/", "https://h/simple", "1.0")
    assert (two.yanked, two.yanked_reason, two.size) == (True, "bad", 10)
    assert strip_credentials("https://__token__:s3cr3t@h/simple") == "https://h/simple"


def test_uv_glue():
    assert index_args(["A"]) == ["--default-index", "A"]
    assert index_args(["A", "B", "C"]) == ["--index", "A", "--index", "B", "--default-index", "C"]
    assert [(p.name, p.version) for p in parse_pins("a==1.0\n    # via x\nb-c==2.0 ; python_version < '3.11'\n")] == [
        ("a", "1.0"), ("b-c", "2.0")]
    err = ("  × No solution found when resolving dependencies:\n  ╰─▶ Because there is no version of x==9 and you require "
           "x==9, we can conclude that your requirements are unsatisfiable.\n")
    assert summarize_uv_error(err).startswith("Because there is no version of x==9")
    assert "s3cr3t" not in summarize_uv_error("error: Failed to fetch https://u:s3cr3t@h/simple/x/")
    # uv -v lines that start page fetches early (recorded from uv 0.13.9)
    for line in ("DEBUG Selecting: swanlab==0.5.7 [compatible] (swanlab-0.5.7-py3-none-any.whl)",
                 "DEBUG Selecting: swanlab[dashboard]==0.5.7 [compatible]"):
        assert _SELECTING.search(line).groups() == ("swanlab", "0.5.7")


def test_default_bundle_names():
    from pathlib import Path

    from mlops_cli.wheels.bundle import default_out_name

    assert default_out_name(["swanlab==0.5.7"]) == "swanlab-0.5.7-bundle"
    assert default_out_name(["swanlab[dashboard]>=0.5"]) == "swanlab-bundle"
    assert default_out_name([], [Path("deploy/ml.txt")]) == "ml-bundle"
