"""Candidate lines -> step records, failure signals and setup context, for every framework.

Numbers are read next to known keys, whatever the line shape around them: Python dicts
(HF Trainer, TRL, LLaMA-Factory, ms-swift, axolotl), JSON lines, Megatron's ``key: value |``,
DeepSpeed's ``step=N, skipped=K``, progress-bar postfixes (``loss=``), and any ``key: value`` /
``key value`` / ``key=value`` line (torchtune, verl, NeMo, OpenMMLab, nanoGPT, meters, ...).

The step of an HF dict (which has none) comes from the progress bar drawn just before it.
Rank prefixes (``[rank3]:``, ``[default2]:``, ``0: ``, ``[1,3]<stdout>:``) are kept as the rank.
"""

from __future__ import annotations

import re
from typing import Optional

from mlops_cli.train import signals
from mlops_cli.train.events import Context, Record, Signal, Where
from mlops_cli.train.oom import needs_more_text, parse_oom, split_kind
from mlops_cli.train.scan import CONTEXT, HEAD, NCCL, RECORD, SIGNAL, Block, Scanner
from mlops_cli.train.values import VALUE, to_float

MAX_TEXT = 2000  # evidence text kept per line
MAX_JOIN = 8  # physical lines a wrapped record may span

# --- line prefixes ------------------------------------------------------------------------
_RANK = re.compile(
    rb"(?:\[|^)rank(\d{1,6})\]:|\[default(\d{1,6})\]:|^(\d{1,6}): |^\[\d{1,9},(\d{1,6})\]<std(?:out|err)>:"
)

# --- progress bars ------------------------------------------------------------------------
_BAR = re.compile(rb"(\d{1,12})/(\d{1,12}) \[(\d{1,4}(?::\d\d){1,2})")
_BAR_EPOCH = re.compile(rb"epoch (\d{1,9}):")

# --- dicts / JSON -------------------------------------------------------------------------
_DICT_KV = re.compile(rb"['\"]([^'\"\n]{1,120})['\"]\s{0,2}:\s{0,3}(?:['\"]([^'\"\n]{0,80})['\"]|(" + VALUE + rb"))")
_JSON_FIELD = re.compile(rb"^\s{0,40}\"([^\"\n]{1,80})\"\s{0,2}:\s{0,3}(" + VALUE + rb"|\"[^\"\n]{0,80}\")")
_RL_KEYS = {
    b"reward",
    b"reward_std",
    b"kl",
    b"objective/kl",
    b"completion_length",
    b"frac_reward_zero_std",
    b"clip_ratio",
    b"objective/rlhf_reward",
    b"env/reward_mean",
    b"ppo/loss/total",
    b"ppo/mean_scores",
}
_DPO_REWARDS = {b"rewards/chosen", b"rewards/rejected", b"rewards/accuracies", b"rewards/margins"}
_STEP_KEYS = {b"step", b"global_step", b"iter", b"iteration", b"num_updates", b"train/global_step", b"current_steps"}

# --- Megatron ----------------------------------------------------------------------------
_ITER = re.compile(rb"iteration:?\s{0,40}(\d{1,12})\s{0,40}/\s{0,40}(\d{1,12})")
_MEG_LM = re.compile(rb"lm[ _]loss\s?:\s{0,40}(" + VALUE + rb")")
_MEG_PLAIN = re.compile(rb"\|\s{0,4}(?:train[ _])?loss\s?:\s{0,40}(" + VALUE + rb")")
_MEG_VAL = re.compile(
    rb"validation loss at iteration\s{0,20}(\d{1,12})[^|]{0,80}\|\s{0,8}lm loss value\s?:\s{0,20}(" + VALUE + rb")"
)
_MEG_LR = re.compile(rb"(?:learning rate|\blr)\s?:\s{0,40}(" + VALUE + rb")")
_MEG_GN = re.compile(rb"grad[ _]norm\s?:\s{0,40}(" + VALUE + rb")")
_MEG_SCALE = re.compile(rb"loss[ _]scale\s?:\s{0,40}(" + VALUE + rb")")
_MEG_SKIP = re.compile(rb"skipped iterations\s?:\s{0,40}(\d{1,12})")
_MEG_NAN = re.compile(rb"nan iterations\s?:\s{0,40}(\d{1,12})")

# --- DeepSpeed ----------------------------------------------------------------------------
_DS_STEP = re.compile(rb"step=(\d{1,12}),\s{0,2}skipped=(\d{1,12})(?:,\s{0,2}lr=\[\s{0,2}(" + VALUE + rb"))?")
_DS_RANK = re.compile(rb"\[rank (\d{1,6})\]")

# --- progress-bar postfix (key=value) -----------------------------------------------------
_POSTFIX = re.compile(rb"(?<![\w/.-])([a-z_][\w/.\-]{0,63})=(" + VALUE + rb")(?![\w.])")

