"""`mlops wheels --verify PATH`: re-hash a bundle folder or .tar.gz against its manifest.

A folder is checked by `bundle_tool.verify`, the very code `install.sh --verify` runs on the
far side, after every path in the manifest passed `files.safe_join` (no absolute path, no
`..`, no symlink out of the bundle). An archive is never unpacked: its members are hashed
while they stream by, with a cap on the total size, so a small archive that expands to
gigabytes costs time, not memory, and stops at the cap.

Every file but manifest.json itself must be listed in the manifest (install.sh, _bundle.py
and README.txt included: a tampered install.sh fails), and a manifest that lists nothing is
refused.
"""

from __future__ import annotations

import hashlib
import stat
import tarfile
from pathlib import Path

from mlops_cli import files
from mlops_cli.errors import UsageError
from mlops_cli.files import show_path
from mlops_cli.wheels import bundle_tool
from mlops_cli.wheels.result import VerifyResult

# The largest unpacked bundle --verify reads from an archive (a CUDA stack is ~10 GiB).
MAX_ARCHIVE_BYTES = 64 * 1024**3
MAX_MEMBERS = 200_000


def _entries(manifest: dict, label: str) -> list[tuple[str, str]]:
    try:
        return bundle_tool.manifest_entries(manifest)
    except ValueError as exc:
        raise UsageError(f"{label}: manifest.json is damaged: {exc}") from None


def _verify_folder(folder: Path, label: str) -> VerifyResult:
    manifest_path = folder / bundle_tool.MANIFEST
    if not manifest_path.is_file():
        raise UsageError(f"{label}: no manifest.json; not a bundle made by mlops wheels")
    data = files.read_input_bytes(manifest_path, what="manifest", max_bytes=bundle_tool.MAX_MANIFEST_BYTES)
    try:
        manifest = bundle_tool.parse_manifest(data, "manifest.json")
    except ValueError as exc:
        raise UsageError(f"{label}: manifest.json is damaged: {exc}") from None
    entries = _entries(manifest, label)
    for rel, _sha in entries:
        files.safe_join(folder, rel, what=f"{label}: manifest path")
    return VerifyResult(label, len(entries), bundle_tool.compare(entries, bundle_tool.scan_folder(str(folder))))


def verify_archive(path: Path, label: str, max_bytes: int = MAX_ARCHIVE_BYTES) -> VerifyResult:
    """Hash every member of a bundle .tar.gz as it streams by; nothing is written to disk."""
    found: dict[str, str] = {}
    manifest_data: bytes | None = None
    root = None
    total = 0
    try:
        with tarfile.open(path, "r|gz") as tar:
            for n, member in enumerate(tar):
                if n >= MAX_MEMBERS:
                    raise UsageError(f"{label}: more than {MAX_MEMBERS} members; not a bundle made by mlops wheels")
                parts = member.name.split("/")
                why = bundle_tool.check_rel(member.name)
                if why or not (member.isfile() or member.isdir()):
                    raise UsageError(
                        f"{label}: unsafe or unexpected member {member.name[:120]!r}; not a bundle made by mlops wheels"
                    )
                root = root or parts[0]
                if parts[0] != root:
                    raise UsageError(f"{label}: more than one top folder; not a bundle made by mlops wheels")
                if member.isdir() or len(parts) == 1:
                    continue
                rel = "/".join(parts[1:])
                total += member.size
                if total > max_bytes:
                    raise UsageError(
                        f"{label}: unpacks to more than {files.format_size(max_bytes)}; "
                        "refusing to read further (not a bundle made by mlops wheels?)"
                    )
                fh = tar.extractfile(member)
                if fh is None:
                    continue
                if rel == bundle_tool.MANIFEST:
                    if member.size > bundle_tool.MAX_MANIFEST_BYTES:
                        raise UsageError(f"{label}: manifest.json is larger than any bundle's")
                    manifest_data = fh.read()
                    continue
                digest = hashlib.sha256()
                while chunk := fh.read(1 << 20):
                    digest.update(chunk)
                found[rel] = digest.hexdigest()
    except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
        raise UsageError(f"{label}: not a readable tar.gz bundle ({type(exc).__name__}: {str(exc)[:120]})") from None
    if manifest_data is None:
        raise UsageError(f"{label}: no bundle folder with a manifest.json inside")
    try:
        manifest = bundle_tool.parse_manifest(manifest_data, "manifest.json")
    except ValueError as exc:
        raise UsageError(f"{label}: manifest.json is damaged: {exc}") from None
    entries = _entries(manifest, label)
    return VerifyResult(label, len(entries), bundle_tool.compare(entries, found))


def verify_bundle(path: Path) -> VerifyResult:
    label = show_path(path)
    try:
        st = path.stat()
    except OSError:
        raise UsageError(f"{label}: no such bundle folder or archive") from None
    if stat.S_ISDIR(st.st_mode):
        return _verify_folder(path, label)
    if stat.S_ISREG(st.st_mode):
        return verify_archive(path, label)
    raise UsageError(f"{label}: not a bundle folder or a .tar.gz file")
