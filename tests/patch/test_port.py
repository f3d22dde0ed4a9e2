"""`mlops patch port`: the real m-RoPE patch (made against transformers 5.20.2) carried to later
real releases by three-way merge; a real conflict; a real upstream fix; created files; code that
moved. Every transformers file here is the release's own, from its wheel downloaded from PyPI."""

from __future__ import annotations

import pytest

from mlops_cli.patch import patchfile as pf

from .conftest import AFTER_FIX, BEFORE_FIX, LATER, MODELING, NEW_LINES, OLD_LINE, OTHER, PINNED, wheel_file

# The real upstream fix of 5.5.4 (issue #45325), as a user would have hot-patched 5.5.3 with it.
FIX_OLD = "                    time_interval = tokens_per_second * int(next(second_per_grid_ts))\n"
FIX_NEW = (
    "                    # Only apply temporal scaling for videos; still images have no\n"
    "                    # temporal dimension to space out (fixes #45325).\n"
    "                    if modality_type == 2:\n"
    "                        time_interval = tokens_per_second * int(next(second_per_grid_ts))\n"
    "                    else:\n"
    "                        time_interval = 1\n"
)
# The same fix written differently (a user's own hot-fix of the same lines).
FIX_MINE = (
    "                    time_interval = (tokens_per_second * int(next(second_per_grid_ts))\n"
    "                                     if modality_type == 2 else 1)  # mlops hot-fix\n"
)


def _sha(data: bytes) -> str:
    return pf.sha256_bytes(data)


@pytest.mark.parametrize("version", [OTHER, *LATER])
def test_port_the_mrope_patch_to_later_real_releases(mlops, venv_of, wheel_of, pinned_patch, tmp_path, version):
    env = venv_of(version)
    new = tmp_path / f"mrope-{version}.patch"
    r = mlops(
        "patch",
        "port",
        str(pinned_patch),
        "--python",
        str(env.python),
        "-o",
        str(new),
        "--base",
        str(wheel_of(PINNED)),
        "--json",
    )
    assert r.returncode == 0, r
    doc = r.json()
    assert doc["result"] == "ported" and doc["old_version"] == PINNED and doc["new_version"] == version
    assert doc["files"][0]["outcome"] == "merged" and doc["output"]["version"] == version
    hunk = doc["files"][0]["hunks"][0]
    theirs_lines = env.original.decode().split("\n")
    # The hunk's first line (context) is where the merge put it in the new release's file.
    assert theirs_lines[hunk["new_line"] - 1] == pf.split_lines(wheel_file(wheel_of(PINNED), MODELING).decode())[
        hunk["old_line"] - 1
    ].rstrip("\n")
    if version == OTHER:
        assert hunk["offset"] == -13  # research §2.5: the code moved up 13 lines in 5.23.0
    text = new.read_text()
    assert f"# version: {version}" in text and f"sha256-before: {_sha(env.original)}" in text
    assert "ported-from: qwen-mrope.patch (transformers 5.20.2" in text
    # The new patch applies to the new release, and gives exactly the edit on that release's file.
    r = mlops("patch", "apply", str(new), "--python", str(env.python), "--yes")
    assert r.returncode == 0, r
    assert env.file.read_text() == env.original.decode().replace(OLD_LINE, NEW_LINES, 1)
    # The human summary says where the hunk went.
    env.reset()
    r = mlops("patch", "port", str(pinned_patch), "--python", str(env.python), "-o", str(tmp_path / "again.patch"))
    assert (
        r.returncode == 0 and "merged" in r.stdout and f"line {hunk['old_line']} -> {hunk['new_line']}" in r.stdout
    ), r


def test_port_finds_the_base_in_the_store_and_asks_for_it_otherwise(
    mlops, venv_of, pinned_patch, tmp_path, monkeypatch
):
    env = venv_of(OTHER)
    # pinned_patch was made by `mlops patch diff`, which kept the original in the store.
    r = mlops("patch", "port", str(pinned_patch), "--python", str(env.python), "-o", str(tmp_path / "a.patch"))
    assert r.returncode == 0 and (tmp_path / "a.patch").exists(), r
    r = mlops(
        "patch",
        "port",
        str(pinned_patch),
        "--python",
        str(env.python),
        "-o",
        str(tmp_path / "b.patch"),
        env={"MLOPS_CACHE_DIR": str(tmp_path / "empty-cache")},
    )
    assert r.returncode == 2 and "is not here to merge against" in r.stderr and "--base" in r.stderr, r
    assert "pip download --no-deps 'transformers==5.20.2'" in r.stderr and not (tmp_path / "b.patch").exists()


