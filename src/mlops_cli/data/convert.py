"""`mlops data convert`: alpaca <-> sharegpt <-> openai, record by record, written atomically.

A record goes through one neutral shape: system, tools, turns [(role, text)], media columns, the
rest of its keys. Roles: user, assistant, system, function (a tool call), observation (a tool result).
"""

from __future__ import annotations

import json
import os
from typing import Any, Optional

from mlops_cli.data.report import ConvertResult
from mlops_cli.data.source import open_dataset, readable_records
from mlops_cli.data.synthesize import detect_format, entry_document
from mlops_cli.data.versions import rules_for
from mlops_cli.errors import OperationFailed, UsageError
from mlops_cli.files import atomic_writer, read_input_json, write_atomic

TARGETS = ("sharegpt", "openai", "alpaca")
SG_ROLE = {
    "human": "user",
    "gpt": "assistant",
    "system": "system",
    "function_call": "function",
    "observation": "observation",
}
SG_TAG = {v: k for k, v in SG_ROLE.items()}
OA_ROLE = {"user": "user", "assistant": "assistant", "system": "system", "tool": "observation", "function": "function"}
OA_TAG = {"user": "user", "assistant": "assistant", "system": "system", "observation": "tool", "function": "function"}
MEDIA = ("images", "videos", "audios")


class Unconvertible(Exception):
    pass


def to_neutral(rec: Any, fmt: str) -> dict[str, Any]:
    if not isinstance(rec, dict):
        raise Unconvertible("the record is not an object")
    rest = dict(rec)
    turns: list[tuple[str, Any]] = []
    system = rest.pop("system", None)
    if fmt == "alpaca":
        for item in rest.pop("history", None) or []:
            if not (isinstance(item, list) and len(item) == 2):
                raise Unconvertible(f"history item {item!r:.60} is not a [question, answer] pair")
            turns += [("user", item[0]), ("assistant", item[1])]
        instruction, query = rest.pop("instruction", None), rest.pop("input", None)
        user = "\n".join(x for x in (instruction, query) if x)
        output = rest.pop("output", None)
        if not isinstance(output, str) and not ("chosen" in rest and "rejected" in rest):
            raise Unconvertible("output is not text")
        turns.append(("user", user))
        if isinstance(output, str):
            turns.append(("assistant", output))
    else:
        key = "conversations" if "conversations" in rest else "messages"
        msgs = rest.pop(key, None)
        if not isinstance(msgs, list):
            raise Unconvertible(f"no {key} list")
        role_key, content_key, table = ("from", "value", SG_ROLE) if fmt == "sharegpt" else ("role", "content", OA_ROLE)
        for n, m in enumerate(msgs, 1):
            if not isinstance(m, dict):
                raise Unconvertible(f"turn {n} is not an object")
            tag = m.get(role_key)
            if tag not in table:
                raise Unconvertible(f"turn {n} has role {tag!r}, which {fmt} does not define")
            content = m.get(content_key)
            if fmt == "openai" and m.get("tool_calls"):
                content = json.dumps([c.get("function") for c in m["tool_calls"]], ensure_ascii=False)
                tag = "function"
            elif not isinstance(content, str):
                raise Unconvertible(f"turn {n} has no text ({type(content).__name__})")
            turns.append((table[tag], content))
        if turns and turns[0][0] == "system" and system is None:
            system = turns.pop(0)[1]
    for side in ("chosen", "rejected"):
        if isinstance(rest.get(side), dict):
            m = rest[side]
            rest[side] = m.get("value", m.get("content"))
    return {"system": system, "turns": turns, "rest": rest}


