"""`extract` and `diff`: copy files out of a target into a work folder, and turn edits into a pinned patch.

Work folder layout::

    work/transformers/models/.../modeling_qwen2_5_vl.py    <- edit this copy
    work/.mlops/original/transformers/models/...           <- untouched original
    work/.mlops/extract.json                               <- package, version, sha256 of each file, source

A file created in the work folder under the package (a new module) becomes a created file in the
patch; a file deleted from it, a deleted one. `mlops patch port` writes the same layout when a
merge needs a person (the merged file with conflict markers at the top, the new release's file
as the original).
"""

from __future__ import annotations

import ast
import json
import os
import re
from pathlib import Path

from mlops_cli import __version__, files
from mlops_cli.errors import OperationFailed, UsageError
from mlops_cli.files import check_writable, current_umask, publish_dir, safe_join, staging_dir, write_atomic, write_new
from mlops_cli.patch import patchfile as pf
from mlops_cli.patch.report import DiffReport, ExtractReport
from mlops_cli.patch.targets import ImageTarget, Target
from mlops_cli.text import one_line, shorten_list

MANIFEST = ".mlops/extract.json"
ORIGINALS = ".mlops/original"
_HEX64 = re.compile(r"[0-9a-f]{64}")
# What an editor or a merge tool leaves beside a file: never part of a patch.
_SCRATCH = re.compile(r"(^\.|~$|\.(swp|swo|orig|rej|pyc|bak)$)")
# Lines a three-way merge leaves where a person must choose (git's and merge3's markers).
_MARKER = re.compile(r"^(<{7}|>{7}|\|{7})( |$)", re.M)


def normalise_paths(paths: list[str]) -> tuple[str, list[str]]:
    """PATHs relative to site-packages; all in one package; returns (package, paths)."""
    clean = []
    for raw in paths:
        rel = raw.strip()
        rel = rel[2:] if rel.startswith("./") else rel
        for marker in ("/site-packages/", "/dist-packages/"):
            if marker in rel:
                rel = rel.split(marker, 1)[1]
        try:
            pf.check_path(rel)
        except pf.PatchFormatError:
            raise UsageError(
                f"not a path inside a package: {one_line(raw)[:120]!r}",
                hint="write it relative to site-packages, e.g. transformers/models/qwen2_5_vl/modeling_qwen2_5_vl.py",
            ) from None
        if "/" not in rel:
            raise UsageError(
                f"{one_line(raw)[:120]!r} names no file inside a package",
                hint="e.g. transformers/utils/import_utils.py",
            )
        clean.append(rel)
    packages = {p.split("/", 1)[0] for p in clean}
    if len(packages) != 1:
        raise UsageError(
            f"all files must be in one package, got {shorten_list(sorted(packages), 5)}",
            hint="make one patch per package",
        )
    package = packages.pop()
    if not pf.valid_package(package):
        raise UsageError(f"{package!r} is not a package (import) name")
    return package, list(dict.fromkeys(clean))


def extract(target: Target, raw_paths: list[str], outdir: Path) -> ExtractReport:
    package, paths = normalise_paths(raw_paths)
    check_empty_folder(outdir)
    located = target.locate(package, paths)
    from mlops_cli.patch.ops import check_paths

    check_paths(target, package, located, paths)
    missing = [p for p in paths if located.files.get(p) is None]
    if missing:
        raise OperationFailed(
            f"not found in {target.label}: " + shorten_list([located.path_of(p) for p in missing], 3),
            hint=f"{package} is at {located.site}/{package}; check the path inside it",
        )
    entries = [(p, located.files[p], located.files[p]) for p in paths]
    from mlops_cli.patch.port import remember

    remember([located.files[p] for p in paths])
    write_workdir(outdir, package, located.version, located.site, located.python, target.describe(), entries)
    files_json = [
        {"path": p, "sha256": pf.sha256_bytes(located.files[p]), "target_path": located.path_of(p)} for p in paths
    ]
    return ExtractReport(
        target.describe(),
        package,
        located.version,
        located.site,
        located.python,
        str(outdir),
        files_json,
        notes=vllm_notes(target, paths),
    )


def check_empty_folder(outdir: Path) -> None:
    if outdir.is_symlink() or (outdir.exists() and (not outdir.is_dir() or any(outdir.iterdir()))):
        raise UsageError(
            f"{files.show_path(outdir)} exists and is not an empty folder", hint="give -o a new or empty folder"
        )


