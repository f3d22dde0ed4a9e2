"""From pins and index pages to the files each target gets. Pure: no I/O here."""

from __future__ import annotations

from dataclasses import dataclass, field

from mlops_cli.wheels.choose import Choice, choose_file
from mlops_cli.wheels.index import IndexFile
from mlops_cli.wheels.resolve import Pin
from mlops_cli.wheels.targets import Target


@dataclass
class Plan:
    # target name -> choices (one per pin)
    per_target: dict[str, list[Choice]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # no file fits: fatal
    yanked: list[str] = field(default_factory=list)  # chosen although yanked: warn
    untagged: list[str] = field(default_factory=list)  # plain linux_<arch> wheels chosen: warn

    def unique_files(self) -> list[IndexFile]:
        seen: dict[str, IndexFile] = {}
        for choices in self.per_target.values():
            for c in choices:
                if c.file is not None:
                    seen.setdefault(c.file.filename, c.file)
        return [seen[k] for k in sorted(seen)]

    def sdists(self) -> list[Choice]:
        seen: dict[str, Choice] = {}
        for choices in self.per_target.values():
            for c in choices:
                if c.needs_build and c.file is not None:
                    seen.setdefault(c.file.filename, c)
        return [seen[k] for k in sorted(seen)]


def make_plan(targets: list[Target], pins: dict[str, list[Pin]], pages: dict[str, list[IndexFile]]) -> Plan:
    from packaging.utils import canonicalize_name

    plan = Plan()
    for target in targets:
        tags = target.tags()
        python_full = target.markers()["python_full_version"]
        chosen = []
        for pin in pins[target.name]:
            files = pages.get(canonicalize_name(pin.name), [])
            choice = choose_file(files, pin.name, pin.version, tags, python_full)
            if choice.problem:
                plan.problems.append(f"{choice.problem} [target {target.name}]")
                continue
            note = _undeclared_glibc(choice)
            if note and note not in plan.untagged:
                plan.untagged.append(note)
            if choice.file is not None and choice.file.yanked:
                reason = f" ({choice.file.yanked_reason})" if choice.file.yanked_reason else ""
                note = f"{pin.name}=={pin.version} is yanked{reason}; it is used because it is pinned exactly"
                if note not in plan.yanked:
                    plan.yanked.append(note)
            chosen.append(choice)
        plan.per_target[target.name] = chosen
    return plan


def _undeclared_glibc(choice: Choice) -> str | None:
    """A warning when the chosen wheel is tagged only `linux_<arch>` (no manylinux promise)."""
    f = choice.file
    if f is None or choice.needs_build or not f.is_wheel:
        return None
    from packaging.utils import parse_wheel_filename

    platforms = {t.platform for t in parse_wheel_filename(f.filename)[3]}
    if not platforms or not all(p.startswith("linux_") for p in platforms):
        return None
    return (
        f"{f.filename} is tagged {', '.join(sorted(platforms))}, not manylinux: pip on the target installs it, "
        "but which glibc it needs is not declared (it may fail at import on a glibc older than its build "
        "machine's); check it there"
    )


def required_glibc(wheel_filenames: list[str]) -> str | None:
    """The newest glibc any of these wheels needs (from their manylinux tags)."""
    import re

    from packaging.utils import parse_wheel_filename

    legacy = {"manylinux2014": (2, 17), "manylinux2010": (2, 12), "manylinux1": (2, 5)}
    need: tuple[int, int] | None = None
    for filename in wheel_filenames:
        _n, _v, _b, tags = parse_wheel_filename(filename)
        levels = []
        for t in tags:
            m = re.match(r"manylinux_(\d+)_(\d+)_", t.platform)
            if m:
                levels.append((int(m.group(1)), int(m.group(2))))
            else:
                levels += [v for k, v in legacy.items() if t.platform.startswith(k + "_")]
        if levels:
            lowest = min(levels)  # the file installs where its most lenient tag does
            need = lowest if need is None else max(need, lowest)
    return f"{need[0]}.{need[1]}" if need else None


# The first pip that reads each platform tag spelling (PEP 513, 571, 599, 600). A file installs
# with the oldest pip that reads any one of its tags; a target needs the newest of those.
_PIP_FOR_TAG = (
    ("manylinux_", (20, 3)),
    ("manylinux2014_", (19, 3)),
    ("manylinux2010_", (19, 0)),
    ("manylinux1_", (8, 1)),
)


def required_pip(wheel_filenames: list[str]) -> str | None:
    """The oldest pip that can install every one of these wheels (None: any pip).

    A wheel tagged only `manylinux_2_17_x86_64` (no `manylinux2014` alias) is invisible to
    pip 20.2.4, which RHEL 8 and Rocky 8 ship, though their glibc is new enough."""
    from packaging.utils import parse_wheel_filename

    need: tuple[int, int] | None = None
    for filename in wheel_filenames:
        _n, _v, _b, tags = parse_wheel_filename(filename)
        per_tag = []
        for t in tags:
            found = next((v for prefix, v in _PIP_FOR_TAG if t.platform.startswith(prefix)), None)
            per_tag.append(found or (0, 0))
        lowest = min(per_tag) if per_tag else (0, 0)
        if lowest > (0, 0):
            need = lowest if need is None else max(need, lowest)
    return f"{need[0]}.{need[1]}" if need else None
