"""Substring search over one block of a log: glibc's ``memmem`` where it is there, else ``bytes.find``.

The scanner pays one full pass over every 4 MiB block per needle, and those passes are most of
train-doctor's time. ``bytes.find`` steps through log text at about 2 GB/s (a Horspool variant
whose skip is at most the needle's length); glibc's ``memmem`` (2.29 and later: a skip table on
pairs of bytes) does the same search about three times faster on the same blocks
(docs/benchmarks.md, train-doctor). It is reached through ``ctypes`` from the standard library, so
nothing is compiled or installed. Anywhere else (another C library, an older glibc, no ``ctypes``)
the search is ``bytes.find``; the answers are the same.

Safety: ``memmem`` reads ``[start, stop)`` of a ``bytes`` object that the returned function keeps
alive; both bounds are clamped into the object before the call, so no read leaves it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

Find = Callable[[bytes, int, int], int]

SHORT = 4096  # below this many bytes a ctypes call costs more than it saves: bytes.find

_memmem: object = None  # the loaded function; False once loading failed
GLIBC_MIN = (2, 29)  # the first glibc whose memmem is the fast one


def _glibc_version() -> tuple[int, int] | None:
    try:
        name, _, version = os.confstr("CS_GNU_LIBC_VERSION").partition(" ")  # "glibc 2.36"
        major, minor = version.split(".")[:2]
        return (int(major), int(minor)) if name == "glibc" else None
    except (AttributeError, ValueError, OSError, TypeError):
        return None


def _load():
    global _memmem
    if _memmem is None:
        _memmem = False
        version = _glibc_version() if sys.platform.startswith("linux") else None
        if version is not None and version >= GLIBC_MIN and not os.environ.get("MLOPS_NO_MEMMEM"):
            try:
                import ctypes

                fn = ctypes.CDLL(None).memmem
                fn.restype = ctypes.c_void_p
                fn.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t)
                _memmem = (fn, ctypes)
            except (ImportError, OSError, AttributeError):
                _memmem = False
    return _memmem


def available() -> bool:
    """Whether searches go through memmem here."""
    return bool(_load())


def finder(data: bytes) -> Find:
    """`find(needle, start, stop)` over `data`, with `bytes.find`'s answer (-1 when absent)."""
    loaded = _load()
    if not loaded or len(data) < SHORT:
        return data.find
    memmem, ctypes = loaded
    base = ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value  # data's own buffer, no copy
    size = len(data)
    slow = data.find  # also what keeps data, and so base, alive as long as find is

    def find(needle: bytes, start: int = 0, stop: int = size) -> int:
        if start < 0:
            start = max(0, start + size)
        if stop > size:
            stop = size
        elif stop < 0:
            stop = max(0, stop + size)
        if stop - start < SHORT or not needle:
            return slow(needle, start, stop)
        hit = memmem(base + start, stop - start, needle, len(needle))
        return -1 if hit is None else hit - base

    return find
