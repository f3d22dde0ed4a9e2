"""How often `mlops train-doctor` gets a folder of real logs right: class, onset, false alarms.

Reads a fixture folder's manifest.json (tests/fixtures/train and tests/fixtures/train/heldout have
the same format: file, source, verbatim, padding, expect) and runs the command's core on every log.
For a failing log (expect.exit 1) it checks the first error finding's class, its onset (step, or
line where the manifest gives a line instead) and, where the manifest names them, the cause, the
OOM split and the rank. For a log that must not be flagged (expect.exit 0) any error finding is a
false alarm. Warnings the manifest expects are counted apart.

The held-out folder's manifest says `"framework_flag": "auto"`: its logs are read as a user would
read them, without --framework. The fixture folder passes each entry's `framework`, as its test does.

Prints a table and the misses; with --write, replaces the "train-doctor accuracy" section of
docs/benchmarks.md with the scores of both folders (and keeps the rows of earlier runs given with
--label, so before/after stay side by side).

    python benchmarks/train_doctor_score.py [--folder tests/fixtures/train/heldout] [--json]
    python benchmarks/train_doctor_score.py --all --label "after" --write   # every folder
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
DOCS = ROOT / "docs" / "benchmarks.md"
FOLDERS = {
    "fixtures": ROOT / "tests" / "fixtures" / "train",
    "heldout": ROOT / "tests" / "fixtures" / "train" / "heldout",
    "heldout2": ROOT / "tests" / "fixtures" / "train" / "heldout2",
    "heldout3": ROOT / "tests" / "fixtures" / "train" / "heldout3",
    "heldout4": ROOT / "tests" / "fixtures" / "train" / "heldout4",
    "heldout5": ROOT / "tests" / "fixtures" / "train" / "heldout5",
    "heldout6": ROOT / "tests" / "fixtures" / "train" / "heldout6",
    "heldout7": ROOT / "tests" / "fixtures" / "train" / "heldout7",
}
SECTION = "## train-doctor accuracy"


def run_one(folder: Path, entry: dict, flag_mode: str):
    from mlops_cli.train.analyse import analyse

    framework = entry.get("framework", "auto") if flag_mode == "entry" else "auto"
    with open(folder / entry["file"], "rb") as fh:
        return analyse([(entry["file"], fh)], framework, entry.get("model"))


def judge(entry: dict, report) -> dict:
    """One log's verdict: which of class / onset / cause / split / rank / warning are right."""
    expect = entry["expect"]
    errors = report.errors
    got = {"exit": report.exit_code}
    if errors:
        f = errors[0]
        got.update(
            {
                "class": f.cls,
                "step": f.step,
                "line": f.line,
                "cause": f.cause,
                "rank": f.rank,
                "split": f.data.get("split") if isinstance(f.data, dict) else None,
            }
        )
    warnings = [f.cls for f in report.findings if f.severity == "warning"]
    v: dict = {"file": entry["file"], "healthy": expect["exit"] == 0, "got": got, "warnings": warnings}
    if expect["exit"] == 0:
        v["false_alarm"] = bool(errors)
        v["ok"] = not errors
    else:
        v["class_ok"] = bool(errors) and errors[0].cls == expect["class"]
        if "onset_step" in expect:
            v["onset_ok"] = v["class_ok"] and errors[0].step == expect["onset_step"]
        elif "onset_line" in expect:
            v["onset_ok"] = v["class_ok"] and errors[0].line == expect["onset_line"]
        for key, attr in (("cause", "cause"), ("split", "split"), ("rank", "rank")):
            if key in expect:
                v[f"{key}_ok"] = v["class_ok"] and got.get(attr) == expect[key]
        v["ok"] = v["class_ok"] and v.get("onset_ok", True)
    if "warning" in expect:
        v["warning_ok"] = expect["warning"] in warnings
    return v


def score(folder: Path) -> dict:
    doc = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    flag_mode = doc.get("framework_flag", "entry")
    verdicts = [judge(e, run_one(folder, e, flag_mode)) for e in doc["fixtures"]]
    failing = [v for v in verdicts if not v["healthy"]]
    healthy = [v for v in verdicts if v["healthy"]]

    def count(key: str) -> tuple[int, int]:
        rows = [v for v in failing if key in v]
        return sum(v[key] for v in rows), len(rows)

    return {
        "folder": str(folder.relative_to(ROOT)),
        "logs": len(verdicts),
        "failing": len(failing),
        "healthy": len(healthy),
        "class": count("class_ok"),
        "onset": count("onset_ok"),
        "class_and_onset": (sum(v["ok"] for v in failing), len(failing)),
        "cause": count("cause_ok"),
        "split": count("split_ok"),
        "rank": count("rank_ok"),
        "false_alarms": sum(v["false_alarm"] for v in healthy),
        "warnings": (
            sum(v["warning_ok"] for v in verdicts if "warning_ok" in v),
            sum("warning_ok" in v for v in verdicts),
        ),
        "misses": [
            v
            for v in verdicts
            if not v["ok"] or not all(v.get(k, True) for k in ("cause_ok", "split_ok", "rank_ok", "warning_ok"))
        ],
    }


