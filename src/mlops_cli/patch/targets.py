"""Where a patch goes: an image (a derived image is built), a running container, or a local env.

Each target answers the same questions through its own interpreter (``agent.SOURCE`` run with
``python3``, falling back to ``python``): where is the package, which version, what are the
bytes of these files; and it can write files (container, local) or build a derived image.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
from mlops_cli import proc
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from mlops_cli.files import safe_join, write_atomic, write_new
from mlops_cli.host import CommandResult
from mlops_cli.errors import MlopsError, OperationFailed, UsageError
from mlops_cli.patch import agent
from mlops_cli.patch.engine import Engine

LABEL_PREFIX = "org.mlops.patch"


@dataclass
class Located:
    python: str
    python_version: str
    site: str  # the folder that holds the package (site-/dist-packages)
    version: str | None
    files: dict[str, bytes | None]
    modes: dict[str, int] = field(default_factory=dict)

    def path_of(self, rel: str) -> str:
        return f"{self.site.rstrip('/')}/{rel}"


def _parse_agent(result: CommandResult, what: str) -> dict:
    for line in reversed(result.stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                break
    tail = (result.stderr.strip().splitlines() or [f"rc {result.rc}"])[-1]
    raise OperationFailed(f"{what} failed: {tail}")


class Target:
    kind = "target"
    label = ""

    def _python(self, args: list[str], stdin: str | None = None) -> tuple[str, CommandResult]:
        raise NotImplementedError

    def agent(self, action: str, args: dict, stdin: str | None = None, what: str = "") -> dict:
        py, result = self._python(["-c", agent.SOURCE, action, json.dumps(args)], stdin)
        if result.rc in (126, 127) and not result.stdout:
            raise OperationFailed(f"no python3 or python in {self.label}",
                                  hint="mlops asks the target's own interpreter where the package is")
        return _parse_agent(result, what or f"{action} in {self.label}")

    def locate(self, package: str, paths: list[str]) -> Located:
        doc = self.agent("probe", {"package": package, "paths": paths})
        if doc.get("error") == "not-found":
            raise OperationFailed(f"package {package!r} is not installed in {self.label} (python {doc.get('python')})",
                                  hint="check the package name (the import name, e.g. transformers) and the target")
        files = {rel: (base64.b64decode(b64) if b64 is not None else None) for rel, b64 in doc["files"].items()}
        return Located(doc["python"], doc.get("python_version", ""), doc["site"], doc.get("version"), files,
                       {k: int(v) for k, v in doc.get("modes", {}).items()})

    def imports(self, modules: list[str]) -> dict:
        return self.agent("imports", {"modules": modules}, what=f"import check in {self.label}")["imports"]

    def describe(self) -> dict:
        return {"kind": self.kind, "ref": self.label}


class ImageTarget(Target):
    kind = "image"

    def __init__(self, engine: Engine, ref: str):
        engine.ensure_running()
        info = engine.inspect("image", ref)
        if info is None:
            raise OperationFailed(f"image {ref!r} is not in the local {engine.name} engine{engine.where()}",
                                  hint=f"pull or build it first ({engine.name} pull {ref}); mlops never pulls")
        self.engine, self.ref, self.label = engine, ref, f"image {ref}"
        self.image_id: str = info["Id"]
        config = info.get("Config") or {}
        self.entrypoint = config.get("Entrypoint")
        self.cmd = config.get("Cmd")
        self.labels: dict = config.get("Labels") or {}

    def _python(self, args, stdin=None):
        return self.engine.python_in_image(self.image_id, args, stdin)

    def describe(self) -> dict:
        return {"kind": "image", "ref": self.ref, "image_id": self.image_id, "engine": self.engine.name,
                "entrypoint": self.entrypoint, "cmd": self.cmd}

    def default_tag(self, patch_sha: str) -> str:
        short = patch_sha[:12]
        ref = self.ref
        by_id = re.fullmatch(r"(sha256:)?[0-9a-f]{12,64}", ref) and self.image_id.split(":")[-1].startswith(ref.split(":")[-1])
        if "@" in ref or by_id:
            return f"mlops-patched:{short}"
        name, tag = ref, "latest"
        last = ref.rsplit("/", 1)[-1]
        if ":" in last:
            name, tag = ref.rsplit(":", 1)
        return f"{name}:{tag}-mlops-{short}"

    def labels_for(self, patch_sha: str, package: str, version: str | None, paths: list[str]) -> dict[str, str]:
        return {
            f"{LABEL_PREFIX}.sha256": patch_sha,
            f"{LABEL_PREFIX}.package": package,
            f"{LABEL_PREFIX}.version": version or "",
            f"{LABEL_PREFIX}.files": ",".join(paths),
            f"{LABEL_PREFIX}.base-image": self.ref,
            f"{LABEL_PREFIX}.base-image-id": self.image_id,
        }

    def dockerfile(self, located: Located, new: dict[str, bytes], labels: dict[str, str]) -> str:
        lines = [f"FROM {self.image_id}"]
        for rel in new:
            lines.append(f"COPY {json.dumps(['files/' + rel, located.path_of(rel)])}")
        verify = {"site": located.site, "files": {rel: hashlib.sha256(data).hexdigest() for rel, data in new.items()}}
        lines.append("RUN " + json.dumps([located.python, "-c", agent.SOURCE, "verify", json.dumps(verify)]))
        lines.append("LABEL " + " ".join(f"{k}={json.dumps(v)}" for k, v in labels.items()))
        return "\n".join(lines) + "\n"

    def build(self, located: Located, new: dict[str, bytes], labels: dict[str, str], tag: str) -> str:
        with tempfile.TemporaryDirectory(prefix="mlops-patch-build-") as context:
            for rel, data in new.items():
                dest = safe_join(Path(context, "files"), rel)
                dest.parent.mkdir(parents=True, exist_ok=True)
                write_new(dest, data, mode=located.modes.get(rel, 0o644))
                os.chmod(dest, located.modes.get(rel, 0o644))
            write_new(Path(context, "Dockerfile"), self.dockerfile(located, new, labels))
            result = self.engine.build(context, tag)
        if not result.ok:
            tail = " | ".join((result.stderr or result.stdout).strip().splitlines()[-3:])
            raise OperationFailed(f"building {tag} failed: {tail}", hint="nothing was tagged; re-run with --debug for more")
        info = self.engine.inspect("image", tag)
        if info is None:
            raise OperationFailed(f"the build reported success but {tag} is not in the engine")
        return info["Id"]

    def derived(self, tag: str) -> "ImageTarget":
        return ImageTarget(self.engine, tag)


class ContainerTarget(Target):
    kind = "container"

    def __init__(self, engine: Engine, name: str):
        engine.ensure_running()
        info = engine.inspect("container", name)
        if info is None:
            raise OperationFailed(f"no container named {name!r} in the {engine.name} engine{engine.where()}",
                                  hint=f"list them with {engine.name} ps")
        if not (info.get("State") or {}).get("Running"):
            raise OperationFailed(f"container {name!r} is not running", hint=f"start it first ({engine.name} start {name})")
        self.engine, self.name, self.label = engine, name, f"container {name}"
        self.container_id = info["Id"]
        self.image = (info.get("Config") or {}).get("Image")

    def _python(self, args, stdin=None):
        return self.engine.python_in_container(self.name, args, stdin)

    def describe(self) -> dict:
        return {"kind": "container", "ref": self.name, "container_id": self.container_id, "image": self.image,
                "engine": self.engine.name}

    def write(self, located: Located, new: dict[str, bytes]) -> dict[str, str]:
        payload = {"site": located.site, "files": {rel: base64.b64encode(d).decode("ascii") for rel, d in new.items()}}
        doc = self.agent("write", {}, stdin=json.dumps(payload), what=f"writing files in {self.label}")
        if doc.get("error") == "syntax":
            raise OperationFailed(f"{doc['path']} does not compile in {self.label} (line {doc['line']}: {doc['message']}); "
                                  "nothing was changed")
        if doc.get("error") == "unwritable":
            raise OperationFailed(
                f"cannot write {doc['message']} in {self.label}; nothing was changed",
                hint="the container's user may not own site-packages: patch the image instead (--image), "
                     "or restart the container as root",
            )
        return doc["written"]


class LocalTarget(Target):
    kind = "local"

    def __init__(self, python: str | None):
        python = python or sys.executable
        resolved = shutil.which(python) if os.sep not in python else python
        if not resolved or not os.path.exists(resolved):
            raise UsageError(f"no Python interpreter at {python!r}", hint="give --python PATH/TO/bin/python of the environment")
        self.python, self.label = resolved, f"the environment of {resolved}"

    def _python(self, args, stdin=None):
        result = proc.run([self.python, *args], timeout=300, input=stdin)
        if result.rc in (proc.NOT_INSTALLED, proc.NOT_EXECUTABLE):
            raise OperationFailed(f"cannot run {self.python}: {result.stderr.strip()}")
        return self.python, result

    def describe(self) -> dict:
        return {"kind": "local", "ref": self.python}

    def compile_check(self, located: Located, new: dict[str, bytes]) -> None:
        """Compile with the target's interpreter before anything is written."""
        script = ("import sys,json,base64\nfor p,b in json.loads(sys.stdin.read()).items():\n"
                  "    compile(base64.b64decode(b), p, 'exec', dont_inherit=True)\n")
        payload = json.dumps({located.path_of(r): base64.b64encode(d).decode("ascii") for r, d in new.items()})
        _, result = self._python(["-c", script], stdin=payload)
        if not result.ok:
            tail = (result.stderr.strip().splitlines() or ["?"])[-1]
            raise OperationFailed(f"patched file does not compile with {self.python}: {tail}; nothing was changed")

    def write(self, located: Located, new: dict[str, bytes], backup_dir: Path | None) -> dict[str, str]:
        """Back up every current file (content-addressed), then replace each atomically.

        All or nothing: a backup that cannot be written stops before any file changes; a file
        that cannot be replaced (read-only site-packages) puts back the ones already replaced.
        """
        paths = {rel: Path(located.path_of(rel)) for rel in new}
        olds = {rel: (path.read_bytes(), path.stat().st_mode & 0o7777) for rel, path in paths.items()}
        if backup_dir is not None:
            try:
                for old, _ in olds.values():
                    backup = backup_dir / hashlib.sha256(old).hexdigest()
                    if not backup.exists():
                        backup_dir.mkdir(parents=True, exist_ok=True)
                        write_atomic(backup, old, what="backup")
            except (OSError, MlopsError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else exc.message
                raise OperationFailed(f"cannot write the backup under {backup_dir}: {reason}; nothing was changed",
                                      hint="set MLOPS_STATE_DIR to a writable folder") from None
        written: dict[str, str] = {}
        try:
            for rel, data in new.items():
                write_atomic(paths[rel], data, mode=olds[rel][1])
                written[rel] = hashlib.sha256(data).hexdigest()
        except (OSError, MlopsError) as exc:
            failed = paths[rel]
            for done in written:
                write_atomic(paths[done], olds[done][0], mode=olds[done][1])
            reason = exc.strerror if isinstance(exc, OSError) else exc.message
            raise OperationFailed(f"cannot replace {failed}: {reason}; nothing was changed",
                                  hint="run as the owner of that environment, or patch a virtual environment") from None
        for rel, path in paths.items():
            for pyc in (path.parent / "__pycache__").glob(path.stem + ".*.pyc"):
                pyc.unlink(missing_ok=True)
            written[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        return written


def backup_dir_for(site: str) -> Path:
    """Where local backups live: content-addressed by sha256, one folder per site-packages."""
    base = os.environ.get("MLOPS_STATE_DIR") or os.path.join(
        os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "mlops")
    return Path(base, "patch-backups", hashlib.sha256(site.encode()).hexdigest()[:16])
