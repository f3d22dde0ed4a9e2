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
    api_count: dict | None = None  # the Hub API's safetensors.parameters, when served

    def do_GET(self):  # noqa: N802 - http.server API
        type(self).requests.append((self.path, self.headers.get("Authorization")))
        if self.path.startswith("/api/models/acme/tiny/revision/") and type(self).api_count is not None:
            body = json.dumps({"id": "acme/tiny", "safetensors": {"parameters": type(self).api_count}}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if self.path == "/acme/huge/resolve/main/config.json":  # a 'config' of 5 MiB, streamed
            self.send_response(200)
            self.end_headers()
            chunk = b" " * 65536
            try:
                for _ in range(80):
                    self.wfile.write(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass
            return
        if self.path in ("/acme/tiny/resolve/main/config.json", "/acme/tiny/resolve/refs%2Fpr%2F3/config.json"):
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
    Hub.api_count = None
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def env_for(server, tmp_path, token=TOKEN):
    env = {
        "HF_ENDPOINT": f"http://127.0.0.1:{server.server_address[1]}",
        "MLOPS_CACHE_DIR": str(tmp_path / "cache"),
        "HF_HUB_OFFLINE": "",
    }
    if token:
        env["HF_TOKEN"] = token
    return env


def test_repo_id_fetched_with_token_and_cached(mlops, hub, tmp_path):
    env = env_for(hub, tmp_path)
    first = mlops("mem", "estimate", "acme/tiny", "--json", env=env)
    assert first.returncode == 0, first
    assert first.json()["model"]["total_params"] == 202048
    assert Hub.requests[0] == ("/acme/tiny/resolve/main/config.json", f"Bearer {TOKEN}")
    cached = next((tmp_path / "cache" / "hf-configs" / "acme--tiny").glob("*/config.json"))
    assert json.loads(cached.read_text())["hidden_size"] == 64
    assert first.json()["model"]["param_source"] == "config formula"  # the API had no counts
    # second run: served from the cache, the server is not asked again
    second = mlops("mem", "estimate", "acme/tiny", "--json", env=env)
    assert second.returncode == 0 and second.json()["peak_bytes"] == first.json()["peak_bytes"]
    assert len(Hub.requests) == 2  # config + API (no counts); nothing more on the cached run


def test_hub_safetensors_metadata_gives_the_exact_count(mlops, hub, tmp_path):
    Hub.api_count = {"BF16": 202000, "F32": 64}
    r = mlops("mem", "estimate", "acme/tiny", "--json", env=env_for(hub, tmp_path))
    assert r.returncode == 0, r
    assert (
        r.json()["model"]["total_params"] == 202064 and r.json()["model"]["param_source"] == "Hub safetensors metadata"
    )
    again = mlops("mem", "estimate", "acme/tiny", "--json", env=env_for(hub, tmp_path))
    assert again.json()["model"]["total_params"] == 202064  # from the cache


@pytest.mark.parametrize("revision", ["../../..", "..", "main/../../x", "/etc", "a//b", ".hidden", "x" * 300, "a\nb"])
def test_revision_cannot_leave_the_cache(mlops, hub, tmp_path, revision):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "config.json").write_text(json.dumps(CONFIG))
    env = {**env_for(hub, tmp_path), "MLOPS_CACHE_DIR": str(victim / "a" / "b" / "c")}
    r = mlops("mem", "estimate", "acme/tiny", "--revision", revision, env=env)
    assert r.returncode == 2, r
    assert "is not a Hub revision" in r.stderr and not Hub.requests
    assert sorted(p.name for p in victim.iterdir()) == ["config.json"]  # nothing created beside it


def test_branch_with_a_slash_is_quoted_and_hashed(mlops, hub, tmp_path):
    r = mlops("mem", "estimate", "acme/tiny", "--revision", "refs/pr/3", "--json", env=env_for(hub, tmp_path))
    assert r.returncode == 0, r
    assert Hub.requests[0][0] == "/acme/tiny/resolve/refs%2Fpr%2F3/config.json"
    folders = list((tmp_path / "cache" / "hf-configs" / "acme--tiny").iterdir())
    assert len(folders) == 1 and len(folders[0].name) == 32 and "refs" not in folders[0].name


def test_oversized_hub_config_is_refused_and_not_cached(mlops, hub, tmp_path):
    r = mlops("mem", "estimate", "acme/huge", env=env_for(hub, tmp_path))
    assert r.returncode == 2, r
    assert "larger than 4.0 MiB" in r.stderr or "larger than 4 MiB" in r.stderr
    assert not list((tmp_path / "cache").rglob("config.json"))


@pytest.mark.parametrize(
    "text,key",
    [
        ('"rope_theta": NaN', "rope_theta"),
        ('"rms_norm_eps": Infinity', "rms_norm_eps"),
        ('"initializer_range": 1e400', "initializer_range"),
        ('"rope_scaling": {"factor": -Infinity}', "rope_scaling.factor"),
    ],
)
def test_non_finite_numbers_name_their_key(mlops, tmp_path, text, key):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(CONFIG)[:-1] + ", " + text + "}")
    r = mlops("mem", "estimate", str(cfg), "--json")
    assert r.returncode == 2, r
    assert key in (r.stderr + r.stdout) and "internal error" not in (r.stderr + r.stdout)


def test_checkpoint_folder_counts_safetensors_headers(mlops, tmp_path):
    import struct

    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(CONFIG))
    for i, shape in enumerate(([1000, 64], [64, 64])):
        header = json.dumps(
            {"w": {"dtype": "BF16", "shape": shape, "data_offsets": [0, shape[0] * shape[1] * 2]}}
        ).encode()
        (folder / f"model-0000{i}.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 16)
    r = mlops("mem", "estimate", str(folder), "--json")
    assert r.returncode == 0, r
    model = r.json()["model"]
    assert model["total_params"] == 1000 * 64 + 64 * 64 and model["param_source"].startswith("safetensors headers")


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


@pytest.mark.parametrize(
    "arg,message",
    [
        (str(FIXTURES / "not-json.json"), "is not valid JSON"),
        (str(FIXTURES / "missing-hidden.json"), "malformed model config: no hidden size"),
        ("no-such-model-anywhere", "unknown model"),
        ("./nope/config.json", "no such file"),
    ],
)
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


@pytest.mark.parametrize(
    "extra, key",
    [
        ({"num_local_experts": -3}, "num_local_experts"),
        ({"num_local_experts": 8, "num_experts_per_tok": "x"}, "num_experts_per_tok"),
        ({"num_local_experts": 8, "moe_intermediate_size": -1}, "moe_intermediate_size"),
        ({"max_position_embeddings": "4k"}, "max_position_embeddings"),
    ],
)
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
