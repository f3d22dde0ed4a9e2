"""`mlops data check|convert|stats`: options only; the work is in check.py, convert.py, stats.py."""

from __future__ import annotations

from typing import Optional

import typer

from mlops_cli.options import JsonOpt

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="""Fine-tuning data as LLaMA-Factory reads it: what it keeps, drops or crashes on, before the GPUs start.

Examples:

  mlops data check data/train.jsonl

  mlops data check --info data/dataset_info.json --name my_sft --stage sft

  mlops data convert chat.jsonl -o data/chat_sharegpt.json --to sharegpt --info data/dataset_info.json --name chat

  mlops data stats data/train.jsonl --tokenizer /models/qwen/tokenizer.json --cutoff-len 4096
""",
)


@app.command(
    "check",
    help="""Say, per record and per line, what LLaMA-Factory will keep, drop (with a warning) or crash
on, and whether `datasets` can load the file at all (BOM, trailing comma, NaN, mixed types, a column that
appears late). JSON, JSON Lines and Parquet are told apart by content, not by name.

Without --info the entry is inferred from the data (the one `mlops data convert` would write).
Exit 0: nothing dropped or crashing; 1: something would be dropped, crash, or the file would not load;
2: unusable input (missing file, bad dataset_info.json).

Examples:

  mlops data check data/train.jsonl

  mlops data check --info data/dataset_info.json --name my_sft --stage sft --llamafactory-version 0.9.1

  mlops data check --info data/dataset_info.json --name my_vl --template qwen2_vl

  mlops data check dpo.json --stage dpo --json | jq '.findings[] | select(.consequence=="crash")'
""",
)
def check(
    files: Optional[list[str]] = typer.Argument(
        None, metavar="FILE...", help="Data files ('-' = stdin). Default with --info: the entry's file_name."
    ),
    info: Optional[str] = typer.Option(
        None, "--info", metavar="dataset_info.json", help="LLaMA-Factory's dataset_info.json holding the entry."
    ),
    name: Optional[str] = typer.Option(None, "--name", metavar="NAME", help="The entry's name in --info."),
    fmt: str = typer.Option(
        "auto",
        "--format",
        metavar="alpaca|sharegpt|openai|auto",
        help="Without --info: the data's format (auto: from the first record).",
    ),
    stage: Optional[str] = typer.Option(
        None,
        "--stage",
        metavar="sft|rm|dpo|kto|pt",
        help="Training stage (default: from the entry: ranking -> dpo, kto_tag -> kto, else sft).",
    ),
    media_dir: Optional[str] = typer.Option(
        None,
        "--media-dir",
        metavar="DIR",
        help="Where images/videos/audios are (LLaMA-Factory's media_dir; "
        "default with --info: its folder). Without either, media "
        "files are not looked for.",
    ),
    version: Optional[str] = typer.Option(
        None, "--llamafactory-version", metavar="X", help="Judge by this release's rules (default: current, 0.9.5)."
    ),
    template: Optional[str] = typer.Option(
        None,
        "--template",
        metavar="NAME",
        help="The run's `template:` (qwen, qwen3, qwen2_vl, llama3...): what "
        "its plugin, thought words and tool format accept. Default: "
        "assumed qwen, or qwen2_vl when the entry maps media.",
    ),
    max_findings: int = typer.Option(
        1000, "--max-findings", min=0, metavar="N", help="List at most N findings (counts stay complete); 0 = all."
    ),
    json_out: JsonOpt = False,
) -> int:
    from mlops_cli.data.check import CheckOptions, run_check
    from mlops_cli.data.progress import byte_progress
    from mlops_cli.output import emit

    opts = CheckOptions(
        files=list(files or []),
        info=info,
        name=name,
        fmt=fmt,
        stage=stage,
        media_dir=media_dir,
        version=version,
        max_findings=max_findings,
        template=template,
    )
    with byte_progress(opts.files, json_out) as advance:
        result = run_check(opts, advance)
    return emit(result, json_out)


@app.command(
    "convert",
    help="""Convert between alpaca, sharegpt (from/value) and openai (role/content) files,
losslessly where the formats allow, and write the matching dataset_info.json entry (merged into an existing
file; other entries are kept). Records that cannot be converted are listed and skipped (--strict: nothing is
written). The output is written atomically: JSON Lines for .jsonl names, a JSON array otherwise.

Examples:

  mlops data convert alpaca.json -o data/chat.json --to sharegpt --info data/dataset_info.json --name chat

  mlops data convert sharegpt.json -o openai.jsonl --to openai
""",
)
def convert(
    source: str = typer.Argument(..., metavar="IN", help="The data file to convert ('-' = stdin)."),
    output: str = typer.Option(..., "-o", "--output", metavar="OUT", help="Where to write the converted file."),
    to: str = typer.Option(..., "--to", metavar="sharegpt|openai|alpaca", help="The format to write."),
    info: Optional[str] = typer.Option(
        None,
        "--info",
        metavar="dataset_info.json",
        help="Write the entry into this dataset_info.json (created if absent).",
    ),
    name: Optional[str] = typer.Option(None, "--name", metavar="NAME", help="The entry's name (with --info)."),
    strict: bool = typer.Option(
        False, "--strict", help="Fail (exit 1, nothing written) if any record cannot be converted."
    ),
    json_out: JsonOpt = False,
) -> int:
    from mlops_cli.data.convert import run_convert
    from mlops_cli.output import emit

    return emit(run_convert(source, output, to, info=info, name=name, strict=strict), json_out)


@app.command(
    "stats",
    help="""Record counts, turns per record, lengths in characters and, with a local tokenizer.json
(read with the `tokenizers` library, no download), in tokens: how many records exceed cutoff_len and which side
LLaMA-Factory would cut (it truncates, it does not drop). A histogram on a terminal.

Examples:

  mlops data stats data/train.jsonl

  mlops data stats data/train.jsonl --tokenizer /models/qwen/tokenizer.json --cutoff-len 4096 --json
""",
)
def stats(
    path: str = typer.Argument(..., metavar="FILE", help="The data file ('-' = stdin)."),
    tokenizer: Optional[str] = typer.Option(
        None, "--tokenizer", metavar="PATH", help="A tokenizer.json file, or a model folder holding one."
    ),
    cutoff_len: int = typer.Option(2048, "--cutoff-len", min=1, help="LLaMA-Factory's cutoff_len."),
    fmt: str = typer.Option("auto", "--format", metavar="alpaca|sharegpt|openai|auto", help="The data's format."),
    json_out: JsonOpt = False,
) -> int:
    from mlops_cli.data.stats import run_stats
    from mlops_cli.output import emit

    return emit(run_stats(path, tokenizer=tokenizer, cutoff_len=cutoff_len, fmt=fmt), json_out)
