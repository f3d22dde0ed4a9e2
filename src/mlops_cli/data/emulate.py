"""What LLaMA-Factory's converter, processor and formatter do with one record (pure).

The record is taken as `datasets` hands it over: every column of the file is present (absent
ones are None). A key the whole file lacks raises KeyError in LLaMA-Factory; such reads are
reported through `Context.absent` and settled once the whole file has been seen.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Optional

from mlops_cli.data.entry import Entry
from mlops_cli.data.templates import Template, template_for
from mlops_cli.data.versions import Rules

PLACEHOLDERS = {"images": "<image>", "videos": "<video>", "audios": "<audio>"}
ROLE = {
    "user": "user",
    "assistant": "assistant",
    "observation": "observation",
    "function": "function",
    "system": "system",
}


class Crash(Exception):
    """The run dies at this record (an exception LLaMA-Factory does not catch)."""

    def __init__(self, code: str, message: str, stage: Optional[str] = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.stage = stage  # "conversion" or "tokenization"; None: where it was raised


@dataclass
class Issue:
    code: str
    consequence: str  # crash, drop, silent, warn
    message: str


@dataclass(slots=True)
class Outcome:
    verdict: str = "keep"  # keep, drop, crash
    issues: list[Issue] = field(default_factory=list)
    turns: int = 0
    prompt: list[tuple[str, Any]] = field(default_factory=list)
    response: list[tuple[str, Any]] = field(default_factory=list)
    system: Any = ""
    # where the run dies on it: "conversion" (every record is converted before any is tokenized, so
    # such a crash comes first) or "tokenization"
    crash_stage: str = ""
    media: Optional[dict] = None  # kind -> media count, for the kinds the plugin counts (KTO's KL pass)

    def add(self, code: str, consequence: str, message: str) -> None:
        self.issues.append(Issue(code, consequence, message))


@dataclass
class Context:
    """What one check run knows across records: keys seen, keys read but not (yet) seen."""

    entry: Entry
    rules: Rules
    stage: str
    media_dir: Optional[str] = None  # None: do not look for media files
    template_name: Optional[str] = None  # --template; None: assumed from the data (templates.py)
    top_keys: set = field(default_factory=set)
    msg_keys: set = field(default_factory=set)
    # key -> first record (1-based) that read it while it was absent from the record
    absent: dict[str, int] = field(default_factory=dict)
    record: int = 0

    def __post_init__(self) -> None:
        # Read once: the entry does not change while records are judged.
        e = self.entry
        self.role_tag, self.content_tag = e.tag("role_tag"), e.tag("content_tag")
        self.system_tag = e.tag("system_tag")
        self.mapping = _tag_mapping(e)
        self.odd = (e.tag("user_tag"), e.tag("observation_tag"))
        self.even = (e.tag("assistant_tag"), e.tag("function_tag"))
        self.media_cols = {k: e.col(k) for k in PLACEHOLDERS if e.col(k)}
        self.template: Template = template_for(self.template_name, self.rules, bool(self.media_cols))
        # Without --template: placeholders are counted (a multimodal template) when the entry maps a
        # media column, or when the data says media were meant (a media-like column or columns key
        # the entry does not map, set by check.py once seen).
        self.media_meant = False

    def get(self, rec: dict, key: Optional[str]) -> Any:
        if key is None:
            raise Crash("column-unset", "KeyError: None (the entry maps no column for a key this record needs)")
        if key in rec:
            return rec[key]
        self.absent.setdefault(key, self.record)
        return None

    def mget(self, msg: Any, key: Optional[str]) -> Any:
        if not isinstance(msg, dict):
            raise Crash("message-not-object", f"TypeError: a message is {_kind(msg)}, not an object: {_short(msg)}")
        if key is None:
            raise Crash("tag-unset", "KeyError: None (the entry's tags leave role_tag/content_tag unset)")
        if key in msg:
            return msg[key]
        self.absent.setdefault("message:" + key, self.record)
        return None


def _kind(v: Any) -> str:
    return {
        str: "a string",
        int: "a number",
        float: "a number",
        bool: "a boolean",
        list: "a list",
        dict: "an object",
        type(None): "null",
    }.get(type(v), type(v).__name__)


def _short(v: Any, n: int = 80) -> str:
    text = json.dumps(v, ensure_ascii=False, default=str) if not isinstance(v, str) else repr(v)
    return text if len(text) <= n else text[: n - 3] + "..."


def _py(v: Any, n: int = 40) -> str:
    """A value as Python prints it in LLaMA-Factory's own messages (None, not null), shortened."""
    text = repr(v)
    return text if len(text) <= n else text[: n - 3] + "..."


