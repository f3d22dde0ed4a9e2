"""Many patches, one target: `status FOLDER` (one table for CI) and `dockerfile` (a patch
applied while an image is built, in local mode, failing the build on any mismatch)."""

from __future__ import annotations

import os
from pathlib import Path

from mlops_cli import __version__, files
from mlops_cli.errors import MlopsError, OperationFailed, UsageError
from mlops_cli.output import warn
from mlops_cli.patch import decide
from mlops_cli.patch.ops import Loaded, Options, check_paths, load_patch
from mlops_cli.patch.report import DockerfileReport, StatusTable
from mlops_cli.patch.targets import ImageTarget, Target, image_labels, label_line
from mlops_cli.text import one_line, shell_join

OTHER_VERSION = "other-version"
INVALID = "invalid"
PATTERNS = ("*.patch", "*.diff")


def patch_files(folder: Path) -> list[Path]:
    found = sorted({p for pattern in PATTERNS for p in folder.glob(pattern) if p.is_file()})
    if not found:
        raise UsageError(f"no patch files (*.patch, *.diff) in {files.show_path(folder)}")
    return found


def status_folder(target: Target, folder: Path, opts: Options, expect: str) -> StatusTable:
    rows: list[dict] = []
    loaded: list[tuple[dict, Loaded]] = []
    for path in patch_files(folder):
        row = {
            "path": str(path),
            "package": None,
            "pinned_version": None,
            "target_version": None,
            "result": INVALID,
            "problem": None,
            "files": 0,
        }
        rows.append(row)
        try:
            lp = load_patch(path, opts.package)
        except UsageError as exc:
            row["problem"] = exc.message
            continue
        row.update(
            package=lp.package,
            files=len(lp.patch.files),
            pinned_version=lp.patch.header.version if lp.patch.header else None,
        )
        loaded.append((row, lp))
    by_package: dict[str, list[str]] = {}
    for _, lp in loaded:
        by_package.setdefault(lp.package, [])
        by_package[lp.package] += [p for p in lp.patch.paths if p not in by_package[lp.package]]
    located = {package: target.locate(package, paths) for package, paths in by_package.items()}
    for row, lp in loaded:
        where = located[lp.package]
        row["target_version"] = where.version
        try:
            check_paths(target, lp.package, where, lp.patch.paths)
        except UsageError as exc:
            row["problem"] = exc.message
            continue
        assessment = decide.assess(lp.patch, where.version, where.files, opts.allow_other_version)
        if any(f.reason == decide.INCONSISTENT for f in assessment.files):
            row["problem"] = f"corrupt patch: {decide.INCONSISTENT}"
            continue
        row["result"] = OTHER_VERSION if assessment.version_mismatch else assessment.state
        row["problem"] = assessment.problem
    labels = target.labels if isinstance(target, ImageTarget) else {}
    return StatusTable(
        target.describe(),
        str(folder),
        expect,
        rows,
        {k: v for k, v in labels.items() if k.startswith("org.mlops.patch")},
    )


def _context_path(patch_path: Path) -> str:
    """The patch's path as COPY names it: relative to the folder mlops runs in (the usual build
    context) when it is inside it, else its name."""
    try:
        rel = os.path.relpath(patch_path.resolve(), Path.cwd().resolve())
    except ValueError:
        rel = patch_path.name
    if rel.startswith(".."):
        rel = patch_path.name
    rel = rel.replace(os.sep, "/")
    if any(ord(c) < 0x20 or c in '"\\' for c in rel) or len(rel) > 500:
        raise UsageError(
            f"the patch file name {one_line(rel)[:80]!r} cannot be written into a Dockerfile",
            hint="rename it to plain letters, digits, '-', '_' and '.'",
        )
    return rel


def default_install() -> str:
    # PIP_BREAK_SYSTEM_PACKAGES: images on Debian 12 / Ubuntu 23.04+ mark their Python as
    # externally managed; a serving image installs its stack into it anyway. Older pip ignores it.
    return (
        f"PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --no-cache-dir {shell_join([f'mlops-cli=={__version__}'])}"
    )


def dockerfile(
    patch_path: Path, image: str, install: str | None, python: str, engine: str | None, check: bool, opts: Options
) -> DockerfileReport:
    lp = load_patch(patch_path, None)
    header = lp.patch.header
    if header is None:
        raise UsageError(
            f"{files.show_path(patch_path)} has no mlops header, so a build could not check the version",
            hint="make the patch with `mlops patch diff`",
        )
    if install is not None and ("\n" in install or "\r" in install or not install.strip()):
        raise UsageError("--install must be one non-empty shell command line")
    source = _context_path(patch_path)
    inside = f"/tmp/mlops-patch/{lp.path.name}"
    base_id, state, notes = None, None, []
    if check:
        base_id, state = _check_against(image, engine, lp, opts, notes)
    labels = image_labels(lp.patch.sha256, lp.package, header.version, lp.patch.paths, image, base_id)
    # Backups and the journal go to the folder removed at the end: nothing of mlops stays in the layer.
    apply_cmd = "MLOPS_STATE_DIR=/tmp/mlops-patch/state MLOPS_CACHE_DIR=/tmp/mlops-patch/cache " + shell_join(
        ["mlops", "patch", "apply", inside, "--python", python, "--yes"]
    )
    lines = [
        f"FROM {image}",
        f"# mlops patch: {lp.path.name} ({lp.package} {header.version}, sha256 {lp.patch.sha256[:12]}), "
        f"made by mlops {__version__}",
        "# The build stops here if the image has another version or a changed file: it never skips.",
        f'COPY ["{source}", "{inside}"]',
        "RUN set -e; \\",
        f"    {install or default_install()}; \\",
        f"    {apply_cmd}; \\",
        "    rm -rf /tmp/mlops-patch",
        label_line(labels),
    ]
    return DockerfileReport(
        image,
        {"path": str(lp.path), "sha256": lp.patch.sha256, "version": header.version},
        lp.package,
        labels,
        "\n".join(lines) + "\n",
        state,
        notes,
        base_id,
    )


def _check_against(image: str, engine: str | None, lp: Loaded, opts: Options, notes: list[str]):
    """Assess the patch against the local image when it is there: a patch that cannot apply gives
    no Dockerfile (exit 1). Returns (image ID, state) or (None, None) when it could not be checked."""
    from mlops_cli.patch.engine import select_engine

    try:
        eng = select_engine(engine)
        eng.ensure_running()
    except MlopsError as exc:
        notes.append(f"not checked against {image} ({exc.message}); the build checks it")
        warn(notes[-1])
        return None, None
    if eng.inspect("image", image) is None:
        notes.append(
            f"{image} is not in the local {eng.name} engine: not checked here (the build checks it), and "
            "org.mlops.patch.base-image-id is left out"
        )
        warn(notes[-1])
        return None, None
    target = ImageTarget(eng, image)
    located = target.locate(lp.package, lp.patch.paths)
    check_paths(target, lp.package, located, lp.patch.paths)
    assessment = decide.assess(lp.patch, located.version, located.files)
    if assessment.state == decide.CONFLICT:
        raise OperationFailed(
            f"the patch does not apply to {image}: {assessment.problem}",
            hint=f"carry it over first: mlops patch port {shell_join([str(lp.path)])} --image {image}",
        )
    if assessment.state == decide.APPLIED:
        notes.append(f"{image} already holds this patch; the build's apply step will say so and change nothing")
        warn(notes[-1])
    return target.image_id, assessment.state
