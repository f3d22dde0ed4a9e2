"""The machine seam: run a program, read a file, list a folder.

Everything that looks at the machine (driver probes, /proc, /sys, logs) goes
through a ``Host``. ``LiveHost`` does it for real; ``SnapshotHost`` replays a
recording (``specs/driver-check.md``, "Snapshot format"); ``RecordingHost`` wraps
another host and writes down everything it saw, so that replaying the recording
gives the same answers.

Snapshot replay rules:
- a command key that is absent means the program is not installed (rc 127);
- a file absent from ``files`` does not exist; ``null`` content means it exists
  but cannot be read; ``""`` is fine where only existence matters;
- a folder exists if ``dirs`` names it or any recorded path lies under it; its
  listing is ``dirs[path]`` when given, else the names implied by paths under it.
"""

from __future__ import annotations

import os
import posixpath
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from mlops_cli import files, proc
from mlops_cli.errors import UsageError
from mlops_cli.proc import NOT_INSTALLED, TIMED_OUT  # noqa: F401 - re-exported
from mlops_cli.proc import ProcResult as CommandResult
from mlops_cli.text import one_line, redact_document

SNAPSHOT_FORMAT = 1
# A snapshot holds kernel logs and listings: a few MiB. Anything far larger is not one.
MAX_SNAPSHOT_BYTES = 64 * files.MiB
# A live file read whole (not by its tail) is a /proc or /sys entry or a small config file.
MAX_LIVE_READ = 16 * files.MiB


class Host(Protocol):
    """One small interface to a machine."""

    def run(self, argv: Sequence[str], timeout: float, key: str | None = None) -> CommandResult:
        """Run a program (argument list, never a shell string) with a timeout.

        ``key`` names the probe in a snapshot; it defaults to the joined argv.
        A missing program gives rc 127, a timeout rc 124.
        """
        ...

    def read(self, path: str, tail_lines: int | None = None) -> str:
        """A file's text. Raises FileNotFoundError if absent, PermissionError if unreadable.

        ``tail_lines`` keeps only the last lines of a large log.
        """
        ...

    def listdir(self, path: str) -> list[str]:
        """Sorted entry names. Raises FileNotFoundError / NotADirectoryError / PermissionError."""
        ...

    def exists(self, path: str) -> bool: ...


def command_key(argv: Sequence[str]) -> str:
    return " ".join(argv)


def _tail(text: str, lines: int | None) -> str:
    if lines is None:
        return text
    parts = text.splitlines(keepends=True)
    return "".join(parts[-lines:]) if len(parts) > lines else text


# --- live -------------------------------------------------------------------------


class LiveHost:
    """This machine, for real."""

    def __init__(self, env: Mapping[str, str] | None = None):
        # Stable, parseable output from every program we run.
        self._env = proc.base_env(env)

    def run(self, argv: Sequence[str], timeout: float, key: str | None = None) -> CommandResult:
        return proc.run(argv, timeout=timeout, env=self._env)

    def read(self, path: str, tail_lines: int | None = None) -> str:
        p = Path(path)
        if tail_lines is None:
            with p.open("rb") as fh:
                return fh.read(MAX_LIVE_READ).decode("utf-8", errors="replace")
        return _read_tail(p, tail_lines)

    def listdir(self, path: str) -> list[str]:
        return sorted(os.listdir(path))

    def exists(self, path: str) -> bool:
        return os.path.lexists(path)


def _read_tail(path: Path, lines: int, block: int = 64 * 1024) -> str:
    """The last ``lines`` lines without reading a multi-GB log whole."""
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        data = b""
        pos = size
        while pos > 0 and data.count(b"\n") <= lines:
            step = min(block, pos)
            pos -= step
            fh.seek(pos)
            data = fh.read(step) + data
    return _tail(data.decode("utf-8", errors="replace"), lines)


# --- snapshot replay ----------------------------------------------------------------


class SnapshotError(UsageError):
    """A snapshot file that cannot be used (exit 2)."""


@dataclass
class Snapshot:
    """The recorded state of a machine (format 1)."""

    commands: dict[str, CommandResult] = field(default_factory=dict)
    files: dict[str, str | None] = field(default_factory=dict)
    dirs: dict[str, list[str]] = field(default_factory=dict)
    captured_at: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, doc: Any) -> Snapshot:
        if not isinstance(doc, dict):
            raise SnapshotError("a snapshot is a JSON object")
        fmt = doc.get("format")
        if fmt != SNAPSHOT_FORMAT:
            raise SnapshotError(f"unsupported snapshot format {fmt!r} (this mlops reads format {SNAPSHOT_FORMAT})")
        commands: dict[str, CommandResult] = {}
        if not isinstance(doc.get("commands") or {}, dict):
            raise SnapshotError("'commands' maps a probe key to {rc, stdout, stderr}")
        for key, value in (doc.get("commands") or {}).items():
            rc = value.get("rc", 0) if isinstance(value, dict) else None
            if (
                not isinstance(value, dict)
                or not isinstance(rc, int)
                or isinstance(rc, bool)
                or not -255 <= rc <= 255
                or not all(isinstance(value.get(k), (str, type(None))) for k in ("stdout", "stderr"))
            ):
                raise SnapshotError(
                    f"command {one_line(key)[:80]!r}: expected {{rc: -255..255, stdout: text, stderr: text}}"
                )
            commands[key] = CommandResult(rc, value.get("stdout") or "", value.get("stderr") or "")
        files = doc.get("files") or {}
        dirs = doc.get("dirs") or {}
        if not isinstance(files, dict) or not all(v is None or isinstance(v, str) for v in files.values()):
            raise SnapshotError("'files' maps a path to its text (or null when unreadable)")
        if not isinstance(dirs, dict) or not all(
            isinstance(v, list) and all(isinstance(n, str) for n in v) for v in dirs.values()
        ):
            raise SnapshotError("'dirs' maps a folder to the list of its entry names")
        meta = {k: v for k, v in doc.items() if k not in ("format", "captured_at", "commands", "files", "dirs")}
        return cls(
            commands=commands,
            files={_norm(k): v for k, v in files.items()},
            dirs={_norm(k): [str(n) for n in v] for k, v in dirs.items()},
            captured_at=str(doc.get("captured_at") or ""),
            meta=meta,
        )

    @classmethod
    def load(cls, path: str | Path) -> Snapshot:
        return cls.from_json(load_snapshot_document(path))

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "format": SNAPSHOT_FORMAT,
            "captured_at": self.captured_at or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        doc.update(self.meta)
        doc["commands"] = {k: v.to_json() for k, v in sorted(self.commands.items())}
        doc["files"] = dict(sorted(self.files.items()))
        doc["dirs"] = {k: sorted(v) for k, v in sorted(self.dirs.items())}
        return doc

    def save(self, path: str | Path) -> None:
        """Write atomically, every secret redacted."""
        save_snapshot_document(path, self.to_json())