def _roles(msgs: list, ctx: Context) -> list:
    return [ctx.mget(m, ctx.entry.tag("role_tag")) if isinstance(m, dict) else None for m in msgs]


# --- converters -------------------------------------------------------------------------


def convert_alpaca(rec: dict, ctx: Context, out: Outcome) -> None:
    e, rules = ctx.entry, ctx.rules
    if rules.batched and e.col("prompt") is None:
        raise Crash("column-unset", "KeyError: None (no prompt column mapped; this release loops over it)")
    prompt: list[tuple[str, Any]] = []
    hist_col = e.col("history")
    if hist_col:
        history = ctx.get(rec, hist_col)
        if isinstance(history, list):
            for n, item in enumerate(history, 1):
                try:
                    old_prompt, old_response = item
                except (TypeError, ValueError) as exc:
                    raise Crash(
                        "history-item",
                        f"{type(exc).__name__}: {exc} (history item {n}: "
                        f"{_short(item)}; each item must be a [question, answer] pair)",
                    ) from None
                prompt += [("user", old_prompt), ("assistant", old_response)]
        elif history is not None:
            out.add("history-ignored", "silent", f"history is {_kind(history)}, not a list: ignored")
    query = []
    for key in ("prompt", "query"):
        col = e.col(key)
        if col:
            value = ctx.get(rec, col)
            if value:
                query.append(value)
    try:
        user = "\n".join(query)
    except TypeError as exc:
        raise Crash("prompt-not-text", f"TypeError: {exc} (instruction/input must be text)") from None
    prompt.append(("user", user))
    if not user:
        out.add("empty-prompt", "warn", "instruction and input are both empty: the prompt is empty")

    response: list[tuple[str, Any]] = []
    kto_col, resp_col = e.col("kto_tag"), e.col("response")
    if rules.has_ranking_columns:
        if kto_col and isinstance(ctx.get(rec, kto_col), bool):
            answer = ctx.get(rec, resp_col)
            response = [("assistant", answer), ("assistant", "")]
            if not ctx.get(rec, kto_col):
                response.reverse()
        elif (
            e.ranking
            and isinstance(ctx.get(rec, e.col("chosen")), str)
            and isinstance(ctx.get(rec, e.col("rejected")), str)
        ):
            response = [("assistant", ctx.get(rec, e.col("chosen"))), ("assistant", ctx.get(rec, e.col("rejected")))]
        elif resp_col and isinstance(ctx.get(rec, resp_col), str):
            response = [("assistant", ctx.get(rec, resp_col))]
        else:
            _why_no_response(rec, ctx, out)
    else:
        value = ctx.get(rec, resp_col) if resp_col else None
        if isinstance(value, list):
            response = [("assistant", v) for v in value]
        elif isinstance(value, str):
            response = [("assistant", value)]
    out.prompt, out.response = prompt, response
    out.system = ctx.get(rec, e.col("system")) if e.col("system") else ""


def _why_no_response(rec: dict, ctx: Context, out: Outcome) -> None:
    e = ctx.entry
    if e.ranking:
        for key in ("chosen", "rejected"):
            col = e.col(key)
            if col and col in rec and not isinstance(rec[col], str):
                out.add("ranking-not-text", "warn", f"{key} ({col!r}) is {_kind(rec[col])}, not text")
        return
    col = e.col("response")
    if col and col in rec:
        out.add("output-not-text", "warn", f"output ({col!r}) is {_kind(rec[col])}, not text: no answer to train on")


def _tag_mapping(e: Entry) -> dict:
    mapping: dict = {}
    for key, role in (
        ("user_tag", "user"),
        ("assistant_tag", "assistant"),
        ("observation_tag", "observation"),
        ("function_tag", "function"),
        ("system_tag", "system"),
    ):
        mapping[e.tag(key)] = role
    return mapping


def _split_system(msgs: list, rec: dict, ctx: Context, allow_get_default: bool = False) -> tuple[list, Any]:
    e = ctx.entry
    system_tag = ctx.system_tag
    if system_tag:
        if ctx.rules.batched and len(msgs) == 0:
            raise Crash("empty-messages", "IndexError: list index out of range (empty message list)")
        if len(msgs) != 0 and ctx.mget(msgs[0], ctx.role_tag) == system_tag:
            return msgs[1:], ctx.mget(msgs[0], ctx.content_tag)
    col = e.col("system")
    if not col:
        return msgs, ""
    if allow_get_default:
        return msgs, rec.get(col, "")
    return msgs, ctx.get(rec, col)


def _messages(rec: dict, ctx: Context) -> list:
    e = ctx.entry
    msgs = ctx.get(rec, e.col("messages"))
    if msgs is None:
        raise Crash(
            "messages-null",
            f"TypeError: object of type 'NoneType' has no len() (messages column "
            f"{e.col('messages')!r} is null or absent)",
        )
    if not isinstance(msgs, list):
        raise Crash("messages-not-list", f"TypeError: messages ({e.col('messages')!r}) is {_kind(msgs)}, not a list")
    return msgs


