"""What goes into a bundle folder, and the reproducible archive of it.

The text renderers are pure (data in, text out); `write_bundle_dir` and `write_archive` do the
I/O. A folder is always written under a temporary name next to its destination and renamed
into place by the caller, so a failure never leaves half a bundle.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
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
            "name": self.name,
            "version": self.version,
            "filename": self.filename,
            "sha256": self.sha256,
            "size": self.size,
            "source_url": self.source_url,
            "index": self.index,
            "built_from_sdist": self.built_from_sdist,
            "sdist": self.sdist,
            "yanked": self.yanked,
            "yanked_reason": self.yanked_reason,
            "targets": self.targets,
        }


def requirements_text(target_line: str, files: list[BundleFile]) -> str:
    lines = [f"# {target_line}", "# made by mlops wheels; install with: sh install.sh"]
    for f in sorted(files, key=lambda f: f.name):
        lines.append(f"{f.name}=={f.version} \\\n    --hash=sha256:{f.sha256}")
    return "\n".join(lines) + "\n"


def simple_index(files: list[BundleFile]) -> dict[str, str]:
    """A PEP 503 `simple/` tree over the bundle's wheels (relative links, sha256 fragments), so
    `pip install --index-url file:///.../bundle/simple` and `uv pip install --index-url ...`
    use the bundle as a local index. Path -> HTML text."""
    import html

    from packaging.utils import canonicalize_name

    projects: dict[str, list[BundleFile]] = {}
    for f in files:
        projects.setdefault(canonicalize_name(f.name), []).append(f)
    head = '<!DOCTYPE html>\n<html><head><meta name="pypi:repository-version" content="1.0"><title>{}</title></head><body>\n'
    out = {}
    rows = "".join(f'<a href="{html.escape(p)}/">{html.escape(p)}</a><br/>\n' for p in sorted(projects))
    out["simple/index.html"] = head.format("Simple index") + rows + "</body></html>\n"
    for project, fs in sorted(projects.items()):
        links = "".join(
            f'<a href="../../wheels/{html.escape(f.filename)}#sha256={f.sha256}">{html.escape(f.filename)}</a><br/>\n'
            for f in sorted(fs, key=lambda f: f.filename)
        )
        out[f"simple/{project}/index.html"] = (
            head.format(f"Links for {html.escape(project)}") + links + "</body></html>\n"
        )
    return out


def _toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string with only printable characters is a valid TOML basic string


def pylock_name(target_name: str) -> str:
    """PEP 751 names a lock `pylock.<identifier>.toml`, with no dot in the identifier."""
    return "pylock." + target_name.replace(".", "_") + ".toml"


def pylock_text(target: dict[str, Any], files: list[BundleFile], created_by: str) -> str:
    """A PEP 751 lock for one target: each package pinned to the bundle's one wheel for it, with
    its sha256, as a path relative to the lock (so pip and uv install it offline)."""
    lines = [
        'lock-version = "1.0"',
        f"created-by = {_toml_string(created_by)}",
        f'requires-python = "=={target["python"]}.*"',
        f"environments = [{_toml_string(_marker(target))}]",
        "",
    ]
    for f in sorted(files, key=lambda f: (f.name.lower(), f.filename)):
        lines += [
            "[[packages]]",
            f"name = {_toml_string(_normalized(f.name))}",
            f"version = {_toml_string(f.version)}",
            f"wheels = [{{ name = {_toml_string(f.filename)}, path = {_toml_string('wheels/' + f.filename)}, "
            f"size = {f.size}, hashes = {{ sha256 = {_toml_string(f.sha256)} }} }}]",
            "",
        ]
    return "\n".join(lines)


def _normalized(name: str) -> str:
    from packaging.utils import canonicalize_name

    return str(canonicalize_name(name))


def _marker(target: dict[str, Any]) -> str:
    return (
        f"python_version == '{target['python']}' and platform_machine == '{target['arch']}' and sys_platform == 'linux'"
    )


def readme_text(name: str, targets: list[dict[str, Any]]) -> str:
    listed = "\n".join(
        f"  {t['name']}: Python {t['python']}, {t['arch']}, glibc >= {t['requires_glibc'] or 'any'}" for t in targets
    )
    managed = any(t.get("externally_managed") for t in targets)
    first = (
        "  sh install.sh --venv /opt/venv          # a new venv (made with python3) and the bundle in it\n"
        "  sh install.sh                           # into python3 itself: refused where it is\n"
        "                                          # 'externally managed' (PEP 668, Debian 12+, Ubuntu 23.04+)\n"
        if managed
        else "  sh install.sh                           # install into python3 (checks it first)\n"
        "  sh install.sh --venv /opt/venv          # or into a new venv made with python3\n"
    )
    return (
        f"Offline install bundle: {name} (made by mlops wheels)\n\n"
        "On the target machine (no network needed):\n\n"
        "  sh install.sh --verify                  # re-hash every file against manifest.json\n"
        + first
        + "  PYTHON=/path/to/python sh install.sh    # pick the interpreter (or a venv's python)\n"
        "  sh install.sh --rollback                # undo the last install into that interpreter\n\n"
        "Other tools can use the bundle too:\n"
        "  pip install --no-index --index-url file://$PWD/simple NAME     # a local PEP 503 index\n"
        "  uv pip install -r pylock.TARGET.toml                           # a PEP 751 lock per target\n\n"
        f"Targets in this bundle:\n{listed}\n"
    )


# Files every bundle has besides wheels/, the requirements files, the locks and simple/.
TOOL_FILES = ("README.txt", "install.sh", "_bundle.py")


def write_bundle_dir(
    folder: Path, files: list[BundleFile], texts: dict[str, str], manifest: dict[str, Any], readme: str
) -> None:
    """Fill `folder` (new, empty, made by mlops); record every file's hash in the manifest
    (all but manifest.json itself), so `--verify` covers install.sh and _bundle.py too."""
    from mlops_cli import files as floor

    (folder / "wheels").mkdir(parents=True)
    entries = []
    for f in sorted(files, key=lambda f: f.filename):
        # a copy, not a link: editing the bundle must not touch the cache
        floor.copy_new(f.blob, folder / "wheels" / f.filename, what="bundle file")
        entries.append({"path": f"wheels/{f.filename}", "sha256": f.sha256, "size": f.size})
    from importlib import resources

    here = resources.files("mlops_cli.wheels")
    all_texts = dict(texts, **simple_index(files))
    all_texts["README.txt"] = readme
    all_texts["install.sh"] = here.joinpath("install.sh").read_text()
    all_texts["_bundle.py"] = here.joinpath("bundle_tool.py").read_text()
    for rel, text in sorted(all_texts.items()):
        data = text.encode()
        path = folder.joinpath(*rel.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        floor.write_new(path, data, mode=0o755 if rel == "install.sh" else None, what="bundle file")
        entries.append({"path": rel, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)})
    manifest = dict(manifest, files=sorted(entries, key=lambda e: e["path"]))
    floor.write_new(
        folder / "manifest.json", json.dumps(manifest, indent=2, sort_keys=False) + "\n", what="bundle file"
    )


def write_archive(folder: Path, out, root: str, mtime: int) -> None:
    """Stream a tar.gz of `folder` into the binary file `out`: sorted names, fixed times, owners
    and modes, so the same inputs give the same bytes."""
    import gzip
    import tarfile

    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=mtime, compresslevel=6) as gz:
        with tarfile.TarFile(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:  # into the stream given
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
