"""The patch file: a unified diff with a pinning header. Format, parse, make, apply. PURE.

A pinned patch looks like this (the header is comment lines before the first ``---``,
which GNU ``patch -p1`` and ``git apply`` both skip, so the file stays a usable diff)::

    # mlops-patch 1
    # package: transformers
    # version: 5.20.2
    # file: transformers/models/qwen2_5_vl/modeling_qwen2_5_vl.py
    #   sha256-before: 8ca7f8ac...
    #   sha256-after: cc6fd330...
    --- a/transformers/models/qwen2_5_vl/modeling_qwen2_5_vl.py
    +++ b/transformers/models/qwen2_5_vl/modeling_qwen2_5_vl.py
    @@ -1044,7 +1044,10 @@
    ...

A file the patch creates is ``--- /dev/null`` with ``sha256-before: absent``; a file it deletes
is ``+++ /dev/null`` with ``sha256-after: absent`` (real upstream fixes add modules).

Paths are relative to the folder that holds the package (site-/dist-packages), ``-p1``.
Hunks apply at their exact line numbers, with no offset and no fuzz: the sha256 pin is what
ties a patch to one file, and a near match elsewhere is a conflict, never a guess.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass, field

from mlops_cli.text import one_line, shorten_list

HEADER_MAGIC = "# mlops-patch 1"
_GIT_EXTENDED = ("new mode", "old mode", "new file mode", "deleted file mode")
NO_NEWLINE = "\\ No newline at end of file"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HUNK = re.compile(r"@@ -(\d{1,9})(?:,(\d{1,9}))? \+(\d{1,9})(?:,(\d{1,9}))? @@")
_PATH_OK = re.compile(r"[A-Za-z0-9_.\-/]+")
# An import name: what `package:` and --package give (find_spec is asked about it in the target).
_PACKAGE_OK = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# A version as packaging writes it, or anything a __version__ could hold that is one printable word.
_VERSION_OK = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+!_\-]{0,99}")
ABSENT = "absent"  # the sha256 pin of a file that does not exist (before a create, after a delete)
MODIFY, CREATE, DELETE = "modify", "create", "delete"


class PatchFormatError(ValueError):
    """The patch text is not a valid (pinned) unified diff."""


class HunkMismatch(ValueError):
    """A hunk does not match the text at its exact position."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_of(data: bytes | None) -> str | None:
    """The sha256 of a file's bytes; None for a file that does not exist."""
    return None if data is None else sha256_bytes(data)


def valid_package(name: str) -> bool:
    return bool(_PACKAGE_OK.fullmatch(name or ""))


def valid_version(version: str) -> bool:
    return bool(_VERSION_OK.fullmatch(version or ""))


@dataclass(frozen=True)
class FilePin:
    path: str
    sha256_before: str | None  # None: the patch creates the file
    sha256_after: str | None  # None: the patch deletes the file


@dataclass(frozen=True)
class Header:
    package: str
    version: str
    pins: tuple[FilePin, ...]
    extra: tuple[tuple[str, str], ...] = ()

    def pin_for(self, path: str) -> FilePin | None:
        return next((p for p in self.pins if p.path == path), None)


@dataclass(frozen=True)
class Hunk:
    old_start: int
    old_lines: tuple[str, ...]  # each with its line ending, as in the file
    new_start: int
    new_lines: tuple[str, ...]
    # (tag, line) in diff order, tag one of ' ', '-', '+'
    body: tuple[tuple[str, str], ...] = field(repr=False, default=())


@dataclass(frozen=True)
class FileDiff:
    path: str
    hunks: tuple[Hunk, ...]
    kind: str = MODIFY  # modify | create | delete


@dataclass(frozen=True)
class Patch:
    header: Header | None
    files: tuple[FileDiff, ...]
    sha256: str  # of the whole patch file's bytes

    @property
    def pinned(self) -> bool:
        return self.header is not None

    @property
    def paths(self) -> list[str]:
        return [f.path for f in self.files]

    @property
    def package(self) -> str | None:
        return self.header.package if self.header else None


# --- lines ----------------------------------------------------------------------


def split_lines(text: str) -> list[str]:
    """Lines with their endings; only '\\n' ends a line (unlike str.splitlines)."""
    if not text:
        return []
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def decode(data: bytes) -> str:
    return data.decode("utf-8", errors="surrogateescape")