def convert_sharegpt(rec: dict, ctx: Context, out: Outcome) -> None:
    e, rules = ctx.entry, ctx.rules
    role_tag, content_tag, mapping = ctx.role_tag, ctx.content_tag, ctx.mapping
    odd, even = ctx.odd, ctx.even
    msgs, system = _split_system(_messages(rec, ctx), rec, ctx)
    if rules.odd_count == "cut" and len(msgs) % 2:
        out.add(
            "odd-count-cut",
            "silent",
            f"{len(msgs)} turns: the last turn ({_short(_roles(msgs, ctx)[-1])}) is cut off without a word",
        )
        msgs = msgs[: len(msgs) // 2 * 2]
    if rules.batched and len(msgs) == 0:
        out.verdict = "drop"
        out.add("empty-messages", "drop", "no turns (after the system turn): skipped")
        return
    out.turns = len(msgs)
    aligned: list[tuple[str, Any]] = []
    broken: Optional[str] = None
    accept = (odd, even)
    for idx, msg in enumerate(msgs):
        role = msg[role_tag] if type(msg) is dict and role_tag in msg else ctx.mget(msg, role_tag)
        if role not in accept[idx & 1]:
            want = " or ".join(repr(t) for t in (odd, even)[idx % 2] if t)
            reason = _role_reason(role, idx, mapping, e)
            text = f"turn {idx + 1} is {role!r}, expected {want}{reason}: Invalid role tag"
            if rules.role_check == "raise":
                raise Crash("role-order", f"ValueError: {text} (this release stops the run)")
            if broken is None:
                broken = text
            if rules.role_check == "break":
                break
        try:
            mapped = mapping[role]
        except (KeyError, TypeError):
            mapped = _mapped(role, mapping, idx, e)
        aligned.append((mapped, msg[content_tag] if content_tag in msg else ctx.mget(msg, content_tag)))
    count_bad = (not e.ranking and len(aligned) % 2 != 0) or (e.ranking and len(aligned) % 2 == 0)
    if count_bad and rules.odd_count != "cut":
        text = f"{len(aligned)} turns; {'a ranking prompt needs an odd count (ending on the user turn)' if e.ranking else 'needs an even count (ending on the answer)'}: Invalid message count"
        broken = broken or text
    post_check = rules.role_check == "break"
    if post_check and broken:
        _broken(out, broken)
        return
    _branch(rec, ctx, out, aligned, mapping, even)
    if broken and not post_check:
        _broken(out, broken)
        return
    out.system = system


def _mapped(role: Any, mapping: dict, idx: int, e: Entry) -> str:
    """LLaMA-Factory's tag_mapping[role]: an unknown role is a KeyError, a list or object a TypeError."""
    try:
        return mapping[role]
    except KeyError:
        raise Crash(
            "unknown-role",
            f"KeyError: {role!r} (turn {idx + 1}: a role the entry's tags do not name: {_known_tags(e)})",
        ) from None
    except TypeError:
        raise Crash(
            "unknown-role",
            f"TypeError: unhashable type: '{type(role).__name__}' (turn {idx + 1}: "
            f"the role is {_kind(role)}, not a tag)",
        ) from None


def _broken(out: Outcome, text: str) -> None:
    out.verdict = "drop"
    code = "message-count" if "message count" in text else "unknown-role" if "unknown tag" in text else "role-order"
    out.add(code, "drop", text)
    out.prompt, out.response = [], []


def _role_reason(role: Any, idx: int, mapping: dict, e: Entry) -> str:
    if role is None:
        return " (the message has no role key)"
    if not _known(role, mapping):
        return f" (unknown tag; the entry's tags: {_known_tags(e)})"
    if mapping[role] == "system":
        return " (a system turn is only taken as the first turn)"
    return ""


def _known(role: Any, mapping: dict) -> bool:
    try:
        return role in mapping
    except TypeError:  # a list or an object where a tag should be
        return False


def _known_tags(e: Entry) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in e.tags.items() if k not in ("role_tag", "content_tag"))


