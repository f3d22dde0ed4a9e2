"""The sanitiser, pasteable commands, redaction, and the one way programs are started."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlops_cli import proc, text

ESC = "\x1b"


def test_clean_makes_escape_sequences_inert():
    hostile = f"GPU {ESC}[2J{ESC}]0;owned\x07 name\u202e\r\nnext\x9b31m"
    out = text.clean(hostile)
    assert ESC not in out and "\x07" not in out and "\u202e" not in out and "\x9b" not in out
    assert "\\x1b[2J" in out and "\nnext" in out


@settings(derandomize=True, max_examples=300, deadline=None)
@given(st.text())
def test_clean_and_one_line_never_let_a_control_character_through(s):
    for out in (text.clean(s), text.one_line(s)):
        assert not any((ord(c) < 32 and c not in "\n\t") or 0x7F <= ord(c) < 0xA0 for c in out)
    assert "\n" not in text.one_line(s)


@settings(derandomize=True, max_examples=300, deadline=None)
@given(
    st.lists(
        st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20),
        min_size=1,
        max_size=5,
    )
)
def test_shell_join_pastes_back_to_the_same_argv(argv):  # (an argv cannot hold NUL)
    line = text.shell_join(argv)
    assert "\n" not in line and ESC not in line
    got = subprocess.run(
        ["bash", "-c", f'for a in {line}; do printf "%s\\0" "$a"; done'],
        capture_output=True,
        env=dict(os.environ, LC_ALL="C.UTF-8"),
    ).stdout
    assert got.split(b"\0")[:-1] == [a.encode("utf-8", "surrogateescape") for a in argv]


def test_a_newline_in_a_value_cannot_become_a_second_command():
    """D2: a newline in a snapshot's uname_r reached a printed plan and ran an extra line."""
    line = text.shell_join(["apt-get", "install", "linux-headers-6.8.0\nrm -rf /"])
    assert "\n" not in line and line.endswith("$'linux-headers-6.8.0\\nrm -rf /'")
    assert shlex.split("x") == ["x"]


@pytest.mark.parametrize(
    "raw, kept, gone",
    [
        ("BOOT_IMAGE=/vmlinuz ro nouveau.modeset=0 api_token=abc123", "nouveau.modeset=0", "abc123"),
        ("[    0.000000] Command line: ro vault_password=hunter2 quiet", "Command line: ro", "hunter2"),
        ("https://user:s3cret@pypi.example/simple", "https://user:", "s3cret"),
        ("Authorization: Bearer abcdefghijklmnop", "Authorization", "abcdefghijklmnop"),
        ("secret_key: zzz123", "secret_key", "zzz123"),
    ],
)
def test_redact(raw, kept, gone):
    out = text.redact(raw)
    assert kept in out and gone not in out and "<redacted>" in out


@pytest.mark.parametrize("token", ["a" * 1_000_000, "a." * 500_000, "x=" * 300_000, "k:" * 300_000])
def test_redact_is_linear_on_a_huge_token(token):
    start = time.perf_counter()
    text.redact(token)
    text.clean(token)
    assert time.perf_counter() - start < 5  # generous: quadratic would take minutes


def test_shorten_keeps_both_ends():
    s = text.shorten("a" * 100 + "END", 20)
    assert len(s) <= 20 and s.endswith("END") and " ... " in s
    assert text.shorten_list([str(i) for i in range(400)], 3) == "0, 1, 2 and 397 more"


# --- proc ------------------------------------------------------------------------------


def _gone(pid: int) -> bool:
    """Dead: no such process, or a zombie nobody has reaped yet (init in a container may not)."""
    for _ in range(50):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.1)
    return False


def test_run_reports_missing_and_failing_programs():
    assert proc.run(["definitely-not-a-program-xyz"], timeout=5).missing
    r = proc.run([sys.executable, "-c", "import sys; sys.stderr.write('no'); sys.exit(3)"], timeout=30)
    assert r.rc == 3 and r.stderr == "no"
    r = proc.run([sys.executable, "-c", "import sys; print(sys.stdin.read().upper())"], timeout=30, input="hi")
    assert r.ok and r.stdout.strip() == "HI"


def test_a_timeout_kills_the_whole_group(tmp_path):
    """The grandchild (dkms -> make) must not outlive the timeout."""
    marker = tmp_path / "pid"
    script = (
        f"import subprocess,sys,time; p=subprocess.Popen([sys.executable,'-c','import time; time.sleep(60)']);"
        f"open({str(marker)!r},'w').write(str(p.pid)); print('started', flush=True); time.sleep(60)"
    )
    start = time.monotonic()
    r = proc.run([sys.executable, "-c", script], timeout=2)
    assert r.timed_out and "started" in r.stdout and time.monotonic() - start < 20
    assert _gone(int(marker.read_text()))


def test_sigterm_to_mlops_stops_its_children(tmp_path):
    """A CI timeout (SIGTERM) unwinds like Ctrl-C: exit 130, and the program mlops started is gone."""
    marker = tmp_path / "pid"
    child = f"import os,time; open({str(marker)!r},'w').write(str(os.getpid())); time.sleep(60)"
    driver = (
        "import sys\n"
        "from mlops_cli import interrupts, proc\n"
        "from mlops_cli.cli import _fail\n"
        "interrupts.install()\n"
        "try:\n"
        f"    proc.run([sys.executable, '-c', {child!r}], timeout=60)\n"
        "except BaseException as exc:\n"
        "    sys.exit(_fail(exc, False))\n"
    )
    p = subprocess.Popen([sys.executable, "-c", driver], stderr=subprocess.PIPE, text=True)
    for _ in range(100):
        if marker.exists() and marker.read_text():
            break
        time.sleep(0.1)
    p.terminate()
    _, err = p.communicate(timeout=30)
    assert p.returncode == 130 and "error: interrupted" in err
    assert _gone(int(marker.read_text()))


def test_deferred_holds_a_signal_until_the_critical_section_ends():
    code = (
        "import os, signal, sys\n"
        "from mlops_cli import interrupts\n"
        "done = []\n"
        "try:\n"
        "    with interrupts.deferred():\n"
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "        done.append('all of it')\n"
        "except KeyboardInterrupt:\n"
        "    sys.exit(0 if done == ['all of it'] else 1)\n"
        "sys.exit(2)\n"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
