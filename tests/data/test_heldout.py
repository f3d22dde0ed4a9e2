"""The held-out cases (tests/fixtures/data/heldout/, tests/data/heldout.py): `mlops data check` must
agree with what LLaMA-Factory's own pipeline did with each of them, run by run (release, stage,
template, entry): whether `datasets` loads the file, and keep / drop / crash per record up to the
first crash. The ground truth was recorded from the released wheels by tests/data/lf_pipeline.py.

With LLAMAFACTORY_SRC set (.ci/run unpacks 0.9.5), the recording is also checked against that
release's live converter (tests/data/lf_source.py), and the shipped template table against its
data/template.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.data.heldout import HELDOUT, all_runs, check_run, groundtruth, load_cases, prepare, score

RUNS = all_runs()
CASES = sorted({key.split("#")[0] for _run, _v, key, _gt in RUNS})


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("heldout")


def test_every_case_is_documented_and_recorded():
    cases = load_cases()
    real = [c for c in cases if c["kind"] == "real"]
    assert len(real) >= 25 and len([c for c in cases if c["kind"] == "adversarial"]) >= 20
    for case in real:
        assert case["source"].startswith("https://") and case["verbatim"] and case["filled_in"] and case["reported"]
        assert case["reported_version"] and case["reproduced"].startswith(("yes", "no"))
    recorded = {key.split("#")[0] for _r, _v, key, _g in RUNS}
    assert {c["case"] for c in cases} <= recorded, "a case without recorded ground truth"
    meta = groundtruth()["recorded"]
    assert meta["datasets"] == "4.0.0" and meta["by"] == "tests/data/lf_pipeline.py"


@pytest.mark.parametrize("case", CASES)
def test_check_agrees_with_llamafactory(case, workdir):
    """Every recorded run of the case, every release: file-level and per-record verdicts, and the
    record the whole run dies on."""
    misses = []
    for run, version, key, gt in RUNS:
        if key.split("#")[0] != case:
            continue
        result = check_run(run, version, prepare(run, workdir))
        s = score(gt, result)
        if not s.run_ok or s.outcome_ok is False:
            misses.append(
                (
                    key,
                    version,
                    "loads" if gt["loads"] is True else "fails to load",
                    s.misses,
                    f"run: {gt['run'][:80]} / ours: {result.first_crash}",
                    [f.to_json()["message"][:160] for f in result.findings][:6],
                )
            )
    assert not misses, misses


def test_text_template_given_images_stops_the_run(workdir):
    """lf8825: the same record crashes under a text-only template and trains under qwen2_vl."""
    run = next(r for r, _v, key, _g in RUNS if key == "lf8825_images_with_text_template#0")
    folder = prepare(run, workdir)
    text = check_run(run, "0.9.5", folder, template="qwen")
    assert text.first_crash["record"] == 1 and "does not support image input" in text.first_crash["message"]
    assert text.exit_code == 1
    vl = check_run(run, "0.9.5", folder, template="qwen2_vl")
    assert (vl.keep, vl.crash, vl.exit_code) == (1, 0, 0)
    assert vl.to_json()["template"] == {"name": "qwen2_vl", "assumed": False, "table_release": "0.9.5"}


def test_without_template_media_columns_mean_a_multimodal_one(workdir):
    """No --template: an entry mapping images is judged as a multimodal template (the record trains),
    and one mapping none while the data has an "image" column as one too (lf7909: it crashes)."""
    mapped = next(r for r, _v, key, _g in RUNS if key == "lf8825_images_with_text_template#0")
    result = check_run(mapped, "0.9.5", prepare(mapped, workdir), template=None)
    assert result.keep == 1 and result.to_json()["template"]["assumed"] is True
    unmapped = next(r for r, _v, key, _g in RUNS if key == "lf7909_llava_record_unmapped_image#0")
    result = check_run(unmapped, "0.9.5", prepare(unmapped, workdir), template=None)
    assert result.first_crash["record"] == 1 and "no images column is mapped" in result.first_crash["message"]


def test_unknown_template_is_usage_error(workdir):
    from mlops_cli.errors import UsageError

    run = next(r for r, _v, key, _g in RUNS if key == "lf8947_openai_layout_think#0")
    with pytest.raises(UsageError, match="no template 'qwen9'"):
        check_run(run, "0.9.5", prepare(run, workdir), template="qwen9")
    with pytest.raises(UsageError, match="no template 'qwen3'"):  # qwen3 arrived in 0.9.3
        check_run(run, "0.9.1", prepare(run, workdir), template="qwen3")


# --- with a LLaMA-Factory source (LLAMAFACTORY_SRC) -------------------------------------------------


def _source():
    from tests.data import lf_source

    pkg = lf_source.source_root()
    if pkg is None:
        pytest.skip(
            "set LLAMAFACTORY_SRC to an unpacked llamafactory wheel (.ci/run: 0.9.5) to check the "
            "recording against that release's own converter and template.py"
        )
    from tests.data.lf_templates import read_templates

    dist = next(pkg.parent.glob("llamafactory-*.dist-info"), None)
    version = dist.name.removesuffix(".dist-info").split("-")[1] if dist else None
    if version is None:
        for line in (pkg / "extras" / "env.py").read_text().splitlines():
            if line.startswith("VERSION"):
                version = line.split("=")[1].strip().strip('"').removesuffix(".dev0")
    return lf_source, pkg, version, read_templates


def test_template_table_matches_the_source():
    _lf, pkg, version, read_templates = _source()
    shipped = json.loads(
        (Path(__file__).resolve().parents[2] / "src" / "mlops_cli" / "data" / "templates.json").read_text()
    )["releases"]
    if version not in shipped:
        pytest.skip(f"the table has no release {version}")
    assert read_templates((pkg / "data" / "template.py").read_text()) == shipped[version]


def test_recording_agrees_with_the_live_converter(workdir):
    """Records the live converter drops, or raises on, were recorded so; the recording is not stale."""
    lf_source, pkg, version, _read = _source()
    lf = lf_source.load(pkg)
    checked = 0
    for run, v, key, gt in RUNS:
        if v != version or gt["loads"] is not True or not gt.get("records"):
            continue
        folder = prepare(run, workdir)
        info = json.loads((folder / "dataset_info.json").read_text())
        data = folder / info[run["name"]]["file_name"]
        if not data.is_file() or data.suffix not in (".json", ".jsonl"):
            continue
        live = lf_source.judge(lf, info, run["name"], str(data), run.get("stage", "sft"), str(folder))
        assert live.load_error is None, (key, live.load_error)
        for n, (recorded, _msg) in enumerate(gt["records"], 1):
            if live.per_record[n - 1] == "drop" or n in live.converter_crashes:
                assert recorded == live.per_record[n - 1], (key, n, recorded, live)
            if recorded == "crash":
                break
        checked += 1
    assert checked >= 30, checked


def test_manifest_folders_exist():
    for case in load_cases():
        assert (HELDOUT / case["folder"] / "dataset_info.json").is_file(), case["case"]


def test_cli_template_option(workdir):
    """The command line: --template judged, said in the JSON and the human summary; an unknown one is
    exit 2 with one error line."""
    from tests.conftest import run_mlops

    run = next(r for r, _v, key, _g in RUNS if key == "lf8825_images_with_text_template#0")
    folder = prepare(run, workdir)
    args = ("data", "check", "--info", "dataset_info.json", "--name", "covla")
    text = run_mlops(*args, "--template", "qwen", "--json", cwd=folder)
    assert text.returncode == 1, text
    doc = text.json()
    assert doc["template"] == {"name": "qwen", "assumed": False, "table_release": "0.9.5"}
    assert doc["first_crash"]["record"] == 1 and doc["crash"] == 1
    human = run_mlops(*args, cwd=folder)
    assert human.returncode == 0 and "template qwen2_vl (assumed; --template NAME for yours)" in human.stdout, human
    bad = run_mlops(*args, "--template", "qwen-vl", cwd=folder)
    assert bad.returncode == 2 and bad.stderr.startswith("error: LLaMA-Factory 0.9.5 has no template 'qwen-vl'")
    assert "Traceback" not in bad.stderr


def test_kto_kl_pass_pairs_records_across_the_batch(check):
    """KTO tokenizes each record a second time with another record's answer (processor/feedback.py):
    a record the converter dropped leaves its neighbour without one, and the whole run stops."""
    good = {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}], "label": True}
    broken = {"conversations": [{"from": "gpt", "value": "a"}, {"from": "human", "value": "q"}], "label": False}
    entry = {"formatting": "sharegpt", "columns": {"messages": "conversations", "kto_tag": "label"}}
    result = check([good, broken, good], entry=entry, stage="kto", version="0.9.5", lines=True)
    assert result.drop == 1 and result.crash == 1, result.to_json()["findings"]
    crash = next(f for f in result.findings if f.code == "kto-kl-pair")
    assert crash.record == 3 and "record 2" in crash.message  # 0.9.3+: the record before it
    older = check([good, broken, good, good], entry=entry, stage="kto", version="0.9.2", lines=True)
    assert {f.record for f in older.findings if f.code == "kto-kl-pair"} == {3}  # 0.9.2: the batch reversed
    clean = check([good, dict(good, label=False)], entry=entry, stage="kto", version="0.9.5", lines=True)
    assert clean.exit_code == 0
