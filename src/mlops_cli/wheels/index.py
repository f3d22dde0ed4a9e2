"""Read a package index's project pages: PEP 691 JSON where offered, PEP 503 HTML otherwise.

Pages can be megabytes of HTML (pydantic-core's is 5.3 MB), so anchors are found with one
regex and only the ones naming the wanted version are looked at closely. Credentials come
from the index URL (`https://user:token@host/simple`, e.g. expanded from the environment by
the shell) or from ~/.netrc; they are sent only to the index's own host and never recorded.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

from mlops_cli.errors import OperationFailed, UsageError
from mlops_cli.text import one_line, shorten

ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
DEFAULT_INDEX = "https://pypi.org/simple"
# Linear on any input: each part stops at the next '<' (no backtracking across the page), and an
# attribute name starts only where a run of name characters starts.
_ANCHOR = re.compile(r"<a\s([^<>]*)>([^<]*)</a>", re.IGNORECASE)
_ATTR = re.compile(r"""(?<![\w-])([a-zA-Z][\w-]*)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+))""")


# Hash algorithms a file may be checked with, and their digest length in hex digits: the ones
# pip accepts in --hash (md5 and sha1 are not strong enough to pin anything).
HASH_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
_HEX = re.compile(r"[0-9a-fA-F]+")
# Index pages can be large (pydantic-core's JSON page is ~7 MB); none is 64 MiB.
MAX_PAGE_BYTES = 64 * 1024 * 1024
MAX_FILES_PER_PAGE = 200_000


def valid_digest(algo: str, value: object) -> str | None:
    """The digest lower-cased when it is hex of the right length for ``algo``; else None."""
    length = HASH_LENGTHS.get(algo)
    if length is None or not isinstance(value, str) or len(value) != length or not _HEX.fullmatch(value):
        return None
    return value.lower()


def check_hashes(raw: dict[str, object], filename: str) -> tuple[dict[str, str], str | None]:
    """(algorithm -> validated digest, problem) from what an index lists for a file. A listed
    digest that is not hex of its algorithm's length is a problem: the file is refused, and the
    value never becomes a path anywhere."""
    good: dict[str, str] = {}
    for algo, value in raw.items():
        algo = str(algo).lower()
        if algo not in HASH_LENGTHS:
            continue  # md5, sha1, blake2b...: not used to check anything
        digest = valid_digest(algo, value)
        if digest is None:
            shown = shorten(one_line(str(value)), 40)
            return {}, f"the index lists a malformed {algo} for {filename} ({shown!r}); refusing it"
        good[algo] = digest
    return good, None


@dataclass(frozen=True)
class IndexFile:
    filename: str
    url: str  # where to fetch it; never carries credentials
    sha256: str | None  # validated: 64 lower-case hex digits
    requires_python: str | None
    yanked: bool
    yanked_reason: str | None
    size: int | None
    index: str  # the index it came from, without credentials
    hashes: tuple[tuple[str, str], ...] = ()  # (algorithm, validated digest), sha256 included
    hash_problem: str | None = None  # a malformed digest: the file must not be used

    @property
    def is_wheel(self) -> bool:
        return self.filename.endswith(".whl")


def strip_credentials(url: str) -> str:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port filled in, as browsers and uv
    compare them. Raises UsageError for a port that is not a number from 1 to 65535."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        raise UsageError(
            f"not an index URL: {shorten(one_line(strip_credentials_loose(url)), 120)!r}: "
            "the port is not a number from 1 to 65535"
        ) from None
    if port == 0:
        raise UsageError(f"not an index URL: {shorten(one_line(strip_credentials_loose(url)), 120)!r}: port 0")
    return scheme, (parts.hostname or "").lower(), port if port is not None else _DEFAULT_PORTS.get(scheme)


def strip_credentials_loose(url: str) -> str:
    """``strip_credentials`` for a URL that may not even parse."""
    head, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, path = rest.partition("/")
    return f"{head}://{netloc.rsplit('@', 1)[-1]}{slash}{path}"


def credentials_by_origin(index_urls: list[str]) -> dict[tuple[str, str, int | None], tuple[str, str]]:
    """Credentials written into an index URL, keyed by its origin: they are sent only to that
    scheme, host and port (never to another port of the host, never from https to http)."""
    from urllib.parse import unquote

    found: dict[tuple[str, str, int | None], tuple[str, str]] = {}
    for url in index_urls:
        parts = urlsplit(url)
        if parts.username is not None:
            found[origin(url)] = (unquote(parts.username), unquote(parts.password or ""))
    return found


def _adapter_class():
    import os
    import threading

    from requests.adapters import DEFAULT_CA_BUNDLE_PATH, HTTPAdapter

    class SharedTLSAdapter(HTTPAdapter):
        """requests' adapter, with one TLS context per CA bundle for all its connections.

        requests names the CA bundle file (certifi's, or REQUESTS_CA_BUNDLE's) for each new
        connection and urllib3 parses it again: 15-30 ms of CPU per connection, and a bundle
        opens a few dozen. Here each bundle file is loaded once, into a context of its own that
        the connections verifying against it share, through the hook requests documents for it
        (`build_connection_pool_key_attributes`). What is verified does not change: the same
        file, CERT_REQUIRED, the hostname checked. verify=False and CA folders are left to
        requests."""

        def __init__(self, **kwargs):
            self._contexts: dict[str, object] = {}
            self._contexts_lock = threading.Lock()
            super().__init__(**kwargs)

        def _context_for(self, cafile: str):
            with self._contexts_lock:
                if cafile not in self._contexts:
                    from urllib3.util.ssl_ import create_urllib3_context

                    context = create_urllib3_context()  # CERT_REQUIRED, hostname checked
                    context.load_verify_locations(cafile=cafile)
                    self._contexts[cafile] = context
                return self._contexts[cafile]

        @staticmethod
        def _cafile(url: str, verify) -> str | None:
            if not url.lower().startswith("https:") or verify is False:
                return None
            cafile = DEFAULT_CA_BUNDLE_PATH if verify is True else verify
            return cafile if isinstance(cafile, str) and os.path.isfile(cafile) else None

        def build_connection_pool_key_attributes(self, request, verify, cert=None):
            host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
            cafile = self._cafile(request.url, verify)
            if cafile is not None:
                pool_kwargs.pop("ca_certs", None)
                pool_kwargs["ssl_context"] = self._context_for(cafile)
            return host_params, pool_kwargs

        def cert_verify(self, conn, url, verify, cert):
            super().cert_verify(conn, url, verify, cert)
            cafile = self._cafile(url, verify)
            if cafile is not None and getattr(conn, "conn_kw", {}).get("ssl_context") is self._contexts.get(cafile):
                conn.ca_certs = None  # already in the pool's context: not parsed again per connection

    return SharedTLSAdapter


def make_session(index_urls: list[str], workers: int = 8):
    """A pooled requests session that sends index credentials only to the index's origin."""
    import requests

    session = requests.Session()
    adapter = _adapter_class()(pool_connections=workers, pool_maxsize=workers * 2, max_retries=2)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = "mlops-wheels"
    creds = credentials_by_origin(index_urls)

    def attach(request):
        try:
            key = origin(request.url)
        except UsageError:
            return request
        if key in creds:
            import requests.auth

            return requests.auth.HTTPBasicAuth(*creds[key])(request)
        return request

    session.auth = attach if creds else None
    return session


