"""Issue 8's `mlops patch` items, each against the real command line and a real venv with the real
transformers 5.20.2: crash-safe local apply (P1), ownership (P2), non-Python files (P3), the
umask (P4), symbolic links (P5), tampered work folders, long lists, engine hints, a shell given as
--python, and a closed stdout after the change was made."""

from __future__ import annotations

import json
import os
import random
import signal
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from mlops_cli.patch import decide
from mlops_cli.patch import patchfile as pf

from .conftest import MODELING, PINNED, SHA_5_20_2, SHA_PATCHED, mrope_edit


def _env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env.pop("MLOPS_DEBUG", None)
    env.update(extra or {})
    return env


# --- P1: an interrupted multi-file apply ------------------------------------------------------


def _many_files(wheel: Path, count: int) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as zf:
        names = sorted(
            i.filename
            for i in zf.infolist()
            if i.filename.startswith("transformers/models/")
            and i.filename.endswith(".py")
            and 2000 < i.file_size < 30000
        )
        return {rel: zf.read(rel) for rel in names[:count]}


class Tree:
    """The files of a multi-file patch in a real site-packages, and what is left around them."""

    def __init__(self, site: Path, originals: dict[str, bytes], state: Path):
        self.site, self.originals, self.state = site, originals, state
        self.patched = {rel: data + b"# mlops P1: patched\n" for rel, data in originals.items()}

    def reset(self) -> None:
        for rel, data in self.originals.items():
            (self.site / rel).write_bytes(data)

    def count_patched(self) -> int:
        n = 0
        for rel in self.originals:
            data = (self.site / rel).read_bytes()
            assert data in (self.originals[rel], self.patched[rel]), f"{rel} is neither original nor patched"
            n += data == self.patched[rel]
        return n

    def journals(self) -> list[Path]:
        return sorted((self.state / "patch" / "journals").glob("*.json"))

    def temporaries(self) -> list[Path]:
        return sorted((self.site / "transformers").rglob(".*.tmp"))


@pytest.fixture
def tree(local_env, wheel_pinned, tmp_path):
    t = Tree(local_env.site, _many_files(wheel_pinned, 150), tmp_path / "state")
    yield t
    t.reset()


def _start_apply(patch: Path, python: Path, state: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlops_cli",
            "patch",
            "apply",
            str(patch),
            "--python",
            str(python),
            "--yes",
            "--no-import-check",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
        env=_env({"MLOPS_STATE_DIR": str(state)}),
    )


def _wait_for_journal(tree: Tree, p: subprocess.Popen, limit: float = 120) -> bool:
    end = time.monotonic() + limit
    while time.monotonic() < end and p.poll() is None:
        if tree.journals():
            return True
        time.sleep(0.001)
    return False


def test_sigterm_or_ctrl_c_during_a_multi_file_apply_leaves_the_tree_whole(mlops, local_env, tree, tmp_path):
    """P1: 11 or 22 of 400 files were left patched, plus a stray temporary file, and afterwards
    apply and revert both refused. Now the replace loop holds the signal: all or nothing."""
    patch = tmp_path / "many.patch"
    patch.write_bytes(
        pf.make_patch("transformers", PINNED, [(r, tree.originals[r], tree.patched[r]) for r in tree.originals])
    )
    start = time.monotonic()
    assert (
        mlops(
            "patch",
            "apply",
            str(patch),
            "--python",
            str(local_env.python),
            "--yes",
            "--no-import-check",
            env={"MLOPS_STATE_DIR": str(tree.state)},
        ).returncode
        == 0
    )
    whole_run = time.monotonic() - start
    assert tree.count_patched() == len(tree.originals)
    rng = random.Random(8)
    trials = [(signal.SIGTERM, "in the loop"), (signal.SIGINT, "in the loop"), (signal.SIGTERM, "in the loop")]
    trials += [(rng.choice([signal.SIGTERM, signal.SIGINT]), "at random") for _ in range(5)]
    seen = set()
    for sig, when in trials:
        tree.reset()
        p = _start_apply(patch, local_env.python, tree.state)
        if when == "in the loop":
            _wait_for_journal(tree, p)
            time.sleep(rng.uniform(0, 0.01))
        else:
            time.sleep(rng.uniform(0.05, whole_run))
        p.send_signal(sig)
        _, err = p.communicate(timeout=120)
        n = tree.count_patched()
        assert n in (0, len(tree.originals)), f"{sig!r} {when}: {n} of {len(tree.originals)} files patched\n{err}"
        assert p.returncode in (0, 130) and "Traceback" not in err and "internal error" not in err, err
        assert tree.journals() == [] and tree.temporaries() == []
        seen.add(n)
        # and whatever the state, it can be finished both ways
        r = mlops(
            "patch",
            "apply",
            str(patch),
            "--python",
            str(local_env.python),
            "--yes",
            "--no-import-check",
            env={"MLOPS_STATE_DIR": str(tree.state)},
        )
        assert r.returncode == 0 and tree.count_patched() == len(tree.originals), r
    r = mlops(
        "patch",
        "revert",
        str(patch),
        "--python",
        str(local_env.python),
        "--yes",
        env={"MLOPS_STATE_DIR": str(tree.state)},
    )
    assert r.returncode == 0 and tree.count_patched() == 0, r
    assert seen, "no trial ran"


