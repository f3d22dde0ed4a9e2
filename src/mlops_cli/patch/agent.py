"""The small program mlops runs with the TARGET's own interpreter (image, container or venv).

It is passed whole as ``python3 -c SOURCE ACTION ARGS_JSON`` so nothing is copied into the
target, and it uses only the standard library (Python 3.6+), because the target is someone
else's environment. Actions:

- ``probe {"package", "paths"}``: where the package lives (``importlib.util.find_spec``, which
  does not run the package), its version (distribution metadata, else ``__version__``), the
  bytes (base64) of each requested file relative to the folder holding the package (``missing``:
  files that do not exist; ``errors``: files that cannot be read), which of the paths the
  package's installed distribution lists in its RECORD and its top-level names (``owner``), and
  every path reached through a symbolic link (``links``: its real path).
- ``write {"site", "files": {path: base64 | null}}`` (JSON on stdin): refuse a path reached
  through a symbolic link; compile every new ``.py`` file first; only if all compile, write every
  one to a temporary name (mode kept), and only if all are written rename them into place, delete
  the files given as null, and drop stale ``__pycache__`` entries: all or nothing. Prints the
  sha256 of what is on disk afterwards (null: absent).
- ``verify {"site", "files": {path: sha256}, "delete": [path]}``: delete the listed files, then
  exit 1 unless each file has that sha256 and each ``.py`` compiles (the RUN step of a derived
  image).
- ``imports {"modules": [...]}``: try to import each module; report the error, if any.
- ``find {"package", "names": [...]}``: the ``.py`` files of the package that define a function
  or class of each name (``def NAME`` / ``class NAME``), for `patch port` when code moved.

Output is one JSON line on stdout.
"""

