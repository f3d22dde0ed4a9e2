"""Bytes in, candidate lines out: the fast, streaming half of the parser.

A training log is mostly progress-bar redraws and repeated INFO lines. Looking at every line
in Python would cap the speed far below the 100 MB/s goal, so the scanner lowercases a block
(~1 MiB) once and asks C-level ``bytes.find`` for a few needles; only the lines (or the
``\\r``-separated fragments of a line) that hold a needle reach Python. Needles are chosen so
that every line the parser needs holds one: step records hold ``loss`` (Megatron's NaN line
still holds ``loss scale``) or ``step=`` (DeepSpeed); failure lines hold ``error``,
``timeout``, ``kill``, ``nan or inf``, ``exitcode`` or ``exhausted``. Config dumps are looked for only in
the first few MiB, where they are printed.

Memory is flat: a block, a 64 KiB look-behind and a 16 KiB look-ahead are kept, never the log.
Line numbers count ``\\n`` only (tqdm's ``\\r`` redraws stay on their physical line).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from mlops_cli.train import fastfind

BLOCK = 4 << 20  # process once this much is buffered
LOOKAHEAD = 16 << 10  # complete lines held back so a wrapped record can be joined
LOOKBEHIND = 64 << 10  # processed bytes kept so a line can look back (progress bar, assert line)
MAX_LINE = 4 << 20  # a 'line' longer than this is cut (a \r-less progress bar, binary junk)
HEAD = 2 << 20  # config dumps are searched for in this many leading bytes

RECORD, SIGNAL, CONTEXT, LOSS, NCCL = 1, 2, 4, 8, 16  # LOSS: the `loss` needle; NCCL: the `nccl` needle
DENSE = 24  # record lines per block after which a clean block is sampled
FULL = 1 << 20  # every record of the first MiB is read; after that clean dense blocks are sampled
SAMPLES = 64  # record lines looked at in a sampled block (evenly spread, plus the last one)

# needle (lowercase) -> group; the order does not matter.
NEEDLES: dict[bytes, int] = {
    # first: whether a block holds `nan` at all is known before the clean test needs it (block_is_clean)
    b"nan": RECORD,  # a bare `print(step, loss)` line (`76980 nan`), an ultralytics row: no other needle
    b"loss": RECORD | LOSS,  # step records, "loss is nan" lines
    b"step=": RECORD,  # DeepSpeed `step=N, skipped=K`
    b"error": SIGNAL,  # OOM, RuntimeError (anomaly, NaN guards, NCCL, CUDA, asserts), DataLoader, bus error
    b"nccl": SIGNAL | NCCL,  # ProcessGroupNCCL watchdog, WorkNCCL(...), NCCL errors
    b"kill": SIGNAL,  # Killed, SIGKILL, sigkill_handler
    b"exitcode": SIGNAL,  # torchrun `failed (exitcode: -9)`
    b"overflow": SIGNAL,  # loss-scale overflows (DeepSpeed, apex, fairseq)
    b"minimum": SIGNAL,  # the loss scale at its minimum (DeepSpeed, fairseq)
    b"finite": SIGNAL,  # NaN guards ("not finite", "non-finite"), mlops-nanguard
    b"assertion `": SIGNAL,  # a CUDA kernel's `Assertion `srcIndex < srcSelectDimSize` failed.` (no other needle)
    b"nvrm: xid": SIGNAL,  # dmesg `NVRM: Xid (PCI:...): 79, ... GPU has fallen off the bus`
    b"exhausted": SIGNAL,  # TensorFlow/XLA OOMs: `Resource exhausted: OOM when allocating tensor` (no `error`)
    b"most recent call last": SIGNAL,  # a traceback's header: the run's end when its exception line is cut off
    "已杀死".encode(): SIGNAL,  # bash's `Killed` under a zh_CN locale (SIGKILL): no ASCII, so no other needle
}
CHATTER = {b"nccl": (b"nccl info", b"nccl version")}
HEAD_NEEDLES: dict[bytes, int] = {
    b"fp16": CONTEXT,
    b"bf16": CONTEXT,
    b"float16": CONTEXT,
    b"precision": CONTEXT,
    b"model": CONTEXT,
    b"warmup": CONTEXT,
    b"max_grad_norm": CONTEXT,
    b"clip": CONTEXT,
    b"batch_size": CONTEXT,
    b"lora": CONTEXT,
    b"learning_rate": CONTEXT,
    b"cutoff_len": CONTEXT,
    b"max_length": CONTEXT,
    b"seq_len": CONTEXT,
    b"zero": CONTEXT,
    b"num epochs": CONTEXT,  # HF `***** Running training *****`: the steps of an epoch, for dicts
    b"total optimization steps": CONTEXT,  # printed without a progress bar
    b"log_history": CONTEXT,
    b"out of memory": SIGNAL,
    b"tried to allocate": SIGNAL,  # an OOM message pasted without its `CUDA out of memory.` head
    b"nan or inf": SIGNAL,
}
# pretty-printed JSON (trainer_state.json): one field per line; switched on by `"log_history"`
JSON_NEEDLES: dict[bytes, int] = {
    b'"step"': RECORD,
    b'"grad_norm"': RECORD,
    b'"learning_rate"': RECORD,
    b'"epoch"': RECORD,
}


@dataclass(slots=True)
class Block:
    """A buffer of complete lines and where it sits in the input."""

    data: bytes
    low: bytes
    offset: int  # input offset of data[0]
    line0: int  # physical line number (1-based) of data[0]
    end: int  # data[:end] is complete lines (look-ahead included)
    has_cr: bool

    def line_bounds(self, pos: int) -> tuple[int, int]:
        """The physical line around pos (without its newline)."""
        start = self.data.rfind(b"\n", 0, pos) + 1
        stop = self.data.find(b"\n", pos, self.end)
        return start, (self.end if stop < 0 else stop)

    def next_line(self, end: int) -> tuple[int, int] | None:
        """The physical line after the one ending at `end` (its newline), if buffered."""
        start = end + 1
        if start >= self.end:
            return None
        stop = self.data.find(b"\n", start, self.end)
        return start, (self.end if stop < 0 else stop)


# handler(block, start, end, line_no, mask) -> new end (the parser may join following lines)
Handler = Callable[[Block, int, int, int, int], int]


class Scanner:
    """Feeds candidate fragments of a byte stream to a handler, in input order."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._pending: list[bytes] = []
        self._pending_len = 0
        self._carry = b""  # look-behind + unprocessed complete lines + an incomplete tail
        self._carry_behind = 0  # how much of _carry was already processed (look-behind)
        self._offset = 0  # input offset of _carry[0]
        self._line0 = 1  # line number at _carry[0]
        self.bytes_seen = 0
        self.sampled_out = 0  # record lines of clean dense blocks that were not looked at
        self.json_mode = False

    def feed(self, data: bytes) -> None:
        if not data:
            return
        self._pending.append(data)
        self._pending_len += len(data)
        self.bytes_seen += len(data)
        if self._pending_len >= BLOCK:
            self._run(final=False)

    def flush(self) -> None:
        """Process everything complete now (follow mode: the writer paused)."""
        self._run(final=False, hold=False)

    def close(self) -> None:
        self._run(final=True)

    # -- internals ---------------------------------------------------------------

    def _run(self, *, final: bool, hold: bool = True) -> None:
        data = b"".join([self._carry, *self._pending]) if self._pending else self._carry
        self._pending, self._pending_len = [], 0
        begin = self._carry_behind
        if final:
            end = len(data)
        else:
            end = max(data.rfind(b"\n"), data.rfind(b"\r")) + 1
            if end <= begin:
                if len(data) - begin < MAX_LINE:
                    self._carry = data
                    return
                end = len(data)  # an endless line: cut it
        limit = end
        if hold and not final and end - begin > LOOKAHEAD:
            cut = data.rfind(b"\n", begin, end - LOOKAHEAD) + 1
            if cut > begin:
                limit = cut
        elif hold and not final:
            self._carry = data
            return
        block = Block(data, data.lower(), self._offset, self._line0, end, data.find(b"\r", begin, end) >= 0)
        counted, lines = self._scan(block, begin, limit)
        # keep a look-behind of processed bytes (from a line start when there is one), then the rest
        keep = 0
        if limit > LOOKBEHIND:
            nl = data.rfind(b"\n", max(0, limit - 2 * LOOKBEHIND), limit - LOOKBEHIND)
            keep = nl + 1 if nl >= 0 else limit - LOOKBEHIND
        # the scan counted the newlines before `counted`; count only between there and `keep`
        if keep >= counted:
            self._line0 += lines + data.count(b"\n", counted, keep)
        else:
            self._line0 += lines - data.count(b"\n", keep, counted)
        self._offset += keep
        self._carry = data[keep:]
        self._carry_behind = limit - keep

    def _needles(self, block: Block) -> dict[bytes, int]:
        needles = dict(NEEDLES)
        if block.offset < HEAD:
            needles.update(HEAD_NEEDLES)
            if not self.json_mode and b'"log_history"' in block.low:
                self.json_mode = True
        if self.json_mode:
            needles.update(JSON_NEEDLES)
        return needles

    def _scan(self, block: Block, begin: int, limit: int) -> tuple[int, int]:
        """Hand the block's candidate lines to the handler; returns (pos, n): data[:pos] holds n newlines."""
        low, data, has_cr = block.low, block.data, block.has_cr
        cands: dict[int, list[int]] = {}
        clean: bool | None = None
        nan_seen = True
        find = fastfind.finder(low)
        for needle, group in self._needles(block).items():
            pos = begin
            stride = 0
            hits = 0
            while True:
                i = find(needle, pos, limit)
                if i < 0:
                    if needle == b"nan" and not hits:
                        nan_seen = False  # no `nan` in the block: block_is_clean need not look for one
                    break
                start, stop = self._fragment(data, i, begin, limit, has_cr)
                hit = cands.get(start)
                if hit is None:
                    cands[start] = [stop, group]
                else:
                    hit[1] |= group
                pos = stop + 1
                hits += 1
                if hits == DENSE and needle in CHATTER:
                    # NCCL_DEBUG=INFO prints thousands of lines: skip the rest when they are all chatter
                    if low.count(needle, pos, limit) == sum(low.count(c, pos, limit) for c in CHATTER[needle]):
                        break
                if hits == DENSE and not group & SIGNAL and not stride and block.offset + limit > FULL:
                    # step records only, and many: if nothing in the block is unusual, take a sample
                    if clean is None:
                        clean = block_is_clean(low, begin, limit, nan_seen, find)
                    if clean:
                        stride = max(1, (limit - pos) // SAMPLES)
                        per_hit = (pos - begin) / hits
                        self.sampled_out += max(0, int((limit - pos) / per_hit) - SAMPLES)
                        last = low.rfind(needle, pos, limit)
                        if last >= 0:
                            a, b = self._fragment(data, last, begin, limit, has_cr)
                            cands.setdefault(a, [b, 0])[1] |= group
                if stride:
                    pos = max(pos, i + stride)
        if not cands:
            return 0, 0
        line_no = block.line0
        counted = 0
        consumed = begin
        handler = self._handler
        for start in sorted(cands):
            if start < consumed:
                continue  # inside lines the handler joined to an earlier one
            stop, group = cands[start]
            line_no += data.count(b"\n", counted, start)
            counted = start
            new_end = handler(block, start, stop, line_no, group)
            consumed = max(stop, new_end)
        return counted, line_no - block.line0

    @staticmethod
    def _fragment(data: bytes, i: int, begin: int, limit: int, has_cr: bool) -> tuple[int, int]:
        """The line (or \r-fragment) around position i. Searches stay inside the fragment, so a
        run of fragments without a newline (a tqdm bar redrawn all epoch long) costs O(its length)."""
        if has_cr:
            r = data.rfind(b"\r", begin, i)
            start = data.rfind(b"\n", max(r, begin), i) + 1 or (r + 1 if r >= 0 else begin)
            start = max(start, r + 1, begin)
            r = data.find(b"\r", i, limit)
            stop = data.find(b"\n", i, r if r >= 0 else limit)
            if stop < 0:
                stop = r if r >= 0 else limit
        else:
            start = data.rfind(b"\n", begin, i) + 1 or begin
            start = max(start, begin)
            stop = data.find(b"\n", i, limit)
            if stop < 0:
                stop = limit
        if stop - start > MAX_LINE:  # hostile: one endless line; look at a window around the hit
            start, stop = max(start, i - 4096), min(stop, i + 4096)
        return start, stop


_NAN_VALUE = re.compile(rb"nan(?![a-z_]| iter)")
_INF_VALUE = re.compile(rb"inf(?:inity)?(?![a-z_])")
_ZERO_LOSS = re.compile(rb"loss['\"]: 0\.0[,}]")


def block_is_clean(low: bytes, begin: int, limit: int, nan_seen: bool = True, find=None) -> bool:
    """Nothing in this block needs every record looked at: no NaN/Inf value, no Megatron line
    without its loss, no 0.0 loss (HF's hidden NaN). Failure lines have needles of their own.
    `nan_seen=False`: the caller already knows the block holds no `nan`."""
    if (nan_seen and _NAN_VALUE.search(low, begin, limit)) or _INF_VALUE.search(low, begin, limit):
        return False
    if _ZERO_LOSS.search(low, begin, limit):
        return False
    if (find or low.find)(b"skipped iterations", begin, limit) < 0:
        return True
    # Megatron drops `lm loss` from a line whose average is not > 0 (a NaN in bf16 leaves its counters at 0)
    skipped = low.count(b"skipped iterations", begin, limit)
    losses = low.count(b"lm loss", begin, limit)
    return losses >= skipped or losses + low.count(b"lm_loss", begin, limit) >= skipped


def iter_chunks(stream, size: int = BLOCK) -> Iterator[bytes]:
    """Read a binary stream in chunks until EOF."""
    while True:
        chunk = stream.read(size)
        if not chunk:
            return
        yield chunk
