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
        console.print(
            f"{self.target['kind']} {target}: {self.package} {self.version or '(version unknown)'}"
            + (f" in {self.site}" if self.site else ""),
            markup=False,
        )
        for f in self.files:
            console.print(f"  {f['state']:<12} {f['path']}", markup=False, highlight=False)
            console.print(
                f"  {'':<12} sha256 now {_short(f.get('sha256_current'))}, original "
                f"{_short(f.get('sha256_before'))}, patched {_short(f.get('sha256_after'))}"
                + (f" ({f['reason']})" if f.get("reason") else ""),
                markup=False,
                highlight=False,
            )
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
        return {
            "command": "extract",
            "result": "extracted",
            "target": self.target,
            "package": self.package,
            "version": self.version,
            "site": self.site,
            "python": self.python,
            "workdir": self.workdir,
            "files": self.files,
            "notes": self.notes,
        }

    def render(self, console: Console) -> None:
        console.print(
            f"extracted from {self.target['kind']} {self.target['ref']}: {self.package} {self.version} ({self.site})",
            markup=False,
        )
        for f in self.files:
            console.print(f"  {self.workdir}/{f['path']}  sha256 {f['sha256'][:12]}", markup=False, highlight=False)
        console.print(
            f"next: edit the files above, then: mlops patch diff {self.workdir} -o NAME.patch",
            markup=False,
            highlight=False,
        )
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
        return {
            "command": "diff",
            "result": "written",
            "patch": {"path": self.output, "sha256": self.sha256, "pinned": True, "version": self.version},
            "package": self.package,
            "version": self.version,
            "files": self.files,
            "unchanged": self.unchanged,
            "source": self.source,
        }

    def render(self, console: Console) -> None:
        console.print(
            f"wrote {self.output} (sha256 {self.sha256[:12]}), pinned to {self.package} {self.version}:",
            markup=False,
            highlight=False,
        )
        for f in self.files:
            console.print(
                f"  {f['path']}  +{f['added']} -{f['removed']}  {f['sha256_before'][:12]} -> {f['sha256_after'][:12]}",
                markup=False,
                highlight=False,
            )
        src = self.source
        if src.get("kind") == "image":
            console.print(
                f"next: mlops patch apply {self.output} --image {src['ref']} --dry-run", markup=False, highlight=False
            )


@dataclass
class PortReport:
    """`mlops patch port`: the old patch carried to the target's release (or why not)."""

    target: dict
    package: str
    old_version: str
    new_version: str
    patch: dict  # path, sha256 of the old patch
    tool: str  # git | merge3
    result: str = ""  # ported | upstream-fixed | conflict | unchanged
    files: list = field(default_factory=list)  # port.FilePort
    output: dict | None = None  # the new patch: path, sha256, version
    work: str | None = None  # conflict: the work folder to finish
    finish: str | None = None  # conflict: the command that finishes
    base_sources: dict = field(default_factory=dict)
    new_hunks: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return ExitCode.PROBLEM if self.result == "conflict" else ExitCode.OK

    def to_json(self) -> dict[str, Any]:
        return {
            "command": "port",
            "result": self.result,
            "target": self.target,
            "package": self.package,
            "old_version": self.old_version,
            "new_version": self.new_version,
            "patch": self.patch,
            "merge_tool": self.tool,
            "files": [f.to_json() for f in self.files],
            "output": self.output,
            "work": self.work,
            "finish": self.finish,
            "base_sources": self.base_sources,
            "notes": self.notes,
        }

    def render(self, console: Console) -> None:
        def say(line: str) -> None:
            console.print(line, markup=False, highlight=False)

        say(
            f"port {self.patch['path']}: {self.package} {self.old_version} -> {self.new_version} "
            f"({self.target['kind']} {self.target.get('ref')}; merged with {self.tool})"
        )
        for f in self.files:
            say(f"  {f.outcome:<16} {f.path}" + (f" ({f.reason})" if f.reason else ""))
            for h in f.hunks:
                if f.outcome == "upstream-has-it":
                    continue
                moved = "not moved" if h["offset"] == 0 else f"moved {h['offset']:+d} lines"
                say(f"  {'':<16} hunk {h['hunk']}: line {h['old_line']} -> {h['new_line']} ({moved})")
            for note in f.moved:
                say(f"  {'':<16} {note}")
        for note in self.notes:
            say(f"note: {note}")
        if self.result == "ported":
            say(
                f"wrote {self.output['path']} (sha256 {self.output['sha256'][:12]}), pinned to "
                f"{self.package} {self.new_version}"
            )
            say(
                f"next: mlops patch apply {self.output['path']} --{self.target['kind'] if self.target['kind'] != 'local' else 'python'} "
                f"{self.target.get('ref')} --dry-run"
            )
        elif self.result == "upstream-fixed":
            say(f"result: {self.package} {self.new_version} already contains the change; no patch written")
        elif self.result == "unchanged":
            say("result: nothing to port; no patch written")
        elif self.result == "conflict":
            say(f"result: CONFLICT; the merged files, with conflict markers, are in {self.work}")
            say(f"next: edit them (keep what is right between <<<<<<< and >>>>>>>), then: {self.finish}")


