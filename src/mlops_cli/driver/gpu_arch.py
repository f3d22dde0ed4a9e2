"""NVIDIA GPU architecture from the PCI device id, and what each architecture needs. Pure.

NVIDIA allocates device ids in blocks per chip family, so the id alone tells the architecture.
Two questions depend on it:

- the kernel module flavour: the open modules need the GPU System Processor (Turing and later);
  Maxwell, Pascal and Volta run only with the proprietary modules, Blackwell and later only with
  the open ones (NVIDIA's README, "Open Linux Kernel Modules");
- the driver branches that know the architecture: a release refusing a GPU whose architecture
  it has supported for years is not "too old for this GPU" (in a VM it is a vGPU device that
  needs the GRID guest driver).

Branch numbers are the first production branch of the architecture (a later SKU of it can need
a newer one, hence the margin callers keep) and the last branch before support ended.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Arch:
    name: str
    first_branch: int
    last_branch: int | None  # None: still supported
    open_modules: bool | None  # True: open works; False: proprietary only
    open_only: bool = False  # the proprietary flavour does not support it


KEPLER = Arch("Kepler", 304, 470, False)
MAXWELL = Arch("Maxwell", 340, 580, False)
PASCAL = Arch("Pascal", 367, 580, False)
VOLTA = Arch("Volta", 384, 580, False)
TURING = Arch("Turing", 410, None, True)
AMPERE = Arch("Ampere", 450, None, True)
HOPPER = Arch("Hopper", 520, None, True)
ADA = Arch("Ada Lovelace", 520, None, True)
BLACKWELL = Arch("Blackwell", 570, None, True, open_only=True)
# Grace Hopper superchips need the open modules too ("Grace Hopper or Blackwell platforms").
GRACE_HOPPER = Arch("Grace Hopper", 535, None, True, open_only=True)

# (first id, last id, architecture), by 16-bit device id.
_RANGES: list[tuple[int, int, Arch]] = [
    (0x0FC0, 0x12FF, KEPLER),
    (0x1340, 0x17FF, MAXWELL),  # GM107/GM108 (13xx), GM204/GM206/GM200 (13Cx, 14xx, 17xx)
    (0x15F0, 0x15FF, PASCAL),  # GP100 (inside the Maxwell block above: checked first below)
    (0x1B00, 0x1D7F, PASCAL),  # GP102, GP104, GP106, GP107, GP108
    (0x1D80, 0x1DFF, VOLTA),  # GV100
    (0x1E00, 0x1FFF, TURING),  # TU102, TU104, TU106, TU117
    (0x2080, 0x20FF, AMPERE),  # GA100
    (0x2180, 0x21FF, TURING),  # TU116
    (0x2200, 0x22FF, AMPERE),  # GA102
    (0x2300, 0x23FF, HOPPER),  # GH100, GH200
    (0x2400, 0x25FF, AMPERE),  # GA103, GA104, GA106, GA107
    (0x2680, 0x28FF, ADA),  # AD102, AD103, AD104, AD106, AD107
    (0x2900, 0x2FFF, BLACKWELL),  # GB100/GB200 (29xx), GB202 (2Bxx), GB203 (2Cxx), GB205/206/207, GB10
]


def arch_of(device_id: str | None) -> Arch | None:
    """``2e12`` / ``0x2e12`` / ``10de:2e12`` -> the architecture, or None when unknown."""
    if not device_id:
        return None
    text = device_id.strip().lower().split(":")[-1]
    text = text[2:] if text.startswith("0x") else text
    try:
        value = int(text, 16)
    except ValueError:
        return None
    if 0x15F0 <= value <= 0x15FF:
        return PASCAL
    if 0x2340 <= value <= 0x234F:  # GH200
        return GRACE_HOPPER
    for lo, hi, arch in _RANGES:
        if lo <= value <= hi:
            return arch
    return None


def branch_knows(arch: Arch, branch: int, margin: int = 0) -> bool:
    """True when ``branch`` has supported this architecture for at least ``margin`` branch
    numbers (a margin keeps a newer SKU of an older architecture from counting as known)."""
    if branch < arch.first_branch + margin:
        return False
    return arch.last_branch is None or branch <= arch.last_branch
