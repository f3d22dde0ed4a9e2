"""KTO's KL pass (processor/feedback.py): each record is tokenized a second time with the answer of
another record of its batch of 1000 (0.9.3+: the one before it, the first taking the last; up to
0.9.2: the batch reversed). A partner the converter left without answers (a dropped record) is
`IndexError: list index out of range`, and the partner's answer is counted against this record's
media by a multimodal plugin: both stop the whole run. Pure; fed record by record, memory bounded by
the batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from mlops_cli.data.emulate import PLACEHOLDERS, Outcome
from mlops_cli.data.versions import parse_version

BATCH = 1000  # datasets' map batch size (LLaMA-Factory's preprocessing_batch_size)


@dataclass
class Member:
    number: int
    line: Optional[int]
    path: str
    outcome: Outcome


class KlPairs:
    def __init__(self, version: str, batched_converter: bool):
        self.shifted = parse_version(version) >= (0, 9, 3)
        self.batched_converter = batched_converter  # <=0.8.3: records the converter drops are not in the batch
        self.batch: list[Member] = []

    def add(self, number: int, line: Optional[int], path: str, outcome: Outcome) -> list[tuple[Member, str]]:
        if self.batched_converter and outcome.verdict == "drop" and not outcome.response and not outcome.prompt:
            return []
        self.batch.append(Member(number, line, path, outcome))
        return self._flush() if len(self.batch) >= BATCH else []

    def finish(self) -> list[tuple[Member, str]]:
        return self._flush()

    def _flush(self) -> list[tuple[Member, str]]:
        batch, self.batch = self.batch, []
        n = len(batch)
        crashes = []
        for i, member in enumerate(batch):
            out = member.outcome
            # a record that crashes on its own messages still gets here first (the pairing is read
            # before its messages are processed), one that crashed while converting never does
            if out.verdict == "drop" or (out.verdict == "crash" and out.crash_stage != "tokenization"):
                continue
            partner = batch[i - 1] if self.shifted else batch[n - 1 - i]
            why = _kl_crash(out, partner.outcome, partner.number, own_first=out.verdict == "crash")
            if why:
                crashes.append((member, why))
        return crashes


def _kl_crash(out: Outcome, partner: Outcome, partner_number: int, own_first: bool) -> Optional[str]:
    response = partner.response
    if not response or (not response[0][1] and len(response) < 2):
        return (
            f"IndexError: list index out of range (KTO's KL pass pairs this record with the answers of record "
            f"{partner_number}, which has {'none' if not response else 'one'}: a record dropped in a KTO batch "
            "stops the run)"
        )
    if own_first:  # the record's own messages fail before the borrowed answer is counted
        return None
    answer: Any = response[0][1] if response[0][1] else response[1][1]
    if out.media is None or not isinstance(answer, str):
        return None
    for key, tag in PLACEHOLDERS.items():
        if key not in out.media:
            continue
        count = sum(c.count(tag) for _r, c in out.prompt if isinstance(c, str)) + answer.count(tag)
        if count != out.media[key]:
            return (
                f"ValueError: The number of {key} does not match the number of {tag} tokens (KTO's KL pass "
                f"puts record {partner_number}'s answer after this prompt: {count} {tag}, {out.media[key]} "
                f"{key})"
            )
    return None
