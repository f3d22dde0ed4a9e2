"""`mlops patch` on a local environment: a venv with the real transformers (pip --no-deps)."""

from __future__ import annotations

import os

from mlops_cli.patch import patchfile as pf

from .conftest import MODELING, SHA_5_20_2, SHA_PATCHED, mrope_edit


def _sha(path) -> str:
    return pf.sha256_bytes(path.read_bytes())


def test_local_extract_diff_apply_status_revert_restores_original_bytes(mlops, local_env, tmp_path):
    py = str(local_env.python)
    work = tmp_path / "work"
    r = mlops("patch", "extract", "--python", py, MODELING, "-o", str(work), "--json")
    assert r.returncode == 0, r
    assert r.json()["site"] == str(local_env.site) and r.json()["version"] == "5.20.2"
    (work / MODELING).write_text(mrope_edit((work / MODELING).read_text()))
    patch = tmp_path / "x.patch"
    assert mlops("patch", "diff", str(work), "-o", str(patch)).returncode == 0

    r = mlops("patch", "status", str(patch), "--python", py, "--json")
    assert r.returncode == 1 and r.json()["result"] == "not-applied", r
    r = mlops("patch", "apply", str(patch), "--python", py, "--dry-run")
    assert r.returncode == 0 and "dry run" in r.stdout and _sha(local_env.file) == SHA_5_20_2, r
    r = mlops("patch", "apply", str(patch), "--python", py, "--yes", "--json")
    assert r.returncode == 0, r
    doc = r.json()
    assert doc["result"] == "applied" and doc["target"] == {"kind": "local", "ref": py}
    assert {"path", "sha256_before", "sha256_after", "state", "target_path"} <= set(doc["files"][0])
    assert _sha(local_env.file) == SHA_PATCHED
    backups = list((tmp_path / "state").rglob(SHA_5_20_2))
    assert len(backups) == 1 and _sha(backups[0]) == SHA_5_20_2  # the backup, content-addressed

    r = mlops("patch", "status", str(patch), "--python", py)
    assert r.returncode == 0 and "status: applied" in r.stdout, r
    r = mlops("patch", "revert", str(patch), "--python", py, "--yes")
    assert r.returncode == 0 and "reverted" in r.stdout and "sha256 verified" in r.stdout, r
    assert local_env.file.read_bytes() == local_env.original  # the original bytes, exactly
    r = mlops("patch", "revert", str(patch), "--python", py, "--yes")
    assert r.returncode == 0 and "not applied" in r.stdout, r


def test_already_applied_is_a_noop(mlops, local_env, pinned_patch):
    py = str(local_env.python)
    assert mlops("patch", "apply", str(pinned_patch), "--python", py, "--yes").returncode == 0
    mtime = local_env.file.stat().st_mtime_ns
    r = mlops("patch", "apply", str(pinned_patch), "--python", py, "--yes")
    assert r.returncode == 0 and "already applied, nothing to do" in r.stdout, r
    assert local_env.file.stat().st_mtime_ns == mtime and _sha(local_env.file) == SHA_PATCHED


def test_wrong_version_is_refused_naming_both(mlops, local_env_other, pinned_patch):
    py = str(local_env_other.python)
    r = mlops("patch", "apply", str(pinned_patch), "--python", py, "--yes")
    assert r.returncode == 1, r
    assert "patch is for transformers 5.20.2, the target has transformers 5.23.0" in r.stderr
    assert local_env_other.file.read_bytes() == local_env_other.original
    # The override accepts only an exact hunk match; 5.23.0 moved the code 13 lines (research
    # §2.5), so GNU patch would apply it with an offset; we refuse.
    r = mlops("patch", "apply", str(pinned_patch), "--python", py, "--yes", "--allow-other-version")
    assert r.returncode == 1 and "hunks match neither" in r.stderr, r
    assert local_env_other.file.read_bytes() == local_env_other.original


def test_conflicting_hunk_changes_nothing(mlops, local_env, pinned_patch):
    text = local_env.original.decode().replace("// spatial_merge_size\n", "// spatial_merge_size  # local edit\n", 1)
    local_env.file.write_text(text)
    r = mlops("patch", "apply", str(pinned_patch), "--python", str(local_env.python), "--yes", "--json")
    assert r.returncode == 1, r
    assert r.json()["result"] == "conflict" and r.json()["files"][0]["state"] == "conflict"
    assert "matches neither the pinned original" in r.stderr and "hint:" in r.stderr
    assert local_env.file.read_text() == text


def test_partially_applied_two_file_patch_is_refused(mlops, local_env, wheel_pinned, tmp_path):
    from .conftest import wheel_file

    other = "transformers/dependency_versions_table.py"
    orig_other = wheel_file(wheel_pinned, other)
    patch = tmp_path / "two.patch"
    patch.write_bytes(
        pf.make_patch(
            "transformers",
            "5.20.2",
            [
                (MODELING, local_env.original, mrope_edit(local_env.original.decode()).encode()),
                (other, orig_other, orig_other + b"# mlops\n"),
            ],
        )
    )
    local_env.file.write_text(mrope_edit(local_env.original.decode()))  # first file already patched by hand
    other_path = local_env.site / other
    r = mlops("patch", "apply", str(patch), "--python", str(local_env.python), "--yes")
    assert r.returncode == 1 and "partially applied" in r.stderr, r
    assert other_path.read_bytes() == orig_other and _sha(local_env.file) == SHA_PATCHED


