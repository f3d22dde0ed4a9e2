"""The pure core: patch format round trips, strict parsing, exact application, decisions."""

from __future__ import annotations

import sys

import pytest

from mlops_cli.patch import decide
from mlops_cli.patch import patchfile as pf

BEFORE = "line 1\nline 2\nline 3\nline 4\nline 5\nline 6\nline 7\nline 8\nline 9\nline 10\n"


def _patch(before: str, after: str, version: str = "1.0", path: str = "pkg/mod.py") -> pf.Patch:
    return pf.parse(pf.make_patch("pkg", version, [(path, before.encode(), after.encode())]))


@pytest.mark.parametrize(
    "after",
    [
        BEFORE.replace("line 5\n", "line five\n"),
        "first\n" + BEFORE,  # insert at the top
        BEFORE + "last\n",  # append
        BEFORE.replace("line 2\n", "").replace("line 9\n", "nine\nnine and a half\n"),  # two hunks
        BEFORE.rstrip("\n"),  # drop the final newline
        "",  # empty the file
    ],
)
def test_make_then_apply_round_trips_both_ways(after):
    patch = _patch(BEFORE, after)
    diff = patch.files[0]
    assert pf.apply(diff, BEFORE) == after
    assert pf.apply(diff, after, reverse=True) == BEFORE


def test_no_newline_at_end_of_original_round_trips():
    before = BEFORE.rstrip("\n")
    after = before + "\nline 11"
    text = pf.make_patch("pkg", "1", [("pkg/m.py", before.encode(), after.encode())]).decode()
    assert pf.NO_NEWLINE in text
    diff = pf.parse(text.encode()).files[0]
    assert pf.apply(diff, before) == after and pf.apply(diff, after, reverse=True) == before


def test_header_pins_and_is_ignored_by_plain_tools():
    patch = _patch(BEFORE, BEFORE.replace("line 5", "five"), version="5.20.2")
    assert patch.pinned and patch.header.package == "pkg" and patch.header.version == "5.20.2"
    pin = patch.header.pin_for("pkg/mod.py")
    assert pin.sha256_before == pf.sha256_bytes(BEFORE.encode())


def test_hunks_apply_only_at_their_exact_line():
    patch = _patch(BEFORE, BEFORE.replace("line 5\n", "five\n"))
    shifted = "new first line\n" + BEFORE  # GNU patch would apply this with offset 1
    with pytest.raises(pf.HunkMismatch):
        pf.apply(patch.files[0], shifted)


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "no unified diff"),
        ("--- a/pkg/m.py\n", "expected '+++"),
        ("--- a/pkg/m.py\n+++ b/pkg/m.py\n", "has no hunk"),
        ("--- a/pkg/m.py\n+++ b/pkg/m.py\n@@ -1,2 +1,2 @@\n a\n-b\n", "truncated"),
        ("--- a/pkg/m.py\n+++ b/pkg/m.py\n@@ bogus @@\n", "malformed hunk header"),
        ("--- a/../etc/passwd\n+++ b/../etc/passwd\n@@ -1 +1 @@\n-a\n+b\n", "unsafe"),
        ("--- a/pkg/old.py\n+++ b/pkg/new.py\n@@ -1 +1 @@\n-a\n+a\n", "renames are not supported"),
        ("--- /dev/null\n+++ /dev/null\n@@ -0,0 +1 @@\n+a\n", "both sides"),
        ("--- /dev/null\n+++ b/pkg/new.py\n@@ -1 +1 @@\n-a\n+b\n", "cannot have old lines"),
        ("--- a/pkg/m.py\n+++ b/pkg/m.py\n@@ -" + "9" * 5000 + " +1 @@\n-a\n+b\n", "malformed hunk header"),
        (
            "# mlops-patch 1\n# package: ../x\n# version: 1\n--- a/p/m.py\n+++ b/p/m.py\n@@ -1 +1 @@\n-a\n+b\n",
            "not a package",
        ),
        (
            "# mlops-patch 1\n# package: p\n# version: 1\n# file: p/m.py\n#   sha256-before: absent\n#   sha256-after: "
            + "b" * 64
            + "\n--- a/p/m.py\n+++ b/p/m.py\n@@ -1 +1 @@\n-a\n+b\n",
            "'absent' pins do not match",
        ),
        ("# mlops-patch 1\n# package: p\n--- a/p/m.py\n+++ b/p/m.py\n@@ -1 +1 @@\n-a\n+b\n", "'version:'"),
        ("# mlops-patch 9\n--- a/p/m.py\n+++ b/p/m.py\n@@ -1 +1 @@\n-a\n+b\n", "unknown header version"),
        (
            "# mlops-patch 1\n# package: p\n# version: 1\n# file: p/other.py\n#   sha256-before: "
            + "a" * 64
            + "\n#   sha256-after: "
            + "b" * 64
            + "\n--- a/p/m.py\n+++ b/p/m.py\n@@ -1 +1 @@\n-a\n+b\n",
            "header pins",
        ),
    ],
)
def test_corrupt_patches_are_rejected_with_the_reason(text, message):
    with pytest.raises(pf.PatchFormatError, match=message.replace("(", r"\(").replace("+", r"\+")):
        pf.parse(text.encode())


