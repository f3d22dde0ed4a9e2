"""Failure lines: what one line (or a few joined lines) says happened (pure).

``classify(line, low)`` returns ``[(kind, data), ...]`` for a line that names an event:
an OOM, an NCCL timeout, a killed process, a loss-scale overflow, a NaN guard, ... Every
pattern is linear (bounded repetitions) and runs on lines the scanner already picked.
"""

from __future__ import annotations

import re
from typing import Any, Optional

from mlops_cli.train.values import VALUE, to_float

Found = list[tuple[str, dict[str, Any]]]

# --- loss scale --------------------------------------------------------------------------
_DS_OVERFLOW = re.compile(
    rb"(?:overflow!|overflow detected)[^\n]{0,120}?attempted loss\s{0,200}scal\s{0,200}e:\s{0,4}(" + VALUE + rb")"
    rb"(?:,\s{0,4}reducing to\s{0,4}(" + VALUE + rb")|,\s{0,4}but hysteresis is\s{0,4}(\d{1,4}))?"
)
_DS_OVERFLOW_BARE = re.compile(rb"overflow! rank (\d{1,6}) skipping step")
_DS_RANK = re.compile(rb"rank (\d{1,6}) skipping step")
_APEX = re.compile(
    rb"gradient overflow\.\s{1,4}skipping step,\s{0,4}loss scaler \d{1,4} reducing loss scale to\s{0,4}("
    + VALUE
    + rb")"
)
_FAIRSEQ_SET = re.compile(rb"overflow detected,\s{0,4}setting loss scale to:?\s{0,4}(" + VALUE + rb")")
_FAIRSEQ_MIN = re.compile(rb"minimum loss scale reached \((" + VALUE + rb")\)")
_ITER_OVERFLOW = re.compile(rb"overflow on iteration (\d{1,12})")

# --- NaN guards ----------------------------------------------------------------------------
_ANOMALY = re.compile(
    rb"function '(\w{1,80})' returned (nan|inf|an invalid gradient)[^\n]{0,20}?(?:in its (\d{1,4})\w{0,2} output)?"
)
# anomaly mode's warning names the autograd node; its `Traceback of forward call ...` may sit on the next line
# (a terminal wrap, or torch's own newline), so a backward node's name ending the line is enough
_ANOMALY_FWD = re.compile(
    rb"error detected in (\w{1,80})\. traceback of forward call|error detected in (\w{1,80}backward\d{0,3})\.\s*$"
)
# a traceback's echo of a Python statement (`    raise RuntimeError("Model diverged with loss = NaN.")`): code, not
# an event; its exception line follows
CODE_ECHO = re.compile(rb"^(?:\S{0,80}:)?\s+(?:raise|assert)\s")
_MEGATRON_NAN = re.compile(
    rb"rank (\d{1,6})(?:, node ([\w.-]{1,80}))?(?:, device (\d{1,4}))?(?:, iteration (-?\d{1,12}))?:"
    rb" unexpected result (nan|inf)"
)
_MEGATRON_NAN_ON = re.compile(rb"unexpected result (nan|inf) on rank (\d{1,6})(?: at iteration #?(-?\d{1,12}))?")
_LOCAL_NAN = re.compile(rb"(?:rank (\d{1,6}): )?found (nan|inf) in local grad norm")
_GUARD = re.compile(
    rb"loss returned in `?training_step`? is (?:nan|inf)"
    rb"|loss (?:is|became|becomes|was|has become|became a) (?:nan|inf|not finite|non-finite)"
    rb"|loss in not finite|loss is not finite|non-finite loss|nan loss (?:detected|encountered)"
    rb"|monitored metric [\w/.-]{1,80} = (?:nan|inf|-inf) is not finite"
    rb"|mlops-nanguard: non-finite"
    rb"|(?:nan|inf) (?:detected|found|encountered) in (?:the )?loss"  # `NaN detected in loss function, aborting`
    rb"|invalid loss, terminating training"
)  # Keras TerminateOnNaN: `Batch 6: Invalid loss, terminating training`
_GRAD_SKIP = re.compile(rb"grad[_ ]?norm (?:is )?not finite|non-finite grad(?:ient)?s?[^\n]{0,40}skip")
_TB_NONFINITE = re.compile(rb"(?:nan|inf) or (?:nan|inf) found in input tensor")
_NANGUARD_STEP = re.compile(
    rb"mlops-nanguard: non-finite [\w ]{1,40} at step (\d{1,12})"
    rb"|(?:at|on) (?:iteration|step|iter)[ =#:]{1,3}(\d{1,12})|^\s{0,8}batch (\d{1,12}): invalid loss"
)

