"""A file LLaMA-Factory hands to datasets' `text` builder (its name ends .txt): one record per line.

The builder does not parse JSON: it decodes the file as UTF-8 and splits it into lines
(`str.splitlines`, line breaks dropped), each line one row of a single column, `text`. Blank lines are
rows too. A JSON array saved as .txt therefore loads, as one record per line of JSON text, and the
entry's columns (instruction, conversations, ...) are not there. Bytes that are not UTF-8 fail the load.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from mlops_cli.data.parse import Oddity
from mlops_cli.data.readers import Broken, Event, Record

CHUNK = 1 << 22


def read_text_lines(stream: BinaryIO, *, first: bytes = b"") -> Iterator[Event]:
    """Records {"text": line} as datasets' text builder makes them (a BOM stays in the first line)."""
    index, lineno, offset = 0, 0, 0
    rest = first
    eof = False
    while not eof:
        data = stream.read(CHUNK)
        eof = not data
        data = rest + data if rest else data
        lines = data.split(b"\n")
        rest = lines.pop()
        if eof and rest:  # the last line has no line break
            lines.append(rest)
        for raw in lines:
            lineno += 1
            start = offset
            offset += len(raw) + 1
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield Broken(
                    index,
                    lineno,
                    start + exc.start,
                    Oddity(
                        "utf8",
                        f"bytes that are not UTF-8 ({exc.reason}): datasets' text loader "
                        "fails the whole file (UnicodeDecodeError)",
                        start + exc.start,
                        lineno,
                        1,
                    ),
                    fatal_for_rest=True,
                )
                return
            # str.splitlines also breaks at \r, \x0b, \x0c, \x1c-\x1e, \x85, \u2028, \u2029
            for part in text.splitlines() or [""]:
                yield Record(index, lineno, start, offset, {"text": part})
                index += 1
