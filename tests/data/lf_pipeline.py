"""LLaMA-Factory's WHOLE data pipeline, run for real, as the referee that records ground truth.

Not a test: a script run by hand in a venv that has torch (CPU), transformers and peft/trl
(tests/data/lf_source.py, which needs none of them, is what CI runs). For each case and each
release it imports that release's own `llamafactory.data` from an unpacked wheel and runs:

* `get_dataset(...)` on the whole file, exactly as `llamafactory-cli train` does (the real
  `datasets.load_dataset` picked by extension, the real converter, processor, template, formatter
  and multimodal plugin, with a real tokenizer and, for a multimodal template, a real Qwen2-VL
  image processor loading the real image files): the run's outcome;
* then, record by record, the real converter and the real processor on `dataset.select([i])`
  of the file as `datasets` loaded it (so columns the whole file lacks stay lacking): keep (one
  row comes out), drop (none), or crash (the exception, which stops the real run).

The tokenizer is a word-level `tokenizers` tokenizer built here (no hub download; every word is one
token, so nothing is cut at cutoff_len 2048). What a record's fate depends on (roles, counts, JSON,
placeholders, types) is independent of the vocabulary.

    python tests/data/lf_pipeline.py --src /tmp/lf2/u-0.9.5 --manifest M.json --out OUT.json

writes {"version": ..., "cases": {case: {"run": ..., "records": [...]}}}.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.machinery
import importlib.util
import io
import json
import os
import shutil
import sys
import tempfile
import traceback
import types
from pathlib import Path

SPECIAL = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<think>",
    "</think>",
    "<tool_call>",
    "</tool_call>",
    "<tool_response>",
    "</tool_response>",
    "<|begin_of_text|>",
    "<|eot_id|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<image>",
    "<video>",
    "<audio>",
]


def _stub(name: str) -> None:
    if importlib.util.find_spec(name) is None:
        module = types.ModuleType(name)
        module.__spec__ = importlib.machinery.ModuleSpec(name, None)
        sys.modules[name] = module


def import_release(src: Path) -> tuple[types.ModuleType, str]:
    """The release's package with an empty top-level __init__ (it would import the CLI and models)."""
    build = Path(tempfile.mkdtemp(prefix="lfp-"))
    pkg = next(p for p in ("llamafactory", "llmtuner") if (src / p).is_dir())
    shutil.copytree(src / pkg, build / pkg)
    env = (src / pkg / "extras" / "env.py").read_text() if (src / pkg / "extras" / "env.py").exists() else ""
    (build / pkg / "__init__.py").write_text(env or "")
    dist = next(src.glob("*.dist-info"), None)  # llmtuner-0.7.1.dist-info: the release, for any package
    version = dist.name.removesuffix(".dist-info").split("-")[1] if dist else src.name
    _stub("torchaudio")
    os.environ["DISABLE_VERSION_CHECK"] = "1"
    sys.path.insert(0, str(build))
    return importlib.import_module(pkg), version.removesuffix(".dev0")


def make_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[UNK]": 0}
    for tok in SPECIAL:
        vocab[tok] = len(vocab)
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token="<|endoftext|>", pad_token="<|endoftext|>", unk_token="[UNK]"
    )
    tok.add_special_tokens({"additional_special_tokens": SPECIAL[1:]})
    return tok


def make_processor(tokenizer):
    """A Qwen2-VL processor built from defaults (offline): the real image processor and plugin."""
    from transformers import Qwen2VLImageProcessor

    proc = types.SimpleNamespace(image_processor=Qwen2VLImageProcessor(), tokenizer=tokenizer)
    proc.image_token = "<|image_pad|>"
    proc.video_token = "<|video_pad|>"
    return proc


def _error(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) < 600 else text[:597] + "..."


