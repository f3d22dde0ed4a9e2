"""Hostile model configs, checkpoint folders, flags and Hub answers (issue 8, second attack round).

Each case was an internal error (OverflowError, OSError, RuntimeError), a hang or a 10**150
parameter count before its fix; the Hub cases run against a real HTTP server on loopback."""

from __future__ import annotations

import json
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mlops_cli.errors import OperationFailed
from mlops_cli.mem import models

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "mem"
CONFIG = json.loads((FIXTURES / "tiny-llama" / "config.json").read_text())


def _one_error_line(r, code: int = 2) -> str:
    assert r.returncode == code, r
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr
    assert r.no_report()
    return r.stderr.splitlines()[0]


@pytest.mark.parametrize("key", ["hidden_size", "intermediate_size", "vocab_size", "max_position_embeddings"])
def test_a_finite_but_absurd_float_in_a_config_is_exit_2(mlops, tmp_path, key):
    """1e308 is finite JSON: it passed the NaN/Infinity check, then overflowed a float."""
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({**CONFIG, key: 1e308}))
    for cmd in (["mem", "estimate", str(cfg), "--json"], ["oom-check", str(cfg), "--gpu-mem", "24GiB", "--json"]):
        line = _one_error_line(mlops(*cmd))
        assert line == f"error: malformed model config: {key} = 1e+308 is out of range"


@pytest.mark.parametrize("flag", ["--batch", "--seq-len", "--grad-accum", "--gpus", "--lora-rank", "--max-model-len"])
def test_a_count_flag_beyond_any_setup_is_exit_2(mlops, flag):
    extra = ["--method", "lora"] if flag == "--lora-rank" else ["--inference"] if flag == "--max-model-len" else []
    r = mlops("mem", "estimate", "Qwen/Qwen2.5-0.5B", flag, str(10**300), *extra, "--json")
    line = _one_error_line(r)
    assert line.startswith(f"error: {flag} 1000000000") and "is out of range" in line


def test_a_memory_utilization_near_zero_is_exit_2(mlops):
    r = mlops("mem", "estimate", "Qwen/Qwen2.5-0.5B", "--inference", "--gpu-memory-utilization", "1e-300")
    assert _one_error_line(r) == "error: --gpu-memory-utilization must be between 0.01 and 1, got 1e-300"


def _safetensors(header: dict) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw


@pytest.mark.parametrize("dtype", ["F4", "BF16", "F6_E2M3"])
def test_a_safetensors_tensor_with_more_elements_than_any_model_is_exit_2(mlops, tmp_path, dtype):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(CONFIG))
    (folder / "model.safetensors").write_bytes(
        _safetensors({"w": {"dtype": dtype, "shape": [2**39] * 30, "data_offsets": [0, 1]}})
    )
    line = _one_error_line(mlops("mem", "estimate", str(folder), "--json"))
    assert "model.safetensors: tensor 'w' has more elements than any model" in line


def test_files_in_a_model_folder_that_are_fifos_are_not_waited_on(mlops, tmp_path):
    import os

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(CONFIG))
    os.mkfifo(folder / "model.safetensors.index.json")  # no writer ever comes
    r = mlops("mem", "estimate", str(folder), "--json", timeout=60)
    assert r.returncode == 0 and r.json()["model"]["param_source"] == "config formula", r


@pytest.mark.parametrize(
    "spec", ["x" * 5000, "a/" * 3000 + "b", "org/" + "x" * 5000, "~no-such-user-mlops/config.json"]
)
def test_names_that_cannot_be_paths_are_one_short_line(mlops, tmp_path, spec):
    r = mlops("mem", "estimate", spec, env={"MLOPS_CACHE_DIR": str(tmp_path), "HF_HUB_OFFLINE": "1"})
    line = _one_error_line(r)
    assert line.startswith(("error: unknown model", "error: no such file")) and len(line) < 400


@pytest.mark.parametrize("spec", ["org/..", "org/.", "org/a..b", "org/a--b", "o" * 97 + "/x"])
def test_repo_ids_the_hub_cannot_have_never_reach_it(mlops, tmp_path, spec):
    r = mlops("mem", "estimate", spec, env={"MLOPS_CACHE_DIR": str(tmp_path), "HF_ENDPOINT": "http://127.0.0.1:9"})
    assert _one_error_line(r).startswith(("error: unknown model", "error: no such file"))


class _Hostile(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    api_count: int = 8_030_261_248

    def do_GET(self):  # noqa: N802 - http.server API
        if self.path.startswith("/api/models/"):
            body = json.dumps({"safetensors": {"parameters": {"BF16": type(self).api_count}}}).encode()
        elif self.path.startswith("/acme/trickle/"):
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            try:
                for _ in range(100000):  # one byte every 0.2 s: each read is quick, the whole never ends
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.2)
            except OSError:
                pass
            return
        else:
            body = json.dumps(CONFIG).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def hostile_hub():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_hub_count_of_10_to_the_150_parameters_is_not_believed(mlops, hostile_hub, tmp_path):
    _Hostile.api_count = 10**150
    try:
        env = {"HF_ENDPOINT": hostile_hub, "MLOPS_CACHE_DIR": str(tmp_path), "HF_HUB_OFFLINE": ""}
        r = mlops("mem", "estimate", "acme/tiny", "--json", env=env)
    finally:
        _Hostile.api_count = 8_030_261_248
    assert r.returncode == 0, r
    assert r.json()["model"]["param_source"] == "config formula" and r.json()["model"]["total_params"] < 10**12


def test_a_hub_that_trickles_forever_is_a_timeout_not_a_hang(hostile_hub, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", hostile_hub)
    monkeypatch.setenv("MLOPS_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "")
    monkeypatch.setattr(models, "HUB_DEADLINE", 2.0)
    start = time.monotonic()
    with pytest.raises(OperationFailed, match="timed out"):
        models.fetch_from_hub("acme/trickle", timeout=1.0)
    assert time.monotonic() - start < 30
    assert not (tmp_path / "hf-configs" / "acme--trickle").exists() or not any(
        (tmp_path / "hf-configs" / "acme--trickle").rglob("config.json")
    )


def test_a_cache_that_cannot_be_written_costs_a_warning_not_the_answer(mlops, hostile_hub, tmp_path):
    blocker = tmp_path / "cache"
    blocker.mkdir()
    (blocker / "hf-configs").write_text("a file where the cache folder goes")
    env = {"HF_ENDPOINT": hostile_hub, "MLOPS_CACHE_DIR": str(blocker), "HF_HUB_OFFLINE": ""}
    r = mlops("mem", "estimate", "acme/tiny", "--json", env=env)
    assert r.returncode == 0, r
    assert r.json()["model"]["total_params"] == 8_030_261_248
    assert r.stderr.startswith("warning: the config was not cached: ")
