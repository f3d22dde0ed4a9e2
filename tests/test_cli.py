"""The conventions every command shares (specs/cli-conventions.md)."""

import subprocess
import sys

from mlops_cli import __version__
from mlops_cli.cli import COMMANDS


def test_version(mlops):
    r = mlops("--version")
    assert r.returncode == 0
    assert r.stdout.strip() == f"mlops {__version__}"


def test_help_lists_every_command_with_examples(mlops):
    r = mlops("--help")
    assert r.returncode == 0
    for name in COMMANDS:
        assert name in r.stdout
    assert "Examples" in r.stdout


def test_help_imports_no_command_module():
    # `mlops --help` must stay fast: no subcommand package, no requests/NVML/docker.
    code = (
        "import sys; from mlops_cli.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in sys.modules if m.startswith(('mlops_cli.driver', 'mlops_cli.wheels', "
        "'mlops_cli.patch', 'mlops_cli.gpu', 'mlops_cli.mem', 'requests', 'pynvml', 'docker'))]\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "HEAVY []" in proc.stderr, proc.stderr


def test_unknown_command_is_one_error_line_and_exit_2(mlops):
    r = mlops("no-such-command")
    assert r.returncode == 2
    assert r.stderr.splitlines()[0] == "error: No such command 'no-such-command'."
    assert "Traceback" not in r.stderr
    assert r.no_report()


def test_unknown_option_is_exit_2(mlops):
    r = mlops("--no-such-flag")
    assert r.returncode == 2
    assert r.stderr.startswith("error: No such option: --no-such-flag")


def test_no_arguments_shows_help_and_exits_2(mlops):
    r = mlops()
    assert r.returncode == 2
    assert r.stdout.count("Usage") == 1, r.stdout


def test_every_command_has_help_with_an_example(mlops):
    for name in COMMANDS:
        r = mlops(name, "--help")
        assert r.returncode == 0, r
        assert "Example" in r.stdout, f"{name} --help has no example"


def test_shell_completion_is_offered(mlops):
    assert "--install-completion" in mlops("--help").stdout
    # The script `--show-completion` prints, asked for by shell name: detecting the shell from the
    # parent processes fails when the suite runs without a shell above it.
    r = mlops(env={"_MLOPS_COMPLETE": "source_bash"})
    assert r.returncode == 0, r
    assert "complete -o default -F _mlops_completion mlops" in r.stdout


def _leaf_commands():
    """(path, command) of every command of the real tree; groups are walked through their contexts."""
    import typer

    from mlops_cli.cli import app

    root = typer.main.get_command(app)
    found = []

    def walk(cmd, path, parent_ctx):
        ctx = cmd.make_context(path[-1], [], parent=parent_ctx, resilient_parsing=True)
        if hasattr(cmd, "list_commands"):
            for name in cmd.list_commands(ctx):
                walk(cmd.get_command(ctx, name), path + [name], ctx)
        else:
            found.append((" ".join(path), cmd))

    walk(root, ["mlops"], None)
    return found


def test_every_option_of_every_command_says_what_it_does():
    # An option whose help is lost (a wrapper that re-builds a signature from string annotations)
    # shows as a bare `<str>` in --help: oom-check's --snapshot did.
    leaves = _leaf_commands()
    assert {p.split()[1] for p, _ in leaves} >= set(COMMANDS)
    bare = [
        f"{path} {'/'.join(p.opts)}"
        for path, cmd in leaves
        for p in cmd.params
        if getattr(p, "param_type_name", "") == "option" and not p.hidden and not (p.help or "").strip()
    ]
    assert bare == []


def test_help_paragraphs_are_reflowed_examples_and_lists_are_not():
    from mlops_cli.cli import reflow_help

    text = (
        "First line\nof the first.\n\nA paragraph\nwrapped in the source.\n\n  mlops x --a\n  mlops y\n\n- one\n- two"
    )
    assert reflow_help(text) == (
        "First line of the first.\n\nA paragraph wrapped in the source.\n\n  mlops x --a\n  mlops y\n\n- one\n- two"
    )


def test_wide_terminal_help_has_no_source_line_breaks(mlops):
    # Typer's rich renderer kept the source's line breaks after the first paragraph: ragged help.
    r = mlops("images", "match", "--help", env={"COLUMNS": "250"})
    assert r.returncode == 0
    assert "the Hungarian method over a matrix of thumbnail distances), not the greedy" in r.stdout
