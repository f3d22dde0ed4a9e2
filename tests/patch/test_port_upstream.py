"""`mlops patch port` when the new release already has the fix and changed the same lines further
(the class of every miss of the blind real-fix benchmark, docs/benchmarks.md). Real cases from
tests/fixtures/patch/real_fixes.json, on the real PyPI wheels of accelerate and trl; plus the
pure rule (mlops_cli.patch.upstream)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlops_cli.patch import merge, upstream

CASES = {
    c["id"]: c
    for c in json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "patch" / "real_fixes.json").read_text())[
        "cases"
    ]
}


def edited(text: str, edits: list[dict]) -> str:
    lines = text.splitlines(keepends=True)
    for e in sorted(edits, key=lambda e: e["line"], reverse=True):
        old = e["old"].splitlines(keepends=True)
        start = e["line"] - 1
        assert lines[start : start + len(old)] == old, "the fixture's edit does not match the release's file"
        lines[start : start + len(old)] = e["new"].splitlines(keepends=True)
    return "".join(lines)


def make_patch(mlops, package_env, case: dict, tmp_path: Path, extra=None) -> Path:
    """The user's hot-fix of the release the fix was not yet in: extract, edit, diff (the real CLI)."""
    python, _ = package_env(case["package"], case["patched_version"])
    paths = [f["path"] for f in case["files"]]
    work = tmp_path / "work"
    r = mlops("patch", "extract", "--python", str(python), *paths, "-o", str(work))
    assert r.returncode == 0, r
    for f in case["files"]:
        target = work / f["path"]
        text = edited(target.read_text(), f["edits"])
        target.write_text(extra(text) if extra else text)
    patch = tmp_path / "fix.patch"
    r = mlops("patch", "diff", str(work), "-o", str(patch))
    assert r.returncode == 0, r
    return patch


def port(mlops, package_env, case: dict, patch: Path, version: str, tmp_path: Path):
    python, _ = package_env(case["package"], version)
    _, old_wheel = package_env(case["package"], case["patched_version"])
    out = tmp_path / f"fix-{version}.patch"
    r = mlops(
        "patch",
        "port",
        str(patch),
        "--python",
        str(python),
        "--base",
        str(old_wheel),
        "-o",
        str(out),
        "--work",
        str(tmp_path / f"fix-{version}.work"),
        "--json",
    )
    return r, out


@pytest.mark.parametrize(
    "case_id, version",
    [
        ("accelerate-3742-device-mesh-import", "1.12.0"),  # upstream rewrote the import block around the fix
        ("trl-1049-dpo-peft-ref", "0.7.5"),  # upstream re-indented the fixed lines under a new `else:`
    ],
)
def test_port_sees_an_upstream_fix_that_changed_the_same_lines_further(mlops, package_env, tmp_path, case_id, version):
    case = CASES[case_id]
    assert any(later["version"] == version and later["expected"] == "upstream-fixed" for later in case["later"])
    patch = make_patch(mlops, package_env, case, tmp_path)
    r, out = port(mlops, package_env, case, patch, version, tmp_path)
    assert r.returncode == 0, r
    doc = r.json()
    assert doc["result"] == "upstream-fixed", doc
    assert [f["outcome"] for f in doc["files"]] == ["upstream-has-it"]
    assert "changed the same lines further" in doc["files"][0]["reason"]
    assert doc["output"] is None and not out.exists()


def test_a_change_of_the_users_own_on_those_lines_stays_a_conflict(mlops, package_env, tmp_path):
    """The same real fix plus one more import of the user's in that block: upstream does not have
    that line, so the region is not taken from upstream and a person chooses."""
    case = CASES["accelerate-3742-device-mesh-import"]
    mine = "from accelerate.utils.imports import is_xpu_available  # mine\n"

    def extra(text: str) -> str:
        anchor = "from accelerate.utils.versions import is_torch_version\n"
        assert text.count(anchor) == 1
        return text.replace(anchor, anchor + mine)

    patch = make_patch(mlops, package_env, case, tmp_path, extra)
    r, out = port(mlops, package_env, case, patch, "1.12.0", tmp_path)
    assert r.returncode == 1, r
    doc = r.json()
    assert doc["result"] == "conflict" and doc["files"][0]["outcome"] == "conflict"
    merged = (Path(doc["work"]) / case["files"][0]["path"]).read_text()
    assert mine in merged and "<<<<<<<" in merged and not out.exists()


def test_code_upstream_removed_stays_a_conflict(mlops, package_env, tmp_path):
    """trl 0.16.0 removed the code the typo fix of 0.15.x sits on: nothing to take from upstream."""
    case = CASES["trl-2973-grpo-typo"]
    patch = make_patch(mlops, package_env, case, tmp_path)
    r, _ = port(mlops, package_env, case, patch, "0.16.0", tmp_path)
    assert r.returncode == 1 and r.json()["result"] == "conflict", r


# --- the pure rule ------------------------------------------------------------------------------

LABELS = ("fix.patch (patched 1.0)", "pkg 1.0", "pkg 2.0")


def _merged(base: str, ours: str, theirs: str) -> str:
    return merge.three_way(base, ours, theirs, LABELS).text


def test_region_held_when_upstream_has_every_added_line_reindented():
    base = "def f(x):\n    y = g(x)\n    return y\n"
    ours = "def f(x):\n    y = g(x, safe=True)\n    return y\n"
    theirs = "def f(x):\n    if x:\n        y = g(x, safe=True)\n    else:\n        y = None\n    return y\n"
    text = _merged(base, ours, theirs)
    assert "<<<<<<<" in text
    res = upstream.resolve(text, merge.markers(LABELS))
    assert res is not None and res.held == 1 and res.conflicts == 0 and res.text == theirs


def test_region_not_held_when_a_removed_line_is_still_there_or_nothing_substantive_changed():
    base = "a = 1\nb = old()\nc = 3\n"
    # upstream kept the line the patch removes (and added the patch's line): not the same change
    text = _merged(base, "a = 1\nb = new()\nc = 3\n", "a = 1\nb = new()\nb = old()\nc = 3\nd = 4\n")
    res = upstream.resolve(text, merge.markers(LABELS))
    assert res is None or res.held == 0
    # a whitespace-only change proves nothing
    region = upstream.Region(
        ours=["b = old()  \n"], base=["b = old()\n"], theirs=["b = old()\n", "x = 1\n"], markers=[]
    )
    assert not upstream.held_upstream(region, region.theirs)
    # a lone bracket or blank line is not evidence either
    region = upstream.Region(ours=[")\n", "\n"], base=["]\n"], theirs=[")\n"], markers=[])
    assert not upstream.held_upstream(region, region.theirs)


def test_malformed_markers_are_left_alone():
    m = merge.markers(LABELS)
    assert upstream.split(f"a\n{m[0]}\nx\n{m[2]}\ny\n", m) is None  # never closed
    assert upstream.split(f"a\n{m[2]}\nb\n", m) is None  # a separator outside a region
    assert upstream.split(f"{m[0]}\n{m[0]}\n", m) is None  # nested
