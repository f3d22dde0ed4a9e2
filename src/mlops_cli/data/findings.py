"""One finding: where (file, record, line), what LLaMA-Factory does with it, and why."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

# What LLaMA-Factory does, worst first. `fatal`: `datasets.load_dataset` fails for the whole file;
# `crash`: the run dies at this record; `drop`: the record is skipped with a warning;
# `silent`: kept, but not the way it reads (text cut, a column ignored); `warn`: kept, worth a look.
CONSEQUENCES = ("fatal", "crash", "drop", "silent", "warn")
FAILING = frozenset({"fatal", "crash", "drop"})


@dataclass
class Finding:
    code: str
    consequence: str
    message: str
    file: Optional[str] = None
    record: Optional[int] = None  # 1-based, in file order
    line: Optional[int] = None  # 1-based line of the file where the record (or the fault) starts
    column: Optional[int] = None  # 1-based column, for syntax errors
    offset: Optional[int] = None  # byte offset, for encoding errors
    versions: Optional[str] = None  # the LLaMA-Factory releases this applies to, when they differ
    extra: dict[str, Any] = field(default_factory=dict)

    def where(self) -> str:
        parts = []
        if self.file:
            loc = self.file
            if self.line is not None:
                loc += f":{self.line}"
                if self.column is not None:
                    loc += f":{self.column}"
            parts.append(loc)
        if self.record is not None:
            parts.append(f"record {self.record}")
        if self.offset is not None and self.line is None:
            parts.append(f"byte {self.offset}")
        return " ".join(parts)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"code": self.code, "consequence": self.consequence, "message": self.message}
        for key in ("file", "record", "line", "column", "offset", "versions"):
            value = getattr(self, key)
            if value is not None:
                doc[key] = value
        if self.extra:
            doc.update(self.extra)
        return doc
