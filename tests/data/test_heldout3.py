"""The third held-out set (tests/fixtures/data/heldout3/: 25 real reports, scored blind first, see
docs/benchmarks.md): `mlops data check` must agree with LLaMA-Factory's recorded pipeline, run by run."""

from __future__ import annotations

import pytest
from tests.data.heldout import HELDOUT3, all_runs, assert_real_set_documented, disagreements, load_cases

RUNS = all_runs(HELDOUT3)
CASES = sorted({key.split("#")[0] for _run, _v, key, _gt in RUNS})


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("heldout3")


def test_every_case_is_documented_and_recorded():
    assert_real_set_documented(HELDOUT3, at_least=25)


def test_no_case_reuses_an_earlier_report():
    from tests.data.heldout import HELDOUT

    earlier = (HELDOUT / "real_cases.json").read_text() + (HELDOUT.parent / "real" / "cases.json").read_text()
    for case in load_cases(HELDOUT3):
        assert f'"{case["source"]}"' not in earlier, case["case"]


@pytest.mark.parametrize("case", CASES)
def test_check_agrees_with_llamafactory(case, workdir):
    misses = disagreements(HELDOUT3, case, workdir)
    assert not misses, misses
