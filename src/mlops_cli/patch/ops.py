"""`apply`, `status` and `revert`: read the patch, ask the target, decide (pure), then act.

Order of every change: locate (target's interpreter) -> assess (pure) -> show the plan and ask
-> write or build -> read back and verify sha256 -> import check. A conflict, a refused
confirmation, or a failed check leaves the target as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlops_cli import files
from mlops_cli.errors import OperationFailed, UsageError
from mlops_cli.output import confirm, info, warn
from mlops_cli.patch import decide, journal
from mlops_cli.patch import patchfile as pf
from mlops_cli.patch.report import PatchReport
from mlops_cli.patch.targets import ContainerTarget, ImageTarget, LocalTarget, Located, Target, backup_dir_for
from mlops_cli.patch.workdir import vllm_notes
from mlops_cli.text import one_line, shorten_list

MAX_PATCH = 64 * files.MiB


@dataclass
class Options:
    package: str | None = None
    allow_other_version: bool = False
    dry_run: bool = False
    yes: bool = False
    import_check: bool = True
    tag: str | None = None
    json_mode: bool = False


@dataclass
class Loaded:
    """A patch file read and parsed, with what it patches."""

    path: Path
    data: bytes
    patch: pf.Patch
    package: str


def load_patch(path: Path, package: str | None) -> Loaded:
    data = files.read_input_bytes(path, what="patch file", max_bytes=MAX_PATCH)
    if package is not None and not pf.valid_package(package):
        raise UsageError(
            f"--package {one_line(package)[:60]!r} is not a package (import) name", hint="e.g. --package transformers"
        )
    try:
        patch = pf.parse(data)
    except pf.PatchFormatError as exc:
        raise UsageError(
            f"corrupt patch {files.show_path(path)}: {one_line(exc)}",
            hint="make patches with `mlops patch diff`; nothing was changed",
        ) from None
    if patch.header is None:
        if not package:
            raise UsageError(
                f"{files.show_path(path)} is a plain diff with no mlops header, so it names no package",
                hint="give --package NAME (e.g. --package transformers); it will not be pinned to a version",
            )
        tops = {p.split("/", 1)[0] for p in patch.paths}
        if tops != {package}:
            raise UsageError(
                f"--package {package} but the diff changes files in {shorten_list(sorted(tops), 5)}",
                hint="paths must be relative to site-packages (-p1), e.g. a/transformers/...",
            )
        return Loaded(path, data, patch, package)
    if package and package != patch.header.package:
        raise UsageError(f"--package {package} contradicts the patch header (package: {patch.header.package})")
    return Loaded(path, data, patch, patch.header.package)


def module_names(paths: list[str]) -> list[str]:
    mods = []
    for rel in paths:
        if rel.endswith(".py"):
            parts = rel[:-3].split("/")
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods.append(".".join(parts))
    return mods


def _report(
    command: str, target: Target, lp: Loaded, located: Located, assessment: decide.Assessment, result: str
) -> PatchReport:
    entries = []
    for f in assessment.files:
        entry = f.to_json()
        entry["target_path"] = located.path_of(f.path)
        entries.append(entry)
    patch = lp.patch
    return PatchReport(
        command=command,
        target=target.describe(),
        package=lp.package,
        version=located.version,
        patch={
            "path": str(lp.path),
            "sha256": patch.sha256,
            "pinned": patch.pinned,
            "version": patch.header.version if patch.header else None,
        },
        result=result,
        state=assessment.state,
        files=entries,
        site=located.site,
        python=located.python,
        problem=assessment.problem,
        warnings=list(assessment.warnings),
        notes=vllm_notes(target, patch.paths),
    )


def check_paths(target: Target, package: str, located: Located, paths: list[str]) -> None:
    """P2 and P5: every path belongs to the package, and none is reached through a symbolic link."""
    for rel in paths:
        real = located.links.get(rel)
        if real is None:
            continue
        site_real = located.site_real.rstrip("/")
        where = "which leads out of site-packages" if not real.startswith(site_real + "/") else "inside site-packages"
        raise UsageError(
            f"refusing to patch {located.path_of(rel)} in {target.label}: it is reached through a "
            f"symbolic link (to {one_line(real)}, {where}); nothing was changed",
            hint="patch the real file in its own package, or replace the link by the file",
        )
    bad = decide.foreign_paths(package, paths, located.owner)
    if bad:
        rel, reason = bad[0]
        more = f" (and {len(bad) - 1} more: {shorten_list([b[0] for b in bad[1:]], 3)})" if len(bad) > 1 else ""
        raise UsageError(
            f"refusing a patch pinned to {package} that changes {rel}: {reason}{more}; nothing was changed",
            hint="a patch changes one package's own files; make one patch per package",
        )


def _assess(target: Target, lp: Loaded, opts: Options):
    located = target.locate(lp.package, lp.patch.paths)
    check_paths(target, lp.package, located, lp.patch.paths)
    assessment = decide.assess(lp.patch, located.version, located.files, opts.allow_other_version)
    bad = [f.path for f in assessment.files if f.reason == decide.INCONSISTENT]
    if bad:
        raise UsageError(
            f"corrupt patch: {shorten_list(bad, 3)}: {decide.INCONSISTENT}",
            hint="the diff was edited after `mlops patch diff` wrote it; make it again; nothing was changed",
        )
    for w in assessment.warnings:
        warn(w)
    return located, assessment


def _pending(target: Target, located: Located, lp: Loaded) -> journal.Journal | None:
    """The journal of an interrupted local apply/revert of THIS patch; another patch's is an error."""
    if not isinstance(target, LocalTarget):
        return None
    pending = journal.load(located.site)
    if pending is not None and pending.patch_sha != lp.patch.sha256:
        raise OperationFailed(pending.describe() + "; finish that first", hint=pending.hint())
    return pending


