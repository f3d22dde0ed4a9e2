"""The file floor: every user input read and every output written goes through files.py."""

from __future__ import annotations

import json
import os
import stat
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlops_cli import files
from mlops_cli.errors import OperationFailed, UsageError

# --- reading ---------------------------------------------------------------------------


def test_missing_folder_device_and_too_large_are_one_line_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        files.read_input_bytes(tmp_path / "nope", what="config")
    with pytest.raises(UsageError, match="is a folder"):
        files.read_input_bytes(tmp_path, what="config")
    # `mlops mem estimate /dev/zero` read without bound until memory ran out (M1).
    with pytest.raises(UsageError, match="is a device"):
        files.read_input_bytes("/dev/zero", what="config")
    big = tmp_path / "big.json"
    big.write_bytes(b" " * 2048)
    with pytest.raises(UsageError, match="larger than 1 KiB"):
        files.read_input_bytes(big, what="config", max_bytes=1024)


def test_a_fifo_is_read_with_its_cap(tmp_path):
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    pid = os.fork()
    if pid == 0:  # the writer: more than the cap, then it is gone
        try:
            with open(fifo, "wb") as fh:
                fh.write(b"x" * 5000)
        finally:
            os._exit(0)
    try:
        with pytest.raises(UsageError, match="larger than"):
            files.read_input_bytes(fifo, what="snapshot", max_bytes=1000)
    finally:
        os.waitpid(pid, 0)


def test_unreadable_file_and_too_long_name(tmp_path):
    locked = tmp_path / "locked.json"
    locked.write_text("{}")
    locked.chmod(0)
    if os.geteuid() != 0:  # root reads anything
        with pytest.raises(UsageError, match="Permission denied"):
            files.read_input_bytes(locked, what="config")
    with pytest.raises(UsageError, match="File name too long"):
        files.read_input_bytes(tmp_path / ("a" * 5000), what="config")


@pytest.mark.parametrize(
    "text, words",
    [
        ("{not json", "not valid JSON"),
        ('{"a": NaN}', "NaN is not a number"),
        ('{"a": Infinity}', "Infinity is not a number"),
        ('{"a": -Infinity}', "-Infinity is not a number"),
        ('{"a": 1e400}', "out of range"),
        ('{"a": ' + "9" * 500 + "}", "out of range"),
        ("[" * 100 + "]" * 100, "nested deeper than 64"),
        ("[" * 100000 + "]" * 100000, "nested"),  # deeper than Python's recursion limit
    ],
)
def test_json_rules(text, words):
    with pytest.raises(UsageError, match=words):
        files.parse_json(text, what="model config")


def test_bom_is_dropped_and_bad_utf8_names_its_offset(tmp_path):
    p = tmp_path / "c.json"
    p.write_bytes(b'\xef\xbb\xbf{"a": 1}')
    assert files.read_input_json(p, what="config") == {"a": 1}
    p.write_bytes(b'{"a": "\xff"}')
    with pytest.raises(UsageError, match="not UTF-8 text .*offset 7"):
        files.read_input_json(p, what="config")


@settings(derandomize=True, max_examples=200, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_bytes_give_a_document_or_one_usage_error(data):
    try:
        text = files.decode_utf8(data, what="x", path="x")
        files.parse_json(text, what="x")
    except UsageError as exc:
        assert "\n" not in exc.message


@settings(derandomize=True, max_examples=100, deadline=None)
@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=10),
        lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=5), kids, max_size=4),
        max_leaves=30,
    )
)
def test_every_ordinary_json_document_parses_back(doc):
    assert files.parse_json(json.dumps(doc), what="x") == doc


class _Dict(dict):
    pass


class _List(list):
    pass


def _depth(node) -> int:
    """Nesting depth of containers, the plain recursive definition (0 for a leaf)."""
    if isinstance(node, dict):
        return 1 + max(map(_depth, node.values()), default=0)
    if isinstance(node, list):
        return 1 + max(map(_depth, node), default=0)
    return 0


@settings(derandomize=True, max_examples=300, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=3),
        lambda kids: (
            st.lists(kids, max_size=3)
            | st.dictionaries(st.text(max_size=2), kids, max_size=3)
            | st.lists(kids, max_size=2).map(_List)
            | st.dictionaries(st.text(max_size=2), kids, max_size=2).map(_Dict)
            | st.lists(kids, max_size=2).map(tuple)
        ),
        max_leaves=30,
    ),
    st.integers(min_value=0, max_value=6),
)
def test_depth_check_matches_the_plain_definition(doc, limit):
    # subclasses and tuples (not JSON types, but a caller may pass them) take the item-by-item path
    assert files.json_depth_exceeds(doc, limit) == (_depth(doc) > limit)


