"""Checks that run on the far side: copied into every bundle as `_bundle.py`.

Standard library only and Python 3.6 compatible (RHEL 8's platform python), because the
air-gapped machine has nothing else. `install.sh` calls it; `mlops wheels --verify` imports
the same code, so the check is written once.

    python3 _bundle.py verify BUNDLE_DIR           re-hash every file against manifest.json
    python3 _bundle.py preflight BUNDLE_DIR [NAME] print the requirements file for this interpreter
                                                   (and, on a second line, the bundled pip to use)
    python3 _bundle.py managed                     exit 0 when this interpreter is externally managed (PEP 668)
    python3 _bundle.py snapshot STATE_DIR REQFILE  record what is installed (and back up what REQFILE may replace)
    python3 _bundle.py changes STATE_DIR           say what changed since the snapshot
    python3 _bundle.py rollback STATE_DIR          restore the snapshot
"""

import hashlib
import json
import os
import platform
import shutil
import sys
import sysconfig
import tarfile

MANIFEST = "manifest.json"
TOOL_FILES = ("README.txt", "_bundle.py", "install.sh")
MAX_MANIFEST_BYTES = 64 * 1024 * 1024


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def parse_manifest(data, where):
    """The manifest document, or ValueError saying what is wrong with it."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise ValueError("%s is larger than %d MiB" % (where, MAX_MANIFEST_BYTES >> 20))
    try:
        doc = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("%s is not valid JSON (%s)" % (where, exc))
    if not isinstance(doc, dict):
        raise ValueError("%s is not a JSON object" % where)
    return doc


def load_manifest(bundle):
    path = os.path.join(bundle, MANIFEST)
    try:
        with open(path, "rb") as fh:
            return parse_manifest(fh.read(MAX_MANIFEST_BYTES + 1), path)
    except (OSError, ValueError) as exc:
        raise SystemExit("error: cannot read %s: %s" % (path, exc))


def check_rel(rel):
    """Why a path from the manifest may not be used (absolute, '..', odd characters); None if fine."""
    if not isinstance(rel, str) or not rel or len(rel) > 4096:
        return "not a path"
    if rel.startswith("/") or "\\" in rel or "\x00" in rel or (len(rel) > 1 and rel[1] == ":"):
        return "an absolute path"
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return "leads out of the bundle"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in rel):
        return "has control characters"
    return None


def manifest_entries(manifest):
    """[(path, sha256)] of the files the manifest covers; ValueError for a manifest of the wrong shape
    (no files at all, entries that are not objects, paths that leave the bundle)."""
    files = manifest.get("files")
    if not isinstance(files, list):
        raise ValueError("'files' is not a list")
    if not files:
        raise ValueError("it lists no files (an empty bundle is not a bundle)")
    out, seen = [], set()
    for entry in files:
        if not isinstance(entry, dict):
            raise ValueError("an entry of 'files' is not an object")
        rel, sha = entry.get("path"), entry.get("sha256")
        why = check_rel(rel)
        if why:
            raise ValueError("path %r %s" % (str(rel)[:200], why))
        if not isinstance(sha, str) or len(sha) != 64:
            raise ValueError("the sha256 of %s is not 64 hex digits" % rel)
        if rel in seen:
            raise ValueError("%s is listed twice" % rel)
        seen.add(rel)
        out.append((rel, sha.lower()))
    return out


def compare(entries, found):
    """Problems between the manifest's entries and `found` {path: sha256 or a problem string}."""
    problems = []
    listed = set()
    for rel, sha in entries:
        listed.add(rel)
        got = found.get(rel)
        if got is None:
            problems.append("missing: %s" % rel)
        elif got.startswith("!"):
            problems.append("%s: %s" % (got[1:], rel))
        elif got != sha:
            problems.append("sha256 mismatch: %s (the file was changed or damaged)" % rel)
    for rel in TOOL_FILES:
        if rel not in listed:
            problems.append("not covered by manifest.json: %s (it could have been changed unnoticed)" % rel)
    for rel in sorted(found):
        if rel not in listed and rel != MANIFEST:
            problems.append("not in the manifest: %s" % rel)
    return problems