def status(target: Target, patch_path: Path, opts: Options) -> PatchReport:
    lp = load_patch(patch_path, opts.package)
    located, assessment = _assess(target, lp, opts)
    report = _report("status", target, lp, located, assessment, assessment.state)
    report.status_exit = True
    if isinstance(target, LocalTarget):
        pending = journal.load(located.site)
        if pending is not None:
            report.problem = pending.describe()
            report.hint = pending.hint()
            report.result = report.state = decide.CONFLICT
    if isinstance(target, ImageTarget):
        report.labels = {k: v for k, v in target.labels.items() if k.startswith("org.mlops.patch")}
    return report


def _finish_interrupted(
    command: str, target: LocalTarget, lp: Loaded, located: Located, pending: journal.Journal, opts: Options
) -> tuple[PatchReport | None, list[str]]:
    """Bring an interrupted apply/revert of this patch to the side ``command`` wants."""
    wanted_after = command == "apply"
    side = "after" if (pending.command == "apply") == wanted_after else "before"
    steps = [
        f"finish the interrupted `mlops patch {pending.command}` from its journal: bring "
        f"{len(pending.entries)} file(s) to the {'patched' if wanted_after else 'original'} state "
        f"(each checked by sha256)"
    ]
    if opts.dry_run:
        assessment = decide.assess(lp.patch, located.version, located.files, opts.allow_other_version)
        report = _report(command, target, lp, located, assessment, f"would-{command}")
        report.dry_run, report.plan = True, steps
        return report, []
    _ask(steps, f"Finish the interrupted {pending.command} in {target.label}?", opts)
    return None, target.finish(located, pending, side)


def _prepare(command: str, target: Target, patch_path: Path, opts: Options):
    """Read and assess the patch; first finish an interrupted local apply/revert of it, if any.
    Returns (loaded patch, located, assessment, what finishing did, a dry-run report or None)."""
    lp = load_patch(patch_path, opts.package)
    located, assessment = _assess(target, lp, opts)
    recovered: list[str] = []
    pending = _pending(target, located, lp)
    if pending is not None:
        early, recovered = _finish_interrupted(command, target, lp, located, pending, opts)
        if early is not None:
            return lp, located, assessment, recovered, early
        located, assessment = _assess(target, lp, opts)
    return lp, located, assessment, recovered, None