def test_a_killed_apply_is_finished_or_rolled_back_from_its_journal(mlops, local_env, tree, tmp_path):
    """P1: SIGKILL (OOM killer, power loss) cannot be held; the journal then lets `apply` finish
    and `revert` roll back, each file checked by sha256, and stray temporary files removed."""
    patch = tmp_path / "many.patch"
    patch.write_bytes(
        pf.make_patch("transformers", PINNED, [(r, tree.originals[r], tree.patched[r]) for r in tree.originals])
    )
    py, state = str(local_env.python), {"MLOPS_STATE_DIR": str(tree.state)}
    rng = random.Random(14)
    finished = 0
    for finish in ("apply", "revert", "apply", "revert"):
        tree.reset()
        p = _start_apply(patch, local_env.python, tree.state)
        assert _wait_for_journal(tree, p), p.communicate()
        time.sleep(rng.uniform(0, 0.05))
        p.kill()
        p.communicate(timeout=60)
        n = tree.count_patched()
        if not tree.journals():
            assert n == len(tree.originals)  # killed after the last file: nothing to finish
            continue
        finished += 1
        r = mlops("patch", "status", str(patch), "--python", py, env=state)
        assert r.returncode == 1 and "an interrupted `mlops patch apply`" in r.stderr, r
        assert "finish it with: mlops patch apply" in r.stderr
        extra = ["--no-import-check"] if finish == "apply" else []
        r = mlops("patch", finish, str(patch), "--python", py, "--yes", *extra, env=state)
        assert r.returncode == 0, r
        assert tree.count_patched() == (len(tree.originals) if finish == "apply" else 0), r
        assert tree.journals() == [] and tree.temporaries() == []
        assert "finish the interrupted" in r.stdout or "restored" in r.stdout or "removed" in r.stdout, r
    assert finished >= 2, "no kill landed while the files were being replaced"
    r = mlops("patch", "revert", str(patch), "--python", py, "--yes", env=state)
    assert r.returncode == 0 and tree.count_patched() == 0, r


def test_a_journal_of_another_patch_is_named_and_blocks(mlops, local_env, tree, tmp_path):
    patch = tmp_path / "many.patch"
    patch.write_bytes(
        pf.make_patch("transformers", PINNED, [(r, tree.originals[r], tree.patched[r]) for r in tree.originals])
    )
    p = _start_apply(patch, local_env.python, tree.state)
    assert _wait_for_journal(tree, p)
    p.kill()
    p.communicate(timeout=60)
    if not tree.journals():
        pytest.skip("the apply finished before it could be killed")
    other = tmp_path / "mrope.patch"
    original = wheel_file_of(local_env)
    other.write_bytes(
        pf.make_patch("transformers", PINNED, [(MODELING, original, mrope_edit(original.decode()).encode())])
    )
    r = mlops(
        "patch",
        "apply",
        str(other),
        "--python",
        str(local_env.python),
        "--yes",
        env={"MLOPS_STATE_DIR": str(tree.state)},
    )
    assert r.returncode == 1 and "an interrupted `mlops patch apply` (many.patch" in r.stderr, r
    assert (
        "finish it with: mlops patch apply" in r.stderr and pf.sha256_bytes(local_env.file.read_bytes()) == SHA_5_20_2
    )
    copy = r.stderr.split("finish it with: mlops patch apply ", 1)[1].split(" ", 1)[0]
    r = mlops(
        "patch", "revert", copy, "--python", str(local_env.python), "--yes", env={"MLOPS_STATE_DIR": str(tree.state)}
    )  # the stored copy of the patch finishes it
    assert r.returncode == 0 and tree.count_patched() == 0 and tree.journals() == [], r


def wheel_file_of(env) -> bytes:
    return env.original


