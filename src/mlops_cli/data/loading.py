"""What `datasets.load_dataset("json", ...)` does with the file (datasets 2.21-4.0, LLaMA-Factory's pins).

Measured on datasets 4.0.0 (tests/data/test_datasets_real.py proves each verdict):
* JSON Lines / objects one after another go to pyarrow in 10 MiB batches (+ the rest of the line).
  Inside a batch a value whose kind differs from the column's (string vs number vs bool vs list vs
  object; null fits anything; int and float are one kind) fails the whole file ("changed from string
  to number in row N"); NaN/Infinity are numbers there. A later batch may not add a column or a
  nested field (DatasetGenerationCastError), may not turn a null-only column into another kind, and
  may not put a fraction (1.5) into a column the first batch saw only integers in ("Float value 1.5
  was truncated converting to int64"; 2.0 is fine). A key written twice in one object at the top
  level fails the file ("Column(/output) was specified twice in row 1"); nested, the last one wins.
* A JSON array fails pyarrow and is read whole by pandas: NaN becomes null, a BOM or a syntax error
  fails the file, kinds may not mix in a column, anywhere in the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

CHUNK = 10 << 20  # datasets' JsonConfig.chunksize

# Kinds as pyarrow tells them apart. Numbers come in three: "number" (an integer), "float" (a float
# with a whole value, e.g. 2.0) and "fraction" (1.5, NaN, or beyond int64): one kind inside a batch,
# but a later batch may not put a fraction into a column the first batch made int64.
_KIND = {
    str: "string",
    int: "number",
    float: "float",
    bool: "boolean",
    list: "list",
    dict: "object",
    type(None): "null",
}
_NUMBER_RANK = {"number": 0, "float": 1, "fraction": 2}
_INT64 = 9.2e18


def _number_kind(value: float) -> str:
    return "float" if value.is_integer() and -_INT64 < value < _INT64 else "fraction"


def _shown(kind: str) -> str:
    return "number" if kind in _NUMBER_RANK else kind


@dataclass
class Conflict:
    path: str
    was: str
    now: str
    first_line: Optional[int]
    first_record: Optional[int]
    cross_batch: bool = False
    new_field: bool = False
    value: Any = None  # the fraction, for an int64 column that gets one
    other_file: bool = False  # found in another file of the dataset than the first
    record_kind: bool = False  # a record that is not a JSON object where objects are read


@dataclass
class SchemaTracker:
    """Column kinds as pyarrow/pandas see them, batch by batch; reports what breaks the load."""

    lines_mode: bool  # pyarrow batches (JSON Lines, object streams); False: pandas, the whole file
    schema: dict[str, str] = field(default_factory=dict)  # the first batch's kinds (the dataset's schema)
    # path -> (kind, line, record, value): the first value of the widest kind seen in this batch
    batch: dict[str, tuple] = field(default_factory=dict)
    batch_no: int = 0
    batch_end: int = CHUNK  # file offset the current batch's read reaches
    conflicts: list[Conflict] = field(default_factory=list)
    top_keys: dict[str, int] = field(default_factory=dict)  # key -> first record
    msg_keys: set = field(default_factory=set)
    keys: int = 0  # keys (at every depth) of the last record added
    # (path, key tuple) of objects in a list whose every key is a string column in this batch: another
    # such object holding only strings and nulls changes nothing, so it is not walked (the fast path).
    text_objects: set = field(default_factory=set)
    file_started: bool = False  # the open batch is the first of a file after the first
    # JSON arrays: the first record's kind, "object" or another (null aside), for objects mixed with others
    first_root: Optional[str] = None
    root_conflict: bool = False  # reported once

    def new_file(self) -> None:
        """Each file of a dataset is read on its own; the schema stays the first table's."""
        self._close_batch()
        self.batch_end = CHUNK
        self.file_started = True
        self.first_root = None  # pandas reads each JSON array file on its own
        self.root_conflict = False

    def add(self, value: Any, line: int, record: int, offset: int, end: int) -> None:
        if self.lines_mode and offset >= self.batch_end:
            self._close_batch()
            self.batch_end = offset + CHUNK
        self._see_record_kind(value, line, record)
        if type(value) is dict:
            top = self.top_keys
            if not top.keys() >= value.keys():
                for key in value:
                    top.setdefault(key, record)
            self.keys = self._walk(value, "/", line, record)
        else:
            self.keys = 0
            self._see("", _KIND.get(type(value), "other"), line, record, value)
        if self.lines_mode and end > self.batch_end:
            # datasets reads CHUNK bytes, then the rest of that line: this record closes the batch.
            self.batch_end = end

    def _see_record_kind(self, value: Any, line: int, record: int) -> None:
        """pyarrow reads JSON Lines one object per line: a line that is a list, a string or a number
        fails the whole file (null is a row of nulls). pandas reads a JSON array whole: objects mixed
        with other values (or a null after an object) fail it; an array of only non-objects is read
        another way (a 'text' column)."""
        if self.root_conflict:
            return
        t = type(value)
        kind = "object" if t is dict else _KIND.get(t, "other")
        if t is float:
            kind = "number"
        if self.lines_mode:
            bad = kind not in ("object", "null")
            was = "object"
        else:
            if self.first_root is None:
                if kind != "null":
                    self.first_root = kind
                return
            was = self.first_root
            bad = (was == "object") != (kind == "object")
        if bad:
            self.root_conflict = True
            if len(self.conflicts) < 20:
                self.conflicts.append(Conflict("", was, _shown(kind), line, record, record_kind=True))

    def _walk(self, obj: dict, prefix: str, line: int, record: int) -> int:
        """See every value of `obj` (paths like /messages/[]/content); returns how many keys it holds."""
        batch = self.batch
        keys = len(obj)
        for key, value in obj.items():
            path = prefix + key
            t = type(value)
            kind = _KIND.get(t, "other")
            if t is float:
                kind = _number_kind(value)
            have = batch.get(path)
            if have is None or (have[0] != kind and kind != "null"):
                self._see(path, kind, line, record, value)
            if t is dict:
                keys += self._walk(value, path + "/", line, record)
            elif t is list and value:
                keys += self._walk_list(value, path + "/[]", line, record, prefix == "/")
        return keys

    def _walk_list(self, items: list, path: str, line: int, record: int, top: bool) -> int:
        batch = self.batch
        keys = 0
        first = items[0]
        if type(first) is dict and (path, tuple(first)) in self.text_objects:
            # Messages with the keys of one seen before, all strings (or null): nothing new, no walk.
            shape = first.keys()
            for item in items:
                if type(item) is not dict or item.keys() != shape:
                    break
                for value in item.values():
                    if type(value) is not str and value is not None:
                        break
                else:
                    continue
                break
            else:
                return len(shape) * len(items)
        types = set(map(type, items))
        if len(types) == 1 and float not in types:
            kind = _KIND.get(type(items[0]), "other")
            have = batch.get(path)
            if have is None or (have[0] != kind and kind != "null"):
                self._see(path, kind, line, record, items[0])
        else:  # mixed kinds (or floats): in order, so the message names the first change
            for item in items:
                t = type(item)
                kind = _number_kind(item) if t is float else _KIND.get(t, "other")
                self._see(path, kind, line, record, item)
        if dict in types:
            sub = path + "/"
            for item in items:
                if type(item) is dict:
                    if top:
                        self.msg_keys.update(item)
                    keys += self._walk(item, sub, line, record)
            shape = tuple(first) if type(first) is dict else ()
            if shape and all(batch.get(sub + k, ("",))[0] == "string" for k in shape):
                self.text_objects.add((path, shape))
        if list in types:
            sub = path + "/[]"
            for item in items:
                if type(item) is list and item:
                    keys += self._walk_list(item, sub, line, record, False)
        return keys

    def _see(self, path: str, kind: str, line: int, record: int, value: Any = None) -> None:
        have = self.batch.get(path)
        if have is None or (have[0] == "null" and kind != "null"):
            self.batch[path] = (kind, line, record, value)
            return
        was = have[0]
        if was == kind or kind == "null":
            return
        if was in _NUMBER_RANK and kind in _NUMBER_RANK:
            if _NUMBER_RANK[kind] > _NUMBER_RANK[was]:
                self.batch[path] = (kind, line, record, value)
            return
        if len(self.conflicts) < 20:
            self.conflicts.append(Conflict(path, _shown(was), _shown(kind), line, record))
        # remember the first kind; later conflicts on this path are the same fault

    def _close_batch(self) -> None:
        if not self.batch:
            return
        if self.batch_no == 0:
            self.schema = {p: k for p, (k, _l, _r, _v) in self.batch.items()}
        elif not self.lines_mode:
            self._merge_pandas()
        else:
            for path, (kind, line, record, value) in self.batch.items():
                was = self.schema.get(path)
                if len(self.conflicts) >= 20:
                    break
                if was is None:
                    self.conflicts.append(
                        Conflict(
                            path,
                            "absent",
                            kind,
                            line,
                            record,
                            cross_batch=True,
                            new_field=True,
                            other_file=self.file_started,
                        )
                    )
                    self.schema[path] = kind
                elif was in _NUMBER_RANK and kind in _NUMBER_RANK:
                    if was == "number" and kind == "fraction":
                        self.conflicts.append(
                            Conflict(path, "number", "fraction", line, record, cross_batch=True, value=value)
                        )
                elif kind not in (was, "null") and not (
                    was == "string" and (kind in _NUMBER_RANK or kind == "boolean")
                ):
                    self.conflicts.append(Conflict(path, _shown(was), _shown(kind), line, record, cross_batch=True))
        self.batch = {}
        self.text_objects = set()
        self.batch_no += 1
        self.file_started = False

    def _merge_pandas(self) -> None:
        """Another file of the dataset (pandas reads each whole): its table is cast to the first
        file's, so a column or field the first file did not have fails (DatasetGenerationCastError);
        one it lacks is filled with null."""
        for path, (kind, line, record, _value) in self.batch.items():
            was = self.schema.get(path)
            if was is None and len(self.conflicts) < 20:
                self.conflicts.append(
                    Conflict(path, "absent", kind, line, record, cross_batch=True, new_field=True, other_file=True)
                )
                self.schema[path] = kind
            elif was is None or was == "null":
                self.schema[path] = kind
            elif (
                kind not in (was, "null")
                and not (was in _NUMBER_RANK and kind in _NUMBER_RANK)
                and len(self.conflicts) < 20
            ):
                self.conflicts.append(Conflict(path, _shown(was), _shown(kind), line, record, cross_batch=True))

    def finish(self) -> None:
        self._close_batch()


