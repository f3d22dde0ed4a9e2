"""The dataset_info.json entry that fits a file (what `check` assumes without --info, what `convert` writes)."""

from __future__ import annotations

from typing import Any, Optional

from mlops_cli.data.entry import Entry, read_entry
from mlops_cli.data.versions import Rules
from mlops_cli.errors import UsageError

FORMATS = ("auto", "alpaca", "sharegpt", "openai")


def detect_format(record: Any) -> str:
    """alpaca, sharegpt (from/value turns) or openai (role/content turns), from one record."""
    if isinstance(record, dict):
        for key in ("conversations", "messages"):
            msgs = record.get(key)
            if isinstance(msgs, list):
                first = next((m for m in msgs if isinstance(m, dict)), {})
                return "openai" if "role" in first or "content" in first else "sharegpt"
    return "alpaca"


def entry_document(record: Any, fmt: str, rules: Rules, file_name: str = "data.json") -> dict[str, Any]:
    """A dataset_info.json entry: only columns the record has (a missing one is a KeyError), tags spelled out."""
    rec = record if isinstance(record, dict) else {}
    if fmt == "auto":
        fmt = detect_format(rec)
    doc: dict[str, Any] = {"file_name": file_name}
    columns: dict[str, str] = {}
    ranking = "chosen" in rec and "rejected" in rec
    if fmt == "alpaca":
        if "instruction" in rec or "output" in rec or ranking:
            for key, col in (
                ("prompt", "instruction"),
                ("query", "input"),
                ("response", "output"),
                ("history", "history"),
            ):
                if col in rec:
                    columns[key] = col
        elif "text" in rec:
            columns["prompt"] = "text"
    else:
        msg_col = (
            "conversations"
            if "conversations" in rec
            else "messages"
            if "messages" in rec
            else ("conversations" if fmt == "sharegpt" else "messages")
        )
        columns["messages"] = msg_col
        doc["formatting"] = "sharegpt"
        if fmt == "openai":
            msgs = rec.get(msg_col) if isinstance(rec.get(msg_col), list) else []
            roles = {m.get("role") for m in msgs if isinstance(m, dict)}
            wants_openai = any(isinstance(m, dict) and m.get("tool_calls") for m in msgs)
            if wants_openai and "openai" in rules.formatting_values:
                doc["formatting"] = "openai"
            tags = {
                "role_tag": "role",
                "content_tag": "content",
                "user_tag": "user",
                "assistant_tag": "assistant",
                "system_tag": "system",
            }
            if "tool" in roles or wants_openai:
                tags["observation_tag"] = "tool"
                tags["function_tag"] = "function_call" if doc["formatting"] == "sharegpt" else "function"
            doc["tags"] = tags
    for key in ("system", "tools", "images", "videos", "audios"):
        if key in rec:
            columns[key] = key
    if ranking:
        doc["ranking"] = True
        columns["chosen"], columns["rejected"] = "chosen", "rejected"
    for col in ("kto_tag", "label"):
        if isinstance(rec.get(col), bool):
            columns["kto_tag"] = col
    doc["columns"] = columns
    return doc


def synthesize_entry(record: Any, fmt: str, rules: Rules) -> Entry:
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}", hint="one of: " + ", ".join(FORMATS))
    if fmt == "openai" and "openai" not in rules.formatting_values:
        fmt_note: Optional[str] = "formatting openai needs LLaMA-Factory 0.9.4+; read as sharegpt with role tags"
    else:
        fmt_note = None
    doc = entry_document(record, fmt, rules)
    entry = read_entry({"(from the data)": doc}, "(from the data)", rules, info_path="(no dataset_info.json)")
    entry.synthesized = True
    entry.findings = []
    del fmt_note
    return entry
