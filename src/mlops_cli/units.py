"""Sizes in binary units, written with the unit (no heavy imports)."""

from __future__ import annotations

import math
import re

from mlops_cli.errors import UsageError
from mlops_cli.text import one_line, shorten

_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]


def format_bytes(n: float | int | None, precision: int = 1) -> str:
    """Binary units with the unit written: 1536 -> '1.5 KiB'."""
    if n is None:
        return "n/a"
    value = float(n)
    if not math.isfinite(value):
        return "n/a"
    sign = "-" if value < 0 else ""
    value = abs(value)
    for unit in _UNITS:
        if value < 1024 or unit == _UNITS[-1]:
            if unit == "B":
                return f"{sign}{int(value)} B"
            return f"{sign}{value:.{precision}f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


_SIZE = re.compile(r"\s*([0-9]{1,15}(?:\.[0-9]{1,15})?|\.[0-9]{1,15})\s*([KMGTP]?)(i?)(B?)\s*", re.IGNORECASE)


def parse_bytes(text: str, *, what: str = "size", minimum: int = 0) -> int:
    """'80GiB', '80 GB', '81920MiB', '1.5T' -> bytes. Decimal units are decimal; a bare
    'G'/'T' (no 'B') is binary, as nvidia-smi and most people mean it."""
    # A size is a few characters; a longer text is refused before the regex sees it (with
    # thousands of blanks its surrounding \s* would backtrack quadratically).
    m = _SIZE.fullmatch(text) if len(text) <= 64 else None
    if not m or (not m.group(2) and m.group(3)):
        raise UsageError(f"not a {what}: {shorten(one_line(text), 40)!r}", hint="write it like 80GiB, 24GB or 81920MiB")
    number, prefix, binary, _ = m.groups()
    power = "KMGTP".find(prefix.upper()) + 1 if prefix else 0
    base = 1024 if (binary or not m.group(4)) else 1000
    value = int(float(number) * base**power)
    if value < minimum:
        raise UsageError(
            f"{what} {shorten(one_line(text), 40)!r} is too small", hint="give a size above zero, e.g. 24GiB"
        )
    return value
