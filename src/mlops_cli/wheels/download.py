"""Parallel downloads into a content-addressed cache, checked while streaming.

Layout under the cache root: `blobs/<sha[:2]>/<sha256>` (complete, verified files) and
`partial/` (downloads under way or interrupted). Every path in the cache is made from a
digest that was validated (64 lower-case hex digits) or computed here, never from text an
index sent as it is; and nothing in the cache is deleted because an index said so.

Several mlops processes may share one cache: each downloads into a partial file of its own
(`<key>.<pid>-<random>.part`). An interrupted download is left as `<key>.part`; the next run
takes it over with one atomic rename (only one process can win it) and resumes with a Range
request. A file reaches `blobs/` only after its hash matched, by an atomic rename; when the
blob appeared meanwhile (another process finished first), that is simply a cache hit.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from mlops_cli import files
from mlops_cli.errors import OperationFailed

CHUNK = 1 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")


def default_cache_root() -> Path:
    """`wheels/` in mlops' one cache folder (MLOPS_CACHE_DIR, XDG_CACHE_HOME or ~/.cache/mlops)."""
    return files.cache_dir("wheels")


@dataclass(frozen=True)
class Job:
    filename: str
    url: str
    sha256: str | None  # validated by index.py; None when the index gives no sha256
    size: int | None = None
    hashes: tuple[tuple[str, str], ...] = ()  # every validated digest the index gave


@dataclass(frozen=True)
class Fetched:
    filename: str
    sha256: str
    size: int
    path: Path  # the verified blob in the cache
    from_cache: bool
    downloaded_bytes: int
    checked_with: str | None = None  # the index's algorithm the file was checked against; None = no hash given


def sha256_file(path: Path) -> str:
    return hash_file(path, ("sha256",))["sha256"]


def hash_file(path: Path, algorithms) -> dict[str, str]:
    digests = {a: hashlib.new(a) for a in algorithms}
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            for d in digests.values():
                d.update(chunk)
    return {a: d.hexdigest() for a, d in digests.items()}


def _checked_digest(sha256: str | None) -> str | None:
    return sha256 if isinstance(sha256, str) and _SHA256.fullmatch(sha256) else None


class Cache:
    def __init__(self, root: Path):
        self.root = Path(root)

    def blob(self, sha256: str) -> Path:
        if not _checked_digest(sha256):  # the one rule: cache paths only from validated digests
            raise ValueError("a cache path from a digest that is not 64 lower-case hex digits")
        return self.root / "blobs" / sha256[:2] / sha256

    def _key(self, job: Job) -> str:
        return _checked_digest(job.sha256) or hashlib.sha256(job.url.encode()).hexdigest()

    def shared_partial(self, job: Job) -> Path:
        """Where an interrupted download waits for the next run."""
        return self.root / "partial" / f"{self._key(job)}.part"

    def own_partial(self, job: Job) -> Path:
        """This download's own partial file: no other process or thread writes it."""
        folder = self.root / "partial"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{self._key(job)}.{os.getpid()}-{os.urandom(4).hex()}.part"

    def store(self, tmp: Path, sha256: str) -> Path:
        final = self.blob(sha256)
        final.parent.mkdir(parents=True, exist_ok=True)
        files.move_file(tmp, final, what="cache entry")
        return final

    def lookup(self, sha256: str | None) -> Path | None:
        """The verified blob, or None. A damaged entry is not deleted: a new download replaces
        it by an atomic rename."""
        if not _checked_digest(sha256):
            return None
        path = self.blob(sha256)
        if not path.is_file() or path.is_symlink():
            return None
        return path if sha256_file(path) == sha256 else None


def _expected(job: Job) -> tuple[str, str] | None:
    """(algorithm, digest) the download is checked against: sha256, else the strongest given."""
    given = dict(job.hashes)
    if job.sha256:
        given["sha256"] = job.sha256
    for algo in ("sha256", "sha512", "sha384"):
        if algo in given:
            return algo, given[algo]
    return None


def _claim_partial(cache: Cache, job: Job, mine: Path) -> int:
    """Take over an interrupted download (one atomic rename: one process wins); its size."""
    try:
        files.move_file(cache.shared_partial(job), mine, what="partial download")
    except FileNotFoundError:
        return 0
    return mine.stat().st_size


def _leave_partial(cache: Cache, job: Job, mine: Path) -> None:
    """Keep what was downloaded for the next run to resume (best effort)."""
    try:
        if mine.exists() and mine.stat().st_size:
            files.move_file(mine, cache.shared_partial(job), what="partial download")
    except Exception:  # noqa: BLE001 - only a head start for the next run
        pass
    mine.unlink(missing_ok=True)