def load_snapshot_document(path: str | Path, what: str = "snapshot") -> Any:
    """A snapshot file's JSON (driver or NVML), through the one input reader."""
    return files.read_input_json(path, what=what, max_bytes=MAX_SNAPSHOT_BYTES)


def save_snapshot_document(path: str | Path, doc: Any, what: str = "snapshot") -> None:
    """Write a snapshot (driver or NVML) atomically with every secret in it redacted: kernel
    command lines, logs and process command lines can all carry tokens and passwords."""
    files.write_json(path, redact_document(doc), what=what)


def _norm(path: str) -> str:
    p = posixpath.normpath(path)
    return "/" if p in ("/", "//") else p


def _under(child: str, folder: str) -> bool:
    folder = folder.rstrip("/") + "/"
    return child.startswith(folder) and child != folder


class SnapshotHost:
    """Replays a ``Snapshot``; never touches the machine it runs on."""

    def __init__(self, snapshot: Snapshot):
        self.snapshot = snapshot

    def run(self, argv: Sequence[str], timeout: float, key: str | None = None) -> CommandResult:
        key = key or command_key(argv)
        result = self.snapshot.commands.get(key)
        if result is None:
            return CommandResult(NOT_INSTALLED, "", f"{argv[0]}: command not found")
        return result

    def read(self, path: str, tail_lines: int | None = None) -> str:
        path = _norm(path)
        if path not in self.snapshot.files:
            if self._is_dir(path):
                raise IsADirectoryError(path)
            raise FileNotFoundError(path)
        text = self.snapshot.files[path]
        if text is None:
            raise PermissionError(path)
        return _tail(text, tail_lines)

    def listdir(self, path: str) -> list[str]:
        path = _norm(path)
        if path in self.snapshot.dirs:
            return sorted(self.snapshot.dirs[path])
        if path in self.snapshot.files:
            raise NotADirectoryError(path)
        names = set()
        for known in list(self.snapshot.files) + list(self.snapshot.dirs):
            if _under(known, path):
                rest = known[len(path.rstrip("/")) + 1 :]
                names.add(rest.split("/", 1)[0])
        if not names:
            raise FileNotFoundError(path)
        return sorted(names)

    def exists(self, path: str) -> bool:
        path = _norm(path)
        return path in self.snapshot.files or self._is_dir(path)

    def _is_dir(self, path: str) -> bool:
        if path in self.snapshot.dirs:
            return True
        return any(_under(k, path) for k in list(self.snapshot.files) + list(self.snapshot.dirs))


# --- recording ----------------------------------------------------------------------


class RecordingHost:
    """Wraps a host and records every answer, so that a replay answers the same."""

    def __init__(self, inner: Host):
        self.inner = inner
        self.snapshot = Snapshot(captured_at=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
        self._lock = threading.Lock()  # probes run concurrently

    def run(self, argv: Sequence[str], timeout: float, key: str | None = None) -> CommandResult:
        result = self.inner.run(argv, timeout, key)
        if not result.not_installed:
            with self._lock:
                self.snapshot.commands[key or command_key(argv)] = result
        return result

    def read(self, path: str, tail_lines: int | None = None) -> str:
        try:
            text = self.inner.read(path, tail_lines)
        except PermissionError:
            with self._lock:
                self.snapshot.files[_norm(path)] = None
            raise
        except IsADirectoryError:
            self._record_dir_exists(path)
            raise
        with self._lock:
            self.snapshot.files[_norm(path)] = text
        return text

    def listdir(self, path: str) -> list[str]:
        names = self.inner.listdir(path)
        with self._lock:
            self.snapshot.dirs[_norm(path)] = list(names)
        return names

    def exists(self, path: str) -> bool:
        found = self.inner.exists(path)
        if found:
            norm = _norm(path)
            with self._lock:
                known = norm in self.snapshot.files or norm in self.snapshot.dirs
            if not known:
                if os.path.isdir(path) and isinstance(self.inner, LiveHost):
                    self._record_dir_exists(path)
                else:
                    with self._lock:
                        self.snapshot.files.setdefault(norm, "")
        return found

    def _record_dir_exists(self, path: str) -> None:
        norm = _norm(path)
        with self._lock:
            if norm not in self.snapshot.dirs:
                try:
                    self.snapshot.dirs[norm] = list(self.inner.listdir(path))
                except OSError:
                    self.snapshot.dirs[norm] = []