# --- generic key/value -------------------------------------------------------------------
# the value after a loss key; a paste may have wrapped it in markdown bold (`train.loss : **inf**`)
# or printed it in a logger's key/value table (OpenAI baselines / guided-diffusion: `| loss          | nan       |`)
# or printed it as a one-element list (PaddlePaddle's fetched arrays: `loss: [10.000229]`, `loss: [nan]`)
_AFTER_LOSS = re.compile(
    rb"['\"\]]{0,2}(?:\s{0,4}(?:[:=]|is\b|-)?|\s{0,40}\|)\s{0,8}(?:['\"*]{0,2}|\[\s{0,4})(" + VALUE + rb")(?![\w]|\.\d)"
)
_KEYCHARS = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789_/.-")
_PREFIX_WORDS = {
    b"lm",
    b"train",
    b"training",
    b"total",
    b"val",
    b"valid",
    b"validation",
    b"eval",
    b"test",
    b"dev",
    b"average",
    b"avg",
    b"mean",
    b"step",
    b"batch",
    b"reduced",
    b"running",
    b"current",
}
_MAIN_LOSS = {
    b"loss",
    b"lm loss",
    b"lm_loss",
    b"train_loss",
    b"train loss",
    b"training loss",
    b"training_loss",
    b"total_loss",
    b"total loss",
    b"loss_total",
    b"avg_loss",
    b"average_loss",
    b"average loss",
    b"avg loss",
    b"mean_loss",
    b"mean loss",
    b"step_loss",
    b"batch_loss",
    b"reduced_train_loss",
    b"train_loss_step",
    b"loss_step",
    b"avr_loss",
    b"main_loss",
    b"losses",
    b"running loss",
    b"current loss",
    b"train_lm_loss",
    b"loss_avg",
    b"loss_mean",
    b"loss_net",
    b"step loss",
    b"batch loss",
}
_EVAL_PREFIX = (b"eval", b"val", b"valid", b"test", b"dev")
# a GAN's losses in a progress-bar postfix, generator first (the order is the preference)
_GAN_KEYS = (
    b"g",
    b"g_loss",
    b"loss_g",
    b"errg",
    b"gen",
    b"d",
    b"d_loss",
    b"loss_d",
    b"errd",
    b"disc",
    b"dr",
    b"df",
    b"d_real",
    b"d_fake",
)
_GEN_STEP = (
    re.compile(
        rb"(?<![\w/.-])(?:global[_ ]?step|num_updates|train/global_step)\]?\s{0,4}[:=]?\s{0,8}(" + VALUE + rb")"
    ),
    re.compile(
        rb"(?<![\w/.-])(?:step)s?\]?\s{0,4}[:=#]?\s{0,8}\[?\s{0,8}(\d{1,12})(?:\s{0,8}/\s{0,8}(\d{1,12}))?(?![\w.])"
    ),
    re.compile(
        rb"(?<![\w/.-])(?:iteration|iter)s?\]?\s{0,4}[:=#]?\s{0,8}\[?\s{0,8}(\d{1,12})(?:\s{0,8}/\s{0,8}(\d{1,12}))?(?![\w.])"
    ),
)
_MM_STEP = re.compile(
    rb"(epoch|iter)(?:\(train\))?:?\s{0,4}\[\s{0,8}(\d{1,12})(?:\s{0,4}/\s{0,4}(\d{1,12}))?\]"
    rb"\s{0,4}(?:\[\s{0,8}(\d{1,12})\s{0,4}/\s{0,4}(\d{1,12})\])?"
)
# a per-epoch batch counter (`Train epoch: 0, batch: 790/34799`, PaddleDetection's `Epoch 0, batch 70,`):
# the step when nothing global is printed; not `batch_size`, `batch size:`, `batch_cost`
_GEN_BATCH = re.compile(
    rb"(?<![\w/.-])batch(?![\w])\s{0,4}[:=#]?\s{0,8}(\d{1,12})(?:\s{0,4}/\s{0,4}(\d{1,12}))?(?![\w.])"
)
# a line whose description names the evaluation phase: its losses are eval losses
# (`Valid Epoch: 16 Loss: nan: 100% 660/660 [...]`, `Validation: loss 0.3`, `Test Epoch 3 ...`)
_EVAL_LEAD = re.compile(rb"^\s{0,8}(?:valid(?:ation|ating)?|val|eval(?:uation|uating)?|test(?:ing)?)(?![\w])")
_SIMMIM_STEP = re.compile(rb"train: \[(\d{1,9})/\d{1,9}\]\[(\d{1,12})/(\d{1,12})\]")
_TT_BAR = re.compile(rb"(?:^|\s)(\d{1,9})\|(\d{1,12})\|loss")
_GEN_EPOCH = re.compile(rb"(?<![\w/.-])epoch\]?\s{0,4}[:=]?\s{0,8}(\d{1,9}(?:\.\d{1,6})?)(?![\w.])")
_GEN_LR = re.compile(
    rb"(?<![\w/.-])(?:train/)?(?:lr|learning[_ ]rate)(?:[-_][\w]{1,20})?\]?\s{0,4}(?:[:=]|is\b)?\s{0,8}("
    + VALUE
    + rb")(?![\w])"
)
_GEN_GN = re.compile(
    rb"(?<![\w./-])(?:train/|actor/|optim/)?(?:grad[_ -]?norm|gradient[_ ]norm|gnorm|total_norm|grad_norm_total)"
    rb"\]?\s{0,4}[:=]?\s{0,8}(" + VALUE + rb")(?![\w])"
)
_PAIR_NAN = re.compile(rb"^\s{0,8}(\d{1,12})[ \t,]{1,8}[-+]?nan\s{0,4}$")
_PAIR = re.compile(rb"^\s{0,8}(\d{1,12})[ \t,]{1,8}([-+]?[0-9]{0,12}\.[0-9]{1,12}(?:e[-+]?[0-9]{1,3})?)\s{0,4}$")
_YOLO_ROW = re.compile(rb"(?:^|\s)(\d{1,6})/\d{1,6}\s{1,12}\d{1,5}(?:\.\d{1,3})?[gm]\s{1,12}")  # epoch, GPU memory
_KERAS_GLUE = re.compile(rb"(?<=[0-9a-z])epoch \d{1,9}/\d{1,9}\s{0,4}$")
_SUMMARY_LOSS = re.compile(rb"train_loss\s{0,40}=\s{0,40}(" + VALUE + rb")\s{0,8}$")
_LOSS_WORD = re.compile(rb" ([a-z][a-z0-9_]{0,20})\s{0,2}[:=]\s{0,4}(" + VALUE + rb")(?![\w])")
_TOTAL = re.compile(rb"(?<![\w/.-])total\]?\s{0,4}[:=]?\s{0,4}(" + VALUE + rb")(?![\w])")
_GEN_SCALE = re.compile(rb"loss[_ ]scale\]?\s{0,4}[:=]?\s{0,8}(" + VALUE + rb")(?![\w])")

