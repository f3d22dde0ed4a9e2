"""Every verdict recorded in shared/research/datasets.md (from running LLaMA-Factory ff6d4d12e's real
converter + processor rules on datasets 4.0.0) is a case here, with its recorded consequence."""

from __future__ import annotations

import json

import pytest
from tests.data.conftest import by_record

SG = {"formatting": "sharegpt", "columns": {"messages": "conversations"}}
SG_RANK = {
    "formatting": "sharegpt",
    "ranking": True,
    "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"},
}
ROLE_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}


def turns(*roles):
    return {"conversations": [{"from": r, "value": f"text {i}"} for i, r in enumerate(roles)]}


# (case, entry, records, stage, expected verdict: keep / drop / crash, finding code)
CASES = [
    ("human,gpt kept", SG, [turns("human", "gpt")], "sft", "keep", None),
    ("human,gpt,human: Invalid message count", SG, [turns("human", "gpt", "human")], "sft", "drop", "message-count"),
    ("gpt,human: Invalid role tag", SG, [turns("gpt", "human")], "sft", "drop", "role-order"),
    ("system,human,gpt kept", SG, [turns("system", "human", "gpt")], "sft", "keep", None),
    ("human,system,gpt: Invalid role tag", SG, [turns("human", "system", "gpt")], "sft", "drop", "role-order"),
    ("human,observation: Invalid role tag", SG, [turns("human", "observation")], "sft", "drop", "role-order"),
    (
        "human,function_call,observation,gpt kept",
        SG,
        [
            {
                "conversations": [
                    {"from": "human", "value": "q"},
                    {"from": "function_call", "value": '{"name": "f", "arguments": {}}'},
                    {"from": "observation", "value": "r"},
                    {"from": "gpt", "value": "a"},
                ]
            }
        ],
        "sft",
        "keep",
        None,
    ),
    ("conversations [] dropped", SG, [{"conversations": []}], "sft", "drop", "processor-drop"),
    (
        "empty answer kept",
        SG,
        [{"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": ""}]}],
        "sft",
        "keep",
        "empty-answer",
    ),
    (
        "ranking prompt human,gpt: Invalid message count",
        SG_RANK,
        [dict(turns("human", "gpt"), chosen={"from": "gpt", "value": "a"}, rejected={"from": "gpt", "value": "b"})],
        "dpo",
        "drop",
        "message-count",
    ),
    (
        "ranking rejected null dropped",
        SG_RANK,
        [dict(turns("human"), chosen={"from": "gpt", "value": "a"}, rejected=None)],
        "dpo",
        "drop",
        "processor-drop",
    ),
    (
        "ranking chosen role human: warning, kept",
        SG_RANK,
        [dict(turns("human"), chosen={"from": "human", "value": "a"}, rejected={"from": "gpt", "value": "b"})],
        "dpo",
        "keep",
        "ranking-role",
    ),
    (
        'KTO tag "true" (string) dropped',
        {"formatting": "sharegpt", "columns": {"messages": "conversations", "kto_tag": "label"}},
        [dict(turns("human", "gpt"), label="true")],
        "kto",
        "drop",
        "processor-drop",
    ),
    ('alpaca output "" kept', None, [{"instruction": "q", "input": "", "output": ""}], "sft", "keep", "empty-answer"),
    (
        "alpaca empty instruction and input kept",
        None,
        [{"instruction": "", "input": "", "output": "a"}],
        "sft",
        "keep",
        "empty-prompt",
    ),
    (
        "alpaca history item of 3: ValueError",
        {"columns": {"prompt": "instruction", "query": "input", "response": "output", "history": "history"}},
        [{"instruction": "q", "input": "", "output": "a", "history": [["q", "a", "x"]]}],
        "sft",
        "crash",
        "history-item",
    ),
    (
        "role/content, tags without system_tag, leading system: Invalid role tag",
        {"formatting": "sharegpt", "columns": {"messages": "messages"}, "tags": ROLE_TAGS},
        [
            {
                "messages": [
                    {"role": "system", "content": "s"},
                    {"role": "user", "content": "q"},
                    {"role": "assistant", "content": "a"},
                ]
            }
        ],
        "sft",
        "drop",
        "unknown-role",
    ),
]


