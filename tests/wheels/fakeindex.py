"""A real package index on loopback, serving packages these tests build.

PEP 503 HTML (with `#sha256=` fragments, `data-requires-python`, `data-yanked`) always, and
PEP 691 JSON when `json_ok` is on and the client asks for it. Files support Range requests
(resume), and the index can demand HTTP basic auth. The wheels are real zip files with
METADATA, WHEEL and RECORD; the sdists carry a tiny stdlib-only PEP 517 backend so they build
without any build dependency from an index.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import tarfile
import threading
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def make_wheel(
    name: str,
    version: str,
    tag: str = "py3-none-any",
    requires: tuple[str, ...] = (),
    requires_python: str | None = None,
    extras: tuple[str, ...] = (),
    extra_files: dict[str, bytes] | None = None,
) -> tuple[str, bytes]:
    """(filename, bytes) of a wheel whose package `name` has `VERSION` and `TAG` constants;
    `extra_files` adds entries (e.g. `NAME-V.data/data/lib`, which pip cannot install)."""
    dist = f"{name}-{version}.dist-info"
    meta = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    meta += [f"Provides-Extra: {e}" for e in extras]
    meta += [f"Requires-Dist: {r}" for r in requires]
    if requires_python:
        meta.append(f"Requires-Python: {requires_python}")
    pure = tag.endswith("-none-any")
    files = {
        f"{name}/__init__.py": f"VERSION = {version!r}\nTAG = {tag!r}\n".encode(),
        f"{dist}/METADATA": ("\n".join(meta) + "\n").encode(),
        f"{dist}/WHEEL": (
            f"Wheel-Version: 1.0\nGenerator: fakeindex\nRoot-Is-Purelib: {'true' if pure else 'false'}\n"
            + "".join(f"Tag: {t}\n" for t in _expand(tag))
        ).encode(),
        f"{dist}/top_level.txt": f"{name}\n".encode(),
        **(extra_files or {}),
    }
    record = [_record_line(p, d) for p, d in files.items()] + [f"{dist}/RECORD,,"]
    files[f"{dist}/RECORD"] = ("\n".join(record) + "\n").encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in files.items():
            info = zipfile.ZipInfo(path, date_time=(2020, 1, 1, 0, 0, 0))
            zf.writestr(info, data)
    return f"{name}-{version}-{tag}.whl", buf.getvalue()


def _expand(tag: str) -> list[str]:
    py, abi, plats = tag.split("-")
    return [f"{p}-{a}-{pl}" for p in py.split(".") for a in abi.split(".") for pl in plats.split(".")]


BACKEND = r'''
"""A stdlib-only PEP 517 backend: builds a wheel tagged WHEEL_TAG from the package folder."""
import base64, hashlib, os, zipfile
NAME, VERSION, WHEEL_TAG = %(name)r, %(version)r, %(tag)r

def get_requires_for_build_wheel(config_settings=None):
    return []

def get_requires_for_build_sdist(config_settings=None):
    return []

def _line(path, data):
    d = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return "%%s,sha256=%%s,%%d" %% (path, d, len(data))

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    dist = "%%s-%%s.dist-info" %% (NAME, VERSION)
    pure = WHEEL_TAG.endswith("-none-any")
    files = {
        NAME + "/__init__.py": open(os.path.join(NAME, "__init__.py"), "rb").read(),
        dist + "/METADATA": ("Metadata-Version: 2.1\nName: %%s\nVersion: %%s\n" %% (NAME, VERSION)).encode(),
        dist + "/WHEEL": ("Wheel-Version: 1.0\nGenerator: inline\nRoot-Is-Purelib: %%s\nTag: %%s\n"
                          %% ("true" if pure else "false", WHEEL_TAG)).encode(),
    }
    record = [_line(p, d) for p, d in files.items()] + [dist + "/RECORD,,"]
    files[dist + "/RECORD"] = ("\n".join(record) + "\n").encode()
    filename = "%%s-%%s-%%s.whl" %% (NAME, VERSION, WHEEL_TAG)
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w") as zf:
        for path, data in files.items():
            zf.writestr(zipfile.ZipInfo(path, date_time=(2020, 1, 1, 0, 0, 0)), data)
    return filename
'''


def make_sdist(name: str, version: str, wheel_tag: str = "py3-none-any") -> tuple[str, bytes]:
    root = f"{name}-{version}"
    files = {
        f"{root}/PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{root}/pyproject.toml": (
            b'[build-system]\nrequires = []\nbuild-backend = "inline_backend"\nbackend-path = ["."]\n'
        ),
        f"{root}/inline_backend.py": (BACKEND % {"name": name, "version": version, "tag": wheel_tag}).encode(),
        f"{root}/{name}/__init__.py": f"VERSION = {version!r}\nBUILT = True\n".encode(),
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size, info.mtime = len(data), 1577836800
            tar.addfile(info, io.BytesIO(data))
    return f"{name}-{version}.tar.gz", buf.getvalue()


@dataclass
class Listed:
    filename: str
    data: bytes
    yanked: str | None = None  # reason ("" = yanked without reason)
    requires_python: str | None = None
    wrong_hash: bool = False
    listed_hash: str | None = None  # listed as it is instead of the real digest (hostile or odd indexes)
    hash_algo: str = "sha256"  # the algorithm the index lists
    no_hash: bool = False  # the index lists no hash at all

    @property
    def listed_sha256(self) -> str:
        if self.listed_hash is not None:
            return self.listed_hash
        real = hashlib.new(self.hash_algo, self.data).hexdigest()
        return ("0" * len(real)) if self.wrong_hash else real

    def hashes(self) -> dict[str, str]:
        return {} if self.no_hash else {self.hash_algo: self.listed_sha256}

    def fragment(self) -> str:
        return "" if self.no_hash else f"#{self.hash_algo}={self.listed_sha256}"


@dataclass
class FakeIndex:
    projects: dict[str, list[Listed]] = field(default_factory=dict)
    json_ok: bool = True
    auth: tuple[str, str] | None = None
    served: dict[str, int] = field(
        default_factory=lambda: {"json": 0, "html": 0, "file": 0, "range": 0, "mlops_range": 0}
    )
    url: str = ""
    raw_pages: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # project -> (content type, body) as is
    file_delay: float = 0.0  # seconds between the chunks of a file (downloads that overlap)
    auth_seen: list[str] = field(default_factory=list)  # Authorization headers received

    def add(self, project: str, listed: Listed) -> None:
        self.projects.setdefault(project, []).append(listed)

    def file(self, filename: str) -> Listed:
        return next(f for fs in self.projects.values() for f in fs if f.filename == filename)

    def page(self, project: str, as_json: bool) -> bytes:
        files = self.projects[project]
        if as_json:
            doc = {
                "meta": {"api-version": "1.0"},
                "name": project,
                "files": [
                    {
                        "filename": f.filename,
                        "url": f"../../files/{f.filename}",
                        "hashes": f.hashes(),
                        "requires-python": f.requires_python,
                        "yanked": (f.yanked or True) if f.yanked is not None else False,
                        "size": len(f.data),
                    }
                    for f in files
                ],
            }
            return json.dumps(doc).encode()
        rows = []
        for f in files:
            attrs = f'href="../../files/{f.filename}{f.fragment()}"'
            if f.requires_python:
                attrs += f' data-requires-python="{html.escape(f.requires_python)}"'
            if f.yanked is not None:
                attrs += f' data-yanked="{html.escape(f.yanked)}"'
            rows.append(f"<a {attrs}>{f.filename}</a><br/>")
        return (
            "<!DOCTYPE html><html><body><h1>Links for %s</h1>\n%s\n</body></html>" % (project, "\n".join(rows))
        ).encode()


def _handler(index: FakeIndex):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def _authorized(self) -> bool:
            if index.auth is None:
                return True
            want = "Basic " + base64.b64encode(f"{index.auth[0]}:{index.auth[1]}".encode()).decode()
            if self.headers.get("Authorization") == want:
                return True
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="fake"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return False

        def _send(self, code: int, body: bytes, ctype: str, extra: dict | None = None) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_HEAD(self):
            self.do_GET()

        def do_GET(self):
            index.auth_seen.append(self.headers.get("Authorization", ""))
            if not self._authorized():
                return
            parts = [p for p in self.path.split("?")[0].split("/") if p]
            if len(parts) == 2 and parts[0] == "simple" and parts[1] in index.raw_pages:
                ctype, body = index.raw_pages[parts[1]]
                return self._send(200, body, ctype)
            if len(parts) == 2 and parts[0] == "simple" and parts[1] in index.projects:
                as_json = index.json_ok and "application/vnd.pypi.simple.v1+json" in self.headers.get("Accept", "")
                index.served["json" if as_json else "html"] += 1
                ctype = "application/vnd.pypi.simple.v1+json" if as_json else "text/html"
                return self._send(200, index.page(parts[1], as_json), ctype)
            if len(parts) == 2 and parts[0] == "files":
                try:
                    f = index.file(parts[1])
                except StopIteration:
                    return self._send(404, b"not found", "text/plain")
                index.served["file"] += 1
                rng = self.headers.get("Range", "")
                if rng.startswith("bytes="):
                    start_s, _, end_s = rng[6:].partition("-")
                    start = int(start_s or 0)
                    end = int(end_s) if end_s else len(f.data) - 1
                    if start >= len(f.data):
                        return self._send(416, b"", "text/plain", {"Content-Range": f"bytes */{len(f.data)}"})
                    index.served["range"] += 1
                    if self.headers.get("User-Agent", "").startswith("mlops-wheels"):
                        index.served["mlops_range"] += 1
                    return self._send(
                        206,
                        f.data[start : end + 1],
                        "application/octet-stream",
                        {"Content-Range": f"bytes {start}-{end}/{len(f.data)}", "Accept-Ranges": "bytes"},
                    )
                if index.file_delay:
                    import time

                    self.send_response(200)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Content-Length", str(len(f.data)))
                    self.end_headers()
                    step = max(1, len(f.data) // 4)
                    for i in range(0, len(f.data), step):
                        self.wfile.write(f.data[i : i + step])
                        self.wfile.flush()
                        time.sleep(index.file_delay)
                    return None
                return self._send(200, f.data, "application/octet-stream", {"Accept-Ranges": "bytes"})
            return self._send(404, b"not found", "text/plain")

    return Handler


def serve(index: FakeIndex):
    """Start the server in a thread; returns (server, base URL of /simple)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(index))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    index.url = f"http://127.0.0.1:{server.server_address[1]}/simple"
    return server


