"""Sampling never hides a failure: after the first MiB, a 4 MiB block of ordinary step records is
sampled, and a block with anything unusual in it must be read in full. Each case puts a real
failing log (a fixture, verbatim) between ~7 MiB and 2 MiB of healthy records in its format and compares the
error findings with sampling on and off: the same class, step, line, cause and rank, and sampling
did run.

The healthy records are generated padding in the fixture's format (step numbers restart when the
fixture begins and jump after it; both runs see the same bytes)."""

from __future__ import annotations

import pytest
from tests.train.conftest import FIXTURES, analyse_bytes

from mlops_cli.train import scan

PAD = 7 << 20


def megatron(n: int) -> str:
    return (
        f" iteration {n:8d}/ 99999999 | consumed samples: {n * 64:12d} | elapsed time per iteration (ms): 7600.0 |"
        f" learning rate: 6.713E-06 | global batch size:    64 | lm loss: {0.7 + (n % 7) / 100:.6E} | loss scale: 1.0 |"
        f" grad norm: {0.7 + (n % 5) / 50:.3f} | number of skipped iterations:   0 | number of nan iterations:   0 |\n"
    )


def hf(n: int) -> str:
    bar = f"\r  1%|          | {n}/9999999 [01:00<99:00:00,  1.20s/it]"
    if n % 10:
        return bar
    return (
        bar
        + f"{{'loss': {0.3 + (n % 7) / 100:.4f}, 'grad_norm': {1.0 + (n % 3) / 10}, 'learning_rate': 1e-05, 'epoch': 0.5}}\n"
    )


def deepspeed(n: int) -> str:
    out = f"\r  1%|▉         | {n}/99999999 [01:00<99:00:00,  3.52s/it]"
    if n % 10 == 0:
        out += (
            f"\n[2024-01-01 10:00:00,066] [INFO] [logging.py:96:log_dist] [Rank 0] step={n}, skipped=7, "
            f"lr=[2e-05], mom=[(0.9, 0.999)]\n{{'loss': {1.5 + (n % 7) / 100:.4f}, 'learning_rate': 2e-05, 'epoch': 0.1}}\n"
        )
    return out


def healthy(pad, size: int, first: int = 1) -> bytes:
    parts, n = [], first
    while size > 0:
        line = pad(n).encode()
        parts.append(line)
        size -= len(line)
        n += 1
    return b"".join(parts)


def padded(pad, failing: bytes) -> bytes:
    """Healthy records, the failing log, then more healthy records (so the failure sits inside a
    block, not at the end, where the last record is always read)."""
    return healthy(pad, PAD) + b"\n" + failing + b"\n" + healthy(pad, 2 << 20, first=10**6)


def error_keys(report):
    """The error findings; warnings (a plateau, a spike) are measured on the records read, and the
    docs say a sampled block can hide a one-record spike."""
    return [(f.cls, f.step, f.line, f.cause, f.rank) for f in report.errors]


CASES = {
    "megatron, lm loss dropped and grad norm nan": (megatron, "megatron_llm33_falcon_lm_loss_missing.log", None),
    # only the missing `lm loss` tells (counters 0, grad norm finite): the block's loss count must catch it
    "megatron, lm loss dropped and nothing else": (
        megatron,
        "megatron_llm33_falcon_lm_loss_missing.log",
        lambda b: b.replace(b"grad norm: nan", b"grad norm: 0.752"),
    ),
    "megatron-deepspeed, lm loss dropped": (megatron, "megatron_deepspeed_pr434_missing_loss.log", None),
    "hf, loss 0.0 and grad norm nan": (hf, "hf_modernbert233_loss0_gradnan.log", None),
    "deepspeed, overflows down to the minimum scale": (
        deepspeed,
        "ds_chinese_llama_alpaca534_scale_to_minimum.log",
        None,
    ),
    "fairseq, minimum loss scale reached": (hf, "fairseq512_scale_to_minimum.log", None),
}


@pytest.mark.parametrize("case", CASES)
def test_a_failure_deep_in_a_long_log_is_found_as_if_every_record_were_read(case, monkeypatch):
    pad, name, change = CASES[case]
    failing = (FIXTURES / name).read_bytes()
    data = padded(pad, change(failing) if change else failing)
    sampled = analyse_bytes(data, name)
    monkeypatch.setattr(scan, "DENSE", 10**9)  # never sample: every record is read
    full = analyse_bytes(data, name)
    assert full.errors, "the failure must be found at all for the comparison to mean anything"
    assert sampled.records < full.records / 2, "sampling did not run: the case tests nothing"
    assert error_keys(sampled) == error_keys(full)
