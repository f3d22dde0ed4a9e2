"""The machine a bundle is for: Python version, CPU architecture, glibc, wheel tags, markers.

Pure data and decisions: nothing here runs a program or touches the network. A target is
built from a preset (`ubuntu22.04-aarch64`), from explicit flags (`--python 3.10 --platform
manylinux_2_17_aarch64`), from the JSON printed on the far machine (`mlops wheels target`
or the stdlib-only snippet in docs/wheels.md), or from the host running the command.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from typing import Any

from mlops_cli.errors import UsageError

TARGET_FORMAT = "mlops-wheels-target/1"


@functools.lru_cache(maxsize=1)
def preset_table() -> dict[str, dict[str, Any]]:
    """name -> {python, python_full, glibc, externally_managed, sources}: data/presets.json,
    the one table of presets (the -aarch64 variants share each entry)."""
    from importlib import resources

    doc = json.loads(resources.files("mlops_cli.wheels").joinpath("data/presets.json").read_text(encoding="utf-8"))
    return doc["presets"]


ARCHES = ("x86_64", "aarch64")
# Manylinux glibc levels uv accepts in `--python-platform <arch>-manylinux_2_NN`.
UV_GLIBC_LEVELS = (17, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40)
_LEGACY_ALIASES = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}


@dataclass(frozen=True)
class Target:
    name: str
    python: str  # "3.10"
    arch: str  # "x86_64" | "aarch64"
    glibc: str  # "2.35": the ceiling for manylinux tags
    python_full: str = ""  # "3.10.12" when known (target file / host)
    exact_tags: tuple[str, ...] = field(default=())  # from a target file, best first
    source: str = "preset"  # preset | flags | file | host
    externally_managed: bool = False  # its python3 is PEP 668 "externally managed" (Debian 12+, Ubuntu 23.04+)

    @property
    def py_nodot(self) -> str:
        return self.python.replace(".", "")

    @property
    def glibc_minor(self) -> int:
        return int(self.glibc.split(".")[1])

    def platform_tags(self) -> list[str]:
        """manylinux tags this target can install, best first, legacy aliases included."""
        lowest = 17 if self.arch == "aarch64" else 5
        out: list[str] = []
        for minor in range(self.glibc_minor, lowest - 1, -1):
            out.append(f"manylinux_2_{minor}_{self.arch}")
            alias = _LEGACY_ALIASES.get(minor)
            if alias and (self.arch == "x86_64" or minor == 17):
                out.append(f"{alias}_{self.arch}")
        return out

    def tags(self) -> list[str]:
        """Every wheel tag the target accepts, in pip's order of preference."""
        return list(_tags_of(self))

    def _compute_tags(self) -> list[str]:
        if self.exact_tags:
            return list(self.exact_tags)
        from packaging import tags as ptags

        if self.source == "host":  # this very interpreter: exactly what pip here accepts
            return [str(t) for t in ptags.sys_tags()]

        # `linux_<arch>` last, as pip on that machine ranks it: wheels an index publishes with
        # no manylinux promise (PyTorch's CPU index: torch-2.5.1+cpu-cp310-cp310-linux_x86_64)
        # install there; the plan warns that their glibc needs are not declared.
        major, minor = (int(p) for p in self.python.split("."))
        platforms = self.platform_tags() + [f"linux_{self.arch}"]
        found = list(ptags.cpython_tags((major, minor), abis=[cpython_abi(major, minor)], platforms=platforms))
        found += list(ptags.compatible_tags((major, minor), f"cp{major}{minor}", platforms))
        return [str(t) for t in found]

    def uv_platform(self) -> str:
        """The `--python-platform` triple: never the bare `linux` (= manylinux_2_17, uv #3842).

        uv knows only some glibc levels. A target between two of them (Ubuntu 18.04's 2.27,
        Amazon Linux 2's 2.26) or below the lowest (CentOS 6's 2.12) resolves at the next level
        up, so uv sees every wheel the target can install (numpy's `manylinux_2_27` ones
        included, which a resolution at 2.17 would miss); the versions uv then picks that have no
        wheel for the target are excluded and uv asked again (bundle.py), as pip backtracks.
        Above the highest level, the highest. The markers are the same at every level."""
        minor = self.glibc_minor
        level = (
            minor
            if minor in UV_GLIBC_LEVELS
            else min((lv for lv in UV_GLIBC_LEVELS if lv > minor), default=max(UV_GLIBC_LEVELS))
        )
        return f"{self.arch}-manylinux_2_{level}"

    def markers(self) -> dict[str, str]:
        """The marker environment the resolver evaluates requirements against."""
        return {
            "implementation_name": "cpython",
            "os_name": "posix",
            "platform_machine": self.arch,
            "platform_python_implementation": "CPython",
            "platform_system": "Linux",
            # Only X.Y known: a maintained, patched X.Y (markers and requires-python that shut out
            # early patch releases, such as cryptography's !=3.9.0,!=3.9.1, do not apply).
            "python_full_version": self.python_full or f"{self.python}.{UNKNOWN_PATCH}",
            "python_version": self.python,
            "sys_platform": "linux",
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "python": self.python,
            "python_full_version": self.python_full or None,
            "arch": self.arch,
            "glibc": self.glibc,
            "source": self.source,
            "externally_managed": self.externally_managed,
            "uv_python_platform": self.uv_platform(),
            "markers": self.markers(),
            "tags": self.tags(),  # all of them, best first: the manifest says exactly what was allowed
        }


