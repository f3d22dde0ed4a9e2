"""Replace (or append) one "## heading" section of docs/benchmarks.md: what every benchmark
script does with its numbers. Import it from a script run as `python benchmarks/NAME.py`."""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def write_section(heading: str, section: str, docs: Path = DOCS) -> None:
    """``section`` (starting with ``## {heading}``) replaces the section whose heading starts
    with ``heading``, up to the next ``## `` heading; without one, it is appended."""
    text = docs.read_text() if docs.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^## {re.escape(heading)}.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _m: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    docs.write_text(text)