def scan_folder(bundle):
    """{relative path: sha256, or '!problem'} of everything in the bundle folder."""
    found = {}
    root = os.path.realpath(bundle)
    for dirpath, dirnames, filenames in os.walk(bundle):
        for name in sorted(dirnames):
            full = os.path.join(dirpath, name)
            if os.path.islink(full):
                found[os.path.relpath(full, bundle).replace(os.sep, "/")] = "!a symbolic link, not a folder"
                dirnames.remove(name)
        for name in filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, bundle).replace(os.sep, "/")
            if os.path.islink(full) or not os.path.realpath(full).startswith(root + os.sep):
                found[rel] = "!a symbolic link"
            elif not os.path.isfile(full):
                found[rel] = "!not a regular file"
            else:
                found[rel] = sha256_of(full)
    return found


def verify(bundle, manifest=None):
    """(number of files checked, list of problems); empty problems means intact."""
    manifest = manifest or load_manifest(bundle)
    entries = manifest_entries(manifest)
    return len(entries), compare(entries, scan_folder(bundle))


# --- the interpreter ---------------------------------------------------------------------


def externally_managed():
    """PEP 668: the interpreter's stdlib holds EXTERNALLY-MANAGED and this is not a venv."""
    if getattr(sys, "base_prefix", sys.prefix) != sys.prefix:
        return False
    try:
        stdlib = sysconfig.get_path("stdlib")
    except Exception:
        return False
    return bool(stdlib) and os.path.isfile(os.path.join(stdlib, "EXTERNALLY-MANAGED"))


def machine_facts():
    libc, version = platform.libc_ver()
    try:
        import pip

        pip_version = pip.__version__
    except Exception:
        pip_version = None
    return {
        "python": "%d.%d" % sys.version_info[:2],
        "machine": {"amd64": "x86_64", "arm64": "aarch64"}.get(platform.machine().lower(), platform.machine()),
        "glibc": version if libc == "glibc" else None,
        "pip": pip_version,
        "executable": sys.executable,
        "externally_managed": externally_managed(),
    }


def _version_tuple(text):
    out = []
    for part in (text or "0").split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        out.append(int(digits or 0))
    return tuple(out)


def pip_problem(target, facts):
    """Why this interpreter's own pip cannot install the target's wheels; None when it can."""
    if not facts["pip"]:
        return "no pip in this interpreter (install python3-pip, or rebuild the bundle with --with-pip)"
    pip_needed = target.get("requires_pip")
    if pip_needed is None and "requires_pip" not in target:  # a bundle from before requires_pip
        glibc = target.get("requires_glibc")
        pip_needed = "20.3" if glibc and _version_tuple(glibc) > (2, 17) else None
    if pip_needed and _version_tuple(facts["pip"]) < _version_tuple(pip_needed):
        return (
            "pip %s is too old for this bundle's wheels: their platform tags need pip %s or newer "
            "(rebuild with --with-pip to ship one)" % (facts["pip"], pip_needed)
        )
    return None


def bundled_pip(manifest):
    """The pip wheel shipped in the bundle (--with-pip), as a path inside it, or None."""
    for package in manifest.get("packages", []):
        if (
            isinstance(package, dict)
            and package.get("name") == "pip"
            and str(package.get("filename", "")).endswith(".whl")
        ):
            return "wheels/" + package["filename"]
    return None


def target_fits(target, facts, have_pip_wheel=False):
    """Why this interpreter cannot use the target's wheels; None when it can."""
    if facts["python"] != target["python"]:
        return "Python %s, the target needs %s" % (facts["python"], target["python"])
    if facts["machine"] != target["arch"]:
        return "CPU %s, the target needs %s" % (facts["machine"], target["arch"])
    needs = target.get("requires_glibc")
    if needs and (not facts["glibc"] or _version_tuple(facts["glibc"]) < _version_tuple(needs)):
        return "glibc %s, the wheels need %s or newer" % (facts["glibc"] or "none", needs)
    if not have_pip_wheel:
        return pip_problem(target, facts)
    return None