@pytest.mark.parametrize("case,entry,records,stage,verdict,code", CASES, ids=[c[0] for c in CASES])
def test_recorded_verdict(check, case, entry, records, stage, verdict, code):
    result = check(records, entry=entry, stage=stage)
    assert (result.keep, result.drop, result.crash) == (
        int(verdict == "keep"),
        int(verdict == "drop"),
        int(verdict == "crash"),
    ), result.to_json()
    found = by_record(result).get(1, set())
    if code:
        assert code in {c for c, _ in found}, found
    if verdict == "keep":
        assert result.exit_code == 0
    else:
        assert result.exit_code == 1


def test_history_mapped_but_absent_is_keyerror_crash(check):
    result = check(
        [{"instruction": "q", "input": "", "output": "a"}],
        entry={"columns": {"prompt": "instruction", "response": "output", "history": "history"}},
    )
    assert result.first_crash["record"] == 1
    assert "KeyError: 'history'" in result.first_crash["message"]


def test_openai_formatting_appends_detailed_thinking_off_and_keeps_system(check):
    tags = dict(ROLE_TAGS, system_tag="system")
    result = check(
        [
            {
                "messages": [
                    {"role": "system", "content": "s"},
                    {"role": "user", "content": "q"},
                    {"role": "assistant", "content": "a"},
                ]
            }
        ],
        entry={"formatting": "openai", "columns": {"messages": "messages"}, "tags": tags},
    )
    assert result.keep == 1 and result.exit_code == 0


# Version differences (read from the converters of each tag; research/datasets.md "Version history").
@pytest.mark.parametrize(
    "version,verdict,code",
    [
        ("0.7.1", "crash", "role-order"),  # raise ValueError: the whole run fails
        ("0.8.3", "crash", "unknown-role"),  # tag_mapping[...] KeyError for an unknown tag
        ("0.9.1", "crash", "unknown-role"),
        ("0.9.2", "drop", "unknown-role"),  # break: dropped
        ("0.9.5", "drop", "unknown-role"),
    ],
)
def test_unknown_role_by_version(check, version, verdict, code):
    result = check(
        [{"conversations": [{"from": "human", "value": "q"}, {"from": "bot", "value": "a"}]}], entry=SG, version=version
    )
    assert {c for c, _ in by_record(result)[1]} >= {code}
    assert getattr(result, verdict) == 1


@pytest.mark.parametrize(
    "version,verdict", [("0.7.1", "crash"), ("0.8.3", "drop"), ("0.9.1", "drop"), ("0.9.5", "drop")]
)
def test_misplaced_known_role_by_version(check, version, verdict):
    result = check([turns("gpt", "human")], entry=SG, version=version)
    assert getattr(result, verdict) == 1


def test_odd_count_cut_silently_before_0_8(check):
    result = check([turns("human", "gpt", "human")], entry=SG, version="0.7.1")
    assert result.keep == 1
    assert ("odd-count-cut", "silent") in by_record(result)[1]


@pytest.mark.parametrize("version,verdict", [("0.9.2", "crash"), ("0.9.3", "keep"), ("0.9.5", "keep")])
def test_null_images_by_version(check, version, verdict):
    records = [
        {
            "messages": [{"role": "user", "content": "<image>q"}, {"role": "assistant", "content": "a"}],
            "images": ["a.jpg"],
        },
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "images": None},
    ]
    result = check(
        records,
        entry={"formatting": "sharegpt", "columns": {"messages": "messages", "images": "images"}, "tags": ROLE_TAGS},
        version=version,
    )
    crashed = ("media-null", "crash") in by_record(result).get(2, set())
    assert crashed == (verdict == "crash")


def test_media_count_mismatch_crashes(check):
    records = [
        {
            "messages": [{"role": "user", "content": "<image><image>q"}, {"role": "assistant", "content": "a"}],
            "images": ["a.jpg"],
        }
    ]
    result = check(
        records,
        entry={"formatting": "sharegpt", "columns": {"messages": "messages", "images": "images"}, "tags": ROLE_TAGS},
    )
    assert result.crash == 1 and ("media-count", "crash") in by_record(result)[1]


def test_openai_tool_calls_null_crash_only_in_0_9_4(check):
    tags = dict(ROLE_TAGS, system_tag="system", observation_tag="tool", function_tag="function")
    records = [
        {
            "messages": [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": None, "tool_calls": [{"function": {"name": "w", "arguments": "{}"}}]},
                {"role": "tool", "content": "3C"},
                {"role": "assistant", "content": "It is 3C."},
            ]
        }
    ]
    entry = {"formatting": "openai", "columns": {"messages": "messages"}, "tags": tags}
    assert check(records, entry=entry, version="0.9.5").crash == 0
    result = check(records, entry=entry, version="0.9.4")
    assert result.first_crash and "NoneType" in result.first_crash["message"]


