"""Plain data the parser produces and the doctor consumes: no I/O, no behaviour."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional


@dataclass(slots=True)
class Where:
    """A place in the input: file, 1-based physical line, the line's text (cleaned later)."""

    file: str
    line: int
    text: bytes


@dataclass(slots=True)
class Record:
    """One step record of one rank, in any framework's spelling.

    ``loss`` is None when the line carries no loss; ``loss_missing`` is True when the format
    always prints it and this line does not (Megatron drops ``lm loss`` when it is NaN).
    """

    where: Where
    rank: Optional[int]
    step: Optional[int]
    loss: Optional[float] = None
    lr: Optional[float] = None
    grad_norm: Optional[float] = None
    loss_scale: Optional[float] = None
    skipped: Optional[int] = None  # skipped iterations (Megatron: in the interval; DeepSpeed: cumulative)
    nan_iters: Optional[int] = None
    epoch: Optional[float] = None
    phase: str = "train"  # "train" | "eval"
    family: str = "generic"  # the line shape: hf_dict, megatron, deepspeed, bar, generic, json
    loss_missing: bool = False
    rl: bool = False  # an RL objective (GRPO/PPO): loss 0.0, negative or rising is normal
    bar_loss: bool = False  # loss from a progress bar's running mean (Lightning), weaker evidence
    elapsed: Optional[str] = None


@dataclass(slots=True)
class Signal:
    """A line (or a few joined lines) that says something happened: an OOM, a timeout, ..."""

    kind: str
    where: Where
    rank: Optional[int]
    step: Optional[int]
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Context:
    """What the log says about the setup (from config dumps and arguments)."""

    model: Optional[str] = None
    model_where: Optional[Where] = None
    precision: Optional[str] = None  # "fp16" | "bf16" | "fp32"
    max_grad_norm: Optional[float] = None
    warmup: Optional[str] = None
    lr: Optional[float] = None
    batch_size: Optional[int] = None
    seq_len: Optional[int] = None
    method: Optional[str] = None  # "lora" | "qlora" | "full"
    zero_stage: Optional[int] = None
    epochs: Optional[int] = None  # HF's `***** Running training *****` block: Num Epochs
    total_steps: Optional[int] = None  # ... and Total optimization steps
    frameworks: dict[str, int] = field(default_factory=dict)

    def saw(self, framework: str) -> None:
        self.frameworks[framework] = self.frameworks.get(framework, 0) + 1
