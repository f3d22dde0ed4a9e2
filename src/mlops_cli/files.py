"""Every file mlops reads from a user or writes for one goes through here.

Reading user input: ``read_input_bytes`` / ``read_input_text`` / ``read_input_json`` take a path
(or ``-`` for stdin), require something readable that is not a device or a folder, cap the size,
and turn every failure into one ``UsageError`` line (exit 2): missing, unreadable, too large, not
UTF-8, not JSON, nested too deeply, NaN/Infinity or a number out of range. ``open_input_stream``
is the same for inputs read incrementally (gigabyte logs and datasets). ``parse_json`` applies the
JSON rules to text from anywhere (an HTTP body, a file inside a bundle).

Writing: ``write_atomic`` / ``atomic_writer`` write a temporary file beside the target, fsync it
and rename it into place, so a reader never sees half a file. An existing FIFO, terminal,
``/dev/null``, ``/dev/full``, ``/dev/stdout`` or ``-`` (stdout, as ``-`` is stdin for an input)
is written through instead of being replaced; a
symbolic link, a block device or any other device is refused. New files get ``mode`` less the
umask; a replaced file keeps its mode.

Folders: ``staging_dir`` + ``publish_dir`` build a folder beside its destination and rename it
into place, replacing an existing folder only when the caller proves it may. ``safe_join`` keeps
a relative path from an untrusted source inside its root. ``cache_dir`` / ``state_dir`` are the
one definition of where mlops keeps its cache and state.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO

from mlops_cli.errors import OperationFailed, UsageError, os_reason
from mlops_cli.interrupts import deferred
from mlops_cli.text import one_line, shorten

MiB = 1024 * 1024
DEFAULT_MAX_INPUT = 64 * MiB
DEFAULT_MAX_DEPTH = 64
# Integers longer than this many digits are not a count or a size of anything real.
MAX_INT_DIGITS = 200

PathLike = str | os.PathLike


def show_path(path: PathLike) -> str:
    """A path as printed in a message: one line, at most 160 characters."""
    return shorten(one_line(os.fspath(path)), 160)


# --- reading ----------------------------------------------------------------------------


def _input_error(what: str, path: PathLike, reason: str, hint: str | None = None) -> UsageError:
    return UsageError(f"cannot read {what} {show_path(path)}: {reason}", hint=hint)


def _check_readable_kind(path: PathLike, what: str) -> None:
    """A regular file, a FIFO or a socket may be read; a folder or a device may not."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise _input_error(what, path, "no such file") from None
    except OSError as exc:
        raise _input_error(what, path, os_reason(exc)) from None
    if stat.S_ISDIR(st.st_mode):
        raise _input_error(what, path, "it is a folder, not a file")
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        raise _input_error(what, path, "it is a device, not a file")


def _stdin_buffer(what: str) -> BinaryIO:
    """stdin as bytes; one error line when it is closed (``mlops ... <&-``)."""
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is None:
        raise UsageError(f"cannot read {what} from stdin: stdin is closed")
    return buffer


