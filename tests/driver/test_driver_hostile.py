"""Issue 8's driver-check defects, each replayed through the real command:

- D1: --save-snapshot onto a FIFO writes through it (never replaces it); onto a symlink it is
  refused (exit 2) and the link and its target are left alone.
- D2: a newline in a snapshot's uname_r never reaches a printed command or its '# why' comment
  as a second line that a paste would run.
- D3: escape sequences from a snapshot (kernel release, kernel log, GPU name) never reach the
  terminal raw.
- D4: secrets are redacted everywhere in a saved snapshot: dmesg, journalctl -k,
  /proc/cmdline, every file and command output.
"""

from __future__ import annotations

import json
import os
import stat
import threading

from driver_helpers import FIXTURES, load_doc

SECRET_WORDS = ("hunter2", "s3cr3tT0ken", "AKIAXXXXXXXX", "pa55w0rd")


def _write(tmp_path, doc, name="in.json"):
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def test_d1_save_snapshot_writes_through_a_fifo(mlops, tmp_path):
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    got = []

    def reader():
        with open(fifo, "rb") as fh:
            got.append(fh.read())

    t = threading.Thread(target=reader)
    t.start()
    r = mlops("driver-check", "--snapshot", str(FIXTURES / "healthy.json"), "--save-snapshot", str(fifo), "--json")
    t.join(timeout=60)
    assert r.returncode == 0, r
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # still a FIFO, not replaced by a file
    assert json.loads(got[0])["format"] == 1


def test_d1_save_snapshot_refuses_a_symlink_and_leaves_it(mlops, tmp_path):
    target = tmp_path / "precious.txt"
    target.write_text("keep")
    link = tmp_path / "snap.json"
    link.symlink_to(target)
    r = mlops("driver-check", "--snapshot", str(FIXTURES / "healthy.json"), "--save-snapshot", str(link), "--json")
    assert r.returncode == 2, r
    assert link.is_symlink() and target.read_text() == "keep"


def test_d2_newline_in_uname_never_makes_a_second_pasted_command(mlops, tmp_path):
    doc = load_doc("headers-missing")
    kernel = doc["commands"]["uname_r"]["stdout"].strip()
    evil = f"{kernel}\ntouch /tmp/pwned-by-mlops #"
    doc["commands"]["uname_r"]["stdout"] = evil + "\n"
    r = mlops("driver-check", "--snapshot", str(_write(tmp_path, doc)), "--fix", "--dry-run")
    assert r.returncode == 1, r
    out = r.stdout + r.stderr
    assert "$ sudo" in out or "1. " in out  # a plan was printed
    for line in out.splitlines():
        assert not line.lstrip().startswith("touch /tmp/pwned-by-mlops"), line
    # the printed commands carry the value quoted as one word
    assert "$'" in out and "\\ntouch /tmp/pwned-by-mlops" in out


def test_d3_escape_sequences_from_a_snapshot_never_reach_the_terminal(mlops, tmp_path):
    doc = load_doc("nouveau")
    doc["commands"]["uname_r"]["stdout"] = "6.8.0-45-generic\x1b]0;owned\x07\n"
    doc["commands"]["dmesg"] = {
        "rc": 0,
        "stdout": "[ 1.0] NVRM: The NVIDIA probe routine was not called for 1 device(s).\x1b[2J\x1b[H\n",
        "stderr": "",
    }
    lspci = doc["commands"]["lspci_nvidia"]["stdout"]
    doc["commands"]["lspci_nvidia"]["stdout"] = lspci.replace("NVIDIA Corporation", "NVIDIA Corporation\x1b[31m", 1)
    r = mlops("driver-check", "--snapshot", str(_write(tmp_path, doc)))
    assert r.returncode in (1, 3), r
    assert "\x1b" not in r.stdout and "\x07" not in r.stdout
    assert "\\x1b" in r.stdout  # shown, visibly, not executed


def test_d4_secrets_are_redacted_everywhere_in_a_saved_snapshot(mlops, tmp_path):
    doc = load_doc("healthy")
    cmdline = "BOOT_IMAGE=/vmlinuz ro root_password=hunter2 api_token=s3cr3tT0ken aws_secret_access_key=AKIAXXXXXXXX"
    doc["files"]["/proc/cmdline"] = cmdline + "\n"
    doc["commands"]["dmesg"] = {"rc": 0, "stdout": f"[    0.000000] Command line: {cmdline}\n", "stderr": ""}
    doc["commands"]["journal_kernel"] = {
        "rc": 0,
        "stdout": f"Jan 01 kernel: Kernel command line: {cmdline}\n",
        "stderr": "",
    }
    doc["files"]["/var/log/apt/term.log"] = "Setting up foo ... password=pa55w0rd\n"
    doc["files"]["/etc/modprobe.d/custom.conf"] = "options foo token=s3cr3tT0ken\n"
    doc["commands"]["docker_runtimes"] = {"rc": 0, "stdout": '{"runc":{"path":"runc"}} auth=hunter2\n', "stderr": ""}
    out = tmp_path / "out.json"
    r = mlops("driver-check", "--snapshot", str(_write(tmp_path, doc)), "--save-snapshot", str(out), "--json")
    assert r.returncode == 0, r
    saved = out.read_text()
    for word in SECRET_WORDS:
        assert word not in saved, word
    assert saved.count("<redacted>") >= 6
    # the diagnosis-relevant parts survive
    assert "BOOT_IMAGE=/vmlinuz" in saved and "Command line:" in saved
