"""A dataset_info.json entry read the way LLaMA-Factory's parser reads it (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from mlops_cli.data.findings import Finding
from mlops_cli.data.versions import Rules
from mlops_cli.errors import UsageError

COLUMN_DEFAULTS: dict[str, Optional[str]] = {
    "prompt": "instruction",
    "query": "input",
    "response": "output",
    "history": None,
    "messages": "conversations",
    "system": None,
    "tools": None,
    "images": None,
    "videos": None,
    "audios": None,
    "chosen": None,
    "rejected": None,
    "kto_tag": None,
}
TAG_DEFAULTS: dict[str, Optional[str]] = {
    "role_tag": "from",
    "content_tag": "value",
    "user_tag": "human",
    "assistant_tag": "gpt",
    "observation_tag": "observation",
    "function_tag": "function_call",
    "system_tag": "system",
}
ALPACA_COLUMNS = ("prompt", "query", "response", "history")
ENTRY_KEYS = {
    "hf_hub_url",
    "ms_hub_url",
    "om_hub_url",
    "script_url",
    "cloud_file_name",
    "file_name",
    "formatting",
    "ranking",
    "subset",
    "split",
    "folder",
    "num_samples",
    "columns",
    "tags",
}


@dataclass
class Entry:
    """LLaMA-Factory's DatasetAttr for one local dataset, plus what reading it revealed."""

    name: str
    file_name: Optional[str] = None
    formatting: str = "alpaca"  # as written
    converter: str = "alpaca"  # the converter that runs: alpaca, sharegpt or openai
    ranking: bool = False
    columns: dict[str, Optional[str]] = field(default_factory=lambda: dict(COLUMN_DEFAULTS))
    tags: dict[str, Optional[str]] = field(default_factory=lambda: dict(TAG_DEFAULTS))
    findings: list[Finding] = field(default_factory=list)
    synthesized: bool = False  # built by mlops from the data, not read from dataset_info.json
    unknown_column_keys: list[str] = field(default_factory=list)  # keys of "columns" LLaMA-Factory ignores

    def col(self, key: str) -> Optional[str]:
        return self.columns.get(key)

    def tag(self, key: str) -> Optional[str]:
        return self.tags.get(key)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "file_name": self.file_name,
            "formatting": self.formatting,
            "converter": self.converter,
            "ranking": self.ranking,
            "columns": self.columns,
            "tags": self.tags,
            "from_dataset_info": not self.synthesized,
        }


