"""`mlops patch port`: carry a pinned patch to another release of its package, by three-way merge.

For each file of the patch:

- base: the file the patch was made against (its sha256 is pinned in the header). It comes from
  ``--base`` (the work folder the patch was made in, a folder laid out like site-packages, or
  the old release's wheel), else from mlops's own store of the files `extract`, `diff` and
  `port` have seen on this machine; every candidate is checked against the pin;
- ours: the patch applied to the base (checked against the pinned sha256-after);
- theirs: the file in the new target.

A clean merge becomes a new patch pinned to the new release (``-o``); a merge with conflicts
becomes a work folder (the merged file with standard markers, the new release's file as the
original) that `mlops patch diff` turns into the patch once a person has chosen; a new release
that already holds the change is said so, and no patch is written.
"""

from __future__ import annotations

import ast
import difflib
import hashlib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from mlops_cli import __version__, files
from mlops_cli.errors import MlopsError, OperationFailed, UsageError
from mlops_cli.patch import decide, merge, upstream
from mlops_cli.patch import patchfile as pf
from mlops_cli.patch.ops import Loaded, Options, check_paths, load_patch
from mlops_cli.patch.report import PortReport
from mlops_cli.patch.targets import Located, Target
from mlops_cli.patch.workdir import MANIFEST, ORIGINALS, check_empty_folder, write_workdir
from mlops_cli.text import one_line, shell_join, shorten_list

MAX_FILE = 64 * files.MiB

# Per-file outcomes.
MERGED = "merged"  # the change merged cleanly into the new release's file
UPSTREAM = "upstream-has-it"  # the new release's file already holds the change
CONFLICT = "conflict"  # a person must choose


# --- the store of files seen (the bases of later ports) ---------------------------------


def _store() -> Path:
    return files.cache_dir("patch", "files")


def remember(contents: list[bytes | None]) -> None:
    """Keep these file contents, content-addressed, as bases for a later `port` (best effort: a
    cache that cannot be written costs only a ``--base`` later)."""
    try:
        store = _store()
        for data in contents:
            if data is None:
                continue
            path = store / hashlib.sha256(data).hexdigest()
            if not path.exists():
                files.write_atomic(path, data, what="cached file")
    except (OSError, MlopsError):
        pass


def _recall(sha: str) -> bytes | None:
    try:
        path = _store() / sha
        if not path.is_file():
            return None
        data = files.read_input_bytes(path, what="cached file", max_bytes=MAX_FILE)
    except MlopsError:
        return None
    return data if pf.sha256_bytes(data) == sha else None


class BaseSource:
    """Where the originals a patch was made against are looked for: ``--base`` first, then the store."""

    def __init__(self, base: Path | None):
        self.base = base
        self.kind = None
        if base is None:
            return
        if not base.exists():
            raise UsageError(
                f"--base {files.show_path(base)} does not exist",
                hint="the work folder the patch was made in, a folder like site-packages, or a .whl",
            )
        if base.is_file():
            if not zipfile.is_zipfile(base):
                raise UsageError(f"--base {files.show_path(base)} is a file but not a wheel (.whl)")
            self.kind = "wheel"
        else:
            self.kind = "workdir" if (base / MANIFEST).is_file() else "folder"

    def get(self, rel: str, sha: str) -> tuple[bytes | None, str]:
        """The bytes of ``rel`` whose sha256 is ``sha``, and where they came from."""
        data, where = self._from_base(rel)
        if data is not None and pf.sha256_bytes(data) == sha:
            return data, where
        cached = _recall(sha)
        if cached is not None:
            return cached, "mlops's store of files seen on this machine"
        return None, where if data is not None else ""

    def _from_base(self, rel: str) -> tuple[bytes | None, str]:
        if self.base is None:
            return None, ""
        try:
            if self.kind == "wheel":
                with zipfile.ZipFile(self.base) as zf:
                    try:
                        info = zf.getinfo(rel)
                    except KeyError:
                        return None, ""
                    if info.file_size > MAX_FILE:
                        return None, ""
                    return zf.read(info), f"{self.base.name}"
            folder = self.base / ORIGINALS if self.kind == "workdir" else self.base
            path = files.safe_join(folder, rel, what="file in --base")
            if not path.is_file():
                return None, ""
            return files.read_input_bytes(path, what="base file", max_bytes=MAX_FILE), files.show_path(path)
        except (OSError, zipfile.BadZipFile) as exc:
            raise UsageError(f"cannot read --base {files.show_path(self.base)}: {one_line(exc)}") from None


