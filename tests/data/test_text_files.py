"""A file named .txt goes to datasets' `text` builder (LLaMA-Factory picks the builder by extension):
one record per line in a single column `text`, JSON not parsed (heldout3 lf3018)."""

from __future__ import annotations

import json

ALPACA = {"columns": {"prompt": "instruction", "query": "input", "response": "output"}}
PT = {"columns": {"prompt": "text"}}


def test_json_array_in_txt_loads_and_crashes_on_the_first_line(check):
    records = [{"instruction": "q1", "input": "", "output": "a1"}, {"instruction": "q2", "input": "", "output": "a2"}]
    text = json.dumps(records, indent=2)
    result = check(text, entry=ALPACA, name="data.txt", stage="sft")
    assert not result.load_fails, result.to_json()["findings"][:3]
    assert result.records == len(text.splitlines())
    assert result.first_crash and result.first_crash["record"] == 1
    # the converter reads instruction before input and output: that KeyError is the one the run dies of
    assert result.first_crash["message"].startswith("KeyError: 'instruction'"), result.first_crash
    assert any(
        f.code == "file-extension" and f.consequence == "warn" and "text loader" in f.message for f in result.findings
    )


def test_txt_lines_are_records_with_blank_lines_kept(check):
    result = check(b"first line\r\nsecond line\n\nfourth", entry=PT, name="corpus.txt", stage="pt")
    assert not result.load_fails and result.first_crash is None
    assert result.records == 4
    assert result.keep + result.drop == 4


def test_txt_that_is_not_utf8_fails_to_load(check):
    result = check("标题\n正文\n".encode("gbk"), entry=PT, name="gbk.txt", stage="pt")
    assert result.load_fails
    assert any("UnicodeDecodeError" in f.message for f in result.findings)


def test_same_json_named_json_is_parsed(check):
    records = [{"instruction": "q1", "input": "", "output": "a1"}]
    result = check(json.dumps(records), entry=ALPACA, name="data.json", stage="sft")
    assert result.records == 1 and result.keep == 1 and not result.load_fails


def test_convert_and_stats_still_read_json_saved_as_txt(tmp_path):
    """Only check reads a .txt the way LLaMA-Factory will; convert/stats read the JSON it holds."""
    from mlops_cli.data.source import open_dataset

    path = tmp_path / "data.txt"
    path.write_text(json.dumps([{"instruction": "q", "output": "a"}]))
    with open_dataset(str(path)) as opened:
        assert opened.kind == "array" and [e.value for e in opened.events] == [{"instruction": "q", "output": "a"}]
    with open_dataset(str(path), as_llamafactory=True) as opened:
        assert opened.kind == "text" and opened.looks == "array"