def frac(pair: tuple[int, int]) -> str:
    return f"{pair[0]}/{pair[1]}" if pair[1] else "-"


def table_rows(label: str, results: list[dict]) -> list[str]:
    return [
        f"| {label} | {r['folder']} | {r['logs']} ({r['failing']} failing, {r['healthy']} healthy) | "
        f"{frac(r['class'])} | {frac(r['onset'])} | {frac(r['class_and_onset'])} | {r['false_alarms']} | "
        f"{frac(r['cause'])} | {frac(r['split'])} | {frac(r['rank'])} | {frac(r['warnings'])} |"
        for r in results
    ]


def print_result(r: dict) -> None:
    print(f"{r['folder']}: {r['logs']} logs ({r['failing']} failing, {r['healthy']} healthy)")
    print(
        f"  right class {frac(r['class'])}, right onset {frac(r['onset'])} (where the manifest gives one), "
        f"class and onset {frac(r['class_and_onset'])}, false alarms {r['false_alarms']}/{r['healthy']}"
    )
    print(
        f"  cause {frac(r['cause'])}, OOM split {frac(r['split'])}, rank {frac(r['rank'])}, "
        f"expected warnings {frac(r['warnings'])}"
    )
    for v in r["misses"]:
        bad = [
            k[:-3]
            for k in ("class_ok", "onset_ok", "cause_ok", "split_ok", "rank_ok", "warning_ok")
            if v.get(k) is False
        ]
        if v["healthy"] and v.get("false_alarm"):
            bad.append("false alarm")
        print(f"  MISS {v['file']}: {', '.join(bad)}; got {v['got']} warnings={v['warnings']}")


def write_docs(label: str, results: list[dict]) -> None:
    text = DOCS.read_text(encoding="utf-8")
    head = (
        f"{SECTION}\n\n`python benchmarks/train_doctor_score.py --all --label LABEL --write`: every log of a "
        "fixture folder through the command's core. Failing logs: the first error finding's class, its onset "
        "(step, or line where the manifest gives one), and cause / OOM split / rank where the manifest names "
        "them; healthy logs: any error finding is a false alarm. The held-out logs (tests/fixtures/train/heldout, "
        "collected after the rules were written, sources not in the fixture manifest nor in "
        "shared/research/train-logs.md) are read with `--framework auto`; heldout2 was collected after the "
        "fixes made on heldout, and each later folder (heldout3 to heldout7) after the fixes made on the one before it: the first row of each is its blind "
        "score.\n\n"
        "| run | folder | logs | right class | right onset | class and onset | false alarms | cause | OOM split "
        "| rank | warnings |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"
    )
    rows: list[str] = []
    notes = ""
    if SECTION in text:
        start = text.index(SECTION)
        end = text.find("\n## ", start + len(SECTION))
        end = len(text) if end < 0 else end + 1
        old = text[start:end].splitlines()
        table = [i for i, ln in enumerate(old) if ln.startswith("| ")]
        rows = [ln for ln in old if ln.startswith("| ") and not ln.startswith(("| run ", "| --- ", f"| {label} ("))]
        notes = "\n".join(old[table[-1] + 1 :]).strip("\n") if table else ""
        text = text[:start] + text[end:]
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    rows += table_rows(f"{label} ({commit}, {when})", results)
    section = head + "\n".join(rows) + "\n" + (f"\n{notes}\n" if notes else "")
    DOCS.write_text(text.rstrip("\n") + "\n\n" + section, encoding="utf-8")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folder", type=Path, help="a fixture folder with a manifest.json (default: the held-out logs)")
    ap.add_argument("--all", action="store_true", help="tests/fixtures/train and its heldout/ to heldout7/ folders")
    ap.add_argument("--label", default="run", help="the row's name in docs/benchmarks.md (e.g. before, after)")
    ap.add_argument("--write", action="store_true", help="add the rows to docs/benchmarks.md")
    ap.add_argument("--json", action="store_true", help="print the scores as JSON")
    args = ap.parse_args()
    folders = list(FOLDERS.values()) if args.all else [(args.folder or FOLDERS["heldout"]).resolve()]
    results = [score(f) for f in folders]
    if args.json:
        print(json.dumps(results, indent=1, default=str))
    else:
        for r in results:
            print_result(r)
    if args.write:
        write_docs(args.label, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
