"""Helpers for driver-check tests: the fixtures folder and a host for --fix.

``FixHost`` is the machine seam for --fix tests: it replays a recorded snapshot for every
probe, records every other command (the fix steps) instead of running it, can fail a chosen
step, and switches to an "after" snapshot once the fix has run, so the re-diagnosis sees the
repaired machine. It stands in for the machine, not for any of our own logic.
"""

from __future__ import annotations

import json
from pathlib import Path

from mlops_cli.host import CommandResult, Snapshot, SnapshotHost

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "driver"


def load_doc(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def snapshot(name: str) -> Snapshot:
    return Snapshot.from_json(load_doc(name))


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
