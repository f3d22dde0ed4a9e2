"""`mlops train-doctor` as a user runs it: real argv, exit codes, one JSON document, errors."""

from __future__ import annotations

import os

import pytest
from tests.conftest import run_mlops
from tests.train.conftest import FIXTURES


def test_healthy_log_exits_0_with_an_ok_line():
    r = run_mlops("train-doctor", str(FIXTURES / "healthy_torchtune1358_steps.log"))
    assert r.returncode == 0, r
    assert "OK: no NaN" in r.stdout and r.stderr == ""


def test_failing_log_exits_1_with_onset_evidence_and_fix():
    r = run_mlops("train-doctor", str(FIXTURES / "megatron_llm33_falcon_lm_loss_missing.log"))
    assert r.returncode == 1, r
    assert "ERROR [nan_loss]" in r.stdout and "step 3385" in r.stdout
    assert "megatron_llm33_falcon_lm_loss_missing.log:16" in r.stdout
    assert "fix:" in r.stdout and "--clip-grad 1.0" in r.stdout


def test_json_is_one_document_with_the_primary_finding():
    r = run_mlops("train-doctor", str(FIXTURES / "oom_compressed_tensors587_alloc_conf.log"), "--json")
    assert r.returncode == 1, r
    doc = r.json()
    assert doc["healthy"] is False and doc["primary"] == "cuda_oom-1"
    f = doc["findings"][0]
    assert f["class"] == "cuda_oom" and f["cause"] == "capacity" and f["onset"]["step"] == 25
    assert f["data"]["numbers"]["requested"] == int(1.96 * 2**30)
    assert f["data"]["oom_check"] == "mlops oom-check Qwen/Qwen2.5-7B-Instruct --gpu-mem 79.18GiB"


def test_model_flag_names_the_oom_check_model():
    r = run_mlops("train-doctor", str(FIXTURES / "oom_gtad30_cached.log"), "--model", "Qwen/Qwen2.5-0.5B", "--json")
    assert r.json()["findings"][0]["data"]["oom_check"].startswith(
        "mlops oom-check Qwen/Qwen2.5-0.5B --gpu-mem 10.73GiB"
    )


def test_stdin_and_several_files():
    log = (FIXTURES / "verl6319_loss_nan_gradnorm0.log").read_text()
    r = run_mlops("train-doctor", "-", str(FIXTURES / "healthy_nanotron390.log"), "--json", input=log)
    doc = r.json()
    assert r.returncode == 1 and doc["files"] == ["<stdin>", str(FIXTURES / "healthy_nanotron390.log")]
    assert doc["findings"][0]["file"] == "<stdin>" and doc["findings"][0]["onset"]["step"] == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["/no/such/log"], "cannot read training log /no/such/log: no such file"),
        (["."], "it is a folder"),
        (["{log}", "--framework", "keras"], "unknown --framework 'keras'"),
        (["{log}", "--kill-on-nan", "1234"], "--kill-on-nan needs --follow"),
        (["{log}", "--follow", "--kill-on-nan", "1"], "refusing PID <= 1"),
        (["{log}", "--follow", "--kill-on-nan", "0"], "refusing PID <= 1"),
        (["{log}", "--follow", "--kill-on-nan", "-1"], "refusing PID <= 1"),
        (["{log}", "{log}", "--follow"], "--follow takes exactly one LOG"),
        (["-", "-"], "stdin ('-') can be read only once"),
    ],
)
def test_bad_usage_and_unreadable_input_exit_2_with_one_error_line(args, message):
    log = str(FIXTURES / "healthy_nanotron390.log")
    r = run_mlops("train-doctor", *[a.replace("{log}", log) for a in args], input="")
    assert r.returncode == 2, r
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and message in lines[0], r
    assert len(lines) <= 2


def test_kill_on_nan_refuses_a_pid_that_is_not_there(tmp_path):
    pid = 4194304 - 7  # above the default pid_max, never in use
    r = run_mlops("train-doctor", str(FIXTURES / "healthy_nanotron390.log"), "--follow", "--kill-on-nan", str(pid))
    assert r.returncode == 2 and "no such process" in r.stderr


def test_binary_input_is_exit_2(tmp_path):
    junk = tmp_path / "model.bin"
    junk.write_bytes(bytes(range(32)) * 4096)
    r = run_mlops("train-doctor", str(junk))
    assert r.returncode == 2 and "not a text log" in r.stderr


def test_unreadable_file_is_exit_2(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads files whatever their mode")
    log = tmp_path / "train.log"
    log.write_text("step 1 | loss 1.0\n")
    log.chmod(0)
    r = run_mlops("train-doctor", str(log))
    assert r.returncode == 2 and "cannot read training log" in r.stderr


def test_escape_sequences_in_a_log_do_not_reach_the_terminal(tmp_path):
    log = tmp_path / "evil.log"
    log.write_bytes(b"step 1 | loss 1.0\nstep 2 | loss nan \x1b]0;pwned\x07\x1b[2J\n")
    r = run_mlops("train-doctor", str(log))
    assert r.returncode == 1
    assert "\x1b" not in r.stdout and "\x07" not in r.stdout