def _branch(rec: dict, ctx: Context, out: Outcome, aligned: list, mapping: dict, even: tuple) -> None:
    """The kto / pairwise / normal split after the turns are aligned."""
    e = ctx.entry
    if not ctx.rules.has_ranking_columns:
        out.prompt, out.response = aligned[:-1], aligned[-1:]
        return
    kto_col = e.col("kto_tag")
    if kto_col and isinstance(ctx.get(rec, kto_col), bool):
        out.prompt, out.response = aligned[:-1], aligned[-1:]
        out.response = (
            out.response + [("assistant", "")] if ctx.get(rec, kto_col) else [("assistant", "")] + out.response
        )
        return
    if e.ranking:
        chosen, rejected = ctx.get(rec, e.col("chosen")), ctx.get(rec, e.col("rejected"))
        if isinstance(chosen, dict) and isinstance(rejected, dict):
            roles = [ctx.mget(chosen, ctx.role_tag), ctx.mget(rejected, ctx.role_tag)]
            bad = [r for r in roles if r not in even]
            if bad:
                if ctx.rules.role_check == "break":
                    out.add(
                        "ranking-role",
                        "warn",
                        f"chosen/rejected role {bad[0]!r} is not an answer tag: "
                        "Invalid role tag (logged, but the record is kept and trained as that role)",
                    )
                else:
                    out.add(
                        "ranking-role",
                        "drop",
                        f"chosen/rejected role {bad[0]!r} is not an answer tag: Invalid role tag",
                    )
                    out.verdict = "drop"
            for r in roles:
                if not _known(r, mapping):
                    raise Crash(
                        "unknown-role", f"KeyError: {_short(r)} (chosen/rejected role the entry's tags do not name)"
                    )
            out.prompt = aligned
            out.response = [
                (mapping[roles[0]], ctx.mget(chosen, ctx.content_tag)),
                (mapping[roles[1]], ctx.mget(rejected, ctx.content_tag)),
            ]
            if out.verdict == "drop":
                out.prompt, out.response = [], []
            return
        for key, value in (("chosen", chosen), ("rejected", rejected)):
            if not isinstance(value, dict):
                out.add("ranking-missing", "warn", f"{key} is {_kind(value)}, not a message object")
    out.prompt, out.response = aligned[:-1], aligned[-1:]


def convert_openai(rec: dict, ctx: Context, out: Outcome) -> None:
    e, rules = ctx.entry, ctx.rules
    role_tag, content_tag, mapping = ctx.role_tag, ctx.content_tag, ctx.mapping
    msgs, system = _split_system(_messages(rec, ctx), rec, ctx, allow_get_default=True)
    out.turns = len(msgs)
    aligned: list[tuple[str, Any]] = []
    pending: list = []
    for idx, msg in enumerate(msgs):
        role, content = ctx.mget(msg, role_tag), ctx.mget(msg, content_tag)
        if role in ctx.even:
            calls = msg.get("tool_calls") if isinstance(msg, dict) else None
            if rules.tool_calls_null_crash and isinstance(msg, dict) and calls is None:
                ctx.absent.setdefault("tool_calls-null:" + str(idx + 1), ctx.record)
            if calls:
                try:
                    content = json.dumps([c["function"] for c in calls], ensure_ascii=False)
                except (TypeError, KeyError) as exc:
                    raise Crash(
                        "tool-calls",
                        f'{type(exc).__name__}: {exc} (turn {idx + 1}: each tool_calls item needs a "function" object)',
                    ) from None
                role = ctx.even[1]
        if role == ctx.odd[1]:
            pending.append(content)
            continue
        if pending:
            aligned.append(("observation", _join_text(pending)))
            pending = []
        aligned.append((_mapped(role, mapping, idx, e), content))
    if pending:
        out.add("trailing-tool", "silent", f"{len(pending)} tool message(s) at the end are dropped without a word")
    broken = None
    for idx, (role, _content) in enumerate(aligned):
        if role not in (("user", "observation"), ("assistant", "function"))[idx % 2]:
            broken = f"turn {idx + 1} is {role!r} after mapping: Invalid role tag"
            break
    if (not e.ranking and len(aligned) % 2) or (e.ranking and len(aligned) % 2 == 0):
        broken = broken or f"{len(aligned)} turns after merging tool messages: Invalid message count"
    if broken:
        _broken(out, broken)
        return
    _branch(rec, ctx, out, aligned, mapping, ("assistant", "function"))
    out.system = system


def _join_text(parts: list) -> Any:
    try:
        return "\n</tool_response>\n<tool_response>\n".join(parts)
    except TypeError as exc:
        raise Crash("null-content", f"TypeError: {exc} (a tool message has no text)") from None


CONVERTERS = {"alpaca": convert_alpaca, "sharegpt": convert_sharegpt, "openai": convert_openai}


# --- processor, formatter, media ------------------------------------------------------------


_CASTS = (int, float, bool)