def standard_index() -> FakeIndex:
    """The packages every wheels test uses (see tests/wheels/conftest.py for their roles)."""
    idx = FakeIndex()

    def wheel(project, version, tag="py3-none-any", **kw):
        name, data = make_wheel(project, version, tag, **kw)
        idx.add(project, Listed(name, data))

    # A dependency chain with markers: alpha -> beta -> delta; gamma only below 3.11; winonly on Windows.
    wheel("alpha", "1.0", requires=("beta>=1.0", 'gamma; python_version < "3.11"', 'winonly; sys_platform == "win32"'))
    wheel("beta", "1.0")
    wheel("beta", "1.1", requires=("delta>=2",))
    wheel("delta", "2.0")
    wheel("gamma", "1.0")
    wheel("winonly", "1.0", "py3-none-win_amd64")
    # An extra: omega[fast] adds gamma (which the 3.11 host would otherwise never get).
    wheel("omega", "1.0", requires=('gamma; extra == "fast"',), extras=("fast",))
    # Platform wheels for some targets only (no sdist): no cp312, no aarch64 cp311.
    wheel("plat", "1.0", "cp310-cp310-manylinux_2_17_aarch64.manylinux2014_aarch64")
    wheel("plat", "1.0", "cp310-cp310-manylinux_2_28_x86_64")
    wheel("plat", "1.0", "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64")
    # sdist-only: one pure (builds to py3-none-any), one that builds a platform wheel.
    for project, tag in (("puresd", "py3-none-any"), ("platsd", "cp311-cp311-linux_x86_64")):
        name, data = make_sdist(project, "1.0", tag)
        idx.add(project, Listed(name, data))
    # A yanked release above a good one.
    wheel("yanky", "0.9")
    name, data = make_wheel("yanky", "1.0")
    idx.add("yanky", Listed(name, data, yanked="broken build"))
    # A real pip (the wheel ensurepip bundles with this Python), for --with-pip.
    import ensurepip
    from pathlib import Path

    for pip_wheel in sorted((Path(ensurepip.__file__).parent / "_bundled").glob("pip-*.whl"))[-1:]:
        idx.add("pip", Listed(pip_wheel.name, pip_wheel.read_bytes()))
    # An index that lists the wrong hash for a file.
    name, data = make_wheel("badhash", "1.0")
    idx.add("badhash", Listed(name, data, wrong_hash=True))
    # Hashes as real indexes list them: upper-case hex, only sha512, none at all.
    name, data = make_wheel("upperhash", "1.0")
    idx.add("upperhash", Listed(name, data, listed_hash=hashlib.sha256(data).hexdigest().upper()))
    name, data = make_wheel("sha512only", "1.0")
    idx.add("sha512only", Listed(name, data, hash_algo="sha512"))
    name, data = make_wheel("nohash", "1.0")
    idx.add("nohash", Listed(name, data, no_hash=True))
    # cryptography's shape: an abi3 wheel whose Requires-Python shuts out 3.9.0 and 3.9.1, and an
    # sdist that builds a platform wheel (building it here would ship this host's binaries).
    name, data = make_wheel("cryptolike", "1.0", "cp37-abi3-manylinux_2_28_x86_64.manylinux_2_28_aarch64")
    idx.add("cryptolike", Listed(name, data, requires_python=">=3.7,!=3.9.0,!=3.9.1"))
    name, data = make_sdist("cryptolike", "1.0", "cp39-cp39-linux_x86_64")
    idx.add("cryptolike", Listed(name, data, requires_python=">=3.7,!=3.9.0,!=3.9.1"))
    # numpy's shape for an old glibc: the newest release has wheels for glibc 2.28 only (and an
    # sdist), the one before has manylinux2014 wheels. pip picks the older; so must we.
    for version, tag in (
        ("1.0", "cp310-cp310-manylinux_2_17_x86_64.manylinux2014_x86_64"),
        ("2.0", "cp310-cp310-manylinux_2_28_x86_64"),
    ):
        name, data = make_wheel("numpylike", version, tag)
        idx.add("numpylike", Listed(name, data))
    name, data = make_sdist("numpylike", "2.0", "cp310-cp310-linux_x86_64")
    idx.add("numpylike", Listed(name, data))
    # Installs beta 1.1 and alpha first, then fails: a file where pip needs the prefix's lib/ folder.
    wheel("zbroken", "1.0", requires=("alpha==1.0",), extra_files={"zbroken-1.0.data/data/lib": b"x"})
    return idx
