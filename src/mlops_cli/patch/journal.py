"""Crash-safe local writes: content-addressed copies and a journal, both in the state folder.

Before a local `apply` or `revert` replaces the first file, every file's old and new content is
stored under ``$MLOPS_STATE_DIR/patch-backups/<site key>/<sha256>`` and a journal naming each
file with the sha256 it had and the sha256 it is to get is written to
``$MLOPS_STATE_DIR/patch/journals/<site key>.json``. Ctrl-C and SIGTERM are held while the files
are replaced (``interrupts.deferred``), and the journal is removed when the last one is in
place. A journal found later therefore means the command was killed outright (SIGKILL, OOM,
power loss) halfway: the next `apply` or `revert` of that patch brings every file to one side
from the stored copies, checking each by sha256; a file that matches neither side is never
touched.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from mlops_cli import files
from mlops_cli.errors import MlopsError, OperationFailed
from mlops_cli.text import shell_join, shorten_list

FORMAT = 1


def site_key(site: str) -> str:
    return hashlib.sha256(site.encode()).hexdigest()[:16]


def store_dir(site: str) -> Path:
    """Content-addressed copies of the files mlops changed in this site-packages (the backups)."""
    return files.state_dir("patch-backups", site_key(site))


def journal_path(site: str) -> Path:
    return files.state_dir("patch", "journals") / f"{site_key(site)}.json"


def put_blob(store: Path, data: bytes) -> str:
    sha = hashlib.sha256(data).hexdigest()
    path = store / sha
    if get_blob(store, sha) is None:
        files.write_atomic(path, data, what="backup")
    return sha


def get_blob(store: Path, sha: str) -> bytes | None:
    """The stored bytes with this sha256, or None (absent, unreadable or damaged)."""
    path = store / sha
    try:
        data = files.read_input_bytes(path, what="backup", max_bytes=1024 * files.MiB)
    except MlopsError:
        return None
    return data if hashlib.sha256(data).hexdigest() == sha else None


@dataclass
class Journal:
    site: str
    command: str  # apply | revert: what was interrupted
    patch_sha: str
    patch_path: str
    patch_copy: str  # a stored copy of the patch, so it can be finished even if the file is gone
    python: str
    entries: list[dict] = field(default_factory=list)  # {path, before, after, mode}: sha256 or None (absent)
    started: float = 0.0

    def to_json(self) -> dict:
        return {
            "format": FORMAT,
            "site": self.site,
            "command": self.command,
            "patch_sha": self.patch_sha,
            "patch_path": self.patch_path,
            "patch_copy": self.patch_copy,
            "python": self.python,
            "started": self.started,
            "files": self.entries,
        }

    def hint(self) -> str:
        """How a person finishes or undoes it."""
        finish = shell_join(["mlops", "patch", self.command, self.patch_copy, "--python", self.python, "--yes"])
        other = "revert" if self.command == "apply" else "apply"
        undo = shell_join(["mlops", "patch", other, self.patch_copy, "--python", self.python, "--yes"])
        return f"finish it with: {finish}  (or undo it with: {undo})"

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started)) if self.started else "?"
        return (
            f"an interrupted `mlops patch {self.command}` ({os.path.basename(self.patch_path)}, started {when}) "
            f"left {len(self.entries)} file(s) in {self.site} to be finished: "
            + shorten_list([e["path"] for e in self.entries], 3)
        )


def load(site: str) -> Journal | None:
    path = journal_path(site)
    if not path.exists():
        return None
    doc = files.read_input_json(path, what="patch journal", max_bytes=16 * files.MiB)
    try:
        journal = Journal(
            doc["site"],
            doc["command"],
            doc["patch_sha"],
            doc["patch_path"],
            doc["patch_copy"],
            doc["python"],
            list(doc["files"]),
            float(doc.get("started") or 0),
        )
        for e in journal.entries:
            str(e["path"]), e["before"], e["after"]  # noqa: B018 - the shape is checked here
    except (KeyError, TypeError, ValueError):
        raise OperationFailed(
            f"the patch journal {files.show_path(path)} is damaged",
            hint="check the files it names by hand, then remove it",
        ) from None
    if journal.site != site or journal.command not in ("apply", "revert"):
        raise OperationFailed(
            f"the patch journal {files.show_path(path)} is damaged",
            hint="check the files it names by hand, then remove it",
        )
    return journal


def save(journal: Journal) -> None:
    files.write_json(journal_path(journal.site), journal.to_json(), what="patch journal")


def clear(site: str) -> None:
    try:
        journal_path(site).unlink()
    except FileNotFoundError:
        pass


def keep_patch(site: str, data: bytes) -> str:
    """A copy of the patch in the store (named by its sha256, with .patch), for the journal's hint."""
    store = store_dir(site)
    sha = hashlib.sha256(data).hexdigest()
    path = store / f"{sha}.patch"
    if not path.exists():
        files.write_atomic(path, data, what="patch copy")
    return str(path)


def stray_temporaries(path: Path) -> list[Path]:
    """Temporary files ``files.write_atomic`` leaves beside ``path`` when killed outright."""
    try:
        return sorted(path.parent.glob(f".{path.name[:200]}.*.tmp"))
    except OSError:
        return []