def pick_target(manifest, facts, wanted=None):
    """(target, None) or (None, message)."""
    reasons = []
    have_pip_wheel = bundled_pip(manifest) is not None
    for target in manifest.get("targets", []):
        if wanted and target["name"] != wanted:
            continue
        why = target_fits(target, facts, have_pip_wheel)
        if why is None:
            return target, None
        reasons.append("%s: %s" % (target["name"], why))
    if wanted and not reasons:
        return None, "no target named %s in this bundle" % wanted
    return None, "%s does not match this bundle (%s)" % (facts["executable"], "; ".join(reasons))


# --- snapshot, changes, rollback -----------------------------------------------------------


def _site_dirs():
    paths = sysconfig.get_paths()
    out = []
    for key in ("purelib", "platlib"):
        p = paths.get(key)
        if p and os.path.isdir(p) and p not in out:
            out.append(p)
    return out


def _normalize(name):
    out = []
    for ch in name.lower():
        out.append("-" if ch in "._-" else ch)
    text = "".join(out)
    while "--" in text:
        text = text.replace("--", "-")
    return text


def installed():
    """{normalized name: (version, site dir, dist-info folder name)} of this interpreter."""
    found = {}
    for site in _site_dirs():
        for entry in sorted(os.listdir(site)):
            if not entry.endswith(".dist-info"):
                continue
            meta = os.path.join(site, entry, "METADATA")
            name = version = None
            try:
                with open(meta, "rb") as fh:
                    for raw in fh:
                        line = raw.decode("utf-8", "replace").rstrip("\r\n")
                        if not line:
                            break
                        if line.startswith("Name:") and name is None:
                            name = line[5:].strip()
                        elif line.startswith("Version:") and version is None:
                            version = line[8:].strip()
            except OSError:
                continue
            if name and version:
                found.setdefault(_normalize(name), (version, site, entry))
    return found


def _record_files(site, dist_info):
    """Absolute paths of the files a distribution installed (its RECORD), inside sys.prefix only."""
    out = []
    prefix = os.path.realpath(sys.prefix)
    try:
        with open(os.path.join(site, dist_info, "RECORD")) as fh:
            rows = fh.read().splitlines()
    except (OSError, UnicodeDecodeError):
        rows = []
    for row in rows:
        rel = row.split(",")[0].strip().strip('"')
        if not rel:
            continue
        path = os.path.normpath(os.path.join(site, rel))
        if os.path.realpath(os.path.dirname(path)).startswith(prefix + os.sep) and path not in out:
            out.append(path)
    return out


def _requirement_names(reqfile):
    names = set()
    with open(reqfile) as fh:
        for line in fh:
            line = line.strip()
            if not line or line.startswith(("#", "-")):
                continue
            names.add(_normalize(line.split("==")[0].split("[")[0].strip()))
    return names


def snapshot(state, reqfile):
    """Record what is installed; back up the files of every installed distribution the
    requirements file may replace, so `rollback` can restore them without pip or a network."""
    if os.path.isdir(state):
        shutil.rmtree(state)
    os.makedirs(state, 0o700)
    before = installed()
    wanted = _requirement_names(reqfile)
    backup = []
    with tarfile.open(os.path.join(state, "backup.tar"), "w") as tar:
        for name in sorted(wanted & set(before)):
            version, site, dist_info = before[name]
            for path in _record_files(site, dist_info):
                if os.path.isfile(path) and not os.path.islink(path):
                    tar.add(path, arcname=path.lstrip("/"), recursive=False)
                    backup.append(path)
    doc = {
        "python": sys.executable,
        "prefix": sys.prefix,
        "installed": {n: v[0] for n, v in before.items()},
        "backed_up": sorted(wanted & set(before)),
    }
    with open(os.path.join(state, "before.json"), "w") as fh:
        json.dump(doc, fh, indent=1, sort_keys=True)
    return doc


def _load_state(state):
    try:
        with open(os.path.join(state, "before.json")) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        raise SystemExit("error: no install recorded in %s (nothing to roll back)" % state)


def changes(state):
    """(added, changed, removed): names, (name, old, new), names since the snapshot."""
    before = _load_state(state)["installed"]
    now = {n: v[0] for n, v in installed().items()}
    added = sorted(n for n in now if n not in before)
    changed = sorted((n, before[n], now[n]) for n in now if n in before and before[n] != now[n])
    removed = sorted(n for n in before if n not in now)
    return added, changed, removed


