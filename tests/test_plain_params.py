"""mlops_cli.plain_params: the same values as Typer's own (pydantic) coercion, without pydantic.

Every registered command is parsed twice, once as Typer builds it and once with plain params,
on command lines drawn from its own options and a pool of awkward values (empty, '-', a file
where a folder is expected, a missing path, an environment variable for a flag); the outcomes
(values, or the error and its message) must be identical.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Optional

import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlops_cli import cli
from mlops_cli.plain_params import _runtime_param_class, use_plain_params

pytestmark = pytest.mark.skipif(
    _runtime_param_class() is None, reason="this Typer coerces with click, not pydantic: nothing to replace"
)


demo = typer.Typer()


@demo.command()
def _demo(
    words: Optional[list[str]] = typer.Argument(None),
    existing: Optional[Path] = typer.Option(None, "--existing", exists=True),
    file_only: Optional[Path] = typer.Option(None, "--file-only", dir_okay=False),
    dir_only: Optional[Path] = typer.Option(None, "--dir-only", file_okay=False, exists=True),
    many: list[Path] = typer.Option([], "--many", exists=True),
    text: str = typer.Option("d", "--text", envvar="DEMO_TEXT"),
    flag: bool = typer.Option(False, "--flag", envvar="DEMO_FLAG"),
    count: int = typer.Option(0, "--count"),  # not plain: stays Typer's
) -> None:
    pass


def _command(name):
    if name == "demo":  # Path checks no registered command uses yet
        return typer.main.get_command(demo)
    module, _, attr = cli.COMMANDS[name][0].partition(":")
    try:
        sub_app = getattr(importlib.import_module(module), attr)
    except ImportError as exc:
        pytest.skip(f"{name} needs an extra that is not installed: {exc}")
    return typer.main.get_command(sub_app)


def _outcome(command, argv, env):
    from unittest import mock

    with mock.patch.dict(os.environ, env):
        try:
            ctx = command.make_context("mlops", list(argv), resilient_parsing=False)
            return "ok", dict(ctx.params)
        except Exception as exc:  # noqa: BLE001 - the error itself is the outcome compared
            return type(exc).__name__, str(getattr(exc, "format_message", lambda: str(exc))())  # noqa: F821 - called inside the except block


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    root = tmp_path_factory.mktemp("plain")
    (root / "a file").write_text("x")
    (root / "folder").mkdir()
    return [
        str(root / "a file"),
        str(root / "folder"),
        str(root / "missing" / "x"),
        "",
        "-",
        "x",
        "1",
        "yes",
        "--",
        "ünïcode",
        " a b ",
        "0",
    ]


def _argv_strategy(command, values):
    options = [
        p
        for p in command.params
        if getattr(p, "opts", None) and not getattr(p, "is_flag", False) and not p.name.endswith("completion")
    ]
    flags = [p for p in command.params if getattr(p, "is_flag", False) and not p.name.endswith("completion")]
    pieces = st.one_of(
        *(
            [st.tuples(st.sampled_from(options), st.sampled_from(values)).map(lambda t: [t[0].opts[0], t[1]])]
            if options
            else []
        ),
        *([st.sampled_from(flags).map(lambda f: [f.opts[0]])] if flags else []),
        st.sampled_from(values).map(lambda v: [v]),
    )
    return st.lists(pieces, max_size=5).map(lambda parts: [w for part in parts for w in part])


@pytest.mark.parametrize("name", [*sorted(cli.COMMANDS), "demo"])
def test_every_command_parses_the_same_with_plain_params(name, paths):
    stock, plain = _command(name), use_plain_params(_command(name))
    envvars = sorted({p.envvar for p in stock.params if isinstance(getattr(p, "envvar", None), str)})

    @settings(derandomize=True, max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        _argv_strategy(stock, paths),
        st.dictionaries(
            st.sampled_from(envvars), st.sampled_from(["1", "0", "yes", "bogus", "https://h/simple", ""]), max_size=2
        )
        if envvars
        else st.just({}),
    )
    def check(argv, env):
        assert _outcome(plain, argv, env) == _outcome(stock, argv, env), (argv, env)

    check()


def test_root_flags_and_their_environment_variable():
    root_stock, root_plain = typer.main.get_command(cli.app), typer.main.get_command(cli.app)
    use_plain_params(root_plain)
    for env in ({}, {"MLOPS_DEBUG": "1"}, {"MLOPS_DEBUG": "no"}, {"MLOPS_DEBUG": "bogus"}):
        for argv in ([], ["--debug"], ["--debug", "wheels"], ["wheels", "--json"]):
            assert _outcome(root_plain, argv, env) == _outcome(root_stock, argv, env), (argv, env)


def test_a_wheels_command_line_imports_no_pydantic():
    code = (
        "import sys; from mlops_cli.cli import main\n"
        "try:\n    main(['wheels', '--verify', '/nonexistent-bundle', '--json'])\nexcept SystemExit:\n    pass\n"
        "print('pydantic' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "False", out.stdout + out.stderr
