"""Check `-r` requirements files before uv sees them.

uv reads a requirements file's own options: an `--extra-index-url` or `--find-links` line
there would make uv resolve from a source mlops neither fetches from nor records (the docs
promise only the indexes given on the command line), and `-e .`, a URL or a local path cannot
be hash-pinned from an index. Such lines are bad input (exit 2), named by file and line.
`--hash=ALGO:...` pins (sha256, sha384, sha512: the ones pip accepts) are collected so the
bundle can be held to them (pip's hash-checking mode: the file chosen for a name must have one
of its hashes); any other algorithm (md5) is refused rather than ignored.

A line of a requirements file is never echoed into an error: `-r /etc/shadow` (or a nested
one) must not print the file's first line. Errors name the file, the line number and why.
A nested `-r`/`-c` naming a URL is refused: uv would fetch it with nothing checking it.
"""

from __future__ import annotations

import re
from pathlib import Path

from mlops_cli import files
from mlops_cli.errors import UsageError
from mlops_cli.text import one_line, shorten
from mlops_cli.wheels.index import HASH_LENGTHS, valid_digest

_COMMENT = re.compile(r"(^|\s+)#.*$")
_FORBIDDEN = {
    "-i": "--index-url",
    "--index-url": "--index-url",
    "--extra-index-url": "--extra-index-url",
    "-f": "--find-links",
    "--find-links": "--find-links",
    "--no-index": "--no-index",
    "-e": "-e/--editable",
    "--editable": "-e/--editable",
}
_NESTED = ("-r", "--requirement", "-c", "--constraint")
# Short options whose value may be glued on (`-ihttp://...`), as pip and uv accept them.
_SHORT_WITH_VALUE = {"-i": "-i", "-f": "-f", "-e": "-e", "-r": "-r", "-c": "-c"}
MAX_REQUIREMENTS_FILE = 16 * 1024 * 1024
MAX_FILES = 1000
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
    """(flag, value) of an option line: `--index-url=U`, `--index-url U`, `-i U`, `-iU`;
    an unambiguous prefix of a forbidden long option (`--extra-index`) counts as that option."""
    if line[:2] in _SHORT_WITH_VALUE and not line.startswith("--"):
        return line[:2], line[2:].lstrip(" =\t").strip()
    m = re.match(r"(--?[A-Za-z][\w-]*)(?:[=\s]\s*(.*))?$", line)
    flag, value = (m.group(1), (m.group(2) or "").strip()) if m else (line.split()[0], "")
    if flag.startswith("--") and flag not in _FORBIDDEN and len(flag) >= 4:
        longer = [f for f in _FORBIDDEN if f.startswith("--") and f.startswith(flag)]
        if len({_FORBIDDEN[f] for f in longer}) == 1:
            flag = longer[0]
    return flag, value


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
                hint = (
                    "bundle requirements an index serves (name==version)"
                    if flag in ("-e", "--editable")
                    else "pass indexes on the command line: --index-url URL, --extra-index-url URL"
                )
                raise UsageError(
                    f"{here}: {_FORBIDDEN[flag]} in a requirements file is not supported by mlops wheels", hint=hint
                )
            if flag in _NESTED:
                if not value:
                    raise UsageError(f"{here}: {flag} needs a file name")
                if "://" in value:
                    raise UsageError(
                        f"{here}: a nested {flag} naming a URL is not supported by mlops wheels",
                        hint="download that file and give it with -r FILE, so it can be checked",
                    )
                nested.append(value)
            continue  # other options (--pre, --only-binary, ...) are uv's to honour or warn about
        requirement = _HASH.split(" " + line)[0].strip()
        found = _HASH.findall(" " + line)
        try:
            parsed = Requirement(requirement)
        except InvalidRequirement as exc:
            reason = str(exc).splitlines()[0]  # packaging's first line says why; the rest quotes the line
            raise UsageError(
                f"{here}: malformed requirement ({shorten(one_line(reason), 120)})",
                hint="write it like swanlab==0.5.7; URLs, paths and -e cannot be bundled from an index",
            ) from None
        if parsed.url:
            raise UsageError(
                f"{here}: direct URL requirement for {parsed.name} cannot be hash-pinned from an index",
                hint="name the package and version (name==version) and give its index",
            )
        for h in found:
            algo, _, digest = h.partition(":")
            algo = algo.lower()
            if algo not in HASH_LENGTHS:
                raise UsageError(
                    f"{here}: --hash={shorten(one_line(algo), 20)}: is not an algorithm pip accepts "
                    "(sha256, sha384, sha512)",
                    hint="pin sha256 hashes, e.g. from pip hash FILE",
                )
            good = valid_digest(algo, digest)
            if good is None:
                raise UsageError(f"{here}: a --hash={algo}: value is not {HASH_LENGTHS[algo]} hex digits")
            hashes.setdefault(canonicalize_name(parsed.name), set()).add(f"{algo}:{good}")
    return nested, hashes


def scan_files(paths: list[Path]) -> dict[str, set[str]]:
    """Check each file and the files it names with -r/-c; name -> sha256 hashes pinned there."""
    hashes: dict[str, set[str]] = {}
    seen: set[Path] = set()
    todo = list(paths)
    while todo:
        path = Path(todo.pop(0))
        try:
            key = path.resolve()
        except (OSError, RuntimeError):
            key = path
        if key in seen:
            continue
        seen.add(key)
        if len(seen) > MAX_FILES:
            raise UsageError(f"requirements files name more than {MAX_FILES} further files with -r/-c")
        text = files.read_input_text(path, what="requirements file", max_bytes=MAX_REQUIREMENTS_FILE)
        nested, found = scan_text(text, files.show_path(path))
        todo += [path.parent / n for n in nested]
        for name, digests in found.items():
            hashes.setdefault(name, set()).update(digests)
    return hashes


def hash_mismatches(pinned: dict[str, set[str]], chosen: list[tuple[str, str, str, Path | None]]) -> list[str]:
    """For (name, filename, sha256, path) of each file going into the bundle: those the pins refuse.
    Pins of sha384/sha512 are checked by hashing the file with those algorithms."""
    from packaging.utils import canonicalize_name

    from mlops_cli.wheels.download import hash_file

    problems = []
    for name, filename, sha256, path in chosen:
        allowed = pinned.get(canonicalize_name(name))
        if not allowed:
            continue
        digests = {"sha256": sha256.lower()}
        others = {a.split(":", 1)[0] for a in allowed} - {"sha256"}
        if others and path is not None:
            digests.update(hash_file(path, sorted(others)))
        if not any(f"{a}:{d}" in allowed for a, d in digests.items()):
            problems.append(f"{filename} (sha256 {sha256[:12]}...) matches none of the --hash pins for {name}")
    return problems
