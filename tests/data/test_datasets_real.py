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
FIRST_BATCH = -(-(10 << 20) // (len(PAD) + 1))  # lines of PAD that fill datasets' first 10 MiB batch exactly
NUM = '{"instruction":"%s","input":"","output":"b","n":1}' % ("x" * 200)

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
    # a key written twice: pyarrow refuses a repeated column; nested, or in a JSON array (pandas), the last wins
    "dup_key_lines.jsonl": R + '\n{"instruction":"a","input":"","output":"b","output":"c"}\n',
    "dup_key_spaced.jsonl": '{"instruction" : "a", "input" : "", "output" : "b", "output" : "c"}\n',
    "dup_key_objects.json": R + '\n{\n  "instruction": "a",\n  "input": "",\n  "output": "b",\n  "output": "c"\n}\n',
    "dup_key_nested.jsonl": '{"m":[{"from":"a","value":"x","value":"y"}]}\n',
    "dup_key_array.json": "[" + R + ',{"instruction":"a","input":"","output":"b","output":"c"}]',
    "escaped_quote_colon.jsonl": '{"instruction":"say \\"a\\": b","input":"","output":"\\\\"}\n',
    # int64 from the first batch, a fraction later: the cast fails; a whole 2.0 or float-first is fine
    "int_then_fraction_late.jsonl": "\n".join([NUM] * BIG) + '\n{"instruction":"a","input":"","output":"b","n":1.5}\n',
    "int_then_whole_float_late.jsonl": "\n".join([NUM] * BIG)
    + '\n{"instruction":"a","input":"","output":"b","n":2.0}\n',
    "fraction_then_int_late.jsonl": '{"n":0.5}\n' + "\n".join([NUM] * BIG) + "\n",
    "nested_int_then_fraction_late.jsonl": "\n".join(['{"m":[{"w":1,"p":"%s"}]}' % ("x" * 200)] * BIG)
    + '\n{"m":[{"w":0.5,"p":"y"}]}\n',
    # a later batch of numbers only, in a string column: cast to string, loads
    "string_then_number_batch.jsonl": "\n".join([PAD] * FIRST_BATCH)
    + "\n"
    + "\n".join([PAD.replace('"output":"b"', '"output":5')] * 2000)
    + "\n",
    # a record that is not an object (heldout4 lf8323: a bare list of messages per line): pyarrow reads
    # JSON Lines one object per line; pandas reads a JSON array whole and fails objects mixed with others
    "list_line.jsonl": R + '\n["x"]\n',
    "string_line.jsonl": R + '\n"x"\n',
    "number_line.jsonl": R + "\n5\n",
    "lists_per_line.jsonl": '[{"role":"user","content":"a"}]\n[{"role":"user","content":"b"}]\n',
    "list_first_line.jsonl": '["x"]\n' + R + "\n",
    "list_in_array.json": "[" + R + ',["x"]]',
    "string_in_array.json": "[" + R + ',"x"]',
    "null_in_array.json": "[" + R + ",null]",
    "string_first_array.json": '["x",' + R + "]",
    "only_strings_array.json": '["x","y"]',
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


@pytest.mark.xfail(
    strict=True,
    reason="a JSON Lines line that is `null` is a row of nulls to pyarrow (the file loads); check reads "
    "such a file as objects one after another and calls the bare null 'unexpected text between records'",
)
def test_null_line_in_json_lines_loads(tmp_path, cache, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    path = tmp_path / "null_line.jsonl"
    path.write_text(R + "\nnull\n")
    datasets.disable_progress_bars()
    ds = datasets.load_dataset("json", data_files=[str(path)], split="train", cache_dir=str(cache))
    assert len(ds) == 2
    assert not run_check(CheckOptions(files=[str(path)], fmt="alpaca")).load_fails
