"""Score `mlops driver-check` on the real-world corpus (tests/fixtures/driver/real/*.json).

Each fixture is a snapshot rebuilt from one public thread; its ``_source.expect`` block holds the
outcome the thread concluded. A case is RIGHT when the diagnosis has the expected status, its
first finding is the expected one (or one of ``first_any``), every expected id is present and no
``absent`` id is; it is HARMFUL when ``--fix`` would run an automated step the case forbids
(any step where ``no_steps``/``no_host_driver_steps``/``no_kernel_steps`` is set, a step whose
program is in ``no_steps_kinds``, a driver reinstall where ``no_driver_reinstall`` is set, or one
of ``no_step_argv``). Usage:

    python benchmarks/driver_corpus.py [--write] [--verbose]

``--write`` replaces the "driver-check real-world corpus" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import datetime, timezone
from pathlib import Path

from mlops_cli.driver import gate
from mlops_cli.driver.apply import build_plan
from mlops_cli.driver.check import check
from mlops_cli.host import Snapshot, SnapshotHost

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "fixtures" / "driver" / "real"
DOCS = ROOT / "docs" / "benchmarks.md"

DRIVER_REINSTALL = re.compile(r"^(nvidia-(driver|dkms|headless|utils|kernel)|linux-modules-nvidia|cuda-drivers|nvidia-open)")


def score_case(doc: dict) -> tuple[bool, list[str], list[str], dict]:
    """(right, problems, harmful steps, summary) for one fixture document."""
    expect = doc["_source"]["expect"]
    diagnosis = check(SnapshotHost(Snapshot.from_json(doc)))
    ids = [f.id for f in diagnosis.findings]
    problems: list[str] = []
    if expect.get("status") and diagnosis.status != expect["status"]:
        problems.append(f"status {diagnosis.status} != {expect['status']}")
    allowed_first = expect.get("first_any") or ([expect["first"]] if expect.get("first") else [])
    if allowed_first and (not ids or ids[0] not in allowed_first):
        problems.append(f"first {ids[0] if ids else None} not in {allowed_first}")
    missing = [i for i in expect.get("ids", []) if i not in ids and i not in expect.get("first_any", [])]
    if missing:
        problems.append(f"missing {missing}")
    present = [i for i in expect.get("absent", []) if i in ids]
    if present:
        problems.append(f"should be absent {present}")
    plan = build_plan(diagnosis.findings)
    harmful = []
    for p in plan.steps:
        argv = list(p.step.argv)
        prog = gate.program(argv)
        why = None
        if expect.get("no_steps"):
            why = "no automated step allowed here"
        elif (expect.get("no_host_driver_steps") or expect.get("no_kernel_steps")) and prog in gate.KERNEL_LEVEL:
            why = "kernel-level step in a gated context"
        elif prog in expect.get("no_steps_kinds", []):
            why = f"{prog} is wrong for this case"
        elif expect.get("no_driver_reinstall") and any(DRIVER_REINSTALL.match(a) for a in argv[1:]):
            why = "reinstalls the GPU driver"
        elif argv in expect.get("no_step_argv", []):
            why = "repeats the step that failed"
        if why:
            harmful.append(f"{' '.join(argv)} ({why})")
    summary = {"status": diagnosis.status, "ids": ids, "steps": [list(p.step.argv) for p in plan.steps]}
    return not problems, problems, harmful, summary


def run(verbose: bool = False) -> tuple[int, int, int, list[str]]:
    right = harmful_cases = 0
    lines = []
    files = sorted(CORPUS.glob("*.json"))
    for path in files:
        doc = json.loads(path.read_text())
        ok, problems, harmful, summary = score_case(doc)
        right += ok
        harmful_cases += bool(harmful)
        mark = "RIGHT" if ok else "wrong"
        line = f"{mark:5} {'HARM ' if harmful else '     '}{path.stem}: {', '.join(summary['ids'][:4]) or '(none)'}"
        if problems:
            line += "  <- " + "; ".join(problems)
        if harmful:
            line += "  !! " + "; ".join(harmful)
        lines.append(line)
        if verbose:
            print(line)
    return right, len(files), harmful_cases, lines


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--label", default="current")
    ap.add_argument("--before", default="", help="a line on an earlier score to keep in the section")
    args = ap.parse_args()
    right, total, harmful, lines = run(verbose=args.verbose)
    print(f"{right}/{total} right, {harmful} case(s) with a harmful automated step")
    if args.write:
        text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
        section = (
            "## driver-check real-world corpus\n\n"
            f"`python benchmarks/driver_corpus.py --write` ({datetime.now(timezone.utc):%Y-%m-%d} UTC, {args.label}): "
            f"**{right} of {total} right, {harmful} with a harmful automated step** "
            "(cases: tests/fixtures/driver/real, one public thread each; see docs/driver-check.md).\n\n"
            + (f"{args.before}\n\n" if args.before else "")
            + "The rules were developed with these cases in view, so this is not a held-out score.\n\n"
            + "```\n" + "\n".join(lines) + "\n```\n"
        )
        pattern = re.compile(r"^## driver-check real-world corpus\n.*?(?=^## |\Z)", re.S | re.M)
        text = pattern.sub(section + "\n", text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
        DOCS.write_text(text)
    sys.exit(0)


if __name__ == "__main__":
    main()
