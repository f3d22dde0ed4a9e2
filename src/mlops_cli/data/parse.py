"""JSON text -> Python values: orjson when installed (the `data` extra), the standard library otherwise.

The fast parser is strict; whatever it refuses is parsed again, slowly, to say why: bare NaN or
Infinity, raw control characters, lone surrogates, bytes that are not UTF-8, or a syntax error
with its line and column.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional

try:  # optional: the `data` extra
    if os.environ.get("MLOPS_DATA_PURE_PYTHON"):
        raise ImportError
    import orjson

    _fast: Optional[Callable[[bytes], Any]] = orjson.loads
    FAST_ERROR: type = orjson.JSONDecodeError
except ImportError:  # pragma: no cover - exercised with MLOPS_DATA_PURE_PYTHON=1
    _fast = None
    FAST_ERROR = ValueError

_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_strict_decoder = json.JSONDecoder()


def parser_name() -> str:
    return "orjson" if _fast is not None else "json (standard library; pip install 'mlops-cli[data]' for speed)"


@dataclass
class Oddity:
    """Why the strict parser refused text that is still readable (or not)."""

    kind: str  # nan, control, surrogate, bigint, utf8, syntax
    message: str
    offset: int = 0  # byte offset inside the parsed text
    line: int = 1  # 1-based line inside the text
    column: int = 1


class Unreadable(Exception):
    def __init__(self, oddity: Oddity):
        super().__init__(oddity.message)
        self.oddity = oddity


def _refuse(name: str) -> Any:
    raise ValueError(name)


def _int64(text: str) -> int:
    value = int(text)
    if not -(1 << 63) <= value < (1 << 64):
        raise ValueError(text)
    return value


def loads(data: bytes, *, nan_as_null: bool = False) -> tuple[Any, Optional[Oddity]]:
    """Parse one JSON document. Returns (value, oddity or None); raises Unreadable for broken JSON."""
    if _fast is not None:
        try:
            return _fast(data), None
        except FAST_ERROR:
            pass
    elif not _SURROGATE.search(data):
        try:  # as strict as orjson: no NaN/Infinity, no integer beyond 64 bits
            return json.loads(data, parse_constant=_refuse, parse_int=_int64), None
        except (ValueError, UnicodeDecodeError):
            pass
    return _slow(data, nan_as_null)


def may_repeat_keys(raw: bytes, keys: int) -> bool:
    """False when the JSON text `raw`, parsed into objects holding `keys` keys in all, wrote no key
    twice in one object; True means: look closer (duplicate_keys). One byte count, usually.

    A quote followed by a colon ends a key: a quote inside a string is escaped (`\\"`). So the
    marks `":` are the keys written plus the escaped quotes followed by a colon; as many marks as
    keys parsed proves no key was written twice. (Not for a file that writes `"key" : 1` with a
    space AND escapes quotes before colons AND repeats a key in the same record: not seen.)"""
    marks = raw.count(b'":')
    if marks == keys:
        return False
    if marks > keys:
        marks -= raw.count(b'\\":')
    return marks != keys


def duplicate_keys(raw: bytes) -> tuple[list[str], list[str]]:
    """Keys written twice in one object: (in the outermost object, in objects nested in it)."""
    found: list[list[str]] = []

    def hook(pairs: list) -> dict:
        seen: set = set()
        found.append([k for k, _v in pairs if k in seen or seen.add(k)])
        return dict(pairs)

    try:
        json.loads(raw.decode("utf-8", errors="replace"), object_pairs_hook=hook, strict=False)
    except ValueError:
        return [], []
    if not found:
        return [], []
    return found[-1], [k for keys in found[:-1] for k in keys]


def _slow(data: bytes, nan_as_null: bool) -> tuple[Any, Optional[Oddity]]:
    oddity: Optional[Oddity] = None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        oddity = Oddity(
            "utf8",
            f"byte 0x{data[exc.start]:02x} is not UTF-8 (the file is not UTF-8 text; re-save it as UTF-8)",
            exc.start,
            line,
        )
        text = data.decode("utf-8", errors="replace")
    constants: list[str] = []

    def constant(name: str) -> Any:
        constants.append(name)
        if name == "NaN" and nan_as_null:
            return None
        return float(name)

    try:
        value = json.loads(text, parse_constant=constant)
    except json.JSONDecodeError as exc:
        try:
            value = json.loads(text, parse_constant=constant, strict=False)
        except json.JSONDecodeError:
            raise Unreadable(_syntax(text, exc)) from None
        return value, oddity or Oddity(
            "control",
            "a raw control character (tab, newline...) inside a string (write it as \\t, \\n)",
            *_pos(text, exc.pos),
        )
    if oddity:
        return value, oddity
    if constants:
        return value, Oddity(
            "nan", f"bare {constants[0]} (not JSON; Python's json.dumps writes it for a float NaN; write null)"
        )
    if _SURROGATE.search(data):
        return value, Oddity("surrogate", "a lone UTF-16 surrogate escape (\\ud8xx) in a string")
    return value, Oddity("bigint", "a number the strict parser refuses (an integer beyond 64 bits?)")


def _pos(text: str, pos: int) -> tuple[int, int, int]:
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return len(text[:pos].encode("utf-8", errors="replace")), line, col


def _syntax(text: str, exc: json.JSONDecodeError) -> Oddity:
    msg = exc.msg
    stripped = text.rstrip()
    if stripped.startswith("\ufeff"):
        msg = "a UTF-8 byte order mark (BOM)"
    elif msg.startswith("Expecting property name") and text[exc.pos : exc.pos + 1] == "}":
        msg = "a trailing comma before '}'"
    elif msg == "Expecting value" and exc.pos >= len(stripped):
        msg = "the text ends early (truncated?)"
    elif msg.startswith("Expecting property name") and text[exc.pos : exc.pos + 1] == "'":
        msg = "single quotes (JSON needs double quotes; Python's str() of a dict is not JSON)"
    return Oddity("syntax", f"JSON syntax error: {msg}", *_pos(text, exc.pos))
