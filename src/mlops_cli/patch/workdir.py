"""`extract` and `diff`: copy files out of a target into a work folder, and turn edits into a pinned patch.

Work folder layout::

    work/transformers/models/.../modeling_qwen2_5_vl.py    <- edit this copy
    work/.mlops/original/transformers/models/...           <- untouched original
    work/.mlops/extract.json                               <- package, version, sha256 of each file, source
"""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

from mlops_cli import __version__
from mlops_cli.files import check_writable, current_umask, publish_dir, safe_join, staging_dir, write_atomic, write_new
from mlops_cli.errors import OperationFailed, UsageError
from mlops_cli.patch import patchfile as pf
from mlops_cli.patch.report import DiffReport, ExtractReport
from mlops_cli.patch.targets import ImageTarget, Target

MANIFEST = ".mlops/extract.json"
ORIGINALS = ".mlops/original"


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
            pf._check_path(rel)
        except pf.PatchFormatError:
            raise UsageError(f"not a path inside a package: {raw!r}",
                             hint="write it relative to site-packages, e.g. transformers/models/qwen2_5_vl/modeling_qwen2_5_vl.py")
        if "/" not in rel:
            raise UsageError(f"{raw!r} names no file inside a package", hint="e.g. transformers/utils/import_utils.py")
        clean.append(rel)
    packages = {p.split("/", 1)[0] for p in clean}
    if len(packages) != 1:
        raise UsageError(f"all files must be in one package, got {', '.join(sorted(packages))}",
                         hint="make one patch per package")
    return packages.pop(), list(dict.fromkeys(clean))


def extract(target: Target, raw_paths: list[str], outdir: Path) -> ExtractReport:
    package, paths = normalise_paths(raw_paths)
    if outdir.exists() and (not outdir.is_dir() or any(outdir.iterdir())):
        raise UsageError(f"{outdir} exists and is not an empty folder", hint="give -o a new or empty folder")
    located = target.locate(package, paths)
    missing = [p for p in paths if located.files.get(p) is None]
    if missing:
        raise OperationFailed(f"not found in {target.label}: " + ", ".join(located.path_of(p) for p in missing),
                              hint=f"{package} is at {located.site}/{package}; check the path inside it")
    files = [{"path": p, "sha256": pf.sha256_bytes(located.files[p]), "target_path": located.path_of(p)} for p in paths]
    manifest = {"format": 1, "package": package, "version": located.version, "site": located.site,
                "python": located.python, "source": target.describe(), "files": files, "mlops": __version__}
    try:
        outdir.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OperationFailed(f"cannot create {outdir}: {exc.strerror or exc}", hint="give -o a writable place") from None
    with staging_dir(outdir, what="work folder") as staging:
        os.chmod(staging, 0o777 & ~current_umask())
        for rel in paths:
            for dest in (safe_join(staging, rel), safe_join(staging, f"{ORIGINALS}/{rel}")):
                dest.parent.mkdir(parents=True, exist_ok=True)
                write_new(dest, located.files[rel])
        write_new(staging / MANIFEST, json.dumps(manifest, indent=2) + "\n")
        publish_dir(staging, outdir, what="work folder",
                          may_replace=lambda d: None if not any(d.iterdir()) else "it is not empty")
    return ExtractReport(target.describe(), package, located.version, located.site, located.python,
                         str(outdir), files, notes=vllm_notes(target, paths))


def vllm_notes(target: Target, paths: list[str]) -> list[str]:
    """The research caveat: vLLM's native Qwen2.5-VL never imports this transformers file."""
    ref = json.dumps(target.describe()).lower()
    if any("qwen2_5_vl/modeling_qwen2_5_vl" in p for p in paths) and ("vllm" in ref or isinstance(target, ImageTarget)):
        return ["vLLM's native Qwen2.5-VL (vllm/model_executor/models/qwen2_5_vl.py) does not import "
                "transformers' modeling_qwen2_5_vl.py; a change here (e.g. get_rope_index) takes effect only with "
                "`vllm serve ... --model-impl transformers` (see docs/patch.md)"]
    return []


def diff(workdir: Path, output: Path) -> DiffReport:
    manifest_path = workdir / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
        package, version = manifest["package"], manifest["version"]
    except FileNotFoundError:
        raise UsageError(f"{workdir} is not a work folder made by `mlops patch extract` (no {MANIFEST})",
                         hint="mlops patch extract IMAGE PATH... -o WORKDIR") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{manifest_path} is damaged: {exc}") from None
    if not version:
        raise OperationFailed(f"the extract recorded no {package} version, so the patch cannot be pinned",
                              hint="the package has no distribution metadata and no __version__ in the target")
    changes, report_files, unchanged = [], [], []
    for entry in files:
        rel = entry["path"]
        try:
            original = (workdir / ORIGINALS / rel).read_bytes()
        except OSError as exc:
            raise UsageError(f"{workdir} is damaged: cannot read the original {ORIGINALS}/{rel} ({exc.strerror or exc})",
                             hint="extract again into a new folder and redo the edit there") from None
        if pf.sha256_bytes(original) != entry["sha256"]:
            raise OperationFailed(f"{workdir / ORIGINALS / rel} no longer matches the extracted sha256",
                                  hint="edit the copy at the top of the work folder, not under .mlops/; extract again")
        edited_path = workdir / rel
        if not edited_path.exists():
            raise UsageError(f"{edited_path} is missing", hint="deleting files is not supported; restore it")
        edited = edited_path.read_bytes()
        if edited == original:
            unchanged.append(rel)
            continue
        if rel.endswith(".py"):
            try:
                ast.parse(edited, filename=str(edited_path))
            except (SyntaxError, ValueError) as exc:  # null bytes: ValueError before Python 3.11.?, SyntaxError after
                where = f" line {exc.lineno}" if getattr(exc, "lineno", None) else ""
                raise OperationFailed(f"{edited_path}{where}: {getattr(exc, 'msg', None) or exc}",
                                      hint="fix the edit; a patch that does not compile is never written") from None
        changes.append((rel, original, edited))
        body = pf.make_diff(rel, pf.decode(original), pf.decode(edited))
        report_files.append({"path": rel, "sha256_before": pf.sha256_bytes(original),
                             "sha256_after": pf.sha256_bytes(edited),
                             "added": sum(1 for ln in body.splitlines() if ln.startswith("+") and not ln.startswith("+++")),
                             "removed": sum(1 for ln in body.splitlines() if ln.startswith("-") and not ln.startswith("---"))})
    if not changes:
        raise OperationFailed(f"no changes in {workdir}: every file still matches the original",
                              hint=f"edit {workdir}/{files[0]['path']} first")
    src = manifest.get("source", {})
    notes = [f"made-from: {src.get('kind', '?')} {src.get('ref', '?')} {src.get('image_id', '')}".rstrip(),
             f"made-by: mlops {__version__}",
             "apply: mlops patch apply THIS.patch --image IMAGE | --container NAME | --python PATH"]
    data = pf.make_patch(package, version, changes, notes)
    pf.parse(data)  # what we write must read back
    if output.is_dir():
        raise UsageError(f"-o {output} is a folder; give the patch file's name", hint=f"-o {output / 'NAME.patch'}")
    if str(output.parent) and not output.parent.exists():
        output.parent.mkdir(parents=True, exist_ok=True)
    check_writable(output, what="patch file")
    write_atomic(output, data, what="patch file")
    return DiffReport(str(output), package, version, pf.sha256_bytes(data), report_files, unchanged, src)
