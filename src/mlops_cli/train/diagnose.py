"""Events -> findings: the onset, the most likely cause, the evidence and the fix (pure).

``Doctor.feed(events)`` returns the findings that became certain with those events (``--follow``
prints them at once); ``Doctor.finish()`` settles the rest (causes that need what came after,
one-rank NaNs, spikes and plateaus) and returns every finding, root cause first.

The traps from the research are rules here:
- HF Trainer's ``logging_nan_inf_filter`` turns an all-NaN window into ``'loss': 0.0``: a 0.0 loss
  with a non-finite ``grad_norm`` is a NaN; a non-finite ``grad_norm`` with a finite loss that
  the next record does not confirm is a step the fp16 scaler skipped (a note, not an error);
- Megatron leaves ``lm loss`` out when its average is NaN (and when every iteration was skipped);
- DeepSpeed/Megatron/apex loss-scale overflows while the scale is still high are calibration;
  only a descent to the minimum scale (or the "already at minimum" exception) is a failure;
- the ``expandable_segments`` hint is printed on every CUDA OOM; only the numbers decide;
- GRPO/PPO losses of 0.0, negative or rising are normal (no spike/plateau/zero rules for RL).
"""

from __future__ import annotations

import math
import re
from collections import deque
from dataclasses import dataclass, field
from statistics import median
from typing import Any, Optional

from mlops_cli.train import fixes
from mlops_cli.train.events import Context, Record, Signal, Where
from mlops_cli.train.oom import OomNumbers
from mlops_cli.train.series import Series, _j
from mlops_cli.train.values import fmt, is_bad

ERROR, WARNING, INFO = "error", "warning", "info"
INF = math.inf
FRAMEWORKS = (
    "auto",
    "hf",
    "trl",
    "deepspeed",
    "lightning",
    "megatron",
    "llamafactory",
    "ms-swift",
    "axolotl",
    "torchtune",
    "generic",
)
# root cause first: a NaN or an OOM on one rank makes the others time out, not the other way round
PRIORITY = [
    "nan_on_one_rank",
    "nan_loss",
    "cuda_oom",
    "device_assert",
    "host_oom_dataloader",
    "cuda_error",
    "nccl_error",
    "nccl_timeout",
    "crash",
    "loss_spike",
    "loss_plateau",
    "grad_norm_frozen",
    "eval_nan",
]
MAX_EVIDENCE = 6
LR_FLOOR = 2e-6  # below this an lr is not "too high" for any optimizer people use

# class -> (why, fix) of the findings that are one line's word
# exit codes of a process killed by a signal the host sent: SIGKILL (-9; 137 from a shell or a container
# runtime) is the OOM killer, SIGBUS (-7; 135) a full /dev/shm
_KILLED_CODES = (-9, 137, -7, 135)
_SIMPLE_TEXT = {
    "device_assert": (
        [
            "a CUDA kernel checked an index and it was out of range: in training almost always a label >= num_classes "
            "(or < 0 other than the ignore index) or a token id >= vocab size"
        ],
        [
            "check the labels: every target must be in [0, num_classes-1] (or the ignore index, -100)",
            "for LLMs: token ids must be < vocab size; after adding tokens call model.resize_token_embeddings(len(tokenizer))",
            "re-run with CUDA_LAUNCH_BLOCKING=1 to get the failing line (CUDA errors are reported late)",
        ],
    ),
    "cuda_error": (
        ["CUDA errors are asynchronous: the Python line in the traceback is often not the one that failed"],
        [
            "re-run with CUDA_LAUNCH_BLOCKING=1 to find the kernel",
            "suspect custom CUDA extensions and a driver/toolkit mismatch (`mlops driver-check`), then out-of-range indices",
            "an uncorrectable ECC error or Xid in `dmesg` means the GPU: drain the node",
        ],
    ),
    "nccl_error": (
        [
            "NCCL reported an error of its own, not a timeout: ncclRemoteError / 'remote process exited or there was "
            "a network error' (another rank died first, or the network: InfiniBand, sockets), ncclUnhandledCudaError "
            "(a CUDA call inside NCCL failed), ncclSystemError / ncclInternalError (setup: shm, ports, versions)"
        ],
        [
            "for a remote error: find the rank that exited first (its own log) or the node whose network failed "
            "(`ibstat`, NCCL_IB_* / NCCL_SOCKET_IFNAME)",
            "re-run with NCCL_DEBUG=INFO to see which call and which GPU",
            "check the driver and the GPU (`mlops driver-check`, `dmesg` for Xid errors)",
            "in containers: --ipc=host (or a larger --shm-size) and matching NCCL/driver versions",
        ],
    ),
}

_TIME = re.compile(
    rb"(\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:[.,]\d{1,9})?)|(\d\d/\d\d/\d{4} \d\d:\d\d:\d\d)"
    rb"|(?<![\w])[EWIF](\d{4} \d\d:\d\d:\d\d(?:\.\d{1,9})?)|(?:^|[\s\[])(\d\d/\d\d \d\d:\d\d:\d\d)"
    rb"|^\[?(\d\d:\d\d:\d\d)"
)
_CTRL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]|\x1b\[[0-9;?]{0,40}[ -/]{0,4}[@-~]")


def time_of(text: bytes) -> Optional[str]:
    m = _TIME.search(text[:400])
    if not m:
        return None
    if m.group(3):  # glog: [E1206 18:44:12.715298746 -> 12-06 18:44:12.715
        mmdd, rest = m.group(3).decode("ascii").split(" ", 1)
        return f"{mmdd[:2]}-{mmdd[2:]} {rest[:12]}"
    return next(g for g in m.groups() if g is not None).decode("ascii", "replace")


def evidence(where: Where, note: Optional[str] = None) -> dict:
    text = where.text.decode("utf-8", "replace")
    text = _CTRL.sub("", text).strip()
    if len(text) > 400:
        text = text[:397] + "..."
    out = {"file": where.file, "line": where.line, "text": text}
    if note:
        out["note"] = note
    return out


@dataclass
class Finding:
    cls: str
    severity: str
    title: str
    file: str
    rank: Optional[int]
    step: Optional[int]
    line: Optional[int]
    time: Optional[str] = None
    elapsed: Optional[str] = None
    epoch: Optional[float] = None
    cause: Optional[str] = None
    because: list[str] = field(default_factory=list)
    evidence: list[dict] = field(default_factory=list)
    fix: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    id: str = ""

    def add_evidence(self, where: Optional[Where], note: Optional[str] = None) -> None:
        if where is None or len(self.evidence) >= MAX_EVIDENCE:
            return
        if any(e["line"] == where.line and e["file"] == where.file for e in self.evidence):
            return
        self.evidence.append(evidence(where, note))

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "class": self.cls,
            "severity": self.severity,
            "title": self.title,
            "cause": self.cause,
            "rank": self.rank,
            "file": self.file,
            "onset": {
                "step": self.step,
                "time": self.time,
                "elapsed": self.elapsed,
                "epoch": self.epoch,
                "line": self.line,
            },
            "because": self.because,
            "evidence": self.evidence,
            "fix": self.fix,
            "data": self.data,
        }


@dataclass
class Onset:
    rec: Optional[Record]
    where: Where
    step: Optional[int]
    reason: str
    index: int  # train records of this series before the onset
    window: list[Record]
    rank: Optional[int]
    file: str
    recovered: Optional[bool] = None  # a finite record came right after
    later_bad: int = 0
    finding: Optional[Finding] = None
    signal_kind: Optional[str] = None