# --- memory ----------------------------------------------------------------------------------
_CUDA_OOM = re.compile(
    rb"cuda out of memory|outofmemoryerror|cuda error: out of memory|cublas_status_alloc_failed"
    rb"|cuda failure 'out of memory'|cudaerrormemoryallocation"
    # the message's body pasted without its `CUDA out of memory.` head: both wordings
    rb"|tried to allocate [0-9.]{1,16} ?[kmgt]?i?b(?: \(gpu ?\d{0,4};|\. ?gpu ?\d{0,4} has a total capac)"
    # TensorFlow / Keras / JAX (XLA): `Resource exhausted: OOM when allocating tensor`,
    # `ResourceExhaustedError: OOM ...`, `RESOURCE_EXHAUSTED: Out of memory while trying to allocate`
    # (the `out` alone: a paste that wrapped after it), cuMemAllocAsync's `CUDA_ERROR_OUT_OF_MEMORY`
    rb"|oom when allocating tensor|resource[_ ]?exhausted(?:error)?:[\s:]{0,6}(?:oom\b|out\b)"
    rb"|cuda_error_out_of_memory"
)
_HOST_ALLOC = re.compile(
    rb"defaultcpuallocator: (?:can't allocate memory|not enough memory)|cannot allocate memory \(os error 12\)"
)
_SHM_FULL = re.compile(rb"unable to write to file </torch_[^>]{1,80}>")  # torch's shared-memory file: /dev/shm full
_XID = re.compile(rb"nvrm: xid \([^)]{0,60}\):? ?(\d{1,4})")
_XID_WHAT = {
    13: "graphics engine exception (often the application's own illegal access)",
    31: "GPU memory page fault",
    43: "GPU stopped processing (a kernel was killed)",
    48: "double-bit ECC error",
    63: "ECC page retirement / row remapping",
    64: "ECC row remapping failed",
    74: "NVLink error",
    79: "GPU has fallen off the bus",
    92: "high single-bit ECC rate",
    94: "contained ECC error",
    95: "uncontained ECC error",
    119: "GSP RPC timeout",
    120: "GSP error",
}
_OOM_KILLER = re.compile(
    rb"out of memory: kill(?:ed)? process (\d{1,10})|oom-kill(?:er)?[^\n]{0,80}?(?:task|pid)[=: ]{1,2}(\d{1,10})"
)
_XLA_TF_OOM = re.compile(rb"oom when allocating tensor|resource[_ ]?exhausted|cuda_error_out_of_memory")


def _oom_runtime(low: bytes) -> str:
    """Whose allocator ran out: PyTorch's caching allocator, or TensorFlow/JAX (XLA), whose fixes differ."""
    if not _XLA_TF_OOM.search(low):
        return "pytorch"
    return "tensorflow" if b"tensor with shape" in low or b"_bfc" in low else "xla"


