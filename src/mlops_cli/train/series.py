"""One series per rank (and input): what the step records say, in memory that does not grow.

A series keeps running totals, a short window of the latest records (the precursors of an
onset), a bounded sample of early values (the baseline), and a decimated curve of at most
``MAX_POINTS`` points for the JSON report. Nothing here grows with the length of the log.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from statistics import median
from typing import Optional

from mlops_cli.train.events import Record

WINDOW = 64  # records kept before an onset (precursor analysis)
BASELINE = 200  # first finite grad norms / losses kept as the run's baseline
MAX_POINTS = 256  # decimated curve


@dataclass(slots=True)
class Point:
    step: Optional[int]
    loss: Optional[float]
    lr: Optional[float]
    grad_norm: Optional[float]
    loss_scale: Optional[float]

    def to_json(self) -> list:
        return [self.step, _j(self.loss), _j(self.lr), _j(self.grad_norm), _j(self.loss_scale)]


def _j(x: Optional[float]):
    """JSON has no NaN/Inf: write them as strings."""
    if x is None or math.isfinite(x):
        return x
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


class Series:
    """The step records of one rank of one input."""

    def __init__(self, key: tuple[str, Optional[int]]) -> None:
        self.file, self.rank = key
        self.records = 0
        self.eval_records = 0
        self.first_step: Optional[int] = None
        self.last_step: Optional[int] = None
        self.window: deque[Record] = deque(maxlen=WINDOW)
        self.recent_losses: deque[float] = deque(maxlen=32)
        self.baseline_grad: list[float] = []
        self.baseline_loss: list[float] = []
        self.last_loss: Optional[float] = None
        self.min_loss: Optional[float] = None
        self.last_lr: Optional[float] = None
        self.max_lr: Optional[float] = None
        self.max_lr_step: Optional[int] = None
        self.max_lr_index = 0
        self.max_grad: Optional[float] = None
        self.last_scale: Optional[float] = None
        self.max_scale: Optional[float] = None
        self.skipped_total = 0
        self.nan_iterations = 0
        self.nonfinite_records = 0
        self.rl = False
        self.families: set[str] = set()
        self.restarts: list[int] = []  # steps at which the counter went back (a resume)
        self.nonzero_loss_seen = False
        self.zero_run: list[Record] = []
        self.grad_zero_run = 0
        self.grad_same_run = 0
        self._last_grad: Optional[float] = None
        self.points: list[Point] = []
        self._stride = 1
        self._since_point = 0
        self.loss_records = 0
        self._head_losses: list[float] = []
        self.tail_losses: deque[float] = deque(maxlen=64)
        self.loss_ema: Optional[float] = None

    def add(self, rec: Record) -> None:
        """Account for one train record (the doctor has already judged it)."""
        self.records += 1
        self.families.add(rec.family)
        if rec.rl:
            self.rl = True
        step = rec.step
        if step is not None:
            if self.first_step is None:
                self.first_step = step
            if self.last_step is not None and step < self.last_step - 1 and len(self.restarts) < 64:
                self.restarts.append(step)
            self.last_step = step
        loss, lr, grad = rec.loss, rec.lr, rec.grad_norm
        if loss is not None:
            self.last_loss = loss
            if math.isfinite(loss):
                self.loss_records += 1
                self.recent_losses.append(loss)
                self.loss_ema = loss if self.loss_ema is None else 0.9 * self.loss_ema + 0.1 * loss
                self.tail_losses.append(loss)
                if len(self._head_losses) < 64:
                    self._head_losses.append(loss)
                if len(self.baseline_loss) < BASELINE:
                    self.baseline_loss.append(loss)
                if self.min_loss is None or loss < self.min_loss:
                    self.min_loss = loss
                if loss != 0.0:
                    self.nonzero_loss_seen = True
        if lr is not None and math.isfinite(lr):
            if self.max_lr is None or lr > self.max_lr:
                self.max_lr, self.max_lr_step, self.max_lr_index = lr, step, self.records
            self.last_lr = lr
        if grad is not None:
            if math.isfinite(grad):
                if len(self.baseline_grad) < BASELINE:
                    self.baseline_grad.append(grad)
                if self.max_grad is None or grad > self.max_grad:
                    self.max_grad = grad
                self.grad_zero_run = self.grad_zero_run + 1 if grad == 0.0 else 0
                # bit-identical at full precision (1.7320508075688772), not a value rounded to 3 decimals
                precise = len(repr(grad).replace(".", "").lstrip("0-")) >= 6
                self.grad_same_run = (
                    self.grad_same_run + 1 if (grad == self._last_grad and grad != 0.0 and precise) else 0
                )
            self._last_grad = grad
        if rec.loss_scale is not None and math.isfinite(rec.loss_scale):
            self.last_scale = rec.loss_scale
            if self.max_scale is None or rec.loss_scale > self.max_scale:
                self.max_scale = rec.loss_scale
        if rec.skipped:
            self.skipped_total += rec.skipped
        if rec.nan_iters:
            self.nan_iterations += rec.nan_iters
        self.window.append(rec)
        self._sample(rec)

    def _sample(self, rec: Record, force: bool = False) -> None:
        self._since_point += 1
        if not force and self._since_point < self._stride:
            return
        self._since_point = 0
        self.points.append(Point(rec.step, rec.loss, rec.lr, rec.grad_norm, rec.loss_scale))
        if len(self.points) >= MAX_POINTS:
            self.points = self.points[::2]
            self._stride *= 2

    def keep_point(self, rec: Record) -> None:
        """Make sure a record (the onset) is in the curve."""
        if not self.points or self.points[-1].step != rec.step:
            self._sample(rec, force=True)

    # -- baselines -------------------------------------------------------------------------
    def grad_baseline(self) -> Optional[float]:
        return median(self.baseline_grad) if len(self.baseline_grad) >= 3 else None

    def loss_baseline(self) -> Optional[float]:
        vals = list(self.recent_losses)
        return median(vals) if len(vals) >= 3 else None

    @property
    def head_losses(self) -> list[float]:
        """The first (up to 64) finite losses."""
        return self._head_losses

    def head_loss(self) -> Optional[float]:
        return median(self._head_losses[: max(5, len(self._head_losses) // 2)]) if len(self._head_losses) >= 5 else None

    def summary(self) -> dict:
        return {
            "file": self.file,
            "rank": self.rank,
            "records": self.records,
            "eval_records": self.eval_records,
            "first_step": self.first_step,
            "last_step": self.last_step,
            "last_loss": _j(self.last_loss),
            "min_loss": _j(self.min_loss),
            "last_lr": _j(self.last_lr),
            "max_lr": _j(self.max_lr),
            "max_grad_norm": _j(self.max_grad),
            "last_loss_scale": _j(self.last_scale),
            "skipped_iterations": self.skipped_total,
            "nan_iterations": self.nan_iterations,
            "nonfinite_records": self.nonfinite_records,
            "restarts": self.restarts[:20],
            "points_columns": ["step", "loss", "lr", "grad_norm", "loss_scale"],
            "points": [p.to_json() for p in self.points],
        }
