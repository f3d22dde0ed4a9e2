"""`mlops patch`: options only; the work is in workdir.py (extract, diff) and ops.py (apply, status, revert)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from mlops_cli.options import DryRunOpt, JsonOpt, YesOpt
from mlops_cli.output import emit

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="""Patch an installed Python package (e.g. transformers inside vllm/vllm-openai) safely and repeatably.

extract -> edit -> diff (a patch pinned to package version + file sha256) -> apply to an image (a derived image is built), a running container or a local environment -> status -> revert. A new release: port (three-way merge). In a Dockerfile: dockerfile.

Examples:

  mlops patch extract vllm/vllm-openai:latest transformers/models/qwen2_5_vl/modeling_qwen2_5_vl.py -o work/

  mlops patch diff work/ -o qwen-mrope.patch

  mlops patch apply qwen-mrope.patch --image vllm/vllm-openai:latest --dry-run

  mlops patch port qwen-mrope.patch --image vllm/vllm-openai:v0.11.0

  mlops patch status patches/ --image vllm/vllm-openai:v0.11.0
""",
)

IMAGE_HELP = "A local image to patch (a derived image is built; the base is never changed)."
CONTAINER_HELP = "A running container to patch in place."
PYTHON_HELP = "The interpreter of a local environment (default: the one running mlops)."
ENGINE_HELP = "Container engine: docker (default) or podman (used when docker is absent). Env: MLOPS_ENGINE."
PACKAGE_HELP = "The package a plain diff (no mlops header) patches, e.g. transformers. Nothing is pinned then."
OVERRIDE_HELP = (
    "Allow a pinned patch on another package version or file hash when every hunk matches "
    "exactly at its line (a warning is printed)."
)


class Expect(str, Enum):
    applied = "applied"
    applicable = "applicable"


def _target(image: Optional[str], container: Optional[str], python: Optional[str], engine: Optional[str]):
    from mlops_cli.errors import UsageError
    from mlops_cli.patch.engine import select_engine
    from mlops_cli.patch.targets import ContainerTarget, ImageTarget, LocalTarget

    chosen = [name for name, value in (("--image", image), ("--container", container), ("--python", python)) if value]
    if len(chosen) > 1:
        raise UsageError(f"choose one target, not {' and '.join(chosen)}")
    if image:
        return ImageTarget(select_engine(engine), image)
    if container:
        return ContainerTarget(select_engine(engine), container)
    return LocalTarget(python)


# Docker's reference grammar (distribution/reference): [host[:port]/]path[:tag], lower-case path.
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REGISTRY = (
    r"(?:localhost|[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+|[A-Za-z0-9-]+(?=:))(?::[0-9]+)?/"  # has '.', ':' or is localhost
)
_IMAGE_REF = (
    rf"(?:{_REGISTRY})?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
)


def _check_tag(tag: Optional[str], image: Optional[str]) -> None:
    """A --tag docker would refuse is bad input, found before anything is inspected or built."""
    import re

    from mlops_cli.errors import UsageError

    if tag is None:
        return
    if not image:
        raise UsageError("--tag names the derived image; it goes with --image only")
    if not re.fullmatch(_IMAGE_REF, tag):
        raise UsageError(
            f"not a valid image tag: {tag!r}", hint="lower-case name[:tag], e.g. registry.local/vllm:mrope"
        )


def _check_image_ref(image: str) -> None:
    import re

    from mlops_cli.errors import UsageError

    if not re.fullmatch(_IMAGE_REF + r"(?:@sha256:[0-9a-f]{64})?", image):
        raise UsageError(f"not a valid image reference: {image!r}", hint="e.g. vllm/vllm-openai:v0.11.0")


def _opts(json_out: bool, **kw):
    from mlops_cli.patch.ops import Options

    return Options(json_mode=json_out, **kw)


def _emit_patch_report(report, json_out: bool) -> int:
    from mlops_cli.output import err_console

    code = emit(report, json_out)
    if report.result == "conflict" and report.problem:
        hint = report.hint or (
            "nothing was changed; if the target moved to a new release, carry the patch over with "
            "`mlops patch port` (docs/patch.md, 'Carrying a patch forward')"
        )
        err_console().print(f"error: {report.problem}", markup=False, highlight=False)
        err_console().print(f"hint: {hint}", markup=False, highlight=False)
    return code


@app.command(
    help="""Copy files of an installed package out of an image, container or environment into a work folder.