def run_case(pkg, version: str, case: dict, root: Path) -> dict:
    from transformers import Seq2SeqTrainingArguments

    loader = importlib.import_module(pkg.__name__ + ".data.loader")
    template_mod = importlib.import_module(pkg.__name__ + ".data.template")
    hparams = importlib.import_module(pkg.__name__ + ".hparams.data_args")
    folder = root / case["folder"]
    work = Path(tempfile.mkdtemp(prefix="lfp-case-"))
    shutil.copytree(folder, work / "d")
    if (root / "media").is_dir():  # records name their images ../media/x.png
        shutil.copytree(root / "media", work / "media")
    if case.get("generated"):
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
        from tests.data.heldout_files import materialize

        materialize(case["generated"], work / "d")
    stage = case.get("stage", "sft")
    template_name = case.get("template", "qwen")
    fields = {f for f in hparams.DataArguments.__dataclass_fields__}
    kwargs = dict(
        template=template_name, dataset=case["name"], dataset_dir=str(work / "d"), cutoff_len=2048, overwrite_cache=True
    )
    if "media_dir" in fields:
        kwargs["media_dir"] = str(work / "d")
    if "image_dir" in fields:
        kwargs["image_dir"] = str(work / "d")
    data_args = hparams.DataArguments(**kwargs)
    model_args = types.SimpleNamespace(
        cache_dir=str(work / "cache"),
        hf_hub_token=None,
        ms_hub_token=None,
        om_hub_token=None,
        model_revision="main",
        trust_remote_code=False,
        visual_inputs=False,
    )
    training_args = Seq2SeqTrainingArguments(output_dir=str(work / "out"), do_train=True, report_to=[])
    tokenizer = make_tokenizer()
    out: dict = {"template": template_name, "stage": stage, "loads": datasets_loads(work / "d", case["name"])}
    try:
        tparams = get_params(template_mod.get_template_and_fix_tokenizer)
        if "data_args" in tparams:
            template = template_mod.get_template_and_fix_tokenizer(tokenizer, data_args)
        else:
            template = template_mod.get_template_and_fix_tokenizer(tokenizer, template_name)
    except Exception as exc:  # noqa: BLE001
        out["run"] = "setup: " + _error(exc)
        return out
    plugin = getattr(template, "mm_plugin", None)
    processor = make_processor(tokenizer) if plugin is not None and getattr(plugin, "image_token", None) else None
    params = get_params(loader.get_dataset)
    call = {
        "model_args": model_args,
        "data_args": data_args,
        "training_args": training_args,
        "stage": stage,
        "tokenizer": tokenizer,
        "processor": processor,
        "template": template,
    }
    call = {k: v for k, v in call.items() if k in params}
    raw: list = []
    real_load = loader.load_dataset

    def capture(*a, **kw):
        ds = real_load(*a, **kw)
        raw.append(ds)
        return ds

    out["run"] = _get(loader, call, capture)
    if not raw:
        out["records"] = None  # the file did not load (or the entry was refused) before conversion
        return out
    ds = raw[0]
    verdicts = []
    for i in range(len(ds)):
        result = _get(loader, call, lambda *a, _i=i, **kw: ds.select([_i]))
        if result.startswith("ok: 1 "):
            verdicts.append(["keep", ""])
        elif (
            result.startswith(("ok: 0 ", "StopIteration"))
            or "Cannot find valid samples" in result
            or "Cannot find sufficient samples" in result
        ):
            # StopIteration: next(iter(dataset)) on the empty dataset the converter left (<= 0.8.3
            # drops a broken record there); a whole run that loses every record dies the same way
            verdicts.append(["drop", ""])
        else:
            verdicts.append(["crash", result])
    if stage == "kto":
        _kto_in_batch(pkg, loader, call, ds, verdicts)
    out["records"] = verdicts
    return out


def _kto_in_batch(pkg, loader, call: dict, ds, verdicts: list) -> None:
    """KTO pairs each record with another record's answer of the same batch (the KL pass), which a
    one-record run cannot show: run the whole file once more with the real processor, its per-example
    encoder wrapped so that an exception is recorded against its record (found by identity in the
    batch) instead of ending the run. 0.9.0+ (0.8's converter removes dropped records from the batch,
    so batch positions are not record numbers there)."""
    names = [
        (
            pkg.__name__ + ".data.processor.feedback",
            "FeedbackDatasetProcessor",
            "_encode_data_example",
            "preprocess_dataset",
        ),
        (pkg.__name__ + ".data.processors.feedback", None, "_encode_feedback_example", "preprocess_feedback_dataset"),
    ]
    for spec in names:
        try:
            module = importlib.import_module(spec[0])
        except ImportError:
            continue
        break
    else:
        return
    _module_name, cls_name, encode_name, batch_name = spec
    owner = getattr(module, cls_name) if cls_name else module
    state = {"examples": None, "offset": 0, "failed": {}}
    real_encode, real_batch = getattr(owner, encode_name), getattr(owner, batch_name)

    def encode(*a, **kw):
        try:
            return real_encode(*a, **kw)
        except Exception as exc:  # noqa: BLE001 - recorded against its record
            prompts = state["examples"]["_prompt"]
            j = next(k for k, p in enumerate(prompts) if p is kw["prompt"])
            state["failed"].setdefault(state["offset"] + j, _error(exc))
            return [], [], [], [], True

    def batch(*a, **kw):
        examples = a[1] if cls_name else (a[0] if a else kw["examples"])
        state["examples"] = examples
        try:
            return real_batch(*a, **kw)
        finally:
            state["offset"] += len(examples["_prompt"])

    setattr(owner, encode_name, encode)
    setattr(owner, batch_name, batch)
    preprocess = importlib.import_module(pkg.__name__ + ".data.preprocess") if cls_name is None else None
    if preprocess is not None:
        real_pre = getattr(preprocess, batch_name)
        setattr(preprocess, batch_name, batch)
    try:
        _get(loader, call, lambda *a, **kw: ds)
    finally:
        setattr(owner, encode_name, real_encode)
        setattr(owner, batch_name, real_batch)
        if preprocess is not None:
            setattr(preprocess, batch_name, real_pre)
    for index, message in state["failed"].items():
        # keep -> crash; a record that crashes alone too dies here with the batch's exception when the
        # KL pairing fails first (it is looked at before the record's own messages are processed)
        if (
            index < len(verdicts)
            and verdicts[index][0] in ("keep", "crash")
            and not verdicts[index][1].startswith(message[:40])
        ):
            verdicts[index] = ["crash", "KTO KL pass: " + message]


