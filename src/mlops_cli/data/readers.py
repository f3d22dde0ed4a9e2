"""Streaming readers: JSON Lines, a JSON array, objects one after another, Parquet.

The kind is sniffed from the first bytes, never from the file name. Records come out one at a
time with their line and byte offset; memory stays flat whatever the file size (one record and
one read buffer at a time).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Optional, Union

from mlops_cli.data.parse import Oddity, Unreadable, loads

CHUNK = 1 << 22  # 4 MiB reads
BOM = b"\xef\xbb\xbf"
WHITESPACE = b" \t\r\n"


@dataclass
class Record:
    index: int  # 0-based
    line: int  # 1-based line where it starts
    offset: int  # byte offset where it starts
    end: int  # byte offset just past it (past its newline for JSON Lines)
    value: Any
    oddity: Optional[Oddity] = None
    raw: bytes = b""  # the record's JSON text (JSON files only)


@dataclass
class Broken:
    """Text where a record should be that is not JSON (or not readable)."""

    index: int
    line: int
    offset: int
    oddity: Oddity
    fatal_for_rest: bool = False  # the reader cannot find the records after it


Event = Union[Record, Broken]


def _after_array(tok: bytes, gap: bytes) -> str:
    """What text after a closed top-level array is: another array on a later line is one list per
    line (JSON Lines whose lines are lists, e.g. a bare list of messages per conversation)."""
    if tok == b"[" and b"\n" in gap:
        return (
            "JSON syntax error: another JSON array starts on a later line: one list per line is neither "
            "a JSON array nor JSON Lines (datasets needs one object per line: put each list under a key, "
            'e.g. {"messages": [...]})'
        )
    return "JSON syntax error: text after the end of the array"


def sniff(head: bytes) -> tuple[str, bool]:
    """(kind, has_bom) from the first bytes: lines, array, objects?, parquet, arrow, utf16, empty, other."""
    if head.startswith(b"PAR1"):
        return "parquet", False
    if head.startswith(b"ARROW1") or head.startswith(b"\xff\xff\xff\xff"):
        return "arrow", False
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf16", False
    bom = head.startswith(BOM)
    body = head[3:] if bom else head
    stripped = body.lstrip(WHITESPACE)
    if not stripped:
        return "empty", bom
    first = stripped[:1]
    if first == b"[":
        return "array", bom
    if first == b"{":
        return "lines", bom
    if head.startswith(b"\x1f\x8b"):
        return "gzip", bom
    return "other", bom


def read_lines(stream: BinaryIO, *, skip: int = 0, first: bytes = b"") -> Iterator[Event]:
    """One JSON document per line (blank lines skipped, as pyarrow does)."""
    index, lineno, offset = 0, 0, skip
    rest = first
    eof = False
    while not eof:
        data = stream.read(CHUNK)
        eof = not data
        if rest:
            data = rest + data
        lines = data.split(b"\n")
        rest = lines.pop()
        for text in lines:
            lineno += 1
            start = offset
            offset += len(text) + 1
            event = _line_event(text, index, lineno, start, offset)
            if event is not None:
                index += 1
                yield event
    if rest:
        lineno += 1
        event = _line_event(rest, index, lineno, offset, offset + len(rest))
        if event is not None:
            yield event


def _line_event(text: bytes, index: int, lineno: int, start: int, end: int) -> Optional[Event]:
    try:
        value, oddity = loads(text)
    except Unreadable as exc:
        if not text.strip(WHITESPACE):
            return None
        odd = exc.oddity
        return Broken(
            index, lineno, start + odd.offset, Oddity(odd.kind, odd.message, start + odd.offset, lineno, odd.column)
        )
    if oddity is not None:
        oddity = Oddity(oddity.kind, oddity.message, start + oddity.offset, lineno, oddity.column)
    return Record(index, lineno, start, end, value, oddity, text)


# A complete string, or a lone quote (a string the buffer cuts off), or a bracket.
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|"|[\[\]{}]', re.DOTALL)


class _Scanner:
    """Finds the top-level elements of a JSON array (depth 1) or of an object stream (depth 0)."""

    def __init__(self, stream: BinaryIO, skip: int, first: bytes, in_array: bool):
        self.stream = stream
        self.buf = first
        self.base = skip  # file offset of buf[0]
        self.eof = False
        self.in_array = in_array
        self.lines_done = 1  # line number at self.line_pos
        self.line_pos = 0  # position in buf up to which newlines are counted

    def fill(self) -> bool:
        data = self.stream.read(CHUNK)
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def line_at(self, pos: int) -> int:
        if pos >= self.line_pos:
            self.lines_done += self.buf.count(b"\n", self.line_pos, pos)
        else:
            self.lines_done -= self.buf.count(b"\n", pos, self.line_pos)
        self.line_pos = pos
        return self.lines_done

    def compact(self, pos: int) -> int:
        """Forget the text before `pos` once it is large; returns how far positions shift."""
        if pos < (1 << 20):
            return 0
        self.line_at(pos)
        self.buf = self.buf[pos:]
        self.base += pos
        self.line_pos -= pos
        return pos

    def events(self) -> Iterator[Event]:
        depth, pos, index = 0, 0, 0
        gap_start = 0  # where the text between elements starts
        elem_start = -1
        elem_depth = 1 if self.in_array else 0
        closed = False  # the top-level array has been closed
        while True:
            m = _TOKEN.search(self.buf, pos)
            if m is None or (m.group() == b'"' and not self.eof):
                if m is not None:
                    pos = m.start()
                if not self.eof and self.fill():
                    continue
                self.eof = True
                if m is None:
                    break
                continue
            tok = m.group()
            start, pos = m.start(), m.end()
            if tok == b'"':  # a string that never ends
                yield self._broken(index, start, "JSON syntax error: a string that never ends (truncated file?)")
                return
            if closed:
                yield self._broken(index, start, _after_array(tok, self.buf[gap_start:start]))
                return
            if tok[:1] == b'"':
                if depth == elem_depth:  # a bare string where a record should be
                    yield from self._gap(index, gap_start, start, "first" if index == 0 else "between")
                    yield Record(index, self.line_at(start), self.base + start, self.base + pos, loads(tok)[0])
                    index += 1
                    gap_start = pos
                elif depth < elem_depth:
                    yield self._broken(index, start, "JSON syntax error: a string outside the array")
                    return
                continue
            if tok in (b"{", b"["):
                if depth == elem_depth:
                    for event in self._gap(index, gap_start, start, "first" if index == 0 else "between"):
                        if isinstance(event, Record):
                            index += 1
                        yield event
                    elem_start = start
                elif depth < elem_depth and tok == b"{":
                    yield self._broken(index, start, "JSON syntax error: an object outside the array")
                    return
                elif depth == 0 and self.in_array:  # the top-level '['
                    gap_start = pos
                depth += 1
                continue
            depth -= 1  # a closing bracket
            if depth < 0:
                yield self._broken(index, start, f"JSON syntax error: an unmatched '{tok.decode()}'")
                return
            if depth == elem_depth and elem_start >= 0:
                yield self._element(index, elem_start, pos, self.in_array)
                index += 1
                elem_start = -1
                shift = self.compact(pos)
                pos -= shift
                gap_start = pos
                continue
            if self.in_array and depth == 0:
                yield from self._gap(index, gap_start, start, "last")
                closed = True
                gap_start = pos
        if depth > 0 or (self.in_array and not closed):
            yield self._broken(index, len(self.buf), "JSON syntax error: the text ends early (truncated file?)")
            return
        tail = self.buf[gap_start:]
        if tail.strip(WHITESPACE):
            lead = len(tail) - len(tail.lstrip(WHITESPACE))
            yield self._broken(index, gap_start + lead, "JSON syntax error: unexpected text between records")

    def _broken(self, index: int, pos: int, message: str, fatal: bool = True) -> Broken:
        line = self.line_at(min(pos, len(self.buf)))
        col = pos - (self.buf.rfind(b"\n", 0, pos) + 1) + 1
        return Broken(index, line, self.base + pos, Oddity("syntax", message, self.base + pos, line, col), fatal)

    def _element(self, index: int, start: int, end: int, nan_as_null: bool) -> Event:
        line = self.line_at(start)
        raw = self.buf[start:end]
        try:
            value, oddity = loads(raw, nan_as_null=nan_as_null)
        except Unreadable as exc:
            odd = exc.oddity
            where = start + odd.offset
            col = where - (self.buf.rfind(b"\n", 0, where) + 1) + 1
            return Broken(
                index,
                line + odd.line - 1,
                self.base + where,
                Oddity(odd.kind, odd.message, self.base + where, line + odd.line - 1, col),
            )
        if oddity is not None:
            oddity = Oddity(
                oddity.kind, oddity.message, self.base + start + oddity.offset, line + oddity.line - 1, oddity.column
            )
        return Record(index, line, self.base + start, self.base + end, value, oddity, raw)

    def _gap(self, index: int, start: int, end: int, where: str) -> Iterator[Event]:
        """The text between elements: one comma between two array elements, nothing elsewhere."""
        text = self.buf[start:end]
        body = text.strip(WHITESPACE)
        lead = len(text) - len(text.lstrip(WHITESPACE))
        if not body:
            if where == "between" and self.in_array:
                yield self._broken(index, end, "JSON syntax error: a missing comma between records", fatal=False)
            return
        if not self.in_array:
            yield self._broken(index, start + lead, "JSON syntax error: unexpected text between records")
            return
        values = [p.strip(WHITESPACE) for p in body.split(b",")]
        if any(values):  # bare numbers or literals where records should be
            for raw in filter(None, values):
                try:
                    value, _odd = loads(raw, nan_as_null=True)
                except Unreadable:
                    yield self._broken(
                        index,
                        start + lead,
                        f"JSON syntax error: unexpected text {raw[:20].decode('utf-8', 'replace')!r} between records",
                        fatal=False,
                    )
                    return
                yield Record(index, self.line_at(start + lead), self.base + start + lead, self.base + end, value)
                index += 1
            return
        commas = len(values) - 1
        if where == "between" and commas == 1:
            return
        if where == "last":
            message = "a trailing comma before ']'"
        elif where == "first":
            message = "a comma before the first record"
        else:
            message = "an empty element (two commas in a row)"
        yield self._broken(index, start + lead, f"JSON syntax error: {message}", fatal=False)


def read_array(stream: BinaryIO, *, skip: int = 0, first: bytes = b"") -> Iterator[Event]:
    return _Scanner(stream, skip, first, in_array=True).events()


def read_objects(stream: BinaryIO, *, skip: int = 0, first: bytes = b"") -> Iterator[Event]:
    return _Scanner(stream, skip, first, in_array=False).events()


def read_parquet(path: str) -> Iterator[Event]:
    """Rows of a Parquet file (needs pyarrow, which the `data` extra installs)."""
    import pyarrow.parquet as pq

    index = 0
    with pq.ParquetFile(path) as pf:
        for batch in pf.iter_batches(batch_size=4096):
            for row in batch.to_pylist():
                yield Record(index, 0, 0, 0, row)
                index += 1
