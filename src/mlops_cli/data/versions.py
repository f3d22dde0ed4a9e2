"""LLaMA-Factory's dataset rules, by release, as plain data (no I/O).

Read from the converter/aligner, parser, loader, processor and mm_plugin sources of each tag
(hiyouga/LLaMA-Factory v0.5.0 ... v0.9.5); docs/data.md has the table with the reasons.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from mlops_cli.errors import UsageError

CURRENT = "0.9.5"


@dataclass(frozen=True)
class Rules:
    """What one LLaMA-Factory release does with a dataset."""

    version: str  # the release these rules stand for, e.g. "0.9.1"
    series: str  # the range of releases that share them, e.g. "0.8.0-0.8.3"
    # ShareGPT role handling: "raise" (<=0.7: ValueError for any misplaced tag, the run fails),
    # "keyerror" (0.8.0-0.9.1: misplaced known tag -> dropped, unknown tag -> KeyError, the run fails),
    # "break" (0.9.2+: any misplaced or unknown tag -> dropped).
    role_check: str
    odd_count: str  # "cut" (<=0.7: the last turn is silently cut off) or "drop"
    batched: (
        bool  # <=0.8.3: batched converter: messages[0] read without a length check, alpaca loops over the prompt column
    )
    has_ranking_columns: bool  # chosen/rejected/kto_tag columns (0.8.0+)
    has_videos: bool  # 0.9.0+
    has_audios: bool  # 0.9.2+
    formatting_values: tuple[str, ...]  # accepted `formatting` values
    unknown_formatting_is_sharegpt: bool  # <=0.9.1: anything but alpaca is read as sharegpt
    tags_need_sharegpt: bool  # <=0.9.1: `tags` only read when formatting == sharegpt
    per_format_columns: bool  # <=0.9.1: a columns block resets only the keys of its format
    common_columns: tuple[str, ...]  # <=0.9.1: the keys every columns block resets
    null_media: str  # what a null/absent media value does: "typeerror", "none_item", "indexerror", "ok"
    checks_placeholders: bool  # media count vs <image>/<video>/<audio> placeholders (0.9.0+)
    tool_calls_null_crash: bool  # 0.9.4 openai converter: len(None) on a null tool_calls
    datasets_pin: str  # the `datasets` releases it allows (requirements.txt / pyproject.toml of the tag)
    # formatter.py: a function_call or tools text that is not JSON: "silent" (<=0.9.0: trained without
    # the call / the tools) or "crash" (0.9.1+: RuntimeError "Invalid JSON format in ...")
    bad_json: str = "crash"
    # a function call without "name"/"arguments": "silent" (<=0.7.1 caught every exception) or "crash"
    function_keys: str = "crash"
    # a thought block before the function-call JSON: "none" (<=0.9.1: it is part of the JSON),
    # "regex" (0.9.2-0.9.3: the first greedy <think>...</think> is set apart), "template" (0.9.4+:
    # the template's thought words, then its tool-call words <tool_call>...</tool_call>, set apart)
    function_thought: str = "template"
    # 0.9.3+: the tool formats .get() each tool and unwrap {"type": "function", "function": ...}
    tools_unwrap: bool = True
    # 0.9.3+: a multimodal plugin counts <image>, <video> and <audio> (_validate_messages); before, each
    # plugin counted the kinds it handles only
    mm_counts_all: bool = True
    # <=0.8.3: the converted columns are cast to string (Features), so a number or a bool is text
    casts_text: bool = False

    @property
    def label(self) -> str:
        return f"LLaMA-Factory {self.series}"


_ALL_COLUMNS = (
    "prompt",
    "query",
    "response",
    "history",
    "messages",
    "system",
    "tools",
    "images",
    "videos",
    "audios",
    "chosen",
    "rejected",
    "kto_tag",
)

_RULES_090 = Rules(
    "0.9.0",
    "0.9.0",
    role_check="keyerror",
    odd_count="drop",
    batched=False,
    has_ranking_columns=True,
    has_videos=True,
    has_audios=False,
    formatting_values=("alpaca", "sharegpt"),
    unknown_formatting_is_sharegpt=True,
    tags_need_sharegpt=True,
    per_format_columns=True,
    common_columns=("system", "tools", "images", "videos", "chosen", "rejected", "kto_tag"),
    null_media="lenerror",
    checks_placeholders=True,
    tool_calls_null_crash=False,
    datasets_pin=">=2.16.0,<=2.21.0",
    bad_json="silent",
    function_thought="none",
    tools_unwrap=False,
    mm_counts_all=False,
)

_TABLE = [
    # (first release, the rules of it and of the releases up to the next entry)
    (
        (0, 5, 0),
        Rules(
            "0.7.1",
            "0.5.0-0.7.1",
            role_check="raise",
            odd_count="cut",
            batched=True,
            has_ranking_columns=False,
            has_videos=False,
            has_audios=False,
            formatting_values=("alpaca", "sharegpt"),
            unknown_formatting_is_sharegpt=True,
            tags_need_sharegpt=True,
            per_format_columns=True,
            common_columns=("system", "images"),
            null_media="typeerror",
            checks_placeholders=False,
            tool_calls_null_crash=False,
            datasets_pin=">=2.14.3",
            bad_json="silent",
            function_keys="silent",
            function_thought="none",
            tools_unwrap=False,
            mm_counts_all=False,
            casts_text=True,
        ),
    ),
    (
        (0, 8, 0),
        Rules(
            "0.8.3",
            "0.8.0-0.8.3",
            role_check="keyerror",
            odd_count="drop",
            batched=True,
            has_ranking_columns=True,
            has_videos=False,
            has_audios=False,
            formatting_values=("alpaca", "sharegpt"),
            unknown_formatting_is_sharegpt=True,
            tags_need_sharegpt=True,
            per_format_columns=True,
            common_columns=("system", "tools", "images", "chosen", "rejected", "kto_tag"),
            null_media="typeerror",
            checks_placeholders=False,
            tool_calls_null_crash=False,
            datasets_pin=">=2.16.0",
            bad_json="silent",
            function_thought="none",
            tools_unwrap=False,
            mm_counts_all=False,
            casts_text=True,
        ),
    ),
    # 0.9.0 and 0.9.1 share the aligner; 0.9.0 still ignored bad function/tools JSON (PR 5483, 2024-09)
    # and took len() of a null media value.
    ((0, 9, 0), _RULES_090),
    (
        (0, 9, 1),
        replace(
            _RULES_090,
            version="0.9.1",
            series="0.9.1",
            null_media="none_item",
            datasets_pin=">=2.16.0,<=3.1.0",
            bad_json="crash",
        ),
    ),
    (
        (0, 9, 2),
        Rules(
            "0.9.2",
            "0.9.2",
            role_check="break",
            odd_count="drop",
            batched=False,
            has_ranking_columns=True,
            has_videos=True,
            has_audios=True,
            formatting_values=("alpaca", "sharegpt"),
            unknown_formatting_is_sharegpt=False,
            tags_need_sharegpt=False,
            per_format_columns=False,
            common_columns=_ALL_COLUMNS,
            null_media="indexerror",
            checks_placeholders=True,
            tool_calls_null_crash=False,
            datasets_pin=">=2.16.0,<=3.2.0",
            function_thought="regex",
            tools_unwrap=False,
            mm_counts_all=False,
        ),
    ),
    (
        (0, 9, 3),
        Rules(
            "0.9.3",
            "0.9.3",
            role_check="break",
            odd_count="drop",
            batched=False,
            has_ranking_columns=True,
            has_videos=True,
            has_audios=True,
            formatting_values=("alpaca", "sharegpt"),
            unknown_formatting_is_sharegpt=False,
            tags_need_sharegpt=False,
            per_format_columns=False,
            common_columns=_ALL_COLUMNS,
            null_media="ok",
            checks_placeholders=True,
            tool_calls_null_crash=False,
            datasets_pin=">=2.16.0,<=3.6.0",
            function_thought="regex",
        ),
    ),
    (
        (0, 9, 4),
        Rules(
            "0.9.4",
            "0.9.4",
            role_check="break",
            odd_count="drop",
            batched=False,
            has_ranking_columns=True,
            has_videos=True,
            has_audios=True,
            formatting_values=("alpaca", "sharegpt", "openai"),
            unknown_formatting_is_sharegpt=False,
            tags_need_sharegpt=False,
            per_format_columns=False,
            common_columns=_ALL_COLUMNS,
            null_media="ok",
            checks_placeholders=True,
            tool_calls_null_crash=True,
            datasets_pin=">=2.16.0,<=4.0.0",
        ),
    ),
    (
        (0, 9, 5),
        Rules(
            "0.9.5",
            "0.9.5 and later",
            role_check="break",
            odd_count="drop",
            batched=False,
            has_ranking_columns=True,
            has_videos=True,
            has_audios=True,
            formatting_values=("alpaca", "sharegpt", "openai"),
            unknown_formatting_is_sharegpt=False,
            tags_need_sharegpt=False,
            per_format_columns=False,
            common_columns=_ALL_COLUMNS,
            null_media="ok",
            checks_placeholders=True,
            tool_calls_null_crash=False,
            datasets_pin=">=2.16.0,<=4.0.0",
        ),
    ),
]


def parse_version(text: str) -> tuple[int, int, int]:
    raw = text.strip().lower().removeprefix("v")
    if raw in ("", "current", "latest", "main", "head"):
        raw = CURRENT
    parts = raw.split(".")
    try:
        numbers = [int(p) for p in parts[:3]]
    except ValueError:
        numbers = []
    if not numbers or len(parts) > 3:
        raise UsageError(f"not a LLaMA-Factory version: {text!r}", hint="write it like 0.9.1 (default: current)")
    while len(numbers) < 3:
        numbers.append(0)
    return numbers[0], numbers[1], numbers[2]


def rules_for(text: str | None) -> Rules:
    """The rules of the release `text` names (None: the current release)."""
    version = parse_version(text or CURRENT)
    if version < _TABLE[0][0]:
        raise UsageError(
            f"LLaMA-Factory {text} is older than 0.5.0, whose dataset rules are not modelled",
            hint="the oldest release modelled is 0.5.0",
        )
    chosen = _TABLE[0][1]
    for first, rules in _TABLE:
        if version >= first:
            chosen = rules
    return chosen
