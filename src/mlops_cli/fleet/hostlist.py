"""Node names folded into a pdsh/Slurm host list: gpu001 gpu002 gpu003 gpu007 -> gpu[001-003,007]."""

from __future__ import annotations

import re
from collections.abc import Iterable

_NUMBERED = re.compile(r"(.*?)(\d+)(\D*)\Z")


def _ranges(numbers: list[int], width: int) -> str:
    parts: list[str] = []
    start = prev = numbers[0]
    for n in numbers[1:] + [None]:  # type: ignore[list-item]
        if n is not None and n == prev + 1:
            prev = n
            continue
        parts.append(f"{start:0{width}d}" if start == prev else f"{start:0{width}d}-{prev:0{width}d}")
        if n is not None:
            start = prev = n
    return ",".join(parts)


def compress(names: Iterable[str]) -> str:
    """A host list pdsh's -w and Slurm accept, in the order the names' groups first appear.
    Names are folded on their last number when they share what comes before and after it and
    its number of digits (gpu09 and gpu10 fold to gpu[09-10]; gpu9 and gpu10 are listed apart).
    A name holding '[', ']' or ',' is listed as it is."""
    groups: dict[tuple[str, str, int], set[int]] = {}
    order: list[tuple[str, str, int] | str] = []
    plain: set[str] = set()
    for name in names:
        m = _NUMBERED.match(name)
        if m is None or any(c in name for c in "[],"):
            if name not in plain:
                plain.add(name)
                order.append(name)
            continue
        key = (m.group(1), m.group(3), len(m.group(2)))
        if key not in groups:
            groups[key] = set()
            order.append(key)
        groups[key].add(int(m.group(2)))
    out: list[str] = []
    for item in order:
        if isinstance(item, str):
            out.append(item)
            continue
        prefix, suffix, width = item
        numbers = sorted(groups[item])
        if len(numbers) == 1:
            out.append(f"{prefix}{numbers[0]:0{width}d}{suffix}")
        else:
            out.append(f"{prefix}[{_ranges(numbers, width)}]{suffix}")
    return ",".join(out)