def test_git_style_diff_is_accepted():
    body = pf.make_diff("pkg/m.py", BEFORE, BEFORE.replace("line 3", "three"))
    text = "diff --git a/pkg/m.py b/pkg/m.py\nindex 1234567..89abcde 100644\n" + body
    patch = pf.parse(text.encode())
    assert not patch.pinned and patch.paths == ["pkg/m.py"]


# --- decisions ---------------------------------------------------------------------------

AFTER = BEFORE.replace("line 5\n", "five\n")


def _files(text: str) -> dict:
    return {"pkg/mod.py": text.encode()}


def test_assess_pinned_states():
    patch = _patch(BEFORE, AFTER)
    a = decide.assess(patch, "1.0", _files(BEFORE))
    assert a.state == decide.NOT_APPLIED and a.files[0].patched == AFTER.encode()
    a = decide.assess(patch, "1.0", _files(AFTER))
    assert a.state == decide.APPLIED and a.files[0].original == BEFORE.encode()
    a = decide.assess(patch, "1.0", _files(BEFORE.replace("line 9", "nine")))
    assert a.state == decide.CONFLICT and "matches neither" in a.problem
    a = decide.assess(patch, "1.0", {"pkg/mod.py": None})
    assert a.state == decide.CONFLICT and "not found" in a.problem


def test_assess_refuses_other_version_naming_both_unless_overridden():
    patch = _patch(BEFORE, AFTER)
    a = decide.assess(patch, "2.0", _files(BEFORE))
    assert a.state == decide.CONFLICT and a.problem == "patch is for pkg 1.0, the target has pkg 2.0"
    # Override: another version whose file differs but where the hunk matches exactly.
    other = BEFORE.replace("line 10", "line ten")
    a = decide.assess(patch, "2.0", _files(other), allow_other_version=True)
    assert a.state == decide.NOT_APPLIED and any("2.0" in w for w in a.warnings)
    assert any("differs from the pin" in w for w in a.warnings)


def test_assess_unpinned_never_assumes_reversed():
    plain = pf.parse(pf.make_diff("pkg/mod.py", BEFORE, AFTER).encode())
    assert decide.assess(plain, None, _files(BEFORE)).state == decide.NOT_APPLIED
    assert decide.assess(plain, None, _files(AFTER)).state == decide.APPLIED
    unrelated = decide.assess(plain, None, _files("something else\n"))
    assert unrelated.state == decide.CONFLICT
    assert any("nothing pins it" in w for w in unrelated.warnings)


def test_assess_mixed_state_is_a_conflict():
    other_before, other_after = "x = 1\n", "x = 2\n"
    patch = pf.parse(
        pf.make_patch(
            "pkg",
            "1.0",
            [
                ("pkg/mod.py", BEFORE.encode(), AFTER.encode()),
                ("pkg/other.py", other_before.encode(), other_after.encode()),
            ],
        )
    )
    a = decide.assess(patch, "1.0", {"pkg/mod.py": AFTER.encode(), "pkg/other.py": other_before.encode()})
    assert a.state == decide.CONFLICT and "partially applied" in a.problem


