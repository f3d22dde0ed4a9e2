"""Ctrl-C and SIGTERM, handled one way everywhere.

``install`` (called once by ``cli.main``) makes SIGTERM unwind like Ctrl-C, so a CI timeout or a
``kill`` runs the same clean-up (temporary folders removed, child programs stopped) as Ctrl-C.
``deferred`` holds both signals during a critical section, such as replacing a set of files,
and delivers them as soon as it ends, so an interruption never lands halfway through.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_received: list[int] = []


def _raise_interrupt(signum, frame) -> None:
    _received.append(signum)
    raise KeyboardInterrupt


def install() -> None:
    """SIGINT and SIGTERM raise KeyboardInterrupt, and are remembered (``received``)."""
    if threading.current_thread() is threading.main_thread():
        for s in _SIGNALS:
            signal.signal(s, _raise_interrupt)


def received() -> bool:
    """Whether Ctrl-C or SIGTERM arrived in this process. Recent Typer releases turn the
    KeyboardInterrupt into a plain exit status 130; ``cli.main`` asks this to still report it."""
    return bool(_received)


def reported() -> None:
    """The command has reported the interruption itself (its partial result, then exit 130):
    ``cli.main`` adds no second report."""
    _received.clear()


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """SIGINT/SIGTERM arriving inside the block are delivered (as KeyboardInterrupt) when it
    ends. Outside the main thread signals are not ours to hold: the block just runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = {s: signal.getsignal(s) for s in _SIGNALS}
    for s in _SIGNALS:
        signal.signal(s, lambda signum, frame: pending.append(signum))  # noqa: B023
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if pending:
        _received.extend(pending)
        raise KeyboardInterrupt
