"""Parallel downloads into a content-addressed cache, sha256 checked while streaming.

Layout under the cache root: `blobs/<sha[:2]>/<sha256>` (complete, verified files) and
`partial/<name>.part` (an interrupted download; the next run resumes it with a Range
request). A file reaches `blobs/` only after its hash matched, by an atomic rename, so a
second bundle with the same files downloads nothing.
"""

from __future__ import annotations

import hashlib
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from mlops_cli.errors import OperationFailed

CHUNK = 1 << 20


def default_cache_root() -> Path:
    if os.environ.get("MLOPS_CACHE_DIR"):
        return Path(os.environ["MLOPS_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mlops" / "wheels"


@dataclass(frozen=True)
class Job:
    filename: str
    url: str
    sha256: str | None  # from the index; None when the index gives no hash
    size: int | None = None


@dataclass(frozen=True)
class Fetched:
    filename: str
    sha256: str
    size: int
    path: Path  # the verified blob in the cache
    from_cache: bool
    downloaded_bytes: int


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


class Cache:
    def __init__(self, root: Path):
        self.root = Path(root)

    def blob(self, sha256: str) -> Path:
        return self.root / "blobs" / sha256[:2] / sha256

    def partial(self, job: Job) -> Path:
        key = job.sha256 or hashlib.sha256(job.url.encode()).hexdigest()
        return self.root / "partial" / f"{key}.part"

    def store(self, tmp: Path, sha256: str) -> Path:
        final = self.blob(sha256)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)
        return final

    def lookup(self, sha256: str | None) -> Path | None:
        if not sha256:
            return None
        path = self.blob(sha256)
        if not path.is_file():
            return None
        if sha256_file(path) != sha256:  # a damaged cache entry: drop it, fetch again
            path.unlink()
            return None
        return path


def _download(session, job: Job, cache: Cache, advance) -> Fetched:
    import requests

    hit = cache.lookup(job.sha256)
    if hit:
        size = hit.stat().st_size
        advance(size)
        return Fetched(job.filename, job.sha256 or "", size, hit, True, 0)
    part = cache.partial(job)
    part.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        with session.get(job.url, headers=headers, stream=True, timeout=120) as response:
            if have and response.status_code == 206:
                with open(part, "rb") as fh:  # resume: the bytes we have count toward the hash
                    for chunk in iter(lambda: fh.read(CHUNK), b""):
                        digest.update(chunk)
                advance(have)
                mode = "ab"
            elif response.status_code == 200:
                have, mode = 0, "wb"
            else:
                raise OperationFailed(f"download of {job.filename} failed: HTTP {response.status_code} from {job.url}")
            fetched = 0
            with open(part, mode) as fh:
                for chunk in response.iter_content(CHUNK):
                    fh.write(chunk)
                    digest.update(chunk)
                    fetched += len(chunk)
                    advance(len(chunk))
    except requests.RequestException as exc:
        raise OperationFailed(f"download of {job.filename} failed: {type(exc).__name__} (partial file kept; re-run to resume)") from None
    actual = digest.hexdigest()
    if job.sha256 and actual != job.sha256:
        part.unlink(missing_ok=True)
        raise OperationFailed(
            f"sha256 mismatch for {job.filename}: the index says {job.sha256[:16]}..., the file is {actual[:16]}...; refusing it",
            hint="the index or a proxy serves a different file than it lists; nothing was written")
    path = cache.store(part, actual)
    return Fetched(job.filename, actual, path.stat().st_size, path, False, fetched)


class Downloader:
    """A pool that fetches each file once, whoever asks first.

    The bundle asks early, for the files it expects while the resolver still works, and then
    for the final list; a file already under way is waited for, not fetched twice.
    """

    def __init__(self, session_factory: Callable[[], object], cache: Cache, workers: int = 8):
        self._session_factory, self.cache = session_factory, cache
        self._pool = ThreadPoolExecutor(max_workers=workers)
        self._futures: dict[str, Future] = {}
        self._lock = threading.Lock()
        self.bytes_seen = 0

    def _advance(self, n: int) -> None:
        with self._lock:
            self.bytes_seen += n

    def submit(self, job: Job) -> Future:
        with self._lock:
            if job.filename not in self._futures:
                self._futures[job.filename] = self._pool.submit(
                    lambda: _download(self._session_factory(), job, self.cache, self._advance))
            return self._futures[job.filename]

    def fetch_all(self, jobs: list[Job], show_progress: bool = False) -> list[Fetched]:
        """Every job's file, in the order given; the first failure is raised."""
        futures = [self.submit(job) for job in jobs]
        if show_progress and futures:
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

            from mlops_cli.output import err_console

            total = sum(j.size for j in jobs if j.size) or None
            with Progress(TextColumn("downloading"), BarColumn(), DownloadColumn(binary_units=True),
                          TransferSpeedColumn(), console=err_console(), transient=True) as progress:
                task = progress.add_task("wheels", total=total)
                while not all(f.done() for f in futures):
                    progress.update(task, completed=self.bytes_seen)
                    wait(futures, timeout=0.1)
        return [f.result() for f in futures]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
