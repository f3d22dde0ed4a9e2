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
    sha256_before: str | None  # the pin, or what un-applying gives
    sha256_after: str | None  # the pin, or what applying gives
    reason: str | None = None
    patched: bytes | None = field(default=None, repr=False)  # bytes after applying (not-applied files)
    original: bytes | None = field(default=None, repr=False)  # bytes after un-applying (applied files)

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
        """One line for the error message, when in conflict."""
        if self.state != CONFLICT:
            return None
        if self.version_mismatch:
            return self.version_mismatch
        bad = [f for f in self.files if f.state == CONFLICT]
        if bad:
            return "; ".join(f"{f.path}: {f.reason}" for f in bad)
        states = ", ".join(f"{f.path} {f.state}" for f in self.files)
        return f"partially applied ({states}); refusing to change a half-patched target"


def assess(patch: pf.Patch, target_version: str | None, current: dict[str, bytes | None],
           allow_other_version: bool = False) -> Assessment:
    warnings: list[str] = []
    version_mismatch = None
    header = patch.header
    if header is None:
        warnings.append("this patch has no mlops header: nothing pins it to a package version or file hash; "
                        "it is applied only where its hunks match exactly")
    elif target_version != header.version:
        have = target_version or "an unknown version"
        message = f"patch is for {header.package} {header.version}, the target has {header.package} {have}"
        if allow_other_version:
            warnings.append(message + "; applying anyway because the override was given, only where every hunk matches exactly")
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


def _assess_file(diff: pf.FileDiff, pin: pf.FilePin | None, data: bytes | None, match_context: bool,
                 warnings: list[str]) -> FileState:
    before = pin.sha256_before if pin else None
    after = pin.sha256_after if pin else None
    if data is None:
        return FileState(diff.path, CONFLICT, None, before, after, "file not found in the target")
    current = pf.sha256_bytes(data)
    text = pf.decode(data)
    if pin is not None:
        if current == pin.sha256_after:
            return FileState(diff.path, APPLIED, current, before, after, original=_try(diff, text, True))
        if current == pin.sha256_before:
            patched = _try(diff, text, False)
            if patched is None or pf.sha256_bytes(patched) != pin.sha256_after:
                return FileState(diff.path, CONFLICT, current, before, after, INCONSISTENT)
            return FileState(diff.path, NOT_APPLIED, current, before, after, patched=patched)
        if not match_context:
            return FileState(diff.path, CONFLICT, current, before, after,
                             f"sha256 {current[:12]} matches neither the pinned original {before[:12]} nor the patched {after[:12]}")
    forward = _try(diff, text, False)
    backward = _try(diff, text, True)
    if forward is not None and backward is None:
        if pin is not None:
            warnings.append(f"{diff.path}: sha256 differs from the pin; the hunks match exactly, so it is patched anyway")
        return FileState(diff.path, NOT_APPLIED, current, current, pf.sha256_bytes(forward), patched=forward)
    if backward is not None and forward is None:
        return FileState(diff.path, APPLIED, current, pf.sha256_bytes(backward), current, original=backward)
    if forward is not None:
        return FileState(diff.path, CONFLICT, current, before, after,
                         "the hunks match both ways (ambiguous); refusing to guess")
    return FileState(diff.path, CONFLICT, current, before, after,
                     "the hunks match neither the original nor the patched text")


def _try(diff: pf.FileDiff, text: str, reverse: bool) -> bytes | None:
    try:
        return pf.encode(pf.apply(diff, text, reverse=reverse))
    except pf.HunkMismatch:
        return None