def _download(session, job: Job, cache: Cache, advance) -> Fetched:
    import requests

    from mlops_cli.wheels.index import http_timeout

    hit = cache.lookup(job.sha256)
    if hit:
        size = hit.stat().st_size
        advance(size)
        return Fetched(job.filename, job.sha256 or "", size, hit, True, 0, "sha256")
    expected = _expected(job)
    algos = {"sha256"} | ({expected[0]} if expected else set())
    mine = cache.own_partial(job)
    digests = {a: hashlib.new(a) for a in algos}
    fetched = 0
    try:
        have = _claim_partial(cache, job, mine)
        headers = {"Range": f"bytes={have}-"} if have else {}
        with session.get(job.url, headers=headers, stream=True, timeout=http_timeout()) as response:
            if have and response.status_code == 416:  # the partial file is as long as the file or longer
                mine.unlink(missing_ok=True)
                return _download(session, job, cache, advance)
            if have and response.status_code == 206:
                with open(mine, "rb") as fh:  # resume: the bytes we have count toward the hash
                    for chunk in iter(lambda: fh.read(CHUNK), b""):
                        for d in digests.values():
                            d.update(chunk)
                advance(have)
            elif response.status_code == 200:
                mine.unlink(missing_ok=True)
            else:
                raise OperationFailed(f"download of {job.filename} failed: HTTP {response.status_code} from {job.url}")
            with files.append_writer(mine, what="download") as fh:
                for chunk in response.iter_content(CHUNK):
                    fh.write(chunk)
                    for d in digests.values():
                        d.update(chunk)
                    fetched += len(chunk)
                    advance(len(chunk))
    except requests.RequestException as exc:
        _leave_partial(cache, job, mine)
        kind = (
            "timed out" if isinstance(exc, requests.Timeout) or "timed out" in str(exc).lower() else type(exc).__name__
        )
        raise OperationFailed(
            f"download of {job.filename} failed: {kind} (partial file kept; re-run to resume)"
        ) from None
    except BaseException:
        _leave_partial(cache, job, mine)
        raise
    actual = {a: d.hexdigest() for a, d in digests.items()}
    if expected and actual[expected[0]] != expected[1]:
        mine.unlink(missing_ok=True)
        raise OperationFailed(
            f"{expected[0]} mismatch for {job.filename}: the index says {expected[1][:16]}..., "
            f"the file is {actual[expected[0]][:16]}...; refusing it",
            hint="the index or a proxy serves a different file than it lists; nothing was written",
        )
    sha = actual["sha256"]
    existing = cache.lookup(sha)
    if existing is not None:  # another process finished the same file meanwhile: a cache hit
        mine.unlink(missing_ok=True)
        return Fetched(
            job.filename, sha, existing.stat().st_size, existing, False, fetched, expected[0] if expected else None
        )
    path = cache.store(mine, sha)
    return Fetched(job.filename, sha, path.stat().st_size, path, False, fetched, expected[0] if expected else None)


class Downloader:
    """A pool that fetches each file once, whoever asks first.

    The bundle asks early, for the files it expects while the resolver still works, and then
    for the final list; a file already under way is waited for, not fetched twice. When more
    files wait than there are workers (the resolver names the last packages in a burst), the
    largest starts first: it is the one the bundle would otherwise wait for at the end.
    """

    def __init__(self, session_factory: Callable[[], object], cache: Cache, workers: int = 8):
        import itertools

        self._session_factory, self.cache = session_factory, cache
        self._pool = ThreadPoolExecutor(max_workers=workers)
        self._futures: dict[str, Future] = {}
        self._waiting: list[tuple[int, int, Job, Future]] = []  # a heap: largest first, then first asked
        self._order = itertools.count()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self.bytes_seen = 0

    def _advance(self, n: int) -> None:
        if self._closed.is_set():  # a guess nobody needs any more: stop at the next chunk (kept to resume)
            raise OperationFailed("download stopped: the bundle no longer needs it")
        with self._lock:
            self.bytes_seen += n

    def submit(self, job: Job) -> Future:
        import heapq

        with self._lock:
            future = self._futures.get(job.filename)
            if future is None:
                future = self._futures[job.filename] = Future()
                heapq.heappush(self._waiting, (-(job.size or 0), next(self._order), job, future))
                self._pool.submit(self._run_next)  # one run per job: each takes the largest waiting
            return future

    def _run_next(self) -> None:
        import heapq

        with self._lock:
            _size, _order, job, future = heapq.heappop(self._waiting)
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(_download(self._session_factory(), job, self.cache, self._advance))
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits, as the pool would
            future.set_exception(exc)

    def fetch_all(self, jobs: list[Job], show_progress: bool = False) -> list[Fetched]:
        """Every job's file, in the order given; the first failure is raised."""
        futures = [self.submit(job) for job in jobs]
        if show_progress and futures:
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

            from mlops_cli.output import err_console

            total = sum(j.size for j in jobs if j.size) or None
            with Progress(
                TextColumn("downloading"),
                BarColumn(),
                DownloadColumn(binary_units=True),
                TransferSpeedColumn(),
                console=err_console(),
                transient=True,
            ) as progress:
                task = progress.add_task("wheels", total=total)
                while not all(f.done() for f in futures):
                    progress.update(task, completed=self.bytes_seen)
                    wait(futures, timeout=0.1)
        return [f.result() for f in futures]

    def close(self) -> None:
        self._closed.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