def process(ctx: Context, out: Outcome) -> None:
    """The stage's processor drop rules (and pre-training's text); `format_turns` is the template's part."""
    stage = ctx.stage
    n_prompt, n_resp = len(out.prompt), len(out.response)
    if stage == "pt":
        if not out.prompt:
            raise Crash("pt-empty", "IndexError: list index out of range (no text for pre-training)")
        if not isinstance(out.prompt[0][1], str):
            raise Crash("null-content", f"TypeError: the text is {_kind(out.prompt[0][1])}, not a string")
        return
    need = (
        "exactly 1 answer"
        if stage == "sft"
        else "2 answers (chosen, rejected)"
        if stage in ("rm", "dpo")
        else "2 answers (kto)"
    )
    bad = n_prompt % 2 != 1 or (n_resp != 1 if stage == "sft" else n_resp < 2)
    if bad:
        if out.verdict != "drop":
            out.verdict = "drop"
            what = "no answer" if n_resp == 0 else f"{n_resp} answers"
            out.add("processor-drop", "drop", f"{what}, stage {stage} needs {need}: Dropped invalid example")


def format_turns(ctx: Context, out: Outcome) -> None:
    """What the template's formatters refuse, turn by turn (after the plugin and the tools)."""
    stage = ctx.stage
    if stage == "pt":
        return
    system = out.system
    cast = ctx.rules.casts_text
    if system and not isinstance(system, str) and not (cast and type(system) in _CASTS):
        raise Crash("system-not-text", f"RuntimeError: Expected a string, got {_py(system)} (system)")
    for n, (role, content) in enumerate(out.prompt + out.response, 1):
        if cast and type(content) in _CASTS:  # <=0.8.3 cast the column to string: 5 -> "5"
            content = str(content).lower() if type(content) is bool else str(content)
        if role == "function":
            _check_function_call(content, n, ctx, out)
        elif not isinstance(content, str):
            raise Crash("null-content", f"RuntimeError: Expected a string, got {_py(content)} ({role} turn {n})")
    last = out.response[0][1] if out.response else None
    if last == "" and stage != "kto":
        out.add("empty-answer", "warn", 'the answer is "": an empty answer is trained')


def _plugin_reads_texts(ctx: Context, out: Outcome) -> None:
    """A multimodal plugin reads every message's text for placeholders before the template formats
    it, so a text that is not a string fails there first, with the plugin's own exception: 0.9.3+
    `content.count(...)` (AttributeError; a list has .count), up to 0.9.2 `<image> in content`
    (TypeError; a dict or list can be searched). A text-only template's plugin reads no text."""
    rules = ctx.rules
    template = ctx.template
    # a template named on the command line has the plugin the table says; an assumed one has one when
    # the entry maps media or the data names media
    if not rules.checks_placeholders or not (template.media != "" or (template.name is None and ctx.media_meant)):
        return
    turns = out.prompt + out.response[:1] + (out.response[1:2] if ctx.entry.ranking else [])
    for n, (role, content) in enumerate(turns, 1):
        kind = type(content).__name__
        if rules.mm_counts_all and not isinstance(content, (str, list)):
            raise Crash(
                "null-content",
                f"AttributeError: '{kind}' object has no attribute 'count' ({role} turn "
                f"{n} is {_py(content)}: the multimodal plugin counts placeholders in every message)",
            )
        if not rules.mm_counts_all and not isinstance(content, (str, list, dict)):
            raise Crash(
                "null-content",
                f"TypeError: argument of type '{kind}' is not iterable ({role} turn {n} "
                f"is {_py(content)}: the multimodal plugin looks for placeholders in every message)",
            )


_THOUGHT = re.compile(r"<think>(.*)</think>", re.DOTALL)  # 0.9.2-0.9.3, greedy


def _words(pair: tuple[str, str]) -> re.Pattern[str]:
    return re.compile(f"{re.escape(pair[0])}(.*?){re.escape(pair[1])}", re.DOTALL)


def _function_json(text: str, ctx: Context) -> tuple[str, str]:
    """The part of a function-call turn that must be JSON, and what was set apart (for messages)."""
    rules, template = ctx.rules, ctx.template
    if rules.function_thought == "regex":
        thought = _THOUGHT.search(text)
        return (text.replace(thought.group(0), ""), "a <think> block") if thought else (text, "")
    if rules.function_thought == "template":
        if template.tool_call:
            call = _words(template.tool_call).search(text)
            if call:
                return call.group(1), f"a {template.tool_call[0]}...{template.tool_call[1]} wrapper"
        if template.thought:
            thought = _words(template.thought).search(text)
            if thought:
                return text.replace(thought.group(0), ""), "the thought block"
    return text, ""


