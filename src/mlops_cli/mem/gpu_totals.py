"""GPU memory as torch and vLLM see it: `cudaMemGetInfo` total, below NVML's board total (pure).

vLLM sizes the KV cache from `torch.cuda.mem_get_info()[1]` ("total_gpu_memory" in its logs), and
PyTorch's OOM message prints the same figure as "total capacity". Values are those printed:
H100 79.22 GiB and RTX 3090 23.58 GiB (vLLM logs, PR #10511 and issue #10517); A100-80GB 79.15,
A100-40GB 39.39, T4 14.75, V100-32GB 31.74, RTX A6000 47.54 (PyTorch "total capacity" lines);
RTX 4090 23.65 (memory-anchors §4). Others: the NVML total less 0.5 GiB (the driver's share on
the cards above is 0.4-0.9 GiB).
"""

from __future__ import annotations

from typing import Optional

from mlops_cli.mem.gpus import gpu_memory

GiB = 1024**3

TORCH_TOTAL_GIB = {
    "H100": 79.22,
    "A100-80GB": 79.15,
    "A800-80GB": 79.15,
    "A100-40GB": 39.39,
    "T4": 14.75,
    "V100-32GB": 31.74,
    "RTX3090": 23.58,
    "RTX4090": 23.65,
    "RTXA6000": 47.54,
}


def _norm(name: str) -> str:
    return "".join(ch for ch in name.upper() if ch.isalnum())


def torch_total(name: str) -> Optional[int]:
    wanted = _norm(name)
    aliases = {"A100": "A100-80GB", "A800": "A800-80GB", "V100": "V100-32GB", "A6000": "RTXA6000"}
    wanted = _norm(aliases.get(wanted, wanted))
    for key, gib in TORCH_TOTAL_GIB.items():
        if _norm(key) == wanted:
            return int(gib * GiB)
    board = gpu_memory(name)
    return None if board is None else int(board - 0.5 * GiB)
