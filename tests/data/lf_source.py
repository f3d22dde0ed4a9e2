"""LLaMA-Factory's own converter, run from a source checkout, as the referee for `mlops data check`.

`LLAMAFACTORY_SRC` names a checkout of hiyouga/LLaMA-Factory, or an unpacked `llamafactory` wheel
(0.8.0 or later: `aligner.py` up to 0.9.1, `converter.py` from 0.9.2; .ci/run unpacks 0.9.5's wheel).
Its real `data/parser.py`, `data/converter.py` and `data/data_utils.py` are imported under a
private package name with three small stand-ins (a logger that records warnings, DATA_CONFIG,
"no ModelScope/OpenMind hub"), so neither torch nor transformers is needed. The file is loaded
with the real `datasets.load_dataset("json", ...)` as `loader.py` does.

The converter decides what is dropped ("Invalid role tag", "Invalid message count") and what
raises (KeyError, ValueError...). What the processor and the formatter do afterwards is applied
here as their documented one-line rules (processor/supervised.py, pairwise.py, feedback.py,
pretrain.py: the length checks; formatter.py: "Expected a string"; mm_plugin.py: the placeholder
count), since running them needs a tokenizer and torch.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

PACKAGE = "lf_under_test"
FILES = ("data/parser.py", "data/data_utils.py")
CONVERTERS = ("data/converter.py", "data/aligner.py")  # 0.9.2+ / 0.8.0-0.9.1

_LOGGING = """
RECORDED = []
class _Logger:
    def warning_rank0(self, msg, *a, **k): RECORDED.append(str(msg))
    warning_rank0_once = warning_rank0
    warning = warning_rank0
    def info_rank0(self, *a, **k): pass
    info = debug = info_rank0