# --- context --------------------------------------------------------------------------------
_CTX_PREC = re.compile(
    rb"(?<![\w-])(fp16|bf16)['\"]?\s{0,3}(?:[:=]|\s\.{2,100})\s{0,3}['\"]?(true|1|false|0)(?![\w])"
    rb"|['\"](fp16|bf16)['\"]\s{0,3}:\s{0,3}\{\s{0,3}['\"]enabled['\"]\s{0,3}:\s{0,3}['\"]?(true|auto)"
    rb"|--(fp16|bf16)(?:[ =](true|1))?(?=\s|$)"
    rb"|precision['\"]?\s{0,3}[:=]\s{0,3}['\"]?(16-mixed|bf16-mixed|bf16-true|16-true|fp16|bf16|16)(?![\w-])"
    rb"|using (16bit|bfloat16) automatic mixed precision"
)
_CTX_MODEL = (
    re.compile(rb"model_name_or_path['\"]?\s{0,3}[:=]\s{0,3}['\"]?([\w./~:+-]{2,200})"),
    re.compile(
        rb"--model(?:_name_or_path|_id|_path|-name-or-path|-path|_id_or_path)?[= ]{1,3}['\"]?([\w./~:+-]{2,200})"
    ),
    re.compile(rb"\"_name_or_path\"\s{0,3}:\s{0,3}\"([^\"\n]{2,200})\""),
    re.compile(rb"models--([\w.-]{1,96})--([\w.-]{1,96})"),
    re.compile(rb"(?<![\w])model['\"]?\s{0,3}[:=]\s{0,3}['\"]([\w.-]{1,96}/[\w.-]{1,96})['\"]"),
)
_CTX_CLIP = re.compile(
    rb"(?:max_grad_norm|gradient_clipping|clip[-_]grad(?:[-_]norm)?|gradient_clip_val)['\"]?\s{0,3}"
    rb"(?:[:=]|\s\.{2,100})\s{0,3}['\"]?(" + VALUE + rb")"
)
_CTX_WARMUP = re.compile(
    rb"((?:lr[-_])?warmup[-_](?:ratio|steps|iters|epochs|fraction|samples))['\"]?\s{0,3}"
    rb"(?:[:=]|\s\.{2,100})\s{0,3}['\"]?(" + VALUE + rb")"
)
_CTX_LR = re.compile(
    rb"(?<![\w])(?:learning_rate|--lr|lr)['\"]?\s{0,3}(?:[:=]|\s\.{2,100}|\s)\s{0,3}['\"]?(" + VALUE + rb")(?![\w])"
)
_CTX_BATCH = re.compile(
    rb"(?:per_device_train_batch_size|train_micro_batch_size_per_gpu|micro_batch_size|batch_size_per_gpu)"
    rb"['\"]?\s{0,3}(?:[:=]|\s\.{2,100})\s{0,3}['\"]?(\d{1,6})"
)
_CTX_SEQ = re.compile(
    rb"(?<![\w])(?:cutoff_len|max_seq_length|max_seq_len|seq_length|max_length|model_max_length|seq_len)"
    rb"['\"]?\s{0,3}(?:[:=]|\s\.{2,100})\s{0,3}['\"]?(\d{2,8})(?![\w.])"
)
_CTX_METHOD = re.compile(
    rb"(?:finetuning_type|train_type|tuner_backend|peft_type)['\"]?\s{0,3}[:=]\s{0,3}['\"]?(?:peftt?ype\.)?"
    rb"(lora|qlora|full|freeze)|(load_in_4bit|quantization_bit)['\"]?\s{0,3}[:=]\s{0,3}['\"]?(true|4)"
)
_CTX_ZERO = re.compile(
    rb"zero_stage['\"]?\s{0,3}[:=]\s{0,3}(\d)|\"stage\"\s{0,3}:\s{0,3}(\d)|ds_z(\d)_|zero(\d)(?:_\w{0,20})?\.json"
)
_CTX_HF_RUN = re.compile(rb"(num epochs|total optimization steps)\s{0,4}=\s{0,4}([0-9][0-9,]{0,14})")
_CTX_NUMBERS = (("max_grad_norm", _CTX_CLIP, to_float), ("batch_size", _CTX_BATCH, int), ("seq_len", _CTX_SEQ, int))
_BAD_MODEL = {b"none", b"null", b"auto", b"true", b"false", b"model", b""}


def _clip(text: bytes) -> bytes:
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + b"..."


