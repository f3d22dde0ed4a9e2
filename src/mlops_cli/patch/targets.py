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
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from mlops_cli import interrupts, proc
from mlops_cli.errors import MlopsError, OperationFailed, UsageError
from mlops_cli.files import current_umask, safe_join, show_path, write_atomic, write_new
from mlops_cli.host import CommandResult
from mlops_cli.patch import agent, journal
from mlops_cli.patch.engine import Engine
from mlops_cli.text import one_line

LABEL_PREFIX = "org.mlops.patch"


@dataclass
class Located:
    python: str
    python_version: str
    site: str  # the folder that holds the package (site-/dist-packages)
    version: str | None
    files: dict[str, bytes | None]  # None: the file does not exist
    modes: dict[str, int] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)  # path -> real path, for paths through a symlink
    owner: dict | None = None  # {"dist", "top_level", "in_record"} of the package's distribution
    site_real: str = ""

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
            raise OperationFailed(
                f"no python3 or python in {self.label}",
                hint="mlops asks the target's own interpreter where the package is",
            )
        return _parse_agent(result, what or f"{action} in {self.label}")

    def locate(self, package: str, paths: list[str]) -> Located:
        doc = self.agent("probe", {"package": package, "paths": paths})
        if doc.get("error") == "not-found":
            raise OperationFailed(
                f"package {package!r} is not installed in {self.label} (python {doc.get('python')})",
                hint="check the package name (the import name, e.g. transformers) and the target",
            )
        errors = doc.get("errors") or {}
        if errors:
            rel, reason = next(iter(errors.items()))
            raise OperationFailed(
                f"cannot read {doc['site']}/{rel} in {self.label}: {one_line(reason)}"
                + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")
            )
        files: dict[str, bytes | None] = {rel: base64.b64decode(b64) for rel, b64 in doc["files"].items()}
        files.update({rel: None for rel in doc.get("missing", [])})
        return Located(
            doc["python"],
            doc.get("python_version", ""),
            doc["site"],
            doc.get("version"),
            files,
            {k: int(v) for k, v in doc.get("modes", {}).items()},
            dict(doc.get("links") or {}),
            doc.get("owner"),
            doc.get("site_real") or doc["site"],
        )

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
            raise OperationFailed(
                f"image {ref!r} is not in the local {engine.name} engine{engine.where()}",
                hint=f"pull or build it first ({engine.name} pull {ref}); mlops never pulls",
            )
        self.engine, self.ref, self.label = engine, ref, f"image {ref}"
        self.image_id: str = info["Id"]
        config = info.get("Config") or {}
        self.entrypoint = config.get("Entrypoint")
        self.cmd = config.get("Cmd")
        self.labels: dict = config.get("Labels") or {}

    def _python(self, args, stdin=None):
        return self.engine.python_in_image(self.image_id, args, stdin)

    def describe(self) -> dict:
        return {
            "kind": "image",
            "ref": self.ref,
            "image_id": self.image_id,
            "engine": self.engine.name,
            "entrypoint": self.entrypoint,
            "cmd": self.cmd,
        }

    def default_tag(self, patch_sha: str) -> str:
        short = patch_sha[:12]
        ref = self.ref
        by_id = re.fullmatch(r"(sha256:)?[0-9a-f]{12,64}", ref) and self.image_id.split(":")[-1].startswith(
            ref.split(":")[-1]
        )
        if "@" in ref or by_id:
            return f"mlops-patched:{short}"
        name, tag = ref, "latest"
        last = ref.rsplit("/", 1)[-1]
        if ":" in last:
            name, tag = ref.rsplit(":", 1)
        return f"{name}:{tag}-mlops-{short}"

    def labels_for(self, patch_sha: str, package: str, version: str | None, paths: list[str]) -> dict[str, str]:
        return image_labels(patch_sha, package, version, paths, self.ref, self.image_id)

    def dockerfile(self, located: Located, new: dict[str, bytes | None], labels: dict[str, str]) -> str:
        lines = [f"FROM {self.image_id}"]
        for rel, data in new.items():
            if data is not None:
                lines.append(f"COPY {json.dumps(['files/' + rel, located.path_of(rel)])}")
        verify = {
            "site": located.site,
            "files": {rel: hashlib.sha256(data).hexdigest() for rel, data in new.items() if data is not None},
            "delete": [rel for rel, data in new.items() if data is None],
        }
        lines.append("RUN " + json.dumps([located.python, "-c", agent.SOURCE, "verify", json.dumps(verify)]))
        lines.append(label_line(labels))
        return "\n".join(lines) + "\n"

    def build(self, located: Located, new: dict[str, bytes | None], labels: dict[str, str], tag: str) -> str:
        with tempfile.TemporaryDirectory(prefix="mlops-patch-build-") as context:
            for rel, data in new.items():
                if data is None:
                    continue
                mode = located.modes.get(rel, 0o666 & ~current_umask())
                dest = safe_join(Path(context, "files"), rel)
                dest.parent.mkdir(parents=True, exist_ok=True)
                write_new(dest, data, mode=mode)
                os.chmod(dest, mode)
            write_new(Path(context, "Dockerfile"), self.dockerfile(located, new, labels))
            result = self.engine.build(context, tag)
        if not result.ok:
            tail = " | ".join((result.stderr or result.stdout).strip().splitlines()[-3:])
            raise OperationFailed(
                f"building {tag} failed: {tail}", hint="nothing was tagged; re-run with --debug for more"
            )
        info = self.engine.inspect("image", tag)
        if info is None:
            raise OperationFailed(f"the build reported success but {tag} is not in the engine")
        return info["Id"]

    def derived(self, tag: str) -> ImageTarget:
        return ImageTarget(self.engine, tag)


