"""The bundle's own description: manifest.json, the per-target requirements files, stamps.

Pure apart from reading the clock: inputs in, documents out. The manifest never carries
credentials (index URLs are stripped) and, in a reproducible archive, no wall-clock time.
"""

from __future__ import annotations

import os

from mlops_cli import __version__


def describe_bundle(req, bundle_files: dict):
    """(manifest, bundle file name -> text, targets as JSON) for a finished plan: per target a
    hash-pinned requirements file and a PEP 751 lock."""
    from mlops_cli.wheels.index import strip_credentials
    from mlops_cli.wheels.layout import MANIFEST_FORMAT, pylock_name, pylock_text, requirements_text
    from mlops_cli.wheels.plan import required_glibc, required_pip

    targets_json, texts = [], {}
    for t in req.targets:
        mine = [f for f in bundle_files.values() if t.name in f.targets]
        needs = required_glibc([f.filename for f in mine])
        req_file = f"requirements-{t.name}.txt"
        texts[req_file] = requirements_text(f"target {t.name}: Python {t.python}, {t.arch}, glibc {t.glibc}", mine)
        entry = t.to_json()
        entry.update(
            requires_glibc=needs,
            requires_pip=required_pip([f.filename for f in mine]),
            requirements_file=req_file,
            pylock=pylock_name(t.name),
            files=len(mine),
        )
        texts[entry["pylock"]] = pylock_text(entry, mine, f"mlops-cli {__version__}")
        targets_json.append(entry)
    manifest = {
        "format": MANIFEST_FORMAT,
        "tool": f"mlops-cli {__version__}",
        "created": created_stamp(req.archive),
        "inputs": {
            "requirements": req.requirements,
            "requirement_files": [p.name for p in req.requirement_files],
            "index_urls": [strip_credentials(u) for u in req.index_urls],
            "sdist_policy": req.sdist_policy,
        },
        "targets": targets_json,
        "packages": [f.to_json() for f in sorted(bundle_files.values(), key=lambda f: (f.name, f.filename))],
    }
    return manifest, texts, targets_json


def archive_epoch() -> int:
    try:
        return int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    except ValueError:
        return 0


def created_stamp(archive: str) -> str | None:
    """The creation time, except in a reproducible archive (then SOURCE_DATE_EPOCH or none)."""
    import datetime

    if archive == "tar.gz":
        epoch = os.environ.get("SOURCE_DATE_EPOCH")
        if not epoch:
            return None
        stamp = datetime.datetime.fromtimestamp(archive_epoch(), tz=datetime.timezone.utc)
    else:
        stamp = datetime.datetime.now(tz=datetime.timezone.utc)
    return stamp.replace(microsecond=0).isoformat()
