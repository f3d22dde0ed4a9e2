"""Which file of a pinned release each target gets. Pure: index data in, a decision out."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from mlops_cli.wheels.index import IndexFile


@dataclass(frozen=True)
class Choice:
    name: str
    version: str
    file: IndexFile | None  # the best wheel, or the sdist when `needs_build`
    needs_build: bool = False
    problem: str | None = None  # why nothing fits (no wheel, no sdist)


# The same file names, requires-python strings and tag lists come back for every target and
# twice per package (the guess while uv resolves, then the plan): each is parsed once.
@functools.lru_cache(maxsize=8192)
def _parsed_name(filename: str, is_wheel: bool) -> tuple:
    """(name, version, tags) of a wheel, (name, version, None) of an sdist; raises if invalid."""
    from packaging.utils import parse_sdist_filename, parse_wheel_filename

    if is_wheel:
        n, v, _build, tags = parse_wheel_filename(filename)
        return n, v, frozenset(str(t) for t in tags)
    n, v = parse_sdist_filename(filename)
    return n, v, None


@functools.lru_cache(maxsize=16)
def _rank(tags: tuple[str, ...]) -> dict[str, int]:
    return {tag: i for i, tag in enumerate(tags)}


def _release_files(files: list[IndexFile], name: str, version: str) -> tuple[list, list]:
    """(wheels with their tags, sdists) of exactly this release."""
    from packaging.utils import InvalidSdistFilename, InvalidWheelFilename, canonicalize_name
    from packaging.version import InvalidVersion, Version

    want_name, want_version = canonicalize_name(name), Version(version)
    wheels, sdists = [], []
    for f in files:
        try:
            n, v, tags = _parsed_name(f.filename, f.is_wheel)
        except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
            continue
        if n == want_name and v == want_version:
            if tags is not None:
                wheels.append((f, tags))
            else:
                sdists.append(f)
    return wheels, sdists


@functools.lru_cache(maxsize=1024)
def _python_ok(requires_python: str | None, python_full: str) -> bool:
    if not requires_python:
        return True
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        return SpecifierSet(requires_python).contains(python_full, prereleases=True)
    except InvalidSpecifier:
        return True  # pip ignores a broken requires-python too


def choose_file(files: list[IndexFile], name: str, version: str, tags: list[str], python_full: str) -> Choice:
    """The best wheel for the target's tag order; else the sdist (to be built); else why not.

    Yanked files count only when every file of the release is yanked: uv picked this version,
    so it was pinned exactly (PEP 592), and the caller warns about it.
    """
    wheels, sdists = _release_files(files, name, version)
    if not wheels and not sdists:
        return Choice(name, version, None, problem=f"the index lists no files for {name}=={version}")
    live = [w for w in wheels if not w[0].yanked] + [s for s in sdists if not s.yanked]
    if live:
        wheels = [w for w in wheels if not w[0].yanked]
        sdists = [s for s in sdists if not s.yanked]
    rank = _rank(tuple(tags))
    best: tuple[int, IndexFile] | None = None
    for f, file_tags in wheels:
        if not _python_ok(f.requires_python, python_full):
            continue
        score = min((rank[t] for t in file_tags if t in rank), default=None)
        if score is not None and (best is None or score < best[0]):
            best = (score, f)
    if best:
        if best[1].hash_problem:
            return Choice(name, version, None, problem=best[1].hash_problem)
        return Choice(name, version, best[1])
    if sdists and not wheels:
        if sdists[0].hash_problem:
            return Choice(name, version, None, problem=sdists[0].hash_problem)
        return Choice(name, version, sdists[0], needs_build=True)
    # Wheels exist but none for this target (a C extension without aarch64 wheels, a glibc
    # too old for them): never a build on this host, which would ship this host's binaries.
    available = sorted({t for _, ts in wheels for t in ts})
    shown = ", ".join(available[:4]) + (", ..." if len(available) > 4 else "")
    return Choice(name, version, None, problem=f"{name}=={version} has no wheel for this target (it has: {shown})")