def _thought_hint(text: str, ctx: Context) -> str:
    """Why a function call that starts with a thought block is not JSON here."""
    if "<think>" not in text or ctx.rules.function_thought == "regex":
        return ""
    if ctx.rules.function_thought == "none":
        return f"; [LLaMA-Factory {ctx.rules.series}] does not set a <think> block apart (0.9.2+ does)"
    if ctx.template.plain_function:
        return f"; {ctx.template.label} hands function calls over as they are (no thought or tool-call words)"
    words = ctx.template.thought
    shown = f"{words[0]!r}...{words[1]!r}" if words else "none"
    return (
        f"; the thought words of {ctx.template.label} are {shown} and must match exactly, newlines "
        "included, or wrap the call in <tool_call>...</tool_call>"
    )


def _check_function_call(content: Any, n: int, ctx: Context, out: Outcome) -> None:
    """formatter.py's FunctionFormatter: the turn must be JSON, a call or a list of calls with
    "name" and "arguments", once the template's thought block / tool-call wrapper is set apart
    (by release: none, a <think> regex, the template's own words). Before 0.9.1 bad JSON was
    trained as an empty call without a word."""
    rules = ctx.rules
    if not isinstance(content, str):
        if rules.function_keys == "silent":
            out.add(
                "function-json",
                "silent",
                f"function call turn {n} is {_kind(content)}: trained as an empty call [LLaMA-Factory {rules.series}]",
            )
            return
        raise Crash(
            "null-content",
            f"TypeError: the JSON object must be str, not {type(content).__name__} "
            f"(function call turn {n} is {_kind(content)})",
        )
    text, _apart = _function_json(content, ctx)
    try:
        calls = json.loads(text)
    except json.JSONDecodeError as exc:
        if rules.bad_json == "silent":
            out.add(
                "function-json",
                "silent",
                f"function call turn {n} is not JSON ({exc.msg}): trained without "
                f"the call, without a word: {_short([content])}",
            )
            return
        raise Crash(
            "function-json",
            f"RuntimeError: Invalid JSON format in function message: "
            f"{_short([content])} (turn {n}: {exc.msg} at line {exc.lineno} column {exc.colno}"
            f"{_thought_hint(content, ctx)})",
        ) from None
    for call in calls if isinstance(calls, list) else [calls]:
        if not isinstance(call, dict) or "name" not in call or "arguments" not in call:
            if rules.function_keys == "silent":
                out.add(
                    "function-json",
                    "silent",
                    f'function call turn {n} has no "name"/"arguments": trained as an empty call: {_short(call)}',
                )
                return
            error = "KeyError" if isinstance(call, dict) else "TypeError"
            raise Crash(
                "function-json", f'{error}: function call turn {n} needs "name" and "arguments": {_short(call)}'
            )


def check_tools(rec: dict, ctx: Context, out: Outcome) -> None:
    """The tools column is JSON text decoded by ToolFormatter (0.9.1+: RuntimeError when it is not),
    then read by the template's tool format."""
    col = ctx.entry.col("tools")
    if not col or out.verdict != "keep":
        return
    tools = ctx.get(rec, col)
    if ctx.rules.casts_text and tools is not None and not isinstance(tools, str) and type(tools) not in _CASTS:
        raise Crash(
            "tools-json",
            f"TypeError: Couldn't cast array of type {_arrow_kind(tools)} to string (tools is "
            f"{_kind(tools)}; [LLaMA-Factory {ctx.rules.series}] casts the converted tools column to text)",
            stage="conversion",
        )
    if not tools:
        return
    if ctx.entry.converter == "openai" and isinstance(tools, (dict, list)):
        tools = json.dumps(tools)
    if not isinstance(tools, str):
        raise Crash(
            "tools-json",
            f"TypeError: the JSON object must be str, not {type(tools).__name__} (tools must be a JSON string)",
        )
    try:
        decoded = json.loads(tools)
    except json.JSONDecodeError as exc:
        if ctx.rules.bad_json == "silent":
            out.add(
                "tools-json",
                "silent",
                f"tools is not JSON ({exc.msg}): trained without the tools, without a word: {_short([tools])}",
            )
            return
        raise Crash("tools-json", f"RuntimeError: Invalid JSON format in tool description: {_short([tools])}") from None
    if ctx.rules.function_keys == "crash":  # <=0.7.1 caught whatever the tool formatter raised
        _check_tool_shape(decoded, ctx)


def _arrow_kind(value: Any) -> str:
    if isinstance(value, list):
        inner = {type(v) for v in value}
        return "list<item: null>" if not value else "list<item: struct<...>>" if dict in inner else "list<item: ...>"
    return "struct<...>" if isinstance(value, dict) else type(value).__name__


