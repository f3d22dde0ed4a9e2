"""What `mlops report` reads: JSON outputs of driver-check, gpu and oom-check from many nodes.

An input is a file, a folder (every file below it whose name does not start with '.', read in
name order; symbolic links to folders are not followed), or ``-`` (stdin). A file holds
- one command's ``--json`` document (or its ``{"error": ...}`` document when the command failed);
- an Ansible fact-cache file (the ``jsonfile`` cache plugin: one file per host, named after it),
  holding the facts ``mlops_driver_check`` / ``mlops_gpu`` / ``mlops_oom_check`` that the role
  in contrib/ansible sets. ansible-core 2.19 and later name the file ``s1_<host>`` and wrap the
  facts in a ``__payload__`` string whose values carry origin tags; both layouts are read;
- or pdsh output: every line prefixed with ``host: `` (``pdsh -w HOSTS mlops driver-check --json``).

Every file is read through the floor (``files.read_input_text`` + ``files.parse_json``: size cap,
UTF-8, strict JSON, depth limit). A file that cannot be used is one entry in ``Unusable`` with
the reason, and the others are still read.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mlops_cli import files
from mlops_cli.errors import UsageError, os_reason
from mlops_cli.text import one_line, shorten

MAX_FILE_BYTES = 16 * 1024 * 1024  # a driver-check document with every evidence line is ~100 KiB
KINDS = ("driver-check", "gpu", "oom-check")
# The facts the Ansible role sets (contrib/ansible/roles/mlops_driver_check), one per command.
FACT_KEYS = {"mlops_driver_check": "driver-check", "mlops_gpu": "gpu", "mlops_oom_check": "oom-check"}
_PDSH_LINE = re.compile(r"([A-Za-z0-9_][A-Za-z0-9_.\-]{0,252}): ?(.*)\Z")
_CACHE_SCHEMA_PREFIX = re.compile(r"s\d+_")  # ansible-core >= 2.19: s<schema id>_<host>


@dataclass(frozen=True)
class Document:
    node: str
    kind: str  # driver-check, gpu, oom-check, or "error" (the command's own error document)
    doc: dict[str, Any]
    origin: str  # the file it came from (and the host, for pdsh output)


@dataclass(frozen=True)
class Unusable:
    origin: str
    reason: str


def kind_of(doc: Any) -> str | None:
    """Which command wrote this document, from its documented fields; None if none did."""
    if not isinstance(doc, dict):
        return None
    if isinstance(doc.get("error"), dict) and set(doc) == {"error"}:
        return "error"
    if isinstance(doc.get("findings"), list) and isinstance(doc.get("status"), str) and "kernel" in doc:
        return "driver-check"
    if isinstance(doc.get("gpus"), list) and "gpu_count" in doc:
        return "gpu"
    if isinstance(doc.get("fits"), bool) and "capacity_bytes" in doc and "required_bytes" in doc:
        return "oom-check"
    return None


def node_name(doc: dict[str, Any], fallback: str) -> str:
    """A node's name: the document's ``host`` / ``hostname`` when it has one, else ``fallback``
    (the file name without ``.json``, the fact-cache file name, or pdsh's host prefix)."""
    for key in ("host", "hostname"):
        value = doc.get(key)
        if isinstance(value, str) and value.strip():
            return shorten(one_line(value.strip()), 200)
    return shorten(one_line(fallback), 200)


def _file_node(path: str) -> str:
    name = os.path.basename(path.rstrip("/")) or path
    return name[:-5] if name.endswith(".json") and len(name) > 5 else name


def _untag(value: Any) -> Any:
    """A value from ansible-core 2.19's fact cache without its tags: ``{"value": X, "tags": [...],
    "__ansible_type": "_AnsibleTagged..."}`` becomes X, at any depth (iterative)."""
    root = [value]
    stack: list[tuple[Any, Any]] = [(root, 0)]
    while stack:
        container, key = stack.pop()
        item = container[key]
        while isinstance(item, dict) and "__ansible_type" in item and "value" in item:
            item = item["value"]
        container[key] = item
        if isinstance(item, dict):
            stack.extend((item, k) for k in item)
        elif isinstance(item, list):
            stack.extend((item, i) for i in range(len(item)))
    return root[0]


def _fact_cache_payload(doc: dict[str, Any], fallback_node: str, origin: str) -> tuple[Any, str]:
    """The facts inside an ansible-core >= 2.19 cache file, and the host it is named after."""
    payload = files.parse_json(doc["__payload__"], what=f"the Ansible fact cache {origin}")
    m = _CACHE_SCHEMA_PREFIX.match(fallback_node)
    return _untag(payload), fallback_node[m.end() :] if m and m.end() < len(fallback_node) else fallback_node


def documents_in(doc: Any, fallback_node: str, origin: str) -> tuple[list[Document], str | None]:
    """The mlops documents one parsed file holds, or the reason it holds none."""
    if isinstance(doc, dict) and isinstance(doc.get("__payload__"), str) and len(doc) == 1:
        try:
            doc, fallback_node = _fact_cache_payload(doc, fallback_node, origin)
        except UsageError as exc:
            return [], exc.message
    kind = kind_of(doc)
    if kind is not None:
        return [Document(node_name(doc, fallback_node), kind, doc, origin)], None
    if isinstance(doc, dict):
        found = []
        for key, fact_kind in FACT_KEYS.items():
            sub = doc.get(key)
            if isinstance(sub, dict) and kind_of(sub) in (fact_kind, "error"):
                found.append(Document(node_name(sub, fallback_node), kind_of(sub) or fact_kind, sub, origin))
        if found:
            return found, None
        if any(k.startswith("ansible_") for k in doc) or not doc or all(isinstance(v, dict) for v in doc.values()):
            return [], "an Ansible fact-cache file without mlops facts (mlops_driver_check, mlops_gpu, mlops_oom_check)"
    return [], "not the --json output of mlops driver-check, gpu or oom-check"


def split_pdsh(text: str) -> dict[str, str] | None:
    """pdsh output (``host: line`` on every line) as host -> its text; None if it is not that."""
    hosts: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        m = _PDSH_LINE.match(line)
        if m is None:
            return None
        hosts.setdefault(m.group(1), []).append(m.group(2))
    return {h: "\n".join(lines) for h, lines in hosts.items()} or None


def read_file(path: str, *, found_in_folder: bool = False) -> tuple[list[Document], list[Unusable]]:
    """The documents in one file (or stdin); a file that cannot be used is an Unusable. A file
    found by walking a folder must be a regular file: a FIFO or a socket left there is listed
    as unusable, never waited on."""
    shown = "stdin" if path == "-" else files.show_path(path)
    try:
        text = files.read_input_text(path, what="report", max_bytes=MAX_FILE_BYTES, regular_only=found_in_folder)
    except UsageError as exc:
        return [], [Unusable(shown, _reason(exc, path))]
    try:
        doc = files.parse_json(text, what="the file")
    except UsageError as exc:
        per_host = split_pdsh(text)
        if per_host is None:
            return [], [Unusable(shown, exc.message)]
        return _read_pdsh(per_host, shown)
    found, why = documents_in(doc, _file_node(path) if path != "-" else "stdin", shown)
    return found, ([] if found else [Unusable(shown, why or "no mlops document")])


def _read_pdsh(per_host: dict[str, str], shown: str) -> tuple[list[Document], list[Unusable]]:
    found: list[Document] = []
    bad: list[Unusable] = []
    for host, body in per_host.items():
        origin = f"{shown} ({host})"
        try:
            doc = files.parse_json(body, what="its output")
        except UsageError as exc:
            bad.append(Unusable(origin, exc.message))
            continue
        docs, why = documents_in(doc, host, origin)
        found.extend(docs)
        if not docs:
            bad.append(Unusable(origin, why or "no mlops document"))
    return found, bad


def _reason(exc: UsageError, path: str) -> str:
    """The error without its 'cannot read report PATH: ' head (the path is shown beside it)."""
    head = f"cannot read report {files.show_path(path)}: "
    return exc.message[len(head) :] if exc.message.startswith(head) else exc.message


def expand(paths: list[str]) -> Iterator[tuple[str, Unusable | None, bool]]:
    """Every file the inputs name, in order: (path, why it cannot be used or None, whether it
    was found in a folder). A folder is walked (hidden names skipped)."""
    for path in paths:
        if path == "-":
            yield path, None, False
            continue
        try:
            st = os.stat(path)
        except OSError as exc:
            reason = "no such file or folder" if isinstance(exc, FileNotFoundError) else os_reason(exc)
            yield path, Unusable(files.show_path(path), reason), False
            continue
        if not stat.S_ISDIR(st.st_mode):
            yield path, None, False
            continue
        yield from _walk(path)


def _walk(folder: str) -> Iterator[tuple[str, Unusable | None, bool]]:
    """The files below ``folder`` on its own file system (as ``find -xdev``): a folder that is
    a mount point of another (/proc, /sys, /dev under /) is not entered."""
    errors: list[OSError] = []
    device = os.stat(folder).st_dev
    for root, dirs, names in os.walk(folder, onerror=errors.append):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and _same_device(os.path.join(root, d), device))
        for name in sorted(names):
            if not name.startswith("."):
                yield os.path.join(root, name), None, True
    for exc in errors:
        where = exc.filename or folder
        yield where, Unusable(files.show_path(where), f"folder not readable: {os_reason(exc)}"), True


def _same_device(path: str, device: int) -> bool:
    try:
        return os.lstat(path).st_dev == device
    except OSError:
        return True  # os.walk reports it as unreadable


def read_all(paths: list[str]) -> tuple[list[Document], list[Unusable]]:
    """Every document in the inputs, and every input that could not be used."""
    found: list[Document] = []
    bad: list[Unusable] = []
    for path, problem, in_folder in expand(paths):
        if problem is not None:
            bad.append(problem)
            continue
        docs, unusable = read_file(path, found_in_folder=in_folder)
        found.extend(docs)
        bad.extend(unusable)
    return found, bad
