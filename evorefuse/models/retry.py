"""Retries with backoff under one deadline, for every HTTP call the model layer makes.

Why our own loop and not the `openai` package's: each retry must be counted (the ledger reports
them), the backoff must honour `Retry-After` across all concurrent requests of an endpoint (the
limiter pauses), and one request must not outlive its deadline however the time is spent: slow
attempts, a body that drips in a byte at a time, backoff waits, or a server asking to wait again
and again. The deadline starts when the first attempt is sent (after any wait for a concurrency
slot, which is our queue, not the server's doing), and every attempt's own timeout is cut to what
is left of it.
"""

from __future__ import annotations

import asyncio
import datetime
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import TypeVar

from .errors import EndpointUnavailable

BACKOFF_BASE = 0.5      # seconds; full jitter: uniform(0, min(cap, base * 2**attempt))
BACKOFF_CAP = 30.0
RETRY_AFTER_MAX = 600.0  # a server asking for more than 10 minutes is treated as asking for 10
RETRYABLE_STATUS = frozenset({408, 409, 429})

T = TypeVar("T")


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """Seconds the server asked us to wait: `retry-after-ms`, else `Retry-After` (seconds or date)."""
    if not headers:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return min(RETRY_AFTER_MAX, max(0.0, float(value) / 1000.0))
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        now = datetime.datetime.now(when.tzinfo or datetime.UTC)
        seconds = (when - now).total_seconds()
    return min(RETRY_AFTER_MAX, max(0.0, seconds))


def backoff_delay(attempt: int, retry_after: float | None, rng: random.Random) -> float:
    """Full-jitter exponential backoff, but never shorter than what the server asked for."""
    delay = rng.uniform(0.0, min(BACKOFF_CAP, BACKOFF_BASE * (2 ** attempt)))
    if retry_after is not None and retry_after > delay:
        delay = retry_after
    return delay


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUS or status >= 500


class Retryable(Exception):
    """An attempt failed in a way another attempt may not: `reason` is said if none succeeds."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class Deadline:
    """Seconds left of one request's overall time; the clock starts at the first `left()`."""

    __slots__ = ("_at", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._at: float | None = None

    def left(self) -> float:
        now = time.monotonic()
        if self._at is None:
            self._at = now + self.seconds
        return self._at - now

    def attempt_timeout(self, per_attempt: float) -> float:
        """The timeout of the next attempt: its own limit, cut to what the deadline leaves."""
        left = self.left()
        if left <= 0:
            raise Retryable(f"the request's deadline of {self.seconds:g}s passed")
        return min(per_attempt, left)


async def retrying(attempt: Callable[[Deadline, int], Awaitable[T]], *, deadline: float,
                   max_retries: int, where: str, name: str, rng: random.Random,
                   on_retry_after: Callable[[float], None] | None = None) -> T:
    """Call `attempt(deadline, retries_so_far)` until it returns; it raises `Retryable` for a
    failure worth another try. Gives up with EndpointUnavailable after `max_retries` retries, or
    when the next wait would pass the deadline."""
    clock = Deadline(deadline)
    retries = 0
    while True:
        try:
            return await attempt(clock, retries)
        except Retryable as failure:
            reason, retry_after = failure.reason, failure.retry_after
        if retries >= max_retries:
            raise EndpointUnavailable(f"{where} failed after {retries} retries: {reason}",
                                      endpoint=name) from None
        if retry_after and on_retry_after is not None:
            on_retry_after(retry_after)
        delay = backoff_delay(retries, retry_after, rng)
        if clock.left() - delay <= 0:
            raise EndpointUnavailable(
                f"{where} gave up after {retries + 1} attempts: the request's deadline of "
                f"{deadline:g}s (models.{name}.deadline) leaves no time for another ({reason})",
                endpoint=name) from None
        retries += 1
        await asyncio.sleep(delay)
