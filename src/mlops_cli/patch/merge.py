"""Three-way merge of one text file, by a well-kept tool: ``git merge-file`` when git is installed,
else the ``merge3`` package (the merge of Breezy/Bazaar, an optional dependency:
``pip install 'mlops-cli[port]'``). Neither is reimplemented here.

Conflicts are marked the standard way, with the base shown (git's ``diff3`` style)::

    <<<<<<< ours
    ...
    ||||||| base
    ...
    =======
    ...
    >>>>>>> theirs
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mlops_cli import proc
from mlops_cli.errors import NotApplicable, OperationFailed
from mlops_cli.files import write_new
from mlops_cli.patch.patchfile import split_lines
from mlops_cli.text import one_line

TOOLS = ("git", "merge3")


@dataclass(frozen=True)
class Merged:
    text: str
    conflicts: int  # conflicting regions; 0 = a clean merge
    tool: str


def available_tool(requested: str | None = None) -> str:
    """The merge tool to use: MLOPS_MERGE_TOOL (git | merge3) if set, else git when installed,
    else merge3 when importable; exit 3 with how to install one when neither is."""
    wanted = requested or os.environ.get("MLOPS_MERGE_TOOL") or None
    candidates = [wanted] if wanted in TOOLS else list(TOOLS)
    for tool in candidates:
        if tool == "git" and proc.which("git"):
            return "git"
        if tool == "merge3" and _merge3() is not None:
            return "merge3"
    raise NotApplicable(
        "no three-way merge tool here: neither git nor the merge3 package",
        hint="install git (apt-get install git) or: pip install 'mlops-cli[port]'",
    )


def _merge3():
    try:
        import merge3
    except ImportError:
        return None
    return merge3


def _label(text: str) -> str:
    return one_line(text)[:120] or "-"


def markers(labels: tuple[str, str, str]) -> tuple[str, str, str, str]:
    """The conflict marker lines (no newline) both tools write for these labels (ours, base, theirs)."""
    return (f"<<<<<<< {_label(labels[0])}", f"||||||| {_label(labels[1])}", "=======", f">>>>>>> {_label(labels[2])}")


def three_way(base: str, ours: str, theirs: str, labels: tuple[str, str, str], tool: str | None = None) -> Merged:
    """Merge ``ours`` and ``theirs``, both changed from ``base``. labels = (ours, base, theirs)."""
    tool = available_tool(tool)
    if tool == "git":
        return _git(base, ours, theirs, labels)
    return _with_merge3(base, ours, theirs, labels)


def _git(base: str, ours: str, theirs: str, labels: tuple[str, str, str]) -> Merged:
    with tempfile.TemporaryDirectory(prefix="mlops-merge-") as tmp:
        names = []
        for name, text in (("ours", ours), ("base", base), ("theirs", theirs)):
            path = Path(tmp, name)
            write_new(path, text.encode("utf-8", "surrogateescape"))
            names.append(str(path))
        argv = ["git", "merge-file", "-p", "--diff3"]
        for label in labels:
            argv += ["-L", _label(label)]
        env = proc.base_env(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, HOME=tmp)
        result = proc.run(argv + names, timeout=120, env=env)
    if result.rc < 0 or result.rc >= 127 or result.timed_out:
        raise OperationFailed(f"git merge-file failed: {one_line(result.stderr.strip())[:200] or f'rc {result.rc}'}")
    return Merged(result.stdout, result.rc, "git")


def _with_merge3(base: str, ours: str, theirs: str, labels: tuple[str, str, str]) -> Merged:
    merge3 = _merge3()
    m = merge3.Merge3(split_lines(base), split_lines(ours), split_lines(theirs))
    conflicts = sum(1 for region in m.merge_regions() if region[0] == "conflict")
    lines = m.merge_lines(
        name_a=_label(labels[0]), name_b=_label(labels[2]), name_base=_label(labels[1]), base_marker="|||||||"
    )
    return Merged("".join(lines), conflicts, "merge3")
