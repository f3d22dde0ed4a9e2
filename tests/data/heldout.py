"""The held-out cases (tests/fixtures/data/heldout/) and how `mlops data check` is scored on them.

Each case folder holds the data, a dataset_info.json and, in real_cases.json or
adversarial_cases.json, where it comes from and which runs (LLaMA-Factory release, stage,
template, entry) it was put through. groundtruth.json holds what LLaMA-Factory's own pipeline
did in each run (recorded by tests/data/lf_pipeline.py from the released wheels, with the real
`datasets` 4.0.0): whether `datasets` loads the file, and keep / drop / crash per record.

A run is scored on two things:
* file level: `check` says the file fails to load exactly when `datasets` fails on it;
* record level (files that load): every record up to and including the first one the real run
  crashes on (the run stops there) gets the same verdict, keep, drop or crash.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any, Optional

HELDOUT = Path(__file__).resolve().parent.parent / "fixtures" / "data" / "heldout"
# The third held-out set (real reports only), collected and scored blind after the first one was fixed.
HELDOUT3 = HELDOUT.parent / "heldout3"
# The fourth (real reports only), collected and scored blind after the third one was fixed.
HELDOUT4 = HELDOUT.parent / "heldout4"


def load_cases(root: Path = HELDOUT) -> list[dict]:
    out = []
    for kind in ("real", "adversarial", "fuzz"):
        manifest = root / f"{kind}_cases.json"
        if not manifest.is_file():
            continue
        for case in json.loads(manifest.read_text()):
            out.append(dict(case, kind=kind))
    return out


def case_runs(case: dict) -> list[dict]:
    base = {
        k: case[k]
        for k in ("case", "folder", "name", "stage", "template", "versions", "generated", "kind")
        if k in case
    }
    return [dict(base, **run) for run in case.get("runs", [{}])]


def groundtruth(root: Path = HELDOUT) -> dict:
    """{version: {"case#run": {"loads": True | "error", "records": [[verdict, message], ...] | None}}}"""
    return json.loads((root / "groundtruth.json").read_text())


def all_runs(root: Path = HELDOUT) -> list[tuple[dict, str, str, dict]]:
    """(run, version, key, ground truth) for every recorded run."""
    truth = groundtruth(root)["versions"]
    out = []
    for case in load_cases(root):
        for n, run in enumerate(case_runs(case)):
            key = f"{case['case']}#{n}"
            for version in run["versions"]:
                gt = truth.get(version, {}).get(key)
                if gt is not None:
                    out.append((run, version, key, gt))
    return out


def prepare(run: dict, where: Path, root: Path = HELDOUT) -> Path:
    """A copy of the case folder (and the shared media folder) with its generated files written."""
    folder = where / run["folder"]
    if not folder.exists():
        shutil.copytree(root / run["folder"], folder)
        if not (where / "media").exists():
            shutil.copytree(root / "media", where / "media")
        if run.get("generated"):
            from tests.data.heldout_files import materialize

            materialize(run["generated"], folder)
    return folder


def check_run(run: dict, version: str, folder: Path, template: Optional[str] = "given"):
    """`mlops data check` on the run, in process; `template` "given" passes the run's template when
    the check knows the option."""
    from mlops_cli.data.check import CheckOptions, run_check

    kw: dict[str, Any] = dict(
        files=[],
        info=str(folder / "dataset_info.json"),
        name=run["name"],
        stage=run.get("stage", "sft"),
        version=version,
    )
    fields = {f.name for f in dataclasses.fields(CheckOptions)}
    if template == "given":
        template = run.get("template", "qwen")
    if template is not None and "template" in fields:
        kw["template"] = template
    return run_check(CheckOptions(**kw))


def our_verdicts(result) -> dict[int, str]:
    """record -> drop / crash from check's findings (records without such a finding are kept)."""
    out: dict[int, str] = {}
    for f in result.findings:
        if f.record is not None and f.consequence in ("drop", "crash") and out.get(f.record) != "crash":
            out[f.record] = f.consequence
    if result.first_crash and result.first_crash.get("record"):
        out[result.first_crash["record"]] = "crash"
    return out


