"""Shared helpers for the train-doctor tests: the fixture manifest and an in-process run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "train"


def manifest() -> list[dict]:
    return json.loads((FIXTURES / "manifest.json").read_text(encoding="utf-8"))["fixtures"]


def analyse_path(path: Path, framework: str = "auto", model: str | None = None):
    from mlops_cli.train.analyse import analyse

    with open(path, "rb") as fh:
        return analyse([(path.name, fh)], framework, model)


def analyse_bytes(data: bytes, name: str = "log", framework: str = "auto"):
    import io

    from mlops_cli.train.analyse import analyse

    return analyse([(name, io.BytesIO(data))], framework)


def check_expect(report, expect: dict, *, warnings: bool = True) -> None:
    """A report against a manifest's `expect`: exit code, then the first error's class, onset (step
    or line), cause, OOM split and rank; the expected warning when `warnings`."""
    assert report.exit_code == expect["exit"], [(f.cls, f.severity, f.step, f.title) for f in report.findings]
    errors = report.errors
    if expect["exit"] == 0:
        assert not errors
    else:
        first = errors[0]
        assert first.cls == expect["class"]
        for key, got in (
            ("onset_step", first.step),
            ("onset_line", first.line),
            ("cause", first.cause),
            ("rank", first.rank),
        ):
            if key in expect:
                assert got == expect[key], (key, got)
        if "split" in expect:
            assert first.data["split"] == expect["split"]
        assert first.evidence and first.fix
        assert all(e["text"] for e in first.evidence)
    if warnings and "warning" in expect:
        found = [f for f in report.findings if f.severity == "warning"]
        assert found and found[0].cls == expect["warning"]
        if "warning_step" in expect:
            assert found[0].step == expect["warning_step"]


@pytest.fixture
def fixture_path():
    return lambda name: FIXTURES / name