Records the package version and each file's sha256 (work/.mlops/extract.json) and keeps an untouched
copy; edit the copy at the top of the work folder, then run `mlops patch diff`. For an image, no
container is left behind. PATHs are relative to site-packages. Without --container/--python the
first argument is the image.

Examples:

  mlops patch extract vllm/vllm-openai:latest transformers/models/qwen2_5_vl/modeling_qwen2_5_vl.py -o work/

  mlops patch extract --container vllm transformers/modeling_rope_utils.py -o work/

  mlops patch extract --python .venv/bin/python transformers/modeling_rope_utils.py -o work/
"""
)
def extract(
    args: list[str] = typer.Argument(
        ..., metavar="[IMAGE] PATH...", help="Image (unless --container/--python), then paths."
    ),
    output: Path = typer.Option(..., "-o", "--output", help="A new or empty work folder."),
    image: Optional[str] = typer.Option(None, "--image", help=IMAGE_HELP),
    container: Optional[str] = typer.Option(None, "--container", help=CONTAINER_HELP),
    python: Optional[str] = typer.Option(None, "--python", help=PYTHON_HELP),
    engine: Optional[str] = typer.Option(None, "--engine", help=ENGINE_HELP),
    json_out: JsonOpt = False,
) -> int:
    from mlops_cli.errors import UsageError
    from mlops_cli.patch.workdir import extract as do_extract

    paths, img = list(args), image
    if not (img or container or python):
        if len(paths) < 2:
            raise UsageError("give an image and at least one PATH", hint="mlops patch extract IMAGE PATH... -o work/")
        img, paths = paths[0], paths[1:]
    return emit(do_extract(_target(img, container, python, engine), paths, output), json_out)


@app.command(
    help="""Turn the edits in a work folder into a pinned patch file.

The patch is a unified diff (usable with `patch -p1` too) with a header naming the package, its
version and each file's sha256 before and after. Refuses an edit that does not parse.

Examples:

  mlops patch diff work/ -o qwen-mrope.patch
"""
)
def diff(
    workdir: Path = typer.Argument(..., help="The folder `mlops patch extract` made."),
    output: Path = typer.Option(..., "-o", "--output", help="The patch file to write."),
    json_out: JsonOpt = False,
) -> int:
    from mlops_cli.patch.workdir import diff as do_diff

    return emit(do_diff(workdir, output), json_out)


@app.command(
    help="""Apply a patch to an image (builds a derived image), a running container, or a local environment.

Refuses another package version or a file whose sha256 differs from the pin (naming both);
already applied is a no-op (exit 0); a conflict changes nothing (exit 1). Patched files must
compile and the patched module must import in the target. Shows the plan and asks first,
unless --yes.

Examples:

  mlops patch apply qwen-mrope.patch --image vllm/vllm-openai:latest --dry-run

  mlops patch apply qwen-mrope.patch --image vllm/vllm-openai:latest --tag registry.local/vllm:mrope --yes

  mlops patch apply qwen-mrope.patch --container vllm --yes

  mlops patch apply qwen-mrope.patch --python .venv/bin/python
"""
)
def apply(
    patch: Path = typer.Argument(..., help="The patch file."),
    image: Optional[str] = typer.Option(None, "--image", help=IMAGE_HELP),
    container: Optional[str] = typer.Option(None, "--container", help=CONTAINER_HELP),
    python: Optional[str] = typer.Option(None, "--python", help=PYTHON_HELP),
    tag: Optional[str] = typer.Option(
        None, "--tag", help="Tag of the derived image (default: BASE_TAG-mlops-PATCHHASH)."
    ),
    package: Optional[str] = typer.Option(None, "--package", help=PACKAGE_HELP),
    allow_other_version: bool = typer.Option(False, "--allow-other-version", help=OVERRIDE_HELP),
    no_import_check: bool = typer.Option(
        False, "--no-import-check", help="Do not import the patched module in the target."
    ),
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    engine: Optional[str] = typer.Option(None, "--engine", help=ENGINE_HELP),
    json_out: JsonOpt = False,
) -> int:
    from mlops_cli.patch.ops import apply as do_apply

    _check_tag(tag, image)
    opts = _opts(
        json_out,
        package=package,
        allow_other_version=allow_other_version,
        dry_run=dry_run,
        yes=yes,
        import_check=not no_import_check,
        tag=tag,
    )
    return _emit_patch_report(do_apply(_target(image, container, python, engine), patch, opts), json_out)


@app.command(
    help="""Is the patch in the target? applied (exit 0) | not-applied (exit 1) | conflict (exit 1).

