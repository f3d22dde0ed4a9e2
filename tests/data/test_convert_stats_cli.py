"""convert round trips, stats, the CLI contract (exit codes, --json), and reader robustness."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.data.conftest import DEMO

from mlops_cli.data.convert import run_convert
from mlops_cli.data.readers import Broken, Record, read_array, read_lines

CHAT = [
    {
        "conversations": [
            {"from": "system", "value": "Be kind."},
            {"from": "human", "value": "q1"},
            {"from": "gpt", "value": "a1"},
            {"from": "human", "value": "q2"},
            {"from": "gpt", "value": "a2"},
        ],
        "images": [],
    },
    {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]},
]


@pytest.mark.parametrize("via", ["openai", "alpaca"])
def test_sharegpt_round_trip_is_lossless(tmp_path, via):
    src = tmp_path / "in.json"
    src.write_text(json.dumps(CHAT))
    mid, back = tmp_path / f"mid.{via}.jsonl", tmp_path / "back.json"
    assert run_convert(str(src), str(mid), via).written == 2
    assert run_convert(str(mid), str(back), "sharegpt").written == 2
    again = json.loads(back.read_text())
    for before, after in zip(CHAT, again):
        turns = [t for t in before["conversations"] if t["from"] != "system"]
        assert after["conversations"] == turns
        sys_before = [t["value"] for t in before["conversations"] if t["from"] == "system"]
        assert after.get("system") == (sys_before[0] if sys_before else None)


def test_convert_writes_entry_without_clobbering_and_check_accepts_it(tmp_path, mlops):
    info = tmp_path / "dataset_info.json"
    info.write_text(json.dumps({"other": {"file_name": "other.json"}}))
    src = tmp_path / "in.json"
    src.write_text(json.dumps(CHAT + [{"conversations": [{"from": "bot", "value": "?"}]}]))
    run = mlops(
        "data",
        "convert",
        str(src),
        "-o",
        str(tmp_path / "out.jsonl"),
        "--to",
        "openai",
        "--info",
        str(info),
        "--name",
        "chat",
        "--json",
    )
    assert run.returncode == 1  # one record could not be converted and is listed
    doc = run.json()
    assert doc["written"] == 2 and doc["skipped"][0]["record"] == 3
    entries = json.loads(info.read_text())
    assert set(entries) == {"other", "chat"}
    assert entries["chat"]["tags"]["system_tag"] == "system"
    check = mlops("data", "check", "--info", str(info), "--name", "chat", "--json")
    assert check.returncode == 0, check.stdout
    assert check.json()["keep"] == 2


def test_convert_strict_writes_nothing(tmp_path, mlops):
    src = tmp_path / "in.json"
    src.write_text(json.dumps([{"conversations": [{"from": "bot", "value": "?"}]}]))
    out = tmp_path / "out.json"
    run = mlops("data", "convert", str(src), "-o", str(out), "--to", "alpaca", "--strict")
    assert run.returncode == 1 and not out.exists()
    assert not list(tmp_path.glob(".*tmp*"))


@pytest.mark.parametrize(
    "name", ["alpaca_en_demo", "glaive_toolcall_en_demo", "dpo_en_demo", "kto_en_demo", "mllm_demo", "c4_demo"]
)
def test_demo_entries_are_clean(mlops, name):
    run = mlops("data", "check", "--info", str(DEMO / "dataset_info.json"), "--name", name, "--json")
    assert run.returncode == 0, run.stdout
    assert run.json()["drop"] == 0 and run.json()["first_crash"] is None


@pytest.mark.parametrize(
    "name,needle",
    [
        ("mllm_no_tags", "KeyError: 'from'"),  # github.com/hiyouga/LlamaFactory/issues/6924
        ("alpaca_history_absent", "KeyError: 'history'"),
        ("dpo_wrong_keys", "KeyError: None"),  # github.com/hiyouga/LlamaFactory/issues/4720
    ],
)
def test_issue_entries_crash(mlops, name, needle):
    run = mlops("data", "check", "--info", str(DEMO / "dataset_info.json"), "--name", name, "--json")
    assert run.returncode == 1
    assert needle in run.json()["first_crash"]["message"]


def test_format_typo_is_reported(mlops):  # github.com/hiyouga/LlamaFactory/issues/7577
    run = mlops("data", "check", "--info", str(DEMO / "dataset_info.json"), "--name", "format_typo", "--json")
    assert run.returncode == 1
    assert any(f["code"] == "entry-unknown-key" and "formatting" in f["message"] for f in run.json()["findings"])


def test_exit_2_for_unusable_input(mlops, tmp_path):
    assert mlops("data", "check", str(tmp_path / "missing.json")).returncode == 2
    assert mlops("data", "check", str(tmp_path)).returncode == 2
    info = tmp_path / "dataset_info.json"
    info.write_text("{not json")
    run = mlops("data", "check", "--info", str(info), "--name", "x")
    assert run.returncode == 2 and run.stderr.startswith("error:")
    info.write_text("{}")
    assert mlops("data", "check", "--info", str(info), "--name", "x").returncode == 2


def test_findings_name_file_line_and_escape_hostile_text(mlops, tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text(
        json.dumps({"conversations": [{"from": "\x1b[31mevil", "value": "q"}, {"from": "gpt", "value": "a"}]}) + "\n"
    )
    run = mlops("data", "check", str(path))
    assert run.returncode == 1
    assert f"{path}:1 record 1" in run.stdout
    assert "\x1b" not in run.stdout


def test_stats_with_a_local_tokenizer(tmp_path, mlops):
    tokenizers = pytest.importorskip("tokenizers", reason="the `test` extra installs tokenizers")
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    vocab = {"[UNK]": 0, **{w: i + 1 for i, w in enumerate(["a", "b", "c", "d", "e", "f", "g", "h"])}}
    tok = tokenizers.Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = Whitespace()
    tok.save(str(tmp_path / "tokenizer.json"))
    data = tmp_path / "d.jsonl"
    data.write_text(
        json.dumps({"instruction": "a b", "input": "", "output": "c"})
        + "\n"
        + json.dumps({"instruction": " ".join(["a"] * 50), "input": "", "output": "b"})
        + "\n"
    )
    run = mlops("data", "stats", str(data), "--tokenizer", str(tmp_path), "--cutoff-len", "10", "--json")
    assert run.returncode == 0, run.stderr
    doc = run.json()
    assert doc["records"] == 2 and doc["over_cutoff"] == 1 and doc["cut_side"]["prompt"] == 1
    assert doc["tokens"]["max"] == 52  # 50 prompt tokens + 1 answer token + EOS


@settings(derandomize=True, max_examples=60, deadline=None)
@given(st.binary(max_size=300))
def test_readers_never_raise_on_any_bytes(data):
    for reader in (read_lines, read_array):
        for event in reader(io.BytesIO(data)):
            assert isinstance(event, (Record, Broken))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=8),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3),
    max_leaves=8,
)


@settings(derandomize=True, max_examples=60, deadline=None)
@given(st.lists(st.dictionaries(st.text(max_size=5), json_values, max_size=4), max_size=6), st.booleans())
def test_array_reader_returns_every_record_with_its_line(records, indent):
    text = json.dumps(records, indent=2 if indent else None)
    events = list(read_array(io.BytesIO(text.encode())))
    assert [e.value for e in events] == records
    for e in events:
        assert text.count("\n", 0, e.offset) + 1 == e.line


@pytest.mark.parametrize(
    "argv,library", [(["check", "d.parquet"], "pyarrow"), (["stats", "d.jsonl", "--tokenizer", "."], "tokenizers")]
)
def test_missing_optional_library_is_one_line_with_the_install_command(tmp_path, mlops, argv, library):
    pq = pytest.importorskip("pyarrow.parquet", reason="the test extra installs pyarrow (through datasets)")
    import pyarrow as pa

    pq.write_table(pa.table({"instruction": ["a"], "input": [""], "output": ["b"]}), str(tmp_path / "d.parquet"))
    (tmp_path / "d.jsonl").write_text(json.dumps({"instruction": "a", "input": "", "output": "b"}) + "\n")
    shadow = tmp_path / "shadow" / library  # the library made unimportable, as on a machine without the extra
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('not installed')\n")
    run = mlops("data", *argv, cwd=tmp_path, env={"PYTHONPATH": str(tmp_path / "shadow")})
    assert run.returncode == 3, run
    assert run.stdout == "" and run.stderr.count("\n") == 1, run
    assert run.stderr.startswith("error: ") and "pip install 'mlops-cli[data]'" in run.stderr, run


def test_without_orjson_the_standard_library_parser_gives_the_same_findings(tmp_path, mlops):
    path = tmp_path / "x.jsonl"
    path.write_text(
        json.dumps({"conversations": [{"from": "gpt", "value": "a"}]})
        + "\n"
        + '{"conversations": [{"from": "human", "value": NaN}]}\n'
    )
    shadow = tmp_path / "shadow" / "orjson"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('not installed')\n")
    fast = mlops("data", "check", str(path), "--json").json()
    slow = mlops("data", "check", str(path), "--json", env={"PYTHONPATH": str(tmp_path / "shadow")}).json()
    assert slow["parser"].startswith("json") and fast["parser"] == "orjson"
    assert [(f["code"], f.get("record")) for f in slow["findings"]] == [
        (f["code"], f.get("record")) for f in fast["findings"]
    ]
