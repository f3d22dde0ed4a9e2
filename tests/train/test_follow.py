"""--follow against a log that another process is writing, as it happens in a training job."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time

from tests.train.conftest import FIXTURES

# A stand-in for the training process: prints healthy Megatron lines, then (optionally) the
# verbatim NaN line of epfLLM/Megatron-LLM#33, then keeps running for a long time.
WRITER = r"""
import sys, time
out = open(sys.argv[1], "a", buffering=1) if sys.argv[1] != "-" else sys.stdout
nan = sys.argv[2] == "nan"
lines = open(sys.argv[3]).read().splitlines()
for i, line in enumerate(lines):
    if not nan and "grad norm: nan" in line:
        break
    out.write(line + "\n"); out.flush()
    time.sleep(0.05)
time.sleep(float(sys.argv[4]))
"""
LOG = FIXTURES / "megatron_llm33_falcon_lm_loss_missing.log"


def mlops_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "mlops_cli", "train-doctor", *args, "--follow", "--poll", "0.05"]


def env() -> dict:
    e = dict(os.environ)
    e.pop("MLOPS_DEBUG", None)
    e.update({"COLUMNS": "200", "PYTHONUNBUFFERED": "1"})
    return e


def start_writer(target: str, nan: bool, linger: float, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, target, "nan" if nan else "ok", str(LOG), str(linger)], **kw)


@contextlib.contextmanager
def writing(tmp_path, nan: bool, linger: float):
    """A log file and the process writing it; the writer is killed at the end if still running."""
    log = tmp_path / "train.log"
    log.touch()
    writer = start_writer(str(log), nan=nan, linger=linger)
    try:
        yield log, writer
    finally:
        if writer.poll() is None:
            writer.kill()
        writer.wait()


def follow_run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(mlops_argv(*args), capture_output=True, text=True, env=env(), timeout=90)


def test_follow_a_file_exits_1_at_the_nan_while_the_writer_still_runs(tmp_path):
    with writing(tmp_path, nan=True, linger=120) as (log, writer):
        r = follow_run(str(log))
        assert r.returncode == 1, r.stderr
        assert "ERROR [nan_loss]" in r.stdout and "step 3385" in r.stdout
        assert "stopped: error finding nan_loss-1" in r.stdout
        assert writer.poll() is None  # it did not wait for the writer to end


def test_kill_on_nan_sends_sigterm_to_the_training_process(tmp_path):
    with writing(tmp_path, nan=True, linger=120) as (log, writer):
        r = follow_run(str(log), "--kill-on-nan", str(writer.pid), "--json")
        assert r.returncode == 1, r.stderr
        doc = json.loads(r.stdout)
        assert doc["follow"]["killed"] == {"pid": writer.pid, "signal": "SIGTERM", "ok": True, "error": None}
        assert doc["findings"][0]["onset"]["step"] == 3385
        assert writer.wait(timeout=30) == -15  # SIGTERM


def test_follow_stops_when_the_watched_process_exits_healthy(tmp_path):
    with writing(tmp_path, nan=False, linger=0.5) as (log, writer):
        r = follow_run(str(log), "--kill-on-nan", str(writer.pid), "--json")
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        assert doc["healthy"] is True and doc["follow"]["stopped"] == f"process {writer.pid} exited"
        assert doc["records"] == 15 and doc["follow"]["killed"] is None


def test_follow_stdin_pipe_from_a_running_writer():
    writer = start_writer("-", nan=True, linger=120, stdout=subprocess.PIPE)
    try:
        r = subprocess.run(mlops_argv("-"), stdin=writer.stdout, capture_output=True, text=True, env=env(), timeout=90)
        assert r.returncode == 1, r.stderr
        assert "step 3385" in r.stdout
        assert writer.poll() is None
    finally:
        writer.kill()
        writer.wait()


def test_follow_stdin_to_the_end_of_a_healthy_run():
    writer = start_writer("-", nan=False, linger=0, stdout=subprocess.PIPE)
    try:
        r = subprocess.run(
            mlops_argv("-", "--json"), stdin=writer.stdout, capture_output=True, text=True, env=env(), timeout=90
        )
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        assert doc["follow"]["stopped"] == "end of input" and doc["records"] == 15
    finally:
        writer.wait(timeout=30)


def test_sigterm_to_train_doctor_ends_the_follow_with_130(tmp_path):
    log = tmp_path / "train.log"
    log.write_text((FIXTURES / "healthy_torchtune1358_steps.log").read_text())
    proc = subprocess.Popen(mlops_argv(str(log)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    try:
        time.sleep(3)
        proc.terminate()
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err
        assert "stopped: interrupted" in out and "error: interrupted" in err
    finally:
        if proc.poll() is None:
            proc.kill()


def test_sigterm_with_json_still_prints_one_document(tmp_path):
    log = tmp_path / "train.log"
    log.write_text((FIXTURES / "healthy_torchtune1358_steps.log").read_text())
    proc = subprocess.Popen(
        mlops_argv(str(log), "--json"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env()
    )
    try:
        time.sleep(3)
        proc.terminate()
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err
        doc = json.loads(out)
        assert doc["follow"]["interrupted"] is True and doc["records"] == 12
    finally:
        if proc.poll() is None:
            proc.kill()
