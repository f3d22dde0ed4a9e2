"""Read a package index's project pages: PEP 691 JSON where offered, PEP 503 HTML otherwise.

Pages can be megabytes of HTML (pydantic-core's is 5.3 MB), so anchors are found with one
regex and only the ones naming the wanted version are looked at closely. Credentials come
from the index URL (`https://user:token@host/simple`, e.g. expanded from the environment by
the shell) or from ~/.netrc; they are sent only to the index's own host and never recorded.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

from mlops_cli.errors import OperationFailed

ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
DEFAULT_INDEX = "https://pypi.org/simple"
_ANCHOR = re.compile(r"<a\s([^>]*)>\s*([^<]*?)\s*</a>", re.IGNORECASE | re.DOTALL)
_ATTR = re.compile(r"""([a-zA-Z][\w-]*)\s*=\s*(?:"([^"]*)"|'([^']*)')""")


@dataclass(frozen=True)
class IndexFile:
    filename: str
    url: str  # where to fetch it; never carries credentials
    sha256: str | None
    requires_python: str | None
    yanked: bool
    yanked_reason: str | None
    size: int | None
    index: str  # the index it came from, without credentials

    @property
    def is_wheel(self) -> bool:
        return self.filename.endswith(".whl")


def strip_credentials(url: str) -> str:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def credentials_by_host(index_urls: list[str]) -> dict[str, tuple[str, str]]:
    from urllib.parse import unquote

    found: dict[str, tuple[str, str]] = {}
    for url in index_urls:
        parts = urlsplit(url)
        if parts.username is not None:
            found[parts.hostname or ""] = (unquote(parts.username), unquote(parts.password or ""))
    return found


def make_session(index_urls: list[str], workers: int = 8):
    """A pooled requests session that sends index credentials only to the index's host."""
    import requests
    from requests.adapters import HTTPAdapter

    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=workers, pool_maxsize=workers * 2, max_retries=2)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = "mlops-wheels"
    creds = credentials_by_host(index_urls)

    def attach(request):
        host = urlsplit(request.url).hostname or ""
        if host in creds:
            import requests.auth

            return requests.auth.HTTPBasicAuth(*creds[host])(request)
        return request

    session.auth = attach if creds else None
    return session


def _mentions(filename: str, version: str | None) -> bool:
    return version is None or f"-{version}" in filename


def parse_json_page(data: dict[str, Any], page_url: str, index: str, version: str | None = None) -> list[IndexFile]:
    """PEP 691 files; with `version`, only files whose name mentions it are looked at closely."""
    entries = data.get("files", [])
    if version:
        entries = [f for f in entries if _mentions(f.get("filename", ""), version)] or entries
    out = []
    for f in entries:
        yanked = f.get("yanked", False)
        out.append(IndexFile(
            filename=f["filename"],
            url=strip_credentials(urljoin(page_url, f["url"])),
            sha256=(f.get("hashes") or {}).get("sha256"),
            requires_python=f.get("requires-python") or None,
            yanked=bool(yanked),
            yanked_reason=yanked if isinstance(yanked, str) and yanked else None,
            size=f.get("size"),
            index=index,
        ))
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
        attrs = {k.lower(): html.unescape(v1 or v2) for k, v1, v2 in _ATTR.findall(attrs_text)}
        href = attrs.get("href")
        if not href:
            continue
        url, _, fragment = urljoin(page_url, href).partition("#")
        sha = fragment[len("sha256="):] if fragment.startswith("sha256=") else None
        yanked = "data-yanked" in attrs
        out.append(IndexFile(
            filename=html.unescape(label) or url.rsplit("/", 1)[-1],
            url=strip_credentials(url),
            sha256=sha,
            requires_python=attrs.get("data-requires-python") or None,
            yanked=yanked,
            yanked_reason=(attrs.get("data-yanked") or None) if yanked else None,
            size=None,
            index=index,
        ))
    return out


@dataclass(frozen=True)
class RawPage:
    body: Any  # decoded JSON document, or the list of HTML anchors
    is_json: bool
    page_url: str
    index: str


def fetch_raw(session, index_urls: list[str], name: str, timeout: float = 60) -> RawPage | None:
    """A project's page from the first index that knows it (uv's first-index rule); None if none does."""
    import requests
    from packaging.utils import canonicalize_name

    project = canonicalize_name(name)
    for base in index_urls:
        page_url = base.rstrip("/") + f"/{project}/"
        public = strip_credentials(base)
        try:
            response = session.get(page_url, headers={"Accept": ACCEPT}, timeout=timeout)
        except requests.RequestException as exc:
            raise OperationFailed(f"package index {public} is unreachable: {type(exc).__name__}",
                                  hint="check the network or --index-url") from None
        if response.status_code == 404:
            continue
        if response.status_code in (401, 403):
            raise OperationFailed(f"package index {public} refused access to {project} (HTTP {response.status_code})",
                                  hint="put credentials in ~/.netrc or in the index URL (https://user:token@host/simple)")
        if response.status_code != 200:
            raise OperationFailed(f"package index {public} answered HTTP {response.status_code} for {project}")
        # Decode here, in the fetching thread: the big pages (pydantic-core: 5-7 MB) cost the most.
        text = response.content.decode("utf-8", errors="replace")
        is_json = "json" in response.headers.get("Content-Type", "")
        body = json.loads(text) if is_json else _ANCHOR.findall(text)
        return RawPage(body, is_json, strip_credentials(response.url), public)
    return None


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
        return parse_page(self.want(name).result(), version)

    def failure(self, name: str) -> BaseException | None:
        """The error fetching `name` raised, if any (waits for it)."""
        return self.want(name).exception()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
