"""A second held-out set, drawn at random (seed fixed) AFTER check's template/tools/media rules were
written: files of random records across the classes the first held-out set showed, each run under
a random chat template, for the real pipeline (tests/data/lf_pipeline.py) to judge.

    python tests/data/heldout_fuzz.py tests/fixtures/data/heldout     # writes fuzz_*/ and fuzz_cases.json

Nothing here was tuned against LLaMA-Factory's answers: the generator was written, the seed chosen,
the ground truth recorded and `check` scored once (docs/benchmarks.md has that first score).
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

SEED = 20261130
FILES = 48
VERSIONS = ["0.8.3", "0.9.1", "0.9.2", "0.9.3", "0.9.4", "0.9.5"]
TEMPLATES = [
    "qwen",
    "qwen3",
    "qwen2_vl",
    "llama3",
    "glm4",
    "default",
    "mistral",
    "qwen3_nothink",
    "deepseek3",
    "chatml",
    "qwen3_vl",
]
CALL = '{"name": "get_weather", "arguments": {"city": "Paris"}}'
FUNCTION_CALLS = [
    CALL,
    "[" + CALL + ", " + CALL + "]",
    '{"name": "get_weather"}',
    "get_weather(city=Paris)",
    "<think>check the weather</think>" + CALL,
    "<think>\ncheck the weather\n</think>\n\n" + CALL,
    "<tool_call>" + CALL + "</tool_call>",
    "Let me look.<tool_call>" + CALL + "</tool_call>",
    "<think>plan</think>ok<tool_call>" + CALL + "</tool_call>",
    '{"name": "f", "arguments": "{}"}',
]
TOOL = {
    "name": "get_weather",
    "description": "weather",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string", "description": "the city"}},
        "required": ["city"],
    },
}
TOOLS = [
    json.dumps([TOOL]),
    json.dumps([{"name": "f", "description": "d", "parameters": {}}]),
    json.dumps([{"type": "function", "function": TOOL}]),
    json.dumps(TOOL),
    "",
    " ",
    "[]",
    "null",
    "not json",
    json.dumps([TOOL, "oops"]),
]
TEXTS = [
    "Hello there.",
    "What is 2+2?",
    "It is 4.",
    "",
    "Describe <image> please.",
    "<image><image>Compare.",
    "HTML has a <video> tag.",
    "<think>\nreason\n</think>\n\nanswer",
    "<think>unclosed answer",
    "Use <audio> here.",
]
IMAGES = [[], ["../media/a.png"], ["../media/a.png", "../media/b.png"], None, ["../media/missing.png"]]


def _content(rnd: random.Random, nulls: bool) -> object:
    if nulls and rnd.random() < 0.08:
        return None
    return rnd.choice(TEXTS)


def _sharegpt(rnd: random.Random, keys: tuple, roles: dict, nulls: bool, tools: bool) -> list:
    rk, ck = keys
    turns = []
    if rnd.random() < 0.3:
        turns.append({rk: roles["system"], ck: "You are helpful."})
    n = rnd.choice([1, 2, 2, 2, 3, 4])
    for _ in range(n):
        turns.append({rk: roles["user"], ck: _content(rnd, nulls)})
        if tools and rnd.random() < 0.5:
            turns.append({rk: roles["function"], ck: rnd.choice(FUNCTION_CALLS)})
            turns.append({rk: roles["observation"], ck: '{"temp": 21}'})
        turns.append({rk: roles["assistant"], ck: _content(rnd, nulls)})
    r = rnd.random()
    if r < 0.08:
        turns.pop()  # odd count
    elif r < 0.14:
        turns.insert(rnd.randrange(len(turns) + 1), {rk: roles["system"], ck: "late system"})
    elif r < 0.18:
        turns[rnd.randrange(len(turns))][rk] = "bot"
    return turns


def make_file(rnd: random.Random) -> tuple[list, dict, str]:
    """(records, entry, stage) of one file."""
    layout = rnd.choice(["sharegpt", "sharegpt", "role_content", "alpaca", "ranking", "kto"])
    nulls = rnd.random() < 0.4
    media = layout in ("sharegpt", "role_content") and rnd.random() < 0.45
    tools = layout in ("sharegpt", "role_content") and not media and rnd.random() < 0.6
    stage = {"ranking": "rm", "kto": "kto"}.get(layout, "sft")
    recs = []
    if layout == "role_content":
        roles = {
            "system": "system",
            "user": "user",
            "assistant": "assistant",
            "function": "function_call",
            "observation": "tool",
        }
        keys, col = ("role", "content"), "messages"
        tags = {
            "role_tag": "role",
            "content_tag": "content",
            "user_tag": "user",
            "assistant_tag": "assistant",
            "observation_tag": "tool",
        }
        if rnd.random() < 0.7:
            tags["system_tag"] = "system"
    else:
        roles = {
            "system": "system",
            "user": "human",
            "assistant": "gpt",
            "function": "function_call",
            "observation": "observation",
        }
        keys, col, tags = ("from", "value"), "conversations", None
    for _ in range(rnd.randint(3, 7)):
        if layout == "alpaca":
            rec = {
                "instruction": _content(rnd, nulls),
                "input": rnd.choice(["", "context", None]),
                "output": _content(rnd, nulls),
            }
            if rnd.random() < 0.5:
                rec["history"] = rnd.choice([[], [["q", "a"]], [["q", None]], [["q", "a", "x"]]])
        elif layout == "ranking":
            conv = _sharegpt(rnd, keys, roles, nulls, False)
            if conv and conv[-1][keys[0]] == roles["assistant"]:
                conv.pop()
            rec = {
                col: conv,
                "chosen": {"from": "gpt", "value": _content(rnd, nulls)},
                "rejected": rnd.choice([{"from": "gpt", "value": "worse"}, {"from": "human", "value": "x"}, None]),
            }
        else:
            rec = {col: _sharegpt(rnd, keys, roles, nulls, tools)}
            if layout == "kto":
                rec["label"] = rnd.choice([True, False, True])
            if tools:
                rec["tools"] = rnd.choice(TOOLS)
            if media:
                rec["images"] = rnd.choice(IMAGES)
        recs.append(rec)
    entry: dict = {"file_name": "d.jsonl"}
    if layout == "alpaca":
        entry["columns"] = {"prompt": "instruction", "query": "input", "response": "output"}
        if any("history" in r for r in recs):
            entry["columns"]["history"] = "history"
    else:
        entry["formatting"] = "sharegpt"
        entry["columns"] = {"messages": col}
        if tags:
            entry["tags"] = tags
        if tools:
            entry["columns"]["tools"] = "tools"
        if media and rnd.random() < 0.85:
            entry["columns"]["images"] = "images"
        if layout == "ranking":
            entry["ranking"] = True
            entry["columns"].update(chosen="chosen", rejected="rejected")
        if layout == "kto":
            entry["columns"]["kto_tag"] = "label"
    return recs, entry, stage


def main(root: Path) -> int:
    rnd = random.Random(SEED)
    manifest = []
    for i in range(FILES):
        recs, entry, stage = make_file(rnd)
        folder = root / f"fuzz_{i:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "d.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs))
        (folder / "dataset_info.json").write_text(json.dumps({"e": entry}, indent=2) + "\n")
        templates = rnd.sample(TEMPLATES, 2)
        manifest.append(
            {
                "case": f"fuzz_{i:02d}",
                "folder": f"fuzz_{i:02d}",
                "name": "e",
                "stage": stage,
                "runs": [{"template": t, "versions": VERSIONS} for t in templates],
            }
        )
    (root / "fuzz_cases.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
