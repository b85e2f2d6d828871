"""SIGTERM treated like Ctrl-C: both raise KeyboardInterrupt, so `finally` blocks run and
a command can say how it stopped (by default SIGTERM ends Python silently)."""

from __future__ import annotations

import contextlib
import signal
import threading


@contextlib.contextmanager
def signals_interrupt():
    """Inside, SIGINT and SIGTERM raise KeyboardInterrupt. Both are set explicitly: a shell
    starting us in the background leaves SIGINT ignored. Only the main thread can set
    handlers; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt
