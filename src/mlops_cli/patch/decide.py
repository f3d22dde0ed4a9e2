"""What a patch means for one target: applied, not applied, or conflict. PURE.

Inputs are plain data (the parsed patch, the target's package version, the bytes of each
file as the target has them); the output says, per file and overall, what state the target
is in and what the patched (or restored) bytes are. Nothing here runs a program or reads a
file, so every rule below is tested directly.

Rules (specs/patch.md):
- A pinned patch: the target's version must equal the pinned version and each file's sha256
  must be the pinned "before" (-> not applied) or "after" (-> applied). Anything else is a
  conflict naming both. With ``allow_other_version`` a file that differs from the pin is
  accepted when the hunks match exactly, with a warning.
- An unpinned diff (no header): forward match -> not applied; reverse match -> applied;
  neither -> conflict. Never "assume reversed": a file counts as applied only when the
  reverse hunks match and the forward ones do not.
- Overall: all applied -> applied; all not applied -> not applied; any conflict or a mix
  -> conflict (a partial state is refused, nothing changes).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mlops_cli.patch import patchfile as pf
from mlops_cli.text import shorten_list

APPLIED = "applied"
NOT_APPLIED = "not-applied"
CONFLICT = "conflict"
# The file is exactly the pinned original, yet the hunks do not produce the pinned result:
# the patch contradicts its own header (edited by hand, or damaged).
INCONSISTENT = "the file matches the pinned original but the diff does not give the pinned result"


@dataclass(frozen=True)
class FileState:
    path: str
    state: str  # applied | not-applied | conflict
    sha256_current: str | None
    sha256_before: str | None  # the pin, or what un-applying gives (None: absent, or unknown in a conflict)
    sha256_after: str | None  # the pin, or what applying gives
    reason: str | None = None
    kind: str = pf.MODIFY  # modify | create | delete
    # Bytes after applying (not-applied files; None = the patch deletes the file) and after
    # un-applying (applied files; None = the patch created it). Meaningful only when *_known.
    patched: bytes | None = field(default=None, repr=False)
    original: bytes | None = field(default=None, repr=False)
    patched_known: bool = False
    original_known: bool = False

    def to_json(self) -> dict:
        return {
            "path": self.path,
            "state": self.state,
            "sha256_current": self.sha256_current,
            "sha256_before": self.sha256_before,
            "sha256_after": self.sha256_after,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Assessment:
    state: str
    files: tuple[FileState, ...]
    version_mismatch: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def problem(self) -> str | None:
        """One line for the error message, when in conflict (a long list is shortened)."""
        if self.state != CONFLICT:
            return None
        if self.version_mismatch:
            return self.version_mismatch
        bad = [f for f in self.files if f.state == CONFLICT]
        if bad:
            first = f"{bad[0].path}: {bad[0].reason}"
            return (
                first
                if len(bad) == 1
                else f"{first}; {len(bad) - 1} more file(s) in conflict: " + shorten_list([f.path for f in bad[1:]], 5)
            )
        applied = [f.path for f in self.files if f.state == APPLIED]
        missing = [f.path for f in self.files if f.state == NOT_APPLIED]
        return (
            f"partially applied ({len(applied)} of {len(self.files)} files patched: {shorten_list(applied, 3)}; "
            f"not patched: {shorten_list(missing, 3)}); refusing to change a half-patched target"
        )


def assess(
    patch: pf.Patch, target_version: str | None, current: dict[str, bytes | None], allow_other_version: bool = False
) -> Assessment:
    warnings: list[str] = []
    version_mismatch = None
    header = patch.header
    if header is None:
        warnings.append(
            "this patch has no mlops header: nothing pins it to a package version or file hash; "
            "it is applied only where its hunks match exactly"
        )
    elif target_version != header.version:
        have = target_version or "an unknown version"
        message = f"patch is for {header.package} {header.version}, the target has {header.package} {have}"
        if allow_other_version:
            warnings.append(
                message + "; applying anyway because the override was given, only where every hunk matches exactly"
            )
        else:
            version_mismatch = message
    files = []
    for diff in patch.files:
        pin = header.pin_for(diff.path) if header else None
        files.append(_assess_file(diff, pin, current.get(diff.path), allow_other_version or header is None, warnings))
    if version_mismatch:
        return Assessment(CONFLICT, tuple(files), version_mismatch, tuple(warnings))
    states = {f.state for f in files}
    state = states.pop() if len(states) == 1 else CONFLICT
    return Assessment(state, tuple(files), None, tuple(warnings))


_MISMATCH = object()


def _state(diff, state, current, before, after, reason=None, **kw) -> FileState:
    return FileState(diff.path, state, current, before, after, reason, diff.kind, **kw)


def _assess_file(
    diff: pf.FileDiff, pin: pf.FilePin | None, data: bytes | None, match_context: bool, warnings: list[str]
) -> FileState:
    before = pin.sha256_before if pin else None
    after = pin.sha256_after if pin else None
    current = pf.sha256_of(data)
    if pin is not None:
        if current == after:  # (None == None: a deleted file that is gone)
            back = _try(diff, data, True)
            if back is _MISMATCH or pf.sha256_of(back) != before:
                back = _MISMATCH
            return _state(
                diff,
                APPLIED,
                current,
                before,
                after,
                original=None if back is _MISMATCH else back,
                original_known=back is not _MISMATCH,
            )
        if current == before:
            patched = _try(diff, data, False)
            if patched is _MISMATCH or pf.sha256_of(patched) != after:
                return _state(diff, CONFLICT, current, before, after, INCONSISTENT)
            return _state(diff, NOT_APPLIED, current, before, after, patched=patched, patched_known=True)
        if data is None:
            return _state(diff, CONFLICT, None, before, after, "file not found in the target")
        if not match_context:
            return _state(
                diff,
                CONFLICT,
                current,
                before,
                after,
                f"sha256 {current[:12]} matches neither the pinned original {_short(before)} "
                f"nor the patched {_short(after)}",
            )
    forward = _try(diff, data, False)
    backward = _try(diff, data, True)
    if forward is not _MISMATCH and backward is _MISMATCH:
        if pin is not None:
            warnings.append(
                f"{diff.path}: sha256 differs from the pin; the hunks match exactly, so it is patched anyway"
            )
        return _state(diff, NOT_APPLIED, current, current, pf.sha256_of(forward), patched=forward, patched_known=True)
    if backward is not _MISMATCH and forward is _MISMATCH:
        return _state(diff, APPLIED, current, pf.sha256_of(backward), current, original=backward, original_known=True)
    if data is None and diff.kind == pf.MODIFY:
        return _state(diff, CONFLICT, None, before, after, "file not found in the target")
    if forward is not _MISMATCH:
        return _state(
            diff, CONFLICT, current, before, after, "the hunks match both ways (ambiguous); refusing to guess"
        )
    return _state(diff, CONFLICT, current, before, after, "the hunks match neither the original nor the patched text")


def _short(sha: str | None) -> str:
    return sha[:12] if sha else pf.ABSENT


def _try(diff: pf.FileDiff, data: bytes | None, reverse: bool):
    try:
        return pf.apply_content(diff, data, reverse=reverse)
    except pf.HunkMismatch:
        return _MISMATCH


def foreign_paths(package: str, paths: list[str], owner: dict | None) -> list[tuple[str, str]]:
    """Paths a patch pinned to ``package`` may not touch (P2), with the reason. A path is the
    package's when its installed RECORD lists it, or when it lies under one of its top-level
    packages; a ``.pth`` file in site-packages itself (run at every Python start-up) only when the
    RECORD lists it."""
    tops = set(owner.get("top_level") or []) if owner else set()
    tops.add(package)
    record = set(owner.get("in_record") or []) if owner else set()
    where = f"{owner['dist']}/RECORD" if owner else "no installed distribution found"
    bad = []
    for path in paths:
        if path in record:
            continue
        first = path.split("/", 1)[0]
        if "/" not in path and path.endswith(".pth"):
            bad.append((path, f"a .pth file (run at every Python start-up) that {package} does not own ({where})"))
        elif ("/" in path and first in tops) or ("/" not in path and path.endswith(".py") and path[:-3] in tops):
            continue
        else:
            bad.append(
                (
                    path,
                    f"not part of {package} (not in {where}, not under its top-level packages: "
                    f"{', '.join(sorted(tops))})",
                )
            )
    return bad