def _mentions(filename: str, version: str | None) -> bool:
    return version is None or f"-{version}" in filename


def safe_filename(name: object) -> bool:
    """A file name from an index that may become a file in the cache or the bundle: a wheel or
    sdist name, no folder part, no control character, not hidden."""
    return (
        isinstance(name, str)
        and 0 < len(name) <= 255
        and "/" not in name
        and "\\" not in name
        and not name.startswith(".")
        and name.isprintable()
        and name.endswith((".whl", ".tar.gz", ".zip", ".tar.bz2", ".tgz"))
    )


def _malformed(index: str, page_url: str, why: str) -> OperationFailed:
    return OperationFailed(
        f"package index {index} served a malformed page {shorten(one_line(page_url), 120)}: {why}",
        hint="the index (or a proxy in front of it) is broken; try another --index-url",
    )


def _make_file(filename: str, url: str, raw_hashes: dict, requires_python, yanked, size, index: str) -> IndexFile:
    hashes, problem = check_hashes(raw_hashes, filename)
    return IndexFile(
        filename=filename,
        url=strip_credentials(url),
        sha256=hashes.get("sha256"),
        requires_python=requires_python if isinstance(requires_python, str) and requires_python else None,
        yanked=bool(yanked),
        yanked_reason=one_line(yanked)[:500] if isinstance(yanked, str) and yanked else None,
        size=size if isinstance(size, int) and not isinstance(size, bool) and 0 <= size < 1 << 50 else None,
        index=index,
        hashes=tuple(sorted(hashes.items())),
        hash_problem=problem,
    )