def test_the_partial_state_error_is_one_short_line():
    """It was one 17 KB line listing 400 files."""
    changes = [(f"pkg/m{i:03d}.py", b"a = 1\n", b"a = 2\n") for i in range(400)]
    patch = pf.parse(pf.make_patch("pkg", "1", changes))
    current = {f"pkg/m{i:03d}.py": (b"a = 2\n" if i % 3 == 0 else b"a = 1\n") for i in range(400)}
    problem = decide.assess(patch, "1", current).problem
    assert len(problem) < 400 and "134 of 400 files patched" in problem and "more" in problem, problem
    current["pkg/m001.py"] = b"other\n"
    problem = decide.assess(patch, "1", current).problem
    assert len(problem) < 400, problem


# --- P2: a patch only touches its own package ------------------------------------------------


def test_a_patch_may_not_touch_another_package_or_a_pth_file(mlops, local_env, tmp_path):
    site = local_env.site
    (site / "otherpkg").mkdir(exist_ok=True)
    (site / "otherpkg" / "__init__.py").write_text("SAFE = True\n")
    try:
        evil = tmp_path / "evil.patch"
        evil.write_bytes(
            pf.make_patch(
                "transformers",
                PINNED,
                [
                    (MODELING, local_env.original, mrope_edit(local_env.original.decode()).encode()),
                    ("otherpkg/__init__.py", b"SAFE = True\n", b"SAFE = False\n"),
                ],
            )
        )
        r = mlops("patch", "apply", str(evil), "--python", str(local_env.python), "--yes")
        assert r.returncode == 2 and "changes otherpkg/__init__.py: not part of transformers" in r.stderr, r
        assert "transformers-5.20.2.dist-info/RECORD" in r.stderr
        assert (site / "otherpkg" / "__init__.py").read_text() == "SAFE = True\n"
        assert local_env.file.read_bytes() == local_env.original
        pth = tmp_path / "pth.patch"
        pth.write_bytes(
            pf.make_patch(
                "transformers", PINNED, [("zzz-mlops.pth", None, b"import os; os.system('touch /tmp/pwned')\n")]
            )
        )
        r = mlops("patch", "apply", str(pth), "--python", str(local_env.python), "--yes")
        assert r.returncode == 2 and "a .pth file (run at every Python start-up)" in r.stderr, r
        assert not (site / "zzz-mlops.pth").exists()
        # The package's own files, including its dist-info (listed in RECORD), are fine.
        meta = "transformers-5.20.2.dist-info/METADATA"
        own = tmp_path / "own.patch"
        own.write_bytes(
            pf.make_patch(
                "transformers",
                PINNED,
                [(meta, (site / meta).read_bytes(), (site / meta).read_bytes() + b"X-Patched: yes\n")],
            )
        )
        r = mlops("patch", "status", str(own), "--python", str(local_env.python))
        assert r.returncode == 1 and "not-applied" in r.stdout, r
    finally:
        import shutil

        shutil.rmtree(site / "otherpkg", ignore_errors=True)


# --- P3: only .py files are compiled ---------------------------------------------------------


def test_non_python_files_are_applied_and_never_compiled(mlops, local_env, tmp_path):
    """README, YAML, JSON passed extract and diff, but apply compile-checked them and refused."""
    typed = "transformers/py.typed"
    yaml = "transformers/models/qwen2_5_vl/mlops-notes.yaml"
    original = (local_env.site / typed).read_bytes()
    patch = tmp_path / "data.patch"
    patch.write_bytes(
        pf.make_patch(
            "transformers",
            PINNED,
            [(typed, original, original + b"partial\n"), (yaml, None, b"note: [not, python: {\n")],
        )
    )
    try:
        r = mlops("patch", "apply", str(patch), "--python", str(local_env.python), "--yes")
        assert r.returncode == 0, r
        assert (local_env.site / typed).read_bytes() == original + b"partial\n"
        assert (local_env.site / yaml).exists()
        assert mlops("patch", "revert", str(patch), "--python", str(local_env.python), "--yes").returncode == 0
        assert (local_env.site / typed).read_bytes() == original and not (local_env.site / yaml).exists()
    finally:
        (local_env.site / typed).write_bytes(original)
        (local_env.site / yaml).unlink(missing_ok=True)