def write_workdir(
    outdir: Path,
    package: str,
    version: str | None,
    site: str,
    python: str,
    source: dict,
    entries: list[tuple[str, bytes | None, bytes | None]],
    extra: dict | None = None,
) -> None:
    """A work folder: for each (path, original, working copy) the copy to edit at the top (None:
    none is written) and the original under .mlops/original (None: the file does not exist in
    the target), with the manifest. Built beside ``outdir`` and renamed into place."""
    manifest = {
        "format": 1,
        "package": package,
        "version": version,
        "site": site,
        "python": python,
        "source": source,
        "files": [{"path": rel, "sha256": pf.sha256_of(orig)} for rel, orig, _ in entries],
        "mlops": __version__,
        **(extra or {}),
    }
    try:
        outdir.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OperationFailed(
            f"cannot create {files.show_path(outdir)}: {exc.strerror or exc}", hint="give -o a writable place"
        ) from None
    with staging_dir(outdir, what="work folder") as staging:
        os.chmod(staging, 0o777 & ~current_umask())
        for rel, original, working in entries:
            for dest, data in (
                (safe_join(staging, rel), working),
                (safe_join(staging, f"{ORIGINALS}/{rel}"), original),
            ):
                if data is None:
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                write_new(dest, data)
        (staging / MANIFEST).parent.mkdir(parents=True, exist_ok=True)
        write_new(staging / MANIFEST, json.dumps(manifest, indent=2) + "\n")
        publish_dir(
            staging,
            outdir,
            what="work folder",
            may_replace=lambda d: None if not any(d.iterdir()) else "it is not empty",
        )


def vllm_notes(target: Target, paths: list[str]) -> list[str]:
    """The research caveat: vLLM's native Qwen2.5-VL never imports this transformers file."""
    ref = json.dumps(target.describe()).lower()
    if any("qwen2_5_vl/modeling_qwen2_5_vl" in p for p in paths) and ("vllm" in ref or isinstance(target, ImageTarget)):
        return [
            "vLLM's native Qwen2.5-VL (vllm/model_executor/models/qwen2_5_vl.py) does not import "
            "transformers' modeling_qwen2_5_vl.py; a change here (e.g. get_rope_index) takes effect only with "
            "`vllm serve ... --model-impl transformers` (see docs/patch.md)"
        ]
    return []


def read_manifest(workdir: Path) -> dict:
    """The work folder's manifest, every field checked (a tampered or damaged one is exit 2)."""
    path = workdir / MANIFEST
    if not path.is_file():
        raise UsageError(
            f"{files.show_path(workdir)} is not a work folder made by `mlops patch extract` (no {MANIFEST})",
            hint="mlops patch extract IMAGE PATH... -o WORKDIR",
        )
    doc = files.read_input_json(path, what="work folder manifest", max_bytes=16 * files.MiB)

    def damaged(reason: str) -> UsageError:
        return UsageError(
            f"{files.show_path(path)} is damaged: {reason}",
            hint="extract again into a new folder and redo the edit there",
        )

    if not isinstance(doc, dict):
        raise damaged("not a JSON object")
    package, version, entries = doc.get("package"), doc.get("version"), doc.get("files")
    if not isinstance(package, str) or not pf.valid_package(package):
        raise damaged(f"'package' {one_line(package)[:60]!r} is not a package (import) name")
    if version is not None and (not isinstance(version, str) or not pf.valid_version(version)):
        raise damaged(f"'version' {one_line(version)[:60]!r} is not a version")
    if not isinstance(entries, list) or not entries:
        raise damaged("'files' is not a list of files")
    seen = set()
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            raise damaged("an entry of 'files' has no path")
        try:
            pf.check_path(entry["path"])
        except pf.PatchFormatError as exc:
            raise damaged(str(exc)) from None
        if not entry["path"].startswith(package + "/"):
            raise damaged(f"{entry['path']!r} is not in package {package}")
        sha = entry.get("sha256")
        if sha is not None and (not isinstance(sha, str) or not _HEX64.fullmatch(sha)):
            raise damaged(f"the sha256 of {entry['path']} is not 64 hex digits")
        if entry["path"] in seen:
            raise damaged(f"{entry['path']} is listed twice")
        seen.add(entry["path"])
    if not isinstance(doc.get("source", {}), dict):
        raise damaged("'source' is not an object")
    return doc


def _read_work_file(path: Path, what: str) -> bytes | None:
    if not path.exists() and not path.is_symlink():
        return None
    if path.is_symlink():
        raise UsageError(f"{files.show_path(path)} is a symbolic link; a work folder holds plain files")
    return files.read_input_bytes(path, what=what, max_bytes=64 * files.MiB)


def _new_files(workdir: Path, package: str, known: set[str]) -> list[str]:
    """Files a person created under the package in the work folder (new modules)."""
    found = []
    root = workdir / package
    if not root.is_dir() or root.is_symlink():
        return found
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(
            d
            for d in dirs
            if d != "__pycache__" and not _SCRATCH.search(d) and not os.path.islink(os.path.join(folder, d))
        )
        for name in sorted(names):
            rel = os.path.relpath(os.path.join(folder, name), workdir).replace(os.sep, "/")
            if rel in known or _SCRATCH.search(name) or os.path.islink(os.path.join(folder, name)):
                continue
            try:
                pf.check_path(rel)
            except pf.PatchFormatError:
                continue
            found.append(rel)
    return found