def _check_tool_shape(tools: Any, ctx: Context) -> None:
    """What the template's tool format (tool_utils.py) does with the decoded tools."""
    fmt, unwrap = ctx.template.tools, ctx.rules.tools_unwrap
    where = f"tools, read by the {fmt!r} tool format of {ctx.template.label}"
    try:
        if len(tools) == 0:
            return
    except TypeError:
        raise Crash(
            "tools-json",
            f"TypeError: object of type '{type(tools).__name__}' has no len() ({where}: "
            f"{_short(tools)} is not a list of tools)",
        ) from None
    items = list(tools)  # a JSON object is iterated key by key, as LLaMA-Factory does
    if isinstance(tools, dict):
        lead = f"the tools are one JSON object, not a list: its keys ({_short(list(tools))}) are read as tools"
    else:
        lead = ""
    for n, tool in enumerate(items, 1):
        if (unwrap or fmt in ("default", "glm4")) and not isinstance(tool, dict):
            error = (
                "AttributeError: 'str' object has no attribute 'get'"
                if unwrap
                else "TypeError: string indices must be integers, not 'str'"
            )
            raise Crash("tools-json", f"{error} ({where}: tool {n} is {_kind(tool)}{'; ' + lead if lead else ''})")
        if not isinstance(tool, dict):
            continue
        if unwrap and tool.get("type") == "function":
            tool = tool.get("function", "")
        if fmt == "default":
            params = tool.get("parameters") if isinstance(tool, dict) else None
            if (
                not isinstance(tool, dict)
                or "name" not in tool
                or not isinstance(params, dict)
                or not isinstance(params.get("properties"), dict)
            ):
                missing = "name" if isinstance(tool, dict) and "name" not in tool else "parameters.properties"
                raise Crash(
                    "tools-json",
                    f"KeyError: {missing.split('.')[-1]!r} ({where}: tool {n} has no "
                    f"{missing}; this format lists every parameter: {_short(tool)})",
                )
            for pname, param in params["properties"].items():
                if not isinstance(param, dict):
                    raise Crash(
                        "tools-json",
                        f"AttributeError: '{type(param).__name__}' object has no attribute "
                        f"'get' ({where}: parameter {pname!r} of tool {n} is not an object)",
                    )
        elif fmt == "glm4" and (not isinstance(tool, dict) or "name" not in tool):
            raise Crash("tools-json", f"KeyError: 'name' ({where}: tool {n} has no name)")


def media_of(value: Any, ctx: Context, key: str) -> list:
    mode = ctx.rules.null_media
    if value is None:
        if mode == "typeerror":
            raise Crash("media-null", f"TypeError: 'NoneType' object is not iterable ({key} is null or absent)")
        if mode == "lenerror":
            raise Crash("media-null", f"TypeError: object of type 'NoneType' has no len() ({key} is null or absent)")
        if mode == "indexerror":
            raise Crash("media-null", f"IndexError: list index out of range ({key} is null or absent)")
        if mode == "none_item":
            return [None]  # 0.9.1: a list holding None (the plugin or the processor stops on it)
        return []
    if not isinstance(value, list):
        return [value]
    return value


def _placeholder_counts(turns: list) -> Optional[str]:
    """The texts of `turns` that hold a '<' joined (a placeholder cannot span two), or None."""
    texts = [c for _r, c in turns if type(c) is str and "<" in c]
    return "\x00".join(texts) if texts else None