conflict means the target has neither the pinned original nor the patched file (or another
version): typically a new vLLM release with a new transformers; carry the patch over with
`mlops patch port`.

Given a FOLDER, every *.patch / *.diff in it, as one table: applied | not-applied | conflict |
other-version (pinned to another release). Exit 0 when every patch is applied; with
--expect applicable, when every patch is applied or applies cleanly (a new base image);
1 otherwise; 2 when a patch file is corrupt.

Examples:

  mlops patch status qwen-mrope.patch --image vllm/vllm-openai:latest-mlops-0123456789ab

  mlops patch status qwen-mrope.patch --container vllm --json

  mlops patch status patches/ --image vllm/vllm-openai:v0.11.0 --expect applicable
"""
)
def status(
    patch: Path = typer.Argument(..., help="The patch file, or a folder of patches."),
    image: Optional[str] = typer.Option(None, "--image", help=IMAGE_HELP),
    container: Optional[str] = typer.Option(None, "--container", help=CONTAINER_HELP),
    python: Optional[str] = typer.Option(None, "--python", help=PYTHON_HELP),
    package: Optional[str] = typer.Option(None, "--package", help=PACKAGE_HELP),
    allow_other_version: bool = typer.Option(False, "--allow-other-version", help=OVERRIDE_HELP),
    expect: Expect = typer.Option(
        Expect.applied, "--expect", help="Folder: what every patch must be for exit 0 (applied | applicable)."
    ),
    engine: Optional[str] = typer.Option(None, "--engine", help=ENGINE_HELP),
    json_out: JsonOpt = False,
) -> int:
    from mlops_cli.patch.ops import status as do_status

    opts = _opts(json_out, package=package, allow_other_version=allow_other_version)
    if patch.is_dir():
        from mlops_cli.patch.fleet import status_folder

        return emit(status_folder(_target(image, container, python, engine), patch, opts, expect.value), json_out)
    return _emit_patch_report(do_status(_target(image, container, python, engine), patch, opts), json_out)


@app.command(
    help="""Undo a patch in a running container or a local environment (images are never changed).

Local mode restores the backup taken at apply time, verified by sha256; otherwise the patch is
un-applied and the result checked against the pinned original sha256. Not applied is a no-op.

Examples:

  mlops patch revert qwen-mrope.patch --container vllm --yes

  mlops patch revert qwen-mrope.patch --python .venv/bin/python --dry-run
"""
)
def revert(
    patch: Path = typer.Argument(..., help="The patch file."),
    image: Optional[str] = typer.Option(None, "--image", help="Refused: images are never changed."),
    container: Optional[str] = typer.Option(None, "--container", help=CONTAINER_HELP),
    python: Optional[str] = typer.Option(None, "--python", help=PYTHON_HELP),
    package: Optional[str] = typer.Option(None, "--package", help=PACKAGE_HELP),
    allow_other_version: bool = typer.Option(False, "--allow-other-version", help=OVERRIDE_HELP),
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    engine: Optional[str] = typer.Option(None, "--engine", help=ENGINE_HELP),
    json_out: JsonOpt = False,
) -> int:
    from mlops_cli.errors import UsageError
    from mlops_cli.patch.ops import revert as do_revert

    if image:
        from mlops_cli.patch.engine import engine_name

        raise UsageError(
            "an image is never changed by mlops patch, so there is nothing to revert in it",
            hint=f"use the base image again, and remove the derived tag with {engine_name(engine)} rmi TAG",
        )
    opts = _opts(json_out, package=package, allow_other_version=allow_other_version, dry_run=dry_run, yes=yes)
    return _emit_patch_report(do_revert(_target(None, container, python, engine), patch, opts), json_out)


@app.command(
    help="""Carry a patch to another release of its package: a three-way merge of each file.