def test_assess_a_tampered_diff_under_a_valid_pin_is_a_conflict():
    text = pf.make_patch("pkg", "1.0", [("pkg/mod.py", BEFORE.encode(), AFTER.encode())]).decode()
    tampered = pf.parse(text.replace("+five\n", "+FIVE\n").encode())  # the hunk no longer gives sha256-after
    a = decide.assess(tampered, "1.0", _files(BEFORE))
    assert a.state == decide.CONFLICT and "does not give the pinned result" in a.problem


def _small_work(root):
    """A work folder as `patch extract` leaves it, for a one-line module."""
    import hashlib
    import json

    original = b"x = 1\n"
    (root / ".mlops" / "original" / "pkg").mkdir(parents=True)
    (root / ".mlops" / "original" / "pkg" / "m.py").write_bytes(original)
    (root / "pkg").mkdir()
    (root / "pkg" / "m.py").write_bytes(b"x = 2\n")
    (root / ".mlops" / "extract.json").write_text(
        json.dumps(
            {
                "format": 1,
                "package": "pkg",
                "version": "1.0",
                "source": {"kind": "local", "ref": "test"},
                "files": [{"path": "pkg/m.py", "sha256": hashlib.sha256(original).hexdigest()}],
            }
        )
    )
    return root


def test_diff_output_that_is_a_folder_or_unwritable_is_one_clear_line(mlops, tmp_path):
    work = _small_work(tmp_path / "w")
    (tmp_path / "adir").mkdir()
    r = mlops("patch", "diff", str(work), "-o", str(tmp_path / "adir"), "--json")
    assert r.returncode == 2 and r.stderr.startswith("error: -o ") and "is a folder" in r.stderr, r
    assert list((tmp_path / "adir").iterdir()) == [] and r.no_report()
    (tmp_path / "ro").write_text("a file, not a folder")
    r = mlops("patch", "diff", str(work), "-o", str(tmp_path / "ro" / "x.patch"))
    # A path under a file is bad input (exit 2), one line, not an internal error.
    assert r.returncode == 2 and r.stderr.startswith("error: cannot write") and "internal error" not in r.stderr, r
    assert mlops("patch", "diff", str(work), "-o", str(tmp_path / "new" / "x.patch")).returncode == 0


def test_diff_of_a_work_folder_missing_its_original_is_exit_2(mlops, tmp_path):
    work = _small_work(tmp_path / "w")
    (work / ".mlops" / "original" / "pkg" / "m.py").unlink()
    r = mlops("patch", "diff", str(work), "-o", str(tmp_path / "x.patch"))
    assert r.returncode == 2 and "is damaged" in r.stderr and "internal error" not in r.stderr, r
    assert not (tmp_path / "x.patch").exists()


def test_extract_into_an_unwritable_place_is_one_clear_line(mlops, tmp_path):
    (tmp_path / "afile").write_text("not a folder")
    r = mlops("patch", "extract", "--python", sys.executable, "typer/main.py", "-o", str(tmp_path / "afile" / "w"))
    assert r.returncode == 1 and r.stderr.startswith("error: cannot create") and "internal error" not in r.stderr, r


def test_diff_of_an_edit_with_null_bytes_is_a_clear_refusal(mlops, tmp_path):
    work = _small_work(tmp_path / "w")
    (work / "pkg" / "m.py").write_bytes(b"x = 2\x00\n")
    r = mlops("patch", "diff", str(work), "-o", str(tmp_path / "x.patch"))
    assert r.returncode == 1 and "null bytes" in r.stderr and "line None" not in r.stderr, r
    assert "internal error" not in r.stderr and not (tmp_path / "x.patch").exists()


def _immutable(path) -> bool:
    import shutil
    import subprocess

    return (
        bool(shutil.which("chattr"))
        and subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0
    )


