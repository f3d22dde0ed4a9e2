"""The result objects of `mlops patch`: one per subcommand, rendered as text or JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.console import Console

from mlops_cli.errors import ExitCode

# What `result` can say (JSON field "result"):
#   extract:  extracted
#   diff:     written
#   apply:    applied | already-applied | would-apply | conflict
#   status:   applied | not-applied | conflict
#   revert:   reverted | not-applied | would-revert | conflict
FAILED_RESULTS = {"conflict"}


@dataclass
class PatchReport:
    command: str  # apply | status | revert
    target: dict
    package: str
    version: str | None
    patch: dict  # path, sha256, pinned, version
    result: str
    state: str  # applied | not-applied | conflict (before the command acted)
    files: list[dict]
    site: str | None = None
    python: str | None = None
    new_image: str | None = None
    new_image_id: str | None = None
    labels: dict = field(default_factory=dict)
    problem: str | None = None
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    dry_run: bool = False
    diff: str | None = None
    plan: list[str] = field(default_factory=list)
    import_check: dict | None = None
    status_exit: bool = False  # status: not-applied is exit 1 too
    hint: str | None = None  # shown after `problem` on stderr
    changed_system: bool = False  # files written or an image built (the exit code says so even if printing fails)

    @property
    def exit_code(self) -> int:
        if self.result in FAILED_RESULTS:
            return ExitCode.PROBLEM
        if self.status_exit and self.result != "applied":
            return ExitCode.PROBLEM
        return ExitCode.OK

    def to_json(self) -> dict[str, Any]:
        doc = {
            "command": self.command,
            "result": self.result,
            "state": self.state,
            "target": self.target,
            "package": self.package,
            "version": self.version,
            "site": self.site,
            "python": self.python,
            "patch": self.patch,
            "files": self.files,
            "new_image": self.new_image,
            "new_image_id": self.new_image_id,
            "labels": self.labels,
            "dry_run": self.dry_run,
            "plan": self.plan,
            "import_check": self.import_check,
            "problem": self.problem,
            "warnings": self.warnings,
            "notes": self.notes,
        }
        return doc

    def render(self, console: Console) -> None:
        target = self.target.get("ref")
        console.print(f"{self.target['kind']} {target}: {self.package} {self.version or '(version unknown)'}"
                      + (f" in {self.site}" if self.site else ""), markup=False)
        for f in self.files:
            console.print(f"  {f['state']:<12} {f['path']}", markup=False, highlight=False)
            console.print(f"  {'':<12} sha256 now {_short(f.get('sha256_current'))}, original "
                          f"{_short(f.get('sha256_before'))}, patched {_short(f.get('sha256_after'))}"
                          + (f" ({f['reason']})" if f.get("reason") else ""), markup=False, highlight=False)
        if self.diff and self.dry_run:
            console.print(self.diff, markup=False, highlight=False, end="")
        if self.plan and (self.dry_run or self.result in ("applied", "reverted")):
            console.print("plan:" if self.dry_run else "done:", markup=False)
            for step in self.plan:
                console.print(f"  {step}", markup=False, highlight=False)
        if self.command == "status":
            headline = f"status: {self.result}"
        else:
            headline = _HEADLINES.get(self.result, f"result: {self.result}")
        if self.new_image and self.result in ("applied", "already-applied"):
            headline += f"; image {self.new_image}"
        console.print(headline, markup=False, highlight=False)
        for note in self.notes:
            console.print(f"note: {note}", markup=False, highlight=False)


_HEADLINES = {
    "applied": "result: patch applied",
    "already-applied": "result: already applied, nothing to do",
    "would-apply": "result: dry run, the patch applies cleanly; nothing was changed",
    "would-revert": "result: dry run, the patch can be reverted; nothing was changed",
    "not-applied": "result: not applied",
    "reverted": "result: reverted to the original files",
    "conflict": "result: CONFLICT, nothing was changed",
}


def _short(sha: str | None) -> str:
    return sha[:12] if sha else "-"


@dataclass
class ExtractReport:
    target: dict
    package: str
    version: str | None
    site: str
    python: str
    workdir: str
    files: list[dict]
    notes: list[str] = field(default_factory=list)
    exit_code: int = ExitCode.OK

    def to_json(self) -> dict[str, Any]:
        return {"command": "extract", "result": "extracted", "target": self.target, "package": self.package,
                "version": self.version, "site": self.site, "python": self.python, "workdir": self.workdir,
                "files": self.files, "notes": self.notes}

    def render(self, console: Console) -> None:
        console.print(f"extracted from {self.target['kind']} {self.target['ref']}: {self.package} {self.version} "
                      f"({self.site})", markup=False)
        for f in self.files:
            console.print(f"  {self.workdir}/{f['path']}  sha256 {f['sha256'][:12]}", markup=False, highlight=False)
        console.print(f"next: edit the files above, then: mlops patch diff {self.workdir} -o NAME.patch",
                      markup=False, highlight=False)
        for note in self.notes:
            console.print(f"note: {note}", markup=False, highlight=False)


@dataclass
class DiffReport:
    output: str
    package: str
    version: str
    sha256: str
    files: list[dict]
    unchanged: list[str]
    source: dict
    exit_code: int = ExitCode.OK

    def to_json(self) -> dict[str, Any]:
        return {"command": "diff", "result": "written", "patch": {"path": self.output, "sha256": self.sha256,
                                                                  "pinned": True, "version": self.version},
                "package": self.package, "version": self.version, "files": self.files,
                "unchanged": self.unchanged, "source": self.source}

    def render(self, console: Console) -> None:
        console.print(f"wrote {self.output} (sha256 {self.sha256[:12]}), pinned to {self.package} {self.version}:",
                      markup=False, highlight=False)
        for f in self.files:
            console.print(f"  {f['path']}  +{f['added']} -{f['removed']}  "
                          f"{f['sha256_before'][:12]} -> {f['sha256_after'][:12]}", markup=False, highlight=False)
        src = self.source
        if src.get("kind") == "image":
            console.print(f"next: mlops patch apply {self.output} --image {src['ref']} --dry-run",
                          markup=False, highlight=False)
