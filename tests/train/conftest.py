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


@pytest.fixture
def fixture_path():
    return lambda name: FIXTURES / name
