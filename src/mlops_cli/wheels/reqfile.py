"""Check `-r` requirements files before uv sees them.

uv reads a requirements file's own options: an `--extra-index-url` or `--find-links` line
there would make uv resolve from a source mlops neither fetches from nor records (the docs
promise only the indexes given on the command line), and `-e .`, a URL or a local path cannot
be hash-pinned from an index. Such lines are bad input (exit 2), named by file and line.
`--hash=sha256:...` pins are collected so the bundle can be held to them (pip's hash-checking
mode: the file chosen for a name must have one of its hashes).
"""

from __future__ import annotations

import re
from pathlib import Path

from mlops_cli.errors import UsageError

_COMMENT = re.compile(r"(^|\s+)#.*$")
_FORBIDDEN = {"-i": "--index-url", "--index-url": "--index-url", "--extra-index-url": "--extra-index-url",
              "-f": "--find-links", "--find-links": "--find-links", "--no-index": "--no-index",
              "-e": "-e/--editable", "--editable": "-e/--editable"}
_NESTED = ("-r", "--requirement", "-c", "--constraint")
_HASH = re.compile(r"\s--hash[=\s]\s*(\S+)")


def logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, line) with comments removed and backslash continuations joined."""
    out: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = _COMMENT.sub("", raw.lstrip("\ufeff")).rstrip()
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = (pending + line).strip(), ""
        if line:
            out.append((start, line))
    if pending.strip():
        out.append((start, pending.strip()))
    return out


def _option(line: str) -> tuple[str, str]:
    m = re.match(r"(--?[A-Za-z][\w-]*)(?:[=\s]\s*(.*))?$", line)
    return (m.group(1), (m.group(2) or "").strip()) if m else (line, "")


def scan_text(text: str, where: str) -> tuple[list[str], dict[str, set[str]]]:
    """(nested file names, name -> allowed sha256 hashes) of one file; bad lines raise UsageError."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    nested: list[str] = []
    hashes: dict[str, set[str]] = {}
    for number, line in logical_lines(text):
        here = f"{where}:{number}"
        if line.startswith("-"):
            flag, value = _option(line)
            if flag in _FORBIDDEN:
                hint = ("bundle requirements an index serves (name==version)" if flag in ("-e", "--editable")
                        else "pass indexes on the command line: --index-url URL, --extra-index-url URL")
                raise UsageError(f"{here}: {_FORBIDDEN[flag]} in a requirements file is not supported by mlops wheels",
                                 hint=hint)
            if flag in _NESTED and value:
                nested.append(value)
            continue  # other options (--pre, --only-binary, ...) are uv's to honour or warn about
        requirement = _HASH.split(" " + line)[0].strip()
        found = _HASH.findall(" " + line)
        try:
            parsed = Requirement(requirement)
        except InvalidRequirement as exc:
            raise UsageError(f"{here}: malformed requirement {requirement!r}: {str(exc).splitlines()[0]}",
                             hint="write it like swanlab==0.5.7; URLs, paths and -e cannot be bundled from an index") from None
        if parsed.url:
            raise UsageError(f"{here}: direct URL requirement {requirement!r} cannot be hash-pinned from an index",
                             hint="name the package and version (name==version) and give its index")
        for h in found:
            algo, _, digest = h.partition(":")
            if algo == "sha256" and digest:
                hashes.setdefault(canonicalize_name(parsed.name), set()).add(digest.lower())
    return nested, hashes


def scan_files(paths: list[Path]) -> dict[str, set[str]]:
    """Check each file and the files it names with -r/-c; name -> sha256 hashes pinned there."""
    hashes: dict[str, set[str]] = {}
    seen: set[Path] = set()
    todo = list(paths)
    while todo:
        path = Path(todo.pop(0))
        if path.resolve() in seen:
            continue
        seen.add(path.resolve())
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read requirements file {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise UsageError(f"cannot read requirements file {path}: not UTF-8 text (a binary file?)") from None
        nested, found = scan_text(text, str(path))
        todo += [path.parent / n for n in nested if "://" not in n]
        for name, digests in found.items():
            hashes.setdefault(name, set()).update(digests)
    return hashes


def hash_mismatches(pinned: dict[str, set[str]], chosen: list[tuple[str, str, str]]) -> list[str]:
    """For (name, filename, sha256) of each file going into the bundle: those the files' pins refuse."""
    from packaging.utils import canonicalize_name

    problems = []
    for name, filename, sha256 in chosen:
        allowed = pinned.get(canonicalize_name(name))
        if allowed and sha256.lower() not in allowed:
            problems.append(f"{filename} (sha256 {sha256[:12]}...) matches none of the --hash pins for {name}")
    return problems
