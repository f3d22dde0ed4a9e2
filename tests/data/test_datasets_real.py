"""The real `datasets` library (the version LLaMA-Factory pins, from the `test` extra) loads every file
`check` calls loadable and fails every file it calls fatal."""

from __future__ import annotations

import json

import pytest

from mlops_cli.data.check import CheckOptions, run_check

datasets = pytest.importorskip("datasets", reason="the `test` extra installs datasets==4.0.0")

R = '{"instruction":"a","input":"","output":"b"}'
PAD = '{"instruction":"%s","input":"","output":"b"}' % ("x" * 200)
BIG = 50000  # lines of ~230 bytes: more than one 10 MiB batch

PROBES = {
    "array.json": "[" + R + "," + R + "]",
    "lines.jsonl": R + "\n" + R + "\n",
    "array_as.jsonl": "[" + R + "]",
    "pretty_objects.json": R + "\n" + json.dumps(json.loads(R), indent=2) + "\n",
    "bom_array.json": b"\xef\xbb\xbf[" + R.encode() + b"]",
    "bom_lines.jsonl": b"\xef\xbb\xbf" + R.encode() + b"\n",
    "trailing_comma.json": "[" + R + ",\n]",
    "nan_array.json": '[{"instruction":"a","input":NaN,"output":"b"},' + R + "]",
    "nan_lines.jsonl": R + '\n{"instruction":"a","input":NaN,"output":"b"}\n',
    "mixed_array.json": "[" + R + ',{"instruction":"a","input":"","output":3}]',
    "mixed_lines.jsonl": R + '\n{"instruction":"a","input":"","output":3}\n',
    "nested_mixed.jsonl": '{"m":[{"c":"x"}]}\n{"m":[{"c":1}]}\n',
    "int_float.jsonl": '{"a":1}\n{"a":1.5}\n',
    "empty.json": "",
    "empty_array.json": "[]",
    "truncated.jsonl": R + '\n{"instruction":"a"\n',
    "control_char.jsonl": '{"a":"x\ty"}\n',
    "control_char.json": '[{"a":"x\ty"}]',
    "gbk.json": '[{"a":"中文"}]'.encode("gbk"),
    "late_new_key.jsonl": "\n".join([PAD] * BIG) + '\n{"instruction":"a","input":"","output":"b","note":"x"}\n',
    "late_missing_key.jsonl": "\n".join([PAD] * BIG) + '\n{"instruction":"a","output":"b"}\n',
    "late_int.jsonl": "\n".join([PAD] * BIG) + '\n{"instruction":"a","input":"","output":3}\n',
    "null_then_string.jsonl": "\n".join(['{"a":null,"p":"%s"}' % ("x" * 200)] * BIG) + '\n{"a":"s","p":"y"}\n',
}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("hf-cache")


@pytest.mark.parametrize("name", sorted(PROBES))
def test_check_agrees_with_datasets(tmp_path, cache, name, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    content = PROBES[name]
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    datasets.disable_progress_bars()
    try:
        ds = datasets.load_dataset("json", data_files=[str(path)], split="train", cache_dir=str(cache))
        loads = len(ds) > 0
    except Exception:  # noqa: BLE001 - any failure of load_dataset is what we compare with
        loads = False
    result = run_check(CheckOptions(files=[str(path)], fmt="alpaca"))
    assert (not result.load_fails) == loads, result.to_json()["findings"][:3]