def read_entry(info: Any, name: str, rules: Rules, *, info_path: str = "dataset_info.json") -> Entry:
    """Parse entry `name` of a loaded dataset_info.json document (UsageError when unusable)."""
    if not isinstance(info, dict):
        raise UsageError(f"{info_path} is not a JSON object of dataset entries")
    if name not in info:
        close = sorted(k for k in info if name.lower() in k.lower())[:5]
        raise UsageError(
            f"Undefined dataset {name} in {info_path}",
            hint=f"entries named like it: {', '.join(close)}"
            if close
            else f"{info_path} has {len(info)} entries; pass one of them with --name",
        )
    raw = info[name]
    if not isinstance(raw, dict):
        raise UsageError(f"entry {name!r} in {info_path} is not a JSON object")
    entry = Entry(name=name)
    out = entry.findings

    def note(code: str, consequence: str, message: str, versions: Optional[str] = None) -> None:
        out.append(Finding(code, consequence, message, file=info_path, versions=versions))

    for key in raw:
        if key not in ENTRY_KEYS:
            hint = {
                "format": ' (did you mean "formatting"? as written the entry is read as alpaca)',
                "file_sha1": " (a checksum LLaMA-Factory stopped reading in 2024-05)",
            }.get(key, "")
            note("entry-unknown-key", "silent", f"entry {name!r}: key {key!r} is ignored by LLaMA-Factory{hint}")
    if any(k in raw for k in ("hf_hub_url", "ms_hub_url", "om_hub_url", "script_url", "cloud_file_name")):
        note(
            "entry-not-local",
            "warn",
            f"entry {name!r} loads from a hub, a script or the cloud; "
            "only its columns and tags are checked against the files given",
        )
    entry.file_name = raw.get("file_name") if isinstance(raw.get("file_name"), str) else None

    formatting = raw.get("formatting", "alpaca")
    entry.formatting = formatting if isinstance(formatting, str) else repr(formatting)
    if formatting == "alpaca":
        entry.converter = "alpaca"
    elif formatting in rules.formatting_values:
        entry.converter = formatting
    elif rules.unknown_formatting_is_sharegpt:
        entry.converter = "sharegpt"
        note(
            "entry-formatting",
            "silent",
            f"entry {name!r}: formatting {formatting!r} is read as sharegpt "
            f'by {rules.label} (anything but "alpaca" is)',
            versions=rules.series,
        )
    else:
        entry.converter = "unknown"
        note(
            "entry-formatting",
            "crash",
            f"entry {name!r}: formatting {formatting!r}: ValueError: Dataset "
            f"converter {formatting} not found. (known: {', '.join(rules.formatting_values)})",
            versions=rules.series,
        )
    entry.ranking = bool(raw.get("ranking", False))

    columns = raw.get("columns")
    if columns is not None:
        if not isinstance(columns, dict):
            raise UsageError(f'entry {name!r}: "columns" is not a JSON object')
        if rules.per_format_columns:
            reset = list(rules.common_columns)
            reset += list(ALPACA_COLUMNS) if entry.converter == "alpaca" else ["messages"]
            if entry.converter != "alpaca" and "tools" not in reset:
                reset.append("tools")
        else:
            reset = list(COLUMN_DEFAULTS)
        for key in reset:
            value = columns.get(key)
            entry.columns[key] = value if isinstance(value, str) else None
        known = set(COLUMN_DEFAULTS)
        for key in columns:
            if key not in known:
                entry.unknown_column_keys.append(key)
                guess = {
                    "instruction": "prompt",
                    "input": "query",
                    "output": "response",
                    "conversations": "messages",
                    "label": "kto_tag",
                    "text": "prompt",
                    "image": "images",
                    "video": "videos",
                    "audio": "audios",
                }.get(key)
                tip = f' (the key is "{guess}": "{key}")' if guess else ""
                note(
                    "entry-unknown-column-key",
                    "silent",
                    f"entry {name!r}: columns key {key!r} is not a LLaMA-Factory column key and is ignored{tip}",
                )
        if entry.converter == "alpaca" and columns and entry.columns["prompt"] is None:
            note(
                "entry-prompt-unset",
                "warn",
                f'entry {name!r}: the columns block has no "prompt", so it is '
                "unset (a columns block resets every key it does not list)",
            )
    tags = raw.get("tags")
    if tags is not None:
        if not isinstance(tags, dict):
            raise UsageError(f'entry {name!r}: "tags" is not a JSON object')
        if rules.tags_need_sharegpt and entry.formatting != "sharegpt":
            note(
                "entry-tags-ignored",
                "silent",
                f'entry {name!r}: "tags" are only read with formatting sharegpt by {rules.label}',
                versions=rules.series,
            )
        else:
            for key in TAG_DEFAULTS:
                value = tags.get(key)
                entry.tags[key] = value if isinstance(value, str) else None
            for key in tags:
                if key not in TAG_DEFAULTS:
                    note("entry-unknown-tag-key", "silent", f"entry {name!r}: tags key {key!r} is ignored")
    if not rules.has_ranking_columns:
        for key in ("chosen", "rejected", "kto_tag"):
            entry.columns[key] = None
    if not rules.has_videos:
        entry.columns["videos"] = None
    if not rules.has_audios:
        entry.columns["audios"] = None
    return entry


def stage_findings(entry: Entry, stage: Optional[str], info_path: str) -> list[Finding]:
    """The loader's stage gate: ranking data only for rm/dpo (and the other pairwise stages)."""
    if stage is None:
        return []
    pairwise = stage in ("rm", "dpo")
    if pairwise != entry.ranking:
        want = "true" if pairwise else "false (or absent)"
        return [
            Finding(
                "entry-stage",
                "fatal",
                f"entry {entry.name!r} has ranking: "
                f"{str(entry.ranking).lower()}, stage {stage} needs ranking: {want}: ValueError: The "
                "dataset is not applicable in the current training stage.",
                file=info_path,
            )
        ]
    return []
