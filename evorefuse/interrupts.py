"""Ctrl-C and SIGTERM: stop within a moment, leave the work resumable, say how to continue.

Why a registry of cancel callbacks: the embedded model generates in a worker thread that Python
cannot interrupt, and the event loop waits for that thread before it can exit; whatever runs such
work registers a callback that makes it stop at the next token, and the signal handler calls them
all before raising in the main thread.
"""

from __future__ import annotations

import signal
import threading
from typing import Callable

EXIT_SIGINT = 130   # 128 + SIGINT, what shells report for Ctrl-C
EXIT_SIGTERM = 143  # 128 + SIGTERM


class Terminated(BaseException):
    """SIGTERM, raised like KeyboardInterrupt so `except Exception` cannot swallow it."""


_callbacks: list[Callable[[], None]] = []
_lock = threading.Lock()


def on_interrupt(callback: Callable[[], None]) -> None:
    """Call `callback` (from the signal handler, in the main thread) when the user interrupts."""
    with _lock:
        _callbacks.append(callback)


def cancel_all() -> None:
    with _lock:
        callbacks = list(_callbacks)
    for cb in callbacks:
        try:
            cb()
        except Exception:  # noqa: BLE001 - stopping must not fail because one worker could not
            pass


def _handler(signum: int, frame: object) -> None:
    cancel_all()
    if signum == signal.SIGTERM:
        raise Terminated()
    raise KeyboardInterrupt()


def install() -> None:
    """Handle SIGINT and SIGTERM in the main thread (the command line calls this once)."""
    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)


def exit_code(exc: BaseException) -> int:
    return EXIT_SIGTERM if isinstance(exc, Terminated) else EXIT_SIGINT