@dataclasses.dataclass
class Score:
    file_ok: bool
    records: int = 0  # records compared
    agree: int = 0  # records with the same verdict
    misses: list = dataclasses.field(default_factory=list)  # (record, theirs, ours)
    # the whole run: it survives, or dies on the record check names first (None: not judged)
    outcome_ok: Optional[bool] = None

    @property
    def run_ok(self) -> bool:
        return self.file_ok and self.agree == self.records


def score(gt: dict, result) -> Score:
    theirs_load = gt["loads"] is True
    ours_load = not result.load_fails
    s = Score(file_ok=theirs_load == ours_load)
    if not theirs_load or gt.get("records") is None:
        return s
    if not ours_load:  # we say the file fails to load: every record is a miss
        s.records = _compared(gt["records"])
        s.misses = [("file", "loads", "fails")]
        return s
    ours = our_verdicts(result)
    s.outcome_ok = _outcome_ok(gt, result)
    for n, (verdict, _msg) in enumerate(gt["records"], 1):
        s.records += 1
        mine = ours.get(n, "keep")
        if mine == verdict:
            s.agree += 1
        else:
            s.misses.append((n, verdict, mine))
        if verdict == "crash":
            break
    return s


def _outcome_ok(gt: dict, result) -> bool:
    """The real run over the whole file survived (or lost every record: Cannot find valid samples)
    and check names no crash; or it died of the very exception one record dies of alone, on the
    record check names as the first crash."""
    run = gt["run"]
    ours = (result.first_crash or {}).get("record")
    if run.startswith(("ok", "StopIteration")) or "Cannot find" in run:
        return ours is None
    if ours is None or ours > len(gt["records"]):
        return False
    verdict, message = gt["records"][ours - 1]
    return verdict == "crash" and message.removeprefix("KTO KL pass: ")[:60] == run[:60]


def _compared(records: list) -> int:
    for n, (verdict, _m) in enumerate(records, 1):
        if verdict == "crash":
            return n
    return len(records)


def assert_real_set_documented(root: Path, at_least: int) -> None:
    """A real held-out set: every case says its source, what is verbatim and filled in, what was
    reported and reproduced, has its dataset_info.json and recorded ground truth."""
    cases = load_cases(root)
    runs = {key.split("#")[0] for _run, _v, key, _gt in all_runs(root)}
    assert len(cases) >= at_least and all(c["kind"] == "real" for c in cases)
    assert len({c["source"] for c in cases}) == len(cases), "one report, one case"
    for case in cases:
        assert case["source"].startswith("https://") and case["verbatim"] and case["filled_in"] and case["reported"]
        assert case["reported_version"] and case["reproduced"].startswith(("yes", "no", "partly"))
        assert (root / case["folder"] / "dataset_info.json").is_file(), case["case"]
    assert {c["case"] for c in cases} <= runs, "a case without recorded ground truth"
    assert groundtruth(root)["recorded"]["by"] == "tests/data/lf_pipeline.py"


def disagreements(root: Path, case: str, workdir: Path) -> list:
    """Every recorded run of one case where check does not agree with LLaMA-Factory's pipeline:
    a record verdict, where the run dies, or the exception it dies of."""
    misses = []
    for run, version, key, gt in all_runs(root):
        if key.split("#")[0] != case:
            continue
        result = check_run(run, version, prepare(run, workdir, root))
        s = score(gt, result)
        if s.outcome_ok and result.first_crash:  # the exception the run dies of, not only where
            theirs, ours = gt["run"].split(":")[0], result.first_crash["message"].split(":")[0]
            if theirs != ours:
                misses.append((key, version, "exception", gt["run"][:80], result.first_crash["message"][:80]))
        if not s.run_ok or s.outcome_ok is False:
            misses.append(
                (key, version, gt["loads"] is True, s.misses, gt["run"][:80], result.first_crash, result.refused)
            )
    return misses