# --- per-file merge -----------------------------------------------------------------------


@dataclass
class FilePort:
    path: str
    outcome: str  # merged | upstream-has-it | conflict
    base: bytes | None
    ours: bytes | None
    theirs: bytes | None
    result: bytes | None = None  # the new "after" (merged, clean) or the working copy (conflict)
    conflicts: int = 0
    reason: str | None = None
    hunks: list[dict] = field(default_factory=list)
    moved: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "path": self.path,
            "outcome": self.outcome,
            "conflicts": self.conflicts,
            "reason": self.reason,
            "sha256_base": pf.sha256_of(self.base),
            "sha256_theirs": pf.sha256_of(self.theirs),
            "sha256_result": pf.sha256_of(self.result),
            "hunks": self.hunks,
            "moved": self.moved,
        }


def _text(data: bytes | None) -> str:
    return pf.decode(data or b"")


def _utf8(data: bytes | None) -> bool:
    try:
        (data or b"").decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def merge_file(
    rel: str,
    base: bytes | None,
    ours: bytes | None,
    theirs: bytes | None,
    labels: tuple[str, str, str],
    tool: str | None = None,
) -> FilePort:
    """The outcome for one file. None = the file does not exist on that side."""
    if theirs == ours:
        return FilePort(rel, UPSTREAM, base, ours, theirs, result=theirs)
    if theirs == base:
        return FilePort(rel, MERGED, base, ours, theirs, result=ours)
    if ours is None:
        if theirs is None:
            return FilePort(rel, UPSTREAM, base, ours, theirs, result=None)
        return FilePort(
            rel,
            CONFLICT,
            base,
            ours,
            theirs,
            result=theirs,
            conflicts=1,
            reason="the patch deletes this file, and the new release changed it: delete the working "
            "copy to keep the deletion, or keep it",
        )
    if theirs is None:
        return FilePort(
            rel,
            CONFLICT,
            base,
            ours,
            theirs,
            result=None,
            conflicts=1,
            reason="the new release no longer has this file (removed or moved upstream)",
        )
    if not (_utf8(base) and _utf8(ours) and _utf8(theirs)):
        return FilePort(
            rel,
            CONFLICT,
            base,
            ours,
            theirs,
            result=theirs,
            conflicts=1,
            reason="not UTF-8 text, so it cannot be merged line by line; edit it by hand",
        )
    merged = merge.three_way(_text(base), _text(ours), _text(theirs), labels, tool)
    text, conflicts, held = merged.text, merged.conflicts, 0
    if conflicts:  # regions the new release already holds (upstream's fix, extended) are taken from it
        resolved = upstream.resolve(text, merge.markers(labels))
        if resolved is not None and resolved.held:
            text, conflicts, held = resolved.text, resolved.conflicts, resolved.held
    data = pf.encode(text)
    also = (
        (
            f"; {held} more region(s) the new release already holds, with more changes of its own on the same "
            "lines, were taken from it"
        )
        if held
        else ""
    )
    if conflicts:
        return FilePort(
            rel,
            CONFLICT,
            base,
            ours,
            theirs,
            result=data,
            conflicts=conflicts,
            reason=f"{conflicts} conflicting region(s): the new release changed the same lines{also}",
        )
    if data == theirs:
        return FilePort(
            rel,
            UPSTREAM,
            base,
            ours,
            theirs,
            result=theirs,
            reason=(
                f"the new release has the change in {held} region(s) where it also changed the same "
                "lines further: review its version there"
            )
            if held
            else None,
        )
    if rel.endswith(".py"):
        try:
            ast.parse(data, filename=rel)
        except (SyntaxError, ValueError) as exc:
            return FilePort(
                rel,
                CONFLICT,
                base,
                ours,
                theirs,
                result=data,
                conflicts=1,
                reason=f"it merged cleanly but does not parse (line {getattr(exc, 'lineno', '?')}: "
                f"{one_line(getattr(exc, 'msg', exc))})",
            )
    return FilePort(
        rel,
        MERGED,
        base,
        ours,
        theirs,
        result=data,
        reason=(
            f"{held} region(s) of the change the new release already holds (with more changes of its "
            "own on the same lines) were taken from it; the rest merged"
        )
        if held
        else None,
    )


