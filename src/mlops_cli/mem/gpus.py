"""Memory of common GPUs as NVML reports it (total, MiB), for `oom-check --gpu NAME`.

Values are what nvidia-smi/NVML print for the whole board, from real outputs:
H200/H100/A100/A10/L40S/L4/T4: Modal's table "Why does an NVIDIA H100 80GB card offer
85.52 GB?" (https://thundergolfer.com/blog/nvidia-gpu-memory-capacity);
A800-80GB: https://github.com/dexmal/dexbotic/issues/41; V100-32GB: NVIDIA's nvidia-smi
walkthrough (https://blog.cachecha.com/csdn/kunhe0512/126265050.html); RTX 4090:
https://github.com/RLinf/RLinf/issues/255; RTX 3090 and RTX 5090:
https://github.com/noonghunna/club-3090/issues/1129 and /1251.
"""

from __future__ import annotations

from typing import Optional

MiB = 1024**2

GPU_MEMORY_MIB = {
    "H200": 143771,
    "H100": 81559,
    "A100-80GB": 81920,
    "A800-80GB": 81920,
    "A100-40GB": 40960,
    "L40S": 46068,
    "A10": 23028,
    "L4": 23034,
    "T4": 15360,
    "V100-32GB": 32480,
    "RTX4090": 24564,
    "RTX3090": 24576,
    "RTX5090": 32607,
}


def _norm(name: str) -> str:
    return "".join(ch for ch in name.upper() if ch.isalnum())


def gpu_memory(name: str) -> Optional[int]:
    """Bytes for a GPU name like 'H100', 'a100-80gb', 'rtx 4090'; None when unknown."""
    wanted = _norm(name)
    aliases = {"A100": "A100-80GB", "A800": "A800-80GB", "V100": "V100-32GB"}
    for key, mib in GPU_MEMORY_MIB.items():
        if _norm(key) == wanted:
            return mib * MiB
    alias = aliases.get(wanted)
    return GPU_MEMORY_MIB[alias] * MiB if alias else None


def known_gpus() -> list[str]:
    return list(GPU_MEMORY_MIB)