def image_labels(
    patch_sha: str, package: str, version: str | None, paths: list[str], base_ref: str, base_id: str | None
) -> dict[str, str]:
    """The labels of a patched image, built by `apply --image` or by a `mlops patch dockerfile` build."""
    labels = {
        f"{LABEL_PREFIX}.sha256": patch_sha,
        f"{LABEL_PREFIX}.package": package,
        f"{LABEL_PREFIX}.version": version or "",
        f"{LABEL_PREFIX}.files": ",".join(paths),
        f"{LABEL_PREFIX}.base-image": base_ref,
    }
    if base_id:
        labels[f"{LABEL_PREFIX}.base-image-id"] = base_id
    return labels


class ContainerTarget(Target):
    kind = "container"

    def __init__(self, engine: Engine, name: str):
        engine.ensure_running()
        info = engine.inspect("container", name)
        if info is None:
            raise OperationFailed(
                f"no container named {name!r} in the {engine.name} engine{engine.where()}",
                hint=f"list them with {engine.name} ps",
            )
        if not (info.get("State") or {}).get("Running"):
            raise OperationFailed(
                f"container {name!r} is not running", hint=f"start it first ({engine.name} start {name})"
            )
        self.engine, self.name, self.label = engine, name, f"container {name}"
        self.container_id = info["Id"]
        self.image = (info.get("Config") or {}).get("Image")

    def _python(self, args, stdin=None):
        return self.engine.python_in_container(self.name, args, stdin)

    def describe(self) -> dict:
        return {
            "kind": "container",
            "ref": self.name,
            "container_id": self.container_id,
            "image": self.image,
            "engine": self.engine.name,
        }

    def write(self, located: Located, new: dict[str, bytes | None]) -> dict[str, str]:
        payload = {
            "site": located.site,
            "files": {rel: None if d is None else base64.b64encode(d).decode("ascii") for rel, d in new.items()},
        }
        doc = self.agent("write", {}, stdin=json.dumps(payload), what=f"writing files in {self.label}")
        if doc.get("error") == "link":
            raise UsageError(
                f"refusing to write {located.path_of(doc['path'])} in {self.label}: it is reached "
                f"through a symbolic link (to {one_line(doc['message'])}); nothing was changed"
            )
        if doc.get("error") == "syntax":
            raise OperationFailed(
                f"{doc['path']} does not compile in {self.label} (line {doc['line']}: {doc['message']}); "
                "nothing was changed"
            )
        if doc.get("error") == "unwritable":
            raise OperationFailed(
                f"cannot write {doc['message']} in {self.label}; nothing was changed",
                hint="the container's user may not own site-packages: patch the image instead (--image), "
                "or restart the container as root",
            )
        return doc["written"]