# --- writing ---------------------------------------------------------------------------


@pytest.mark.parametrize("refuse_after", [None, 0, 1])  # sendfile works / is refused at once / midway
def test_copy_new_copies_every_byte_in_the_kernel_or_not(tmp_path, monkeypatch, refuse_after):
    import errno

    data = os.urandom(3 * 1024 * 1024 + 17)
    src = tmp_path / "src.whl"
    src.write_bytes(data)
    calls, real = [], os.sendfile

    def sendfile(out_fd, in_fd, offset, count):
        calls.append(offset)
        if refuse_after is not None and len(calls) > refuse_after:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(out_fd, in_fd, offset, min(count, 1024 * 1024))

    monkeypatch.setattr(os, "sendfile", sendfile)
    files.copy_new(src, tmp_path / "dest.whl")
    assert (tmp_path / "dest.whl").read_bytes() == data
    assert stat.S_IMODE((tmp_path / "dest.whl").stat().st_mode) == 0o666 & ~files.current_umask()
    if sys.platform.startswith("linux"):
        assert calls  # the kernel path was tried
    with pytest.raises(UsageError, match="cannot write"):
        files.copy_new(src, tmp_path / "dest.whl")  # never over an existing file


def test_copy_new_on_a_full_disk_is_an_operation_failure(tmp_path, monkeypatch):
    import errno

    src = tmp_path / "src.whl"
    src.write_bytes(b"x" * 100)

    def full(*_args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "sendfile", full)
    monkeypatch.setattr(files.shutil, "copyfileobj", lambda *a, **k: full())
    with pytest.raises(OperationFailed, match="No space left"):
        files.copy_new(src, tmp_path / "dest.whl")


def test_write_atomic_creates_with_the_umask_and_keeps_an_existing_mode(tmp_path):
    old = os.umask(0o027)
    try:
        p = tmp_path / "out.json"
        files.write_atomic(p, "one")
        assert stat.S_IMODE(p.stat().st_mode) == 0o640  # 0666 less the umask, not mkstemp's 0600 (P4)
        p.chmod(0o604)
        files.write_atomic(p, "two")
        assert p.read_text() == "two" and stat.S_IMODE(p.stat().st_mode) == 0o604
    finally:
        os.umask(old)
    assert [x.name for x in tmp_path.iterdir()] == ["out.json"]  # no temporary file left


def test_a_symlink_is_refused_and_left_alone(tmp_path):
    """`patch diff -o link` replaced the link by a regular file; writing through it silently
    is no better (D1)."""
    target = tmp_path / "real.txt"
    target.write_text("keep")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    with pytest.raises(UsageError, match="symbolic link"):
        files.write_atomic(link, "new")
    with pytest.raises(UsageError, match="symbolic link"):
        files.check_writable(link, what="snapshot")
    assert link.is_symlink() and target.read_text() == "keep"


def test_devices_and_fifos_are_written_through_never_replaced(tmp_path):
    files.write_atomic("/dev/null", "x")  # still /dev/null afterwards
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    # `--save-snapshot /dev/full` as root replaced the real /dev/full with a regular file (D1).
    with pytest.raises(OperationFailed, match="No space left"):
        files.write_atomic("/dev/full", "x")
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    pid = os.fork()
    if pid == 0:
        with open(fifo, "rb") as fh:
            os._exit(0 if fh.read() == b"through" else 1)
    files.write_atomic(fifo, "through")
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0 and stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_other_devices_are_refused():
    with pytest.raises(UsageError, match="is a device"):
        files.check_writable("/dev/zero", what="snapshot")


@pytest.mark.parametrize(
    "make, words, error",
    [
        (lambda t: t / "missing" / "x.json", "does not exist", UsageError),
        (lambda t: t / "afile" / "x.json", "Not a directory|is not a folder", UsageError),
        (lambda t: t, "is a folder", UsageError),
        (lambda t: t / ("n" * 300), "too long", UsageError),
    ],
)
def test_unwritable_paths_are_bad_input_before_any_work(tmp_path, make, words, error):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(error, match=words):
        files.check_writable(make(tmp_path), what="snapshot")