def test_port_with_merge3_gives_the_same_patch_as_git(mlops, venv_of, wheel_of, pinned_patch, tmp_path):
    pytest.importorskip("merge3", reason="merge3 is the optional merge tool ('mlops-cli[port]')")
    env = venv_of(OTHER)
    out = {}
    for tool in ("git", "merge3"):
        out[tool] = tmp_path / f"{tool}.patch"
        r = mlops(
            "patch",
            "port",
            str(pinned_patch),
            "--python",
            str(env.python),
            "-o",
            str(out[tool]),
            "--base",
            str(wheel_of(PINNED)),
            "--json",
            env={"MLOPS_MERGE_TOOL": tool},
        )
        assert r.returncode == 0 and r.json()["merge_tool"] == tool, r
    assert out["git"].read_text() == out["merge3"].read_text()


def _hotfix_patch(wheel: bytes, tmp_path, new_text: str):
    """A pinned patch of 5.5.3's modeling file, made the way a user makes it (a work folder + diff)."""
    import json

    from mlops_cli.patch.workdir import diff

    work = tmp_path / "work"
    (work / ".mlops" / "original" / MODELING).parent.mkdir(parents=True)
    (work / ".mlops" / "original" / MODELING).write_bytes(wheel)
    (work / MODELING).parent.mkdir(parents=True)
    (work / MODELING).write_text(wheel.decode().replace(FIX_OLD, new_text, 1))
    (work / ".mlops" / "extract.json").write_text(
        json.dumps(
            {
                "format": 1,
                "package": "transformers",
                "version": BEFORE_FIX,
                "source": {"kind": "local", "ref": "wheel"},
                "files": [{"path": MODELING, "sha256": _sha(wheel)}],
            }
        )
    )
    diff(work, tmp_path / "hotfix.patch")
    return tmp_path / "hotfix.patch"


def test_upstream_already_fixed_writes_no_patch(mlops, venv_of, wheel_of, tmp_path):
    """A hot-fix of 5.5.3 that is exactly the fix 5.5.4 shipped: port says so and writes nothing."""
    before = wheel_file(wheel_of(BEFORE_FIX), MODELING)
    assert before.decode().count(FIX_OLD) == 1
    patch = _hotfix_patch(before, tmp_path, FIX_NEW)
    env = venv_of(AFTER_FIX)
    out = tmp_path / "fixed.patch"
    r = mlops("patch", "port", str(patch), "--python", str(env.python), "-o", str(out), "--json")
    assert r.returncode == 0, r
    assert r.json()["result"] == "upstream-fixed" and r.json()["files"][0]["outcome"] == "upstream-has-it"
    assert not out.exists() and r.json()["output"] is None
    r = mlops("patch", "port", str(patch), "--python", str(env.python), "-o", str(out))
    assert "already contains the change; no patch written" in r.stdout and not out.exists(), r


def test_real_conflict_work_folder_then_diff_finishes(mlops, venv_of, wheel_of, tmp_path):
    """The user's own fix of 5.5.3, on the very lines 5.5.4's upstream fix changed: a conflict."""
    before = wheel_file(wheel_of(BEFORE_FIX), MODELING)
    patch = _hotfix_patch(before, tmp_path, FIX_MINE)
    env = venv_of(AFTER_FIX)
    out, work = tmp_path / "mine-5.5.4.patch", tmp_path / "port-work"
    r = mlops("patch", "port", str(patch), "--python", str(env.python), "-o", str(out), "--work", str(work), "--json")
    assert r.returncode == 1, r
    doc = r.json()
    assert doc["result"] == "conflict" and doc["work"] == str(work) and doc["files"][0]["outcome"] == "conflict"
    assert doc["finish"] == f"mlops patch diff {work} -o {out}"
    assert "error: 1 of 1 file(s) need a person" in r.stderr and "hint: resolve the conflict markers" in r.stderr
    assert not out.exists() and env.file.read_bytes() == env.original  # port changes nothing in the target
    merged = (work / MODELING).read_text()
    assert merged.count("<<<<<<< hotfix.patch (patched 5.5.3)") == 1 and "||||||| transformers 5.5.3" in merged
    assert "=======" in merged and ">>>>>>> transformers 5.5.4" in merged
    assert FIX_MINE in merged and "fixes #45325" in merged  # both sides are there to choose from
    assert (work / ".mlops" / "original" / MODELING).read_bytes() == env.original  # theirs is the new original
    # Unresolved markers are refused by diff.
    r = mlops("patch", "diff", str(work), "-o", str(out))
    assert r.returncode == 1 and "conflict marker" in r.stderr and not out.exists(), r
    # A person keeps upstream's fix plus a comment of their own: diff writes the 5.5.4 patch.
    start, end = merged.index("<<<<<<< "), merged.index(">>>>>>> transformers 5.5.4\n")
    theirs_side = merged[merged.index("=======\n", start) + 8 : end]
    resolved = (
        merged[:start]
        + "                    # reviewed after the port (mlops)\n"
        + theirs_side
        + merged[end + len(">>>>>>> transformers 5.5.4\n") :]
    )
    (work / MODELING).write_text(resolved)
    r = mlops("patch", "diff", str(work), "-o", str(out), "--json")
    assert r.returncode == 0, r
    text = out.read_text()
    assert "# version: 5.5.4" in text and "ported-from: hotfix.patch" in text
    r = mlops("patch", "apply", str(out), "--python", str(env.python), "--yes")
    assert r.returncode == 0 and "# reviewed after the port (mlops)" in env.file.read_text(), r


