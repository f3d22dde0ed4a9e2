"""`apply`, `status` and `revert`: read the patch, ask the target, decide (pure), then act.

Order of every change: locate (target's interpreter) -> assess (pure) -> show the plan and ask
-> write or build -> read back and verify sha256 -> import check. A conflict, a refused
confirmation, or a failed check leaves the target as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlops_cli.errors import OperationFailed, UsageError

from mlops_cli.output import confirm, info, warn
from mlops_cli.patch import decide
from mlops_cli.patch import patchfile as pf
from mlops_cli.patch.report import PatchReport
from mlops_cli.patch.targets import ContainerTarget, ImageTarget, Located, LocalTarget, Target, backup_dir_for
from mlops_cli.patch.workdir import vllm_notes


@dataclass
class Options:
    package: str | None = None
    allow_other_version: bool = False
    dry_run: bool = False
    yes: bool = False
    import_check: bool = True
    tag: str | None = None
    json_mode: bool = False


def load_patch(path: Path, package: str | None) -> tuple[pf.Patch, str]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"patch file not found: {path}") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    try:
        patch = pf.parse(data)
    except pf.PatchFormatError as exc:
        raise UsageError(f"corrupt patch {path}: {exc}", hint="make patches with `mlops patch diff`; nothing was changed") from None
    if patch.header is None:
        if not package:
            raise UsageError(f"{path} is a plain diff with no mlops header, so it names no package",
                             hint="give --package NAME (e.g. --package transformers); it will not be pinned to a version")
        tops = {p.split("/", 1)[0] for p in patch.paths}
        if tops != {package}:
            raise UsageError(f"--package {package} but the diff changes files in {', '.join(sorted(tops))}",
                             hint="paths must be relative to site-packages (-p1), e.g. a/transformers/...")
        return patch, package
    if package and package != patch.header.package:
        raise UsageError(f"--package {package} contradicts the patch header (package: {patch.header.package})")
    return patch, patch.header.package


def module_names(paths: list[str]) -> list[str]:
    mods = []
    for rel in paths:
        if rel.endswith(".py"):
            parts = rel[:-3].split("/")
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods.append(".".join(parts))
    return mods


def _report(command: str, target: Target, patch_path: Path, patch: pf.Patch, package: str, located: Located,
            assessment: decide.Assessment, result: str) -> PatchReport:
    files = []
    for f in assessment.files:
        entry = f.to_json()
        entry["target_path"] = located.path_of(f.path)
        files.append(entry)
    return PatchReport(
        command=command, target=target.describe(), package=package, version=located.version,
        patch={"path": str(patch_path), "sha256": patch.sha256, "pinned": patch.pinned,
               "version": patch.header.version if patch.header else None},
        result=result, state=assessment.state, files=files, site=located.site, python=located.python,
        problem=assessment.problem, warnings=list(assessment.warnings), notes=vllm_notes(target, patch.paths))


def _assess(target: Target, patch: pf.Patch, package: str, opts: Options):
    located = target.locate(package, patch.paths)
    assessment = decide.assess(patch, located.version, located.files, opts.allow_other_version)
    bad = [f.path for f in assessment.files if f.reason == decide.INCONSISTENT]
    if bad:
        raise UsageError(f"corrupt patch: {', '.join(bad)}: {decide.INCONSISTENT}",
                         hint="the diff was edited after `mlops patch diff` wrote it; make it again; nothing was changed")
    for w in assessment.warnings:
        warn(w)
    return located, assessment


def status(target: Target, patch_path: Path, opts: Options) -> PatchReport:
    patch, package = load_patch(patch_path, opts.package)
    located, assessment = _assess(target, patch, package, opts)
    report = _report("status", target, patch_path, patch, package, located, assessment, assessment.state)
    report.status_exit = True
    if isinstance(target, ImageTarget):
        report.labels = {k: v for k, v in target.labels.items() if k.startswith("org.mlops.patch")}
    return report


def apply(target: Target, patch_path: Path, opts: Options) -> PatchReport:
    patch, package = load_patch(patch_path, opts.package)
    located, assessment = _assess(target, patch, package, opts)
    if assessment.state == decide.CONFLICT:
        return _report("apply", target, patch_path, patch, package, located, assessment, "conflict")
    if assessment.state == decide.APPLIED:
        return _report("apply", target, patch_path, patch, package, located, assessment, "already-applied")
    new = {f.path: f.patched for f in assessment.files}
    report = _report("apply", target, patch_path, patch, package, located, assessment, "would-apply")
    report.dry_run = opts.dry_run
    report.diff = "".join(pf.make_diff(rel, pf.decode(located.files[rel]), pf.decode(data)) for rel, data in new.items())
    if isinstance(target, ImageTarget):
        return _apply_image(target, located, patch, package, new, report, opts)
    report.plan = [f"replace {located.path_of(rel)} ({pf.sha256_bytes(located.files[rel])[:12]} -> "
                   f"{pf.sha256_bytes(data)[:12]})" for rel, data in new.items()]
    if isinstance(target, LocalTarget):
        report.plan.insert(0, f"back up the originals under {backup_dir_for(located.site)}")
    if opts.dry_run:
        return report
    _ask(report, f"Patch {len(new)} file(s) in {target.label}?", opts)
    originals = {rel: located.files[rel] for rel in new}
    _write(target, located, new)
    _verify_written(target, package, new)
    report.import_check = _import_check(target, located, new, originals, opts, report)
    report.result = "applied"
    return report


def _apply_image(target: ImageTarget, located: Located, patch: pf.Patch, package: str, new: dict,
                 report: PatchReport, opts: Options) -> PatchReport:
    tag = opts.tag or target.default_tag(patch.sha256)
    labels = target.labels_for(patch.sha256, package, located.version, list(new))
    report.new_image, report.labels = tag, labels
    report.plan = [f"build {tag} from {target.ref} ({target.image_id[:19]})",
                   *[f"COPY {rel} -> {located.path_of(rel)}" for rel in new],
                   "RUN sha256 check + py_compile of each file",
                   "LABEL " + ", ".join(f"{k}={v}" for k, v in labels.items() if not k.endswith("files")),
                   f"entrypoint {target.entrypoint} and cmd {target.cmd} are kept"]
    if opts.dry_run:
        return report
    existing = target.engine.inspect("image", tag)
    if existing and ((existing.get("Config") or {}).get("Labels") or {}).get("org.mlops.patch.sha256") == patch.sha256 \
            and (existing["Config"]["Labels"].get("org.mlops.patch.base-image-id") == target.image_id):
        report.result, report.new_image_id = "already-applied", existing["Id"]
        report.plan = [f"{tag} already exists, built from this base with this patch"]
        return report
    if existing:
        report.plan.append(f"{tag} exists now ({existing['Id'][:19]}); the tag will move to the new image")
    _ask(report, f"Build {tag}?", opts)
    if not opts.json_mode:
        info(f"building {tag} ...")
    report.new_image_id = target.build(located, new, labels, tag)
    derived = target.derived(tag)
    try:
        _verify_written(derived, package, new)
        report.import_check = _import_check(derived, located, new, None, opts, report, base=target)
    except BaseException:
        target.engine.remove_image(tag)
        raise
    report.result = "applied"
    return report


def revert(target: Target, patch_path: Path, opts: Options) -> PatchReport:
    patch, package = load_patch(patch_path, opts.package)
    located, assessment = _assess(target, patch, package, opts)
    if assessment.state != decide.APPLIED:
        result = "conflict" if assessment.state == decide.CONFLICT else "not-applied"
        return _report("revert", target, patch_path, patch, package, located, assessment, result)
    report = _report("revert", target, patch_path, patch, package, located, assessment, "would-revert")
    originals, sources = {}, []
    backups = backup_dir_for(located.site) if isinstance(target, LocalTarget) else None
    for f in assessment.files:
        data, source = _original_for(f, backups)
        if data is None:
            report.result = "conflict"
            report.problem = f"{f.path}: cannot rebuild the original (no backup, and un-applying does not give {f.sha256_before})"
            return report
        originals[f.path] = data
        sources.append(f"{located.path_of(f.path)} <- {source}")
    report.plan = [f"restore {s}" for s in sources]
    report.dry_run = opts.dry_run
    if opts.dry_run:
        return report
    _ask(report, f"Restore {len(originals)} original file(s) in {target.label}?", opts)
    _write(target, located, originals, backup=False)
    _verify_written(target, package, originals)
    report.result = "reverted"
    return report


def _original_for(f: decide.FileState, backups: Path | None) -> tuple[bytes | None, str]:
    want = f.sha256_before
    if backups is not None and want:
        candidate = backups / want
        if candidate.exists():
            data = candidate.read_bytes()
            if pf.sha256_bytes(data) == want:
                return data, f"backup {candidate} (sha256 verified)"
    if f.original is not None and (want is None or pf.sha256_bytes(f.original) == want):
        return f.original, "the patch, un-applied (sha256 verified)"
    return None, ""


def _ask(report: PatchReport, question: str, opts: Options) -> None:
    if not opts.yes and not opts.json_mode:
        from mlops_cli.output import console
        console().print("plan:", markup=False)
        for step in report.plan:
            console().print(f"  {step}", markup=False, highlight=False)
    if not confirm(question, opts.yes):
        raise OperationFailed("cancelled; nothing was changed")


def _write(target: Target, located: Located, new: dict[str, bytes], backup: bool = True) -> None:
    if isinstance(target, LocalTarget):
        target.compile_check(located, new)
        target.write(located, new, backup_dir_for(located.site) if backup else None)
    elif isinstance(target, ContainerTarget):
        target.write(located, new)
    else:  # pragma: no cover - images are built, never written
        raise AssertionError(target)


def _verify_written(target: Target, package: str, new: dict[str, bytes]) -> None:
    """Read the files back through the target's interpreter: what is there is what we meant."""
    again = target.locate(package, list(new))
    bad = [rel for rel, data in new.items() if again.files.get(rel) != data]
    if bad:
        raise OperationFailed(f"after writing, {', '.join(bad)} in {target.label} is not what was written",
                              hint="something else changed the files at the same time; check with mlops patch status")