def line_map(base: str, theirs: str):
    """A function from a line number in ``base`` to the line it became in ``theirs``."""
    a, b = pf.split_lines(base), pf.split_lines(theirs)
    blocks = difflib.SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks()

    def where(line: int) -> int:
        index = max(line - 1, 0)
        best = index
        for start_a, start_b, size in blocks:
            if start_a <= index < start_a + size:
                return index - start_a + start_b + 1
            if start_a + size <= index:
                best = index - (start_a + size) + start_b + size
        return best + 1

    return where


def hunk_moves(diff: pf.FileDiff, base: bytes | None, theirs: bytes | None) -> list[dict]:
    """Where each hunk of the old patch lands in the new release's file."""
    if base is None or theirs is None:
        return []
    where = line_map(_text(base), _text(theirs))
    moves = []
    for number, hunk in enumerate(diff.hunks, 1):
        first = hunk.old_start if hunk.old_lines else hunk.old_start + 1
        new = where(first)
        moves.append({"hunk": number, "old_line": first, "new_line": new, "offset": new - first})
    return moves


# --- moved code -----------------------------------------------------------------------------


def _definitions(text: str) -> dict[str, tuple[int, int]]:
    """Qualified name -> (first line, last line) of every function and class in ``text``."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return {}
    found: dict[str, tuple[int, int]] = {}

    def walk(node, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                found[name] = (child.lineno, getattr(child, "end_lineno", child.lineno) or child.lineno)
                walk(child, name + ".")

    walk(tree, "")
    return found


def enclosing(diff: pf.FileDiff, base: bytes | None) -> list[str]:
    """The innermost functions/classes of the base that the patch's hunks change."""
    defs = _definitions(_text(base))
    names = []
    for hunk in diff.hunks:
        lines = range(hunk.old_start, hunk.old_start + max(len(hunk.old_lines), 1))
        inner = [
            (end - start, name) for name, (start, end) in defs.items() if any(start <= line <= end for line in lines)
        ]
        if inner:
            name = min(inner)[1]
            if name not in names:
                names.append(name)
    return names


def moved_code(diff: pf.FileDiff, fp: FilePort) -> tuple[list[str], list[str]]:
    """Functions the patch changes that are not where they were in the new release (another
    class, or gone from the file). Returns (notes, simple names to look for in the package)."""
    if not diff.path.endswith(".py") or fp.base is None:
        return [], []
    theirs_defs = _definitions(_text(fp.theirs)) if fp.theirs is not None else {}
    notes, lost = [], []
    for qualified in enclosing(diff, fp.base):
        if qualified in theirs_defs:
            continue
        simple = qualified.rsplit(".", 1)[-1]
        elsewhere = [name for name in theirs_defs if name.rsplit(".", 1)[-1] == simple]
        if elsewhere:
            notes.append(f"{qualified} is now {elsewhere[0]} (line {theirs_defs[elsewhere[0]][0]} of {diff.path})")
        else:
            lost.append(simple)
            notes.append(f"{qualified} is no longer in {diff.path}")
    return notes, lost


# --- the command ----------------------------------------------------------------------------