def parse_json_page(data: Any, page_url: str, index: str, version: str | None = None) -> list[IndexFile]:
    """PEP 691 files; with `version`, only files whose name mentions it are looked at closely.
    A page of the wrong shape is the index's failure (exit 1); an entry of the wrong shape is
    skipped, as pip does."""
    if not isinstance(data, dict) or not isinstance(data.get("files", []), list):
        raise _malformed(index, page_url, "not a PEP 691 project page (no 'files' list)")
    entries = [f for f in data.get("files", []) if isinstance(f, dict)]
    if version:
        entries = [
            f for f in entries if isinstance(f.get("filename"), str) and _mentions(f["filename"], version)
        ] or entries
    out = []
    for f in entries:
        name, url, hashes = f.get("filename"), f.get("url"), f.get("hashes")
        if not safe_filename(name) or not isinstance(url, str) or not isinstance(hashes, (dict, type(None))):
            continue
        try:
            full = urljoin(page_url, url)
        except ValueError:
            continue
        out.append(
            _make_file(name, full, hashes or {}, f.get("requires-python"), f.get("yanked", False), f.get("size"), index)
        )
    return out


def parse_html_page(text: str | list, page_url: str, index: str, version: str | None = None) -> list[IndexFile]:
    """PEP 503 anchors (the page, or its anchors already found); with `version`, only files
    whose name mentions it are parsed."""
    anchors = _ANCHOR.findall(text) if isinstance(text, str) else text
    if version:
        wanted = [a for a in anchors if _mentions(a[1], version)]
        anchors = wanted or anchors  # spelling differs (1.0 vs 1.0.0): look at them all
    out = []
    for attrs_text, label in anchors:
        attrs = {k.lower(): html.unescape(v1 or v2 or v3) for k, v1, v2, v3 in _ATTR.findall(attrs_text)}
        href = attrs.get("href")
        if not href:
            continue
        try:
            url, _, fragment = urljoin(page_url, href).partition("#")
        except ValueError:
            continue
        algo, _, digest = fragment.partition("=")
        filename = html.unescape(label).strip() or url.rsplit("/", 1)[-1]
        if not safe_filename(filename):
            continue
        yanked = "data-yanked" in attrs
        out.append(
            _make_file(
                filename,
                url,
                {algo: digest} if digest else {},
                attrs.get("data-requires-python"),
                (attrs.get("data-yanked") or True) if yanked else False,
                None,
                index,
            )
        )
    return out


@dataclass(frozen=True)
class RawPage:
    body: Any  # decoded JSON document, or the list of HTML anchors
    is_json: bool
    page_url: str
    index: str


def http_timeout() -> float:
    """Seconds to wait for an index to answer (connect, and then between bytes):
    MLOPS_WHEELS_HTTP_TIMEOUT, default 30. uv is given the same."""
    import math
    import os

    raw = os.environ.get("MLOPS_WHEELS_HTTP_TIMEOUT", "")
    try:
        value = float(raw) if raw else 30.0
    except ValueError:
        value = 30.0
    return value if math.isfinite(value) and 0 < value <= 600 else 30.0


def _read_capped(response, limit: int) -> bytes:
    chunks, total = [], 0
    for chunk in response.iter_content(1 << 20):
        total += len(chunk)
        if total > limit:
            raise _malformed(strip_credentials(response.url), response.url, f"larger than {limit >> 20} MiB")
        chunks.append(chunk)
    return b"".join(chunks)