def _get(loader, call: dict, load) -> str:
    """One real get_dataset run with `load` in place of datasets.load_dataset: its outcome."""
    real = loader.load_dataset
    loader.load_dataset = load
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            module = loader.get_dataset(**call)
        rows = module["train_dataset"] if isinstance(module, dict) else module
        if isinstance(rows, dict):  # DatasetDict of older releases
            rows = rows.get("train_dataset", rows.get("train"))
        return f"ok: {len(rows)} rows"
    except BaseException as exc:  # noqa: BLE001 - the outcome is what we record
        if isinstance(exc, KeyboardInterrupt):
            raise
        return _error(exc)
    finally:
        loader.load_dataset = real


def datasets_loads(folder: Path, name: str):
    """What the real datasets.load_dataset does with the entry's file(s), the builder picked by
    extension as LLaMA-Factory does: True, or the error."""
    import datasets

    info = json.loads((folder / "dataset_info.json").read_text())[name]
    path = folder / info["file_name"]
    files = sorted(str(p) for p in path.iterdir()) if path.is_dir() else [str(path)]
    builder = {
        "json": "json",
        "jsonl": "json",
        "parquet": "parquet",
        "arrow": "arrow",
        "csv": "csv",
        "txt": "text",
    }.get(files[0].rsplit(".", 1)[-1])
    try:
        ds = datasets.load_dataset(
            builder, data_files=files, split="train", cache_dir=tempfile.mkdtemp(prefix="lfp-ds-")
        )
        return True if len(ds) else "empty"
    except Exception as exc:  # noqa: BLE001
        return _error(exc)


def get_params(fn) -> set:
    import inspect

    return set(inspect.signature(fn).parameters)


def case_runs(case: dict) -> list[dict]:
    """The runs of a case: its `runs` (each overriding name/stage/template/versions) or one run."""
    base = {k: case[k] for k in ("case", "folder", "name", "stage", "template", "versions", "generated") if k in case}
    return [dict(base, **run) for run in case.get("runs", [{}])]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True, help="an unpacked llamafactory wheel")
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", default=None)
    ap.add_argument("--only-stage", default=None, help="only the runs of this stage (re-record KTO runs)")
    args = ap.parse_args()
    manifest = json.loads(Path(args.manifest).read_text())
    root = Path(args.manifest).resolve().parent
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    pkg, version = import_release(Path(args.src))
    result = {"version": version, "datasets": datasets.__version__, "cases": {}}
    for case in manifest:
        if args.only and case["case"] != args.only:
            continue
        for n, run in enumerate(case_runs(case)):
            if version not in run["versions"] or (args.only_stage and run.get("stage", "sft") != args.only_stage):
                continue
            key = f"{case['case']}#{n}"
            try:
                result["cases"][key] = run_case(pkg, version, run, root)
            except Exception:  # noqa: BLE001 - a harness fault, reported as such
                result["cases"][key] = {"harness_error": traceback.format_exc()[-1500:]}
            print(key, json.dumps(result["cases"][key], ensure_ascii=False)[:300], file=sys.stderr)
    Path(args.out).write_text(json.dumps(result, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
