# -*- coding: utf-8 -*-
"""Checks that run on the far side: copied into every bundle as `_bundle.py`.

Standard library only and Python 3.6 compatible (RHEL 8's platform python), because the
air-gapped machine has nothing else. `install.sh` calls it; `mlops wheels --verify` imports
the same code, so the check is written once.

    python3 _bundle.py verify BUNDLE_DIR          re-hash every file against manifest.json
    python3 _bundle.py preflight BUNDLE_DIR [NAME] print the requirements file for this interpreter
                                                   (and, on a second line, the bundled pip to use)
"""

import hashlib
import json
import os
import platform
import sys

MANIFEST = "manifest.json"


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_manifest(bundle):
    path = os.path.join(bundle, MANIFEST)
    try:
        with open(path, "r") as fh:
            return json.load(fh)
    except (OSError, ValueError) as exc:
        raise SystemExit("error: cannot read %s: %s" % (path, exc))


def verify(bundle, manifest=None):
    """(number of files checked, list of problems); empty problems means intact."""
    manifest = manifest or load_manifest(bundle)
    problems = []
    listed = set()
    for entry in manifest.get("files", []):
        rel = entry["path"]
        listed.add(rel)
        path = os.path.join(bundle, *rel.split("/"))
        if not os.path.isfile(path):
            problems.append("missing: %s" % rel)
        elif sha256_of(path) != entry["sha256"]:
            problems.append("sha256 mismatch: %s (the file was changed or damaged)" % rel)
    wheel_dir = os.path.join(bundle, "wheels")
    if os.path.isdir(wheel_dir):
        for name in sorted(os.listdir(wheel_dir)):
            if "wheels/" + name not in listed:
                problems.append("not in the manifest: wheels/%s" % name)
    return len(listed), problems


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
    needs = target.get("requires_glibc")
    if needs and _version_tuple(needs) > (2, 17) and _version_tuple(facts["pip"]) < (20, 3):
        return "pip %s is too old for manylinux_2_x wheels (needs 20.3 or newer; or rebuild with --with-pip)" % facts["pip"]
    return None


def bundled_pip(manifest):
    """The pip wheel shipped in the bundle (--with-pip), as a path inside it, or None."""
    for package in manifest.get("packages", []):
        if package["name"] == "pip" and package["filename"].endswith(".whl"):
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


def main(argv):
    if len(argv) < 2 or argv[0] not in ("verify", "preflight"):
        sys.stderr.write(__doc__)
        return 2
    bundle = argv[1]
    manifest = load_manifest(bundle)
    if argv[0] == "verify":
        count, problems = verify(bundle, manifest)
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