class ScaleState:
    """Loss-scale history of one input: calibration at the start vs a descent to the floor."""

    def __init__(self) -> None:
        self.overflows = 0
        self.first: Optional[tuple[Optional[int], Where]] = None
        self.descent: Optional[tuple[Optional[int], Where]] = None
        self.prev_reduced: Optional[float] = None
        self.max_scale: Optional[float] = None
        self.floor: Optional[tuple[Optional[int], Where, str]] = None
        self.fp16 = False
        self.last_step: Optional[int] = None
        self.ds_prints: deque[tuple[int, int]] = deque(maxlen=4)
        self.floor_at = 1.0  # DeepSpeed/apex: a scale of 1 is the end; fairseq goes on down to 1e-4
        self.fairseq = False
        self.all_skipped_from: Optional[tuple[int, Where]] = None

    def overflow(self, step: Optional[int], where: Where, attempted: Optional[float], reduced: Optional[float]) -> bool:
        """Account for one overflow line; True when the scale reached the floor."""
        self.overflows += 1
        if self.first is None:
            self.first = (step, where)
        if attempted is not None:
            self.fp16 = True
            self.max_scale = attempted if self.max_scale is None else max(self.max_scale, attempted)
            if self.prev_reduced is None or attempted > self.prev_reduced or self.descent is None:
                self.descent = (step, where)  # the scale grew back in between: a new descent
        if reduced is not None:
            self.prev_reduced = reduced
        low = reduced if reduced is not None else attempted
        if low is not None and low / 2 < self.floor_at and self.floor is None:
            self.floor = (step, where, f"the loss scale fell to {fmt(low)}")
            return True
        return False

    def scale_value(self, step: Optional[int], where: Where, scale: float) -> bool:
        """A printed loss scale (Megatron, DLLogger, custom): a fall to <= 1 after > 1 is the floor."""
        if scale > 1.0:
            self.fp16 = True
            if self.max_scale is None or scale > self.max_scale:
                self.max_scale = scale
                self.descent = None
            elif self.descent is None and self.prev_reduced is not None and scale < self.prev_reduced:
                self.descent = (step, where)
        elif self.fp16 and self.floor is None and self.max_scale and self.max_scale > 1.0:
            if self.descent is None:
                self.descent = (step, where)
            self.floor = (step, where, f"the loss scale fell from {fmt(self.max_scale)} to {fmt(scale)}")
            self.prev_reduced = scale
            return True
        self.prev_reduced = scale
        return False

    def ds_step(self, step: int, skipped: int, where: Where) -> bool:
        """DeepSpeed `step=N, skipped=K` (cumulative): every step skipped, print after print."""
        self.ds_prints.append((step, skipped))
        if len(self.ds_prints) < 4 or step < 50:
            return False
        pairs = list(self.ds_prints)
        all_skipped = all(b[1] - a[1] >= (b[0] - a[0]) > 0 for a, b in zip(pairs, pairs[1:]))
        if all_skipped and self.floor is None:
            self.floor = (
                pairs[0][0],
                where,
                f"every step skipped from step {pairs[0][0]} to {step} (skipped={skipped})",
            )
            if self.descent is None:
                self.descent = (pairs[0][0], where)
            return True
        return False


