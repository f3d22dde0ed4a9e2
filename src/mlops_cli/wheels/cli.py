"""`mlops wheels`: options only; the work is in bundle.py."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mlops_cli.options import JsonOpt

app = typer.Typer(add_completion=False)

HELP = """\
Build an offline install bundle: the requirements and their whole dependency closure as
hash-checked wheels, resolved (with uv) for the machine the bundle goes to, plus a
hash-pinned requirements file per target, manifest.json and an install.sh that needs only
python3 + pip on the far side. Downloads are parallel and cached (a second bundle
re-downloads nothing). Default target: this machine.

Examples:

  mlops wheels swanlab==0.5.7

  mlops wheels -r requirements.txt --target ubuntu22.04-aarch64 --target rhel9 -o bundle

  mlops wheels 'swanlab\\[dashboard]==0.5.7' --python 3.10 --platform manylinux_2_28_aarch64

  mlops wheels target > box.json     (on the air-gapped box; then here:)
  mlops wheels swanlab==0.5.7 --target-file box.json --archive tar.gz

  mlops wheels --verify swanlab-0.5.7-bundle

Exit codes: 0 bundle written (or verified), 1 resolution/download/verification failed,
2 bad input (malformed requirement, unknown preset, unreadable file).
"""


def _targets(presets, python, platforms, target_files):
    """The targets asked for (default: this machine), and this machine as a target or None."""
    from mlops_cli import files
    from mlops_cli.errors import UsageError
    from mlops_cli.wheels import targets as T
    from mlops_cli.wheels.probe import probe_this_interpreter

    try:
        host, host_problem = T.host_target(probe_this_interpreter(with_tags=False)), None
    except UsageError as exc:  # e.g. building on macOS for Linux boxes: fine with explicit targets
        host, host_problem = None, exc

    def need_host():
        if host is None:
            raise UsageError(
                f"{host_problem.message}; name the target instead",
                hint="--target ubuntu22.04, --python X.Y --platform TAG, or --target-file FILE",
            )
        return host

    chosen = [T.from_preset(p, python if not platforms else None) for p in presets]
    if platforms:
        chosen += [T.from_flags(python, p, host if python else need_host()) for p in platforms]
    elif python and not presets:
        chosen.append(T.from_flags(python, None, need_host()))
    for f in target_files:
        text = files.read_input_text(f, what="target file", max_bytes=4 * 1024 * 1024)
        chosen.append(T.parse_target_file(text, files.show_path(f)))
    return T.dedupe_names(chosen or [need_host()]), host


def _exit_now_after_interrupt() -> None:
    """The bundle's temporary folder is gone and uv is stopped; page and download threads may sit
    in a network wait of up to a minute, which a normal exit would join. Nothing is left to clean."""
    import os
    import sys

    from mlops_cli.output import report_error

    code = report_error(KeyboardInterrupt())
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _check_index_urls(urls: list[str]) -> None:
    """http(s) URLs with a host and, if given, a port from 1 to 65535 (bad input: exit 2)."""
    from mlops_cli.errors import UsageError
    from mlops_cli.text import one_line, shorten
    from mlops_cli.wheels.index import origin, strip_credentials_loose

    for url in urls:
        shown = shorten(one_line(strip_credentials_loose(url)), 120)
        if (
            not url.lower().startswith(("http://", "https://"))
            or len(url.split("//", 1)[1].strip("/")) == 0
            or any(c.isspace() for c in url)
        ):
            raise UsageError(
                f"not an index URL: {shown!r}", hint="give an http(s) URL, e.g. --index-url https://pypi.org/simple"
            )
        if not origin(url)[1]:
            raise UsageError(f"not an index URL: {shown!r}: no host")


def _is_pip(requirement: str) -> bool:
    from packaging.requirements import Requirement

    return Requirement(requirement).name.lower() == "pip"


@app.command(help=HELP)
def wheels(
    reqs: Optional[list[str]] = typer.Argument(
        None, metavar="REQ", help="Requirements, e.g. swanlab==0.5.7 'pkg\\[extra]>=1'."
    ),
    requirement: list[Path] = typer.Option(
        [], "-r", "--requirement", help="Read requirements from this file (repeatable)."
    ),
    output: Optional[Path] = typer.Option(
        None, "-o", "--output", help="Bundle folder (default: NAME-VERSION-bundle here)."
    ),
    target: list[str] = typer.Option(
        [], "--target", help="Target preset, e.g. ubuntu22.04, rhel9-aarch64 (repeatable)."
    ),
    python: Optional[str] = typer.Option(
        None, "--python", help="Target Python X.Y (alone, with --platform, or overriding a preset's)."
    ),
    platform: list[str] = typer.Option(
        [], "--platform", help="Target platform tag, e.g. manylinux_2_28_aarch64 (one target each)."
    ),
    target_file: list[Path] = typer.Option(
        [], "--target-file", help="Target JSON printed on the target by `mlops wheels target`."
    ),
    index_url: str = typer.Option(
        "https://pypi.org/simple",
        "--index-url",
        envvar="MLOPS_WHEELS_INDEX_URL",
        help="Package index (PEP 503/691). Credentials: in the URL or ~/.netrc.",
    ),
    extra_index_url: list[str] = typer.Option(
        [], "--extra-index-url", help="Further index, used only for names the first lacks."
    ),
    sdist: str = typer.Option(
        "build", "--sdist", help="sdist-only dependencies: build (pure ones, on this host) or refuse."
    ),
    archive: str = typer.Option("dir", "--archive", help="dir, or tar.gz (reproducible: same inputs, same bytes)."),
    with_pip: bool = typer.Option(
        False,
        "--with-pip",
        help="Also bundle pip: install.sh runs it when the target has no pip or an "
        "old one; it is installed only into a venv, never over a system python's own pip.",
    ),
    check_install: bool = typer.Option(
        False,
        "--check-install",
        help="Install the bundle offline into a throwaway venv per target "
        "(any target whose Python is on this machine) and import it.",
    ),
    verify: Optional[Path] = typer.Option(
        None, "--verify", help="Re-hash a bundle folder or .tar.gz against its manifest; build nothing."
    ),
    print_target: bool = typer.Option(
        False, "--print-target", help="Print this interpreter as a target file (same as `mlops wheels target`)."
    ),
    json_out: JsonOpt = False,
) -> int:
    from mlops_cli.errors import UsageError
    from mlops_cli.output import emit, progress_enabled

    words = list(reqs or [])
    if print_target or words == ["target"]:
        from mlops_cli.wheels.probe import probe_this_interpreter
        from mlops_cli.wheels.result import TargetResult

        return emit(TargetResult(probe_this_interpreter()), json_out)
    if verify is not None or (len(words) == 2 and words[0] == "verify"):
        from mlops_cli.wheels.verify import verify_bundle

        return emit(verify_bundle(Path(verify or words[1])), json_out)
    if sdist not in ("build", "refuse"):
        raise UsageError(f"--sdist must be build or refuse, not {sdist!r}")
    if archive not in ("dir", "tar.gz"):
        raise UsageError(f"--archive must be dir or tar.gz, not {archive!r}")
    _check_index_urls([index_url, *extra_index_url])
    if not words and not requirement:
        raise UsageError(
            "nothing to bundle", hint="give requirements (mlops wheels swanlab==0.5.7) or -r requirements.txt"
        )
    from mlops_cli.wheels.bundle import BundleRequest, build_bundle, default_out_name
    from mlops_cli.wheels.resolve import validate_requirement

    for w in words:
        validate_requirement(w)
    out = output or Path(default_out_name(words, list(requirement)))  # named for what was asked, not for pip
    if with_pip and not any(_is_pip(w) for w in words):
        words.append("pip")
    chosen, host = _targets(target, python, platform, target_file)
    if check_install:
        from mlops_cli.wheels.checkinstall import interpreters_for

        interpreters_for(chosen)  # before any work: say which target has no interpreter here
    request = BundleRequest(
        requirements=words,
        requirement_files=list(requirement),
        targets=chosen,
        index_urls=[index_url, *extra_index_url],
        out=out,
        sdist_policy=sdist,
        archive=archive,
        check_install=check_install,
        show_progress=progress_enabled(json_out),
        chatty=progress_enabled(json_out),
    )
    try:
        result = build_bundle(request)
    except KeyboardInterrupt:
        _exit_now_after_interrupt()
    return emit(result, json_out)