def test_the_agent_compiles_only_python_files(tmp_path):
    """Container mode and the image's RUN step run the agent: a YAML file is written, not compiled."""
    import base64

    from mlops_cli.patch import agent

    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("A = 1\n")
    files = {"pkg/a.py": base64.b64encode(b"A = 2\n").decode(), "pkg/c.yaml": base64.b64encode(b"x: [\n").decode()}
    p = subprocess.run(
        [sys.executable, "-c", agent.SOURCE, "write", "{}"],
        input=json.dumps({"site": str(tmp_path), "files": files}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0 and json.loads(p.stdout)["written"]["pkg/c.yaml"], p.stderr
    verify = {"site": str(tmp_path), "files": {"pkg/c.yaml": pf.sha256_bytes(b"x: [\n")}}
    p = subprocess.run(
        [sys.executable, "-c", agent.SOURCE, "verify", json.dumps(verify)], capture_output=True, text=True
    )
    assert p.returncode == 0, p.stdout


# --- P4: outputs respect the umask -----------------------------------------------------------


def test_patch_files_and_work_folders_respect_the_umask(local_env, tmp_path):
    """Patch files and snapshots were written 0600 whatever the umask."""
    work, out = tmp_path / "w", tmp_path / "x.patch"
    script = (
        f"umask 027 && {sys.executable} -m mlops_cli patch extract --python {local_env.python} {MODELING} "
        f"-o {work} && printf '# edit\\n' >> {work}/{MODELING} && "
        f"{sys.executable} -m mlops_cli patch diff {work} -o {out}"
    )
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=_env(), timeout=300)
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    assert stat.S_IMODE((work / ".mlops" / "original" / MODELING).stat().st_mode) == 0o640
    assert stat.S_IMODE(work.stat().st_mode) == 0o750


# --- P5: symbolic links ----------------------------------------------------------------------


def test_a_file_reached_through_a_symlink_is_refused(mlops, local_env, pinned_patch, tmp_path):
    """The symlink was written through to a file outside the environment."""
    outside = tmp_path / "outside.py"
    outside.write_bytes(local_env.original)
    local_env.file.unlink()
    local_env.file.symlink_to(outside)
    try:
        r = mlops("patch", "apply", str(pinned_patch), "--python", str(local_env.python), "--yes")
        assert r.returncode == 2 and "symbolic link" in r.stderr and "leads out of site-packages" in r.stderr, r
        assert outside.read_bytes() == local_env.original and local_env.file.is_symlink()
        r = mlops("patch", "extract", "--python", str(local_env.python), MODELING, "-o", str(tmp_path / "w"))
        assert r.returncode == 2 and "symbolic link" in r.stderr and not (tmp_path / "w").exists(), r
    finally:
        local_env.file.unlink()
        local_env.reset()
    # A folder on the way that is a link out of site-packages is refused the same way.
    folder = local_env.site / "transformers" / "models" / "qwen2_5_vl"
    moved = tmp_path / "qwen2_5_vl"
    folder.rename(moved)
    folder.symlink_to(moved)
    try:
        r = mlops("patch", "apply", str(pinned_patch), "--python", str(local_env.python), "--yes")
        assert r.returncode == 2 and "symbolic link" in r.stderr, r
        assert pf.sha256_bytes((moved / "modeling_qwen2_5_vl.py").read_bytes()) == SHA_5_20_2
    finally:
        folder.unlink()
        moved.rename(folder)


def test_the_agent_refuses_to_write_through_a_symlink(tmp_path):
    import base64

    from mlops_cli.patch import agent

    site, outside = tmp_path / "site", tmp_path / "outside.py"
    (site / "pkg").mkdir(parents=True)
    outside.write_text("KEEP = 1\n")
    (site / "pkg" / "m.py").symlink_to(outside)
    payload = {"site": str(site), "files": {"pkg/m.py": base64.b64encode(b"KEEP = 2\n").decode()}}
    p = subprocess.run(
        [sys.executable, "-c", agent.SOURCE, "write", "{}"],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 1 and json.loads(p.stdout)["error"] == "link"
    assert outside.read_text() == "KEEP = 1\n" and (site / "pkg" / "m.py").is_symlink()


# --- tampered work folders -------------------------------------------------------------------


def _work(root: Path, files: list[dict], package: str = "pkg", version: str = "1.0") -> Path:
    (root / ".mlops" / "original" / "pkg").mkdir(parents=True)
    (root / ".mlops" / "original" / "pkg" / "m.py").write_bytes(b"x = 1\n")
    (root / "pkg").mkdir()
    (root / "pkg" / "m.py").write_bytes(b"x = 2\n")
    (root / ".mlops" / "extract.json").write_text(
        json.dumps({"format": 1, "package": package, "version": version, "source": {}, "files": files})
    )
    return root


def test_a_newline_in_extract_json_is_exit_2_not_an_internal_error(mlops, tmp_path):
    good = {"path": "pkg/m.py", "sha256": pf.sha256_bytes(b"x = 1\n")}
    for n, (files, version) in enumerate(
        [([good], "1.0\n# file: pkg/evil.py"), ([good | {"path": "pkg/m.py\nx"}], "1.0")]
    ):
        work = _work(tmp_path / f"w{n}", files, version=version)
        r = mlops("patch", "diff", str(work), "-o", str(tmp_path / f"x{n}.patch"))
        assert r.returncode == 2 and "is damaged" in r.stderr and "internal error" not in r.stderr, r
        assert not (tmp_path / f"x{n}.patch").exists()


def test_an_absolute_path_in_extract_json_is_never_read(mlops, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET\n")
    work = _work(tmp_path / "w", [{"path": str(secret), "sha256": pf.sha256_bytes(secret.read_bytes())}])
    r = mlops("patch", "diff", str(work), "-o", str(tmp_path / "x.patch"))
    assert r.returncode == 2 and "damaged" in r.stderr and "TOP SECRET" not in r.stderr + r.stdout, r
    assert not (tmp_path / "x.patch").exists()
    work2 = _work(tmp_path / "w2", [{"path": "pkg/../../secret.txt", "sha256": "0" * 64}])
    r = mlops("patch", "diff", str(work2), "-o", str(tmp_path / "y.patch"))
    assert r.returncode == 2 and not (tmp_path / "y.patch").exists(), r


# --- engines, interpreters, stdout -----------------------------------------------------------


def test_revert_image_hint_names_the_engine_in_use(mlops, pinned_patch):
    r = mlops("patch", "revert", str(pinned_patch), "--image", "x:1", "--engine", "podman")
    assert r.returncode == 2 and "podman rmi TAG" in r.stderr and "docker" not in r.stderr, r
    r = mlops("patch", "revert", str(pinned_patch), "--image", "x:1", env={"MLOPS_ENGINE": "podman"})
    assert r.returncode == 2 and "podman rmi TAG" in r.stderr, r


def test_a_shell_given_as_python_runs_no_python_source(mlops, tmp_path):
    """`patch extract --python /bin/sh` ran the agent's Python source as a shell script: its first
    line `import base64, ...` runs ImageMagick's `import` when installed (here: a marker program)."""
    bin_dir, marker = tmp_path / "bin", tmp_path / "ran"
    bin_dir.mkdir()
    (bin_dir / "import").write_text(f'#!/bin/sh\necho "$@" > {marker}\n')
    (bin_dir / "import").chmod(0o755)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    for shell in ("/bin/sh", "/bin/bash"):
        r = mlops("patch", "extract", "--python", shell, "transformers/x.py", "-o", str(tmp_path / "w"), env=env)
        assert r.returncode == 2 and f"--python {shell} is not a Python interpreter" in r.stderr, r
        assert not marker.exists() and not (tmp_path / "w").exists()
    r = mlops("patch", "status", str(tmp_path / "x.patch"), "--python", str(tmp_path), env=env)
    assert r.returncode == 2 and "internal error" not in r.stderr, r


def test_closed_stdout_after_apply_still_says_the_change_was_made(local_env, pinned_patch, tmp_path):
    """The report could not be printed, but the files were patched: exit 0 and a note, not exit 1."""
    cmd = (
        f"{sys.executable} -m mlops_cli patch apply {pinned_patch} --python {local_env.python} --yes "
        f"--no-import-check >&-"
    )
    r = subprocess.run(
        ["bash", "-c", cmd],
        capture_output=True,
        text=True,
        timeout=300,
        env=_env({"MLOPS_STATE_DIR": str(tmp_path / "state")}),
    )
    assert pf.sha256_bytes(local_env.file.read_bytes()) == SHA_PATCHED
    assert r.returncode == 0, r.stderr
    assert "error: could not write the report to stdout" in r.stderr
    assert "note: the change itself was made" in r.stderr and "Traceback" not in r.stderr
    with open("/dev/full", "w") as full:  # a full disk behind stdout: the same
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "mlops_cli",
                "patch",
                "revert",
                str(pinned_patch),
                "--python",
                str(local_env.python),
                "--yes",
                "--json",
            ],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            env=_env({"MLOPS_STATE_DIR": str(tmp_path / "state")}),
            timeout=300,
        )
    assert r.returncode == 0 and "the change itself was made" in r.stderr, r.stderr
    assert local_env.file.read_bytes() == local_env.original
