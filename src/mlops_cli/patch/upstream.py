"""Conflict regions of a port that the new release already holds (pure).

A real upstream fix often lands with more edits of its own on the same lines (a branch added
next to it, an import block rewritten around it, the code re-indented under a new ``if``). A
three-way merge then reports a conflict although the new release has the change. Measured on
real fixes (docs/benchmarks.md, "patch port on real upstream fixes"): 7 of 24 ports to a release
that had the fix came out as conflicts that way.

A conflict region counts as **held upstream** when, in the new release's lines around it (its
``theirs`` side and ``WINDOW`` merged lines either side, where restructured code goes):

- every substantive line the patch adds in that region is there, in the same order, and
- no substantive line the patch removes there is there (a line it only re-indents or moves is
  neither added nor removed),

comparing lines without their leading and trailing whitespace (re-indentation is common).
"Substantive" means the line has a letter or a digit: a lone ``)`` or blank line proves
nothing. A region whose change has no substantive line is never held upstream. Everything else
stays a conflict for a person.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

WINDOW = 15  # merged lines either side of a region that are searched too


@dataclass
class Region:
    ours: list[str]
    base: list[str]
    theirs: list[str]
    markers: list[str]  # the four marker lines as they were, to rebuild an unresolved region


def split(text: str, markers: tuple[str, str, str, str]) -> list | None:
    """The merged text as plain lines and Regions; None when the markers are not well formed.
    ``markers`` = the exact marker lines (no newline): start, base, separator, end."""
    items: list = []
    state, region, seen = None, None, []
    for line in text.splitlines(keepends=True):
        bare = line.rstrip("\r\n")
        if state is None:
            if bare == markers[0]:
                state, region, seen = "ours", Region([], [], [], []), [line]
            elif bare in markers[1:]:
                return None
            else:
                items.append(line)
            continue
        if bare == markers[0]:
            return None
        if state == "ours" and bare == markers[1]:
            state = "base"
            seen.append(line)
        elif state in ("ours", "base") and bare == markers[2]:
            state = "theirs"
            seen.append(line)
        elif state == "theirs" and bare == markers[3]:
            seen.append(line)
            region.markers = seen
            items.append(region)
            state = None
        elif bare in markers[1:]:
            return None
        else:
            getattr(region, state).append(line)
    return None if state is not None else items


def _key(line: str) -> str:
    return line.strip()


def _substantive(line: str) -> bool:
    return any(ch.isalnum() for ch in line)


def _change(base: list[str], ours: list[str]) -> tuple[list[str], list[str]]:
    """(added, removed) substantive lines of base -> ours, whitespace-insensitive; a line removed
    and added again (re-indented, moved) is neither: only what the change says counts."""
    added, removed = [], []
    matcher = difflib.SequenceMatcher(None, base, ours, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag in ("replace", "delete"):
            removed += [_key(x) for x in base[i1:i2] if _substantive(x)]
        if tag in ("replace", "insert"):
            added += [_key(x) for x in ours[j1:j2] if _substantive(x)]
    both = set(added) & set(removed)
    return [x for x in added if x not in both], [x for x in removed if x not in both]


def _in_order(needles: list[str], hay: list[str]) -> bool:
    it = iter(hay)
    return all(any(n == h for h in it) for n in needles)


def held_upstream(region: Region, nearby: list[str]) -> bool:
    """Does the new release (``nearby``: its lines around and in the region) hold this region's change?"""
    added, removed = _change(region.base, region.ours)
    if not added and not removed:
        return False
    hay = [_key(x) for x in nearby]
    return _in_order(added, hay) and not (set(removed) & set(hay))


@dataclass(frozen=True)
class Resolved:
    text: str
    conflicts: int  # regions left for a person
    held: int  # regions the new release already holds (taken from it)


def resolve(text: str, markers: tuple[str, str, str, str]) -> Resolved | None:
    """Take the new release's side of every region it already holds; None when the merged text
    cannot be read back (then nothing is resolved)."""
    items = split(text, markers)
    if items is None:
        return None
    view: list[str] = []  # the merged text with every region's theirs side
    spans: list[tuple[int, int]] = []
    for item in items:
        if isinstance(item, Region):
            spans.append((len(view), len(view) + len(item.theirs)))
            view += item.theirs
        else:
            view.append(item)
    out: list[str] = []
    held = left = 0
    regions = iter(spans)
    for item in items:
        if not isinstance(item, Region):
            out.append(item)
            continue
        start, end = next(regions)
        if held_upstream(item, view[max(start - WINDOW, 0) : end + WINDOW]):
            out += item.theirs
            held += 1
        else:
            m = item.markers
            out += [m[0], *item.ours] + ([m[1], *item.base] if len(m) == 4 else []) + [m[-2], *item.theirs, m[-1]]
            left += 1
    return Resolved("".join(out), left, held)