def test_a_patch_that_creates_a_module_is_applied_reverted_and_ported(mlops, venv_of, pinned_patch, tmp_path):
    """Real fixes add modules: the patch creates one (sha256-before: absent) and imports it."""
    env = venv_of(PINNED)
    work = tmp_path / "w"
    assert mlops("patch", "extract", "--python", str(env.python), MODELING, "-o", str(work)).returncode == 0
    helper = "transformers/models/qwen2_5_vl/mlops_positions.py"
    (work / helper).write_text("def next_position(ids):\n    return int(ids.max()) + 1\n")
    text = (
        (work / MODELING)
        .read_text()
        .replace(
            OLD_LINE,
            "                    from .mlops_positions import next_position\n"
            "                    current_pos = next_position(vision_position_ids)\n",
        )
    )
    (work / MODELING).write_text(text)
    patch = tmp_path / "with-module.patch"
    r = mlops("patch", "diff", str(work), "-o", str(patch), "--json")
    assert r.returncode == 0, r
    assert {f["path"]: f["change"] for f in r.json()["files"]} == {MODELING: "modify", helper: "create"}
    assert "#   sha256-before: absent" in patch.read_text() and "--- /dev/null" in patch.read_text()
    py = str(env.python)
    assert mlops("patch", "apply", str(patch), "--python", py, "--yes").returncode == 0
    assert (env.site / helper).read_text().startswith("def next_position")
    r = mlops("patch", "status", str(patch), "--python", py)
    assert r.returncode == 0 and "status: applied" in r.stdout, r
    r = mlops("patch", "revert", str(patch), "--python", py, "--yes")
    assert r.returncode == 0 and not (env.site / helper).exists(), r
    assert env.file.read_bytes() == env.original
    other = venv_of(OTHER)
    r = mlops("patch", "port", str(patch), "--python", str(other.python), "-o", str(tmp_path / "p2.patch"), "--json")
    assert r.returncode == 0 and r.json()["result"] == "ported", r
    assert {f["path"]: f["outcome"] for f in r.json()["files"]} == {MODELING: "merged", helper: "merged"}
    assert mlops("patch", "apply", str(tmp_path / "p2.patch"), "--python", str(other.python), "--yes").returncode == 0
    assert (other.site / helper).exists()
    assert mlops("patch", "revert", str(tmp_path / "p2.patch"), "--python", str(other.python), "--yes").returncode == 0
    assert not (other.site / helper).exists() and other.file.read_bytes() == other.original


def test_port_of_a_patch_that_already_fits_writes_nothing(mlops, venv_of, pinned_patch, tmp_path):
    env = venv_of(PINNED)
    r = mlops("patch", "port", str(pinned_patch), "--python", str(env.python), "-o", str(tmp_path / "x.patch"))
    assert r.returncode == 0 and "nothing to port" in r.stdout and not (tmp_path / "x.patch").exists(), r


def test_code_that_moved_is_named_in_a_conflict(tmp_path):
    """A function the patch changes, gone from its place: the conflict says where it went."""
    from mlops_cli.patch import port

    base = b"class A:\n    def f(self):\n        return 1\n\n\ndef g():\n    return 2\n"
    ours = base.replace(b"return 1", b"return 10")
    theirs = b"def g():\n    return 2\n\n\nclass B:\n    def f(self):\n        return 1 + 0\n"
    patch = pf.parse(pf.make_patch("pkg", "1", [("pkg/m.py", base, ours)]))
    fp = port.merge_file("pkg/m.py", base, ours, theirs, ("ours", "base", "theirs"))
    assert fp.outcome == "conflict"
    notes, lost = port.moved_code(patch.files[0], fp)
    assert notes == ["A.f is now B.f (line 6 of pkg/m.py)"] and lost == []
    gone = b"def g():\n    return 2\n"
    fp = port.merge_file("pkg/m.py", base, ours, gone, ("ours", "base", "theirs"))
    notes, lost = port.moved_code(patch.files[0], fp)
    assert fp.outcome == "conflict" and lost == ["f"] and notes == ["A.f is no longer in pkg/m.py"]


