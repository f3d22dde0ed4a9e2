"""Open dataset files through the floor and stream their records (shared by check, convert, stats)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Optional

from mlops_cli.data.readers import BOM, Event, read_array, read_lines, read_objects, read_parquet, sniff
from mlops_cli.errors import NotApplicable, UsageError
from mlops_cli.files import open_input_stream

# LLaMA-Factory's FILEEXT2TYPE (extras/constants.py): the builder is chosen by extension.
EXT_BUILDER = {"arrow": "arrow", "csv": "csv", "json": "json", "jsonl": "json", "parquet": "parquet", "txt": "text"}
KIND_BUILDER = {
    "lines": "json",
    "array": "json",
    "objects": "json",
    "parquet": "parquet",
    "arrow": "arrow",
    "text": "text",
}
HEAD = 1 << 16
INSTALL_DATA = "pip install 'mlops-cli[data]'"


def missing_extra(what: str) -> NotApplicable:
    """An optional library of the `data` extra is missing: one line that says how to install it (exit 3)."""
    return NotApplicable(f"{what}; install it with: {INSTALL_DATA}")


@dataclass
class Opened:
    path: str
    kind: str  # lines, array, objects, parquet, arrow, empty, other, utf16, gzip, text (a .txt: one row a line)
    bom: bool
    size: Optional[int]
    events: Iterator[Event]
    looks: str = ""  # kind text: what the bytes look like otherwise (array, lines, objects, other)


def dataset_files(files: list[str], entry_file: Optional[str], info_path: Optional[str]) -> list[str]:
    """The files to read: the ones given, else the entry's file_name (a file or a folder) beside dataset_info."""
    if files:
        return files
    if not entry_file:
        raise UsageError(
            "no data file given and the entry has no file_name",
            hint="pass the file: mlops data check FILE --info dataset_info.json --name NAME",
        )
    base = os.path.dirname(os.path.abspath(info_path)) if info_path and info_path != "-" else os.getcwd()
    path = os.path.join(base, entry_file)
    if os.path.isdir(path):
        names = sorted(n for n in os.listdir(path) if not n.startswith("."))
        if not names:
            raise UsageError(f"the entry's folder {path} is empty")
        return [os.path.join(path, n) for n in names]
    return [path]


@contextlib.contextmanager
def open_dataset(path: str, *, as_llamafactory: bool = False) -> Iterator[Opened]:
    """The file's records. `as_llamafactory`: read it the way LLaMA-Factory's loader will (check): a .txt
    through datasets' text builder, one record a line; otherwise (convert, stats) by content."""
    with contextlib.ExitStack() as stack:
        stream = open_input_stream(path, what="data file")
        if path != "-":
            stack.callback(stream.close)
        head = stream.read(HEAD)
        kind, bom = sniff(head)
        size = _size(path)
        skip = 3 if bom else 0
        body = head[skip:]
        if kind == "lines":
            kind = _lines_or_objects(body)
        looks = ""
        if (
            as_llamafactory
            and path != "-"
            and extension_builder(path) == "text"
            and kind not in ("parquet", "arrow", "utf16", "gzip", "empty")
        ):
            from mlops_cli.data.textfile import read_text_lines

            looks, kind = kind, "text"
            events: Iterator[Event] = read_text_lines(stream, first=head)
        elif kind == "lines":
            events: Iterator[Event] = read_lines(stream, skip=skip, first=body)
        elif kind == "objects":
            events = read_objects(stream, skip=skip, first=body)
        elif kind == "array":
            events = read_array(stream, skip=skip, first=body)
        elif kind == "parquet":
            if path == "-":
                raise UsageError("Parquet cannot be read from standard input; pass the file")
            try:
                import pyarrow.parquet  # noqa: F401
            except ImportError:
                raise missing_extra("reading Parquet needs pyarrow") from None
            events = read_parquet(path)
        else:
            events = iter(())
        yield Opened(path, kind, bom, size, events, looks)


def _size(path: str) -> Optional[int]:
    if path == "-":
        return None
    try:
        return os.stat(path).st_size
    except OSError:
        return None


def _lines_or_objects(body: bytes) -> str:
    """JSON Lines unless an object in the first 64 KiB spans several lines (pretty-printed objects in a row)."""
    complete = body.split(b"\n")[:-1] if len(body) >= HEAD else body.split(b"\n")
    for raw in complete[:2000]:
        line = raw.strip()
        if line and not (line.startswith(b"{") and line.endswith(b"}")):
            return "objects"
    return "lines"


def readable_records(opened: Opened) -> Iterator:
    """The records of a file that must be well-formed (convert, stats): bad JSON is exit 2."""
    if opened.kind not in ("lines", "objects", "array", "parquet"):
        raise UsageError(f"{opened.path}: not JSON, JSON Lines or Parquet ({opened.kind})")
    from mlops_cli.data.readers import Broken

    for event in opened.events:
        if isinstance(event, Broken):
            raise UsageError(
                f"{opened.path}:{event.line}: {event.oddity.message}",
                hint=f"mlops data check {opened.path} lists every problem",
            )
        yield event


def extension_builder(path: str) -> Optional[str]:
    return EXT_BUILDER.get(os.path.splitext(path)[1][1:])


__all__ = ["BOM", "Opened", "dataset_files", "open_dataset", "extension_builder", "KIND_BUILDER"]
