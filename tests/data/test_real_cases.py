"""Broken datasets from public reports (tests/fixtures/data/real/cases.json): `mlops data check` names
the records LLaMA-Factory drops or stops on, with the consequence the thread reports.

Each case says which parts are verbatim from its source and which were filled in. With
LLAMAFACTORY_SRC pointing at a LLaMA-Factory checkout, each case is also run through that
release's own converter (tests/data/lf_source.py) and the two must agree record by record.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.conftest import run_mlops

REAL = Path(__file__).resolve().parent.parent / "fixtures" / "data" / "real"
CASES = json.loads((REAL / "cases.json").read_text())
RUNS = [(c, r) for c in CASES for r in c["runs"]]


def _verdicts(doc: dict) -> dict[int, str]:
    """record -> drop/crash, from the findings (a record without such a finding is kept)."""
    out: dict[int, str] = {}
    for f in doc["findings"]:
        if f.get("record") is not None and f["consequence"] in ("drop", "crash"):
            if out.get(f["record"]) != "crash":
                out[f["record"]] = f["consequence"]
    return out


@pytest.mark.parametrize(
    "case,run", RUNS, ids=[f"{c['case']}@{r['version']}{'-' + r['stage'] if 'stage' in r else ''}" for c, r in RUNS]
)
def test_check_names_the_bad_records(case, run):
    assert case["source"].startswith("https://") and case["verbatim"] and case["reported"]
    args = list(case["args"])
    if "stage" in run:
        if "--stage" in args:
            del args[args.index("--stage") : args.index("--stage") + 2]
        args += ["--stage", run["stage"]]
    argv = ["data", "check", *args, "--llamafactory-version", run["version"], "--json"]
    result = run_mlops(*argv, cwd=REAL / case["case"])
    assert result.returncode == run["exit"], result
    if run["exit"] == 2:
        assert result.stderr.startswith("error:") and run["stderr"] in result.stderr, result
        return
    doc = result.json()
    assert doc["load_fails"] == run.get("load_fails", False), result
    for key in ("keep", "drop"):
        if key in run:
            assert doc[key] == run[key], (key, result)
    if "crash_record" in run:
        assert (doc["first_crash"] or {}).get("record") == run["crash_record"], result
    codes = {f["code"] for f in doc["findings"]}
    assert set(run.get("codes", [])) <= codes, result
    if "records" in run:
        by_record: dict[int, set] = {}
        for f in doc["findings"]:
            if f.get("record") is not None:
                by_record.setdefault(f["record"], set()).add(f["code"])
        for record, want in run["records"].items():
            assert set(want) <= by_record.get(int(record), set()), (record, result)
        # no other record is said to be dropped or to crash
        assert set(_verdicts(doc)) <= {int(r) for r in run["records"]}, result
    for code, record in run.get("finding_record", {}).items():
        assert any(f["code"] == code and f.get("record") == record for f in doc["findings"]), result


def _lf_source_version() -> str | None:
    from tests.data import lf_source

    pkg = lf_source.source_root()
    if pkg is None:
        return None
    for line in (pkg / "extras" / "env.py").read_text().splitlines():
        if line.startswith("VERSION"):
            return line.split("=")[1].strip().strip('"').removesuffix(".dev0")
    return None


@pytest.mark.parametrize(
    "case", [c for c in CASES if c["runs"][0].get("exit") != 2 and "--info" in c["args"]], ids=lambda c: c["case"]
)
def test_agrees_with_llamafactory_source(case, tmp_path):
    from tests.data import lf_source

    pkg = lf_source.source_root()
    if pkg is None:
        pytest.skip("set LLAMAFACTORY_SRC to a LLaMA-Factory checkout (0.8.0+) to compare with its own converter")
    version = _lf_source_version()
    lf = lf_source.load(pkg)
    folder = REAL / case["case"]
    args = case["args"]
    info = json.loads((folder / args[args.index("--info") + 1]).read_text())
    name = args[args.index("--name") + 1]
    stage = args[args.index("--stage") + 1] if "--stage" in args else ("dpo" if info[name].get("ranking") else "sft")
    data = folder / (args[0] if not args[0].startswith("--") else info[name]["file_name"])
    theirs = lf_source.judge(lf, info, name, str(data), stage, str(folder))
    doc = run_mlops("data", "check", *args, "--llamafactory-version", version, "--json", cwd=folder).json()
    assert doc["load_fails"] == (theirs.load_error is not None), (theirs, doc["summary"])
    if theirs.load_error:
        return
    ours = _verdicts(doc)
    if doc["first_crash"] and doc["first_crash"].get("line") is None:  # a KeyError settled after the file
        ours.setdefault(doc["first_crash"]["record"], "crash")
    for n, verdict in enumerate(theirs.per_record, 1):
        if verdict == "crash":  # the run stops at the first crash; records after it are never reached
            assert ours.get(n) == "crash", (n, theirs, doc["findings"])
            break
        assert ours.get(n, "keep") == verdict, (n, theirs, doc["findings"])


# --- random records, one file each, through both (only with LLAMAFACTORY_SRC) ------------------------

_FN = '{"name": "f", "arguments": {"a": 1}}'
_CONTENTS = ["text", "text", "", None, "<image>look", "<image><image>", _FN, "not json", 5]
_KINDS = {
    # kind: (entry, role key, content key, roles to draw from (the first two alternate), stage)
    "sharegpt": (
        {
            "formatting": "sharegpt",
            "columns": {"messages": "conversations", "system": "system", "images": "images", "tools": "tools"},
        },
        "from",
        "value",
        ["human", "gpt", "system", "observation", "function_call", "bot", None],
        "sft",
    ),
    "role_content": (
        {
            "formatting": "sharegpt",
            "columns": {"messages": "messages", "images": "images"},
            "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"},
        },
        "role",
        "content",
        ["user", "assistant", "system", "tool", None],
        "sft",
    ),
    "ranking": (
        {
            "formatting": "sharegpt",
            "ranking": True,
            "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"},
        },
        "from",
        "value",
        ["human", "gpt", "system", "bot"],
        "dpo",
    ),
    "alpaca": (
        {
            "columns": {
                "prompt": "instruction",
                "query": "input",
                "response": "output",
                "history": "history",
                "system": "system",
            }
        },
        None,
        None,
        None,
        "sft",
    ),
}


def _random_record(rnd, kind: str) -> dict:
    entry, rk, ck, roles, _stage = _KINDS[kind]
    if kind == "alpaca":
        return {
            "instruction": rnd.choice(["q", "", None]),
            "input": rnd.choice(["", "x", None]),
            "output": rnd.choice(["a", "", None, 3]),
            "history": rnd.choice([[["a", "b"]], [["a", "b", "c"]], [], None, [["a", None]]]),
            "system": rnd.choice(["s", None, ""]),
        }
    if rnd.random() < 0.6:  # mostly well-formed turns, so that keep and the later stages are reached
        seq = ([roles[2]] if rnd.random() < 0.3 else []) + [roles[0], roles[1]] * rnd.randint(1, 3)
        seq = seq[:-1] if kind == "ranking" else seq
    else:
        seq = [rnd.choice(roles) for _ in range(rnd.randint(0, 5))]
    msgs = []
    for role in seq:
        m = {} if role is None else {rk: role}
        m[ck] = "text" if rnd.random() < 0.5 else rnd.choice(_CONTENTS)
        msgs.append(m)
    rec: dict = {entry["columns"]["messages"]: msgs}
    if kind == "sharegpt":
        rec["images"] = rnd.choice([[], ["a.jpg"], ["a.jpg", "b.jpg"], None])
        rec["system"] = rnd.choice(["s", None])
        rec["tools"] = rnd.choice(['[{"name": "f"}]', " ", "", "bad", None])
    if kind == "ranking":
        for side in ("chosen", "rejected"):
            rec[side] = rnd.choice(
                [{"from": "gpt", "value": "a"}, {"from": "human", "value": "a"}, None, {"from": "gpt", "value": None}]
            )
    return rec


@pytest.mark.parametrize("kind", sorted(_KINDS))
def test_random_records_agree_with_llamafactory_source(kind, tmp_path):
    import random

    from tests.data import lf_source

    pkg = lf_source.source_root()
    if pkg is None:
        pytest.skip("set LLAMAFACTORY_SRC to a LLaMA-Factory checkout (0.8.0+) to compare with its own converter")
    from mlops_cli.data.check import CheckOptions, run_check

    lf = lf_source.load(pkg)
    version = _lf_source_version()
    rnd = random.Random(13)
    entry, _rk, _ck, _roles, stage = _KINDS[kind]
    for n in range(25):
        rec = _random_record(rnd, kind)
        data = tmp_path / f"r{n}.jsonl"
        data.write_text(json.dumps(rec) + "\n")
        info = {"e": dict(entry, file_name=data.name)}
        (tmp_path / "dataset_info.json").write_text(json.dumps(info))
        theirs = lf_source.judge(lf, info, "e", str(data), stage, str(tmp_path))
        ours = run_check(
            CheckOptions(
                files=[str(data)], info=str(tmp_path / "dataset_info.json"), name="e", stage=stage, version=version
            )
        )
        mine = (
            "load"
            if ours.load_fails
            else "crash"
            if (ours.crash or ours.first_crash)
            else "drop"
            if ours.drop
            else "keep"
        )
        want = "load" if theirs.load_error else theirs.per_record[0]
        assert mine == want, (rec, theirs, [f.to_json() for f in ours.findings])
