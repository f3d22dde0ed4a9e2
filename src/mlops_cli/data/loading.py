"""What `datasets.load_dataset("json", ...)` does with the file (datasets 2.21-4.0, LLaMA-Factory's pins).

Measured on datasets 4.0.0 (tests/data/test_datasets_real.py proves each verdict):
* JSON Lines / objects one after another go to pyarrow in 10 MiB batches (+ the rest of the line).
  Inside a batch a value whose kind differs from the column's (string vs number vs bool vs list vs
  object; null fits anything; int and float are one kind) fails the whole file ("changed from string
  to number in row N"); NaN/Infinity are numbers there. A later batch may not add a column or a
  nested field (DatasetGenerationCastError) and may not turn a null-only column into another kind.
* A JSON array fails pyarrow and is read whole by pandas: NaN becomes null, a BOM or a syntax error
  fails the file, kinds may not mix in a column, anywhere in the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

CHUNK = 10 << 20  # datasets' JsonConfig.chunksize

_KIND = {str: "string", int: "number", float: "number", bool: "boolean", list: "list", dict: "object",
         type(None): "null"}


@dataclass
class Conflict:
    path: str
    was: str
    now: str
    first_line: Optional[int]
    first_record: Optional[int]
    cross_batch: bool = False
    new_field: bool = False


@dataclass
class SchemaTracker:
    """Column kinds as pyarrow/pandas see them, batch by batch; reports what breaks the load."""

    lines_mode: bool  # pyarrow batches (JSON Lines, object streams); False: pandas, the whole file
    schema: dict[str, str] = field(default_factory=dict)  # the first batch's kinds (the dataset's schema)
    batch: dict[str, tuple[str, int, int]] = field(default_factory=dict)  # path -> (kind, line, record)
    batch_no: int = 0
    batch_end: int = CHUNK  # file offset the current batch's read reaches
    conflicts: list[Conflict] = field(default_factory=list)
    top_keys: dict[str, int] = field(default_factory=dict)  # key -> first record
    msg_keys: set = field(default_factory=set)

    def new_file(self) -> None:
        """Each file of a dataset is read on its own; the schema stays the first table's."""
        self._close_batch()
        self.batch_end = CHUNK

    def add(self, value: Any, line: int, record: int, offset: int, end: int) -> None:
        if self.lines_mode and offset >= self.batch_end:
            self._close_batch()
            self.batch_end = offset + CHUNK
        if isinstance(value, dict):
            for key in value:
                if key not in self.top_keys:
                    self.top_keys[key] = record
            self._walk(value, "", line, record)
        else:
            self._see("", _KIND.get(type(value), "other"), line, record)
        if self.lines_mode and end > self.batch_end:
            # datasets reads CHUNK bytes, then the rest of that line: this record closes the batch.
            self.batch_end = end

    def _walk(self, obj: dict, prefix: str, line: int, record: int) -> None:
        see = self._see
        for key, value in obj.items():
            path = prefix + "/" + key
            kind = _KIND.get(type(value), "other")
            see(path, kind, line, record)
            if kind == "object":
                self._walk(value, path, line, record)
            elif kind == "list":
                item_path = path + "/[]"
                for item in value:
                    ikind = _KIND.get(type(item), "other")
                    see(item_path, ikind, line, record)
                    if ikind == "object":
                        if prefix == "" and ikind == "object":
                            self.msg_keys.update(item)
                        self._walk(item, item_path, line, record)
                    elif ikind == "list":
                        for sub in item:
                            see(item_path + "/[]", _KIND.get(type(sub), "other"), line, record)

    def _see(self, path: str, kind: str, line: int, record: int) -> None:
        have = self.batch.get(path)
        if have is None:
            self.batch[path] = (kind, line, record)
            return
        if have[0] == kind or kind == "null":
            return
        if have[0] == "null":
            self.batch[path] = (kind, line, record)
            return
        if len(self.conflicts) < 20:
            self.conflicts.append(Conflict(path, have[0], kind, line, record))
        # remember the first kind; later conflicts on this path are the same fault

    def _close_batch(self) -> None:
        if not self.batch:
            return
        if self.batch_no == 0 or not self.lines_mode:
            if self.batch_no == 0:
                self.schema = {p: k for p, (k, _l, _r) in self.batch.items()}
            else:
                self._merge_pandas()
        else:
            for path, (kind, line, record) in self.batch.items():
                was = self.schema.get(path)
                if was is None:
                    parent = path.rsplit("/", 1)[0]
                    if len(self.conflicts) < 20:
                        self.conflicts.append(Conflict(path, "absent", kind, line, record, cross_batch=True,
                                                       new_field=True))
                    self.schema[path] = kind
                    del parent
                elif kind not in (was, "null") and not (was == "string" and kind in ("number", "boolean")):
                    if len(self.conflicts) < 20:
                        self.conflicts.append(Conflict(path, was, kind, line, record, cross_batch=True))
        self.batch = {}
        self.batch_no += 1

    def _merge_pandas(self) -> None:
        for path, (kind, line, record) in self.batch.items():
            was = self.schema.get(path)
            if was is None or was == "null":
                self.schema[path] = kind
            elif kind not in (was, "null") and len(self.conflicts) < 20:
                self.conflicts.append(Conflict(path, was, kind, line, record, cross_batch=True))

    def finish(self) -> None:
        self._close_batch()


def describe(conflict: Conflict, lines_mode: bool) -> str:
    col = conflict.path.lstrip("/") or "(the record itself)"
    if conflict.new_field:
        if conflict.path.count("/") == 1:
            return (f"column {col!r} first appears after the first 10 MiB batch: DatasetGenerationCastError: "
                    f"All the data files must have the same columns, but at some point there are 1 new columns "
                    f"({{'{col}'}})")
        return (f"field {col!r} first appears after the first 10 MiB batch: TypeError: Couldn't cast array of "
                "type struct<...> (a nested field the first batch did not have)")
    if conflict.cross_batch and conflict.was == "null":
        return (f"column {col!r} is null in the whole first 10 MiB batch and {conflict.now} later: TypeError: "
                f"Couldn't cast array of type {conflict.now} to null")
    if lines_mode:
        return (f"column {col!r} is {conflict.was} in earlier records and {conflict.now} here: ArrowInvalid: "
                f"JSON parse error: Column(/{col}) changed from {conflict.was} to {conflict.now}")
    return (f"column {col!r} is {conflict.was} in earlier records and {conflict.now} here: ArrowTypeError / "
            f"ArrowInvalid while pandas' table becomes Arrow (\"Expected bytes, got a '...' object\")")
