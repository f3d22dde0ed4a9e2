"""Releases the resolver may pick that the target cannot install. Pure: index files in,
`name!=version` constraints out.

uv resolves at one of the glibc levels it knows (the next one up from the target's), so it
can pick a release whose wheels are all for a newer glibc (numpy 2.3's `manylinux_2_28` ones
for Amazon Linux 2's 2.26) or an older ABI; bundle.py then asks it again without them, as pip
backtracks over releases it cannot install.
"""

from __future__ import annotations

from collections.abc import Callable

from mlops_cli.wheels.choose import choose_file
from mlops_cli.wheels.index import IndexFile
from mlops_cli.wheels.resolve import Pin
from mlops_cli.wheels.targets import Target


def no_wheel_for(target: Target, files: list[IndexFile], name: str, version: str) -> bool:
    """This release has wheels, none of them for the target (an sdist-only release is not)."""
    choice = choose_file(files, name, version, target.tags(), target.markers()["python_full_version"])
    return bool(choice.problem and "has no wheel for this target" in choice.problem)


def _versions(files: list[IndexFile]) -> set[str]:
    from packaging.utils import InvalidSdistFilename, InvalidWheelFilename, parse_sdist_filename, parse_wheel_filename

    found = set()
    for f in files:
        try:
            found.add(str((parse_wheel_filename if f.is_wheel else parse_sdist_filename)(f.filename)[1]))
        except (InvalidWheelFilename, InvalidSdistFilename, ValueError):
            continue
    return found


def exclusions(
    target: Target, pins: list[Pin], files_of: Callable[[str, str | None], list[IndexFile] | None]
) -> list[str]:
    """`name!=version` for every release of a pinned project that has wheels, none for the
    target, once the pin is one of them: all of that project's such releases at once, so one
    more resolution finds the newest usable one. `files_of(name, version or None)` gives the
    index's files (None: the page failed, which excludes nothing; the plan reports it)."""
    out: list[str] = []
    for pin in pins:
        pinned = files_of(pin.name, pin.version)
        if pinned is None or not no_wheel_for(target, pinned, pin.name, pin.version):
            continue
        everything = files_of(pin.name, None) or []
        out += [
            f"{pin.name}!={v}" for v in sorted(_versions(everything)) if no_wheel_for(target, everything, pin.name, v)
        ]
    return out