def test_a_method_moved_to_a_new_sibling_module_is_found_and_copied(mlops, venv_of, wheel_of, pinned_patch, tmp_path):
    """Upstream moves get_rope_index out of the modeling file into a new module (the refactor real
    releases do): the conflict names the new module and puts it in the work folder."""
    import ast

    env = venv_of(PINNED)
    text = env.original.decode()
    tree = ast.parse(text)
    model = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Qwen2_5_VLModel")
    method = next(n for n in model.body if isinstance(n, ast.FunctionDef) and n.name == "get_rope_index")
    lines = text.split("\n")
    body = lines[method.lineno - 1 - len(method.decorator_list) : method.end_lineno]
    theirs = "\n".join(lines[: method.lineno - 1 - len(method.decorator_list)] + lines[method.end_lineno :])
    module = env.site / "transformers/models/qwen2_5_vl/mlops_rope_index.py"
    module.write_text("import torch\n\n\n" + "\n".join(line[4:] for line in body) + "\n")
    env.file.write_text(theirs)
    try:
        work = tmp_path / "work"
        r = mlops(
            "patch",
            "port",
            str(pinned_patch),
            "--python",
            str(env.python),
            "--base",
            str(wheel_of(PINNED)),
            "--work",
            str(work),
            "-o",
            str(tmp_path / "new.patch"),
            "--json",
        )
        assert r.returncode == 1 and r.json()["result"] == "conflict", r
        moved = r.json()["files"][0]["moved"]
        assert "Qwen2_5_VLModel.get_rope_index is no longer in " + MODELING in moved
        # (the release's own modular_qwen2_5_vl.py, a sibling that defines it too, is named as well)
        assert any(
            m.startswith("get_rope_index is now defined in transformers/models/qwen2_5_vl/mlops_rope_index.py")
            and m.endswith("(copied into the work folder)")
            for m in moved
        ), moved
        assert any(
            m.startswith("get_rope_index is also defined in transformers/models/") for m in moved
        )  # other VL models
        assert (work / "transformers/models/qwen2_5_vl/mlops_rope_index.py").read_bytes() == module.read_bytes()
        manifest = (work / ".mlops" / "extract.json").read_text()
        assert "mlops_rope_index.py" in manifest
    finally:
        module.unlink()
        env.reset()


def test_a_method_that_moved_to_another_class_merges_there_and_is_named(wheel_of):
    """Real: get_rope_index moved from Qwen2_5_VLForConditionalGeneration (4.51.3) to
    Qwen2_5_VLModel (4.52.4) (research §2.3). A patch of it in 4.51.3 merges into its new place."""
    from mlops_cli.patch import port

    base = wheel_file(wheel_of("4.51.3"), MODELING)
    theirs = wheel_file(wheel_of("4.52.4"), MODELING)
    line = "                    st_idx = llm_pos_ids_list[-1].max() + 1 if len(llm_pos_ids_list) > 0 else 0\n"
    text = base.decode()
    at = text.index(line)
    ours = (text[:at] + line.replace("max() + 1", "max() + 1  # mlops: checked") + text[at + len(line) :]).encode()
    patch = pf.parse(pf.make_patch("transformers", "4.51.3", [(MODELING, base, ours)]))
    fp = port.merge_file(MODELING, base, ours, theirs, ("ours", "base", "theirs"))
    assert fp.outcome == "merged"
    merged = fp.result.decode()
    line_no = merged.count("\n", 0, merged.index("# mlops: checked")) + 1
    owners = [name for name, (a, b) in port._definitions(merged).items() if a <= line_no <= b]
    assert owners == ["Qwen2_5_VLModel", "Qwen2_5_VLModel.get_rope_index"]
    assert port.moved_code(patch.files[0], fp)[0] == [
        "Qwen2_5_VLForConditionalGeneration.get_rope_index is now Qwen2_5_VLModel.get_rope_index "
        "(line 1405 of transformers/models/qwen2_5_vl/modeling_qwen2_5_vl.py)"
    ]