# --- processes -------------------------------------------------------------------------------
_EXITCODE = re.compile(rb"failed \(exitcode: (-?\d{1,4})\) local_rank: (\d{1,6}) \(pid: (\d{1,10})\)")
_ROOT_RANK = re.compile(rb"rank\s{0,10}: (\d{1,6}) \(local_rank: (\d{1,6})\)")
_ROOT_EXIT = re.compile(rb"exitcode\s{0,10}: (-?\d{1,4}) \(pid: (\d{1,10})\)")
_ROOT_SIGNAL = re.compile(rb"signal (\d{1,3}) \((sig\w{1,10})\) received by pid (\d{1,10})")
_ELASTIC_FAILED = re.compile(rb"torchelastic\.worker\.status\.failed[^\n]{0,400}?\"global_rank\":\s{0,2}(\d{1,6})")
_DS_RETURN = re.compile(rb"exits with return code = (-?\d{1,4})|died with <signals\.(sig\w{1,10}): (\d{1,3})>")
# `is killed by` alone: a paste cut before the signal's name (the worker died; of what, the log does not say)
_DATALOADER = re.compile(
    rb"dataloader worker \(pid(?:\(s\))? ?([\d, ]{1,200})\) (?:is killed by(?: signal: ([a-z][a-z ]{0,40}))?|exited unexpectedly)"
)
_BUS = re.compile(rb"bus error encountered in worker|insufficient shared memory \(shm\)")
# a shell's job-control report of a SIGKILLed child: `/var/spool/slurmd/job00191/slurm_script: line 28:  8156 Killed  python3 ...`
_JOB_KILLED = re.compile(rb"line \d{1,7}:\s{1,8}\d{1,10}\s{1,8}killed\s{1,40}\S")
# the shell's `Killed` printed right after a progress bar or a Keras bar that had no newline yet:
# `331/1063 [01:06<03:59,  3.06it/s]Killed`, `- class_loss: 0.6522Killed` (case kept: prose says `killed`)
_GLUED_KILLED = re.compile(rb"[\d\])%|]Killed\s{0,8}$")
# bash's `Killed` in the locales that translate it (zh_CN `已杀死`)
KILLED_LOCALIZED = ("已杀死".encode(),)
# a C++ exception that ended the process: `terminate called after throwing an instance of 'c10::CUDAError'`
_TERMINATE_CUDA = re.compile(rb"terminate called after throwing an instance of 'c10::cudaerror'")
_CUDA_WARNING = re.compile(rb"cuda warning: ([^\n]{1,200})")

# --- NCCL / CUDA ---------------------------------------------------------------------------
_WORKNCCL = re.compile(rb"worknccl\(")
_NCCL_SEQ = re.compile(rb"seqnum=(\d{1,14})")
_NCCL_OP = re.compile(rb"optype=(\w{1,40})")
_NCCL_NUMEL = re.compile(rb"numelin=(\d{1,16})")
_NCCL_TMO = re.compile(rb"timeout\(ms\)=(\d{1,12})")
_NCCL_RAN = re.compile(rb"ran for (\d{1,14}) ?(?:millisec|ms\b)")
_NCCL_RANK = re.compile(rb"\[(?:pg[^\]]{0,80} )?rank (\d{1,6})\]")
_NCCL_WORK = re.compile(rb"last enqueued nccl work: (-?\d{1,14}), last completed nccl work: (-?\d{1,14})")
_NCCL_OTHER = re.compile(
    rb"watchdog caught collective operation timeout|some nccl operations have failed or timed out"
    rb"|watchdog got stuck|heartbeat monitor timed out"
    rb"|timed out in blocking wait|nccl communicator was aborted|collective operation timeout"
    # torch 2.6+: the rank whose collective timed out `Received a dump signal due to a collective timeout`
    rb"|due to a collective timeout"
)
_NCCL_TIMED_OUT = re.compile(
    rb"watchdog caught collective operation timeout|timed out in blocking wait|watchdog got stuck"
    rb"|heartbeat monitor timed out|due to a collective timeout"
)
_NCCL_ERROR = re.compile(
    rb"ncclunhandledcudaerror|ncclsystemerror|ncclinternalerror|ncclremoteerror|ncclinvalidusage"
    rb"|nccl error(?: \d{1,4}| in)?:|distbackenderror: nccl error"
    # an NCCL call returning its error code up the stack (`NCCL INFO bootstrap.cc:91 -> 2`); older NCCL returns it
    # on its WARN line, without the blank (`NCCL WARN transport.cu:153 ->2 [Proxy thread error]`)
    rb"|nccl (?:info|warn) [\w./-]{1,80}\.(?:cc|cu|h):\d{1,6} ->\s?[1-7]\b"
)
# CUDA: `Assertion `srcIndex < srcSelectDimSize` failed.`; ROCm/HIP closes the text with a quote:
# `Device-side assertion `srcIndex < srcSelectDimSize' failed.`
_ASSERT = re.compile(rb"device-side assert triggered|cudaerrorassert|assertion `[^`'\n]{1,200}[`'] failed")
_ASSERT_TEXT = re.compile(rb"assertion `([^`'\n]{1,200})[`'] failed", re.IGNORECASE)
_CUDA_ERROR = re.compile(
    rb"an illegal memory access was encountered|cudaerrorillegaladdress|misaligned address"
    rb"|unspecified launch failure|an illegal instruction was encountered|cublas_status_execution_failed"
    rb"|cudnn_status_internal_error|cudnn_status_execution_failed|uncorrectable ecc error"
)