def fetch_raw(session, index_urls: list[str], name: str, timeout: float | None = None) -> RawPage | None:
    """A project's page from the first index that knows it (uv's first-index rule); None if none does."""
    import requests
    from packaging.utils import canonicalize_name

    from mlops_cli import files

    timeout = timeout or http_timeout()
    project = canonicalize_name(name)
    for base in index_urls:
        page_url = base.rstrip("/") + f"/{project}/"
        public = strip_credentials(base)
        try:
            with session.get(page_url, headers={"Accept": ACCEPT}, timeout=timeout, stream=True) as response:
                if response.status_code == 404:
                    continue
                if response.status_code in (401, 403):
                    raise OperationFailed(
                        f"package index {public} refused access to {project} (HTTP {response.status_code})",
                        hint="put credentials in ~/.netrc or in the index URL (https://user:token@host/simple)",
                    )
                if response.status_code != 200:
                    raise OperationFailed(f"package index {public} answered HTTP {response.status_code} for {project}")
                # Read and decode here, in the fetching thread: the big pages cost the most.
                data = _read_capped(response, MAX_PAGE_BYTES)
                ctype = response.headers.get("Content-Type", "")
                final_url = strip_credentials(response.url)
        except (requests.Timeout, TimeoutError):
            raise OperationFailed(
                f"package index {public} timed out (no answer within {timeout:g} s, retried)",
                hint="check the network or --index-url; MLOPS_WHEELS_HTTP_TIMEOUT=SECONDS waits longer",
            ) from None
        except requests.RequestException as exc:
            if "timed out" in str(exc).lower():
                raise OperationFailed(
                    f"package index {public} timed out (no answer within {timeout:g} s, retried)",
                    hint="check the network or --index-url",
                ) from None
            raise OperationFailed(
                f"package index {public} is unreachable: {type(exc).__name__}", hint="check the network or --index-url"
            ) from None
        text = data.decode("utf-8", errors="replace")
        is_json = "json" in ctype
        if is_json:
            try:
                body = files.parse_json(text, what=f"the page of {project}")
            except UsageError as exc:  # the index's fault, not the user's input
                raise _malformed(public, final_url, exc.message) from None
            if not isinstance(body, dict) or not isinstance(body.get("files", []), list):
                raise _malformed(public, final_url, "not a PEP 691 project page (no 'files' list)")
            if len(body.get("files", [])) > MAX_FILES_PER_PAGE:
                raise _malformed(public, final_url, f"more than {MAX_FILES_PER_PAGE} files")
        else:
            body = _ANCHOR.findall(text)
        return RawPage(body, is_json, final_url, public)
    return None


def ships_wheels(page: RawPage | None) -> bool:
    """Whether the project offers a wheel in any release (else it is sdist-only everywhere)."""
    if page is None:
        return False
    if page.is_json:
        return any(
            isinstance(f, dict) and str(f.get("filename", "")).endswith(".whl") for f in page.body.get("files", [])
        )
    return any(label.strip().endswith(".whl") or ".whl#" in attrs or '.whl"' in attrs for attrs, label in page.body)


def parse_page(page: RawPage | None, version: str | None = None) -> list[IndexFile]:
    if page is None:
        return []
    if page.is_json:
        return parse_json_page(page.body, page.page_url, page.index, version)
    return parse_html_page(page.body, page.page_url, page.index, version)


class PagePrefetcher:
    """Fetches project pages in the background, each name once, as soon as it is named.

    The resolver names packages while it works (uv's "Selecting: name==version" log lines), so
    most pages are here by the time its final pins are.
    """

    def __init__(self, index_urls: list[str], workers: int = 8):
        from concurrent.futures import ThreadPoolExecutor
        from threading import Lock

        self._session, self._index_urls, self._workers = None, index_urls, workers
        self._session_lock = Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers)
        self._futures: dict = {}
        self._parsed: dict = {}  # (name, version) -> files: a big page is filtered once
        self._lock = Lock()

    def want(self, name: str):
        from packaging.utils import canonicalize_name

        key = canonicalize_name(name)
        with self._lock:
            if key not in self._futures:
                self._futures[key] = self._pool.submit(lambda: fetch_raw(self.session(), self._index_urls, key))
            return self._futures[key]

    def session(self):
        """The shared HTTP session, made on first use (in a worker: importing requests costs)."""
        with self._session_lock:
            if self._session is None:
                self._session = make_session(self._index_urls, self._workers)
            return self._session

    def files(self, name: str, version: str | None = None) -> list[IndexFile]:
        """The files of `version` (or all) on the project's page; waits for the page."""
        from packaging.utils import canonicalize_name

        key = (canonicalize_name(name), version)
        found = self._parsed.get(key)
        if found is None:
            found = self._parsed[key] = parse_page(self.want(name).result(), version)
        return list(found)

    def failure(self, name: str) -> BaseException | None:
        """The error fetching `name` raised, if any (waits for it)."""
        return self.want(name).exception()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