def encode(text: str) -> bytes:
    return text.encode("utf-8", errors="surrogateescape")


# --- parsing --------------------------------------------------------------------


def parse(data: bytes) -> Patch:
    """Parse a patch file; raise PatchFormatError with the line at fault."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PatchFormatError(f"not UTF-8 text (byte {exc.start})") from None
    lines = split_lines(text)
    first_diff = next((i for i, ln in enumerate(lines) if ln.startswith("--- ")), None)
    if first_diff is None:
        raise PatchFormatError("no unified diff found (no '--- a/...' line)")
    header = _parse_header(lines[:first_diff])
    files = _parse_diff(lines, first_diff)
    if header is not None:
        diff_paths = [f.path for f in files]
        pin_paths = [p.path for p in header.pins]
        if sorted(diff_paths) != sorted(pin_paths):
            raise PatchFormatError(
                f"header pins {shorten_list(pin_paths) or 'no file'} but the diff changes {shorten_list(diff_paths)}"
            )
        for f in files:
            pin = header.pin_for(f.path)
            if (pin.sha256_before is None) != (f.kind == CREATE) or (pin.sha256_after is None) != (f.kind == DELETE):
                raise PatchFormatError(f"{f.path}: the header's 'absent' pins do not match the diff ({f.kind})")
    return Patch(header=header, files=tuple(files), sha256=sha256_bytes(data))


def _parse_header(lines: list[str]) -> Header | None:
    comment = [ln.rstrip("\n").rstrip("\r") for ln in lines if ln.startswith("#")]
    if not comment or comment[0].strip() != HEADER_MAGIC:
        if any(ln.startswith("# mlops-patch") for ln in comment):
            raise PatchFormatError(f"unknown header version: {comment[0]!r} (this mlops reads '{HEADER_MAGIC}')")
        return None
    fields: dict[str, str] = {}
    pins: list[FilePin] = []
    current: dict[str, str] | None = None
    extra: list[tuple[str, str]] = []

    def close() -> None:
        if current is None:
            return
        for key in ("sha256-before", "sha256-after"):
            value = current.get(key, "")
            if not (_HEX64.fullmatch(value) or value == ABSENT):
                raise PatchFormatError(f"header: file {current['path']} has no valid {key}")
        before, after = current["sha256-before"], current["sha256-after"]
        if before == ABSENT and after == ABSENT:
            raise PatchFormatError(f"header: file {current['path']} is absent both before and after")
        if any(p.path == current["path"] for p in pins):
            raise PatchFormatError(f"header: file {current['path']} is pinned twice")
        pins.append(FilePin(current["path"], None if before == ABSENT else before, None if after == ABSENT else after))

    for ln in comment[1:]:
        body = ln[1:]
        if not body.strip():
            continue
        key, sep, value = body.strip().partition(":")
        if not sep:
            continue  # free text: a note for people
        key, value = key.strip().lower(), value.strip()
        if body.startswith("   ") and current is not None and key.startswith("sha256-"):
            current[key] = value
        elif key == "file":
            close()
            _check_path(value)
            current = {"path": value}
        elif key in ("package", "version"):
            fields[key] = value
        else:
            extra.append((key, value))
    close()
    for key in ("package", "version"):
        if not fields.get(key):
            raise PatchFormatError(f"header has no '{key}:' line")
    if not valid_package(fields["package"]):
        raise PatchFormatError(f"header: {fields['package'][:60]!r} is not a package (import) name")
    if not valid_version(fields["version"]):
        raise PatchFormatError(f"header: {fields['version'][:60]!r} is not a version")
    if not pins:
        raise PatchFormatError("header pins no file ('# file:' with sha256-before/after)")
    return Header(fields["package"], fields["version"], tuple(pins), tuple(extra))


def _check_path(path: str) -> None:
    if not _PATH_OK.fullmatch(path) or len(path) > 1024 or any(part in ("", ".", "..") for part in path.split("/")):
        raise PatchFormatError(f"unsafe or unsupported file path in patch: {one_line(path)[:120]!r}")


def check_path(path: str) -> None:
    """Raise PatchFormatError unless ``path`` is a plain relative path (no '..', no odd characters)."""
    _check_path(path)


def _strip_prefix(raw: str, prefix: str) -> str | None:
    path = raw.split("\t")[0].strip()
    if path == "/dev/null":
        return None
    if path.startswith(prefix):
        path = path[len(prefix) :]
    _check_path(path)
    return path


def _parse_diff(lines: list[str], i: int) -> list[FileDiff]:
    files: list[FileDiff] = []
    n = len(lines)
    while i < n:
        line = lines[i].rstrip("\n")
        if not line.strip() or line.startswith(("diff ", "index ", "#")) or line.startswith(_GIT_EXTENDED):
            i += 1
            continue
        if line.startswith(("rename ", "copy ", "similarity ", "dissimilarity ", "Binary files ", "GIT binary patch")):
            raise PatchFormatError(f"line {i + 1}: renames, copies and binary diffs are not supported ({line[:60]!r})")
        if not line.startswith("--- "):
            raise PatchFormatError(f"line {i + 1}: expected '--- a/FILE', got {line[:60]!r}")
        if i + 1 >= n or not lines[i + 1].startswith("+++ "):
            raise PatchFormatError(f"line {i + 2}: expected '+++ b/FILE' after '---'")
        old_path = _strip_prefix(line[4:], "a/")
        new_path = _strip_prefix(lines[i + 1].rstrip("\n")[4:], "b/")
        if old_path is None and new_path is None:
            raise PatchFormatError(f"line {i + 1}: both sides are /dev/null")
        kind = CREATE if old_path is None else DELETE if new_path is None else MODIFY
        path = old_path or new_path
        if kind == MODIFY and old_path != new_path:
            raise PatchFormatError(f"line {i + 1}: renames are not supported ({old_path} -> {new_path})")
        if any(f.path == path for f in files):
            raise PatchFormatError(f"line {i + 1}: {path} appears twice in the patch")
        i += 2
        hunks: list[Hunk] = []
        while i < n and lines[i].startswith("@@"):
            hunk, i = _parse_hunk(lines, i)
            if hunks and hunk.old_start < hunks[-1].old_start + len(hunks[-1].old_lines):
                raise PatchFormatError(f"{path}: hunks overlap or are out of order")
            hunks.append(hunk)
        if kind == CREATE and any(h.old_lines for h in hunks):
            raise PatchFormatError(f"{path}: a created file (--- /dev/null) cannot have old lines")
        if kind == DELETE and any(h.new_lines for h in hunks):
            raise PatchFormatError(f"{path}: a deleted file (+++ /dev/null) cannot have new lines")
        if not hunks and kind == MODIFY:
            raise PatchFormatError(f"line {i + 1}: {path} has no hunk ('@@ -l,n +l,n @@')")
        files.append(FileDiff(path, tuple(hunks), kind))
    if not files:
        raise PatchFormatError("the patch changes nothing")
    return files


def _parse_hunk(lines: list[str], i: int) -> tuple[Hunk, int]:
    m = _HUNK.match(lines[i])
    if not m:
        raise PatchFormatError(f"line {i + 1}: malformed hunk header {lines[i].rstrip()!r}")
    old_start, old_count = int(m.group(1)), int(m.group(2) if m.group(2) is not None else 1)
    new_start, new_count = int(m.group(3)), int(m.group(4) if m.group(4) is not None else 1)
    header_line = i + 1
    i += 1
    body: list[tuple[str, str]] = []
    old_seen = new_seen = 0
    while i < len(lines) and (old_seen < old_count or new_seen < new_count):
        raw = lines[i]
        tag = raw[:1]
        if raw in ("\n", "\r\n"):  # an editor stripped the context line's leading space
            tag, raw = " ", " " + raw
        if tag not in (" ", "-", "+"):
            break
        body.append((tag, raw[1:]))
        old_seen += tag in " -"
        new_seen += tag in " +"
        i += 1
        if i < len(lines) and lines[i].startswith("\\"):
            t, text = body[-1]
            body[-1] = (t, text[:-1] if text.endswith("\n") else text)
            i += 1
    if old_seen != old_count or new_seen != new_count:
        raise PatchFormatError(
            f"line {header_line}: hunk says -{old_count} +{new_count} lines, body has -{old_seen} +{new_seen} "
            "(truncated or hand-edited patch?)"
        )
    old = tuple(t for tag, t in body if tag in " -")
    new = tuple(t for tag, t in body if tag in " +")
    return Hunk(old_start, old, new_start, new, tuple(body)), i


# --- applying -------------------------------------------------------------------


def apply(diff: FileDiff, text: str, reverse: bool = False) -> str:
    """Apply (or un-apply) a file's hunks at their exact positions. Raise HunkMismatch."""
    lines = split_lines(text)
    out: list[str] = []
    pos = 0
    for number, hunk in enumerate(diff.hunks, 1):
        start = hunk.new_start if reverse else hunk.old_start
        expect = hunk.new_lines if reverse else hunk.old_lines
        put = hunk.old_lines if reverse else hunk.new_lines
        # A range of length 0 starts *after* line `start`; otherwise at line `start`.
        index = start if not expect else start - 1
        if index < pos or tuple(lines[index : index + len(expect)]) != expect:
            where = f"line {start}"
            raise HunkMismatch(f"{diff.path}: hunk #{number} does not match at {where}")
        out.extend(lines[pos:index])
        out.extend(put)
        pos = index + len(expect)
    out.extend(lines[pos:])
    return "".join(out)