class LogParser:
    """Streaming parser for one input: ``feed(bytes)`` ... ``close()``; events via ``drain()``."""

    def __init__(self, file: str, framework: str = "auto") -> None:
        self.file = file
        self.framework = framework
        self.context = Context()
        self.records = 0
        self._events: list = []
        self._scanner = Scanner(self._handle)
        self._last_step: dict[Optional[int], int] = {}
        self._train_step: Optional[int] = None
        self._json_obj: dict[bytes, bytes] = {}
        self._json_where: Optional[Where] = None
        self._pair_mode = False  # `step loss` pairs seen (a bare print loop)
        self._table: list[bytes] = []  # the last column header with loss columns (ultralytics)
        self._epoch0 = False  # an `epoch 0` was printed: epochs count from 0 (for `epoch E, batch i/n` steps)

    # -- streaming API --------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        self._scanner.feed(data)

    def flush(self) -> None:
        self._scanner.flush()

    def close(self) -> None:
        self._scanner.close()

    def drain(self) -> list:
        out, self._events = self._events, []
        return out

    @property
    def bytes_seen(self) -> int:
        return self._scanner.bytes_seen

    @property
    def sampled_out(self) -> int:
        return self._scanner.sampled_out

    # -- dispatch ---------------------------------------------------------------------------
    def _handle(self, block: Block, start: int, end: int, line_no: int, group: int) -> int:
        data = block.data
        low = block.low[start:end]
        if group == SIGNAL | NCCL and (
            (b"nccl info" in low and not (b" -> " in low and b".cc:" in low))
            or (b"nccl version" in low and b"error" not in low)
        ):
            # NCCL_DEBUG=INFO chatter (an NCCL error also names the version: `..., NCCL version 2.21.5`; an INFO
            # line `bootstrap.cc:91 -> 2` is NCCL passing an error code up the stack)
            return end
        line = data[start:end]
        rank = self._rank(line)
        new_end = end
        family = None
        before = self.records
        if group & RECORD:
            family, new_end = self._record(block, start, end, line, low, rank, line_no)
            if new_end != end:
                line, low = data[start:new_end], block.low[start:new_end]
        if not group & SIGNAL and (
            b"assertion `" in low
            or b"invalid loss" in low
            or (self.records == before and (b"nan" in low or b"inf" in low))
        ):
            # a kernel assert naming `nll_loss`, Keras' `Invalid loss`, `NaN detected in loss function`: failure
            # lines that hold only a record needle (a line that gave no record and names a NaN is looked at)
            group |= SIGNAL
        if group & SIGNAL:  # failure lines hold a needle of their own; a record line alone never is one
            new_end = max(new_end, self._signals(block, start, new_end, line, low, rank, line_no))
        if group & CONTEXT and block.offset + start < HEAD and self.records == before:
            self._context(line, low, line_no)
        return new_end

    @staticmethod
    def _rank(line: bytes) -> Optional[int]:
        head = line[:200]
        if b"]:" not in head and b"]<std" not in head and not (head[:1].isdigit() and b": " in head[:8]):
            return None
        m = _RANK.search(head)
        if not m:
            return None
        for g in m.groups():
            if g is not None:
                return int(g)
        return None

    def _where(self, line_no: int, text: bytes) -> Where:
        return Where(self.file, line_no, _clip(text))

    def _step_for(self, rank: Optional[int]) -> Optional[int]:
        step = self._last_step.get(rank)
        if step is None and rank is not None:
            step = self._last_step.get(None)
        if step is None and self._last_step:
            step = max(self._last_step.values())
        return step

    def _emit_record(self, rec: Record) -> None:
        self.records += 1
        if rec.step is not None and rec.phase == "train":
            self._last_step[rec.rank] = rec.step
        self._events.append(rec)

    # -- records ------------------------------------------------------------------------------
    def _record(
        self, block: Block, start: int, end: int, line: bytes, low: bytes, rank: Optional[int], line_no: int
    ) -> tuple[Optional[str], int]:
        if b"{" in line and (b"':" in line or b'":' in line):
            return self._dict_record(block, start, end, line, rank, line_no)
        if self._scanner.json_mode and low.lstrip()[:1] == b'"':
            self._json_field(line, rank, line_no)
            return "json", end
        if b"iteration" in low and b"|" in line:
            return self._megatron(block, start, end, line, low, rank, line_no)
        if b"|" in line and (b"grad norm" in low or b"loss scale" in low):
            head = self._megatron_head(block, start)
            if head is not None:  # a Megatron line the paste wrapped at its `|` separators
                a, back = head
                text = block.data[a:end].replace(b"\n", b" ")
                return self._megatron(block, a, end, text, text.lower(), rank, line_no - back)
        if b"step=" in low and b"skipped=" in low:
            m = _DS_STEP.search(low)
            if m:
                r = _DS_RANK.search(low)
                step = int(m.group(1))
                self.context.saw("deepspeed")
                self._last_step[rank if rank is not None else (int(r.group(1)) if r else None)] = step
                self._events.append(
                    Signal(
                        "ds_step",
                        self._where(line_no, line),
                        rank if rank is not None else (int(r.group(1)) if r else None),
                        step,
                        {"skipped": int(m.group(2)), "lr": to_float(m.group(3))},
                    )
                )
                return "deepspeed", end
        if (b"it/s" in low or b"s/it" in low) and b"=" in line:
            if self._bar_record(line, low, rank, line_no):
                return "bar", end
        if (b"raise" in low or b"assert" in low) and signals.CODE_ECHO.match(low):
            return "generic", end  # a traceback's echo of a statement (`raise RuntimeError("... loss = NaN.")`)
        if b"loss" in low:
            self._generic(block, start, line, low, rank, line_no)
        elif b"nan" in low and _PAIR_NAN.match(low):
            self._pair_record(block, start, line, low, rank, line_no)
        elif b"nan" in low and b"norm" in low and _GEN_GN.search(low):
            self._generic(block, start, line, low, rank, line_no)  # `... - Grad Norm: nan` (no loss on the line)
        elif b"nan" in low and (self._table or _YOLO_ROW.search(low)):
            self._table_row(line, low, rank, line_no)
        return "generic", end

    @staticmethod
    def _megatron_head(block: Block, start: int) -> Optional[tuple[int, int]]:
        """The `iteration N/M |` line a wrapped Megatron record started on: the lines before this one, each
        ending in `|` (wrapped at a separator), up to MAX_JOIN back; (its start, how many lines back)."""
        pos = start
        for back in range(1, MAX_JOIN):
            if pos <= 0:
                return None
            a = block.data.rfind(b"\n", 0, pos - 1) + 1
            prev = block.low[a : pos - 1]
            if not prev.rstrip().endswith(b"|"):
                return None
            if _ITER.search(prev):
                return a, back
            pos = a
        return None

    def _table_row(self, line: bytes, low: bytes, rank: Optional[int], line_no: int) -> None:
        """A row under a column header (ultralytics: `2/100  2.11G  nan  nan  nan  12  640: 100%|...`).
        Only rows holding a NaN reach here (the `nan` needle); the epoch column is the step."""
        y = _YOLO_ROW.search(low)
        if y is not None:  # `49/1799  6.47G  nan  nan  nan  28  416: ...`, with or without its header
            cells = low[y.end() :].split(b"%|", 1)[0].split()
            if b"nan" in cells[:-2] or any(c == b"nan" for c in cells[:3]):
                ep = int(y.group(1))
                self._emit_record(
                    Record(self._where(line_no, line), rank, ep, float("nan"), epoch=float(ep), family="table")
                )
            return
        head = self._table
        cells = low.split(b"%|", 1)[0].split()
        if len(cells) < len(head):
            return
        cells = [c.rstrip(b":") for c in cells[: len(head)]]
        first = cells[0].split(b"/")
        if not (first[0].isdigit() and (len(first) == 1 or first[1].isdigit())):
            return  # not a row of this table (ultralytics' validation rows start with a class name)
        losses = [to_float(cells[i]) for i, name in enumerate(head) if name.endswith(b"loss")]
        if not losses or None in losses or all(v == v for v in losses):
            return
        step = epoch = None
        if head[0] == b"epoch" and b"/" in cells[0] and cells[0].split(b"/")[0].isdigit():
            step = int(cells[0].split(b"/")[0])
            epoch = float(step)
        self._emit_record(Record(self._where(line_no, line), rank, step, float("nan"), epoch=epoch, family="table"))

    def _pair_record(
        self, block: Block, start: int, line: bytes, low: bytes, rank: Optional[int], line_no: int
    ) -> None:
        """`print(step, loss)` logs: `76980 nan` right after lines like `76970 2.6265104`. Only the NaN
        line holds a needle; the finite pairs before it are read back from the block (at least two,
        their steps rising), so a table that happens to hold a NaN is not taken for a run."""
        m = _PAIR_NAN.match(low)
        step = int(m.group(1))
        if not self._pair_mode:
            prev: list[tuple[int, bytes, int]] = []
            pos, n = start - 1, line_no - 1
            while pos > 0 and len(prev) < 64:
                a = block.data.rfind(b"\n", 0, pos) + 1
                text = block.data[a:pos]
                pos, n = a - 1, n - 1
                if not text.strip():
                    continue
                p = _PAIR.match(text.lower())
                if p is None:
                    break
                prev.append((int(p.group(1)), text, n + 1))
            prev.reverse()
            steps = [p[0] for p in prev]
            if len(prev) < 2 or any(b <= a for a, b in zip(steps, steps[1:])) or steps[-1] >= step:
                return
            self._pair_mode = True
            for st, text, no in prev:
                self._emit_record(
                    Record(
                        self._where(no, text), rank, st, to_float(_PAIR.match(text.lower()).group(2)), family="pairs"
                    )
                )
        self._emit_record(Record(self._where(line_no, line), rank, step, float("nan"), family="pairs"))

    def _join_until(self, block: Block, start: int, end: int, done) -> int:
        """Join following physical lines to a wrapped record until `done(text)` says it is whole."""
        stop = end
        for _ in range(MAX_JOIN):
            if done(block.data[start:stop]):
                return stop
            nxt = block.next_line(stop)
            if nxt is None:
                return stop
            a, b = nxt
            head = block.data[a : a + 2]
            if head[:1] in (b"{", b"[") and head != b"[]" or b"iteration" in block.low[a:b][:40]:
                return stop  # the next record starts: this one was cut, not wrapped
            stop = b
        return stop

    def _dict_record(
        self, block: Block, start: int, end: int, line: bytes, rank: Optional[int], line_no: int
    ) -> tuple[Optional[str], int]:
        brace = line.find(b"{")
        if line.find(b"}", brace) < 0:
            end = self._join_until(block, start, end, lambda t: t.find(b"}", t.find(b"{")) >= 0)
            line = block.data[start:end].replace(b"\n", b"")
            brace = line.find(b"{")
        body = line[brace:]
        kv = _DICT_KV.findall(body)
        if not kv:
            return None, end
        loss = eval_loss = grad = lr = epoch = scale = None
        step = epoch_raw = None
        rl = False
        pref_bad = False  # a DPO/ORPO reward, log-prob or logit that is NaN: the loss behind it is NaN too
        elapsed = None
        mode = None
        for key, sval, nval in kv:
            if key == b"loss" or key == b"train/loss":
                loss = to_float(nval or sval)
            elif key == b"grad_norm" or key == b"train/grad_norm" or key == b"gnorm":
                grad = to_float(nval or sval)
            elif key in (b"learning_rate", b"lr", b"train/learning_rate", b"train/lr"):
                lr = to_float(nval or sval)
            elif key == b"epoch" or key == b"train/epoch":
                epoch = to_float(nval or sval)
                epoch_raw = nval or sval
            elif key in _STEP_KEYS:
                v = to_float(nval or sval)
                if v is not None and v == v and abs(v) < 1e15:
                    step = int(v)
            elif key == b"global_step/max_steps":
                head = sval.split(b"/")[0].strip()
                if head.isdigit():
                    step = int(head)
            elif key == b"eval_loss" or key == b"eval/loss" or key == b"val_loss" or key == b"valid_loss":
                eval_loss = to_float(nval or sval)
            elif key == b"loss_scale" or key == b"scale":
                scale = to_float(nval or sval)
            elif key == b"train_runtime":  # the end-of-training summary, not a step
                for k2, s2, n2 in kv:
                    if k2 == b"train_loss":
                        self._events.append(
                            Signal(
                                "train_summary",
                                self._where(line_no, line),
                                rank,
                                None,
                                {"train_loss": to_float(n2 or s2)},
                            )
                        )
                return "hf_dict", end
            elif key == b"elapsed_time":
                elapsed = sval.decode("ascii", "replace")
            elif key == b"mode":
                mode = sval
            elif (
                key in _RL_KEYS
                or key.startswith((b"completions/", b"ppo/", b"objective/"))
                or (key.startswith(b"rewards/") and key not in _DPO_REWARDS)
            ):
                rl = True
            elif (key in _DPO_REWARDS or key.startswith((b"logps/", b"logits/"))) and not pref_bad:
                v = to_float(nval or sval)
                pref_bad = v is not None and v != v
        if mode == b"val" and loss is not None and eval_loss is None:
            eval_loss, loss = loss, None
        if pref_bad and loss == 0.0 and not rl:
            loss = float("nan")  # `'loss': 0.0, 'rewards/chosen': nan, 'logps/chosen': nan`: the filtered NaN
        if loss is None and eval_loss is None and grad is None:
            return None, end
        fam = "json" if body[:2] == b'{"' else "hf_dict"
        self.context.saw("trl" if rl else fam)
        where = self._where(line_no, line)
        if loss is not None or grad is not None:
            if step is None:
                # a dict on its own (tqdm cleared the bar with \r): tqdm.write() redraws the bar right
                # after it with the current count; the bar drawn before it lags when tqdm throttles
                glued = None
                if brace > 8:
                    for glued in _BAR.finditer(line, 0, brace):
                        pass  # the last bar before the dict
                if glued is not None:  # `... 10/100 [00:10<...]{'loss': ...}`: the bar printed with it
                    bar = (int(glued.group(1)), int(glued.group(2)), glued.group(3).decode())
                else:
                    bar = self._bar_after(block, end) or self._bar_before(block, start + brace)
                if bar is not None:
                    step, elapsed = bar[0], elapsed or bar[2]
                elif epoch_raw is not None:
                    step = self._step_from_epoch(epoch_raw)
            if step is not None:
                self._train_step = step
            self._emit_record(
                Record(
                    where, rank, step, loss, lr, grad, scale, None, None, epoch, "train", fam, False, rl, False, elapsed
                )
            )
        if eval_loss is not None:
            self._emit_record(
                Record(
                    where,
                    rank,
                    self._train_step if step is None else step,
                    eval_loss,
                    None,
                    None,
                    None,
                    None,
                    None,
                    epoch,
                    "eval",
                    fam,
                    False,
                    rl,
                    False,
                    elapsed,
                )
            )
        return fam, end

    def _step_from_epoch(self, raw: bytes) -> Optional[int]:
        """A dict with no bar: its step from the epoch, when HF's header gave the steps of an epoch
        (Total optimization steps / Num Epochs, whole) and the epoch is printed with >= 4 decimals, so
        that epoch x steps lands within 0.05 of a whole step."""
        ctx = self.context
        if (
            not ctx.epochs
            or not ctx.total_steps
            or ctx.total_steps % ctx.epochs
            or b"." not in raw
            or len(raw.split(b".", 1)[1]) < 4
        ):
            return None
        v = to_float(raw)
        if v is None or not v == v:
            return None
        exact = v * ctx.total_steps / ctx.epochs
        return round(exact) if abs(exact - round(exact)) <= 0.05 and exact >= 0.5 else None

    def _bar_before(self, block: Block, pos: int) -> Optional[tuple[int, int, str]]:
        """The progress-bar counter drawn last before `pos` (HF prints its dict right after it)."""
        data = block.data
        lo = max(0, pos - 32768)
        j = pos
        for _ in range(256):
            k = data.rfind(b" [", lo, j)
            if k < 0:
                return None
            m = _BAR.search(data, max(lo, k - 26), min(k + 16, block.end))
            if m and m.end(2) == k:
                count, total = int(m.group(1)), int(m.group(2))
                if count <= total:
                    return count, total, m.group(3).decode()
            j = k
        return None

    @staticmethod
    def _bar_after(block: Block, end: int) -> Optional[tuple[int, int, str]]:
        """The progress bar tqdm redraws at the start of the next line, if there is one."""
        nxt = block.next_line(end)
        if nxt is None:
            return None
        a, b = nxt
        head = block.data[a : min(b, a + 400)]
        if head[:1] not in (b"\r", b" ") and not head[:1].isdigit():
            return None
        m = _BAR.search(head)
        if m is None or b"{" in head[: m.start()]:
            return None
        count, total = int(m.group(1)), int(m.group(2))
        return (count, total, m.group(3).decode()) if count <= total else None

    def _json_field(self, line: bytes, rank: Optional[int], line_no: int) -> None:
        """trainer_state.json: one field per line, sorted keys, `"step"` last in each entry."""
        m = _JSON_FIELD.match(line)
        if not m:
            return
        key, val = m.group(1), m.group(2)
        if key == b"epoch":
            self._json_obj = {}
            self._json_where = self._where(line_no, line)
        self._json_obj[key] = val
        if key == b"step":
            obj, self._json_obj = self._json_obj, {}
            step = int(float(val)) if val[:1] != b'"' else None
            where = self._json_where or self._where(line_no, line)
            where = Where(where.file, where.line, _clip(b", ".join(k + b": " + v for k, v in obj.items())))
            loss, grad = to_float(obj.get(b"loss")), to_float(obj.get(b"grad_norm"))
            if loss is not None or grad is not None:
                self.context.saw("hf_dict")
                self._emit_record(
                    Record(
                        where,
                        rank,
                        step,
                        loss,
                        to_float(obj.get(b"learning_rate")),
                        grad,
                        None,
                        None,
                        None,
                        to_float(obj.get(b"epoch")),
                        "train",
                        "json",
                    )
                )
            if b"eval_loss" in obj:
                self._emit_record(
                    Record(
                        where,
                        rank,
                        step,
                        to_float(obj[b"eval_loss"]),
                        None,
                        None,
                        None,
                        None,
                        None,
                        to_float(obj.get(b"epoch")),
                        "eval",
                        "json",
                    )
                )

    def _megatron(
        self, block: Block, start: int, end: int, line: bytes, low: bytes, rank: Optional[int], line_no: int
    ) -> tuple[Optional[str], int]:
        m = _ITER.search(low)
        if not m:
            if b"validation loss at iteration" in low:
                v = _MEG_VAL.search(low)
                if v:
                    self._emit_record(
                        Record(
                            self._where(line_no, line),
                            rank,
                            int(v.group(1)),
                            to_float(v.group(2)),
                            phase="eval",
                            family="megatron",
                        )
                    )
                    return "megatron", end
            self._generic(block, start, line, low, rank, line_no)
            return "generic", end
        if b"consumed samples" in low and b"nan iterations" not in low and len(low) < 4096:
            # Megatron-LM always ends with `number of nan iterations: N |`: this one was wrapped
            end = self._join_until(block, start, end, lambda t: b"nan iterations" in t.lower())
            line = block.data[start:end].replace(b"\n", b"")
            low = line.lower()
        step = int(m.group(1))
        loss_m = _MEG_LM.search(low) or _MEG_PLAIN.search(low)
        skipped = _MEG_SKIP.search(low)
        nan_iters = _MEG_NAN.search(low)
        skipped_n = int(skipped.group(1)) if skipped else None
        loss = to_float(loss_m.group(1)) if loss_m else None
        # Megatron prints a loss only when its interval average is > 0: a NaN average is left out,
        # and so is an interval whose every iteration was skipped (fp16 calibration).
        missing = (
            loss is None
            and (skipped_n == 0 or skipped_n is None)
            and low.count(b"loss") == low.count(b"loss scale") + low.count(b"loss_scale")
        )
        lr = _MEG_LR.search(low)
        gn = _MEG_GN.search(low)
        sc = _MEG_SCALE.search(low)
        self.context.saw("megatron")
        self._emit_record(
            Record(
                self._where(line_no, line),
                rank,
                step,
                loss,
                to_float(lr.group(1)) if lr else None,
                to_float(gn.group(1)) if gn else None,
                to_float(sc.group(1)) if sc else None,
                skipped_n,
                int(nan_iters.group(1)) if nan_iters else None,
                None,
                "train",
                "megatron",
                missing,
            )
        )
        return "megatron", end

    def _bar_record(self, line: bytes, low: bytes, rank: Optional[int], line_no: int) -> bool:
        loss = eval_loss = lr = grad = None
        step = None
        bar_loss = False
        for key, val in _POSTFIX.findall(low):
            if key in _MAIN_LOSS or key in (b"train_loss_epoch", b"loss_epoch"):
                if loss is None or key != b"loss":
                    loss = to_float(val)
                    bar_loss = key == b"loss"
            elif key.startswith(_EVAL_PREFIX) and key.endswith(b"loss"):
                eval_loss = to_float(val)
            elif key == b"lr" or key.startswith(b"lr-") or key == b"learning_rate":
                lr = to_float(val)
            elif key in (b"grad_norm", b"gnorm"):
                grad = to_float(val)
            elif key in (b"global_step", b"step") and b"e" not in val:  # 3.2e+4 is rounded: the bar counts better
                v = to_float(val)
                if v is not None and v == v and abs(v) < 1e15:
                    step = int(v)
        if loss is None and grad is None and eval_loss is None:
            # a GAN's bar names its losses G and D (`DR=713, DF=nan, G=nan, GP=2.16e+4`): the generator's
            # loss is the run's loss, the discriminator's when there is no G
            gan = {k: v for k, v in _POSTFIX.findall(low) if k in _GAN_KEYS}
            pick = next((gan[k] for k in _GAN_KEYS if k in gan), None)
            if pick is None:
                return False
            loss = to_float(pick)
            if any(to_float(v) != to_float(v) for v in gan.values()):
                loss = float("nan")
        bar = _BAR.search(line)
        epoch = None
        if bar:
            e = _BAR_EPOCH.search(low)
            count, total = int(bar.group(1)), int(bar.group(2))
            if e:
                epoch = float(e.group(1))
                self.context.saw("lightning")
            if step is None:
                step = count + (int(epoch) * total if epoch is not None else 0)
        where = self._where(line_no, line)
        if loss is not None or grad is not None:
            self._emit_record(
                Record(
                    where,
                    rank,
                    step,
                    loss,
                    lr,
                    grad,
                    None,
                    None,
                    None,
                    epoch,
                    "train",
                    "bar",
                    False,
                    False,
                    bar_loss,
                    bar.group(3).decode() if bar else None,
                )
            )
        if eval_loss is not None:
            self._emit_record(Record(where, rank, step, eval_loss, None, None, None, None, None, epoch, "eval", "bar"))
        return True

    def _generic(self, block: Block, start: int, line: bytes, low: bytes, rank: Optional[int], line_no: int) -> None:
        if low.lstrip()[:10] == b"train_loss":
            m = _SUMMARY_LOSS.match(low.lstrip())
            if m:  # HF's `***** train metrics *****` block: `  train_loss  =  0.0`, the run's average
                self._events.append(
                    Signal(
                        "train_summary", self._where(line_no, line), rank, None, {"train_loss": to_float(m.group(1))}
                    )
                )
                return
        glued = _KERAS_GLUE.search(low)
        if glued:  # Keras: `- loss: nanEpoch 1/1000`, the next header glued to the bar
            line, low = line[: glued.start()], low[: glued.start()]
        cells = low.split()
        if (
            3 <= len(cells) <= 24
            and sum(c.endswith(b"loss") for c in cells) >= 2
            and not any(c[:1].isdigit() or c[:1] == b"." for c in cells)
        ):
            self._table = cells  # a column header: `Epoch GPU_mem box_loss cls_loss dfl_loss Instances Size`
            return
        if b"skip" in low and (b"nan" in low or b"finite" in low) and b"loss" in low:
            # "Skip the batch due to the loss is NaN": a guard that dropped a batch, not a step record
            self._events.append(Signal("nan_guard", self._where(line_no, line), rank, self._step_for(rank), {}))
            return
        loss, eval_loss, scale, aux_bad = self._generic_losses(low)
        if loss is not None and _EVAL_LEAD.match(low):  # an evaluation bar or line: its loss is the eval loss
            eval_loss, loss = (eval_loss if eval_loss is not None else loss), None
        gn = _GEN_GN.search(low)
        grad = to_float(gn.group(1)) if gn else None
        if loss is None and eval_loss is None and grad is None:
            if scale is not None:
                self._events.append(
                    Signal("loss_scale", self._where(line_no, line), rank, self._step_for(rank), {"scale": scale})
                )
            return
        step, epoch = self._generic_step(low)
        if epoch == 0:
            self._epoch0 = True
        if step is None:
            bar = _BAR.search(line)
            batch = _GEN_BATCH.search(low) if b"batch" in low else None
            if bar:
                step = int(bar.group(1))
            elif batch and (not epoch or batch.group(2)):
                # a per-epoch batch counter: the global step is epochs before this one times their length
                i, n = int(batch.group(1)), int(batch.group(2) or 0)
                done = int(epoch) - (0 if self._epoch0 else 1) if epoch else 0
                step = max(done, 0) * n + i
            elif epoch is not None and epoch == int(epoch) and b"epoch" in low:
                step = int(epoch)
        lr_m = _GEN_LR.search(low)
        where = self._where(line_no, line)
        family = "generic"
        if b"num_updates" in low:  # fairseq: its loss_scale goes below 1 by design (floor 1e-4)
            family = "fairseq"
            self.context.saw("fairseq")
        rl = b"critic/" in low or b"pg_loss" in low or b"reward" in low  # verl/OpenRLHF PPO, GRPO
        if rl:
            self.context.saw("verl" if b"critic/" in low else "generic")
        if loss is not None or grad is not None:
            self._emit_record(
                Record(
                    where,
                    rank,
                    step,
                    loss,
                    to_float(lr_m.group(1)) if lr_m else None,
                    grad,
                    scale,
                    None,
                    None,
                    epoch,
                    "train",
                    family,
                    False,
                    rl,
                )
            )
        if eval_loss is not None:
            self._emit_record(
                Record(
                    where,
                    rank,
                    step if step is not None else self._step_for(rank),
                    eval_loss,
                    None,
                    None,
                    None,
                    None,
                    None,
                    epoch,
                    "eval",
                    "generic",
                )
            )

    @staticmethod
    def _generic_losses(low: bytes) -> tuple[Optional[float], Optional[float], Optional[float], bool]:
        """The main and eval loss on a line, next to whatever key spells them."""
        loss = eval_loss = scale = None
        aux_bad = False
        pos = 0
        n = 0
        while n < 64:
            i = low.find(b"loss", pos)
            if i < 0:
                break
            n += 1
            pos = i + 4
            # the key: the run of key characters around "loss", plus one known word before it
            a = i
            while a > 0 and low[a - 1] in _KEYCHARS and i - a < 60:
                a -= 1
            b = i + 4
            while b < len(low) and low[b] in _KEYCHARS and b - i < 40:
                b += 1
            key = low[a:b].strip(b"._-/")
            if a >= 2 and low[a - 1 : a] == b" ":
                w0 = a - 1
                while w0 > 0 and low[w0 - 1] in _KEYCHARS and a - w0 < 20:
                    w0 -= 1
                word = low[w0 : a - 1]
                if word in _PREFIX_WORDS:
                    key = word + b" " + key
            if key.endswith(b"scale") or key.endswith(b"scaler"):
                if key.startswith((b"lg_", b"log")):
                    continue  # a log2 of the scale (guided-diffusion's `lg_loss_scale`), not the scale
                m = _AFTER_LOSS.match(low, b)
                if m and scale is None:
                    scale = to_float(m.group(1))
                continue
            m = _AFTER_LOSS.match(low, b)
            if not m:
                w = _LOSS_WORD.match(low, b)  # `Loss content: nan`, `Loss G: 1.2`: a named part of the loss
                if w and w.group(1) not in (b"scale", b"scaler"):
                    v = to_float(w.group(2))
                    if v is not None and v != v and not key.startswith(_EVAL_PREFIX):
                        aux_bad = True
                    pos = w.end()
                continue
            value = to_float(m.group(1))
            comp = key.rsplit(b"/", 1)[-1].rsplit(b".", 1)[-1]  # `train/loss`, DLLogger's `train.loss`
            if comp in _MAIN_LOSS or key in _MAIN_LOSS:
                if key.startswith(_EVAL_PREFIX):
                    if eval_loss is None:
                        eval_loss = value
                elif loss is None or (value is not None and value != value):
                    loss = value
            elif key.startswith(_EVAL_PREFIX) and comp.endswith(b"loss"):
                if eval_loss is None:
                    eval_loss = value
            elif value is not None and value != value and not key.startswith(_EVAL_PREFIX):
                aux_bad = True
            pos = m.end()
        if loss is None and b"total" in low:  # `[Losses: x 0.1, ..., cls 0.2, total 1.3]`
            t = _TOTAL.search(low)
            if t:
                loss = to_float(t.group(1))
        if loss is None and aux_bad:  # only parts of the loss are printed, and one is NaN: so is their sum
            loss = float("nan")
        return loss, eval_loss, scale, aux_bad

    @staticmethod
    def _generic_step(low: bytes) -> tuple[Optional[int], Optional[float]]:
        """The step on a free-form line; an explicit global step or `step` wins over counters."""
        epoch = None
        e = _GEN_EPOCH.search(low)
        if e:
            epoch = float(e.group(1))
        for rx in _GEN_STEP[:2]:
            m = rx.search(low)
            if m:
                v = to_float(m.group(1))
                if v is not None and v == v and 0 <= v < 1e15:
                    return int(v), epoch
        m = _MM_STEP.search(low)
        if m:
            if m.group(1) == b"iter":
                return int(m.group(2)), epoch
            if m.group(4) is not None:  # Epoch [e][i/n]
                ep, i, n = int(m.group(2)), int(m.group(4)), int(m.group(5))
                return (max(ep - 1, 0) * n + i), float(ep)
        if b"|" in low:
            t = _TT_BAR.search(low)
            if t:
                return int(t.group(2)), float(t.group(1))
        if b"train: [" in low:
            sm = _SIMMIM_STEP.search(low)
            if sm:
                return int(sm.group(1)) * int(sm.group(3)) + int(sm.group(2)), float(sm.group(1))
        m = _GEN_STEP[2].search(low)
        if m:
            return int(m.group(1)), epoch
        return None, epoch

    # -- signals -----------------------------------------------------------------------------
    def _signals(
        self, block: Block, start: int, end: int, line: bytes, low: bytes, rank: Optional[int], line_no: int
    ) -> int:
        found = signals.classify(line, low)
        if b"cuda error: " in low and not any(k in ("cuda_error", "device_assert", "oom") for k, _ in found):
            # `RuntimeError: CUDA error: an illeg` / `al memory access was encountered`: a terminal wrapped the
            # message mid-word; read it with the next line glued back on
            nxt = block.next_line(end)
            if nxt is not None and len(low) - low.rfind(b"cuda error: ") < 80:
                glued = line + block.data[nxt[0] : nxt[1]]
                more = [
                    f for f in signals.classify(glued, glued.lower()) if f[0] in ("cuda_error", "device_assert", "oom")
                ]
                if more:
                    found = [f for f in found if f[0] not in ("exception", "traceback")] + more
        if not found:
            return end
        step = self._step_for(rank)
        bar = _BAR.search(line) if b" [" in line else None
        if bar is not None:
            step = int(bar.group(1))
        else:
            before = self._bar_before(block, start)
            if before is not None and (step is None or before[0] >= step):
                step = before[0]
        for kind, data in found:
            text = line
            at = line_no
            if kind == "cuda_terminate":
                # `terminate called after throwing an instance of 'c10::CUDAError'`: its `what():` line says
                # which error (an assert, an OOM) and is read on its own; without one, the CUDA error is the one
                # a destructor's `CUDA warning: ...` printed just before (the onset), else this line
                nxt = block.next_line(end)
                if nxt is not None and block.low[nxt[0] : nxt[1]].lstrip().startswith(b"what():"):
                    continue
                kind, data = "cuda_error", {"what": "c10::CUDAError"}
                warn = self._line_back(block, start, signals._CUDA_WARNING, 8)
                if warn is not None and signals._CUDA_ERROR.search(block.low[warn[0] : warn[1]]):
                    back_text = block.data[warn[0] : warn[1]]
                    at, text = line_no - block.data.count(b"\n", warn[0], start), back_text
            elif kind == "oom" and signals._TRACEBACK.search(line):
                # IPython's `OutOfMemoryError    Traceback (most recent call last)` header: the OOM's own message
                # (with its numbers) ends the traceback; it is the onset when the log has it
                ahead = block.low[end : min(block.end, end + 65536)]
                if b"outofmemoryerror: " in ahead or b"cuda out of memory" in ahead:
                    continue
            if kind == "oom":
                if needs_more_text(line):
                    end = self._join_until(block, start, end, lambda t: not needs_more_text(t.replace(b"\n", b" ")))
                    text = block.data[start:end].replace(b"\n", b" ")
                nums = parse_oom(text)
                data = {**data, "numbers": nums, "split": split_kind(nums)}
            elif kind == "device_assert" and data.get("assertion") is None:
                back = block.data.rfind(b"Assertion `", max(0, start - 65536), start)
                if back >= 0:
                    a_end = block.data.find(b"\n", back, start)
                    t = signals._ASSERT_TEXT.search(block.data[back : a_end if a_end > 0 else start])
                    if t:
                        data["assertion"] = t.group(1).decode("utf-8", "replace")
                        data["assert_line"] = block.data[back : a_end if a_end > 0 else start][:300].decode(
                            "utf-8", "replace"
                        )
            elif kind == "anomaly_forward":
                frame = self._innermost_frame(block, end)
                if frame:
                    data["frame"] = frame
            sig_rank = rank
            if sig_rank is None and isinstance(data.get("rank"), int):
                sig_rank = data["rank"]
            self._events.append(Signal(kind, self._where(at, text), sig_rank, step, data))
        return end

    @staticmethod
    def _line_back(block: Block, start: int, rx: re.Pattern, lines: int) -> Optional[tuple[int, int]]:
        """The nearest of the `lines` physical lines before `start` whose lowercased text matches rx."""
        stop = start - 1
        for _ in range(lines):
            if stop <= 0:
                return None
            a = block.data.rfind(b"\n", 0, stop) + 1
            if rx.search(block.low[a:stop]):
                return a, stop
            stop = a - 1
        return None

    @staticmethod
    def _innermost_frame(block: Block, end: int) -> Optional[str]:
        """The last `File "...", line N` of the forward traceback printed after an anomaly warning."""
        last = None
        nxt = block.next_line(end)
        for _ in range(400):
            if nxt is None:
                break
            a, b = nxt
            text = block.data[a:b]
            if not text[:1].isspace() and not text.startswith(b"File"):
                break
            if text.lstrip().startswith(b'File "'):
                code = block.next_line(b)
                last = text.strip()
                if code is not None and block.data[code[0] : code[1]].lstrip()[:4] != b"File":
                    last += b": " + block.data[code[0] : code[1]].strip()[:200]
            nxt = block.next_line(b)
        return last.decode("utf-8", "replace")[:400] if last else None

    # -- context -----------------------------------------------------------------------------
    def _context(self, line: bytes, low: bytes, line_no: int) -> None:
        ctx = self.context
        if ctx.precision is None or ctx.precision == "fp32":
            for m in _CTX_PREC.finditer(low):
                g = m.groups()
                if g[0] and g[1] in (b"true", b"1"):
                    ctx.precision = g[0].decode()
                elif g[2]:
                    ctx.precision = g[2].decode()
                elif g[4] and g[5] not in (b"false", b"0"):
                    ctx.precision = g[4].decode()
                elif g[6]:
                    ctx.precision = "bf16" if g[6].startswith(b"bf16") else "fp16"
                elif g[7]:
                    ctx.precision = "bf16" if g[7] == b"bfloat16" else "fp16"
        if ctx.model is None and b"model" in low:
            for rx in _CTX_MODEL:
                m = rx.search(line)
                if m:
                    name = m.group(1) + (b"/" + m.group(2) if m.lastindex and m.lastindex >= 2 else b"")
                    name = name.rstrip(b"',\".")
                    if name.lower() not in _BAD_MODEL and not name.startswith(b"-"):
                        ctx.model = name.decode("utf-8", "replace")
                        ctx.model_where = self._where(line_no, line)
                        break
        for attr, rx, convert in _CTX_NUMBERS:
            if getattr(ctx, attr) is None:
                m = rx.search(low)
                if m:
                    setattr(ctx, attr, convert(m.group(1)))
        if ctx.warmup is None:
            m = _CTX_WARMUP.search(low)
            if m:
                ctx.warmup = f"{m.group(1).decode()} {m.group(2).decode()}"
        if ctx.lr is None and (b"learning_rate" in low or b"lr" in low):
            m = _CTX_LR.search(low)
            v = to_float(m.group(1)) if m else None
            if v is not None and 0 < v < 1:
                ctx.lr = v
        if ctx.method is None or ctx.method == "lora":
            m = _CTX_METHOD.search(low)
            if m:
                ctx.method = "qlora" if m.group(2) else m.group(1).decode()
        if b" = " in low and (b"num epochs" in low or b"total optimization steps" in low):
            m = _CTX_HF_RUN.search(low)
            if m:
                setattr(
                    ctx, "epochs" if m.group(1) == b"num epochs" else "total_steps", int(m.group(2).replace(b",", b""))
                )
        if ctx.zero_stage is None and (b"zero" in low or b"stage" in low):
            m = _CTX_ZERO.search(low)
            if m:
                ctx.zero_stage = int(next(g for g in m.groups() if g is not None))