def describe(conflict: Conflict, lines_mode: bool) -> str:
    col = conflict.path.lstrip("/") or "(the record itself)"
    if conflict.record_kind:
        arrow = {"list": "array"}.get(conflict.now, conflict.now)
        if lines_mode:
            return (
                f"record {conflict.first_record} is a JSON {arrow}, not an object: JSON Lines needs one object "
                f"per line: ArrowInvalid: JSON parse error: Column() changed from object to {arrow}"
            )
        return (
            f"the array holds {conflict.was} records and, at record {conflict.first_record}, a {conflict.now}: "
            "objects and other values do not mix (datasets fails the whole file: ArrowInvalid / ArrowTypeError "
            "while pandas' table becomes Arrow)"
        )
    if conflict.new_field:
        where = (
            "in a later file of the dataset (not in the first)"
            if conflict.other_file
            else "after the first 10 MiB batch"
        )
        if conflict.path.count("/") == 1:
            return (
                f"column {col!r} first appears {where}: DatasetGenerationCastError: "
                f"All the data files must have the same columns, but at some point there are 1 new columns "
                f"({{'{col}'}})"
            )
        return (
            f"field {col!r} first appears {where}: TypeError: Couldn't cast array of "
            "type struct<...> (a nested field the first batch did not have)"
        )
    if conflict.now == "fraction":
        return (
            f"column {col!r} holds whole numbers in the first 10 MiB batch (int64) and {conflict.value!r} "
            f"here: ArrowInvalid: Float value {conflict.value!r} was truncated converting to int64"
        )
    if conflict.cross_batch and conflict.was == "null":
        return (
            f"column {col!r} is null in the whole first 10 MiB batch and {conflict.now} later: TypeError: "
            f"Couldn't cast array of type {conflict.now} to null"
        )
    if lines_mode:
        return (
            f"column {col!r} is {conflict.was} in earlier records and {conflict.now} here: ArrowInvalid: "
            f"JSON parse error: Column(/{col}) changed from {conflict.was} to {conflict.now}"
        )
    return (
        f"column {col!r} is {conflict.was} in earlier records and {conflict.now} here: ArrowTypeError / "
        f"ArrowInvalid while pandas' table becomes Arrow (\"Expected bytes, got a '...' object\")"
    )