def _import_check(target: Target, located: Located, new: dict[str, bytes], originals: dict | None,
                  opts: Options, report: PatchReport, base: Target | None = None) -> dict | None:
    """The patched modules must import in the target, unless they did not import before either."""
    modules = module_names(list(new))
    if not opts.import_check or not modules:
        return {"skipped": True, "modules": modules}
    after = target.imports(modules)
    failed = {m: r for m, r in after.items() if not r.get("ok")}
    if not failed:
        return {"ok": True, "modules": modules}
    if base is not None:
        before = base.imports(modules)
    else:  # restore the originals, ask again, and re-apply only if the patch is not to blame
        _write(target, located, originals, backup=False)
        before = target.imports(modules)
    caused = {m: r for m, r in failed.items() if before.get(m, {}).get("ok") or before.get(m, {}).get("error") != r["error"]}
    if caused:
        name, res = next(iter(caused.items()))
        where = "the new image was removed" if base is not None else "the original files were restored"
        raise OperationFailed(f"the patched module {name} does not import in {target.label}: {res['error']}; {where}",
                              hint="fix the patch; or skip this check with --no-import-check")
    if base is None:
        _write(target, located, new, backup=False)
    errors = "; ".join(f"{m}: {r['error']}" for m, r in failed.items())
    report.warnings.append(f"import check inconclusive: the module did not import before the patch either ({errors})")
    warn(report.warnings[-1])
    return {"ok": None, "modules": modules, "inconclusive": errors}