def check_media(rec: dict, ctx: Context, out: Outcome) -> None:
    """The template's multimodal plugin (0.9.0+): media a text-only template cannot take stop the run;
    a multimodal one counts <image>/<video>/<audio> in every message against the media, every kind."""
    if out.verdict != "keep":
        return
    mapped, rules, template = ctx.media_cols, ctx.rules, ctx.template
    if not mapped and not rules.checks_placeholders:
        return
    items = {key: media_of(ctx.get(rec, col), ctx, key) for key, col in mapped.items()}
    if not rules.checks_placeholders:
        for key, found in items.items():
            if ctx.media_dir is not None:
                _check_files(found, ctx, key)
        return
    for key, found in items.items():
        if found and not template.takes(key):
            kind = key[:-1]
            raise Crash(
                "media-unsupported",
                f"ValueError: This model does not support {kind} input. Please check "
                f"whether the correct `template` is used. ({template.label} has no {kind} plugin; "
                f"{len(found)} {key} here)",
            )
    # a template named on the command line counts when the table gives it a plugin; an assumed one
    # when the entry maps media or the data names media (a text-only plugin counts nothing)
    counted = template.media != "" or (template.name is None and ctx.media_meant)
    if counted:
        _plugin_reads_texts(ctx, out)
    # mm_plugin counts the placeholders in the prompt and the (first) answer; for ranking data
    # the prompt and the rejected answer are counted again.
    blob = _placeholder_counts(out.prompt + out.response[:1])
    rejected = _placeholder_counts(out.prompt + out.response[1:2]) if ctx.entry.ranking else None
    for key, tag in PLACEHOLDERS.items():
        if key == "audios" and not rules.has_audios:
            continue
        if counted and not rules.mm_counts_all and not _handles(template, key, mapped):
            continue  # <= 0.9.2: the plugin counts the kinds it handles only
        count = blob.count(tag) if blob else 0
        found = items.get(key, [])
        if counted:
            out.media = out.media or {}
            out.media[key] = len(found)
        if not counted:
            if count and key not in mapped:
                out.add(
                    "placeholder-no-media",
                    "warn",
                    f"{count} {tag} in the text but no {key} column is mapped: "
                    "a multimodal template stops the run here (ValueError: The number of "
                    f"{key} does not match the number of {tag} tokens); a text-only one trains it as text",
                )
            continue
        if len(found) != count:
            why = f"no {key} column is mapped" if key not in mapped else f"{len(found)} {key}"
            raise Crash(
                "media-count",
                f"ValueError: The number of {key} does not match the number of {tag} "
                f"tokens: {why}, {count} {tag} in the text ({_mm_label(ctx)})",
            )
        if ctx.entry.ranking:
            n = rejected.count(tag) if rejected else 0
            if len(found) != n:
                raise Crash(
                    "media-count",
                    f"ValueError: The number of {key} does not match the number of "
                    f"{tag} tokens: {len(found)} {key}, {n} {tag} (prompt + rejected)",
                )
        if found and rules.null_media == "none_item" and None in found:
            raise Crash(
                "media-null",
                f"ValueError: Expect input is a list of Images, but got <class 'NoneType'> "
                f"({key} is null; [LLaMA-Factory {rules.series}] passes it on as [None])",
            )
        if ctx.media_dir is not None:
            _check_files(found, ctx, key)


def _handles(template: Template, key: str, mapped: dict) -> bool:
    if template.media is None:  # not given: a qwen2_vl-like plugin, plus what the entry maps
        return key in ("images", "videos") or key in mapped
    return key[0] in template.media


def _mm_label(ctx: Context) -> str:
    if ctx.template.name:
        return f"the multimodal {ctx.template.label}"
    if ctx.media_cols:
        return "a multimodal template, as the entry maps media"
    return "a multimodal template, as the data names media the entry does not map"


def _check_files(items: list, ctx: Context, key: str) -> None:
    for item in items:
        paths = item if isinstance(item, list) else [item]  # video frames
        for path in paths:
            if not isinstance(path, str):
                continue
            joined = os.path.join(ctx.media_dir or "", path)
            if not (os.path.isfile(joined) or os.path.isfile(path)):
                raise Crash(
                    "media-missing",
                    f"FileNotFoundError: {key} file {path!r} is neither under the media "
                    f"folder {ctx.media_dir!r} nor at that path",
                )


def evaluate(rec: Any, ctx: Context) -> Outcome:
    """Run one record through converter, processor and formatter; never raises."""
    out = Outcome()
    if not isinstance(rec, dict):
        out.verdict, out.crash_stage = "crash", "conversion"
        out.add("record-not-object", "crash", f"the record is {_kind(rec)}, not an object")
        return out
    stage = "conversion"
    try:
        converter = CONVERTERS.get(ctx.entry.converter)
        if converter is None:
            raise Crash("formatting", f"ValueError: Dataset converter {ctx.entry.formatting} not found.")
        converter(rec, ctx, out)
        output_reads(rec, ctx, out)
        stage = "tokenization"
        # LLaMA-Factory's order inside one record: the processor's drop rules, the multimodal plugin
        # (media the template cannot take, placeholder counts), then the template: system and tools
        # with the first turn, then each turn's formatter.
        if out.verdict == "keep":
            process(ctx, out)
        check_media(rec, ctx, out)
        check_tools(rec, ctx, out)
        if out.verdict == "keep":
            format_turns(ctx, out)
    except Crash as crash:
        out.verdict, out.crash_stage = "crash", crash.stage or stage
        out.add(crash.code, "crash", crash.message)
    return out


def output_reads(rec: dict, ctx: Context, out: Outcome) -> None:
    """The converter builds every record's output, dropped or not (0.9+; 0.8's batched converter
    skips a broken one), with example[tools], example[images]...: a mapped column the whole file
    lacks is a KeyError at the first record, and a null media value fails by release."""
    if ctx.rules.batched and out.verdict == "drop":
        return
    for key in ("tools", "images", "videos", "audios"):
        col = ctx.entry.col(key)
        if not col:
            continue
        if col not in rec:
            ctx.absent.setdefault(col, ctx.record)
        elif key != "tools" and rec[col] is None and ctx.rules.null_media in ("typeerror", "lenerror", "indexerror"):
            media_of(None, ctx, key)