_TRACEBACK = re.compile(
    rb"^\W{0,8}([A-Z]\w{0,60}(?:Error|Exception|Interrupt))\s{2,80}traceback \(most recent call last\)", re.IGNORECASE
)  # IPython's header names the exception: `NotImplementedError    Traceback (...)`
_EXCEPTION = re.compile(
    rb"^(?:\[rank\d{1,6}\]:\s?|\d{1,6}: )?(?:[a-z_][\w]{0,40}\.){0,8}([A-Z]\w{0,60}(?:Error|Exception|Failure)):(?: |$)"
)


def _num(m: Optional[re.Match], i: int) -> Optional[float]:
    return to_float(m.group(i)) if m and m.group(i) is not None else None


def _int(m: Optional[re.Match], i: int) -> Optional[int]:
    if m is None or m.group(i) is None:
        return None
    return int(m.group(i))


def loss_scale_events(low: bytes) -> Found:
    """Loss-scale lines: DeepSpeed OVERFLOW, apex, fairseq, minimum reached."""
    out: Found = []
    if b"overflow" in low:
        m = _DS_OVERFLOW.search(low)
        if m:
            r = _DS_RANK.search(low)
            out.append(
                (
                    "overflow",
                    {"attempted": _num(m, 1), "reduced": _num(m, 2), "hysteresis": _int(m, 3), "rank": _int(r, 1)},
                )
            )
        else:
            m = _APEX.search(low)
            f = None if m else _FAIRSEQ_SET.search(low)
            if m or f:
                out.append(
                    (
                        "overflow",
                        {
                            "attempted": None,
                            "reduced": _num(m or f, 1),
                            "hysteresis": None,
                            "rank": None,
                            "style": "fairseq" if f else "apex",
                        },
                    )
                )
            else:
                m = _DS_OVERFLOW_BARE.search(low) or _ITER_OVERFLOW.search(low)
                if m:
                    out.append(("overflow", {"attempted": None, "reduced": None, "hysteresis": None, "rank": None}))
    if b"minimum" in low and (
        b"already at minimum" in low or _FAIRSEQ_MIN.search(low) or b"floatingpointerror: minimum loss" in low
    ):  # fairseq's exception, wrapped/garbled
        m = _FAIRSEQ_MIN.search(low)
        out.append(("min_scale", {"scale": _num(m, 1)}))
    return out


def _op(line: bytes, base: int, tail: bytes) -> Optional[str]:
    m = _NCCL_OP.search(tail)
    return line[base + m.start(1) : base + m.end(1)].decode("ascii", "replace").upper() if m else None


def _orig(line: bytes, m: re.Match, i: int) -> str:
    """Group i of a match on the lowercased line, in the line's own case."""
    a, b = m.span(i)
    return line[a:b].decode("utf-8", "replace")


