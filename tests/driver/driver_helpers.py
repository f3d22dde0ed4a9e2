"""Helpers for driver-check tests: the fixtures folder and a host for --fix.

``FixHost`` is the machine seam for --fix tests: it replays a recorded snapshot for every
probe, records every other command (the fix steps) instead of running it, can fail a chosen
step, and switches to an "after" snapshot once the fix has run, so the re-diagnosis sees the
repaired machine. It stands in for the machine, not for any of our own logic.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from mlops_cli.host import CommandResult, Snapshot, SnapshotHost

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "driver"


def load_doc(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def snapshot(name: str) -> Snapshot:
    return Snapshot.from_json(load_doc(name))


# --- the held-out rule tests: a snapshot document diagnosed and planned, and changed copies ---


def diagnosed(d: dict):
    """(facts, diagnosis) of a snapshot document."""
    from mlops_cli.driver.assemble import read_facts
    from mlops_cli.driver.diagnose import diagnose
    from mlops_cli.driver.probe import collect

    facts = read_facts(collect(SnapshotHost(Snapshot.from_json(d))))
    return facts, diagnose(facts)


def finding_ids(d: dict) -> list[str]:
    return [f.id for f in diagnosed(d)[1].findings]


def plan_steps(d: dict) -> list[tuple[str, ...]]:
    from mlops_cli.driver.apply import build_plan

    return [tuple(p.step.argv) for p in build_plan(diagnosed(d)[1].findings).steps]


def changed(d: dict, fn) -> dict:
    """A deep copy of d, changed by fn."""
    d = copy.deepcopy(d)
    fn(d)
    return d


class FixHost:
    def __init__(
        self,
        before: Snapshot,
        after: Snapshot | None = None,
        fail_on: tuple[str, ...] | None = None,
        fail_rc: int = 100,
    ):
        self._before = SnapshotHost(before)
        self._after = SnapshotHost(after) if after else None
        self.fail_on = fail_on
        self.fail_rc = fail_rc
        self.ran: list[list[str]] = []

    @property
    def _current(self) -> SnapshotHost:
        return self._after if (self._after and self.ran) else self._before

    def run(self, argv, timeout, key=None):
        if key is not None:  # a probe: replay
            return self._current.run(argv, timeout, key)
        self.ran.append(list(argv))
        cmd = list(argv[2:]) if list(argv[:2]) == ["sudo", "-n"] else list(argv)
        if self.fail_on and tuple(cmd[: len(self.fail_on)]) == self.fail_on:
            return CommandResult(self.fail_rc, "", "E: Unable to locate package\n")
        return CommandResult(0, "ok\n", "")

    def read(self, path, tail_lines=None):
        return self._current.read(path, tail_lines)

    def listdir(self, path):
        return self._current.listdir(path)

    def exists(self, path):
        return self._current.exists(path)