def apply(target: Target, patch_path: Path, opts: Options) -> PatchReport:
    lp, located, assessment, recovered, early = _prepare("apply", target, patch_path, opts)
    if early is not None:
        return early
    if assessment.state == decide.CONFLICT:
        return _report("apply", target, lp, located, assessment, "conflict")
    if assessment.state == decide.APPLIED:
        report = _report("apply", target, lp, located, assessment, "applied" if recovered else "already-applied")
        report.plan, report.changed_system = recovered, bool(recovered)
        return report
    new = {f.path: f.patched for f in assessment.files}
    report = _report("apply", target, lp, located, assessment, "would-apply")
    report.dry_run = opts.dry_run
    report.diff = "".join(pf.make_diff(rel, _text(located.files[rel]), _text(data)) for rel, data in new.items())
    if isinstance(target, ImageTarget):
        return _apply_image(target, located, lp, new, report, opts)
    report.plan = [_change_line(located, rel, located.files[rel], data) for rel, data in new.items()]
    if isinstance(target, LocalTarget):
        report.plan.insert(0, f"back up the originals under {backup_dir_for(located.site)}")
    if opts.dry_run:
        return report
    _ask(report.plan, f"Patch {len(new)} file(s) in {target.label}?", opts)
    originals = {rel: located.files[rel] for rel in new}
    _write(target, located, new, "apply", lp)
    report.changed_system = True
    _verify_written(target, lp.package, new)
    report.import_check = _import_check(target, located, new, originals, opts, report, lp)
    report.plan = recovered + report.plan
    report.result = "applied"
    return report


def _text(data: bytes | None) -> str | None:
    return None if data is None else pf.decode(data)


def _change_line(located: Located, rel: str, old: bytes | None, new: bytes | None) -> str:
    path = located.path_of(rel)
    if old is None:
        return f"create {path} ({pf.sha256_bytes(new)[:12]})"
    if new is None:
        return f"delete {path} ({pf.sha256_bytes(old)[:12]})"
    return f"replace {path} ({pf.sha256_bytes(old)[:12]} -> {pf.sha256_bytes(new)[:12]})"


def _apply_image(
    target: ImageTarget, located: Located, lp: Loaded, new: dict, report: PatchReport, opts: Options
) -> PatchReport:
    patch = lp.patch
    tag = opts.tag or target.default_tag(patch.sha256)
    labels = target.labels_for(patch.sha256, lp.package, located.version, list(new))
    report.new_image, report.labels = tag, labels
    report.plan = [
        f"build {tag} from {target.ref} ({target.image_id[:19]})",
        *[
            f"COPY {rel} -> {located.path_of(rel)}" if data is not None else f"DELETE {located.path_of(rel)}"
            for rel, data in new.items()
        ],
        "RUN sha256 check + py_compile of each .py file",
        "LABEL " + ", ".join(f"{k}={v}" for k, v in labels.items() if not k.endswith("files")),
        f"entrypoint {target.entrypoint} and cmd {target.cmd} are kept",
    ]
    if opts.dry_run:
        return report
    existing = target.engine.inspect("image", tag)
    if (
        existing
        and ((existing.get("Config") or {}).get("Labels") or {}).get("org.mlops.patch.sha256") == patch.sha256
        and (existing["Config"]["Labels"].get("org.mlops.patch.base-image-id") == target.image_id)
    ):
        report.result, report.new_image_id = "already-applied", existing["Id"]
        report.plan = [f"{tag} already exists, built from this base with this patch"]
        return report
    if existing:
        report.plan.append(f"{tag} exists now ({existing['Id'][:19]}); the tag will move to the new image")
    _ask(report.plan, f"Build {tag}?", opts)
    if not opts.json_mode:
        info(f"building {tag} ...")
    report.new_image_id = target.build(located, new, labels, tag)
    report.changed_system = True
    derived = target.derived(tag)
    try:
        _verify_written(derived, lp.package, new)
        report.import_check = _import_check(derived, located, new, None, opts, report, lp, base=target)
    except BaseException:
        target.engine.remove_image(tag)
        raise
    report.result = "applied"
    return report