def from_neutral(n: dict[str, Any], to: str) -> dict[str, Any]:
    turns, system, rest = n["turns"], n["system"], dict(n["rest"])
    if to == "alpaca":
        if any(r not in ("user", "assistant") for r, _ in turns):
            raise Unconvertible("tool turns have no place in alpaca")
        ranking = "chosen" in rest and "rejected" in rest
        pairs = turns if ranking else turns[:-1]
        if ranking and len(turns) % 2 == 0:
            raise Unconvertible("a ranking prompt must end on a user turn")
        if not ranking and (len(turns) < 2 or turns[-1][0] != "assistant"):
            raise Unconvertible("the conversation does not end on an answer")
        if [r for r, _ in pairs[:-1]] != ["user", "assistant"] * ((len(pairs) - 1) // 2) or pairs[-1][0] != "user":
            raise Unconvertible("turns do not alternate user/assistant")
        out: dict[str, Any] = {"instruction": pairs[-1][1], "input": ""}
        if not ranking:
            out["output"] = turns[-1][1]
        if system is not None:
            out["system"] = system
        if len(pairs) > 1:
            out["history"] = [[pairs[i][1], pairs[i + 1][1]] for i in range(0, len(pairs) - 1, 2)]
        out.update(rest)
        return out
    if to == "sharegpt":
        msgs = [{"from": SG_TAG[r], "value": c} for r, c in turns]
        out = {"conversations": msgs}
        if system is not None:
            out["system"] = system
        for side in ("chosen", "rejected"):
            if side in rest and isinstance(rest[side], str):
                rest[side] = {"from": "gpt", "value": rest[side]}
        out.update(rest)
        return out
    msgs = ([{"role": "system", "content": system}] if system else []) + [
        {"role": OA_TAG[r], "content": c} for r, c in turns
    ]
    out = {"messages": msgs}
    for side in ("chosen", "rejected"):
        if side in rest and isinstance(rest[side], str):
            rest[side] = {"role": "assistant", "content": rest[side]}
    out.update(rest)
    return out


def run_convert(
    source: str,
    output: str,
    to: str,
    *,
    info: Optional[str] = None,
    name: Optional[str] = None,
    strict: bool = False,
    fmt: str = "auto",
) -> ConvertResult:
    if to not in TARGETS:
        raise UsageError(f"unknown target format {to!r}", hint="--to sharegpt, openai or alpaca")
    if (info is None) != (name is None):
        raise UsageError("--info and --name go together")
    if os.path.abspath(source) == os.path.abspath(output):
        raise UsageError("the output would overwrite the input", hint="write to another file")
    doc = None
    if info is not None and os.path.exists(info):
        doc = read_input_json(info, what="dataset_info.json", max_bytes=64 << 20)
        if not isinstance(doc, dict):
            raise UsageError(f"{info} is not a JSON object of dataset entries")
    lines = output.endswith(".jsonl")
    skipped: list[dict[str, Any]] = []
    written = 0
    first_out: Any = None
    with open_dataset(source) as opened, atomic_writer(output) as fh:
        fh.write(b"" if lines else b"[\n")
        src_fmt = None
        for n, event in enumerate(readable_records(opened), 1):
            src_fmt = src_fmt or (detect_format(event.value) if fmt == "auto" else fmt)
            try:
                rec = from_neutral(to_neutral(event.value, src_fmt), to)
            except Unconvertible as exc:
                skipped.append({"record": n, "line": event.line, "reason": str(exc)})
                if strict:
                    raise OperationFailed(
                        f"record {n} (line {event.line}) cannot be converted: {exc}",
                        hint="without --strict such records are listed and skipped",
                    ) from None
                continue
            text = json.dumps(rec, ensure_ascii=False)
            if lines:
                fh.write(text.encode() + b"\n")
            else:
                fh.write((b",\n" if written else b"") + text.encode())
            written += 1
            first_out = first_out if first_out is not None else rec
        fh.write(b"" if lines else b"\n]\n")
    entry = None
    if info is not None:
        base = os.path.dirname(os.path.abspath(info))
        rel = os.path.relpath(os.path.abspath(output), base)
        entry = entry_document(first_out or {}, "openai" if to == "openai" else to, rules_for(None), rel)
        merged = dict(doc or {})
        merged[name] = entry
        write_atomic(info, json.dumps(merged, ensure_ascii=False, indent=2) + "\n")
    return ConvertResult(source, output, to, written, skipped, name, info, entry, strict)