def cpython_abi(major: int, minor: int) -> str:
    """The ABI tag a release build of CPython X.Y reports: before 3.8 it carries pymalloc's `m`
    (`cp37m`), the flag every compiled wheel for 3.6/3.7 is tagged with (pillow, lxml, cffi);
    3.8 dropped the flag (`cp38`)."""
    return f"cp{major}{minor}" + ("m" if (major, minor) < (3, 8) else "")


@functools.lru_cache(maxsize=64)
def _tags_of(target: Target) -> tuple[str, ...]:
    return tuple(target._compute_tags())


UNKNOWN_PATCH = 99
# The glibc releases a target may name: 2.5 (manylinux1) up to 2.99; none has had another major.
GLIBC_MINOR_RANGE = (5, 99)
_FULL_VERSION = re.compile(r"3\.(\d{1,2})\.(\d{1,3})(?:(?:a|b|rc)\d{1,3})?\+?")


def check_glibc(value: str, origin: str = "") -> str:
    """'2.35' (a third part is dropped); exit 2 for anything that is no glibc release."""
    where = f"{origin}: " if origin else ""
    m = re.fullmatch(r"(\d{1,3})\.(\d{1,3})(?:\.\d{1,6})?", value or "")
    if not m:
        raise UsageError(f"{where}glibc must look like 2.35, not {value!r}")
    major, minor = int(m.group(1)), int(m.group(2))
    if major != 2 or not GLIBC_MINOR_RANGE[0] <= minor <= GLIBC_MINOR_RANGE[1]:
        raise UsageError(
            f"{where}glibc {value} is not a glibc release (2.{GLIBC_MINOR_RANGE[0]} to 2.{GLIBC_MINOR_RANGE[1]})",
            hint="`ldd --version` on the target machine prints it",
        )
    return f"{major}.{minor}"


# CPython minor releases a bundle can be made for: 3.6 (the oldest uv resolves for) up to the
# release in development (3.16 in late 2026). uv resolves for any number it is given, so without
# this bound a typo such as 3.99 or 3.1 would build a bundle no interpreter can install.
OLDEST_MINOR, NEWEST_MINOR = 6, 16


def _split_python(value: str) -> tuple[str, str]:
    """--python X.Y or X.Y.Z -> (X.Y, X.Y.Z or '')."""
    if _FULL_VERSION.fullmatch(value or ""):
        return _check_python(".".join(value.split(".")[:2])), value
    return _check_python(value), ""


