"""The result objects of `mlops wheels`: one rendering for people, one for scripts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_cli.text import shell_quote as quote
from mlops_cli.units import format_bytes
from mlops_cli.wheels.layout import BundleFile

if TYPE_CHECKING:
    from rich.console import Console


@dataclass
class BundleResult:
    bundle: Path
    archive: str
    targets: list[dict[str, Any]]
    files: list[BundleFile]
    downloaded_bytes: int
    cache_hits: int
    seconds: float
    warnings: list[str] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)  # seconds per phase, for benchmarks
    exit_code: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "bundle": str(self.bundle),
            "archive": self.archive,
            "targets": self.targets,
            "packages": [f.to_json() for f in sorted(self.files, key=lambda f: (f.name, f.filename))],
            "total_bytes": sum(f.size for f in self.files),
            "downloaded_bytes": self.downloaded_bytes,
            "cache_hits": self.cache_hits,
            "seconds": round(self.seconds, 3),
            "phases": {k: round(v, 3) for k, v in self.phases.items()},
            "warnings": self.warnings,
        }

    def render(self, console: Console) -> None:
        total = sum(f.size for f in self.files)
        built = [f.filename for f in self.files if f.built_from_sdist]
        console.print(f"bundle: {self.bundle}", markup=False)
        console.print(
            f"  {len(self.files)} wheels, {format_bytes(total)}; downloaded {format_bytes(self.downloaded_bytes)}, "
            f"{self.cache_hits} from cache; {self.seconds:.1f} s",
            markup=False,
        )
        for t in self.targets:
            console.print(
                f"  target {t['name']}: Python {t['python']}, {t['arch']}, glibc >= "
                f"{t['requires_glibc'] or 'any'} -> {t['requirements_file']} ({t['files']} files)",
                markup=False,
            )
        if built:
            console.print(f"  built from sdist on this host: {', '.join(built)}", markup=False)
        pips = [f for f in self.files if f.name.lower() == "pip"]
        if pips:
            console.print(
                f"  pip {pips[0].version} is bundled (--with-pip): install.sh runs it where the target has no "
                "usable pip, and installs it only into venvs, never over a system python's own pip",
                markup=False,
            )
        console.print("install on the target machine (no network needed):", markup=False)
        if self.archive == "tar.gz":
            folder = self.bundle.name[: -len(".tar.gz")]
            venv = " --venv /opt/venv" if any(t.get("externally_managed") for t in self.targets) else ""
            console.print(
                f"  tar xzf {quote(self.bundle.name)} && sh {quote(folder + '/install.sh')}{venv}", markup=False
            )
        elif any(t.get("externally_managed") for t in self.targets):
            console.print(
                f"  sh {quote(self.bundle.name + '/install.sh')} --venv /opt/venv    "
                "(the target's python3 is externally managed, PEP 668: install into a new venv)",
                markup=False,
            )
        else:
            console.print(
                f"  sh {quote(self.bundle.name + '/install.sh')}            "
                f"(PYTHON=/path/to/python to pick the interpreter; --venv DIR for a new venv; "
                "--verify to only check)",
                markup=False,
            )


@dataclass
class VerifyResult:
    bundle: str
    checked: int
    problems: list[str]

    @property
    def exit_code(self) -> int:
        return 1 if self.problems else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "bundle": self.bundle,
            "ok": not self.problems,
            "files_checked": self.checked,
            "problems": self.problems,
        }

    def render(self, console: Console) -> None:
        if not self.problems:
            console.print(f"ok: {self.bundle}: {self.checked} files match manifest.json", markup=False)
            return
        console.print(f"FAILED: {self.bundle}: {len(self.problems)} problem(s)", markup=False)
        for p in self.problems:
            console.print(f"  {p}", markup=False)


@dataclass
class TargetResult:
    probe: dict[str, Any]
    exit_code: int = 0

    def to_json(self) -> dict[str, Any]:
        return self.probe

    def render(self, console: Console) -> None:
        import json

        console.print(json.dumps(self.probe, indent=2), markup=False, soft_wrap=True)
