"""What torch's caching allocator and the CUDA runtime add on top of the allocated peak (pure).

- Reserved but unallocated at the peak: tensors that live for the whole step (weights, adapters,
  optimizer states) are allocated once and packed tightly; the step's transient tensors
  (activations, logits, gradients, optimizer temporaries) are freed and re-requested in
  different sizes every step, and the allocator keeps the freed blocks cached. The caching
  allocator rounds large blocks to 2 MiB and gives requests under 10 MiB their own 20 MiB
  segments (c10/cuda/CUDACachingAllocator.cpp), so part of the transient memory is stranded at
  the peak. Measured (docs/benchmarks.md, "allocator reserve"): reserved − allocated is
  10-25 % of the allocated peak in the fms-acceleration A100 runs and the Answer.AI FSDP-QLoRA
  runs, and it grows with the transient share: full fine-tuning of Mistral-7B (transient 13.5 GiB
  of 67.5) strands ≈7.5 GiB, LoRA at micro-batch 4 (transient ≈11 GiB of 25) ≈3.4 GiB.
  Model: RESERVE_FIXED + RESERVE_OF_TRANSIENT × transient bytes of the peak phase, plus one
  gathered unit under FSDP (its all-gather buffers are freed and re-made for every layer).
- The device figure adds the CUDA context (≈0.3-0.5 GiB with lazy module loading, memory-anchors
  §1.8) and, with several GPUs, the NCCL communicator buffers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlops_cli.mem.spec import GiB, Setup

if TYPE_CHECKING:
    from mlops_cli.mem.phases import Phase

RESERVE_FIXED = 0.25 * GiB  # cuBLAS workspaces and 20 MiB small-block segments
RESERVE_OF_TRANSIENT = 0.30  # packed / fixed-length batches: fms-acceleration, FSDP-QLoRA runs (dev rows)
# Batches of varying length (no packing): every step asks for blocks of new sizes, so more of the
# freed blocks stay cached but unusable -- the case PyTorch's expandable_segments targets ("changing
# shapes such as dynamic batch sizes"). Fitted on the ms-swift 1.x rows of the shared public set
# (variable-length cls-fudan-news samples); the only unpacked measurements collected.
RESERVE_OF_TRANSIENT_UNPACKED = 0.55
NCCL_PER_RANK = int(0.6 * GiB)
PERSISTENT = (
    "weights",
    "adapters",
    "optimizer_states",
    "master",
    "reference_model",
    "reward_model",
    "value_model",
    "generation_engine",
    # ZeRO-3 generation gather (rl.ds3_generation_gather_bytes): the same parameter tensors are gathered in
    # the same sizes at every generation, so their freed blocks are reused as they are, not stranded
    "generation_gather",
)


def transient(phase: Phase) -> float:
    return sum(v for k, v in phase.parts.items() if k not in PERSISTENT)


def reserve(phases: list[Phase], peak: Phase, s: Setup) -> float:
    extra = peak.parts.get("gathered", 0.0) / max(1, s.fsdp_prefetch_units) if s.sharding == "fsdp" else 0.0
    frac = RESERVE_OF_TRANSIENT if s.packing else RESERVE_OF_TRANSIENT_UNPACKED
    return RESERVE_FIXED + frac * transient(peak) + extra


def nccl_bytes(s: Setup) -> int:
    return NCCL_PER_RANK if s.gpus > 1 else 0