def conflict_markers(data: bytes) -> int | None:
    """The line number of the first conflict marker left in ``data``, if any."""
    m = _MARKER.search(pf.decode(data))
    return None if m is None else pf.decode(data).count("\n", 0, m.start()) + 1


def diff(workdir: Path, output: Path) -> DiffReport:
    manifest = read_manifest(workdir)
    package, version = manifest["package"], manifest["version"]
    if not version:
        raise OperationFailed(
            f"the extract recorded no {package} version, so the patch cannot be pinned",
            hint="the package has no distribution metadata and no __version__ in the target",
        )
    entries = [(e["path"], e.get("sha256")) for e in manifest["files"]]
    entries += [(rel, None) for rel in _new_files(workdir, package, {rel for rel, _ in entries})]
    changes, report_files, unchanged = [], [], []
    for rel, sha in entries:
        original = None
        if sha is not None:
            original = _read_work_file(
                safe_join(workdir / ORIGINALS, rel, what="file in the work folder"), "the original"
            )
            if original is None:
                raise UsageError(
                    f"{files.show_path(workdir)} is damaged: the original {ORIGINALS}/{rel} is missing",
                    hint="extract again into a new folder and redo the edit there",
                )
            if pf.sha256_bytes(original) != sha:
                raise OperationFailed(
                    f"{files.show_path(workdir / ORIGINALS / rel)} no longer matches the extracted sha256",
                    hint="edit the copy at the top of the work folder, not under .mlops/; extract again",
                )
        edited_path = safe_join(workdir, rel, what="file in the work folder")
        edited = _read_work_file(edited_path, "the edited file")
        if edited == original:
            unchanged.append(rel)
            continue
        if edited is not None:
            line = conflict_markers(edited)
            if line is not None:
                raise OperationFailed(
                    f"{files.show_path(edited_path)} line {line}: a conflict marker is still there",
                    hint="choose between the <<<<<<< and >>>>>>> blocks, remove the markers, "
                    "then run mlops patch diff again",
                )
        if edited is not None and rel.endswith(".py"):
            try:
                ast.parse(edited, filename=str(edited_path))
            except (SyntaxError, ValueError) as exc:  # null bytes: ValueError before Python 3.11.?, SyntaxError after
                where = f" line {exc.lineno}" if getattr(exc, "lineno", None) else ""
                raise OperationFailed(
                    f"{files.show_path(edited_path)}{where}: {one_line(getattr(exc, 'msg', None) or exc)}",
                    hint="fix the edit; a patch that does not compile is never written",
                ) from None
        changes.append((rel, original, edited))
        body = pf.make_diff(
            rel, None if original is None else pf.decode(original), None if edited is None else pf.decode(edited)
        )
        report_files.append(
            {
                "path": rel,
                "sha256_before": pf.sha256_of(original),
                "sha256_after": pf.sha256_of(edited),
                "change": "create" if original is None else "delete" if edited is None else "modify",
                "added": sum(1 for ln in body.splitlines() if ln.startswith("+") and not ln.startswith("+++")),
                "removed": sum(1 for ln in body.splitlines() if ln.startswith("-") and not ln.startswith("---")),
            }
        )
    if not changes:
        raise OperationFailed(
            f"no changes in {files.show_path(workdir)}: every file still matches the original",
            hint=f"edit {files.show_path(workdir)}/{entries[0][0]} first",
        )
    src = manifest.get("source") or {}
    notes = [
        f"made-from: {src.get('kind', '?')} {src.get('ref', '?')} {src.get('image_id', '')}".rstrip(),
        f"made-by: mlops {__version__}",
        "apply: mlops patch apply THIS.patch --image IMAGE | --container NAME | --python PATH",
    ]
    if manifest.get("ported_from"):
        notes.insert(1, f"ported-from: {manifest['ported_from']}")
    data = pf.make_patch(package, version, changes, notes)
    try:
        pf.parse(data)  # what we write must read back
    except pf.PatchFormatError as exc:
        raise UsageError(f"cannot make a patch from {files.show_path(workdir)}: {one_line(exc)}") from None
    if output.is_dir():
        raise UsageError(
            f"-o {files.show_path(output)} is a folder; give the patch file's name",
            hint=f"-o {files.show_path(output / 'NAME.patch')}",
        )
    if str(output.parent) and not output.parent.exists():
        try:
            output.parent.mkdir(parents=True, exist_ok=True)
        except OSError:
            pass  # check_writable says why, in one line
    check_writable(output, what="patch file")
    write_atomic(output, data, what="patch file")
    from mlops_cli.patch.port import remember

    remember([c[1] for c in changes] + [c[2] for c in changes])
    return DiffReport(str(output), package, version, pf.sha256_bytes(data), report_files, unchanged, src)
