"""Temporary bridge to the shared floor (issue 8) until it lands on main; then this file goes.

Every file the data commands read or write, and every error they raise, passes through here.
"""

from __future__ import annotations

try:  # the floor
    from mlops_cli.errors import MlopsError, NotApplicable, OperationFailed, UsageError  # noqa: F401
except ImportError:  # pragma: no cover - before the floor lands
    from mlops_cli.output import MlopsError, NotApplicable, OperationFailed, UsageError  # noqa: F401

try:
    from mlops_cli.files import atomic_writer, open_input_stream, read_input_json, write_atomic  # noqa: F401
except ImportError:  # pragma: no cover - before the floor lands
    import contextlib
    import json
    import os
    import stat
    import sys
    import tempfile

    def open_input_stream(path, *, what):
        if str(path) == "-":
            return sys.stdin.buffer
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise UsageError(f"{what} not found: {path}") from None
        except OSError as exc:
            raise UsageError(f"cannot read {what} {path}: {exc.strerror}") from None
        if stat.S_ISDIR(st.st_mode):
            raise UsageError(f"{what} is a folder, not a file: {path}")
        try:
            return open(path, "rb")  # noqa: SIM115
        except OSError as exc:
            raise UsageError(f"cannot read {what} {path}: {exc.strerror}") from None

    def read_input_json(path, *, what, max_bytes, max_depth=64):
        with open_input_stream(path, what=what) as fh:
            data = fh.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise UsageError(f"{what} is too large: {path}")
        try:
            return json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise UsageError(f"{what} is not JSON: {path}: {exc}") from None

    @contextlib.contextmanager
    def atomic_writer(path, mode=None):
        folder = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def write_atomic(path, data, *, mode=None):
        with atomic_writer(path, mode) as fh:
            fh.write(data.encode() if isinstance(data, str) else data)

try:
    from mlops_cli.text import clean  # noqa: F401
except ImportError:  # pragma: no cover - before the floor lands
    import re as _re

    _CTRL = _re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|[\x00-\x08\x0b-\x1f\x7f-\x9f]")

    def clean(s: str) -> str:
        return _CTRL.sub("", s)