base = the file the patch was made against (pinned by sha256; from --base or mlops's store of
files it has seen), ours = the patch applied to it, theirs = the file in the target. A clean
merge writes a new patch pinned to the target's release (-o, default NAME-VERSION.patch) and
shows where each hunk moved. A conflict writes the merged files with standard markers into a
work folder (exit 1): edit them, then `mlops patch diff WORK -o NEW.patch`. When the release
already holds the change, it says so and writes no patch. Nothing in the target is changed.

Examples:

  mlops patch port qwen-mrope.patch --image vllm/vllm-openai:v0.11.0

  mlops patch port qwen-mrope.patch --python .venv/bin/python -o qwen-mrope-5.23.0.patch

  mlops patch port qwen-mrope.patch --image vllm/vllm-openai:v0.11.0 --base transformers-5.20.2-py3-none-any.whl
"""
)
def port(
    patch: Path = typer.Argument(..., help="The pinned patch to carry over."),
    output: Optional[Path] = typer.Option(
        None, "-o", "--output", help="The new patch (default: NAME-VERSION.patch beside NAME.patch)."
    ),
    image: Optional[str] = typer.Option(None, "--image", help="An image with the new release."),
    container: Optional[str] = typer.Option(None, "--container", help="A running container with the new release."),
    python: Optional[str] = typer.Option(
        None, "--python", help="The interpreter of an environment with the new release."
    ),
    base: Optional[Path] = typer.Option(
        None,
        "--base",
        help="Where the originals the patch was made against are: "
        "its work folder, a folder like site-packages, or the old release's wheel.",
    ),
    work: Optional[Path] = typer.Option(None, "--work", help="Folder for a conflict (default: NAME-VERSION.work)."),
    engine: Optional[str] = typer.Option(None, "--engine", help=ENGINE_HELP),
    json_out: JsonOpt = False,
) -> int:
    from mlops_cli.output import err_console
    from mlops_cli.patch.port import port as do_port

    report = do_port(_target(image, container, python, engine), patch, output, base, work, _opts(json_out))
    code = emit(report, json_out)
    if report.result == "conflict":
        conflicted = [f.path for f in report.files if f.outcome == "conflict"]
        err_console().print(
            f"error: {len(conflicted)} of {len(report.files)} file(s) need a person: "
            f"{conflicted[0]}" + (f" and {len(conflicted) - 1} more" if len(conflicted) > 1 else ""),
            markup=False,
            highlight=False,
        )
        err_console().print(
            f"hint: resolve the conflict markers in {report.work}, then: {report.finish}", markup=False, highlight=False
        )
    return code


@app.command(
    help="""Print a Dockerfile that applies a patch while the image is built (local mode in the build).

The build installs mlops, runs `mlops patch apply PATCH --yes` against the image's own Python
and fails loudly on another version or a conflict (never skips). The image gets the same labels
as `mlops patch apply --image`. Paste everything below FROM into your own Dockerfile, or build it
as is (the patch file must be in the build context).

Examples:

  mlops patch dockerfile qwen-mrope.patch --image vllm/vllm-openai:v0.11.0 > Dockerfile

  mlops patch dockerfile qwen-mrope.patch --image vllm/vllm-openai:v0.11.0 \\
      --install "python3 -m pip install --no-index --find-links /wheels mlops-cli"
"""
)
def dockerfile(
    patch: Path = typer.Argument(..., help="The patch file (copied from the build context)."),
    image: str = typer.Option(..., "--image", help="The base image (FROM)."),
    install: Optional[str] = typer.Option(
        None,
        "--install",
        help="The shell command that installs mlops in the build (default: pip install of this mlops version).",
    ),
    python: str = typer.Option("python3", "--python", help="The image's interpreter that holds the package."),
    engine: Optional[str] = typer.Option(
        None,
        "--engine",
        help="Check the patch against IMAGE in this engine first when the image is there (docker | podman).",
    ),
    check: bool = typer.Option(
        True, "--check/--no-check", help="Check against the local IMAGE first, when it is there."
    ),
    json_out: JsonOpt = False,
) -> int:
    from mlops_cli.patch.fleet import dockerfile as do_dockerfile

    _check_image_ref(image)
    return emit(do_dockerfile(patch, image, install, python, engine, check, _opts(json_out)), json_out)
