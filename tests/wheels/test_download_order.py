"""The download pool: the largest waiting file starts first, and closing it stops guesses early.

A real HTTP server on loopback records the order of requests and can hold a response; the
pool, the cache and the hash checks are the ones `mlops wheels` uses.
"""

from __future__ import annotations

import hashlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mlops_cli.wheels.download import Cache, Downloader, Job
from mlops_cli.wheels.index import make_session


class _Files:
    def __init__(self, files: dict[str, bytes]):
        self.files, self.order = files, []
        self.release = threading.Event()  # the file named "hold" waits for it
        self.trickle = threading.Event()  # set: "slow" is sent a chunk at a time until closed


def _server(state: _Files):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):  # noqa: N802 - http.server's name
            name = self.path.rsplit("/", 1)[-1]
            state.order.append(name)
            if name == "hold":
                state.release.wait(30)
            data = state.files[name]
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            try:
                if name == "slow":
                    for i in range(0, len(data), 64 * 1024):
                        self.wfile.write(data[i : i + 64 * 1024])
                        self.wfile.flush()
                        time.sleep(0.05)
                else:
                    self.wfile.write(data)
            except OSError:
                pass

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/files/"


def _job(base, name, data):
    return Job(name, base + name, hashlib.sha256(data).hexdigest(), len(data))


@pytest.fixture
def served():
    servers = []

    def start(files):
        state = _Files(files)
        server, base = _server(state)
        servers.append(server)
        return state, base

    yield start
    for server in servers:
        server.shutdown()


def test_the_largest_waiting_file_starts_first(served, tmp_path):
    files = {"hold": b"h" * 10, "small": b"s" * 1000, "big": b"b" * 300_000, "middle": b"m" * 50_000}
    state, base = served(files)
    session = make_session([base])
    pool = Downloader(lambda: session, Cache(tmp_path / "cache"), workers=1)
    try:
        first = pool.submit(_job(base, "hold", files["hold"]))
        while state.order != ["hold"]:  # the one worker is busy
            time.sleep(0.01)
        later = [pool.submit(_job(base, n, files[n])) for n in ("small", "big", "middle")]
        state.release.set()
        got = [f.result(timeout=30) for f in [first, *later]]
    finally:
        pool.close()
    assert state.order == ["hold", "big", "middle", "small"]
    assert [g.path.read_bytes() for g in got] == [files[n] for n in ("hold", "small", "big", "middle")]
    # asked again: the same future, no second request
    assert pool.submit(_job(base, "big", files["big"])) is later[1] and state.order.count("big") == 1


def test_closing_stops_a_download_nobody_needs_and_keeps_it_to_resume(served, tmp_path):
    data = bytes(range(256)) * 16 * 1024  # 4 MiB, sent 64 KiB every 50 ms: 3 s in all
    state, base = served({"slow": data})
    session = make_session([base])
    cache = Cache(tmp_path / "cache")
    pool = Downloader(lambda: session, cache, workers=1)
    job = _job(base, "slow", data)
    future = pool.submit(job)
    partial = tmp_path / "cache" / "partial"
    while not (partial.is_dir() and any(partial.glob("*.part"))):  # under way
        time.sleep(0.01)
    time.sleep(0.3)
    pool.close()
    with pytest.raises(Exception, match="no longer needs it"):
        future.result(timeout=5)  # long before the 3 s the file takes
    kept = cache.shared_partial(job)
    assert kept.is_file() and 0 < kept.stat().st_size < len(data)
    assert data.startswith(kept.read_bytes())
    assert cache.lookup(job.sha256) is None  # never a blob that was not checked