# --- making ---------------------------------------------------------------------


def apply_content(diff: FileDiff, data: bytes | None, reverse: bool = False) -> bytes | None:
    """Apply (or un-apply) a file's diff to its bytes, None meaning "the file does not exist".
    Raise HunkMismatch when the hunks do not match, or the file exists where it must not (or not
    where it must)."""
    absent_before = diff.kind == (DELETE if reverse else CREATE)
    absent_after = diff.kind == (CREATE if reverse else DELETE)
    if absent_before and data is not None:
        raise HunkMismatch(f"{diff.path}: the file exists already")
    if not absent_before and data is None:
        raise HunkMismatch(f"{diff.path}: the file does not exist")
    text = apply(diff, decode(data or b""), reverse=reverse)
    if absent_after:
        if text:
            raise HunkMismatch(f"{diff.path}: the file holds more than the patch removes")
        return None
    return encode(text)


def make_diff(path: str, before: str | None, after: str | None, context: int = 3) -> str:
    """A unified diff of one file, '-p1' paths, with 'No newline' markers where due. None on a side
    means the file does not exist there (``/dev/null``)."""
    out: list[str] = []
    old_name = "/dev/null" if before is None else f"a/{path}"
    new_name = "/dev/null" if after is None else f"b/{path}"
    diff_lines = list(
        difflib.unified_diff(split_lines(before or ""), split_lines(after or ""), old_name, new_name, n=context)
    )
    if not diff_lines and (before is None) != (after is None):  # an empty file created or deleted
        diff_lines = [f"--- {old_name}\n", f"+++ {new_name}\n"]
    for line in diff_lines:
        if line.startswith(("--- ", "+++ ")):
            line = line.rstrip() + "\n"  # difflib adds a tab when no date is given
        out.append(line)
        if not line.endswith("\n"):
            out.append("\n" + NO_NEWLINE + "\n")
    return "".join(out)


def make_patch(
    package: str, version: str, changes: list[tuple[str, bytes | None, bytes | None]], notes: list[str] = ()
) -> bytes:
    """A pinned patch from (path, original bytes, edited bytes) triples; None = the file does not
    exist on that side (created or deleted)."""
    if not valid_package(package):
        raise PatchFormatError(f"{package[:60]!r} is not a package (import) name")
    if not valid_version(version):
        raise PatchFormatError(f"{version[:60]!r} is not a version")
    head = [HEADER_MAGIC, f"# package: {package}", f"# version: {version}"]
    body: list[str] = []
    for path, before, after in changes:
        _check_path(path)
        head += [
            f"# file: {path}",
            f"#   sha256-before: {sha256_of(before) or ABSENT}",
            f"#   sha256-after: {sha256_of(after) or ABSENT}",
        ]
        body.append(
            make_diff(path, None if before is None else decode(before), None if after is None else decode(after))
        )
    head += [f"# {one_line(note)}" for note in notes]
    return encode("\n".join(head) + "\n" + "".join(body))