def classify(line: bytes, low: bytes) -> Found:
    """Every event one line names (usually none or one); `low` is `line.lower()`."""
    out: Found = loss_scale_events(low) if (b"overflow" in low or b"minimum" in low) else []
    if b"nan" in low or b"inf" in low or b"finite" in low or b"invalid gradient" in low or b"invalid loss" in low:
        m = _ANOMALY.search(low)
        if m:
            out.append(("anomaly", {"op": _orig(line, m, 1), "value": m.group(2).decode(), "output": _int(m, 3)}))
        m = _MEGATRON_NAN.search(low)
        on = None if m else _MEGATRON_NAN_ON.search(low)
        if m:
            out.append(
                (
                    "rank_nan",
                    {
                        "rank": int(m.group(1)),
                        "node": _orig(line, m, 2) if m.group(2) else None,
                        "device": _int(m, 3),
                        "iteration": _int(m, 4),
                        "value": m.group(5).decode(),
                    },
                )
            )
        elif on:  # mcore's rerun state machine: `Unexpected result nan on rank 3 at iteration #3 invocation #2`
            out.append(
                (
                    "rank_nan",
                    {
                        "rank": int(on.group(2)),
                        "node": None,
                        "device": None,
                        "iteration": _int(on, 3),
                        "value": on.group(1).decode(),
                    },
                )
            )
        else:
            loc = _LOCAL_NAN.search(low)  # older Megatron: `AssertionError: Rank 11: found NaN in local grad norm`
            if loc:
                out.append(
                    (
                        "rank_nan",
                        {
                            "rank": _int(loc, 1),
                            "node": None,
                            "device": None,
                            "iteration": None,
                            "value": loc.group(2).decode(),
                        },
                    )
                )
        m = _GUARD.search(low)
        if m and (b"={" in low or b'f"' in low or b"f'" in low or CODE_ECHO.match(low)):
            m = None  # the guard's own source line, quoted by a traceback (`... at iteration={storage.iter}`)
        if m and not out:
            step = _NANGUARD_STEP.search(low)  # the step the guard names (nanguard, detectron2, Keras)
            out.append(("nan_guard", {"step": next((int(g) for g in step.groups() if g), None) if step else None}))
        elif not out and _GRAD_SKIP.search(low):
            # verl: `WARN: rank 0 grad_norm is not finite: nan` and the update is skipped (zero_grad)
            out.append(("grad_skip", {}))
        elif not out and _TB_NONFINITE.search(low):
            # tensorboardX: SOME logged scalar was NaN/Inf (often an fp16 step's skipped grad norm), weak alone
            out.append(("tb_nonfinite", {}))
    if b"error detected in" in low:
        m = _ANOMALY_FWD.search(low)
        if m:
            out.append(("anomaly_forward", {"op": _orig(line, m, 1 if m.group(1) else 2)}))
    if b"xid" in low or b"fallen off the bus" in low:  # dmesg lines pasted into (or tailed with) the log
        m = _XID.search(low)
        xid = _int(m, 1)
        if m or b"fallen off the bus" in low:
            out.append(
                (
                    "cuda_error",
                    {
                        "xid": xid,
                        "what": _XID_WHAT.get(xid or 79, "GPU error") if xid or b"fallen off" in low else None,
                    },
                )
            )
            return out
    if b"/torch_" in low and _SHM_FULL.search(low):  # the DataLoader's shared-memory file in a full /dev/shm
        out.append(("dataloader_killed", {"signal": "bus error", "pids": None, "shm_full": True}))
        return out
    if b"memory" in low or b"alloc" in low or b"exhausted" in low:
        if _CUDA_OOM.search(low) and b"defaultcpuallocator" not in low:
            out.append(("oom", {"runtime": _oom_runtime(low)}))
        elif _HOST_ALLOC.search(low):
            out.append(("host_oom", {"how": "host allocation failed (DefaultCPUAllocator)"}))
        else:
            m = _OOM_KILLER.search(low)
            if m:
                out.append(("host_oom", {"how": "kernel OOM killer", "pid": _int(m, 1) or _int(m, 2)}))
    if b"dataloader worker" in low:
        m = _DATALOADER.search(low)
        if m:
            how = (
                (m.group(2) or (b"signal cut off" if b"killed by" in m.group(0) else b"exited unexpectedly"))
                .decode()
                .strip()
            )
            out.append(("dataloader_killed", {"signal": how, "pids": m.group(1).decode().strip()}))
    elif _BUS.search(low) if b"bus error" in low or b"shared memory" in low else False:
        out.append(("dataloader_killed", {"signal": "bus error", "pids": None}))
    if b"exitcode" in low:
        m = _EXITCODE.search(low)
        if m:
            out.append(
                ("exitcode", {"exitcode": int(m.group(1)), "local_rank": int(m.group(2)), "pid": int(m.group(3))})
            )
        else:
            m = _ROOT_EXIT.search(low)
            if m:
                out.append(("exitcode", {"exitcode": int(m.group(1)), "local_rank": None, "pid": int(m.group(2))}))
    if b"torchelastic.worker.status.failed" in low:  # torchelastic's JSON event for a failed worker
        m = _ELASTIC_FAILED.search(low)
        out.append(
            (
                "exception",
                {
                    "type": "torchelastic worker FAILED",
                    "message": f"global rank {m.group(1).decode()}" if m else "",
                    "rank": _int(m, 1),
                },
            )
        )
    if b"received by pid" in low:
        m = _ROOT_SIGNAL.search(low)
        if m:
            out.append(
                ("signal", {"signal": int(m.group(1)), "name": m.group(2).decode().upper(), "pid": int(m.group(3))})
            )
    if b"return code" in low or b"died with" in low:
        m = _DS_RETURN.search(low)
        if m:
            code = _int(m, 1)
            if code is None and m.group(3):
                code = -int(m.group(3))
            out.append(("exitcode", {"exitcode": code, "local_rank": None, "pid": None}))
    if (
        low.strip().strip(b"*_`>#\t .") == b"killed"
        or low.rstrip().endswith(b" killed python")
        or (b"killed" in low and (_JOB_KILLED.search(low) or _GLUED_KILLED.search(line)))
        or any(low.strip().endswith(k) and len(low.strip()) <= 200 for k in KILLED_LOCALIZED)
    ):
        out.append(("host_oom", {"how": "the shell reports the process 'Killed' (SIGKILL, usually the OOM killer)"}))
    if b"nccl" in low or b"watchdog" in low or b"timed out" in low:
        m = _WORKNCCL.search(low)
        if m:
            tail = low[m.end() : m.end() + 400]
            rank = _NCCL_RANK.search(low)
            out.append(
                (
                    "nccl_timeout",
                    {
                        "op": _op(line, m.end(), tail),
                        "seq": _int(_NCCL_SEQ.search(tail), 1),
                        "numel": _int(_NCCL_NUMEL.search(tail), 1),
                        "timeout_ms": _int(_NCCL_TMO.search(tail), 1),
                        "ran_ms": _int(_NCCL_RAN.search(tail), 1),
                        "rank": _int(rank, 1),
                    },
                )
            )
        else:
            w = _NCCL_WORK.search(low)
            if w:
                rank = _NCCL_RANK.search(low)
                out.append(
                    (
                        "nccl_progress",
                        {"last_enqueued": int(w.group(1)), "last_completed": int(w.group(2)), "rank": _int(rank, 1)},
                    )
                )
            if w and not _NCCL_TIMED_OUT.search(low):
                pass  # progress only (`Exception (either an error or timeout) detected by watchdog at work: N, ...`)
            elif _NCCL_ERROR.search(low) and not _NCCL_TIMED_OUT.search(low):
                # an NCCL error by name (ncclRemoteError, `NCCL error: remote process exited`) is not a timeout,
                # even on the line that also says `Some NCCL operations have failed or timed out`
                out.append(("nccl_error", {}))
            elif _NCCL_OTHER.search(low):
                rank = _NCCL_RANK.search(low)
                out.append(
                    (
                        "nccl_timeout",
                        {
                            "op": None,
                            "seq": None,
                            "numel": None,
                            "timeout_ms": None,
                            "ran_ms": None,
                            "rank": _int(rank, 1),
                        },
                    )
                )
            elif b"nccl warn" in low and not w:  # NCCL's own warning (`NCCL WARN Call to bind failed`): weak alone
                out.append(("nccl_warn", {}))
    if b"assert" in low:
        m = _ASSERT.search(low)
        if m:
            t = _ASSERT_TEXT.search(line)
            out.append(("device_assert", {"assertion": t.group(1).decode("utf-8", "replace") if t else None}))
    if not out and b"terminate called" in low and _TERMINATE_CUDA.search(low):
        out.append(("cuda_terminate", {}))
    if not out and (b"error" in low or b"exception" in low):
        m = _EXCEPTION.match(line)
        if m:
            out.append(
                (
                    "exception",
                    {
                        "type": _orig(line, m, 1),
                        "message": line[m.end() : m.end() + 300].decode("utf-8", "replace").strip(),
                    },
                )
            )
    if not out and b"most recent call last" in low:  # a traceback starts; its exception line may never come
        m = _TRACEBACK.search(line)
        out.append(("traceback", {"type": _orig(line, m, 1) if m else None}))
    if (
        b"illegal" in low
        or b"misaligned" in low
        or b"launch failure" in low
        or b"_status_" in low
        or b"ecc error" in low
    ):
        if _CUDA_ERROR.search(low) and not any(k == "device_assert" for k, _ in out):
            out.append(("cuda_error", {}))
    return out
