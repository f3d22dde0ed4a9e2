"""The fourth held-out set (tests/fixtures/data/heldout4/: real reports, scored blind first, see
docs/benchmarks.md): `mlops data check` must agree with LLaMA-Factory's recorded pipeline, run by run."""

from __future__ import annotations

import pytest
from tests.data.heldout import HELDOUT4, all_runs, assert_real_set_documented, disagreements, load_cases

RUNS = all_runs(HELDOUT4)
CASES = sorted({key.split("#")[0] for _run, _v, key, _gt in RUNS})


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("heldout4")


def test_every_case_is_documented_and_recorded():
    assert_real_set_documented(HELDOUT4, at_least=9)


def test_no_case_reuses_an_earlier_report():
    from tests.data.heldout import HELDOUT

    earlier = "".join(
        (root / name).read_text()
        for root, name in (
            (HELDOUT, "real_cases.json"),
            (HELDOUT.parent / "real", "cases.json"),
            (HELDOUT.parent / "heldout3", "real_cases.json"),
        )
    )
    for case in load_cases(HELDOUT4):
        assert f'"{case["source"]}"' not in earlier, case["case"]


@pytest.mark.parametrize("case", CASES)
def test_check_agrees_with_llamafactory(case, workdir):
    misses = disagreements(HELDOUT4, case, workdir)
    assert not misses, misses


def test_one_list_per_line_is_named_as_such(tmp_path):
    """heldout4 lf8323: JSON Lines whose lines are bare lists (of messages). The file starts like a JSON
    array, so the second line is text after it; the finding says what the layout is and how to fix it."""
    from mlops_cli.data.check import CheckOptions, run_check

    path = tmp_path / "webshop.jsonl"
    path.write_text('[{"role": "user", "content": "a"}]\n[{"role": "user", "content": "b"}]\n')
    result = run_check(CheckOptions(files=[str(path)], fmt="sharegpt"))
    fatal = [f for f in result.findings if f.consequence == "fatal" and f.code == "json-syntax"]
    assert result.load_fails and len(fatal) == 1 and fatal[0].line == 2
    assert "another JSON array starts on a later line" in fatal[0].message
    assert "one object per line" in fatal[0].message
    # another array on the same line, or an object after the array, is still plain trailing text
    path.write_text('[{"role": "user", "content": "a"}] [{"role": "user", "content": "b"}]\n')
    other = [f for f in run_check(CheckOptions(files=[str(path)], fmt="sharegpt")).findings if f.code == "json-syntax"]
    assert other and "text after the end of the array" in other[0].message
