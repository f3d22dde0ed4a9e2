"""Score `mlops data check` on the held-out cases against LLaMA-Factory's recorded ground truth.

    python benchmarks/data_heldout.py [--misses] [--markdown] [--set heldout3|heldout4]

For every recorded run (case x release x stage/template/entry; tests/fixtures/data/heldout/
groundtruth.json, recorded by tests/data/lf_pipeline.py from the released wheels) it runs
`check` and counts: file-level verdicts that agree with the real `datasets`, records that get the
same verdict as the real pipeline (keep / drop / crash, up to the first crash), runs that agree
entirely. tests/data/heldout.py says exactly how.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.data.heldout import HELDOUT, HELDOUT3, HELDOUT4, all_runs, check_run, prepare, score  # noqa: E402

SETS = {"heldout": HELDOUT, "heldout3": HELDOUT3, "heldout4": HELDOUT4}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--misses", action="store_true", help="list every run that does not agree")
    ap.add_argument("--markdown", action="store_true", help="print the summary as a markdown table")
    ap.add_argument("--set", choices=sorted(SETS), default="heldout", help="which held-out folder to score")
    args = ap.parse_args()
    root = SETS[args.set]
    tally: dict = defaultdict(
        lambda: [0, 0, 0, 0, 0, 0, 0]
    )  # runs, file ok, records, agree, runs ok, outcomes judged, outcomes ok
    misses = []
    named = [0, 0]  # runs whose death check places right and names a crash: same exception as the real run
    with tempfile.TemporaryDirectory() as tmp:
        for run, version, key, gt in all_runs(root):
            folder = prepare(run, Path(tmp), root)
            try:
                result = check_run(run, version, folder)
                s = score(gt, result)
            except Exception as exc:  # noqa: BLE001 - an exit 2 or a crash of check is a miss too
                misses.append((key, version, f"check raised {type(exc).__name__}: {exc}"))
                for group in (run["kind"], "all"):
                    tally[group][0] += 1
                continue
            for group in (run["kind"], "all"):
                t = tally[group]
                t[0] += 1
                t[1] += s.file_ok
                t[2] += s.records
                t[3] += s.agree
                t[4] += s.run_ok
                t[5] += s.outcome_ok is not None
                t[6] += bool(s.outcome_ok)
            if s.outcome_ok and result.first_crash:
                named[1] += 1
                same = gt["run"].split(":")[0] == result.first_crash["message"].split(":")[0]
                named[0] += same
                if not same:
                    misses.append(
                        (
                            key,
                            version,
                            f"exception: theirs {gt['run'][:60]!r}, ours {result.first_crash['message'][:60]!r}",
                        )
                    )
            if s.outcome_ok is False:
                misses.append(
                    (
                        key,
                        version,
                        f"run outcome: theirs {gt['run'][:70]!r}, ours {(result.first_crash or {}).get('record')}",
                    )
                )
            if not s.run_ok:
                misses.append((key, version, ("file " if not s.file_ok else "") + str(s.misses)))
    rows = [("cases", "runs", "file-level agree", "records agree", "runs agree entirely", "run dies where said")]
    for group in ("real", "adversarial", "fuzz", "all"):
        runs, file_ok, records, agree, runs_ok, judged, outcome_ok = tally[group]
        rows.append(
            (group, str(runs), f"{file_ok}/{runs}", f"{agree}/{records}", f"{runs_ok}/{runs}", f"{outcome_ok}/{judged}")
        )
    if args.markdown:
        print("| " + " | ".join(rows[0]) + " |")
        print("|" + "---|" * len(rows[0]))
        for row in rows[1:]:
            print("| " + " | ".join(row) + " |")
    else:
        for row in rows:
            print("  ".join(f"{c:>20}" for c in row))
    print(f"exception named as the real run's (runs that die where check says): {named[0]}/{named[1]}")
    if args.misses:
        for key, version, what in misses:
            print(f"MISS {key} @{version}: {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