def test_stage_gate(check):
    """The file loads; LLaMA-Factory refuses the entry before loading it (heldout3 lf1027, lf1440)."""
    result = check([turns("human", "gpt")], entry=SG, stage="dpo")
    assert result.refused and "not applicable" in result.refused and "not applicable" in result.findings[0].message
    assert not result.load_fails and result.exit_code == 1
    assert result.summary().startswith("LLaMA-Factory would stop before loading the file: it refuses the entry")
    assert result.to_json()["refused"] == result.refused
    ranked = {"columns": {"prompt": "instruction", "response": "output"}, "ranking": True}
    result = check([{"instruction": "q", "output": ["a", "b"]}], entry=ranked, stage="sft")
    assert result.refused and not result.load_fails
    assert not check([turns("human", "gpt")], entry=SG, stage="sft").refused


def test_multimodal_plugin_reads_a_null_text_before_the_formatter(check, tmp_path):
    """heldout3 lf6743: a null answer in a Qwen2-VL set dies in the plugin's placeholder count, with
    that release's exception; a text-only template's plugin reads no text (the formatter's error)."""
    from PIL import Image

    Image.new("RGB", (28, 28)).save(tmp_path / "a.png")
    entry = {"formatting": "sharegpt", "columns": {"messages": "messages", "images": "images"}, "tags": ROLE_TAGS}
    records = [
        {
            "messages": [{"role": "user", "content": "<image>What?"}, {"role": "assistant", "content": None}],
            "images": ["a.png"],
        }
    ]
    new = check(records, entry=entry, version="0.9.5", template="qwen2_vl").first_crash
    assert new["message"].startswith("AttributeError: 'NoneType' object has no attribute 'count'"), new
    old = check(records, entry=entry, version="0.9.1", template="qwen2_vl").first_crash
    assert old["message"].startswith("TypeError: argument of type 'NoneType' is not iterable"), old
    text = [{"messages": [{"role": "user", "content": "What?"}, {"role": "assistant", "content": None}]}]
    plain = {"formatting": "sharegpt", "columns": {"messages": "messages"}, "tags": ROLE_TAGS}
    only_text = check(text, entry=plain, version="0.9.5", template="qwen").first_crash
    assert only_text["message"].startswith("RuntimeError: Expected a string, got None"), only_text


def test_one_record_several_faults_dies_of_the_first_llamafactory_meets(check, tmp_path):
    """Inside one record: the processor's drop rules, then the multimodal plugin (media the template
    cannot take), then the template's system+tools with the first turn, then each turn's formatter."""
    from PIL import Image

    Image.new("RGB", (28, 28)).save(tmp_path / "a.png")
    entry = {"formatting": "sharegpt", "columns": {"messages": "messages", "images": "images"}, "tags": ROLE_TAGS}
    null_turn = {
        "messages": [{"role": "user", "content": None}, {"role": "assistant", "content": "a"}],
        "images": ["a.png"],
    }
    crash = check([null_turn], entry=entry, version="0.9.5", template="qwen").first_crash
    assert crash["message"].startswith("ValueError: This model does not support image input"), crash
    tools = json.dumps([{"name": "f", "description": "d", "parameters": {"type": "object"}}])
    entry = {"formatting": "sharegpt", "columns": {"messages": "messages", "tools": "tools"}, "tags": ROLE_TAGS}
    record = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": None}], "tools": tools}
    crash = check([record], entry=entry, version="0.9.5", template="default").first_crash
    assert crash["message"].startswith("KeyError: 'properties'"), crash


def test_named_text_template_counts_no_placeholders(check):
    """A template given as text-only has no plugin to count: '<image>' in the text of a record whose
    data names an image column the entry does not map trains as text."""
    entry = {"formatting": "sharegpt", "columns": {"messages": "messages"}, "tags": ROLE_TAGS}
    record = {
        "messages": [{"role": "user", "content": "<image>q"}, {"role": "assistant", "content": "a"}],
        "image": "a.png",
    }
    assert check([record], entry=entry, version="0.9.5", template="qwen").keep == 1