def get_logger(name=None): return _Logger()
"""
_CONSTANTS = 'DATA_CONFIG = "dataset_info.json"\n'
_MISC = "def use_modelscope(): return False\ndef use_openmind(): return False\n"


def source_root() -> Optional[Path]:
    root = os.environ.get("LLAMAFACTORY_SRC")
    if not root:
        return None
    for pkg in (Path(root) / "src" / "llamafactory", Path(root) / "llamafactory"):  # a checkout, an unpacked wheel
        if any((pkg / rel).is_file() for rel in CONVERTERS):
            return pkg
    return None


def load(pkg: Path) -> types.SimpleNamespace:
    """Import the real parser/converter from `pkg` (a `src/llamafactory` folder)."""
    build = Path(tempfile.mkdtemp(prefix="lf-src-"))
    root = build / PACKAGE
    (root / "data").mkdir(parents=True)
    (root / "extras").mkdir()
    for init in (root, root / "data", root / "extras"):
        (init / "__init__.py").write_text("")
    (root / "extras" / "logging.py").write_text(_LOGGING)
    (root / "extras" / "constants.py").write_text(_CONSTANTS)
    (root / "extras" / "misc.py").write_text(_MISC)
    for rel in FILES + CONVERTERS:
        if (pkg / rel).is_file():
            shutil.copy(pkg / rel, root / rel)
    module = "converter" if (pkg / "data" / "converter.py").is_file() else "aligner"
    sys.path.insert(0, str(build))
    stubbed = importlib.util.find_spec("transformers") is None
    if stubbed:  # 0.9.2-0.9.3's parser imports cached_file only; removed again below (datasets looks for it)
        stub = types.ModuleType("transformers")
        stub.utils = types.ModuleType("transformers.utils")
        stub.utils.cached_file = None
        sys.modules["transformers"], sys.modules["transformers.utils"] = stub, stub.utils
    try:
        for name in list(sys.modules):
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                del sys.modules[name]
        parser = importlib.import_module(f"{PACKAGE}.data.parser")
        converter = importlib.import_module(f"{PACKAGE}.data.{module}")
        logging = importlib.import_module(f"{PACKAGE}.extras.logging")
    finally:
        sys.path.remove(str(build))
        if stubbed:
            del sys.modules["transformers"], sys.modules["transformers.utils"]
    formatter = (pkg / "data" / "formatter.py").read_text()
    # 0.9.1+ raise on a function call or tools text that is not JSON; before, it was trained without them
    strict_json = "Invalid JSON format in tool description" in formatter
    return types.SimpleNamespace(parser=parser, converter=converter, log=logging.RECORDED, strict_json=strict_json)


@dataclass
class Verdicts:
    load_error: Optional[str] = None
    per_record: list[str] = field(default_factory=list)  # keep / drop / crash, by record
    crash_message: Optional[str] = None
    converter_crashes: list[int] = field(default_factory=list)  # 1-based records the converter itself raised on


def _content_ok(messages: list[dict], strict_json: bool) -> bool:
    for m in messages:
        if m["role"] == "function":
            try:
                calls = json.loads(m["content"])
            except (TypeError, ValueError):
                return not strict_json
            for c in calls if isinstance(calls, list) else [calls]:
                if not isinstance(c, dict) or "name" not in c or "arguments" not in c:
                    return False
        elif not isinstance(m["content"], str):
            return False
    return True


def judge(lf: types.SimpleNamespace, info: dict, name: str, data_file: str, stage: str, media_dir: str) -> Verdicts:
    import datasets

    folder = tempfile.mkdtemp(prefix="lf-info-")  # older releases take only a folder holding dataset_info.json
    Path(folder, "dataset_info.json").write_text(json.dumps(info))
    attr = lf.parser.get_dataset_list([name], folder)[0]
    data_args = types.SimpleNamespace(
        media_dir=media_dir,
        dataset_dir=media_dir,
        streaming=False,
        preprocessing_num_workers=None,
        overwrite_cache=True,
    )
    out = Verdicts()
    try:
        ds = datasets.load_dataset(
            "json", data_files=[data_file], split="train", cache_dir=tempfile.mkdtemp(prefix="lf-cache-")
        )
    except Exception as exc:  # noqa: BLE001 - any load failure is the verdict
        out.load_error = f"{type(exc).__name__}: {exc}"
        return out
    data_args.image_dir = media_dir  # 0.9.0-0.9.1
    if hasattr(lf.converter, "get_dataset_converter"):
        convert = lf.converter.get_dataset_converter(attr.formatting, attr, data_args)
    else:  # the aligner of 0.8.0-0.9.1: run align_dataset over a one-record dataset
        training_args = types.SimpleNamespace(local_process_index=0)

        def convert(example: dict) -> Optional[dict]:
            rows = lf.converter.align_dataset(
                datasets.Dataset.from_list([example], features=ds.features), attr, data_args, training_args
            )
            if len(rows) == 0:  # 0.8's batched aligner leaves a broken record out
                return {"_prompt": [], "_response": [], "_system": "", "_tools": "", "_images": None}
            row = rows[0]
            return {k if k.startswith("_") else "_" + k: v for k, v in row.items()}

    for example in ds:
        try:
            row = convert(example)
        except Exception as exc:  # noqa: BLE001
            out.per_record.append("crash")
            out.converter_crashes.append(len(out.per_record))
            out.crash_message = out.crash_message or f"{type(exc).__name__}: {exc}"
            continue
        prompt, response = row["_prompt"], row["_response"]
        if stage == "pt":
            ok = bool(prompt)
        elif stage == "sft":
            ok = len(prompt) % 2 == 1 and len(response) == 1
        else:
            ok = len(prompt) % 2 == 1 and len(response) >= 2
        if not ok:
            out.per_record.append("drop")
            continue
        texts = prompt + response[:1]
        if not _content_ok(prompt + response, lf.strict_json) or (
            row["_system"] and not isinstance(row["_system"], str)
        ):
            verdict = "crash"
        else:
            verdict = "keep"
            # A multimodal template's plugin counts the placeholders (_validate_messages); an entry
            # that maps a media column is used with one. Without the column a text template reads
            # "<image>" as text.
            for key, tag in (("images", "<image>"), ("videos", "<video>"), ("audios", "<audio>")):
                n = sum(m["content"].count(tag) for m in texts)
                if getattr(attr, key, None) and len(row.get("_" + key) or []) != n:
                    verdict = "crash"
            if row["_tools"] and lf.strict_json:
                try:
                    json.loads(row["_tools"])
                except (TypeError, ValueError):
                    verdict = "crash"
        if verdict == "crash" and out.crash_message is None:
            out.crash_message = "formatter/mm_plugin"
        out.per_record.append(verdict)
    return out