# Valid Python and a syntax error in every shell, so nothing runs when --python names a shell
# (`/bin/sh -c 'import sys'` would run ImageMagick's `import`). Python prints a marker and its version.
_PYTHON_CHECK = "print(str(12345*2)+' '+'.'.join(map(str,__import__('sys').version_info[:2])))"


class LocalTarget(Target):
    kind = "local"

    def __init__(self, python: str | None):
        python = python or sys.executable
        resolved = proc.which(python) if os.sep not in python else python
        if not resolved or not os.path.exists(resolved):
            raise UsageError(
                f"no Python interpreter at {python!r}", hint="give --python PATH/TO/bin/python of the environment"
            )
        if os.path.isdir(resolved) or not os.access(resolved, os.X_OK):
            raise UsageError(
                f"--python {show_path(python)} is not an executable program",
                hint="give --python PATH/TO/bin/python of the environment",
            )
        self.python, self.label = resolved, f"the environment of {resolved}"
        if os.path.realpath(resolved) != os.path.realpath(sys.executable):
            self._check_is_python()

    def _check_is_python(self) -> None:
        result = proc.run([self.python, "-c", _PYTHON_CHECK], timeout=60)
        words = result.stdout.split()
        if not (result.ok and len(words) == 2 and words[0] == "24690"):
            raise UsageError(
                f"--python {show_path(self.python)} is not a Python interpreter (it did not run Python code)",
                hint="give --python PATH/TO/bin/python of the environment to patch",
            )
        major, _, minor = words[1].partition(".")
        if (int(major), int(minor or 0)) < (3, 6):
            raise UsageError(f"--python {show_path(self.python)} is Python {words[1]}; mlops patch needs 3.6 or newer")

    def _python(self, args, stdin=None):
        result = proc.run([self.python, *args], timeout=300, input=stdin)
        if result.rc in (proc.NOT_INSTALLED, proc.NOT_EXECUTABLE):
            raise OperationFailed(f"cannot run {self.python}: {result.stderr.strip()}")
        return self.python, result

    def describe(self) -> dict:
        return {"kind": "local", "ref": self.python}

    def compile_check(self, located: Located, new: dict[str, bytes | None]) -> None:
        """Compile every new .py file with the target's interpreter before anything is written."""
        sources = {
            located.path_of(r): base64.b64encode(d).decode("ascii")
            for r, d in new.items()
            if d is not None and r.endswith(".py")
        }
        if not sources:
            return
        script = (
            "import sys,json,base64\nfor p,b in json.loads(sys.stdin.read()).items():\n"
            "    compile(base64.b64decode(b), p, 'exec', dont_inherit=True)\n"
        )
        _, result = self._python(["-c", script], stdin=json.dumps(sources))
        if not result.ok:
            tail = (result.stderr.strip().splitlines() or ["?"])[-1]
            raise OperationFailed(f"patched file does not compile with {self.python}: {tail}; nothing was changed")

    def write(
        self,
        located: Located,
        new: dict[str, bytes | None],
        *,
        command: str = "apply",
        patch: tuple[str, bytes] | None = None,
    ) -> dict[str, str | None]:
        """Replace (create, delete) files so that a crash leaves a state `apply`/`revert` can finish.

        Old and new contents go to the content-addressed store first (a backup that cannot be
        written stops here, before any file changes); then, with Ctrl-C/SIGTERM held, the journal
        is written, each file replaced atomically, and the journal removed. A file that cannot be
        replaced (read-only site-packages) puts back the ones already replaced.
        """
        paths = {rel: safe_join(located.site, rel, what="patched file") for rel in new}
        olds: dict[str, tuple[bytes | None, int | None]] = {}
        for rel, path in paths.items():
            try:
                olds[rel] = (path.read_bytes(), path.stat().st_mode & 0o7777)
            except FileNotFoundError:
                olds[rel] = (None, None)
            except OSError as exc:
                raise OperationFailed(f"cannot read {show_path(path)}: {exc.strerror}; nothing was changed") from None
        store = journal.store_dir(located.site)
        try:
            for data in [o for o, _ in olds.values()] + list(new.values()):
                if data is not None:
                    journal.put_blob(store, data)
            copy = journal.keep_patch(located.site, patch[1]) if patch else ""
        except MlopsError as exc:
            raise OperationFailed(
                f"cannot write the backup under {show_path(store)}: {exc.message}; nothing was changed",
                hint="set MLOPS_STATE_DIR to a writable folder",
            ) from None
        entry = journal.Journal(
            located.site,
            command,
            hashlib.sha256(patch[1]).hexdigest() if patch else "",
            patch[0] if patch else "",
            copy,
            self.python,
            [],
            time.time(),
        )
        for rel, data in new.items():
            entry.entries.append({"path": rel, "before": _sha(olds[rel][0]), "after": _sha(data), "mode": olds[rel][1]})
        with interrupts.deferred():
            journal.save(entry)
            done: list[str] = []
            try:
                for rel, data in new.items():
                    _put(paths[rel], data, olds[rel][1])
                    done.append(rel)
            except (OSError, MlopsError) as exc:
                for rel_done in done:
                    _put(paths[rel_done], olds[rel_done][0], olds[rel_done][1])
                journal.clear(located.site)
                reason = exc.strerror if isinstance(exc, OSError) else exc.message
                raise OperationFailed(
                    f"cannot replace {show_path(paths[rel])}: {reason}; nothing was changed",
                    hint="run as the owner of that environment, or patch a virtual environment",
                ) from None
            journal.clear(located.site)
        return {rel: _sha(new[rel]) for rel in paths}

    def finish(self, located: Located, pending: journal.Journal, side: str) -> list[str]:
        """Bring every file of an interrupted command to one side ("after": as the command meant,
        "before": as it found them) from the stored copies. Returns what was done."""
        store = journal.store_dir(located.site)
        plan: dict[str, bytes | None] = {}
        modes: dict[str, int | None] = {}
        for e in pending.entries:
            path = safe_join(located.site, e["path"], what="patched file")
            try:
                current = _sha(path.read_bytes())
            except FileNotFoundError:
                current = None
            want = e[side]
            if current == want:
                continue
            if current not in (e["before"], e["after"]):
                raise OperationFailed(
                    f"{show_path(path)} changed since the interrupted {pending.command} "
                    f"(sha256 {current[:12] if current else 'absent'}); not touching it",
                    hint="restore it by hand, then remove " + show_path(journal.journal_path(located.site)),
                )
            data = None if want is None else journal.get_blob(store, want)
            if want is not None and data is None:
                raise OperationFailed(
                    f"the stored copy {want[:12]} of {show_path(path)} is missing or damaged",
                    hint=f"reinstall the package, then remove {show_path(journal.journal_path(located.site))}",
                )
            plan[e["path"]] = data
            modes[e["path"]] = e.get("mode")
        done = []
        with interrupts.deferred():
            for rel, data in plan.items():
                path = safe_join(located.site, rel, what="patched file")
                _put(path, data, modes[rel])
                done.append(
                    f"{'removed' if data is None else 'restored'} {path} ({_sha(data)[:12] if data else 'absent'})"
                )
            for e in pending.entries:
                for tmp in journal.stray_temporaries(safe_join(located.site, e["path"], what="patched file")):
                    tmp.unlink(missing_ok=True)
                    done.append(f"removed the stray temporary file {tmp}")
            journal.clear(located.site)
        return done


def _sha(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()


def _put(path: Path, data: bytes | None, mode: int | None) -> None:
    """Make ``path`` hold ``data`` (None: remove it), atomically, and drop its stale bytecode."""
    if data is None:
        path.unlink(missing_ok=True)
    else:
        if not path.parent.is_dir():
            path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data, mode=mode, what="patched file")
    for pyc in (path.parent / "__pycache__").glob(path.stem + ".*.pyc"):
        pyc.unlink(missing_ok=True)


def label_line(labels: dict[str, str]) -> str:
    """A Dockerfile LABEL instruction (values JSON-quoted, which the Dockerfile parser reads back)."""
    return "LABEL " + " ".join(f"{k}={json.dumps(v)}" for k, v in labels.items())


def backup_dir_for(site: str) -> Path:
    """Where local backups live: content-addressed by sha256, one folder per site-packages."""
    return journal.store_dir(site)