@dataclass
class StatusTable:
    """`mlops patch status FOLDER`: every patch in a folder against one target."""

    target: dict
    folder: str
    expect: str  # applied | applicable
    rows: list[dict]
    labels: dict = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        results = [r["result"] for r in self.rows]
        if "invalid" in results:
            return ExitCode.USAGE
        good = {"applied"} if self.expect == "applied" else {"applied", "not-applied"}
        return ExitCode.OK if all(r in good for r in results) else ExitCode.PROBLEM

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rows:
            out[r["result"]] = out.get(r["result"], 0) + 1
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "command": "status",
            "folder": self.folder,
            "target": self.target,
            "expect": self.expect,
            "patches": self.rows,
            "counts": self.counts(),
            "labels": self.labels,
            "ok": self.exit_code == ExitCode.OK,
        }

    def render(self, console: Console) -> None:
        from rich.table import Table

        table = Table(
            title=f"{self.target['kind']} {self.target.get('ref')}: {len(self.rows)} patch(es) in {self.folder}",
            title_justify="left",
            show_edge=False,
            pad_edge=False,
        )
        for column in ("patch", "package", "pinned", "target", "status"):
            table.add_column(column, no_wrap=column != "patch", overflow="fold")
        for r in self.rows:
            table.add_row(
                r["path"].rsplit("/", 1)[-1],
                r["package"] or "-",
                r["pinned_version"] or "(unpinned)",
                r["target_version"] or "-",
                r["result"],
            )
        console.print(table)
        for r in self.rows:
            if r["problem"] and r["result"] != "applied":
                console.print(f"  {r['path'].rsplit('/', 1)[-1]}: {r['problem']}", markup=False, highlight=False)
        counts = ", ".join(f"{n} {k}" for k, n in sorted(self.counts().items()))
        verdict = "ok" if self.exit_code == ExitCode.OK else "NOT ok"
        console.print(f"status: {counts} ({verdict} for --expect {self.expect})", markup=False, highlight=False)


@dataclass
class DockerfileReport:
    """`mlops patch dockerfile`: the Dockerfile text (stdout), and what was checked."""

    image: str
    patch: dict
    package: str
    labels: dict
    text: str
    state: str | None  # the patch's state in the local image, when it could be checked
    notes: list[str] = field(default_factory=list)
    base_image_id: str | None = None
    exit_code: int = ExitCode.OK

    def to_json(self) -> dict[str, Any]:
        return {
            "command": "dockerfile",
            "image": self.image,
            "image_id": self.base_image_id,
            "patch": self.patch,
            "package": self.package,
            "labels": self.labels,
            "checked_state": self.state,
            "dockerfile": self.text,
            "notes": self.notes,
        }

    def render(self, console: Console) -> None:
        console.print(self.text, markup=False, highlight=False, end="", soft_wrap=True)
