"""`mlops images match`: options only; the work is in match.py."""

from __future__ import annotations

from enum import Enum
from typing import Optional

import typer

from mlops_cli.options import JsonOpt

app = typer.Typer(add_completion=False, no_args_is_help=True)


class Metric(str, Enum):
    mse = "mse"
    ssim = "ssim"
    phash = "phash"


class Format(str, Enum):
    jpg = "jpg"
    png = "png"


@app.callback()
def images() -> None:
    """Image folders: pair originals with model outputs, stitch review strips.

    Example:

      mlops images match yuantu Effect_ox1 Effect_pf -o save_mse --labels
    """


@app.command(
    short_help="Pair originals with their outputs in other folders; stitch review strips.",
    help="""Pair every image of REF_DIR with its counterpart in each OTHER_DIR (file names need not
correspond), then stitch each reference and its matches side by side into OUT/001.jpg, 002.jpg, ...
in reference-file order, and list the pairs in OUT/matches.csv.

Pairing is one-to-one and optimal per folder (the Hungarian method over a matrix of thumbnail
distances), not the greedy "closest remaining pair" recipe; how often greedy would have paired
differently is reported. Unreadable files are listed and skipped (exit 1 at the end). OUT appears
whole or not at all; an existing OUT is replaced only if it is an earlier output of this command.
Needs the images extra: pip install 'mlops-cli\\[images]' (exit 3 without it).

Examples:

  mlops images match yuantu Effect_ox1 Effect_pf -o save_mse

  mlops images match originals upscaled -o review --labels --height 512 --max-distance 0.02

  mlops images match originals recoloured -o review --metric ssim --json | jq '.folders[].leftovers'
""",
)
def match(
    ref_dir: str = typer.Argument(..., metavar="REF_DIR", help="Folder of reference images (the originals)."),
    other_dirs: list[str] = typer.Argument(..., metavar="OTHER_DIR", help="Folders to pair with the references."),
    out: str = typer.Option(..., "--out", "-o", metavar="OUT", help="Folder to write the strips and matches.csv to."),
    metric: Metric = typer.Option(
        Metric.mse,
        "--metric",
        help="mse: pixels; ssim: structure, for outputs whose colours or contrast changed; "
        "phash: perceptual hash, for heavy edits.",
    ),
    size: int = typer.Option(64, "--size", min=8, max=128, help="Thumbnail side in pixels for mse and ssim."),
    max_distance: Optional[float] = typer.Option(
        None,
        "--max-distance",
        min=0.0,
        metavar="X",
        help="Leave pairs farther apart than X unmatched (mse 0..1, ssim 0..2, phash 0..64 bits).",
    ),
    height: Optional[int] = typer.Option(
        None,
        "--height",
        min=8,
        max=16384,
        metavar="H",
        help="Panel height in pixels \\[default: each reference's own height].",
    ),
    labels: bool = typer.Option(False, "--labels", help="Caption each panel with its folder, file and distance."),
    fmt: Format = typer.Option(Format.jpg, "--format", help="Strip file format."),
    json_out: JsonOpt = False,
) -> int:
    from mlops_cli.images.deps import require

    require(metric.value)

    from mlops_cli.images.match import Settings, run
    from mlops_cli.output import emit, progress_enabled

    settings = Settings(
        metric=metric.value, size=size, max_distance=max_distance, height=height, labels=labels, format=fmt.value
    )
    result = run(ref_dir, list(other_dirs), out, settings, show_progress=progress_enabled(json_out))
    return emit(result, json_out)