def _open_regular(path: PathLike, what: str) -> BinaryIO:
    """Open a file that must be a regular file (an entry found in a folder, not a path the user
    typed). A device is never opened (opening /dev/watchdog arms it, a tape rewinds), a FIFO
    never waited on, even one swapped in after the folder was listed: the path is pinned with
    O_PATH, checked, and only then opened for reading (through /proc/self/fd)."""
    o_path = getattr(os, "O_PATH", 0)
    cloexec = getattr(os, "O_CLOEXEC", 0)
    nonblock = getattr(os, "O_NONBLOCK", 0)
    try:
        pinned = os.open(path, o_path | cloexec) if o_path else None
    except FileNotFoundError:
        raise _input_error(what, path, "no such file") from None
    except OSError as exc:
        raise _input_error(what, path, os_reason(exc)) from None
    try:
        st = os.fstat(pinned) if pinned is not None else os.stat(path)
        _require_regular(st, what, path)
        try:
            reopen = f"/proc/self/fd/{pinned}" if pinned is not None else path
            fd = os.open(reopen, os.O_RDONLY | nonblock | cloexec)
        except FileNotFoundError:
            if pinned is None:
                raise
            fd = os.open(path, os.O_RDONLY | nonblock | cloexec)  # no /proc: the path itself
    except FileNotFoundError:
        raise _input_error(what, path, "no such file") from None
    except OSError as exc:
        raise _input_error(what, path, os_reason(exc)) from None
    finally:
        if pinned is not None:
            os.close(pinned)
    try:
        _require_regular(os.fstat(fd), what, path)  # what was opened, in case it changed
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _require_regular(st: os.stat_result, what: str, path: PathLike) -> None:
    if not stat.S_ISREG(st.st_mode):
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file (a FIFO, socket or device)"
        raise _input_error(what, path, f"it is {kind}")


