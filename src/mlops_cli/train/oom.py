"""The numbers in a PyTorch CUDA out-of-memory message, every version's wording (pure).

Formats (research: memory-anchors §4, train-logs §3.8):
- torch <= 1.3:  ``Tried to allocate X (GPU 0; T total capacity; A already allocated; F free; C cached)``
  (``cached`` = held by the allocator beyond what is allocated);
- torch 1.4-2.0: ``... F free; R reserved in total by PyTorch)`` (R includes A), optional
  ``If reserved memory is >> allocated memory ...`` hint;
- torch >= 2.1:  ``Tried to allocate X. GPU 0 has a total capac(i)ty of T of which F is free.
  [Including non-PyTorch memory, this process has P memory in use. | Process N has P memory in
  use. ...] Of the allocated memory A is allocated by PyTorch, and U is reserved by PyTorch but
  unallocated.`` (R = A + U);
- ``PYTORCH_CUDA_ALLOC_CONF`` or ``PYTORCH_ALLOC_CONF`` in the hint, one or two spaces, ``0 bytes``,
  ``Pytorch``; the hint about ``expandable_segments`` / ``max_split_size_mb`` is printed on every
  OOM and is not evidence of anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

_SIZE = rb"([0-9]{1,12}(?:\.[0-9]{1,6})?)\s{0,2}(bytes|B|KiB|MiB|GiB|TiB|KB|MB|GB|TB)"
_UNITS = {
    b"bytes": 1,
    b"B": 1,
    b"KiB": 1024,
    b"MiB": 1024**2,
    b"GiB": 1024**3,
    b"TiB": 1024**4,
    b"KB": 1024,
    b"MB": 1024**2,
    b"GB": 1024**3,
    b"TB": 1024**4,
}

# `_S`: the blanks between words; a message wrapped by a terminal and joined again keeps the trailing
# space of the cut line, so two blanks (or a tab) stand where the message has one
_S = rb"\s{1,4}"
_REQ = re.compile(rb"Tried" + _S + rb"to" + _S + rb"allocate" + _S + _SIZE)
_GPU_NEW = re.compile(
    rb"GPU ?(\d{1,4})?"
    + _S
    + rb"has"
    + _S
    + rb"a"
    + _S
    + rb"total"
    + _S
    + rb"capac(?:i)?ty"
    + _S
    + rb"of"
    + _S
    + _SIZE
    + _S
    + rb"of"
    + _S
    + rb"which"
    + _S
    + _SIZE
    + _S
    + rb"is"
    + _S
    + rb"free"
)
_OLD = re.compile(
    rb"\(GPU (\d{1,4});"
    + _S
    + _SIZE
    + _S
    + rb"total"
    + _S
    + rb"capacity;"
    + _S
    + _SIZE
    + _S
    + rb"already"
    + _S
    + rb"allocated;"
    + _S
    + _SIZE
    + _S
    + rb"free;"
    + _S
    + _SIZE
    + _S
    + rb"(reserved"
    + _S
    + rb"in"
    + _S
    + rb"total"
    + _S
    + rb"by"
    + _S
    + rb"[Pp]y[Tt]orch|cached)"
)
_ALLOC_NEW = re.compile(
    rb"Of"
    + _S
    + rb"the"
    + _S
    + rb"allocated"
    + _S
    + rb"memory"
    + _S
    + _SIZE
    + _S
    + rb"is"
    + _S
    + rb"allocated"
    + _S
    + rb"by"
    + _S
    + rb"[Pp]y[Tt]orch,"
    + _S
    + rb"and"
    + _S
    + _SIZE
    + _S
    + rb"is"
    + _S
    + rb"reserved"
    + _S
    + rb"by"
    + _S
    + rb"[Pp]y[Tt]orch"
    + _S
    + rb"but"
    + _S
    + rb"unallocated"
)
_THIS_PROC = re.compile(rb"this process has " + _SIZE + rb" memory in use")
_PROC = re.compile(rb"Process (\d{1,10}) has " + _SIZE + rb" memory in use")
_ENV = re.compile(rb"(PYTORCH_(?:CUDA_)?ALLOC_CONF)")


def _bytes(num: bytes, unit: bytes) -> int:
    return int(float(num) * _UNITS[unit])


@dataclass
class OomNumbers:
    """Bytes, as the message gives them; None where this wording has no such number."""

    requested: Optional[int] = None
    total: Optional[int] = None
    free: Optional[int] = None
    allocated: Optional[int] = None
    reserved: Optional[int] = None
    reserved_unallocated: Optional[int] = None
    this_process: Optional[int] = None
    other_processes: Optional[int] = None
    gpu: Optional[int] = None
    env_var: Optional[str] = None  # the allocator variable this torch reads

    @property
    def complete(self) -> bool:
        return self.requested is not None and self.total is not None and self.reserved_unallocated is not None

    def to_json(self) -> dict:
        return {
            k: getattr(self, k)
            for k in (
                "gpu",
                "requested",
                "total",
                "free",
                "allocated",
                "reserved",
                "reserved_unallocated",
                "this_process",
                "other_processes",
            )
        }


def parse_oom(text: bytes) -> OomNumbers:
    """Every number the message holds (the text may be one line or a few joined lines)."""
    n = OomNumbers()
    m = _REQ.search(text)
    if m:
        n.requested = _bytes(m.group(1), m.group(2))
    m = _GPU_NEW.search(text)
    if m:
        n.gpu = int(m.group(1)) if m.group(1) else None  # `GPU  has`: some builds print no index
        n.total = _bytes(m.group(2), m.group(3))
        n.free = _bytes(m.group(4), m.group(5))
        m2 = _ALLOC_NEW.search(text)
        if m2:
            n.allocated = _bytes(m2.group(1), m2.group(2))
            n.reserved_unallocated = _bytes(m2.group(3), m2.group(4))
            n.reserved = n.allocated + n.reserved_unallocated
        m2 = _THIS_PROC.search(text)
        if m2:
            n.this_process = _bytes(m2.group(1), m2.group(2))
        others = [_bytes(p.group(2), p.group(3)) for p in _PROC.finditer(text)]
        if others:
            n.other_processes = sum(others)
    else:
        m = _OLD.search(text)
        if m:
            n.gpu = int(m.group(1))
            n.total = _bytes(m.group(2), m.group(3))
            n.allocated = _bytes(m.group(4), m.group(5))
            n.free = _bytes(m.group(6), m.group(7))
            held = _bytes(m.group(8), m.group(9))
            if m.group(10).startswith(b"cached"):  # torch <= 1.3: cached on top of allocated
                n.reserved_unallocated = held
                n.reserved = n.allocated + held
            else:
                n.reserved = held
                n.reserved_unallocated = max(0, held - n.allocated)
    m = _ENV.search(text)
    if m:
        n.env_var = m.group(1).decode()
    return n


def needs_more_text(text: bytes) -> bool:
    """True when an OOM message looks cut by a line wrap (the numbers continue on the next line)."""
    if not _REQ.search(text):
        return b"Tried to" in text or text.rstrip().endswith((b"Tried", b"CUDA out of memory."))
    if _GPU_NEW.search(text):
        return _ALLOC_NEW.search(text) is None and b"Of the allocated" not in text[-40:] and len(text) < 4096
    return _OLD.search(text) is None and len(text) < 4096


def split_kind(n: OomNumbers) -> str:
    """'fragmentation' when the allocator holds enough reserved-but-unallocated memory for the
    request (so the request failed for want of a contiguous block), 'capacity' otherwise,
    'unknown' when the message has no numbers."""
    if n.requested is None or n.reserved_unallocated is None:
        return "unknown"
    if n.total is not None and n.requested > n.total:
        return "capacity"
    if n.reserved_unallocated >= n.requested:
        return "fragmentation"
    return "capacity"