def revert(target: Target, patch_path: Path, opts: Options) -> PatchReport:
    lp, located, assessment, recovered, early = _prepare("revert", target, patch_path, opts)
    if early is not None:
        return early
    if assessment.state != decide.APPLIED:
        if recovered and assessment.state == decide.NOT_APPLIED:
            report = _report("revert", target, lp, located, assessment, "reverted")
            report.plan, report.changed_system = recovered, True
            return report
        result = "conflict" if assessment.state == decide.CONFLICT else "not-applied"
        return _report("revert", target, lp, located, assessment, result)
    report = _report("revert", target, lp, located, assessment, "would-revert")
    originals, sources = {}, []
    backups = backup_dir_for(located.site) if isinstance(target, LocalTarget) else None
    for f in assessment.files:
        ok, data, source = _original_for(f, backups)
        if not ok:
            report.result = "conflict"
            report.problem = (
                f"{f.path}: cannot rebuild the original (no backup, and un-applying does not give {f.sha256_before})"
            )
            return report
        originals[f.path] = data
        sources.append(f"{located.path_of(f.path)} <- {source}")
    report.plan = [f"restore {s}" for s in sources]
    report.dry_run = opts.dry_run
    if opts.dry_run:
        return report
    _ask(report.plan, f"Restore {len(originals)} original file(s) in {target.label}?", opts)
    _write(target, located, originals, "revert", lp)
    report.changed_system = True
    _verify_written(target, lp.package, originals)
    report.plan = recovered + report.plan
    report.result = "reverted"
    return report


def _original_for(f: decide.FileState, backups: Path | None) -> tuple[bool, bytes | None, str]:
    want = f.sha256_before
    if f.kind == pf.CREATE and want is None:
        return True, None, "nothing: the patch created it (it is deleted)"
    if backups is not None and want:
        data = journal.get_blob(backups, want)
        if data is not None:
            return True, data, f"backup {backups / want} (sha256 verified)"
    if f.original_known and (want is None or pf.sha256_of(f.original) == want):
        return True, f.original, "the patch, un-applied (sha256 verified)"
    return False, None, ""


def _ask(plan: list[str], question: str, opts: Options) -> None:
    if not opts.yes and not opts.json_mode:
        from mlops_cli.output import console

        console().print("plan:", markup=False)
        for step in plan:
            console().print(f"  {step}", markup=False, highlight=False)
    if not confirm(question, opts.yes):
        raise OperationFailed("cancelled; nothing was changed")


def _write(target: Target, located: Located, new: dict[str, bytes | None], command: str, lp: Loaded) -> None:
    if isinstance(target, LocalTarget):
        target.compile_check(located, new)
        target.write(located, new, command=command, patch=(str(lp.path), lp.data))
    elif isinstance(target, ContainerTarget):
        target.write(located, new)
    else:  # pragma: no cover - images are built, never written
        raise AssertionError(target)


def _verify_written(target: Target, package: str, new: dict[str, bytes | None]) -> None:
    """Read the files back through the target's interpreter: what is there is what we meant."""
    again = target.locate(package, list(new))
    bad = [rel for rel, data in new.items() if again.files.get(rel) != data]
    if bad:
        raise OperationFailed(
            f"after writing, {shorten_list(bad, 3)} in {target.label} is not what was written",
            hint="something else changed the files at the same time; check with mlops patch status",
        )


def _import_check(
    target: Target,
    located: Located,
    new: dict[str, bytes | None],
    originals: dict | None,
    opts: Options,
    report: PatchReport,
    lp: Loaded,
    base: Target | None = None,
) -> dict | None:
    """The patched modules must import in the target, unless they did not import before either."""
    modules = module_names([rel for rel, data in new.items() if data is not None])
    if not opts.import_check or not modules:
        return {"skipped": True, "modules": modules}
    after = target.imports(modules)
    failed = {m: r for m, r in after.items() if not r.get("ok")}
    if not failed:
        return {"ok": True, "modules": modules}
    if base is not None:
        before = base.imports(modules)
    else:  # restore the originals, ask again, and re-apply only if the patch is not to blame
        _write(target, located, originals, "revert", lp)
        before = target.imports(modules)
    caused = {
        m: r for m, r in failed.items() if before.get(m, {}).get("ok") or before.get(m, {}).get("error") != r["error"]
    }
    if caused:
        name, res = next(iter(caused.items()))
        where = "the new image was removed" if base is not None else "the original files were restored"
        raise OperationFailed(
            f"the patched module {name} does not import in {target.label}: {res['error']}; {where}",
            hint="fix the patch; or skip this check with --no-import-check",
        )
    if base is None:
        _write(target, located, new, "apply", lp)
    errors = "; ".join(f"{m}: {r['error']}" for m, r in failed.items())
    report.warnings.append(f"import check inconclusive: the module did not import before the patch either ({errors})")
    warn(report.warnings[-1])
    return {"ok": None, "modules": modules, "inconclusive": errors}
