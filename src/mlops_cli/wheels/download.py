"""Parallel downloads into a content-addressed cache, sha256 checked while streaming.

Layout under the cache root: `blobs/<sha[:2]>/<sha256>` (complete, verified files) and
`partial/<name>.part` (an interrupted download; the next run resumes it with a Range
request). A file reaches `blobs/` only after its hash matched, by an atomic rename, so a
second bundle with the same files downloads nothing.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from mlops_cli.output import OperationFailed

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
        advance(job.filename, size)
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
                advance(job.filename, have)
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
                    advance(job.filename, len(chunk))
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


def download_all(session, jobs: list[Job], cache: Cache, workers: int = 8, show_progress: bool = False) -> list[Fetched]:
    """Fetch every job (in parallel), in the order given. The first failure stops the lot."""
    if not jobs:
        return []
    progress, task = None, None
    if show_progress:
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

        from mlops_cli.output import err_console

        progress = Progress(TextColumn("downloading"), BarColumn(), DownloadColumn(binary_units=True),
                            TransferSpeedColumn(), console=err_console(), transient=True)
        total = sum(j.size for j in jobs if j.size) or None
        task = progress.add_task("wheels", total=total)
        progress.start()

    def advance(_name: str, n: int) -> None:
        if progress is not None:
            progress.advance(task, n)

    results: dict[int, Fetched] = {}
    try:
        with ThreadPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
            futures = {pool.submit(_download, session, job, cache, advance): i for i, job in enumerate(jobs)}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
    finally:
        if progress is not None:
            progress.stop()
    return [results[i] for i in range(len(jobs))]