def test_corrupt_patch_is_exit_2_and_changes_nothing(mlops, local_env, pinned_patch, tmp_path):
    good = pinned_patch.read_text()
    variants = {
        "truncated": good[: good.index("+                    current_pos")],
        "bad-hash": good.replace(SHA_PATCHED, "zz" + SHA_PATCHED[2:]),
        "garbage": "this is not a patch\n",
        "binary": "\udcff",
        "hand-edited-hunk": good.replace(
            "+                    current_pos = int(", "+                    current_pos = float("
        ),
    }
    for name, text in variants.items():
        bad = tmp_path / f"{name}.patch"
        bad.write_bytes(text.encode("utf-8", "surrogateescape"))
        r = mlops("patch", "apply", str(bad), "--python", str(local_env.python), "--yes")
        assert r.returncode == 2, (name, r)
        assert r.stderr.startswith("error: corrupt patch") and "Traceback" not in r.stderr, (name, r)
        assert local_env.file.read_bytes() == local_env.original, name


def test_plain_diff_needs_package_and_warns_unpinned(mlops, local_env, tmp_path):
    plain = tmp_path / "plain.diff"
    plain.write_text(pf.make_diff(MODELING, local_env.original.decode(), mrope_edit(local_env.original.decode())))
    py = str(local_env.python)
    r = mlops("patch", "apply", str(plain), "--python", py, "--yes")
    assert r.returncode == 2 and "--package" in r.stderr, r
    r = mlops("patch", "apply", str(plain), "--python", py, "--yes", "--package", "transformers")
    assert r.returncode == 0, r
    assert "nothing pins it" in r.stderr
    assert _sha(local_env.file) == SHA_PATCHED
    r = mlops("patch", "status", str(plain), "--python", py, "--package", "transformers")
    assert r.returncode == 0 and "status: applied" in r.stdout, r


def test_no_tty_without_yes_refuses_and_changes_nothing(mlops, local_env, pinned_patch):
    r = mlops("patch", "apply", str(pinned_patch), "--python", str(local_env.python))
    assert r.returncode == 2 and "--yes" in r.stderr, r
    assert local_env.file.read_bytes() == local_env.original


def test_diff_refuses_an_edit_that_does_not_parse_and_no_edit(mlops, local_env, tmp_path):
    work = tmp_path / "w"
    assert mlops("patch", "extract", "--python", str(local_env.python), MODELING, "-o", str(work)).returncode == 0
    out = tmp_path / "x.patch"
    r = mlops("patch", "diff", str(work), "-o", str(out))
    assert r.returncode == 1 and "no changes" in r.stderr, r
    with open(work / MODELING, "a") as fh:
        fh.write("def broken(:\n")
    r = mlops("patch", "diff", str(work), "-o", str(out))
    assert r.returncode == 1 and "line" in r.stderr and not out.exists(), r
    r = mlops("patch", "extract", "--python", str(local_env.python), MODELING, "-o", str(work))
    assert r.returncode == 2 and "not an empty folder" in r.stderr, r


def test_missing_package_and_file_are_clear_errors(mlops, local_env, tmp_path):
    py = str(local_env.python)
    r = mlops("patch", "extract", "--python", py, "vllm/entrypoints/api.py", "-o", str(tmp_path / "a"))
    assert r.returncode == 1 and "'vllm' is not installed" in r.stderr, r
    r = mlops("patch", "extract", "--python", py, "transformers/nope.py", "-o", str(tmp_path / "b"))
    assert r.returncode == 1 and "not found in" in r.stderr and not (tmp_path / "b").exists(), r


def test_local_target_defaults_to_the_running_interpreter(mlops, tmp_path):
    import sys
    from pathlib import Path

    import typer

    rel = "typer/colors.py"
    original = Path(typer.__file__).parent.joinpath("colors.py").read_bytes()
    patch = tmp_path / "typer.patch"
    patch.write_bytes(pf.make_patch("typer", typer.__version__, [(rel, original, original + b"# x\n")]))
    r = mlops("patch", "status", str(patch), "--json")  # no target: this environment
    assert r.returncode == 1 and r.json()["result"] == "not-applied", r
    assert os.path.realpath(r.json()["python"]) == os.path.realpath(sys.executable)
    assert r.json()["target"]["kind"] == "local"


PATCH_JSON_KEYS = {
    "command",
    "result",
    "state",
    "target",
    "package",
    "version",
    "site",
    "python",
    "patch",
    "files",
    "new_image",
    "new_image_id",
    "labels",
    "dry_run",
    "plan",
    "import_check",
    "problem",
    "warnings",
    "notes",
}


def test_json_schema_and_revert_dry_run(mlops, local_env, pinned_patch):
    py = str(local_env.python)
    for argv in (["status"], ["apply", "--dry-run"], ["revert", "--dry-run"]):
        r = mlops("patch", argv[0], str(pinned_patch), "--python", py, *argv[1:], "--json")
        assert set(r.json()) == PATCH_JSON_KEYS, (argv, sorted(r.json()))
        assert set(r.json()["patch"]) == {"path", "sha256", "pinned", "version"}
        assert set(r.json()["files"][0]) == {
            "path",
            "state",
            "sha256_current",
            "sha256_before",
            "sha256_after",
            "reason",
            "target_path",
        }
    assert mlops("patch", "apply", str(pinned_patch), "--python", py, "--yes").returncode == 0
    r = mlops("patch", "revert", str(pinned_patch), "--python", py, "--dry-run", "--json")
    assert r.returncode == 0 and r.json()["result"] == "would-revert" and r.json()["dry_run"] is True, r
    assert any("backup" in step for step in r.json()["plan"])
    assert _sha(local_env.file) == SHA_PATCHED  # a dry run changes nothing
