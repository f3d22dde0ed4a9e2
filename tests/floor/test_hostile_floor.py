"""Regressions from attacking the merged commands through the real command line (issue 8, second
round): each case below was an internal error, a hang or a garbled line before the floor fix it
names. They run the real `python -m mlops_cli` where the defect was only visible there."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mlops_cli import files
from mlops_cli.errors import UsageError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
GPU_SNAPSHOT = FIXTURES / "gpu" / "a800-2gpu.json"
DRIVER_SNAPSHOT = FIXTURES / "driver" / "healthy.json"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("MLOPS_DEBUG", None)
    return env


def _mlops(args, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("stdin", subprocess.DEVNULL)
    kw.setdefault("stdout", subprocess.PIPE)
    return subprocess.run(
        [sys.executable, "-m", "mlops_cli", *args], stderr=subprocess.PIPE, text=True, env=_env(), timeout=120, **kw
    )


# --- stdout that cannot be written: --help, --version and listings, not only reports -------


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["--version"],
        ["driver-check", "--help"],
        ["mem", "estimate", "--list-presets"],
        ["mem", "estimate", "--list-presets", "--json"],
    ],
)
def test_help_version_and_listings_to_a_full_or_closed_stdout_are_one_error_line(args):
    with open("/dev/full", "w") as full:
        r = _mlops(args, stdout=full)
    assert r.returncode == 1, r.stderr
    assert r.stderr.splitlines() == ["error: could not write the report to stdout: No space left on device"]
    closed = subprocess.run(
        ["bash", "-c", f"{sys.executable} -m mlops_cli {' '.join(args)} >&-"],
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        timeout=120,
    )
    assert closed.returncode == 1 and closed.stderr.splitlines() == [
        "error: could not write the report to stdout: stdout is closed"
    ]


# --- stdin closed (`<&-`) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "args", [["gpu", "--snapshot", str(GPU_SNAPSHOT)], ["driver-check", "--snapshot", str(DRIVER_SNAPSHOT), "--json"]]
)
def test_a_closed_stdin_does_not_break_commands_that_do_not_read_it(args):
    r = subprocess.run(
        ["bash", "-c", " ".join([sys.executable, "-m", "mlops_cli", *args, "<&-"])],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    assert r.returncode == 0 and "internal error" not in r.stderr, r.stderr


def test_reading_a_closed_stdin_is_one_error_line():
    r = subprocess.run(
        ["bash", "-c", f"{sys.executable} -m mlops_cli gpu --snapshot - --json <&-"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    assert r.returncode == 2, r.stderr
    assert r.stderr.splitlines() == ["error: cannot read NVML snapshot from stdin: stdin is closed"]
    assert json.loads(r.stdout)["error"]["exit_code"] == 2


# --- Ctrl-C / SIGTERM through the real command line --------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupted_command_says_so_and_prints_the_json_error_document(tmp_path, sig):
    """Typer >= 0.16 turns KeyboardInterrupt into a bare exit status 130, which skipped the
    error line and the --json error document. The command is interrupted while it waits for
    its input: a FIFO whose writer never writes."""
    fifo = tmp_path / "nodes.json"
    os.mkfifo(fifo)
    p = subprocess.Popen(
        [sys.executable, "-m", "mlops_cli", "report", str(fifo), "--json"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    writer = None
    deadline = time.monotonic() + 120
    while writer is None and time.monotonic() < deadline:
        try:  # succeeds only once mlops has the FIFO open for reading: it is inside the command
            writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            time.sleep(0.05)
    assert writer is not None, "mlops never opened its input"
    try:
        p.send_signal(sig)
        out, err = p.communicate(timeout=60)
    finally:
        os.close(writer)
    assert p.returncode == 130, err
    assert err.splitlines() == ["error: interrupted"]
    assert json.loads(out) == {"error": {"message": "interrupted", "hint": None, "exit_code": 130}}


# --- one line per message ----------------------------------------------------------------------


def test_an_error_quoting_a_huge_value_stays_one_short_line(tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"model_type": "llama", "hidden_size": "x" * 200_000}))
    r = _mlops(["mem", "estimate", str(cfg), "--json"])
    assert r.returncode == 2
    line = r.stderr.splitlines()[0]
    assert line.startswith("error: malformed model config: hidden_size") and len(line) <= 1000
    assert len(json.loads(r.stdout)["error"]["message"]) <= 1000


def test_a_progress_line_naming_a_file_stays_one_line(tmp_path):
    out = tmp_path / "snap\n\x1b[2Jinjected.json"
    r = _mlops(["driver-check", "--snapshot", str(DRIVER_SNAPSHOT), "--save-snapshot", str(out)])
    assert r.returncode == 0, r.stderr
    assert "snapshot written to " in r.stderr and "injected" not in r.stderr.split("snapshot written to ")[0]
    written = [ln for ln in r.stderr.splitlines() if "snapshot written to" in ln]
    assert len(written) == 1 and written[0].endswith("\\x1b[2Jinjected.json") and "\\n" in written[0]


def test_out_of_memory_is_one_line_not_an_internal_error():
    code = "from mlops_cli.cli import _fail; import sys; sys.exit(_fail(MemoryError(), True))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and r.stderr.startswith("error: out of memory") and "internal" not in r.stderr
    assert json.loads(r.stdout)["error"]["exit_code"] == 1


# --- reading: files found in a folder, paths that cannot be paths -----------------------------


def test_regular_only_refuses_a_fifo_without_waiting(tmp_path):
    fifo = tmp_path / "node.json"
    os.mkfifo(fifo)
    start = time.monotonic()
    with pytest.raises(UsageError, match="not a regular file"):
        files.read_input_text(fifo, what="report", regular_only=True)
    assert time.monotonic() - start < 5


def test_regular_only_reads_regular_files_and_symlinks_to_them(tmp_path):
    target = tmp_path / "a.json"
    target.write_text("{}")
    (tmp_path / "link.json").symlink_to(target)
    assert files.read_input_json(tmp_path / "link.json", what="x", regular_only=True) == {}
    with pytest.raises(UsageError, match="a folder"):
        files.read_input_bytes(tmp_path, what="x", regular_only=True)


def test_user_path_exists_never_raises_for_names_that_cannot_be_paths(tmp_path):
    (tmp_path / "f").write_text("x")
    assert files.user_path_exists(tmp_path / "f")
    assert not files.user_path_exists("x" * 5000)
    assert not files.user_path_exists("a/" * 3000 + "b")
    assert not files.user_path_exists(tmp_path / "f" / "under-a-file")
    assert not files.user_path_exists("nul\x00byte")
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    assert files.user_path_exists(loop)  # exists, and reading it says why it cannot be used


# --- writing: lone surrogates, FIFOs nobody reads, names that are not UTF-8 -------------------


def test_a_lone_surrogate_from_an_input_is_saved_and_reads_back_the_same(tmp_path):
    doc = json.loads((DRIVER_SNAPSHOT).read_text())
    doc["commands"]["dmesg"]["stdout"] += "tail \ud800 of a broken log\n"
    snap = tmp_path / "in.json"
    snap.write_text(json.dumps(doc))  # ensure_ascii: the file holds the escape "\ud800"
    out = tmp_path / "out.json"
    r = _mlops(["driver-check", "--snapshot", str(snap), "--save-snapshot", str(out)])
    assert r.returncode == 0 and "internal error" not in r.stderr, r.stderr
    assert "tail \ud800 of a broken log" in files.read_input_json(out, what="x")["commands"]["dmesg"]["stdout"]
    files.write_atomic(tmp_path / "t.prom", "gpu \ud800\n")
    assert (tmp_path / "t.prom").read_bytes() == b"gpu \\ud800\n"


def test_writing_to_a_fifo_nobody_reads_gives_up_with_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "FIFO_READER_WAIT", 0.5)
    fifo = tmp_path / "metrics.prom"
    os.mkfifo(fifo)
    start = time.monotonic()
    with pytest.raises(UsageError, match="nothing reads from it"):
        files.write_atomic(fifo, "x 1\n")
    assert time.monotonic() - start < 10


def test_writing_to_a_fifo_with_a_reader_goes_through(tmp_path):
    fifo = tmp_path / "metrics.prom"
    os.mkfifo(fifo)
    got: list[bytes] = []

    def reader() -> None:
        time.sleep(0.3)  # the reader comes a little after the writer
        with open(fifo, "rb") as fh:
            got.append(fh.read())

    t = threading.Thread(target=reader)
    t.start()
    files.write_atomic(fifo, "x 1\n")
    t.join(10)
    assert got == [b"x 1\n"] and fifo.exists() and not fifo.is_file()


def test_an_output_name_that_is_not_utf8_is_written(tmp_path):
    name = os.fsdecode(b"snap-\xff.json")
    files.check_writable(tmp_path / name, what="snapshot")
    files.write_atomic(tmp_path / name, "{}\n")
    assert (tmp_path / name).read_text() == "{}\n"


def test_a_size_of_thousands_of_blanks_is_refused_at_once():
    """--gpu-mem / --cuda-context: 120 KB of blanks made the size regex backtrack for minutes."""
    from mlops_cli.units import parse_bytes

    start = time.monotonic()
    with pytest.raises(UsageError, match="not a size"):
        parse_bytes("\t " * 60_000 + "x")
    assert time.monotonic() - start < 1.0
    assert parse_bytes(" 80 GiB ") == 80 * 1024**3


# --- secrets in saved snapshots: process command lines, JSON, URL queries, token shapes -------


@pytest.mark.parametrize(
    "raw, gone, kept",
    [
        (
            "python train.py --hf-token hf_abcdefghijklmnop --password hunter2 --lr 1e-4",
            ["hf_abcdefghijklmnop", "hunter2"],
            "--lr 1e-4",
        ),
        ("torchrun --api-key abcdef123456 run.py", ["abcdef123456"], "torchrun --api-key"),
        ("https://mirror/simple?token=abc123&arch=x86_64", ["abc123"], "&arch=x86_64"),
        ('{"token": "abc123", "user": "bob"}', ["abc123"], '"user": "bob"'),
        ("token = abc123", ["abc123"], "token = "),
        ("export HUGGINGFACE=hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345", ["hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345"], "export"),
        (
            "aws AKIAABCDEFGHIJKLMNOP ghp_0123456789abcdefghijklmnopqrstuvwxyz",
            ["AKIAABCDEFGHIJKLMNOP", "ghp_0123"],
            "aws",
        ),
        ("apikey=s3cret nouveau.modeset=0", ["s3cret"], "nouveau.modeset=0"),
    ],
)
def test_redact_catches_secrets_in_command_lines_and_documents(raw, gone, kept):
    from mlops_cli.text import redact

    out = redact(raw)
    assert kept in out and "<redacted>" in out, out
    for secret in gone:
        assert secret not in out, out


@pytest.mark.parametrize(
    "line",
    [
        "[    2.1] input: keyboard: usb 1-1",
        "Keyring: loaded 3 keys",
        "author: bob",
        "signer: nvidia-dkms Secure Boot Module Signature key",
    ],
)
def test_redact_leaves_words_that_only_contain_a_secret_word(line):
    from mlops_cli.text import redact

    assert redact(line) == line


def test_a_saved_nvml_snapshot_redacts_process_command_lines(tmp_path):
    """NVML snapshots record each GPU process's command line (from /proc/PID/cmdline):
    `--hf-token X` there was saved verbatim."""
    from mlops_cli.host import save_snapshot_document

    doc = json.loads(GPU_SNAPSHOT.read_text())
    doc["calls"]["process/4242"] = {
        "value": {"user": "alice", "command": "python train.py --hf-token hf_abcdefghijklmnop --wandb-key 0123abcd"}
    }
    out = tmp_path / "gpus.json"
    save_snapshot_document(out, doc, what="NVML snapshot")
    saved = out.read_text()
    assert "hf_abcdefghijklmnop" not in saved and "0123abcd" not in saved
    assert "python train.py --hf-token <redacted> --wandb-key <redacted>" in saved


@pytest.mark.parametrize(
    "args",
    [
        ["gpu", "--snapshot", str(GPU_SNAPSHOT), "--prometheus", "/dev/stdout"],
        ["driver-check", "--snapshot", str(DRIVER_SNAPSHOT), "--save-snapshot", "/proc/self/fd/1"],
    ],
)
def test_json_keeps_stdout_for_the_json_document(args):
    """`--prometheus /dev/stdout --json` put the metrics text before the JSON document."""
    r = _mlops([*args, "--json"])
    assert r.returncode == 2, r.stderr
    assert "that is stdout, which --json keeps for the JSON document" in r.stderr.splitlines()[0]
    assert json.loads(r.stdout)["error"]["exit_code"] == 2
    plain = _mlops(args)  # without --json the user may send both to stdout
    assert plain.returncode in (0, 1) and "error" not in plain.stderr


def test_json_output_redirected_to_the_metrics_file_itself_is_refused(tmp_path):
    target = tmp_path / "gpu.prom"
    with open(target, "w") as out:
        r = _mlops(["gpu", "--snapshot", str(GPU_SNAPSHOT), "--prometheus", str(target), "--json"], stdout=out)
    assert r.returncode == 2 and "that is stdout" in r.stderr
    assert json.loads(target.read_text())["error"]["exit_code"] == 2


def test_regular_only_never_opens_a_device_for_reading(monkeypatch):
    """`mlops report /` opened every device node under /dev it walked past (/dev/watchdog arms a
    reboot when opened); a device found in a folder is now only pinned with O_PATH and checked."""
    if not hasattr(os, "O_PATH"):
        pytest.skip("O_PATH is Linux-only; elsewhere the file is stat()ed before it is opened")
    opened: list[tuple[str, int]] = []
    real_open = os.open

    def spy(path, flags, *args):
        opened.append((os.fspath(path), flags))
        return real_open(path, flags, *args)

    monkeypatch.setattr(files.os, "open", spy)
    for device in ("/dev/null", "/dev/zero", "/dev/full"):
        with pytest.raises(UsageError, match="not a regular file"):
            files.read_input_bytes(device, what="report", regular_only=True)
    assert opened and all(flags & os.O_PATH for _, flags in opened), opened


def test_dash_as_an_output_is_stdout_not_a_file_named_dash(tmp_path):
    """`--save-snapshot -` created a file called '-' in the working folder."""
    r = _mlops(["gpu", "--snapshot", str(GPU_SNAPSHOT), "--prometheus", "-"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "-").exists() and "warning" not in r.stderr
    assert r.stdout.startswith("# HELP mlops_gpu_") and "2 GPU(s)" in r.stdout
    j = _mlops(["gpu", "--snapshot", str(GPU_SNAPSHOT), "--prometheus", "-", "--json"], cwd=tmp_path)
    assert j.returncode == 2 and "that is stdout" in j.stderr and not (tmp_path / "-").exists()


def test_an_interrupt_between_the_two_renames_of_publish_dir_loses_neither_folder(tmp_path, monkeypatch):
    """SIGTERM right after the old output was moved aside left nothing at OUT (the old folder
    sat in a hidden .old temp folder). The swap now runs with signals held."""
    import signal as sig

    from mlops_cli import interrupts

    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "001.jpg").write_text("old")
    real_rename = os.rename
    calls = []

    def rename_then_sigterm(src, dst):
        real_rename(src, dst)
        calls.append(dst)
        if len(calls) == 1:  # the old folder was just moved aside
            os.kill(os.getpid(), sig.SIGTERM)

    previous = sig.getsignal(sig.SIGTERM)
    interrupts.install()
    try:
        with pytest.raises(KeyboardInterrupt):
            with files.staging_dir(dest) as staging:
                (staging / "001.jpg").write_text("new")
                monkeypatch.setattr(files.os, "rename", rename_then_sigterm)
                files.publish_dir(staging, dest, may_replace=lambda d: None)
    finally:
        sig.signal(sig.SIGTERM, previous)
        sig.signal(sig.SIGINT, sig.default_int_handler)
    assert (dest / "001.jpg").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
