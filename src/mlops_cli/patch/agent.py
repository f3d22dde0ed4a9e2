"""The small program mlops runs with the TARGET's own interpreter (image, container or venv).

It is passed whole as ``python3 -c SOURCE ACTION ARGS_JSON`` so nothing is copied into the
target, and it uses only the standard library (Python 3.6+), because the target is someone
else's environment. Actions:

- ``probe {"package", "paths"}``: where the package lives (``importlib.util.find_spec``, which
  does not run the package), its version (distribution metadata, else ``__version__``), and
  the bytes (base64) of each requested file, relative to the folder holding the package.
- ``write {"site", "files": {path: base64}}`` (JSON on stdin): compile every new file first;
  only if all compile, write every one to a temporary name (mode kept), and only if all are
  written rename them into place and drop stale ``__pycache__`` entries: all or nothing. Prints the sha256 of what is on disk afterwards.
- ``verify {"site", "files": {path: sha256}}``: exit 1 unless each file has that sha256 and
  compiles (the RUN step of a derived image).
- ``imports {"modules": [...]}``: try to import each module; report the error, if any.

Output is one JSON line on stdout.
"""

SOURCE = r'''
import base64, glob, hashlib, importlib, json, os, sys

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
    files, modes = {}, {}
    for rel in args.get("paths", []):
        path = os.path.join(site, rel)
        try:
            with open(path, "rb") as fh:
                files[rel] = base64.b64encode(fh.read()).decode("ascii")
            modes[rel] = os.stat(path).st_mode & 0o7777
        except (IOError, OSError):
            files[rel] = None
    out({"python": sys.executable, "python_version": sys.version.split()[0], "site": site,
         "package_dir": os.path.abspath(where), "version": version, "version_source": source, "files": files, "modes": modes})

def drop_pycache(path):
    folder, name = os.path.split(path)
    stem = os.path.splitext(name)[0]
    for pyc in glob.glob(os.path.join(folder, "__pycache__", stem + ".*.pyc")):
        try:
            os.unlink(pyc)
        except OSError:
            pass

def write(args):
    payload = json.loads(sys.stdin.read())
    site = payload["site"]
    new = {rel: base64.b64decode(b64) for rel, b64 in payload["files"].items()}
    for rel, data in new.items():
        try:
            compile(data, os.path.join(site, rel), "exec", dont_inherit=True)
        except SyntaxError as exc:
            out({"error": "syntax", "path": rel, "line": exc.lineno, "message": str(exc.msg)}, 1)
    # Two phases, so a multi-file patch is all or nothing: first every new file goes to a
    # temporary name beside its original (where a read-only folder or a full disk shows up);
    # only when all are written are they renamed over the originals.
    staged = []
    for rel, data in new.items():
        path = os.path.join(site, rel)
        tmp = path + ".mlops-tmp"
        try:
            try:
                mode = os.stat(path).st_mode & 0o7777
            except OSError:
                mode = 0o644
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
            out({"error": "unwritable", "path": rel, "message": "%s: %s" % (tmp, exc.strerror or exc)}, 1)
        staged.append((path, tmp))
    written = {}
    for (path, tmp), rel in zip(staged, new):
        os.replace(tmp, path)
        drop_pycache(path)
        with open(path, "rb") as fh:
            written[rel] = sha(fh.read())
    out({"written": written})

def verify(args):
    import py_compile
    bad = []
    for rel, want in args["files"].items():
        path = os.path.join(args["site"], rel)
        with open(path, "rb") as fh:
            have = sha(fh.read())
        if have != want:
            bad.append("%s: sha256 %s, expected %s" % (rel, have, want))
            continue
        try:
            with open(path, "rb") as fh:
                compile(fh.read(), path, "exec", dont_inherit=True)
        except SyntaxError as exc:
            bad.append("%s: line %s: %s" % (rel, exc.lineno, exc.msg))
            continue
        drop_pycache(path)
        try:  # refresh the bytecode cache; an image whose user cannot write there still works
            py_compile.compile(path, doraise=True)
        except (OSError, py_compile.PyCompileError):
            pass
    if bad:
        out({"error": "verify", "problems": bad}, 1)
    out({"verified": sorted(args["files"])})

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

action = sys.argv[1]
arguments = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
{"probe": probe, "write": write, "verify": verify, "imports": imports}[action](arguments)
'''
