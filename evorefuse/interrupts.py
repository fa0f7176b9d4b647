"""Ctrl-C and SIGTERM: stop within a moment, leave the work resumable, say how to continue.

Why the handler cancels instead of raising: an exception raised by a signal handler lands in
whatever the main thread runs at that instant, inside the event loop that may be a library's
callback, which then dies half-way and logs a traceback. So while `run` drives an event loop, a
signal cancels its main task (as asyncio itself does for Ctrl-C), every await unwinds cleanly, and
`run` raises KeyboardInterrupt or `Terminated` once the loop is done. A second signal raises at
once. Why a registry of cancel callbacks: the embedded model generates in a worker thread that
Python cannot interrupt, and the loop waits for that thread before it can exit; whatever runs such
work registers a callback that makes it stop at the next token.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

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


_main: tuple[asyncio.AbstractEventLoop, asyncio.Task[Any]] | None = None
_received: int | None = None


def _raise(signum: int) -> None:
    if signum == signal.SIGTERM:
        raise Terminated()
    raise KeyboardInterrupt()


def _handler(signum: int, frame: object) -> None:
    global _received
    cancel_all()
    main = _main
    if main is not None and _received is None and not main[1].done():
        _received = signum
        main[0].call_soon_threadsafe(main[1].cancel)
        return
    _raise(signum)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run`, except that Ctrl-C or SIGTERM cancel the work cleanly and then raise
    KeyboardInterrupt or `Terminated`."""
    global _main, _received

    async def main() -> T:
        global _main
        _main = (asyncio.get_running_loop(), asyncio.current_task())  # type: ignore[assignment]
        return await coro

    _received = None
    try:
        return asyncio.run(main())
    except asyncio.CancelledError:
        if _received is None:
            raise
        _raise(_received)
        raise  # unreachable: _raise always raises
    finally:
        _main = None


def install() -> None:
    """Handle SIGINT and SIGTERM in the main thread (the command line calls this once)."""
    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)


def exit_code(exc: BaseException) -> int:
    return EXIT_SIGTERM if isinstance(exc, Terminated) else EXIT_SIGINT