def default_output(patch_path: Path, version: str) -> Path:
    stem = patch_path.name[:-6] if patch_path.name.endswith(".patch") else patch_path.stem
    return patch_path.with_name(f"{stem}-{version}.patch")


def port(
    target: Target, patch_path: Path, output: Path | None, base: Path | None, work: Path | None, opts: Options
) -> PortReport:
    lp = load_patch(patch_path, opts.package)
    header = lp.patch.header
    if header is None:
        raise UsageError(
            f"{files.show_path(patch_path)} has no mlops header: port needs the pinned original",
            hint="make the patch with `mlops patch diff`, or apply the plain diff with --package",
        )
    source = BaseSource(base)
    if output is not None:
        files.check_writable(output, what="new patch")
    if work is not None:
        check_empty_folder(work)
    tool = merge.available_tool()
    located = target.locate(lp.package, lp.patch.paths)
    check_paths(target, lp.package, located, lp.patch.paths)
    new_version = located.version
    if not new_version:
        raise OperationFailed(
            f"{target.label} reports no {lp.package} version, so a ported patch cannot be pinned",
            hint="the package has no distribution metadata and no __version__ there",
        )
    report = PortReport(
        target=target.describe(),
        package=lp.package,
        old_version=header.version,
        new_version=new_version,
        patch={"path": str(lp.path), "sha256": lp.patch.sha256},
        tool=tool,
    )
    assessment = decide.assess(lp.patch, new_version, located.files)
    if assessment.state in (decide.NOT_APPLIED, decide.APPLIED):
        report.result = "unchanged"
        report.notes.append(f"the patch fits {target.label} as it is ({assessment.state}): nothing to port")
        return report
    bases, missing, where = _bases(lp, source)
    if missing:
        rel, sha = missing[0]
        wheel = f"{lp.package}=={header.version}"
        raise UsageError(
            f"the original {rel} of {lp.package} {header.version} (sha256 {sha[:12]}) is not here to merge against"
            + (f" ({len(missing) - 1} more)" if len(missing) > 1 else ""),
            hint=f"give --base: the work folder the patch was made in, or the release's wheel "
            f"(pip download --no-deps '{wheel}' -d . then --base THE.whl)",
        )
    labels = (
        f"{lp.path.name} (patched {header.version})",
        f"{lp.package} {header.version}",
        f"{lp.package} {new_version}",
    )
    ports = []
    for diff in lp.patch.files:
        rel, base_data = diff.path, bases[diff.path]
        try:
            ours = pf.apply_content(diff, base_data)
        except pf.HunkMismatch:
            raise UsageError(
                f"corrupt patch {files.show_path(lp.path)}: {rel} does not apply to its pinned original",
                hint="the diff was edited after `mlops patch diff` wrote it",
            ) from None
        if pf.sha256_of(ours) != header.pin_for(rel).sha256_after:
            raise UsageError(f"corrupt patch {files.show_path(lp.path)}: {rel}: {decide.INCONSISTENT}")
        fp = merge_file(rel, base_data, ours, located.files.get(rel), labels, tool)
        fp.hunks = hunk_moves(diff, base_data, fp.theirs)
        if fp.outcome == MERGED:  # code that moved and merged cleanly: say where it went, for the review
            fp.moved = moved_code(diff, fp)[0]
        ports.append((diff, fp))
    report.files = [fp for _, fp in ports]
    report.base_sources = where
    conflicts = [fp for _, fp in ports if fp.outcome == CONFLICT]
    if conflicts:
        return _conflict(target, lp, located, ports, report, work, output)
    changes = [(fp.path, fp.theirs, fp.result) for _, fp in ports if fp.outcome == MERGED]
    if not changes:
        report.result = "upstream-fixed"
        return report
    notes = [
        f"ported-from: {lp.path.name} ({lp.package} {header.version}, sha256 {lp.patch.sha256[:12]})",
        f"made-from: {target.describe().get('kind')} {target.describe().get('ref')}",
        f"made-by: mlops {__version__}",
        "apply: mlops patch apply THIS.patch --image IMAGE | --container NAME | --python PATH",
    ]
    data = pf.make_patch(lp.package, new_version, changes, notes)
    new_patch = pf.parse(data)
    check = decide.assess(new_patch, new_version, located.files)
    if check.state != decide.NOT_APPLIED:  # pragma: no cover - what we make must apply to what we made it from
        raise OperationFailed(
            f"internal check failed: the ported patch does not apply to {target.label}: {check.problem}"
        )
    output = output or default_output(lp.path, new_version)
    files.check_writable(output, what="new patch")
    files.write_atomic(output, data, what="new patch")
    remember([fp.theirs for _, fp in ports] + [fp.result for _, fp in ports])
    report.result = "ported"
    report.output = {"path": str(output), "sha256": pf.sha256_bytes(data), "version": new_version}
    report.new_hunks = {f.path: [h.old_start for h in f.hunks] for f in new_patch.files}
    return report