def _open_binary(path: PathLike, what: str, regular_only: bool = False) -> BinaryIO:
    if os.fspath(path) == "-":
        return _stdin_buffer(what)
    if regular_only:
        return _open_regular(path, what)
    _check_readable_kind(path, what)
    try:
        return open(path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
    except OSError as exc:
        raise _input_error(what, path, os_reason(exc)) from None


def read_input_bytes(
    path: PathLike, *, what: str, max_bytes: int = DEFAULT_MAX_INPUT, regular_only: bool = False
) -> bytes:
    """The bytes of a user-supplied file (``-``: stdin), at most ``max_bytes``.

    ``regular_only``: for files found by walking a folder (not named by the user): a FIFO,
    socket or device there is refused instead of read (reading one can block forever)."""
    fh = _open_binary(path, what, regular_only)
    try:
        data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise _input_error(what, path, os_reason(exc)) from None
    finally:
        if os.fspath(path) != "-":
            fh.close()
    if data is None:  # a non-blocking read with nothing to read (a /proc file that waits)
        raise _input_error(what, path, "nothing to read without waiting (not a regular file)")
    if len(data) > max_bytes:
        raise _input_error(what, path, f"larger than {format_size(max_bytes)}, more than such a file ever holds")
    return data


def decode_utf8(data: bytes, *, what: str, path: PathLike) -> str:
    """UTF-8 text (a leading BOM is dropped) or one error line naming the first bad byte."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _input_error(what, path, f"not UTF-8 text (a binary file?): bad byte at offset {exc.start}") from None
    return text[1:] if text.startswith("\ufeff") else text


def read_input_text(
    path: PathLike, *, what: str, max_bytes: int = DEFAULT_MAX_INPUT, regular_only: bool = False
) -> str:
    """The UTF-8 text of a user-supplied file (``-``: stdin)."""
    data = read_input_bytes(path, what=what, max_bytes=max_bytes, regular_only=regular_only)
    return decode_utf8(data, what=what, path=path)


def read_input_json(
    path: PathLike,
    *,
    what: str,
    max_bytes: int = DEFAULT_MAX_INPUT,
    max_depth: int = DEFAULT_MAX_DEPTH,
    regular_only: bool = False,
) -> Any:
    """A user-supplied JSON document, checked by ``parse_json``."""
    text = read_input_text(path, what=what, max_bytes=max_bytes, regular_only=regular_only)
    return parse_json(text, what=f"{what} {show_path(path)}", max_depth=max_depth)


def open_input_stream(path: PathLike, *, what: str, regular_only: bool = False) -> BinaryIO:
    """A binary stream over a large input read incrementally (no size cap): a regular file,
    a FIFO or ``-`` (stdin). The caller closes it (closing stdin's buffer is harmless here).
    ``regular_only`` as for ``read_input_bytes``."""
    return _open_binary(path, what, regular_only)


def user_path_exists(path: PathLike) -> bool:
    """Whether something is at a path a user typed, for commands whose argument is a path OR a
    name (a model id, a preset). A name no path can have (too long, a missing parent, a
    component that is a file) is simply not a path: False, never an OSError. Anything that
    exists but cannot be used (a symlink loop, no permission) is True, so reading it gives
    the reason."""
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as exc:
        return exc.errno != errno.ENAMETOOLONG
    except ValueError:  # an embedded NUL
        return False
    return True


class _BadNumber(ValueError):
    pass


def _parse_constant(name: str) -> Any:
    raise _BadNumber(f"{name} is not a number JSON allows")


def _parse_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _BadNumber(f"the number {shorten(text, 40)} is out of range")
    return value


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _BadNumber(f"a number of {len(text)} digits is out of range")
    return int(text)


_JSON_LEAVES = frozenset((str, int, float, bool, type(None)))
_JSON_EXACT = _JSON_LEAVES | {dict, list}
_IS_DICT, _IS_LIST = frozenset((dict,)).__contains__, frozenset((list,)).__contains__


def json_depth_exceeds(doc: Any, limit: int) -> bool:
    """True when containers in ``doc`` nest deeper than ``limit`` (iterative: no recursion).

    One level at a time, with the per-value work in C (map, compress, chain; an index page
    holds ~10^5 values); a level holding something other than plain JSON types (dict and list
    as json.loads makes them) is walked item by item instead."""
    from itertools import chain, compress

    level, depth = [doc], 1
    while level:
        types = list(map(type, level))
        if not _JSON_EXACT.issuperset(types):
            return _depth_exceeds_slow([n for n in level if isinstance(n, (dict, list))], depth, limit)
        if _JSON_LEAVES.issuperset(types):
            return False
        if depth > limit:
            return True
        level = list(
            chain(
                chain.from_iterable(map(dict.values, compress(level, map(_IS_DICT, types)))),
                chain.from_iterable(compress(level, map(_IS_LIST, types))),
            )
        )
        depth += 1
    return False


def _depth_exceeds_slow(nodes: list, depth: int, limit: int) -> bool:
    stack = [(node, depth) for node in nodes]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth > limit:
                return True
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def parse_json(text: str | bytes, *, what: str, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """JSON with the rules every input gets: valid syntax (the error says where), no
    NaN/Infinity, no number out of range, containers nested at most ``max_depth`` deep."""
    try:
        doc = json.loads(text, parse_constant=_parse_constant, parse_float=_parse_float, parse_int=_parse_int)
    except _BadNumber as exc:
        raise UsageError(f"{what} is not usable JSON: {exc}") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{what} is not valid JSON: {exc.msg} (line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise UsageError(f"{what} is not usable JSON: nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"{what} is not valid JSON: {one_line(exc)}") from None
    if json_depth_exceeds(doc, max_depth):
        raise UsageError(f"{what} is not usable JSON: nested deeper than {max_depth} levels")
    return doc


# --- writing ----------------------------------------------------------------------------

_umask_lock = threading.Lock()


def current_umask() -> int:
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


# Paths that name this process's own streams: written through, appended, never replaced.
_STREAM_PREFIXES = ("/dev/stdout", "/dev/stderr", "/dev/fd/", "/proc/self/fd/")
# Character devices a user may sensibly point an output at.
_SAFE_CHAR_DEVICES = ("/dev/null", "/dev/full", "/dev/tty", "/dev/console")


def _write_error(what: str, path: PathLike, exc: OSError) -> Exception:
    """A failed write: a path that cannot be written is bad input (2), a full or failing
    disk is an operation that failed (1)."""
    message = f"cannot write {what} {show_path(path)}: {os_reason(exc)}"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG):
        return OperationFailed(message)
    return UsageError(message)


def _output_kind(path: Path, what: str) -> str:
    """'new', 'file' (an existing regular file) or 'through' (a stream to write through).
    Raises UsageError for what must never be written: a folder, a symlink, a block device."""
    text = os.fspath(path)
    if text == "-" or text.startswith(_STREAM_PREFIXES):
        return "through"
    try:
        lst = os.lstat(path)
    except FileNotFoundError:
        return "new"
    except OSError as exc:
        raise _write_error(what, path, exc) from None
    if stat.S_ISLNK(lst.st_mode):
        target = os.path.realpath(path)
        raise UsageError(
            f"refusing to write {what} {show_path(path)}: it is a symbolic link (to {show_path(target)})",
            hint="give the link's target as the path, or remove the link",
        )
    if stat.S_ISDIR(lst.st_mode):
        raise UsageError(f"cannot write {what} {show_path(path)}: it is a folder; give a file name in it")
    if stat.S_ISREG(lst.st_mode):
        return "file"
    if stat.S_ISFIFO(lst.st_mode) or stat.S_ISSOCK(lst.st_mode):
        return "through"
    if stat.S_ISCHR(lst.st_mode) and (text in _SAFE_CHAR_DEVICES or text.startswith(("/dev/pts/", "/dev/tty"))):
        return "through"
    raise UsageError(f"refusing to write {what} {show_path(path)}: it is a device, not a file")


_stdout_reserved = False


def reserve_stdout() -> None:
    """Called by ``cli.main`` under --json: stdout holds the JSON document and nothing else, so
    another output (a snapshot, a metrics file) aimed at it is refused by ``check_writable``."""
    global _stdout_reserved
    _stdout_reserved = True


def _is_stdout(path: PathLike) -> bool:
    """Whether writing ``path`` would land in this process's stdout: /dev/stdout and its
    aliases, or the very file or pipe stdout is redirected to (not a shared device such as
    /dev/null)."""
    text = os.fspath(path)
    if text in ("-", "/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"):
        return True
    try:
        out, st = os.fstat(1), os.stat(path)
    except (OSError, ValueError):
        return False
    shared_device = stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
    return not shared_device and (out.st_dev, out.st_ino) == (st.st_dev, st.st_ino)


def check_writable(path: PathLike, *, what: str = "file") -> None:
    """Refuse, before any work is done, an output path that ``write_atomic`` could not write."""
    text = os.fspath(path)
    if not text.strip():
        raise UsageError(f"cannot write {what}: the file name is empty")
    if _stdout_reserved and _is_stdout(text):
        raise UsageError(
            f"cannot write {what} to {show_path(text)}: that is stdout, which --json keeps for the JSON document",
            hint=f"give the {what} a file of its own, or drop --json",
        )
    p = Path(text)
    if text.endswith(os.sep):
        raise UsageError(f"cannot write {what} {show_path(text)}: it names a folder; give a file name in it")
    kind = _output_kind(p, what)
    if kind == "through":
        return
    folder = p.parent if str(p.parent) else Path(".")
    try:
        st = os.stat(folder)
    except FileNotFoundError:
        raise UsageError(f"cannot write {what} {show_path(text)}: folder {show_path(folder)} does not exist") from None
    except OSError as exc:
        raise _write_error(what, text, exc) from None
    if not stat.S_ISDIR(st.st_mode):
        raise UsageError(f"cannot write {what} {show_path(text)}: {show_path(folder)} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write {what} {show_path(text)}: folder {show_path(folder)} is not writable")
    if len(os.fsencode(p.name)) > 255:
        raise UsageError(f"cannot write {what} {show_path(text)}: the file name is too long")


# How long a write to an existing FIFO waits for a reader to open the other end.
FIFO_READER_WAIT = 10.0


def _open_through(p: Path, what: str) -> int:
    """An fd for writing through to an existing stream. A FIFO nobody reads would block the open
    forever: wait a bounded time for a reader, then say so (exit 2)."""
    text = os.fspath(p)
    if text == "-":  # stdout, as '-' is stdin for an input: after what was printed so far
        with contextlib.suppress(OSError, ValueError, AttributeError):
            sys.stdout.flush()
        try:
            return os.dup(1)
        except OSError as exc:
            raise _write_error(what, "stdout", exc) from None
    append = os.O_APPEND if text.startswith(_STREAM_PREFIXES) else 0
    try:
        is_fifo = stat.S_ISFIFO(os.stat(p).st_mode)
    except OSError as exc:
        raise _write_error(what, p, exc) from None
    if not is_fifo:
        try:
            return os.open(p, os.O_WRONLY | append)
        except OSError as exc:
            raise _write_error(what, p, exc) from None
    deadline = time.monotonic() + FIFO_READER_WAIT
    while True:
        try:
            fd = os.open(p, os.O_WRONLY | os.O_NONBLOCK | append)
        except OSError as exc:
            if exc.errno != errno.ENXIO:  # ENXIO: no reader yet
                raise _write_error(what, p, exc) from None
            if time.monotonic() >= deadline:
                raise UsageError(
                    f"cannot write {what} {show_path(p)}: it is a FIFO and nothing reads from it "
                    f"(waited {FIFO_READER_WAIT:g} s)",
                    hint="start the reader first, or give a regular file",
                ) from None
            time.sleep(0.05)
            continue
        os.set_blocking(fd, True)
        return fd


@contextlib.contextmanager
def atomic_writer(path: PathLike, *, mode: int | None = None, what: str = "file") -> Iterator[IO[bytes]]:
    """Yield a binary file; on success it replaces ``path`` whole, on failure nothing changes."""
    p = Path(path)
    kind = _output_kind(p, what)
    if kind == "through":
        fd = _open_through(p, what)
        try:
            with os.fdopen(fd, "wb") as fh:
                yield fh
        except OSError as exc:
            raise _write_error(what, p, exc) from None
        return
    if kind == "file":
        final_mode = stat.S_IMODE(os.stat(p).st_mode)
    else:
        final_mode = (0o666 if mode is None else mode) & ~current_umask()
    folder = p.parent if str(p.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name[:200]}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise _write_error(what, p, exc) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, final_mode)
        os.replace(tmp, p)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _write_error(what, p, exc) from None
        raise


def encode_text(text: str) -> bytes:
    """UTF-8, except that a lone surrogate (valid in JSON as ``"\\ud800"``, so it can arrive in
    any input) is written as the escape ``\\ud800`` instead of failing the write."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", errors="backslashreplace")


def write_atomic(path: PathLike, data: bytes | str, *, mode: int | None = None, what: str = "file") -> None:
    """Write ``data`` (text is UTF-8) so that ``path`` is either untouched or complete."""
    payload = encode_text(data) if isinstance(data, str) else data
    with atomic_writer(path, mode=mode, what=what) as fh:
        fh.write(payload)


def write_json(path: PathLike, doc: Any, *, what: str = "file", indent: int | None = 2) -> None:
    """A JSON document written atomically, with a final newline. Text that UTF-8 cannot hold
    (a lone surrogate read from another JSON document) is kept as its JSON escape, so the
    file reads back to the same document."""
    text = json.dumps(doc, indent=indent, ensure_ascii=False) + "\n"
    try:
        payload = text.encode("utf-8")
    except UnicodeEncodeError:
        payload = (json.dumps(doc, indent=indent, ensure_ascii=True) + "\n").encode("ascii")
    write_atomic(path, payload, what=what)


def write_new(path: PathLike, data: bytes | str, *, mode: int | None = None, what: str = "file") -> None:
    """Create a file that must not exist yet, inside a folder mlops made (a staging folder):
    never follows a symlink planted at that name, never truncates an existing file."""
    payload = encode_text(data) if isinstance(data, str) else data
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o666 if mode is None else mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
    except OSError as exc:
        raise _write_error(what, path, exc) from None


def copy_new(src: PathLike, dest: PathLike, *, what: str = "file") -> None:
    """Copy ``src`` to a new file ``dest`` (as ``write_new``), streaming."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        with open(src, "rb") as fin:
            fd = os.open(dest, flags, 0o666)
            with os.fdopen(fd, "wb") as fout:
                _copy_data(fin, fout)
    except OSError as exc:
        raise _write_error(what, dest, exc) from None


def _copy_data(fin, fout) -> None:
    """The bytes of ``fin`` from its position onto ``fout``: in the kernel where Linux offers it
    (sendfile: nothing passes through this process; a third of the CPU for a 50 MB wheel), else
    a loop."""
    offset = fin.tell()
    if sys.platform.startswith("linux"):
        try:
            while True:
                sent = os.sendfile(fout.fileno(), fin.fileno(), offset, 1 << 30)
                if sent == 0:
                    return
                offset += sent
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV):
                raise  # a failing write (ENOSPC, EIO) fails the same either way
            fin.seek(offset)  # sendfile is not offered for these files: the loop copies the rest
    shutil.copyfileobj(fin, fout, 1024 * 1024)


@contextlib.contextmanager
def append_writer(path: PathLike, *, what: str = "file") -> Iterator[IO[bytes]]:
    """Append to a regular file, creating it if missing, inside a folder mlops owns (a resumable
    partial download in the cache). Never follows a symlink; a folder or device there is refused."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        raise _write_error(what, path, exc) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise UsageError(f"refusing to write {what} {show_path(path)}: it is not a regular file")
        with os.fdopen(fd, "ab") as fh:
            yield fh
    except OSError as exc:
        raise _write_error(what, path, exc) from None


def _lstat_or_none(path: PathLike, what: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _write_error(what, path, exc) from None


def move_file(src: PathLike, dest: PathLike, *, what: str = "file") -> None:
    """Rename a file mlops made (a finished download) to ``dest`` in the same file system,
    atomically; an existing regular file there is replaced, a folder or symlink is refused.
    A missing ``src`` raises FileNotFoundError (another process took it first)."""
    lst = _lstat_or_none(dest, what)
    if lst is not None and not stat.S_ISREG(lst.st_mode):
        raise UsageError(f"refusing to replace {what} {show_path(dest)}: it is not a regular file")
    try:
        os.replace(src, dest)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise _write_error(what, dest, exc) from None


# --- folders ----------------------------------------------------------------------------


@contextlib.contextmanager
def staging_dir(dest: PathLike, *, what: str = "folder") -> Iterator[Path]:
    """A fresh temporary folder beside ``dest`` (same file system, so it can be renamed into
    place); removed if the block fails or is interrupted. The caller publishes it with
    ``publish_dir`` inside the block."""
    d = Path(dest)
    parent = d.parent if str(d.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{d.name[:200]}.", suffix=".tmp", dir=parent))
    except OSError as exc:
        raise _write_error(what, d, exc) from None
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    else:
        if tmp.exists():  # not published: nothing of it stays
            shutil.rmtree(tmp, ignore_errors=True)


def publish_dir(
    staging: Path, dest: PathLike, *, may_replace: Callable[[Path], str | None] | None = None, what: str = "folder"
) -> bool:
    """Rename ``staging`` to ``dest``. An existing ``dest`` is replaced only when
    ``may_replace(dest)`` returns None; otherwise its reason is the error (exit 2). A symlink or
    a file at ``dest`` is refused. Returns True when an older folder was replaced."""
    d = Path(dest)
    lst = _lstat_or_none(d, what)
    if lst is None:
        try:
            os.rename(staging, d)
        except OSError as exc:
            raise _write_error(what, d, exc) from None
        return False
    if stat.S_ISLNK(lst.st_mode):
        raise UsageError(
            f"refusing to replace {what} {show_path(d)}: it is a symbolic link (to {show_path(os.path.realpath(d))})",
            hint="give the link's target as the path, or another path",
        )
    if not stat.S_ISDIR(lst.st_mode):
        raise UsageError(f"refusing to replace {show_path(d)} with a {what}: it exists and is not a folder")
    reason = may_replace(d) if may_replace is not None else f"{show_path(d)} already exists"
    if reason:
        raise UsageError(
            f"refusing to replace {show_path(d)}: {reason}", hint="choose another path, or remove it first"
        )
    # Ctrl-C or SIGTERM between the two renames would leave neither the old folder nor the new
    # one at dest: both renames (and the clean-up of the old one) run with signals held.
    with deferred():
        try:
            old = Path(tempfile.mkdtemp(prefix=f".{d.name[:200]}.old.", dir=d.parent if str(d.parent) else Path(".")))
        except OSError as exc:
            raise _write_error(what, d, exc) from None
        try:
            os.rename(d, old / "x")
        except OSError as exc:
            shutil.rmtree(old, ignore_errors=True)
            raise _write_error(what, d, exc) from None
        try:
            os.rename(staging, d)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.rename(old / "x", d)
            shutil.rmtree(old, ignore_errors=True)
            raise _write_error(what, d, exc) from None
        shutil.rmtree(old, ignore_errors=True)
    return True


def safe_join(root: PathLike, rel: str, *, what: str = "path") -> Path:
    """``root/rel`` for a relative path from an untrusted source (a manifest, a patch, an
    index): no absolute path, no ``..``, no NUL, and no symlink that leads out of ``root``."""
    if not rel or "\x00" in rel or rel.startswith(("/", "\\")) or os.path.isabs(rel):
        raise UsageError(f"{what} {show_path(rel)!r} is not a relative path inside its folder")
    parts = rel.replace("\\", "/").split("/")
    if any(part == ".." for part in parts):
        raise UsageError(f"{what} {show_path(rel)!r} leads out of its folder ('..')")
    base = os.path.realpath(root)
    joined = os.path.join(root, *[p for p in parts if p not in ("", ".")])
    real = os.path.realpath(joined)
    if real != base and not real.startswith(base.rstrip(os.sep) + os.sep):
        raise UsageError(f"{what} {show_path(rel)!r} leads out of its folder (through a symbolic link)")
    return Path(joined)


def _home_based(env_var: str, xdg_var: str, xdg_default: str, parts: tuple[str, ...]) -> Path:
    for part in parts:
        if not part or "/" in part or part in (".", ".."):
            raise ValueError(f"not a folder name: {part!r}")
    if os.environ.get(env_var):
        base = Path(os.environ[env_var])
    else:
        xdg = os.environ.get(xdg_var)
        root = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / xdg_default
        base = root / "mlops"
    folder = base.joinpath(*parts)
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise UsageError(
            f"cannot use the folder {show_path(folder)}: {os_reason(exc)}", hint=f"set {env_var} to a writable folder"
        ) from None
    return folder


def cache_dir(*parts: str) -> Path:
    """Where mlops caches downloads: ``$MLOPS_CACHE_DIR``, else ``$XDG_CACHE_HOME/mlops``, else
    ``~/.cache/mlops``; with ``parts`` below it. Created (mode 0700) if missing."""
    return _home_based("MLOPS_CACHE_DIR", "XDG_CACHE_HOME", ".cache", parts)


def state_dir(*parts: str) -> Path:
    """Where mlops keeps state between runs (journals, backups): ``$MLOPS_STATE_DIR``, else
    ``$XDG_STATE_HOME/mlops``, else ``~/.local/state/mlops``."""
    return _home_based("MLOPS_STATE_DIR", "XDG_STATE_HOME", ".local/state", parts)


def format_size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.0f} {unit}"
        n /= 1024  # type: ignore[assignment]
    raise AssertionError("unreachable")
