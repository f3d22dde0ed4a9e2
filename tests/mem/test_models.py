"""Loading a model: config path/folder, presets, and the Hub over a real HTTP server on loopback."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "mem"
TOKEN = "hf_test_token_123"
CONFIG = json.loads((FIXTURES / "tiny-llama" / "config.json").read_text())


class Hub(BaseHTTPRequestHandler):
    requests: list[tuple[str, str | None]] = []

    def do_GET(self):  # noqa: N802 - http.server API
        type(self).requests.append((self.path, self.headers.get("Authorization")))
        if self.path == "/acme/tiny/resolve/main/config.json":
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                self.send_response(401)
                self.end_headers()
                return
            body = json.dumps(CONFIG).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture
def hub():
    Hub.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def env_for(server, tmp_path, token=TOKEN):
    env = {"HF_ENDPOINT": f"http://127.0.0.1:{server.server_address[1]}", "MLOPS_CACHE_DIR": str(tmp_path / "cache"),
           "HF_HUB_OFFLINE": ""}
    if token:
        env["HF_TOKEN"] = token
    return env


def test_repo_id_fetched_with_token_and_cached(mlops, hub, tmp_path):
    env = env_for(hub, tmp_path)
    first = mlops("mem", "estimate", "acme/tiny", "--json", env=env)
    assert first.returncode == 0, first
    assert first.json()["model"]["total_params"] == 202048
    assert Hub.requests == [("/acme/tiny/resolve/main/config.json", f"Bearer {TOKEN}")]
    cached = tmp_path / "cache" / "hf-configs" / "acme--tiny" / "main" / "config.json"
    assert json.loads(cached.read_text())["hidden_size"] == 64
    # second run: served from the cache, the server is not asked again
    second = mlops("mem", "estimate", "acme/tiny", "--json", env=env)
    assert second.returncode == 0 and second.json()["peak_bytes"] == first.json()["peak_bytes"]
    assert len(Hub.requests) == 1


def test_missing_token_is_a_clear_error(mlops, hub, tmp_path):
    r = mlops("mem", "estimate", "acme/tiny", env=env_for(hub, tmp_path, token=None))
    assert r.returncode == 2, r
    assert "refused access (HTTP 401)" in r.stderr and "HF_TOKEN" in r.stderr
    assert "Traceback" not in r.stderr


def test_unknown_repo_is_exit_2(mlops, hub, tmp_path):
    r = mlops("mem", "estimate", "acme/does-not-exist", env=env_for(hub, tmp_path))
    assert r.returncode == 2, r
    assert r.stderr.startswith("error: unknown model: acme/does-not-exist")


def test_offline_and_not_cached(mlops, tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"HF_ENDPOINT": f"http://127.0.0.1:{port}", "MLOPS_CACHE_DIR": str(tmp_path), "HF_HUB_OFFLINE": ""}
    r = mlops("mem", "estimate", "acme/tiny", env=env)
    assert r.returncode == 1, r
    assert "cannot reach" in r.stderr and "not cached" in r.stderr and "Traceback" not in r.stderr
    r = mlops("mem", "estimate", "acme/tiny", env={**env, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 1 and "HF_HUB_OFFLINE" in r.stderr


def test_config_file_and_folder(mlops):
    by_folder = mlops("mem", "estimate", str(FIXTURES / "tiny-llama"), "--json")
    by_file = mlops("mem", "estimate", str(FIXTURES / "tiny-llama" / "config.json"), "--json")
    assert by_folder.returncode == by_file.returncode == 0
    assert by_folder.json()["peak_bytes"] == by_file.json()["peak_bytes"]


@pytest.mark.parametrize("arg,message", [
    (str(FIXTURES / "not-json.json"), "is not valid JSON"),
    (str(FIXTURES / "missing-hidden.json"), "malformed model config: no hidden size"),
    ("no-such-model-anywhere", "unknown model"),
    ("./nope/config.json", "no such file"),
])
def test_bad_models_are_exit_2_one_line(mlops, arg, message, tmp_path):
    r = mlops("mem", "estimate", arg, env={"MLOPS_CACHE_DIR": str(tmp_path)})
    assert r.returncode == 2, r
    assert r.stderr.splitlines()[0].startswith("error: ") and message in r.stderr
    assert r.no_report() and "Traceback" not in r.stderr


def test_binary_config_is_exit_2_not_internal_error(mlops, tmp_path):
    binary = tmp_path / "config.json"
    binary.write_bytes(b"\xff\xfe\x00\x89PNG")
    r = mlops("mem", "estimate", str(binary), "--json")
    assert r.returncode == 2, r
    assert r.stderr.startswith("error: cannot read model config") and "not UTF-8" in r.stderr
    assert "internal error" not in r.stderr
    assert r.no_report()


def test_preset_by_alias(mlops):
    r = mlops("mem", "estimate", "Qwen/Qwen2.5-7B-Instruct", "--json")
    assert r.returncode == 0
    assert r.json()["model"]["name"] == "Qwen/Qwen2.5-7B" and "huggingface.co" in r.json()["model"]["source"]


@pytest.mark.parametrize("extra, key", [({"num_local_experts": -3}, "num_local_experts"),
                                        ({"num_local_experts": 8, "num_experts_per_tok": "x"}, "num_experts_per_tok"),
                                        ({"num_local_experts": 8, "moe_intermediate_size": -1}, "moe_intermediate_size"),
                                        ({"max_position_embeddings": "4k"}, "max_position_embeddings")])
def test_bad_optional_counts_are_exit_2_not_negative_params_or_a_crash(mlops, tmp_path, extra, key):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({**CONFIG, **extra}))
    r = mlops("mem", "estimate", str(cfg), "--json")
    assert r.returncode == 2, r
    assert r.stderr.startswith(f"error: malformed model config: {key} must be a whole number") and r.no_report()


def test_kv_heads_that_do_not_divide_the_heads_are_exit_2(mlops, tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({**CONFIG, "num_attention_heads": 32, "num_key_value_heads": 5, "hidden_size": 4096}))
    r = mlops("mem", "estimate", str(cfg), "--json")
    assert r.returncode == 2 and "cannot be shared by 5 key/value heads" in r.stderr and r.no_report(), r
