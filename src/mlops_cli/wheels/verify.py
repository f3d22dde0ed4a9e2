"""`mlops wheels --verify PATH`: re-hash a bundle folder or .tar.gz against its manifest.

The check itself is `bundle_tool.verify`, the very code `install.sh --verify` runs on the
far side. An archive is unpacked into a temporary folder first, refusing any member that
would land outside it.
"""

from __future__ import annotations

import tarfile
import tempfile
from pathlib import Path

from mlops_cli.errors import UsageError
from mlops_cli.wheels import bundle_tool
from mlops_cli.wheels.result import VerifyResult


def _unpack(archive: Path, into: Path) -> Path:
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            for m in members:
                if m.name.startswith("/") or ".." in Path(m.name).parts or not (m.isfile() or m.isdir()):
                    raise UsageError(f"{archive}: unsafe or unexpected member {m.name!r}; not a bundle made by mlops wheels")
            for m in members:
                target = into / m.name
                if m.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with tar.extractfile(m) as src, open(target, "wb") as dst:
                        dst.write(src.read())
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise UsageError(f"{archive}: not a readable tar.gz bundle ({exc})") from None
    roots = [p for p in into.iterdir() if (p / bundle_tool.MANIFEST).is_file()]
    if len(roots) != 1:
        raise UsageError(f"{archive}: no bundle folder with a manifest.json inside")
    return roots[0]


def _verify_folder(folder: Path, label: str) -> VerifyResult:
    if not (folder / bundle_tool.MANIFEST).is_file():
        raise UsageError(f"{label}: no manifest.json; not a bundle made by mlops wheels")
    try:
        count, problems = bundle_tool.verify(str(folder))
    except (ValueError, KeyError, TypeError, AttributeError, SystemExit) as exc:  # wrong shapes too
        raise UsageError(f"{label}: manifest.json is damaged ({exc})") from None
    return VerifyResult(label, count, problems)


def verify_bundle(path: Path) -> VerifyResult:
    if path.is_dir():
        return _verify_folder(path, str(path))
    if path.is_file():
        with tempfile.TemporaryDirectory(prefix="mlops-verify-") as tmp:
            return _verify_folder(_unpack(path, Path(tmp)), str(path))
    raise UsageError(f"{path}: no such bundle folder or archive")