class Doctor:
    """The streaming state machine; all rules are methods that read its plain state."""

    def __init__(self, framework: str = "auto", model: Optional[str] = None) -> None:
        self.framework = framework
        self.model = model
        self.series: dict[tuple[str, Optional[int]], Series] = {}
        self.onsets: dict[tuple[str, Optional[int]], Onset] = {}
        self.pending: dict[tuple[str, Optional[int]], tuple[Record, list[Record], int]] = {}
        self.skipped_grad: dict[tuple[str, Optional[int]], int] = {}
        self.scale: dict[str, ScaleState] = {}
        self.findings: list[Finding] = []
        self.notes: list[str] = []
        self.contexts: dict[str, Context] = {}
        self._by_class: dict[str, Finding] = {}
        self._new: list[Finding] = []
        self._eval_nan: dict[tuple[str, Optional[int]], tuple[Record, int]] = {}
        self._anomaly: Optional[Signal] = None
        self._anomaly_fwd: Optional[Signal] = None
        self._rank_nan: dict[Optional[int], Signal] = {}
        self._nccl_ranks: set = set()
        self._nccl_progress: list[Signal] = []
        self._host_kills: list[Signal] = []
        self._calibration_overflows = 0
        self._guard_skips = 0
        self._last_exception: Optional[Signal] = None
        self._last_traceback: Optional[Signal] = None
        self._tb_nonfinite: dict[str, Signal] = {}
        self._grad_skips: set[str] = set()
        self._summary: dict[str, Signal] = {}
        self._last_record_at: dict[str, int] = {}
        self._last_guard: tuple[str, int] = ("", 0)
        self._zero_loss_note = False
        self._rl_note = False
        self._grad_run: dict[tuple[str, Optional[int]], int] = {}
        self._nccl_warn: dict[str, Signal] = {}  # the latest `NCCL WARN` line per input

    # -- input ---------------------------------------------------------------------------
    def set_context(self, file: str, ctx: Context) -> None:
        self.contexts[file] = ctx

    def ctx(self, file: str) -> Context:
        return self.contexts.get(file) or Context()

    def feed(self, events: list) -> list[Finding]:
        for ev in events:
            if isinstance(ev, Record):
                self._record(ev)
            else:
                self._signal(ev)
        out, self._new = self._new, []
        return out

    # -- records -------------------------------------------------------------------------
    def _series(self, key: tuple[str, Optional[int]]) -> Series:
        s = self.series.get(key)
        if s is None:
            s = self.series[key] = Series(key)
        return s

    def _record(self, rec: Record) -> None:
        self._last_record_at[rec.where.file] = rec.where.line
        key = (rec.where.file, rec.rank)
        s = self._series(key)
        if rec.phase == "eval":
            s.eval_records += 1
            if is_bad(rec.loss) and key not in self._eval_nan:
                self._eval_nan[key] = (rec, s.records)
            return
        onset = self.onsets.get(key)
        loss, grad = rec.loss, rec.grad_norm
        if (
            onset is None
            and key not in self.pending
            and not s.zero_run
            and not rec.loss_missing
            and (loss is None or (loss == loss and loss not in (0.0, INF, -INF)))
            and (grad is None or (grad == grad and grad not in (INF, -INF)))
        ):
            pass  # the common case, a finite record with nothing pending: no rule can fire
        elif onset is None:
            self._judge(key, s, rec)
        else:
            bad = self._bad_reason(s, rec)
            if bad:
                onset.later_bad += 1
                s.nonfinite_records += 1
            elif onset.recovered is None and rec.loss is not None:
                onset.recovered = True
            if onset.recovered is None and bad:
                onset.recovered = False
        if onset is None and not rec.rl and not rec.bar_loss:
            self._spike(key, s, rec)
        s.add(rec)
        if rec.loss_scale is not None and math.isfinite(rec.loss_scale) and rec.family != "fairseq":
            st = self._scale(rec.where.file)
            if st.scale_value(rec.step, rec.where, rec.loss_scale):
                self._scale_floor(rec.where.file, rec.rank)

    def _bad_reason(self, s: Series, rec: Record) -> Optional[str]:
        if is_bad(rec.loss):
            return f"loss {fmt(rec.loss)}"
        if rec.loss_missing:
            return "the loss is missing from the line (Megatron leaves `lm loss` out when it is NaN)"
        if is_bad(rec.grad_norm) and rec.loss == 0.0:
            return (
                f"loss 0.0 with grad_norm {fmt(rec.grad_norm)}: HF's logging_nan_inf_filter hides a NaN loss "
                "(an all-NaN logging window prints 0.0)"
            )
        return None

    def _judge(self, key, s: Series, rec: Record) -> None:
        reason = self._bad_reason(s, rec)
        pend = self.pending.get(key)
        if reason is None and is_bad(rec.grad_norm):
            base = s.loss_baseline() or (s.last_loss if s.last_loss and math.isfinite(s.last_loss) else None)
            if rec.loss is None and rec.family == "megatron":
                reason = f"grad norm {fmt(rec.grad_norm)}"
            elif base and rec.loss is not None and base > 0 and rec.loss > 10 * base:
                reason = (
                    f"grad norm {fmt(rec.grad_norm)} and the loss jumped {rec.loss / base:.0f}x (to {fmt(rec.loss)})"
                )
            elif pend is None:
                self.pending[key] = (rec, list(s.window), s.records)
                self._grad_run[key] = 1
                return
            else:
                run = self._grad_run.get(key, 1) + 1
                self._grad_run[key] = run
                if run >= 3 and rec.loss is None and pend[0].loss is None and not self._fp16(key[0]):
                    # three non-finite grad norms in a row with no loss printed: the fp16 scaler skips a step
                    # and the next one is finite; outside fp16 nothing skips them, the weights are poisoned
                    first, window, idx = pend
                    del self.pending[key]
                    self._onset(
                        key,
                        s,
                        first,
                        f"grad norm {fmt(first.grad_norm)} on {run} records in a row "
                        "(no loss printed; outside fp16 no scaler skips them)",
                        index=idx,
                        window=window,
                    )
                    return
                self.pending[key] = (pend[0], pend[1], pend[2])
                self.skipped_grad[key] = self.skipped_grad.get(key, 0) + 1
                return
        if (
            reason is None
            and rec.loss == 0.0
            and not rec.rl
            and rec.family in ("hf_dict", "json")
            and rec.grad_norm is None
            and (s.zero_run or (s.nonzero_loss_seen and (s.last_loss or 0) > 0.05) or s.loss_records == 0)
        ):
            # no grad norm printed (transformers < 4.38, LLaMA-Factory's trainer_log.jsonl): 0.0 after real
            # losses, or 0.0 on every record from the first, is the filtered all-NaN window
            s.zero_run.append(rec)
            if len(s.zero_run) >= 3:
                first = s.zero_run[0]
                self._onset(
                    key,
                    s,
                    first,
                    "the loss dropped to exactly 0.0 and stayed there: HF's "
                    "logging_nan_inf_filter prints 0.0 for an all-NaN window",
                    index=s.records - 2,
                )
            return
        if s.zero_run and rec.loss != 0.0:
            s.zero_run = []
        if pend is not None:
            if reason is not None:
                first, window, idx = pend
                del self.pending[key]
                self._onset(
                    key,
                    s,
                    first,
                    f"grad norm {fmt(first.grad_norm)}, confirmed by the next record ({reason})",
                    index=idx,
                    window=window,
                )
                self.onsets[key].later_bad += 1
                return
            # the next record is finite: the non-finite norm was a skipped fp16 step
            del self.pending[key]
            self.skipped_grad[key] = self.skipped_grad.get(key, 0) + 1
        if reason is not None:
            self._onset(key, s, rec, reason)

    def _fp16(self, file: str) -> bool:
        """fp16 mixed precision: from the config, or a loss scaler seen in the log."""
        st = self.scale.get(file)
        return self.ctx(file).precision == "fp16" or (st is not None and st.fp16)

    def _onset(
        self,
        key,
        s: Series,
        rec: Record,
        reason: str,
        *,
        index: Optional[int] = None,
        window: Optional[list[Record]] = None,
    ) -> None:
        if key in self.onsets:
            return
        s.nonfinite_records += 1
        s.keep_point(rec)
        o = Onset(
            rec,
            rec.where,
            rec.step,
            reason,
            s.records if index is None else index,
            list(s.window) if window is None else window,
            rec.rank,
            rec.where.file,
        )
        self.onsets[key] = o
        o.finding = self._nan_finding(o)

    def _spike(self, key, s: Series, rec: Record) -> None:
        loss = rec.loss
        if loss is None or not math.isfinite(loss) or "spike" in s.__dict__ or not s.recent_losses:
            return
        if len(s.recent_losses) < 16:  # a short log: no spread to measure; only a jump no batch noise makes
            top = max(s.recent_losses)
            if top > 0.01 and loss >= 10 * top:
                s.__dict__["spike"] = (rec, median(s.recent_losses), rec)
            return
        if s.loss_ema is not None and loss < 1.5 * s.loss_ema:
            return  # the cheap test first: most records are nowhere near a spike
        vals = list(s.recent_losses)
        med = median(vals)
        if med <= 0.01 or loss < 2.0 * med:
            return
        mad = median(abs(v - med) for v in vals) * 1.4826
        if mad > 0 and loss - med < 6 * mad:
            return
        start = rec
        for r in reversed(s.window):  # the spike began where the loss first left its level
            if r.loss is None or not math.isfinite(r.loss) or r.loss < 1.5 * med:
                break
            start = r
        s.__dict__["spike"] = (start, med, rec)

    # -- signals -----------------------------------------------------------------------------
    def _scale(self, file: str) -> ScaleState:
        st = self.scale.get(file)
        if st is None:
            st = self.scale[file] = ScaleState()
        return st

    def _signal(self, sig: Signal) -> None:
        kind, d = sig.kind, sig.data
        file = sig.where.file
        if kind == "ds_step":
            st = self._scale(file)
            if d.get("skipped") is not None and st.ds_step(sig.step, d["skipped"], sig.where):
                self._scale_floor(file, sig.rank)
        elif kind == "overflow":
            st = self._scale(file)
            if d.get("style") == "fairseq" and not st.fairseq:
                st.fairseq, st.floor_at, st.fp16 = True, 1e-4, True
            if st.overflow(sig.step, sig.where, d.get("attempted"), d.get("reduced")):
                self._scale_floor(file, sig.rank)
            elif d.get("attempted") and d["attempted"] > 1:
                self._calibration_overflows += 1
        elif kind == "min_scale":
            st = self._scale(file)
            st.fp16 = True
            if st.floor is None:
                st.floor = (
                    sig.step,
                    sig.where,
                    "the loss scale is at its minimum and still overflows (DeepSpeed stops the run)",
                )
                if st.descent is None:
                    st.descent = (sig.step, sig.where)
                self._scale_floor(file, sig.rank, extra=sig.where)
            else:
                self._scale_floor(file, sig.rank, extra=sig.where)
        elif kind == "loss_scale":
            st = self._scale(file)
            if st.scale_value(sig.step, sig.where, d["scale"]):
                self._scale_floor(file, sig.rank)
        elif kind == "oom":
            self._oom(sig)
        elif kind in ("nccl_timeout", "nccl_progress"):
            self._nccl(sig)
        elif kind == "anomaly":
            if self._anomaly is None or self._anomaly.kind == "anomaly_forward":
                self._anomaly = sig
            self._signal_onset(sig, f"autograd anomaly mode: `{d['op']}` returned {d['value']} values")
        elif kind == "anomaly_forward":
            if self._anomaly_fwd is None:
                self._anomaly_fwd = sig
            if self._anomaly is None:
                self._anomaly = sig
                frame = f" (forward: {d['frame']})" if d.get("frame") else ""
                self._signal_onset(sig, f"autograd anomaly mode: an error (NaN) in the backward of `{d['op']}`{frame}")
        elif kind == "rank_nan":
            r = d.get("rank") if d.get("rank") is not None else sig.rank
            if d.get("iteration") is not None and d["iteration"] >= 0:
                sig.step = d["iteration"]  # the guard names its iteration (-1: before the first step)
            if r not in self._rank_nan:
                self._rank_nan[r] = sig
                sig.rank = r
                self._signal_onset(
                    sig,
                    f"rank {r}: NaN in its local grad norm, found before the all-reduce"
                    if r is not None
                    else "NaN in a local grad norm, found before the all-reduce",
                )
        elif kind == "grad_skip":
            self._grad_skips.add(file)  # the code skips a step whose grad norm is not finite
        elif kind == "train_summary":
            self._summary.setdefault(file, sig)
        elif kind == "tb_nonfinite":
            if sig.where.file not in self._tb_nonfinite:
                self._tb_nonfinite[sig.where.file] = sig  # judged at the end: did finite records follow it?
        elif kind == "nan_guard":
            if d.get("step") is not None:
                sig.step = d["step"]
            if b"skip" in sig.where.text.lower():  # the code dropped that batch and went on
                if self._last_guard != (file, sig.where.line):
                    self._guard_skips += 1
                    self._last_guard = (file, sig.where.line)
            else:
                self._signal_onset(sig, "the training code's own NaN check fired")
        elif (
            kind in ("dataloader_killed", "host_oom")
            or (kind == "exitcode" and d.get("exitcode") in _KILLED_CODES)
            or (kind == "signal" and d.get("signal") in (7, 9))
        ):
            self._host(sig)
        elif kind == "traceback":
            self._last_traceback = sig  # judged at the end: did its exception line (or a step record) follow?
        elif kind == "exception" or (kind == "exitcode" and d.get("exitcode") not in (None, 0)):
            self._last_exception = sig  # judged at the end: did the run go on after it?
        elif kind == "device_assert":
            self._simple(sig, "device_assert", "CUDA device-side assert (an index or label out of range)")
        elif kind == "cuda_error":
            f = self._simple(
                sig,
                "cuda_error",
                f"GPU error: Xid {d['xid'] if d.get('xid') else '?'}, {d['what']}"
                if d.get("what")
                else "CUDA error (illegal memory access or a failed kernel)",
            )
            if f is not None and d.get("what"):
                f.because = [
                    "the driver reported this in the kernel log (dmesg): a hardware or driver fault, not "
                    "the training code, unless it is Xid 13/31/43 right after your own CUDA error"
                ]
                f.fix = [
                    "drain the node and check the GPU (`mlops gpu`, `nvidia-smi -q -d ECC,ROW_REMAPPER`); "
                    "resume from the last checkpoint on a healthy node"
                ]
        elif kind == "nccl_warn":
            self._nccl_warn[file] = sig
        elif kind == "nccl_error":
            warn = self._nccl_warn.get(file)
            if warn is not None and 0 <= sig.where.line - warn.where.line <= 20 and "nccl_error" not in self._by_class:
                # NCCL's own `NCCL WARN ...` line just before the error says what failed: it is the onset
                f = self._simple(warn, "nccl_error", "NCCL error (not a timeout)")
                if f is not None:
                    f.add_evidence(sig.where)
            else:
                self._simple(sig, "nccl_error", "NCCL error (not a timeout)")

    def _signal_onset(self, sig: Signal, reason: str) -> None:
        key = (sig.where.file, sig.rank)
        if key in self.onsets:
            o = self.onsets[key]
            if o.finding:
                o.finding.add_evidence(sig.where)
            return
        for k, o in self.onsets.items():  # the same line already judged as a record
            if o.where.line == sig.where.line and o.file == sig.where.file:
                return
        s = self._series(key)
        rec = Record(sig.where, sig.rank, sig.step)
        o = Onset(
            rec, sig.where, sig.step, reason, s.records, list(s.window), sig.rank, sig.where.file, signal_kind=sig.kind
        )
        self.onsets[key] = o
        o.finding = self._nan_finding(o)

    def _scale_floor(self, file: str, rank: Optional[int], extra: Optional[Where] = None) -> None:
        st = self._scale(file)
        if st.floor is None:
            return
        step, where, what = st.floor
        # an onset already on this input: the floor is evidence (and will decide the cause)
        for key, o in self.onsets.items():
            if key[0] == file:
                if o.finding:
                    o.finding.add_evidence(where, what)
                    if extra is not None:
                        o.finding.add_evidence(extra)
                return
        key = (file, rank)
        s = self._series(key)
        dstep, dwhere = st.descent or (step, where)
        rec = Record(dwhere, rank, dstep)
        o = Onset(
            rec,
            dwhere,
            dstep,
            f"fp16 loss-scale overflows on consecutive steps down to the minimum: {what}",
            s.records,
            list(s.window),
            rank,
            file,
            signal_kind="scale",
        )
        self.onsets[key] = o
        o.finding = self._nan_finding(o)
        o.finding.add_evidence(where, what)
        if extra is not None:
            o.finding.add_evidence(extra)

    def _simple(self, sig: Signal, cls: str, title: str) -> Optional[Finding]:
        f = self._by_class.get(cls)
        if f is not None:
            f.data["count"] = f.data.get("count", 1) + 1
            if sig.rank is not None and sig.rank not in f.data.setdefault("ranks", []) and len(f.data["ranks"]) < 64:
                f.data["ranks"].append(sig.rank)
            return None
        f = Finding(cls, ERROR, title, sig.where.file, sig.rank, sig.step, sig.where.line, time=time_of(sig.where.text))
        f.data = {k: v for k, v in sig.data.items() if not isinstance(v, OomNumbers)}
        f.data["count"] = 1
        f.data["ranks"] = [sig.rank] if sig.rank is not None else []
        f.add_evidence(sig.where)
        because, fix = _SIMPLE_TEXT[cls]
        f.because, f.fix = list(because), list(fix)
        if sig.data.get("assert_line"):
            f.evidence.insert(0, {"file": sig.where.file, "line": None, "text": sig.data["assert_line"]})
        self._add(f)
        return f

    def _add(self, f: Finding) -> None:
        n = sum(1 for g in self.findings if g.cls == f.cls) + 1
        f.id = f"{f.cls}-{n}"
        self.findings.append(f)
        self._by_class.setdefault(f.cls, f)
        self._new.append(f)

    # -- OOM ------------------------------------------------------------------------------------
    def _oom(self, sig: Signal) -> None:
        f = self._by_class.get("cuda_oom")
        n: OomNumbers = sig.data["numbers"]
        if f is not None:
            f.data["count"] += 1
            if sig.rank is not None and sig.rank not in f.data["ranks"] and len(f.data["ranks"]) < 64:
                f.data["ranks"].append(sig.rank)
            if f.data["numbers"].get("requested") is None and n.requested is not None:
                self._oom_fill(f, sig)
            return
        f = Finding(
            "cuda_oom",
            ERROR,
            "CUDA out of memory",
            sig.where.file,
            sig.rank,
            sig.step,
            sig.where.line,
            time=time_of(sig.where.text),
        )
        f.data = {"count": 1, "ranks": [sig.rank] if sig.rank is not None else []}
        f.add_evidence(sig.where)
        self._oom_fill(f, sig)
        self._add(f)

    def _oom_fill(self, f: Finding, sig: Signal) -> None:
        n: OomNumbers = sig.data["numbers"]
        split = sig.data["split"]
        ctx = self.ctx(sig.where.file)
        f.data["numbers"] = n.to_json()
        f.data["split"] = split
        f.cause = split if split != "unknown" else None
        gib = lambda b: "n/a" if b is None else f"{b / 1024**3:.2f} GiB"  # noqa: E731
        f.because = []
        if n.requested is not None:
            f.because.append(
                f"asked for {gib(n.requested)}; GPU {n.gpu if n.gpu is not None else '?'} has "
                f"{gib(n.total)} in total, {gib(n.free)} free; PyTorch holds {gib(n.reserved)} "
                f"({gib(n.allocated)} allocated, {gib(n.reserved_unallocated)} reserved but unallocated)"
            )
        if split == "fragmentation":
            f.title = "CUDA out of memory: fragmentation"
            f.because.append(
                "the reserved-but-unallocated memory is larger than the request: the allocator had the "
                "bytes, not one block of that size"
            )
        elif split == "capacity":
            f.title = "CUDA out of memory: capacity"
            f.because.append(
                "the reserved-but-unallocated memory is smaller than the request: the setup needs more "
                "memory than the GPU has"
            )
        elif sig.data.get("runtime") in ("tensorflow", "xla"):
            rt = "TensorFlow" if sig.data["runtime"] == "tensorflow" else "JAX/XLA"
            f.title = f"GPU out of memory ({rt} allocator)"
            f.because.append(
                f"{rt}'s allocator could not get the memory it asked for; its message has no "
                "PyTorch allocator numbers, so capacity and fragmentation cannot be told apart"
            )
        else:
            f.because.append("the message carries no allocator numbers (a CUDA/cuBLAS allocation failed)")
        if n.allocated and n.total and n.allocated > n.total:
            f.because.append(
                "allocated is larger than the GPU: the driver spilled into shared host memory (Windows/WSL)"
            )
        if sig.data.get("runtime") in (None, "pytorch"):
            f.because.append(
                "the allocator hint about expandable_segments/max_split_size_mb is printed on every OOM "
                "and is not evidence either way"
            )
        fw = self.framework_name(sig.where.file)
        f.fix = fixes.oom_fixes(split, n, fw, ctx, sig.data.get("runtime"))
        model = self.model or ctx.model
        if sig.data.get("runtime") in ("tensorflow", "xla"):
            f.data["model"], f.data["oom_check"] = model, None  # oom-check models PyTorch training
            return
        cmd = fixes.oom_check_command(model, n, ctx)
        f.data["model"] = model
        f.data["oom_check"] = cmd
        if cmd:
            f.fix.append(f"see which change makes it fit: {cmd}")
        else:
            f.fix.append("pass --model MODEL (a Hub id or a config.json) to get the `mlops oom-check` command")
        if ctx.model_where is not None and model == ctx.model and not self.model:
            f.add_evidence(ctx.model_where, "the model, from the log")

    # -- NCCL -----------------------------------------------------------------------------------
    def _nccl(self, sig: Signal) -> None:
        d = sig.data
        f = self._by_class.get("nccl_timeout")
        if sig.kind == "nccl_progress":
            if f is not None and "last_completed" not in f.data:
                f.data["last_enqueued"], f.data["last_completed"] = d["last_enqueued"], d["last_completed"]
                f.add_evidence(sig.where)
            return
        rank = d.get("rank") if d.get("rank") is not None else sig.rank
        if rank is not None:
            self._nccl_ranks.add(rank)
        if f is not None:
            f.data["count"] += 1
            f.data["ranks"] = sorted(self._nccl_ranks)[:64]
            if f.rank is None and rank is not None:  # the first line's prefix was cut or absent
                f.rank = rank
            for k in ("op", "seq", "timeout_ms", "ran_ms", "numel"):
                if f.data.get(k) is None and d.get(k) is not None:
                    f.data[k] = d[k]
                    if k == "op":
                        f.add_evidence(sig.where)
            self._nccl_text(f)
            return
        f = Finding(
            "nccl_timeout",
            ERROR,
            "NCCL collective timed out",
            sig.where.file,
            rank,
            sig.step,
            sig.where.line,
            time=time_of(sig.where.text),
        )
        f.data = {
            "count": 1,
            "ranks": sorted(self._nccl_ranks),
            "op": d.get("op"),
            "seq": d.get("seq"),
            "timeout_ms": d.get("timeout_ms"),
            "ran_ms": d.get("ran_ms"),
            "numel": d.get("numel"),
        }
        f.add_evidence(sig.where)
        self._nccl_text(f)
        self._add(f)

    def _nccl_text(self, f: Finding) -> None:
        d = f.data
        op = d.get("op") or "a collective"
        dur = f"{d['ran_ms'] / 1000:.0f} s" if d.get("ran_ms") else "longer than the timeout"
        tmo = f" (timeout {d['timeout_ms'] / 1000:.0f} s)" if d.get("timeout_ms") else ""
        ranks = ", ".join(str(r) for r in d.get("ranks") or []) or "?"
        f.title = f"NCCL {op} timed out after {dur}{tmo}"
        f.because = [
            f"rank(s) {ranks} waited in {op}"
            + (f" (SeqNum {d['seq']})" if d.get("seq") is not None else "")
            + ": the rank(s) missing from that list did not join; they are the ones to look at"
        ]
        if d.get("ran_ms") and d.get("timeout_ms") and d["ran_ms"] > 3 * d["timeout_ms"]:
            f.because.append("it ran far past its timeout: the watchdog itself was stalled (a hung host or GPU)")
        if (d.get("seq") is not None and d["seq"] < 10) or (d.get("numel") == 1 and not f.step):
            f.because.append("a tiny/early collective: the ranks never got in step (setup, rendezvous, network)")
        f.fix = [
            "look at the last lines of the ranks that are not in the list: an exception, an OOM, a NaN "
            "check that raised on one rank only, or work only rank 0 does (evaluation, checkpoint save)",
            "re-run with NCCL_DEBUG=INFO TORCH_NCCL_ASYNC_ERROR_HANDLING=1 (and TORCH_NCCL_DUMP_ON_TIMEOUT=1) "
            "to see the stuck collective",
            "raise the timeout only for slow rank-0 work (ddp_timeout / init_process_group(timeout=...)); "
            "a hung rank is not fixed by waiting longer",
        ]

    # -- host memory ---------------------------------------------------------------------------
    def _host(self, sig: Signal) -> None:
        self._host_kills.append(sig) if len(self._host_kills) < 16 else None
        f = self._by_class.get("host_oom_dataloader")
        if f is not None:
            f.data["count"] += 1
            if sig.kind == "dataloader_killed" and "signal" not in f.data:
                f.data["signal"] = sig.data.get("signal")
                f.add_evidence(sig.where)
                self._host_text(f)
            return
        f = Finding(
            "host_oom_dataloader",
            ERROR,
            "a process was killed: host memory",
            sig.where.file,
            sig.rank,
            sig.step,
            sig.where.line,
            time=time_of(sig.where.text),
        )
        f.data = {"count": 1, "kind": sig.kind}
        if sig.kind == "dataloader_killed":
            f.data["signal"] = sig.data.get("signal")
        elif sig.data.get("exitcode") in (-7, 135) or (sig.kind == "signal" and sig.data.get("signal") == 7):
            f.data["signal"] = "bus error (SIGBUS)"  # a rank (not a worker) died of SIGBUS: /dev/shm again
        for k in ("local_rank", "pid", "how"):
            if sig.data.get(k) is not None:
                f.data[k] = sig.data[k]
        f.add_evidence(sig.where)
        self._host_text(f)
        self._add(f)

    def _host_text(self, f: Finding) -> None:
        sig = (f.data.get("signal") or "").lower()
        if "bus" in sig or "shm" in sig:
            f.title = (
                "a training process died of a bus error (SIGBUS): shared memory (/dev/shm) is too small"
                if f.data.get("kind") != "dataloader_killed"
                else "DataLoader worker died of a bus error: shared memory (/dev/shm) is too small"
            )
            f.cause = "shared_memory"
            f.because = [
                "DataLoader workers hand batches over in /dev/shm; a bus error there means it is full "
                "(Docker's default is 64 MiB)"
            ]
            f.fix = [
                "run the container with --ipc=host or --shm-size=16g (Kubernetes: an emptyDir with "
                "medium: Memory mounted at /dev/shm)",
                "or fewer DataLoader workers / a smaller prefetch_factor",
            ]
        elif "cut off" in sig:  # `is killed by` with the signal's name cut off: killed, but by what is unknown
            f.title = "a DataLoader worker was killed; the log is cut before the signal's name"
            f.cause = None
            f.because = [
                "'is killed by signal: Killed' (SIGKILL) would be host RAM, 'Segmentation fault' or "
                "'Aborted' a crash inside the worker: the name is not in the log"
            ]
            f.fix = [
                "collect the full error line (and `dmesg -T | grep -i -E 'killed process|out of memory'`)",
                "set num_workers=0 once: the main process then shows the real error",
            ]
        elif any(w in sig for w in ("segmentation", "abort", "illegal", "floating point")):
            # SIGSEGV, SIGABRT (`Attempt to free invalid pointer`, a failed C assert), SIGILL, SIGFPE: the
            # worker crashed in native code; the OOM killer sends SIGKILL, not these
            f.title = f"DataLoader worker crashed ({sig.strip() or 'fatal signal'})"
            f.cause = "worker_crash"
            f.because = [
                "a worker process crashed in native code (a decoder, a C extension, a corrupted heap): "
                f"{sig.strip()} is a crash, not the OOM killer (that is SIGKILL, 'Killed')"
            ]
            f.fix = [
                "set num_workers=0 once to see the real error in the main process",
                "update or pin the library that decodes the data (images, audio, video)",
            ]
        else:
            f.title = (
                "DataLoader worker killed: host RAM (the OOM killer)"
                if f.data.get("signal")
                else "host RAM ran out: an allocation failed"
                if "allocation failed" in (f.data.get("how") or "")
                else "a training process was killed (SIGKILL): host RAM, the OOM killer"
            )
            f.cause = "host_ram"
            f.because = [
                "SIGKILL (-9, 'Killed') with no Python error is almost always the kernel OOM killer: "
                "host RAM (or the cgroup/SLURM memory limit) ran out, not GPU memory",
                "check `dmesg -T | grep -i -E 'killed process|out of memory'` on the node",
            ]
            f.fix = [
                "fewer DataLoader workers and a smaller prefetch_factor; memory-map or stream the dataset "
                "instead of loading it into every worker",
                "load checkpoints with low_cpu_mem_usage / mmap (resuming ZeRO states needs more host RAM "
                "than training)",
                "raise the memory limit (container, cgroup, SLURM --mem) or use a node with more RAM",
            ]

    # -- NaN findings -------------------------------------------------------------------------
    def framework_name(self, file: str) -> str:
        if self.framework != "auto":
            return self.framework
        fw = self.ctx(file).frameworks
        for name in (
            "megatron",
            "fairseq",
            "ms-swift",
            "llamafactory",
            "axolotl",
            "torchtune",
            "verl",
            "nemo",
            "trl",
            "lightning",
        ):
            if fw.get(name):
                return name
        if fw.get("hf_dict") or fw.get("json"):
            return "hf"
        if fw.get("deepspeed"):
            return "deepspeed"
        return "generic"

    def _nan_finding(self, o: Onset) -> Finding:
        rec = o.rec
        f = Finding(
            "nan_loss",
            ERROR,
            "loss became NaN",
            o.file,
            o.rank,
            o.step,
            o.where.line,
            time=time_of(o.where.text),
            elapsed=rec.elapsed if rec else None,
            epoch=rec.epoch if rec else None,
        )
        if f.time is None:
            for r in reversed(o.window):
                t = time_of(r.where.text)
                if t:
                    f.time = t
                    f.data["time_from"] = "the last record before the onset"
                    break
        f.add_evidence(o.where, "onset")
        self._settle(o, f)
        self._add(f)
        return f

    def _settle(self, o: Onset, f: Finding) -> None:
        """(Re)compute the class, cause, reasons and fix of a NaN finding from what is known now."""
        ctx = self.ctx(o.file)
        st = self.scale.get(o.file)
        window = [r for r in o.window if r.phase == "train"]
        facts = self._facts(o, window, st)
        cause, because = nan_cause(facts)
        f.cause = cause
        f.because = [o.reason] + because
        rank_note = ""
        if facts["one_rank"] is not None:
            f.cls = "nan_on_one_rank"
            rank_note = f" on rank {facts['one_rank']} only"
            f.rank = facts["one_rank"]
            f.because.append(
                f"only rank {facts['one_rank']} went non-finite"
                + (f"; ranks {facts['finite_ranks']} were finite at that step" if facts["finite_ranks"] else "")
                + ": that rank's batch (or GPU), not the whole model"
            )
        f.title = {
            "numerical_op": "NaN from a numerical op",
            "fp16_overflow_loss_scale": "fp16 overflow: the loss scale collapsed",
            "lr_too_high": "loss diverged to NaN: learning rate too high",
            "grad_explosion": "gradient explosion, then NaN",
            "bad_data": "NaN from the data",
        }.get(cause, "loss became NaN") + rank_note
        fw = self.framework_name(o.file)
        f.fix = fixes.nan_fixes(
            cause, fw, ctx, lr=facts["lr"], step=o.step, op=facts["op"], max_grad=facts["pre_grad_max"]
        )
        if facts["one_rank"] is not None:
            f.fix.insert(
                0,
                f"rank {facts['one_rank']}'s batch at step {o.step}: log its sample ids; also check "
                "that GPU (`mlops gpu`, dmesg Xid)",
            )
        f.data.update(
            {
                k: _j(v) if isinstance(v, float) else v
                for k, v in facts.items()
                if k
                in (
                    "lr",
                    "max_lr",
                    "pre_grad_max",
                    "grad_baseline",
                    "loss_baseline",
                    "pre_loss_max",
                    "records_before",
                    "op",
                    "recovered",
                    "precision",
                )
            }
        )
        for r, note in facts["evidence"]:
            f.add_evidence(r.where, note)
        if facts["op"] and self._anomaly is not None:
            f.add_evidence(self._anomaly.where)
            if self._anomaly_fwd is not None:
                f.add_evidence(self._anomaly_fwd.where)

    def _facts(self, o: Onset, window: list[Record], st: Optional[ScaleState]) -> dict:
        ctx = self.ctx(o.file)
        s = self.series.get((o.file, o.rank))
        rec = o.rec
        lr = rec.lr if rec is not None and rec.lr is not None else (window[-1].lr if window else None)
        if lr is None:
            lr = next((r.lr for r in reversed(window) if r.lr is not None), None)
        grads = [r.grad_norm for r in window if r.grad_norm is not None and math.isfinite(r.grad_norm)]
        losses = [r.loss for r in window if r.loss is not None and math.isfinite(r.loss)]
        grad_base = s.grad_baseline() if s else None
        if grad_base is None and len(grads) >= 3:
            grad_base = median(grads[: max(3, len(grads) // 2)])
        pre = window[-8:]
        pre_grads = [r.grad_norm for r in pre if r.grad_norm is not None and math.isfinite(r.grad_norm)]
        pre_losses = [r.loss for r in pre if r.loss is not None and math.isfinite(r.loss)]
        loss_base = median(losses[: max(3, len(losses) // 2)]) if len(losses) >= 3 else (s.head_loss() if s else None)
        evid: list[tuple[Record, str]] = []
        facts: dict[str, Any] = {
            "lr": lr,
            "max_lr": s.max_lr if s else None,
            "records_before": o.index,
            "step": o.step,
            "pre_grad_max": max(pre_grads) if pre_grads else None,
            "grad_baseline": grad_base,
            "pre_loss_max": max(pre_losses) if pre_losses else None,
            "loss_baseline": loss_base,
            "op": self._anomaly.data["op"] if self._anomaly is not None else None,
            "recovered": o.recovered,
            "precision": ctx.precision or ("fp16" if st and st.fp16 else None),
            "evidence": evid,
            "one_rank": None,
            "finite_ranks": [],
        }
        # lr: still warming up, just past its peak, or a jump
        lrs = [r.lr for r in window if r.lr is not None and math.isfinite(r.lr)]
        if lr is not None and rec is not None and rec.lr is not None and (not lrs or lrs[-1] != rec.lr):
            lrs.append(rec.lr)
        tail = lrs[-4:]
        facts["lr_rising"] = (
            len(tail) >= 3
            and all(b >= a for a, b in zip(tail, tail[1:]))
            and tail[-1] > tail[0]
            and lrs[-1] >= 1.05 * min(lrs)
            and (facts["max_lr"] is None or lr >= 0.5 * facts["max_lr"])
        )
        facts["lr_jump"] = None
        if lr is not None and len(lrs) >= 3:
            prev = median(lrs[:-1][-8:])
            if prev > 0 and lr > 3 * prev:
                facts["lr_jump"] = lr / prev
        facts["after_peak"] = False
        if s is not None and s.max_lr_index >= 3 and lr is not None and s.max_lr and lr >= 0.8 * s.max_lr:
            since = o.index - s.max_lr_index
            facts["after_peak"] = 0 <= since <= max(5, s.max_lr_index // 2)
        facts["warmup_records"] = s.max_lr_index if s else None
        # the largest precursor, as evidence
        if pre_grads and grad_base and max(pre_grads) >= 10 * grad_base:
            r = max(
                (r for r in pre if r.grad_norm is not None and math.isfinite(r.grad_norm)), key=lambda r: r.grad_norm
            )
            evid.append(
                (r, f"grad norm {fmt(r.grad_norm)}, {r.grad_norm / grad_base:.0f}x the run's median {fmt(grad_base)}")
            )
        if pre_losses and loss_base and loss_base > 0 and max(pre_losses) >= 5 * loss_base:
            r = max((r for r in pre if r.loss is not None and math.isfinite(r.loss)), key=lambda r: r.loss)
            evid.append((r, f"loss {fmt(r.loss)}, {r.loss / loss_base:.0f}x the earlier {fmt(loss_base)}"))
        # fp16 scale at the floor before (or at) the onset
        facts["scale_floor"] = None
        if st is not None and st.floor is not None:
            fstep, fwhere, what = st.floor
            if fwhere.line <= o.where.line + 50 or (fstep is not None and o.step is not None and fstep <= o.step + 10):
                facts["scale_floor"] = what
        facts["calibration_only"] = bool(st and st.overflows and st.floor is None)
        # same step after a restart / eval only
        facts["same_step_again"] = False
        if s is not None and s.restarts and o.step is not None:
            facts["same_step_again"] = o.later_bad > 0 and any(abs(r - o.step) < 1 for r in s.restarts)
        # one rank
        if o.signal_kind == "rank_nan" and len(self._rank_nan) == 1 and o.rank is not None:
            facts["one_rank"] = o.rank
        elif o.rank is not None:
            ranks = {k[1] for k in self.series if k[0] == o.file and k[1] is not None and self.series[k].records}
            bad = {k[1] for k in self.onsets if k[0] == o.file and k[1] is not None}
            if len(ranks) >= 2 and bad == {o.rank}:
                finite = []
                for r in sorted(ranks - bad):
                    other = self.series[(o.file, r)]
                    if other.last_step is not None and o.step is not None and other.last_step >= o.step:
                        finite.append(r)
                if finite:
                    facts["one_rank"] = o.rank
                    facts["finite_ranks"] = finite[:16]
        return facts

    # -- the end ---------------------------------------------------------------------------------
    def finish(self) -> list[Finding]:
        """Settle causes with everything seen, add what needs the whole log, sort root cause first."""
        for key, (first, window, idx) in list(self.pending.items()):
            if self._fp16(key[0]) or key in self.onsets or key[0] in self._grad_skips:
                self.skipped_grad[key] = self.skipped_grad.get(key, 0) + 1
            else:  # outside fp16 a non-finite grad norm poisons the weights; the log just ends there
                self._onset(
                    key,
                    self._series(key),
                    first,
                    f"grad norm {fmt(first.grad_norm)} on the last record "
                    "(no loss scaler skips steps outside fp16; the log ends here)",
                    index=idx,
                    window=window,
                )
        self.pending.clear()
        for key, (rec, idx) in self._eval_nan.items():
            s = self.series.get(key)
            if s is not None and s.zero_run and key not in self.onsets:
                first = s.zero_run[0]
                self._onset(
                    key,
                    s,
                    first,
                    "loss 0.0 after non-zero losses, and the eval loss is NaN: HF's "
                    "logging_nan_inf_filter prints 0.0 for an all-NaN window",
                    index=s.records - len(s.zero_run),
                )
                continue
            if not any(k[0] == key[0] for k in self.onsets):
                self._eval_nan_warning(key, rec)
            else:
                for k, o in self.onsets.items():
                    if k[0] == key[0] and o.finding:
                        o.finding.add_evidence(rec.where, "eval loss is NaN too")
                        break
        for file, sig in self._summary.items():
            self._summary_onset(file, sig)
        for file, sig in self._tb_nonfinite.items():
            if not any(k[0] == file for k in self.onsets) and self._last_record_at.get(file, 0) < sig.where.line:
                self._signal_onset(
                    sig,
                    "tensorboardX: `NaN or Inf found in input tensor` (a logged value went "
                    "non-finite) and no finite step record follows it",
                )
        for o in self.onsets.values():
            if o.finding is not None:
                self._settle(o, o.finding)
        self._crash()
        self._warnings()
        self._notes()
        self.findings.sort(
            key=lambda f: (f.severity != ERROR, PRIORITY.index(f.cls) if f.cls in PRIORITY else 99, f.line or 0)
        )
        # one-rank NaN and NCCL: the timeout is the consequence
        nan_one = next((f for f in self.findings if f.cls == "nan_on_one_rank"), None)
        nccl = self._by_class.get("nccl_timeout")
        if nan_one is not None and nccl is not None:
            nccl.because.insert(
                0,
                f"it follows a NaN on rank {nan_one.rank}: the other ranks waited for a rank that "
                "stopped; a NaN incident, not a network one",
            )
            nan_one.add_evidence(
                Where(nccl.file, nccl.line or 0, nccl.evidence[0]["text"].encode()) if nccl.evidence else None,
                "the other ranks then timed out",
            )
        return self.findings

    def _summary_onset(self, file: str, sig: Signal) -> None:
        """HF's end-of-training `train_loss`: NaN, or exactly 0.0 for a whole (non-RL) run whose logged
        losses never showed a real value, is every step's NaN hidden by logging_nan_inf_filter."""
        if any(k[0] == file for k in self.onsets):
            return
        v = sig.data.get("train_loss")
        series = [s for k, s in self.series.items() if k[0] == file]
        if any(s.rl for s in series):
            return
        if is_bad(v):
            self._signal_onset(sig, f"the run's average train_loss is {fmt(v)}")
        elif v == 0.0 and not any(s.nonzero_loss_seen for s in series):
            self._signal_onset(
                sig,
                "the run's average train_loss is exactly 0.0: HF's logging_nan_inf_filter "
                "replaces NaN losses, so a run whose every step was NaN averages to 0.0",
            )

    def _crash(self) -> None:
        """A run that ended on an exception none of the classes explain is not healthy."""
        sig = self._last_exception
        tb = self._last_traceback
        if tb is not None and (sig is None or (sig.where.file == tb.where.file and sig.where.line < tb.where.line)):
            self._cut_traceback(tb)
            return
        if sig is None or any(f.severity == ERROR for f in self.findings):
            return
        if self._last_record_at.get(sig.where.file, 0) > sig.where.line:
            return  # training went on after it: handled
        d = sig.data
        what = f"{d['type']}: {d['message']}" if d.get("type") else f"a process exited with code {d.get('exitcode')}"
        f = Finding(
            "crash",
            ERROR,
            f"the run stopped: {what[:160]}",
            sig.where.file,
            sig.rank,
            sig.step,
            sig.where.line,
            time=time_of(sig.where.text),
        )
        f.because = [
            "the log ends on this exception and no step record follows it; it is none of the failures "
            "train-doctor knows (NaN, OOM, NCCL, assert, killed process)"
        ]
        f.fix = [
            "read the traceback above this line: the last frame in your code is where it broke",
            "with torchrun, the first rank that failed is in the 'Root Cause' block; its own log has the real error",
        ]
        f.data = {k: v for k, v in d.items()}
        f.add_evidence(sig.where)
        self._add(f)

    def _cut_traceback(self, sig: Signal) -> None:
        """The log ends inside a traceback whose exception line never came (the paste or the log was cut):
        the run stopped on an exception, and which one the log does not say."""
        if (
            any(f.severity == ERROR for f in self.findings)
            or self._last_record_at.get(sig.where.file, 0) > sig.where.line
        ):
            return
        kind = sig.data.get("type")
        f = Finding(
            "crash",
            ERROR,
            f"the run stopped on {kind or 'an exception'}; the log is cut before the error line",
            sig.where.file,
            sig.rank,
            sig.step,
            sig.where.line,
            time=time_of(sig.where.text),
        )
        f.because = [
            "the log ends inside a Python traceback and no step record follows it; the traceback's last "
            "line, which names the error, is not in the log (the paste or the log file was cut)",
            "which failure this is (OOM, NCCL, CUDA error, a bug) cannot be told from the frames alone",
        ]
        f.fix = [
            "collect the end of the log: the line after the last frame names the error; run train-doctor on it",
            "with torchrun, the failing rank's own log (or its 'Root Cause' block) has the full traceback",
        ]
        f.data = {"type": kind, "message": None, "cut": True}
        f.add_evidence(sig.where)
        self._add(f)

    def _eval_nan_warning(self, key, rec: Record) -> None:
        """An eval loss that is NaN while no training record went non-finite: the evaluation is broken,
        the run is not (a warning; the training loss says whether the model is)."""
        s = self.series.get(key)
        train = s.loss_records if s is not None else 0
        f = Finding(
            "eval_nan",
            WARNING,
            f"eval loss {fmt(rec.loss)} while the training loss stays finite",
            key[0],
            key[1],
            rec.step,
            rec.where.line,
            time=time_of(rec.where.text),
            epoch=rec.epoch,
        )
        f.because = [
            f"no training record went non-finite ({train} finite training loss record(s) in the log): "
            "the model is not NaN, the evaluation is",
            "usually an eval batch whose labels are all masked (-100): the mean over zero tokens is 0/0; "
            "or empty / too-long eval samples cut to nothing, or evaluation in fp16",
        ]
        f.fix = [
            "check the eval set: samples whose answer is cut off by the max length, empty targets, a template "
            "that masks everything",
            "evaluate in bf16/fp32 and drop eval samples with no label tokens",
        ]
        f.add_evidence(rec.where, "eval loss")
        self._add(f)

    def _warnings(self) -> None:
        for key, s in self.series.items():
            if key in self.onsets or s.rl:
                continue
            spike = s.__dict__.get("spike")
            if spike is not None:
                rec, med, peak = spike
                f = Finding(
                    "loss_spike",
                    WARNING,
                    f"loss spiked to {fmt(peak.loss)} ({peak.loss / med:.1f}x the recent median {fmt(med)})",
                    key[0],
                    key[1],
                    rec.step,
                    rec.where.line,
                    time=time_of(rec.where.text),
                    elapsed=rec.elapsed,
                    epoch=rec.epoch,
                )
                f.because = [
                    "no NaN followed; if the loss came back down this was one hard batch, if it stayed "
                    "up the run diverged"
                ]
                f.data = {"loss": peak.loss, "median_before": med, "last_loss": _j(s.last_loss)}
                f.add_evidence(rec.where, "spike starts")
                f.add_evidence(peak.where, "peak")
                fw = self.framework_name(key[0])
                f.fix = [
                    f"look at the batch at step {rec.step}; if spikes repeat, clip gradients "
                    f"({fixes.flags(fw)[0]}) and lower the lr",
                    "to recover: restart from a checkpoint some 10-100 steps before the spike and skip that data",
                ]
                self._add(f)
            elif self._diverged(key, s):
                continue
            self._plateau(key, s)

    def _diverged(self, key, s: Series) -> bool:
        """No NaN, but the loss climbed back from its lowest point to 3x that and stayed there to the end
        of the log: the run diverged without a NaN (a loss_spike warning that did not come back down)."""
        tail = list(s.tail_losses)
        low = s.min_loss
        if (
            len(tail) < 5
            or low is None
            or low <= 0.01
            or s.restarts
            or (s.loss_records > len(tail) and min(tail) > low)
        ):
            return False  # (a step counter that went back is a new run in the same log: its loss starts high again)
        at = max(i for i, v in enumerate(tail) if v == low)
        after = tail[at + 1 :]
        if len(after) < 3 or min(after[-3:]) < 2 * low or tail[-1] < 3 * low:
            return False
        rec = next((r for r in s.window if r.loss == low), None)
        last = s.window[-1] if s.window else None
        f = Finding(
            "loss_spike",
            WARNING,
            f"loss diverged without a NaN: from {fmt(low)} back up to {fmt(tail[-1])}",
            key[0],
            key[1],
            rec.step if rec else None,
            rec.where.line if rec else None,
            time=time_of(rec.where.text) if rec else None,
        )
        f.because = [
            f"the loss went down to {fmt(low)}, then rose to {tail[-1] / low:.1f}x that and stayed up for "
            f"{len(after)} record(s) to the end of the log: not one hard batch, the run diverged"
        ]
        fw = self.framework_name(key[0])
        f.fix = [
            f"restart from the checkpoint at the lowest loss with a lower lr, or a shorter peak "
            f"(and clip gradients: {fixes.flags(fw)[0]})",
            "if the grad norm rose with it, the lr is too high for this data; check the batches where it turned",
        ]
        f.data = {"min_loss": low, "last_loss": tail[-1]}
        f.add_evidence(rec.where if rec else None, "lowest loss")
        f.add_evidence(last.where if last else None, "last record")
        self._add(f)
        return True

    def _plateau(self, key, s: Series) -> None:
        if s.grad_same_run >= 5 and s.max_grad:
            f = Finding(
                "grad_norm_frozen",
                WARNING,
                f"grad norm identical on {s.grad_same_run + 1} records in a row",
                key[0],
                key[1],
                s.last_step,
                s.window[-1].where.line if s.window else None,
            )
            f.because = [
                "a bit-identical gradient norm step after step means the gradients do not depend on the "
                "data: frozen parameters, a broken loss or an environment bug"
            ]
            f.fix = [
                "check which parameters require grad and that the loss depends on them",
                "compare with a known-good environment (library versions)",
            ]
            f.add_evidence(s.window[-1].where if s.window else None)
            self._add(f)
            return
        if s.grad_zero_run >= 20:
            f = Finding(
                "loss_plateau",
                WARNING,
                f"grad norm exactly 0.0 on the last {s.grad_zero_run} records: nothing trains",
                key[0],
                key[1],
                s.last_step,
                s.window[-1].where.line if s.window else None,
            )
            f.because = ["a zero gradient norm means no parameter receives a gradient"]
            f.fix = [
                "check that the trainable parameters require grad (LoRA target modules, frozen layers)",
                "check that labels are not all masked (-100)",
            ]
            f.add_evidence(s.window[-1].where if s.window else None)
            self._add(f)
            return
        if 8 <= s.loss_records == len(s.head_losses):  # a short log, every loss kept: flat from the first record?
            vals = s.head_losses
            mid = median(vals)
            if mid > 0.01 and max(vals) - min(vals) <= 0.002 * mid:
                f = Finding(
                    "loss_plateau",
                    WARNING,
                    f"loss flat at {fmt(mid)} on all {len(vals)} records (within {(max(vals) - min(vals)) / mid:.2%})",
                    key[0],
                    key[1],
                    s.first_step,
                    s.window[0].where.line if s.window else None,
                )
                f.because = [
                    "no batch noise at all from the first record: the model's outputs do not depend on "
                    "its input (a loss at chance level, e.g. ln(num_classes) = 6.908 for 1000 classes), or "
                    "nothing is updated (lr 0, frozen or dead parameters)"
                ]
                f.fix = [
                    "check the lr schedule (printed lr) and which parameters require grad",
                    "check that the inputs reach the model (normalisation, a constant batch) and the labels",
                ]
                f.data = {"loss": mid, "spread": max(vals) - min(vals)}
                f.add_evidence(s.window[-1].where if s.window else None)
                self._add(f)
            return
        span = (s.last_step - s.first_step) if s.last_step is not None and s.first_step is not None else 0
        if s.loss_records < 100 and not (s.loss_records >= 20 and span >= 100):
            return
        head = s.head_loss()
        tail = list(s.tail_losses)
        if head is None or len(tail) < 20 or head <= 0:
            return
        t = median(tail)
        if t >= head * 0.99 and max(tail) - min(tail) < 0.5 * head:
            f = Finding(
                "loss_plateau",
                WARNING,
                f"loss did not go down over {s.loss_records} records ({fmt(head)} at the start, {fmt(t)} at the end)",
                key[0],
                key[1],
                s.first_step,
                s.window[0].where.line if s.window else None,
            )
            f.because = [
                "a loss that stays where it started is not learning: lr far too low or zero, frozen "
                "parameters, labels masked, or data that cannot be predicted"
            ]
            f.fix = [
                "check the lr schedule (printed lr) and which parameters require grad",
                "check a few batches by hand: labels, masking, tokenisation",
            ]
            f.data = {"head_loss": head, "tail_loss": t}
            f.add_evidence(s.window[-1].where if s.window else None)
            self._add(f)

    def _notes(self) -> None:
        for st in self.scale.values():
            if st.overflows and st.floor is None:
                self.notes.append(
                    f"{st.overflows} fp16 loss-scale overflow(s) with the scale still at or above "
                    f"{fmt(st.prev_reduced)}: calibration or sparse overflows, normal"
                )
        for key, n in self.skipped_grad.items():
            if n and key not in self.onsets:
                self.notes.append(
                    f"{n} record(s) with a non-finite grad norm but a finite loss that recovered: "
                    "steps the fp16 loss scaler skipped, normal if rare"
                )
        if self._guard_skips:
            self.notes.append(
                f"the training code skipped {self._guard_skips} batch(es) for a non-finite loss and went "
                "on: look at those batches if it happens often"
            )
        nan_iters = sum(s.nan_iterations for s in self.series.values())
        if nan_iters:
            self.notes.append(
                f"{nan_iters} NaN iteration(s) counted by Megatron (skipped fp16 steps whose loss was "
                "not finite); normal if rare"
            )
        if any(s.rl for s in self.series.values()):
            self.notes.append(
                "an RL objective (GRPO/PPO): a loss of 0.0, negative or rising with the KL term is "
                "normal; spike and plateau rules were not applied"
            )


def nan_cause(facts: dict) -> tuple[Optional[str], list[str]]:
    """The most likely cause of a NaN onset, from facts around it (pure; order = priority)."""
    why: list[str] = []
    if facts.get("op"):
        return "numerical_op", [f"autograd anomaly mode named `{facts['op']}` as the op that produced the NaN"]
    if facts.get("scale_floor"):
        return "fp16_overflow_loss_scale", [f"fp16: {facts['scale_floor']} at the onset"]
    lr = facts.get("lr")
    if facts.get("same_step_again"):
        return "bad_data", ["the NaN came back at the same step after a restart: the same batch"]
    if facts.get("one_rank") is not None:
        return "bad_data", [
            f"only rank {facts['one_rank']} went non-finite: its batch (or its GPU), not the lr or "
            "the model, which all ranks share"
        ]
    if facts.get("records_before", 0) <= 1 or (facts.get("step") is not None and facts["step"] <= 2):
        why.append(
            "NaN from the first logged step"
            + (f" (lr {fmt(lr)})" if lr is not None else "")
            + ": not a slow divergence; the data or the config"
        )
        return "bad_data", why
    if facts.get("recovered"):
        return "bad_data", ["the next record is finite again: one bad batch, not a diverged model"]
    if lr is not None and lr < LR_FLOOR:
        why.append(f"the lr ({fmt(lr)}) is too small to be the cause")
    elif facts.get("lr_jump"):
        return "lr_too_high", [f"the lr jumped {facts['lr_jump']:.1f}x just before the onset (to {fmt(lr)})"]
    elif facts.get("lr_rising"):
        return "lr_too_high", [f"the lr was still rising (warmup) when it diverged, at {fmt(lr)}"]
    elif facts.get("after_peak"):
        return "lr_too_high", [f"it diverged shortly after the warmup reached its peak lr {fmt(facts.get('max_lr'))}"]
    g, gb = facts.get("pre_grad_max"), facts.get("grad_baseline")
    if g is not None and gb and g >= 10 * gb:
        return "grad_explosion", [f"the grad norm grew to {fmt(g)} ({g / gb:.0f}x its median {fmt(gb)}) before the NaN"]
    pl, lb = facts.get("pre_loss_max"), facts.get("loss_baseline")
    if pl is not None and lb and lb > 0 and pl >= 5 * lb:
        return "grad_explosion", [f"the loss blew up to {fmt(pl)} ({pl / lb:.0f}x) before the NaN"]
    if facts.get("precision") == "fp16":
        return "fp16_overflow_loss_scale", ["an fp16 run with no other precursor: fp16 overflow is the likely cause"]
    return None, why + [
        "no precursor in the log (no lr change, no grad-norm growth): check the lr, the data at the onset"
    ]