def describe_changes(state):
    added, changed, removed = changes(state)
    parts = []
    if added:
        parts.append("installed %d: %s" % (len(added), ", ".join(added)))
    if changed:
        parts.append("changed %d: %s" % (len(changed), ", ".join("%s %s -> %s" % c for c in changed)))
    if removed:
        parts.append("removed %d: %s" % (len(removed), ", ".join(removed)))
    return "; ".join(parts) or "nothing changed"


def _prune(folders, site):
    """Remove what removed files leave behind: a __pycache__ with no source beside it, and
    folders left empty (else an emptied package still imports as a namespace package)."""
    for folder in sorted(folders, key=len, reverse=True):
        while folder.startswith(site + os.sep) and os.path.isdir(folder):
            cache = os.path.join(folder, "__pycache__")
            if os.path.isdir(cache) and not any(n.endswith(".py") for n in os.listdir(folder)):
                shutil.rmtree(cache, ignore_errors=True)
            if os.listdir(folder):
                break
            os.rmdir(folder)
            folder = os.path.dirname(folder)


def rollback(state):
    """Remove what was installed since the snapshot and restore the backed-up distributions."""
    doc = _load_state(state)
    if os.path.realpath(doc.get("prefix", "")) != os.path.realpath(sys.prefix):
        raise SystemExit("error: the recorded install was into %s, not this interpreter" % doc.get("python"))
    before = doc["installed"]
    now = installed()
    undone = []
    for name, (version, site, dist_info) in sorted(now.items()):
        if name in before and before[name] == version:
            continue
        folders = set()
        for path in _record_files(site, dist_info):
            if os.path.isfile(path) or os.path.islink(path):
                os.remove(path)
                folders.add(os.path.dirname(path))
        shutil.rmtree(os.path.join(site, dist_info), ignore_errors=True)
        _prune(folders, site)
        undone.append(name)
    with tarfile.open(os.path.join(state, "backup.tar"), "r") as tar:
        for member in tar.getmembers():
            if not member.isfile() or member.name.startswith("/") or ".." in member.name.split("/"):
                continue
            dest = "/" + member.name
            parent = os.path.dirname(dest)
            if not os.path.isdir(parent):
                os.makedirs(parent)
            src = tar.extractfile(member)
            with open(dest, "wb") as out:
                shutil.copyfileobj(src, out)
            os.chmod(dest, member.mode & 0o777)
    return undone


def main(argv):
    commands = ("verify", "preflight", "managed", "snapshot", "changes", "rollback")
    if not argv or argv[0] not in commands:
        sys.stderr.write(__doc__)
        return 2
    if argv[0] == "managed":
        return 0 if externally_managed() else 1
    if argv[0] == "snapshot":
        snapshot(argv[1], argv[2])
        return 0
    if argv[0] == "changes":
        sys.stdout.write(describe_changes(argv[1]) + "\n")
        return 0
    if argv[0] == "rollback":
        msg = describe_changes(argv[1])
        rollback(argv[1])
        sys.stderr.write("rolled back (%s); now: %s\n" % (msg, describe_changes(argv[1])))
        return 0
    bundle = argv[1]
    manifest = load_manifest(bundle)
    if argv[0] == "verify":
        try:
            count, problems = verify(bundle, manifest)
        except ValueError as exc:
            sys.stderr.write("error: manifest.json is damaged: %s\n" % exc)
            return 1
        for problem in problems:
            sys.stderr.write("error: %s\n" % problem)
        if problems:
            sys.stderr.write("error: the bundle failed verification; do not install it\n")
            return 1
        sys.stderr.write("verified %d files against manifest.json\n" % count)
        return 0
    facts = machine_facts()
    target, message = pick_target(manifest, facts, argv[2] if len(argv) > 2 and argv[2] else None)
    if target is None:
        sys.stderr.write("error: %s\n" % message)
        return 1
    # Line 1: the requirements file. Line 2: the bundled pip wheel to run, when this
    # interpreter's own pip cannot do the job (empty otherwise).
    use_wheel = bundled_pip(manifest) if pip_problem(target, facts) else None
    sys.stdout.write("%s\n%s\n" % (target["requirements_file"], use_wheel or ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
