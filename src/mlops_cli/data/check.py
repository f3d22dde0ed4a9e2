"""`mlops data check`: stream the files, judge each record, gather the findings (no printing here)."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional

from mlops_cli.data.emulate import Context, evaluate
from mlops_cli.data.entry import Entry, read_entry, stage_findings
from mlops_cli.data.findings import Finding
from mlops_cli.data.kto import KlPairs
from mlops_cli.data.loading import SchemaTracker, describe
from mlops_cli.data.parse import duplicate_keys, may_repeat_keys, parser_name
from mlops_cli.data.readers import Broken, Record
from mlops_cli.data.report import CheckResult
from mlops_cli.data.source import KIND_BUILDER, dataset_files, extension_builder, open_dataset
from mlops_cli.data.synthesize import synthesize_entry
from mlops_cli.data.templates import template_for
from mlops_cli.data.versions import Rules, rules_for
from mlops_cli.errors import UsageError
from mlops_cli.files import read_input_json

INFO_MAX = 64 << 20
STAGES = ("sft", "rm", "dpo", "kto", "pt")


@dataclass
class CheckOptions:
    files: list[str]
    info: Optional[str] = None
    name: Optional[str] = None
    fmt: str = "auto"
    stage: Optional[str] = None
    media_dir: Optional[str] = None
    version: Optional[str] = None
    max_findings: int = 1000
    template: Optional[str] = None  # LLaMA-Factory's `template:`; None: assumed from the data


class Collector:
    """Keeps the first `limit` findings and counts all of them (memory stays flat)."""

    def __init__(self, limit: int):
        self.limit = limit
        self.kept: list[Finding] = []
        self.counts: Counter = Counter()
        self.left_out = 0

    def add(self, finding: Finding) -> None:
        self.counts[finding.code] += 1
        if self.limit and len(self.kept) >= self.limit:
            self.left_out += 1
            return
        self.kept.append(finding)


def load_entry(opts: CheckOptions, rules: Rules) -> Optional[Entry]:
    if (opts.info is None) != (opts.name is None):
        raise UsageError(
            "--info and --name go together", hint="mlops data check --info data/dataset_info.json --name my_dataset"
        )
    if opts.info is None:
        return None
    info = read_input_json(opts.info, what="dataset_info.json", max_bytes=INFO_MAX)
    return read_entry(info, opts.name, rules, info_path=opts.info)


def run_check(opts: CheckOptions, progress: Optional[Callable[[int], None]] = None) -> CheckResult:
    rules = rules_for(opts.version)
    if opts.stage is not None and opts.stage not in STAGES:
        raise UsageError(f"unknown stage {opts.stage!r}", hint="one of: " + ", ".join(STAGES))
    if opts.template is not None:
        template_for(opts.template, rules, media_mapped=False)  # an unknown name is exit 2 before any work
    entry = load_entry(opts, rules)
    paths = dataset_files(opts.files, entry.file_name if entry else None, opts.info)
    if not paths:
        raise UsageError("no data file given", hint="mlops data check FILE [--info dataset_info.json --name NAME]")
    media_dir = opts.media_dir
    if media_dir is None and opts.info and opts.info != "-":
        media_dir = os.path.dirname(os.path.abspath(opts.info))  # LLaMA-Factory's default: dataset_dir
    if media_dir is not None and not os.path.isdir(media_dir):
        raise UsageError(f"--media-dir {media_dir} is not a folder")
    out = Collector(opts.max_findings)
    files_json: list[dict[str, Any]] = []
    tracker: Optional[SchemaTracker] = None
    ctx: Optional[Context] = None
    result_counts = Counter()
    first_crash: Optional[dict[str, Any]] = None
    load_fails = False
    refused: Optional[str] = None  # LLaMA-Factory refuses the entry before it loads the file
    kl: Optional[KlPairs] = None
    number = 0  # record number across files, 1-based
    done_bytes = 0
    for path in paths:
        with open_dataset(path, as_llamafactory=True) as opened:
            files_json.append({"path": path, "kind": opened.kind, "bytes": opened.size})
            load_fails |= _file_findings(opened, path, out)
            if opened.kind not in ("lines", "objects", "array", "parquet", "text"):
                continue
            if tracker is None:
                tracker = SchemaTracker(lines_mode=opened.kind in ("lines", "objects", "text"))
            else:
                tracker.new_file()
            for event in opened.events:
                if isinstance(event, Broken):
                    load_fails = True
                    odd = event.oddity
                    out.add(
                        Finding(
                            "json-syntax",
                            "fatal",
                            odd.message + _fails_how(opened.kind),
                            file=path,
                            line=odd.line,
                            column=odd.column,
                            offset=odd.offset,
                        )
                    )
                    if event.fatal_for_rest:
                        break
                    continue
                number += 1
                if ctx is None:
                    if entry is None:
                        entry = synthesize_entry(event.value, opts.fmt, rules)
                    stage = opts.stage or _default_stage(entry)
                    for f in stage_findings(entry, opts.stage, opts.info or "dataset_info.json"):
                        refused = refused or f.message
                        out.add(f)
                    for f in entry.findings:
                        out.add(f)
                        load_fails |= f.consequence in ("fatal",)
                    ctx = Context(entry, rules, stage, media_dir, template_name=opts.template)
                    ctx.media_meant = media_meant(entry, event.value)
                    kl = KlPairs(rules.version, rules.batched) if stage == "kto" else None
                if event.oddity is not None:
                    load_fails |= _oddity_finding(event, opened.kind, path, number, out)
                tracker.add(event.value, event.line, number, event.offset, event.end)
                if event.raw and type(event.value) is dict and may_repeat_keys(event.raw, tracker.keys):
                    load_fails |= _duplicate_findings(event, opened.kind, path, number, out)
                ctx.record = number
                outcome = evaluate(event.value, ctx)
                result_counts[outcome.verdict] += 1
                for issue in outcome.issues:
                    out.add(
                        Finding(
                            issue.code,
                            issue.consequence,
                            issue.message,
                            file=path,
                            record=number,
                            line=event.line or None,
                            versions=_versions(issue.code, rules),
                        )
                    )
                if outcome.verdict == "crash":
                    first_crash = _earlier(
                        first_crash,
                        {
                            "record": number,
                            "line": event.line or None,
                            "file": path,
                            "message": outcome.issues[-1].message,
                            "stage": outcome.crash_stage,
                        },
                    )
                if kl is not None:
                    first_crash = _kl_crashes(
                        kl.add(number, event.line or None, path, outcome), out, result_counts, first_crash
                    )
                if progress is not None and number % 4096 == 0:
                    progress(done_bytes + event.end)
        done_bytes += opened.size or 0
    if kl is not None:
        first_crash = _kl_crashes(kl.finish(), out, result_counts, first_crash)
    if ctx is None:
        entry = entry or synthesize_entry(None, opts.fmt, rules)
        ctx = Context(entry, rules, opts.stage or _default_stage(entry), media_dir, template_name=opts.template)
        for f in entry.findings:
            out.add(f)
    if tracker is not None:
        tracker.finish()
        seen = set()
        for conflict in tracker.conflicts:
            if conflict.path in seen:
                continue
            seen.add(conflict.path)
            load_fails = True
            out.add(
                Finding(
                    "column-kinds",
                    "fatal",
                    describe(conflict, tracker.lines_mode),
                    file=paths[0] if len(paths) == 1 else None,
                    record=conflict.first_record,
                    line=conflict.first_line,
                )
            )
        first_crash = _settle_absent(ctx, tracker, out, first_crash)
    if number == 0 and not load_fails:
        load_fails = True
        out.add(
            Finding(
                "no-records",
                "fatal",
                'no records: datasets fails (SchemaInferenceError / Instruction "train" corresponds to no data!)',
                file=paths[0],
            )
        )
    if number and result_counts["keep"] == 0 and not first_crash and not load_fails and not refused:
        out.add(
            Finding(
                "no-valid-samples",
                "fatal",
                "every record is dropped: RuntimeError: Cannot find valid "
                "samples, check `data/README.md` for the data format.",
            )
        )
    return CheckResult(
        files=files_json,
        entry=ctx.entry.to_json(),
        version=rules.version,
        stage=ctx.stage,
        template={
            "name": ctx.template.name or ("qwen2_vl" if ctx.media_cols else "qwen"),
            "assumed": ctx.template.name is None,
            "table_release": ctx.template.release,
        },
        parser=parser_name(),
        findings=out.kept,
        counts=dict(out.counts),
        records=number,
        keep=result_counts["keep"],
        drop=result_counts["drop"],
        crash=result_counts["crash"],
        first_crash=first_crash,
        load_fails=load_fails,
        findings_left_out=out.left_out,
        refused=refused,
    )


_MEDIA_WORDS = ("image", "img", "picture", "photo", "video", "audio", "speech")


def media_meant(entry: Entry, first: Any) -> bool:
    """Media were meant though the entry maps none: a columns key like "image"/"video" that
    LLaMA-Factory ignores, or a media-like column of the data that no key maps."""
    if any(entry.col(k) for k in ("images", "videos", "audios")):
        return False
    mapped = {v for v in entry.columns.values() if v}
    names = set(entry.unknown_column_keys) | (
        {k for k in first if k not in mapped} if isinstance(first, dict) else set()
    )
    return any(word in str(name).lower() for name in names for word in _MEDIA_WORDS)


def _default_stage(entry: Entry) -> str:
    if entry.ranking:
        return "dpo"
    if entry.col("kto_tag"):
        return "kto"
    if entry.converter == "alpaca" and entry.col("prompt") and not entry.col("response") and not entry.col("query"):
        return "pt"
    return "sft"


def _fails_how(kind: str) -> str:
    if kind == "array":
        return (
            ' -> datasets fails the whole file (shown as the misleading "ArrowInvalid: JSON parse error: '
            'Column() changed from object to array in row 0")'
        )
    return " -> datasets fails the whole file (ArrowInvalid: JSON parse error)"


def _file_findings(opened, path: str, out: Collector) -> bool:
    """Findings about the file as a whole; True when datasets cannot load it."""
    kind = opened.kind
    fails = False
    if kind == "utf16":
        out.add(
            Finding(
                "encoding",
                "fatal",
                "the file is UTF-16 (it starts with a UTF-16 byte order mark); "
                "datasets reads UTF-8 only: re-save it as UTF-8",
                file=path,
                offset=0,
            )
        )
        return True
    if kind in ("empty",):
        out.add(
            Finding(
                "empty-file",
                "fatal",
                "the file is empty: datasets fails (SchemaInferenceError: Please "
                "pass `features` or at least one example when writing data)",
                file=path,
            )
        )
        return True
    if kind in ("other", "gzip", "arrow"):
        what = {
            "other": "neither JSON, JSON Lines nor Parquet",
            "gzip": "gzip-compressed",
            "arrow": "an Arrow file (not checked record by record)",
        }[kind]
        out.add(Finding("not-json", "fatal" if kind != "arrow" else "warn", f"the content is {what}", file=path))
        return kind != "arrow"
    if opened.bom:
        if kind == "array":
            out.add(
                Finding(
                    "bom",
                    "fatal",
                    "the file starts with a UTF-8 byte order mark (BOM): datasets 2.16-4.0 "
                    'fails the whole JSON array ("ArrowInvalid: JSON parse error: Column() changed from '
                    'object to array in row 0"); re-save without BOM',
                    file=path,
                    line=1,
                    offset=0,
                )
            )
            fails = True
        else:
            out.add(
                Finding(
                    "bom",
                    "warn",
                    "the file starts with a UTF-8 byte order mark (BOM): harmless for JSON "
                    "Lines in datasets, but other tools choke on it",
                    file=path,
                    line=1,
                    offset=0,
                )
            )
    builder = extension_builder(path) if path != "-" else "json"
    want = KIND_BUILDER.get(kind)
    if builder is None:
        out.add(
            Finding(
                "file-extension",
                "fatal",
                f"LLaMA-Factory picks the loader by extension and knows "
                f"{os.path.splitext(path)[1] or 'no extension'!r} not: ValueError: Allowed file types: "
                "arrow,csv,json,jsonl,parquet,txt.",
                file=path,
            )
        )
        fails = True
    elif want and builder != want:
        out.add(
            Finding(
                "file-extension",
                "fatal",
                f"the content is {kind} but the name ends "
                f"{os.path.splitext(path)[1]!r}: LLaMA-Factory picks the {builder} loader by extension "
                "and it fails",
                file=path,
            )
        )
        fails = True
    elif kind == "text" and opened.looks in ("array", "lines", "objects"):
        out.add(
            Finding(
                "file-extension",
                "warn",
                f"the content is JSON ({opened.looks}) but the name ends '.txt': "
                "LLaMA-Factory hands it to datasets' text loader, which does not parse JSON: every line "
                "becomes one record with a single column 'text' (rename it .json or .jsonl)",
                file=path,
            )
        )
    elif kind == "array" and path.endswith(".jsonl"):
        out.add(
            Finding(
                "file-extension",
                "warn",
                "a JSON array in a .jsonl file: datasets reads it all the same "
                "(it ignores the extension), other tools may not",
                file=path,
            )
        )
    return fails


def _oddity_finding(event: Record, kind: str, path: str, number: int, out: Collector) -> bool:
    odd = event.oddity
    lines = kind != "array"
    fatal = {"nan": False, "control": lines, "surrogate": lines, "bigint": not lines, "utf8": not lines}[odd.kind]
    consequence = "fatal" if fatal else "warn"
    how = {
        ("nan", True): "datasets (pyarrow) reads it as a number: fatal if the column holds text elsewhere",
        ("nan", False): "datasets (pandas) reads it as null; datasets 2.16-2.20 (json + pyarrow) fail on it",
        ("control", True): "pyarrow refuses it: ArrowInvalid: JSON parse error: Invalid encoding in string",
        ("control", False): "pandas accepts it",
        ("surrogate", True): "pyarrow refuses it: The surrogate pair in string is invalid",
        ("surrogate", False): "pandas accepts it",
        ("bigint", False): "pandas refuses it: the whole file fails",
        ("bigint", True): "pyarrow reads it as a float",
        ("utf8", True): "datasets loads the file, then the run dies on this record: UnicodeDecodeError",
        ("utf8", False): "pandas fails the whole file: UnicodeDecodeError",
    }[(odd.kind, lines)]
    if odd.kind == "utf8" and lines:
        consequence = "crash"
    out.add(
        Finding(
            {"nan": "nan", "control": "control-char", "surrogate": "surrogate", "bigint": "big-number", "utf8": "utf8"}[
                odd.kind
            ],
            consequence,
            f"{odd.message}: {how}",
            file=path,
            record=number,
            line=odd.line,
            offset=odd.offset,
        )
    )
    return fatal


def _duplicate_findings(event: Record, kind: str, path: str, number: int, out: Collector) -> bool:
    """A key written twice in one object: pyarrow fails the file when it is a column (JSON Lines);
    elsewhere the last value silently wins. True when the file does not load."""
    top, nested = duplicate_keys(event.raw)
    fatal = bool(top) and kind != "array"
    if top:
        if fatal:
            message = (
                f"key {top[0]!r} is written twice in this record: datasets fails the whole file "
                f"(ArrowInvalid: JSON parse error: Column(/{top[0]}) was specified twice in row N)"
            )
        else:
            message = f"key {top[0]!r} is written twice in this record: the last value is used, the first ignored"
        out.add(
            Finding("duplicate-key", "fatal" if fatal else "silent", message, file=path, record=number, line=event.line)
        )
    if nested:
        out.add(
            Finding(
                "duplicate-key",
                "silent",
                f"key {nested[0]!r} is written twice in an object inside this "
                "record: the last value is used, the first ignored",
                file=path,
                record=number,
                line=event.line,
            )
        )
    return fatal


def _versions(code: str, rules: Rules) -> Optional[str]:
    if code in (
        "role-order",
        "unknown-role",
        "odd-count-cut",
        "ranking-role",
        "media-null",
        "empty-messages",
        "messages-null",
    ):
        return rules.series
    return None


def _settle_absent(
    ctx: Context, tracker: SchemaTracker, out: Collector, first_crash: Optional[dict[str, Any]]
) -> Optional[dict[str, Any]]:
    """Keys read but absent from the whole file are a KeyError at the first record that reads them."""
    crashes = []
    for key, record in ctx.absent.items():
        if key.startswith("tool_calls-null:"):
            if "tool_calls" in tracker.msg_keys:
                crashes.append(
                    (
                        record,
                        "TypeError: object of type 'NoneType' has no len() (an assistant turn "
                        "without tool_calls while other turns have them)",
                        "tool-calls-null",
                    )
                )
            continue
        if key.startswith("message:"):
            name = key[len("message:") :]
            if name not in tracker.msg_keys:
                crashes.append(
                    (
                        record,
                        f"KeyError: {name!r} (no message in the file has this key; check the "
                        "entry's tags role_tag/content_tag)",
                        "tag-absent",
                    )
                )
            continue
        if key not in tracker.top_keys:
            crashes.append(
                (
                    record,
                    f"KeyError: {key!r} (the entry maps a column the file does not have; the "
                    f"file's columns: {', '.join(sorted(tracker.top_keys)) or 'none'})",
                    "column-absent",
                )
            )
    # by record; within a record in the order the converter reads the keys (the first one is the KeyError)
    for record, message, code in sorted(crashes, key=lambda c: c[0]):
        out.add(
            Finding(
                code, "crash", message, record=record, versions=ctx.rules.series if code == "tool-calls-null" else None
            )
        )
        first_crash = _earlier(first_crash, {"record": record, "line": None, "message": message, "stage": "conversion"})
    return first_crash


def _kl_crashes(
    crashes: list, out: Collector, counts: Counter, first_crash: Optional[dict[str, Any]]
) -> Optional[dict[str, Any]]:
    """Records KTO's KL pass crashes on (kto.py): they were counted as kept."""
    for member, message in crashes:
        if member.outcome.verdict == "keep":
            counts["keep"] -= 1
            counts["crash"] += 1
        member.outcome.verdict = "crash"
        out.add(Finding("kto-kl-pair", "crash", message, file=member.path, record=member.number, line=member.line))
        crash = {
            "record": member.number,
            "line": member.line,
            "file": member.path,
            "message": message,
            "stage": "tokenization",
        }
        if first_crash and first_crash["record"] == member.number and first_crash.get("stage") == "tokenization":
            first_crash = crash  # the pairing fails before the record's own messages are processed
        first_crash = _earlier(first_crash, crash)
    return first_crash


def _earlier(have: Optional[dict[str, Any]], new: dict[str, Any]) -> dict[str, Any]:
    """The crash the run dies on first: every record is converted before any is tokenized, so a
    conversion crash comes before a tokenization one, whatever their order in the file."""
    if have is None:
        return new
    rank = {"conversion": 0}
    key = lambda c: (rank.get(c.get("stage"), 1), c["record"])  # noqa: E731
    return new if key(new) < key(have) else have