def _check_python(value: str) -> str:
    if not re.fullmatch(r"3\.\d{1,2}", value or ""):
        raise UsageError(f"not a Python version: {value!r}", hint="write it as X.Y or X.Y.Z, e.g. --python 3.10")
    minor = int(value.split(".")[1])
    if not OLDEST_MINOR <= minor <= NEWEST_MINOR:
        raise UsageError(
            f"Python {value} is not a CPython release mlops can build for (3.{OLDEST_MINOR} to 3.{NEWEST_MINOR})",
            hint="on the target machine, 'mlops wheels target' (or the snippet in docs/wheels.md) prints its version",
        )
    return value


def preset_names() -> list[str]:
    return [f"{n}{suffix}" for n in preset_table() for suffix in ("", "-aarch64")]


def from_preset(name: str, python: str | None = None) -> Target:
    import difflib

    from mlops_cli.text import one_line, shorten

    base, _, arch_suffix = name.partition("-")
    table = preset_table()
    if base not in table or arch_suffix not in ("", "aarch64", "x86_64"):
        near = difflib.get_close_matches(name.lower(), preset_names(), n=1, cutoff=0.5)
        guess = f"; did you mean {near[0]}?" if near else ""
        raise UsageError(
            f"unknown target preset: {shorten(one_line(name), 60)!r}{guess}",
            hint="known presets: "
            + ", ".join(preset_names())
            + " (or --python X.Y --platform TAG, or --target-file FILE)",
        )
    entry = table[base]
    py, full = entry["python"], entry["python_full"]
    if python:
        py, full = _split_python(python)
    return Target(
        name=name,
        python=py,
        arch=arch_suffix or "x86_64",
        glibc=entry["glibc"],
        python_full=full,
        externally_managed=bool(entry.get("externally_managed")),
    )


_PLATFORM_RE = re.compile(r"(?:manylinux_(\d{1,3})_(\d{1,3})|manylinux(2014|2010|1))_(x86_64|aarch64)")
_LEGACY_GLIBC = {"2014": "2.17", "2010": "2.12", "1": "2.5"}


def from_flags(python: str | None, platform: str | None, host: Target | None) -> Target:
    """--python X.Y and/or --platform TAG; what is not given comes from the host (then needed)."""
    if host is None and not (python and platform):
        raise UsageError("give both --python and --platform: this machine cannot stand in for the rest")
    py, full = _split_python(python) if python else (host.python, host.python_full)
    if not full and host is not None and py == host.python:
        full = host.python_full
    arch, glibc = (host.arch, host.glibc) if host else ("", "")
    if platform:
        m = _PLATFORM_RE.fullmatch(platform)
        if not m:
            raise UsageError(
                f"unsupported platform tag: {platform!r}",
                hint="give a Linux glibc tag such as manylinux_2_28_x86_64 or manylinux2014_aarch64",
            )
        arch = m.group(4)
        glibc = check_glibc(f"{m.group(1)}.{m.group(2)}", "--platform") if m.group(1) else _LEGACY_GLIBC[m.group(3)]
    name = f"cp{py.replace('.', '')}-manylinux_{glibc.replace('.', '_')}_{arch}"
    return Target(name=name, python=py, arch=arch, glibc=glibc, python_full=full, source="flags")


MAX_TAGS = 10_000
_TAG = re.compile(r"[a-z0-9_.]{1,60}-[a-z0-9_.]{1,60}-[a-z0-9_.]{1,120}")


def _short(value: Any) -> str:
    from mlops_cli.text import one_line, shorten

    return repr(shorten(one_line(str(value)), 40)) if isinstance(value, str) else type(value).__name__


