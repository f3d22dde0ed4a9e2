"""What goes into a bundle folder, and the reproducible archive of it.

The text renderers are pure (data in, text out); `write_bundle_dir` and `write_archive` do the
I/O. A folder is always written under a temporary name next to its destination and renamed
into place by the caller, so a failure never leaves half a bundle.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any


MANIFEST_FORMAT = "mlops-wheels-bundle/1"


@dataclass
class BundleFile:
    name: str
    version: str
    filename: str
    sha256: str
    size: int
    source_url: str | None
    index: str | None
    blob: Path  # where the verified bytes are (the cache)
    built_from_sdist: bool = False
    sdist: dict[str, Any] | None = None
    yanked: bool = False
    yanked_reason: str | None = None
    targets: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "version": self.version, "filename": self.filename,
            "sha256": self.sha256, "size": self.size, "source_url": self.source_url,
            "index": self.index, "built_from_sdist": self.built_from_sdist, "sdist": self.sdist,
            "yanked": self.yanked, "yanked_reason": self.yanked_reason, "targets": self.targets,
        }


def requirements_text(target_line: str, files: list[BundleFile]) -> str:
    lines = [f"# {target_line}", "# made by mlops wheels; install with: sh install.sh"]
    for f in sorted(files, key=lambda f: f.name):
        lines.append(f"{f.name}=={f.version} \\\n    --hash=sha256:{f.sha256}")
    return "\n".join(lines) + "\n"


def readme_text(name: str, targets: list[dict[str, Any]]) -> str:
    listed = "\n".join(f"  {t['name']}: Python {t['python']}, {t['arch']}, glibc >= {t['requires_glibc'] or 'any'}"
                       for t in targets)
    return (f"Offline install bundle: {name} (made by mlops wheels)\n\n"
            "On the target machine (no network needed):\n\n"
            "  sh install.sh --verify                  # re-hash every file against manifest.json\n"
            "  sh install.sh                           # install into python3 (checks it first)\n"
            "  PYTHON=/path/to/venv/bin/python sh install.sh   # or into a venv / another python\n\n"
            f"Targets in this bundle:\n{listed}\n")


def write_bundle_dir(folder: Path, files: list[BundleFile], requirements: dict[str, str],
                     manifest: dict[str, Any], readme: str) -> None:
    """Fill `folder` (new, empty); record every wheel and requirements file's hash in the manifest."""
    wheels = folder / "wheels"
    wheels.mkdir(parents=True)
    entries = []
    for f in sorted(files, key=lambda f: f.filename):
        dest = wheels / f.filename
        shutil.copyfile(f.blob, dest)  # a copy, not a link: editing the bundle must not touch the cache
        entries.append({"path": f"wheels/{f.filename}", "sha256": f.sha256, "size": f.size})
    for filename, text in sorted(requirements.items()):
        data = text.encode()
        (folder / filename).write_bytes(data)
        entries.append({"path": filename, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)})
    manifest = dict(manifest, files=entries)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    (folder / "README.txt").write_text(readme)
    here = resources.files("mlops_cli.wheels")
    (folder / "install.sh").write_text(here.joinpath("install.sh").read_text())
    (folder / "_bundle.py").write_text(here.joinpath("bundle_tool.py").read_text())
    os.chmod(folder / "install.sh", 0o755)


def write_archive(folder: Path, archive: Path, root: str, mtime: int) -> None:
    """tar.gz with sorted names, fixed times, owners and modes: same inputs, same bytes."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        paths = sorted(p for p in folder.rglob("*"))
        for path in [folder, *paths]:
            rel = root if path == folder else f"{root}/{path.relative_to(folder).as_posix()}"
            info = tar.gettarinfo(str(path), arcname=rel)
            info.mtime, info.uid, info.gid, info.uname, info.gname = mtime, 0, 0, "", ""
            info.mode = 0o755 if (path.is_dir() or path.name == "install.sh") else 0o644
            info.pax_headers = {}
            if path.is_file():
                with open(path, "rb") as fh:
                    tar.addfile(info, fh)
            else:
                tar.addfile(info)
    with open(archive, "wb") as out:
        with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=mtime, compresslevel=6) as gz:
            gz.write(raw.getvalue())