def test_a_failed_write_leaves_the_old_file_whole(tmp_path):
    p = tmp_path / "f.txt"
    p.write_text("old")
    with pytest.raises(RuntimeError):
        with files.atomic_writer(p) as fh:
            fh.write(b"half")
            raise RuntimeError("interrupted")
    assert p.read_text() == "old" and [x.name for x in tmp_path.iterdir()] == ["f.txt"]


def test_read_only_folder_is_one_usage_error(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.geteuid() != 0:
            with pytest.raises(UsageError, match="not writable"):
                files.check_writable(ro / "x", what="bundle")
            with pytest.raises(UsageError, match="Permission denied"):
                files.write_atomic(ro / "x", "data")
    finally:
        ro.chmod(0o700)


# --- folders ---------------------------------------------------------------------------


def test_publish_dir_replaces_only_what_the_caller_proves_it_may(tmp_path):
    dest = tmp_path / "bundle"
    dest.mkdir()
    (dest / "manifest.json").write_text("{}")  # someone else's folder (W2)
    with files.staging_dir(dest) as staging:
        (staging / "new").write_text("n")
        with pytest.raises(UsageError, match="not ours"):
            files.publish_dir(staging, dest, may_replace=lambda d: "it is not ours")
    assert (dest / "manifest.json").exists() and not (dest / "new").exists()
    assert sorted(x.name for x in tmp_path.iterdir()) == ["bundle"]  # the staging folder is gone
    with files.staging_dir(dest) as staging:
        (staging / "new").write_text("n")
        assert files.publish_dir(staging, dest, may_replace=lambda d: None) is True
    assert sorted(x.name for x in dest.iterdir()) == ["new"]
    assert sorted(x.name for x in tmp_path.iterdir()) == ["bundle"]


def test_publish_dir_refuses_a_symlink_destination(tmp_path):
    """`-o link-to-folder` left `.NAME.old-PID` behind and replaced the link (W7)."""
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    with files.staging_dir(link) as staging:
        with pytest.raises(UsageError, match="symbolic link"):
            files.publish_dir(staging, link, may_replace=lambda d: None)
    assert link.is_symlink() and sorted(x.name for x in tmp_path.iterdir()) == ["link", "real"]


@pytest.mark.parametrize("rel", ["/etc/passwd", "../x", "a/../../x", "a/\x00b", ""])
def test_safe_join_refuses_escapes(tmp_path, rel):
    with pytest.raises(UsageError):
        files.safe_join(tmp_path, rel)


def test_safe_join_refuses_a_symlink_out(tmp_path):
    (tmp_path / "out").symlink_to("/etc")
    with pytest.raises(UsageError, match="symbolic link"):
        files.safe_join(tmp_path, "out/passwd")
    assert files.safe_join(tmp_path, "a/b.txt") == tmp_path / "a" / "b.txt"


def test_cache_and_state_dirs_follow_one_rule(tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_CACHE_DIR", str(tmp_path / "c"))
    assert files.cache_dir("wheels") == tmp_path / "c" / "wheels"
    monkeypatch.delenv("MLOPS_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert files.cache_dir() == tmp_path / "x" / "mlops"
    assert stat.S_IMODE((tmp_path / "x" / "mlops").stat().st_mode) == 0o700
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "s"))
    assert files.state_dir("patch") == tmp_path / "s" / "patch"
    with pytest.raises(ValueError):
        files.cache_dir("../escape")


def test_append_writer_appends_and_refuses_a_symlink(tmp_path):
    part = tmp_path / "x.part"
    with files.append_writer(part) as fh:
        fh.write(b"ab")
    with files.append_writer(part) as fh:
        fh.write(b"cd")
    assert part.read_bytes() == b"abcd"
    victim = tmp_path / "victim"
    victim.write_text("keep")
    (tmp_path / "link.part").symlink_to(victim)
    with pytest.raises(UsageError):
        with files.append_writer(tmp_path / "link.part") as fh:
            fh.write(b"x")
    assert victim.read_text() == "keep"


def test_move_file_replaces_a_file_but_never_a_folder_or_link(tmp_path):
    src, dest = tmp_path / "a", tmp_path / "b"
    src.write_text("new")
    dest.write_text("old")
    files.move_file(src, dest)
    assert dest.read_text() == "new" and not src.exists()
    with pytest.raises(FileNotFoundError):
        files.move_file(src, dest)
    src.write_text("x")
    (tmp_path / "d").mkdir()
    with pytest.raises(UsageError):
        files.move_file(src, tmp_path / "d")
    (tmp_path / "l").symlink_to(dest)
    with pytest.raises(UsageError):
        files.move_file(src, tmp_path / "l")
    assert dest.read_text() == "new"
