"""What `-o OUT` may replace: only an earlier bundle, proven to be one.

A folder is replaced only when its manifest.json carries the bundle marker
(`"format": "mlops-wheels-bundle/1"`) and every file in the folder is listed in it (or the
folder is empty); a `.tar.gz` only when it is a bundle archive, read as a stream: one top
folder, regular files and folders only, and that folder's manifest.json with the marker.
Anything else at that path is someone's data: exit 2, untouched. A symlink is never followed
or replaced.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from mlops_cli import files
from mlops_cli.errors import UsageError
from mlops_cli.files import show_path
from mlops_cli.text import shorten_list
from mlops_cli.wheels.layout import MANIFEST_FORMAT

MAX_SCAN = 200_000  # files in a folder, members in an archive


def _marker(data: bytes, where: str) -> str | None:
    from mlops_cli.wheels import bundle_tool  # only for an output that exists already

    try:
        doc = bundle_tool.parse_manifest(data, where)
    except ValueError as exc:
        return str(exc)
    if doc.get("format") != MANIFEST_FORMAT:
        return f'{where} is not the manifest of a bundle made by mlops wheels (no "format": "{MANIFEST_FORMAT}")'
    return None


def folder_reason(path: Path) -> str | None:
    """None when `path` is an empty folder or provably an mlops bundle; else why not."""
    from mlops_cli.wheels import bundle_tool

    entries = []
    for count, (dirpath, dirnames, filenames) in enumerate(os.walk(path)):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, path).replace(os.sep, "/")
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode) or not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
                return f"it holds {rel}, which is not a regular file or folder"
            if stat.S_ISREG(st.st_mode):
                entries.append(rel)
        if count > MAX_SCAN or len(entries) > MAX_SCAN:
            return "it holds more files than any bundle"
    if not entries:
        return None
    manifest = path / bundle_tool.MANIFEST
    if not manifest.is_file():
        return "it is not a bundle (no manifest.json)"
    try:
        data = files.read_input_bytes(manifest, what="manifest", max_bytes=bundle_tool.MAX_MANIFEST_BYTES)
    except UsageError as exc:
        return exc.message
    why = _marker(data, "its manifest.json")
    if why:
        return why
    doc = bundle_tool.parse_manifest(data, "manifest.json")
    listed = (
        {e.get("path") for e in doc.get("files", []) if isinstance(e, dict)}
        if isinstance(doc.get("files"), list)
        else set()
    )
    unlisted = sorted(rel for rel in entries if rel not in listed and rel != bundle_tool.MANIFEST)
    if unlisted:
        return f"it is not only a bundle: {shorten_list(unlisted, 4)} not listed in its manifest.json"
    return None


def archive_reason(path: Path) -> str | None:
    """None when the file at `path` is a bundle archive made by mlops wheels; else why not."""
    import tarfile

    from mlops_cli.wheels import bundle_tool

    try:
        with tarfile.open(path, "r|gz") as tar:
            root = None
            for n, member in enumerate(tar):
                if n > MAX_SCAN:
                    return "it has more members than any bundle archive"
                parts = member.name.split("/")
                if not (member.isfile() or member.isdir()) or member.name.startswith("/") or ".." in parts:
                    return f"it is not a bundle archive (member {member.name[:80]!r})"
                root = root or parts[0]
                if parts[0] != root:
                    return "it is not a bundle archive (more than one top folder)"
                if parts[1:] == [bundle_tool.MANIFEST] and member.isfile():
                    if member.size > bundle_tool.MAX_MANIFEST_BYTES:
                        return "its manifest.json is too large"
                    fh = tar.extractfile(member)
                    return _marker(fh.read(), "its manifest.json") if fh else "its manifest.json is unreadable"
    except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
        return f"it is not a bundle archive ({type(exc).__name__})"
    return "it is not a bundle archive (no manifest.json)"


def _refuse(path: Path, why: str) -> UsageError:
    return UsageError(f"refusing to replace {show_path(path)}: {why}", hint="choose another -o, or remove it first")


def check_output(final: Path, archive: str) -> None:
    """Before any work: the output path is new, an earlier bundle, or refused (exit 2)."""
    try:
        st = os.lstat(final)
    except FileNotFoundError:
        if len(final.name.encode()) > 255:
            raise UsageError(f"cannot write the bundle {show_path(final)}: the file name is too long") from None
        return
    except OSError as exc:
        raise UsageError(f"cannot write the bundle {show_path(final)}: {exc.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        raise UsageError(
            f"refusing to replace {show_path(final)}: it is a symbolic link (to {show_path(os.path.realpath(final))})",
            hint="give the link's target as -o, or another path",
        )
    if archive == "dir":
        if not stat.S_ISDIR(st.st_mode):
            raise _refuse(final, "it is not a folder")
        why = folder_reason(final)
    else:
        if not stat.S_ISREG(st.st_mode):
            raise _refuse(final, "it is not a file (a bundle archive is one .tar.gz file)")
        why = archive_reason(final)
    if why:
        raise _refuse(final, why)
