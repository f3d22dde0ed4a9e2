"""Describe the interpreter a bundle is for, as JSON: `mlops wheels target`.

`PROBE_SOURCE` is stdlib-only on purpose: the air-gapped machine usually has no mlops, so
docs/wheels.md prints the same program to paste into `python3 -`. When the interpreter has
pip, its vendored `packaging` gives the exact, ordered wheel tags that pip there will accept.
"""

from __future__ import annotations

import json
from typing import Any

PROBE_SOURCE = r"""
import json, os, platform, socket, sys, sysconfig
libc, libc_version = platform.libc_ver()
tags = []
try:
    from pip._vendor.packaging import tags as _t
    tags = [str(t) for t in _t.sys_tags()]
except Exception:
    pass
print(json.dumps({
    "format": "mlops-wheels-target/1",
    "name": socket.gethostname().split(".")[0],
    "implementation": sys.implementation.name,
    "python": "%d.%d" % sys.version_info[:2],
    "python_full_version": platform.python_version(),
    "system": platform.system(),
    "machine": platform.machine(),
    "libc": libc or None,
    "glibc": libc_version if libc == "glibc" else None,
    "tags": tags,
    "externally_managed": sys.prefix == getattr(sys, "base_prefix", sys.prefix) and os.path.isfile(
        os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")),
}, indent=2))
"""


def probe_this_interpreter(with_tags: bool = True) -> dict[str, Any]:
    """Run the probe in this process and return its JSON as a dict.

    `with_tags=False` skips importing pip (~0.1 s): the host target then takes its tags from
    `packaging.tags.sys_tags()` when they are needed, which is the same list.
    """
    import contextlib
    import io

    source = (
        PROBE_SOURCE if with_tags else PROBE_SOURCE.replace("from pip._vendor.packaging import", "raise ImportError #")
    )
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        exec(compile(source, "<mlops-wheels-probe>", "exec"), {"__name__": "__probe__"})  # noqa: S102
    return json.loads(buffer.getvalue())
