"""Every program mlops starts is started here.

``run`` takes an argument list (never a shell string) and a timeout. The child gets its own
process group, so a timeout, Ctrl-C or SIGTERM stops it and everything it started (dkms, make,
uv's workers), not just the first process. A missing program is rc 127, one that cannot be
executed rc 126, a timeout rc 124 with the output so far: callers report these, they do not
crash on them. ``spawn`` is the same for a program whose output is read while it runs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

NOT_INSTALLED = 127
NOT_EXECUTABLE = 126
TIMED_OUT = 124


@dataclass(frozen=True)
class ProcResult:
    """What a program did: its exit status and output, kept for the report."""

    rc: int
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.rc == 0

    @property
    def missing(self) -> bool:
        return self.rc == NOT_INSTALLED

    # The name the driver probes have always used.
    not_installed = missing

    @property
    def timed_out(self) -> bool:
        return self.rc == TIMED_OUT

    def to_json(self) -> dict[str, Any]:
        return {"rc": self.rc, "stdout": self.stdout, "stderr": self.stderr}


_running: set[subprocess.Popen] = set()
_running_lock = threading.Lock()


def _register(p: subprocess.Popen) -> None:
    with _running_lock:
        _running.add(p)


def _unregister(p: subprocess.Popen) -> None:
    with _running_lock:
        _running.discard(p)


def stop(p: subprocess.Popen) -> None:
    """Stop a program started by ``spawn`` and everything it started."""
    _kill_group(p)


def _kill_group(p: subprocess.Popen) -> None:
    if p.poll() is not None:
        return
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, OSError):
        with contextlib.suppress(OSError):
            p.kill()


def kill_all() -> None:
    """Stop every program (and its group) this process started and has not reaped: called
    when mlops is interrupted, so nothing runs on behind it."""
    with _running_lock:
        running = list(_running)
    for p in running:
        _kill_group(p)


def base_env(env: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
    """The environment for a child: ours (or ``env``) with a stable C locale, plus ``extra``."""
    out = dict(os.environ if env is None else env)
    out.update({"LC_ALL": "C", "LANG": "C"})
    out.update(extra)
    return out


def which(name: str) -> str | None:
    return shutil.which(name)


def _decode(data: bytes | None) -> str:
    return data.decode("utf-8", errors="replace") if data else ""


def _start(
    argv: Sequence[str], *, env, cwd, stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text: bool = False
) -> subprocess.Popen:
    kwargs: dict[str, Any] = {}
    if text:
        kwargs.update(text=True, errors="replace", encoding="utf-8")
    return subprocess.Popen(
        [str(a) for a in argv],
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        env=env,
        cwd=cwd,
        start_new_session=True,
        **kwargs,
    )


def run(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    input: str | bytes | None = None,
    cwd: str | os.PathLike | None = None,
) -> ProcResult:
    """Run a program to its end (or ``timeout`` seconds) and return what it did."""
    if not argv:
        raise ValueError("empty argv")
    try:
        p = _start(
            argv,
            env=None if env is None else dict(env),
            cwd=cwd,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        )
    except FileNotFoundError:
        return ProcResult(NOT_INSTALLED, "", f"{argv[0]}: command not found")
    except PermissionError as exc:
        return ProcResult(NOT_EXECUTABLE, "", f"{argv[0]}: {exc.strerror}")
    except OSError as exc:  # ENOEXEC, ENAMETOOLONG, E2BIG ...
        return ProcResult(NOT_EXECUTABLE, "", f"{argv[0]}: {exc.strerror or exc}")
    _register(p)
    payload = input.encode("utf-8") if isinstance(input, str) else input
    try:
        try:
            out, err = p.communicate(payload, timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(p)
            try:
                out, err = p.communicate(timeout=5)
            except subprocess.TimeoutExpired:  # a grandchild outside the group holds the pipes
                out, err = b"", b""
            return ProcResult(TIMED_OUT, _decode(out), _decode(err) + f"\n[mlops] timed out after {timeout:g} s")
        except BrokenPipeError:  # it exited without reading all its input
            out, err = p.communicate()
    except BaseException:
        _kill_group(p)
        with contextlib.suppress(Exception):
            p.wait(timeout=5)
        raise
    finally:
        _unregister(p)
    return ProcResult(p.returncode, _decode(out), _decode(err))


@contextlib.contextmanager
def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike | None = None,
    stdout: int = subprocess.PIPE,
    stderr: int = subprocess.PIPE,
    text: bool = True,
) -> Iterator[subprocess.Popen]:
    """A running program whose output the caller reads as it comes (text by default). When the
    block ends, by success, error or interruption, the program's group is stopped if still running.
    A missing program raises FileNotFoundError."""
    p = _start(
        argv,
        env=None if env is None else dict(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        text=text,
    )
    _register(p)
    try:
        yield p
    finally:
        _kill_group(p)
        with contextlib.suppress(Exception):
            p.wait(timeout=5)
        for stream in (p.stdout, p.stderr):
            if stream is not None:
                with contextlib.suppress(Exception):
                    stream.close()
        _unregister(p)