def _bases(lp: Loaded, source: BaseSource) -> tuple[dict[str, bytes | None], list[tuple[str, str]], dict[str, str]]:
    bases: dict[str, bytes | None] = {}
    missing, where = [], {}
    for pin in lp.patch.header.pins:
        if pin.sha256_before is None:
            bases[pin.path] = None
            where[pin.path] = "created by the patch"
            continue
        data, src = source.get(pin.path, pin.sha256_before)
        if data is None:
            missing.append((pin.path, pin.sha256_before))
        else:
            bases[pin.path], where[pin.path] = data, src
    return bases, missing, where


def _conflict(
    target: Target,
    lp: Loaded,
    located: Located,
    ports: list,
    report: PortReport,
    work: Path | None,
    output: Path | None,
) -> PortReport:
    """Write the work folder a person finishes with `mlops patch diff`."""
    report.result = "conflict"
    out = output or default_output(lp.path, report.new_version)
    work = work or out.with_name(out.name[:-6] + ".work" if out.name.endswith(".patch") else out.name + ".work")
    check_empty_folder(work)
    entries = []
    lost: list[str] = []
    lost_in: dict[str, list[str]] = {}
    for diff, fp in ports:
        entries.append((fp.path, fp.theirs, fp.result))
        if fp.outcome == CONFLICT:
            notes, names = moved_code(diff, fp)
            fp.moved, lost_in[fp.path] = notes, names
            lost += [n for n in names if n not in lost]
    extra_paths: list[str] = []
    if lost:
        found = target.agent(
            "find", {"package": lp.package, "names": lost[:10]}, what=f"looking for moved code in {target.label}"
        ).get("found", {})
        have = {fp.path for _, fp in ports}
        for diff, fp in ports:
            folder = diff.path.rsplit("/", 1)[0] + "/"
            for name in lost_in.get(fp.path, []):
                places = [p for p in found.get(name, []) if p not in have]
                # A sibling module is where moved code usually goes (and is copied for the edit).
                near = [p for p in places if p.startswith(folder) and "/" not in p[len(folder) :]]
                far = [p for p in places if p not in near]
                if near:
                    fp.moved.append(f"{name} is now defined in {shorten_list(near, 3)} (copied into the work folder)")
                    extra_paths += [p for p in near[:3] if p not in extra_paths]
                if far:
                    fp.moved.append(f"{name} is also defined in {shorten_list(far, 3)}")
    if extra_paths:
        more = target.locate(lp.package, extra_paths)
        check_paths(target, lp.package, more, extra_paths)
        entries += [(p, more.files[p], more.files[p]) for p in extra_paths if more.files.get(p) is not None]
    extra = {"ported_from": f"{lp.path.name} ({lp.package} {report.old_version}, sha256 {lp.patch.sha256[:12]})"}
    write_workdir(work, lp.package, report.new_version, located.site, located.python, target.describe(), entries, extra)
    report.work = str(work)
    report.finish = shell_join(["mlops", "patch", "diff", str(work), "-o", str(out)])
    return report