SOURCE = r"""
import base64, errno, glob, hashlib, importlib, json, os, re, sys

def out(doc, rc=0):
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.exit(rc)

def sha(data):
    return hashlib.sha256(data).hexdigest()

def version_of(package):
    try:
        from importlib import metadata
    except ImportError:
        metadata = None
    if metadata is not None:
        names = [package]
        try:
            names += metadata.packages_distributions().get(package, [])
        except Exception:
            pass
        for name in names:
            try:
                return metadata.version(name), "metadata"
            except Exception:
                pass
    try:
        module = importlib.import_module(package)
        return str(getattr(module, "__version__")), "__version__"
    except Exception:
        return None, None

def read_lines(path):
    try:
        with open(path, "rb") as fh:
            return fh.read().decode("utf-8", "replace").splitlines()
    except (IOError, OSError):
        return None

def listed_files(site, folder, entry):
    if entry.endswith(".dist-info"):
        listed = [line.split(",")[0] for line in (read_lines(os.path.join(folder, "RECORD")) or [])]
    else:
        listed = [os.path.relpath(os.path.normpath(os.path.join(folder, line)), site)
                  for line in (read_lines(os.path.join(folder, "installed-files.txt")) or []) if line]
    return set(os.path.normpath(p).replace(os.sep, "/") for p in listed if p)

def owner(site, package, paths):
    # The installed distribution whose RECORD (or installed-files.txt) lists the package. Cheap
    # checks first (a folder named like the package, top_level.txt); every RECORD only if needed.
    try:
        entries = sorted(e for e in os.listdir(site) if e.endswith((".dist-info", ".egg-info")))
    except OSError:
        entries = []
    norm = package.lower().replace("_", "-")
    def named(entry):
        return entry.lower().replace("_", "-").split("-")[0] == norm.split("-")[0] or \
            entry.lower().replace("_", "-").startswith(norm + "-")
    ordered = [e for e in entries if named(e)] + [e for e in entries if not named(e)]
    for full_scan in (False, True):
        for entry in ordered:
            folder = os.path.join(site, entry)
            top = [t.strip() for t in (read_lines(os.path.join(folder, "top_level.txt")) or []) if t.strip()]
            if not full_scan and package not in top and not (named(entry) and not top):
                continue
            listed = listed_files(site, folder, entry)
            owns = package in top or (package + ".py") in listed or any(p.startswith(package + "/") for p in listed)
            if not owns:
                continue
            if not top:
                top = sorted(set(p.split("/")[0][:-3] if p.endswith(".py") and "/" not in p else p.split("/")[0]
                                 for p in listed if not p.startswith("..") and p.split("/")[0] != "__pycache__"
                                 and not p.split("/")[0].endswith((".dist-info", ".data"))))
            return {"dist": entry, "top_level": top, "in_record": [p for p in paths if p in listed]}
    return None

def real_of(site, rel):
    # The real path when a component below site-packages is a symbolic link, else None.
    path = os.path.join(site, rel)
    want = os.path.join(os.path.realpath(site), rel)
    real = os.path.realpath(path)
    return None if real == want else real

def probe(args):
    import importlib.util
    package = args["package"]
    try:
        spec = importlib.util.find_spec(package)
    except Exception as exc:
        spec = None
    if spec is None:
        out({"error": "not-found", "python": sys.executable, "python_version": sys.version.split()[0]})
    if spec.submodule_search_locations:
        where = list(spec.submodule_search_locations)[0]
    else:
        where = spec.origin
    site = os.path.dirname(os.path.abspath(where))
    version, source = version_of(package)
    paths = args.get("paths", [])
    files, modes, missing, errors, links = {}, {}, [], {}, {}
    for rel in paths:
        path = os.path.join(site, rel)
        real = real_of(site, rel)
        if real is not None:
            links[rel] = real
            continue
        try:
            with open(path, "rb") as fh:
                files[rel] = base64.b64encode(fh.read()).decode("ascii")
            modes[rel] = os.stat(path).st_mode & 0o7777
        except (IOError, OSError) as exc:
            if exc.errno == errno.ENOENT and not os.path.lexists(path):
                missing.append(rel)
            else:
                errors[rel] = exc.strerror or str(exc)
    out({"python": sys.executable, "python_version": sys.version.split()[0], "site": site,
         "site_real": os.path.realpath(site), "package_dir": os.path.abspath(where), "version": version,
         "version_source": source, "files": files, "modes": modes, "missing": missing, "errors": errors,
         "links": links, "owner": owner(site, package, paths)})

def drop_pycache(path):
    folder, name = os.path.split(path)
    stem = os.path.splitext(name)[0]
    for pyc in glob.glob(os.path.join(folder, "__pycache__", stem + ".*.pyc")):
        try:
            os.unlink(pyc)
        except OSError:
            pass

def new_mode():
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask

def write(args):
    payload = json.loads(sys.stdin.read())
    site = payload["site"]
    new = dict((rel, None if b64 is None else base64.b64decode(b64)) for rel, b64 in payload["files"].items())
    for rel in new:
        real = real_of(site, rel)
        if real is not None:
            out({"error": "link", "path": rel, "message": real}, 1)
    for rel, data in new.items():
        if data is None or not rel.endswith(".py"):
            continue
        try:
            compile(data, os.path.join(site, rel), "exec", dont_inherit=True)
        except (SyntaxError, ValueError) as exc:
            out({"error": "syntax", "path": rel, "line": getattr(exc, "lineno", None),
                 "message": str(getattr(exc, "msg", exc))}, 1)
    # Two phases, so a multi-file patch is all or nothing: first every new file goes to a
    # temporary name beside its original (where a read-only folder or a full disk shows up);
    # only when all are written are they renamed over the originals, and deleted files removed.
    staged, made = [], []
    for rel, data in new.items():
        if data is None:
            continue
        path = os.path.join(site, rel)
        tmp = path + ".mlops-tmp"
        try:
            folder = os.path.dirname(path)
            if not os.path.isdir(folder):
                os.makedirs(folder)
                made.append(folder)
            try:
                mode = os.stat(path).st_mode & 0o7777
            except OSError:
                mode = new_mode()
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, mode)
        except OSError as exc:
            for _, done in staged:
                os.unlink(done)
            if os.path.isfile(tmp):
                os.unlink(tmp)
            for folder in reversed(made):
                try:
                    os.rmdir(folder)
                except OSError:
                    pass
            out({"error": "unwritable", "path": rel, "message": "%s: %s" % (tmp, exc.strerror or exc)}, 1)
        staged.append((path, tmp))
    written = {}
    for path, tmp in staged:
        os.replace(tmp, path)
    for rel, data in new.items():
        path = os.path.join(site, rel)
        if data is None:
            try:
                os.unlink(path)
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    raise
            written[rel] = None
        else:
            with open(path, "rb") as fh:
                written[rel] = sha(fh.read())
        drop_pycache(path)
    out({"written": written})

def verify(args):
    import py_compile
    bad = []
    for rel in args.get("delete", []):
        path = os.path.join(args["site"], rel)
        if real_of(args["site"], rel) is not None:
            bad.append("%s: reached through a symbolic link" % rel)
            continue
        try:
            os.unlink(path)
        except OSError as exc:
            bad.append("%s: cannot delete: %s" % (rel, exc.strerror or exc))
        drop_pycache(path)
    for rel, want in args["files"].items():
        path = os.path.join(args["site"], rel)
        with open(path, "rb") as fh:
            have = sha(fh.read())
        if have != want:
            bad.append("%s: sha256 %s, expected %s" % (rel, have, want))
            continue
        if not rel.endswith(".py"):
            continue
        try:
            with open(path, "rb") as fh:
                compile(fh.read(), path, "exec", dont_inherit=True)
        except (SyntaxError, ValueError) as exc:
            bad.append("%s: line %s: %s" % (rel, getattr(exc, "lineno", None), getattr(exc, "msg", exc)))
            continue
        drop_pycache(path)
        try:  # refresh the bytecode cache; an image whose user cannot write there still works
            py_compile.compile(path, doraise=True)
        except (OSError, py_compile.PyCompileError):
            pass
    if bad:
        out({"error": "verify", "problems": bad}, 1)
    out({"verified": sorted(args["files"]), "deleted": sorted(args.get("delete", []))})

def imports(args):
    results = {}
    for name in args["modules"]:
        try:
            importlib.import_module(name)
            results[name] = {"ok": True}
        except BaseException as exc:
            missing = getattr(exc, "name", None) if isinstance(exc, ImportError) else None
            results[name] = {"ok": False, "error": "%s: %s" % (type(exc).__name__, exc), "missing": missing}
    out({"imports": results})

def find(args):
    import importlib.util
    spec = importlib.util.find_spec(args["package"])
    if spec is None or not spec.submodule_search_locations:
        out({"found": {}})
    root = list(spec.submodule_search_locations)[0]
    site = os.path.dirname(os.path.abspath(root))
    names = [n for n in args["names"] if re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", n)]
    patterns = dict((n, re.compile(r"^\s*(?:async\s+)?(?:def|class)\s+" + n + r"\b", re.M)) for n in names)
    found = dict((n, []) for n in names)
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            try:
                with open(path, "rb") as fh:
                    text = fh.read(4 * 1024 * 1024).decode("utf-8", "replace")
            except (IOError, OSError):
                continue
            for n, pattern in patterns.items():
                if len(found[n]) < 1000 and n in text and pattern.search(text):
                    found[n].append(os.path.relpath(path, site).replace(os.sep, "/"))
    out({"found": found})

action = sys.argv[1]
arguments = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
{"probe": probe, "write": write, "verify": verify, "imports": imports, "find": find}[action](arguments)
"""