def test_local_write_is_all_or_nothing(tmp_path, monkeypatch):
    """A file that cannot be replaced (read-only site-packages) puts back the ones already written."""
    import subprocess

    from mlops_cli.errors import MlopsError, OperationFailed
    from mlops_cli.patch.targets import LocalTarget, Located

    site = tmp_path / "site"
    (site / "pkg").mkdir(parents=True)
    (site / "pkg" / "a.py").write_bytes(b"a = 1\n")
    (site / "pkg" / "b.py").write_bytes(b"b = 1\n")
    if not _immutable(site / "pkg" / "b.py"):
        pytest.skip("chattr +i is not available here (needs root and a filesystem with the immutable flag)")
    try:
        monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "state"))
        located = Located(sys.executable, "3", str(site), "1.0", {"pkg/a.py": b"a = 1\n", "pkg/b.py": b"b = 1\n"})
        with pytest.raises(OperationFailed, match="cannot replace .*b.py.*nothing was changed"):
            LocalTarget(sys.executable).write(located, {"pkg/a.py": b"a = 2\n", "pkg/b.py": b"b = 2\n"})
        assert (site / "pkg" / "a.py").read_bytes() == b"a = 1\n"
        assert not list((tmp_path / "state").rglob("*.json"))  # no journal left behind
        (tmp_path / "afile").write_text("x")
        monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "afile" / "state"))
        with pytest.raises(MlopsError, match="cannot (write the backup|use the folder)"):
            LocalTarget(sys.executable).write(located, {"pkg/a.py": b"a = 2\n"})
        assert (site / "pkg" / "a.py").read_bytes() == b"a = 1\n"
    finally:
        subprocess.run(["chattr", "-i", str(site / "pkg" / "b.py")], capture_output=True)


# --- property tests: any input gives a patch or one PatchFormatError ------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_LINES = st.lists(st.sampled_from(["a\n", "b\n", "c\n", "def f():\n", "    return 1\n", "\n", "x = 1"]), max_size=12)
_DIFF_CHARS = st.sampled_from(
    [
        "--- a/p/m.py\n",
        "+++ b/p/m.py\n",
        "--- /dev/null\n",
        "+++ /dev/null\n",
        "@@ -1 +1 @@\n",
        "@@ -0,0 +1,2 @@\n",
        "@@ -1,2 +1,0 @@\n",
        "-a\n",
        "+b\n",
        " c\n",
        "\\ No newline at end of file\n",
        "# mlops-patch 1\n",
        "# package: p\n",
        "# version: 1\n",
        "# file: p/m.py\n",
        "#   sha256-before: absent\n",
        "#   sha256-after: " + "a" * 64 + "\n",
        "diff --git a/p b/p\n",
        "new file mode 100644\n",
    ]
)


@settings(derandomize=True, max_examples=300, deadline=None)
@given(st.lists(_DIFF_CHARS, max_size=20).map("".join) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_any_text_parses_or_is_one_format_error(text):
    try:
        patch = pf.parse(text.encode("utf-8", "surrogateescape"))
    except pf.PatchFormatError as exc:
        assert "\n" not in str(exc) or str(exc).count("\n") < 2
        return
    for diff in patch.files:  # whatever parses can be applied without anything but HunkMismatch
        for data in (None, b"", b"a\nb\nc\n"):
            try:
                pf.apply_content(diff, data)
            except pf.HunkMismatch:
                pass


def _content(lines):
    return None if lines is None else "".join(lines).encode()


@settings(derandomize=True, max_examples=200, deadline=None)
@given(st.none() | _LINES, st.none() | _LINES)
def test_make_parse_apply_round_trips_including_creates_and_deletes(before_lines, after_lines):
    before, after = _content(before_lines), _content(after_lines)
    if before is None and after is None or before == after:
        return
    patch = pf.parse(pf.make_patch("pkg", "1.0", [("pkg/m.py", before, after)]))
    diff = patch.files[0]
    assert diff.kind == ("create" if before is None else "delete" if after is None else "modify")
    assert pf.apply_content(diff, before) == after
    assert pf.apply_content(diff, after, reverse=True) == before
    a = decide.assess(patch, "1.0", {"pkg/m.py": before})
    assert a.state == decide.NOT_APPLIED and a.files[0].patched == after
    a = decide.assess(patch, "1.0", {"pkg/m.py": after})
    assert a.state == decide.APPLIED and a.files[0].original == before