def _check_shapes(data: dict[str, Any], origin: str) -> None:
    """A hand-edited or damaged target file is bad input, said plainly (not a crash later)."""
    bad = []
    if not isinstance(data.get("machine", ""), str):
        bad.append("machine must be a string")
    if not re.fullmatch(r"\d{1,3}\.\d{1,3}(?:\.\d{1,6})?", str(data.get("glibc"))):
        bad.append(f"glibc must look like 2.35, not {_short(data.get('glibc'))}")
    if data.get("name") is not None and not (isinstance(data.get("name"), str) and len(data["name"]) <= 100):
        bad.append("name must be a string of at most 100 characters")
    tags = data.get("tags")
    if tags is not None and not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
        bad.append("tags must be a list of strings")
    elif tags and (len(tags) > MAX_TAGS or not all(_TAG.fullmatch(t) for t in tags)):
        bad.append(f"tags must be at most {MAX_TAGS} wheel tags like cp311-cp311-manylinux_2_36_x86_64")
    full = data.get("python_full_version")
    if full not in (None, "") and not (isinstance(full, str) and _FULL_VERSION.fullmatch(full)):
        bad.append(f"python_full_version must look like 3.11.7, not {_short(full)}")
    for key in ("python", "implementation", "system", "libc"):
        if data.get(key) is not None and not isinstance(data.get(key), str):
            bad.append(f"{key} must be a string")
    if bad:
        raise UsageError(
            f"{origin}: malformed target file: {'; '.join(bad)}",
            hint="print it again on the target machine with `mlops wheels target`",
        )


def from_probe(data: dict[str, Any], origin: str) -> Target:
    """A target from the JSON that `mlops wheels target` (or the docs snippet) printed."""
    if not isinstance(data, dict) or data.get("format") != TARGET_FORMAT:
        raise UsageError(
            f'{origin}: not a target file (expected "format": "{TARGET_FORMAT}")',
            hint="print it on the target machine with `mlops wheels target` or the snippet in docs/wheels.md",
        )
    if data.get("implementation") != "cpython" or data.get("system") != "Linux":
        raise UsageError(
            f"{origin}: only CPython on Linux is supported as a target "
            f"(got {data.get('implementation')} on {data.get('system')})"
        )
    if data.get("libc") != "glibc" or not data.get("glibc"):
        raise UsageError(f"{origin}: the target has no glibc (musl/Alpine targets are not supported yet)")
    _check_shapes(data, origin)
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(data.get("machine", ""), data.get("machine", ""))
    if arch not in ARCHES:
        raise UsageError(f"{origin}: unsupported architecture {arch!r} (supported: {', '.join(ARCHES)})")
    python = _check_python(str(data.get("python", "")))
    glibc = check_glibc(str(data["glibc"]), origin)
    full = str(data.get("python_full_version") or "")
    if not full.startswith(python + "."):
        full = ""  # inconsistent with "python": trust the X.Y
    name = data.get("name") or f"cp{python.replace('.', '')}-manylinux_{glibc.replace('.', '_')}_{arch}"
    # pip's own list on the target, `linux_<arch>` included: what pip there installs.
    tags = tuple(data.get("tags") or ())
    return Target(
        name=re.sub(r"[^A-Za-z0-9_.-]", "_", name),
        python=python,
        arch=arch,
        glibc=glibc,
        python_full=full,
        exact_tags=tags,
        source="file",
        externally_managed=data.get("externally_managed") is True,
    )


def parse_target_file(text: str, origin: str) -> Target:
    from mlops_cli.files import parse_json

    return from_probe(parse_json(text, what=origin), origin)


def host_target(probe: dict[str, Any]) -> Target:
    target = from_probe(probe, "this machine")
    name = f"cp{target.py_nodot}-manylinux_{target.glibc.replace('.', '_')}_{target.arch}"
    return Target(
        name=name,
        python=target.python,
        arch=target.arch,
        glibc=target.glibc,
        python_full=target.python_full,
        exact_tags=target.exact_tags,
        source="host",
        externally_managed=target.externally_managed,
    )


def dedupe_names(targets: list[Target]) -> list[Target]:
    """Two targets may not share a name: their requirements files would collide."""
    seen: dict[str, Target] = {}
    for t in targets:
        if t.name in seen:
            if seen[t.name] == t:
                continue
            raise UsageError(f"two different targets are both named {t.name!r}")
        seen[t.name] = t
    return list(seen.values())
