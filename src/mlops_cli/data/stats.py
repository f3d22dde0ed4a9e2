"""`mlops data stats`: counts, turns, lengths in characters and (with a tokenizer.json) tokens."""

from __future__ import annotations

import os
from typing import Any, Optional

from mlops_cli.data.convert import Unconvertible, to_neutral
from mlops_cli.data.report import StatsResult
from mlops_cli.data.source import missing_extra, open_dataset, readable_records
from mlops_cli.data.synthesize import detect_format
from mlops_cli.errors import UsageError


def load_tokenizer(path: str):
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise missing_extra("token counts need the `tokenizers` library") from None
    file = os.path.join(path, "tokenizer.json") if os.path.isdir(path) else path
    if not os.path.isfile(file):
        raise UsageError(f"no tokenizer.json at {path}", hint="pass a tokenizer.json or the model folder holding it")
    try:
        return Tokenizer.from_file(file)
    except Exception as exc:  # noqa: BLE001 - the library raises plain Exception for a bad file
        raise UsageError(f"{file} is not a tokenizer.json the tokenizers library can read: {exc}") from None


def cut_side(source: int, target: int, cutoff: int) -> str:
    """Which side LLaMA-Factory's infer_seqlen shortens for one prompt/answer pair."""
    if source + target <= cutoff:
        return "none"
    if target * 2 < cutoff:
        return "prompt"
    if source * 2 < cutoff:
        return "answer"
    return "both"


def _summary(values: list[int]) -> dict[str, Any]:
    if not values:
        return {"min": 0, "median": 0, "p95": 0, "max": 0, "total": 0}
    s = sorted(values)
    return {
        "min": s[0],
        "median": s[len(s) // 2],
        "p95": s[min(len(s) - 1, int(len(s) * 0.95))],
        "max": s[-1],
        "total": sum(s),
    }


def _histogram(values: list[int], bins: int = 10) -> list[dict[str, Any]]:
    if not values:
        return []
    top = max(values) + 1
    width = max(1, -(-top // bins))
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, v // width)] += 1
    return [{"low": i * width, "high": (i + 1) * width - 1, "count": c} for i, c in enumerate(counts)]


def run_stats(path: str, *, tokenizer: Optional[str] = None, cutoff_len: int = 2048, fmt: str = "auto") -> StatsResult:
    tok = load_tokenizer(tokenizer) if tokenizer else None
    turns: list[int] = []
    chars: list[int] = []
    tokens: list[int] = []
    sides = {"prompt": 0, "answer": 0, "both": 0}
    over = 0
    src_fmt: Optional[str] = None
    with open_dataset(path) as opened:
        for n, event in enumerate(readable_records(opened), 1):
            src_fmt = src_fmt or (detect_format(event.value) if fmt == "auto" else fmt)
            try:
                shape = to_neutral(event.value, src_fmt)
                msgs = [c if isinstance(c, str) else "" for _r, c in shape["turns"]]
                system = shape["system"] if isinstance(shape["system"], str) else ""
            except Unconvertible:
                msgs, system = [], ""
            turns.append(len(msgs))
            chars.append(len(system) + sum(len(m) for m in msgs))
            if tok is not None:
                prompt_text = system + "".join(msgs[:-1]) if len(msgs) > 1 else system + "".join(msgs)
                answer = msgs[-1] if len(msgs) > 1 else ""
                source = len(tok.encode(prompt_text, add_special_tokens=False).ids)
                target = len(tok.encode(answer, add_special_tokens=False).ids) + 1 if answer else 0
                tokens.append(source + target)
                side = cut_side(source, target, cutoff_len)
                if side != "none":
                    over += 1
                    sides[side] += 1
    lengths = tokens if tok is not None else chars
    return StatsResult(
        path=path,
        records=len(turns),
        turns=_summary(turns),
        chars=_summary(chars),
        tokens=_summary(tokens) if tok is not None else None,
        cutoff_len=cutoff_len,
        over_cutoff=over if tok is not None else None,
        cut_side=sides,
        histogram=_histogram(lengths),
        unit="tokens" if tok is not None else "characters",
    )
