"""Client-side limits of one endpoint: concurrency, requests/minute, tokens/minute.

Why proactive limits: waiting for 429s wastes a round trip per rejected request and, on paid APIs,
can trip abuse heuristics. Staying under the published limits keeps a long run steady.

The buckets refill continuously and may go into debt: a request proceeds once the bucket holds
`min(cost, capacity)` and then subtracts its full cost. So a request larger than the whole bucket
still goes (once the bucket is full) instead of waiting forever, and the long-run rate stays exact
because the debt delays whoever comes next. Waiters are served first come, first served, so large
requests are not starved by a stream of small ones.

Everything here is plain asyncio on the caller's loop: no threads, and no sleeping (not even a
`sleep(0)`) when there is capacity.
"""

from __future__ import annotations

import asyncio
import time

from .spec import ModelSpec

# Burst allowance of the rate buckets, in seconds of refill. Providers enforce per-minute limits
# over much shorter windows (OpenAI documents 60k RPM being enforced as 1k per second), so a full
# minute's burst would be rejected; one second's worth is safe and still lets requests overlap.
BURST_SECONDS = 1.0


class TokenBucket:
    """A continuously refilling bucket of `per_minute` units with a burst of `BURST_SECONDS`."""

    __slots__ = ("_lock", "_stamp", "capacity", "level", "rate")

    def __init__(self, per_minute: float, burst_seconds: float = BURST_SECONDS) -> None:
        if per_minute <= 0:
            raise ValueError("a rate limit must be positive")
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * burst_seconds)
        self.level = self.capacity
        self._stamp = time.monotonic()
        self._lock: asyncio.Lock | None = None  # created on first contention (binds to that loop)

    def _refill(self) -> None:
        now = time.monotonic()
        level = self.level + (now - self._stamp) * self.rate
        self.level = min(self.capacity, level)
        self._stamp = now

    def try_take(self, cost: float) -> bool:
        """Take `cost` now if nobody is queued and the bucket allows it; never waits."""
        if self._lock is not None and self._lock.locked():
            return False
        self._refill()
        if self.level >= min(cost, self.capacity):
            self.level -= cost
            return True
        return False

    async def take(self, cost: float) -> None:
        """Wait (FIFO) until the bucket allows `cost`, then take it."""
        if self.try_take(cost):
            return
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            need = min(cost, self.capacity)
            while True:
                self._refill()
                if self.level >= need:
                    self.level -= cost
                    return
                await asyncio.sleep((need - self.level) / self.rate)

    def give_back(self, amount: float) -> None:
        """Return an over-estimate once the real usage is known (never above capacity)."""
        if amount > 0:
            self._refill()
            self.level = min(self.capacity, self.level + amount)


class EndpointLimiter:
    """Concurrency slots plus optional RPM/TPM buckets for one endpoint.

    Use `await acquire(est_tokens)` before each HTTP attempt and `release(est_tokens, used)` after
    it, in a `try/finally`. The concurrency slot is taken first, so time spent waiting for the rate
    buckets is not also spent holding rate capacity that others could use.
    """

    def __init__(self, max_concurrency: int, requests_per_minute: float | None = None,
                 tokens_per_minute: float | None = None) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self.max_concurrency = max_concurrency
        self._sem = asyncio.Semaphore(max_concurrency)
        self.rpm = TokenBucket(requests_per_minute) if requests_per_minute else None
        self.tpm = TokenBucket(tokens_per_minute) if tokens_per_minute else None
        self._paused_until = 0.0
        self.in_flight = 0
        self.max_in_flight = 0

    @classmethod
    def for_spec(cls, spec: ModelSpec) -> EndpointLimiter:
        return cls(spec.max_concurrency, spec.requests_per_minute, spec.tokens_per_minute)

    def pause(self, seconds: float) -> None:
        """Hold back every new attempt for `seconds` (the server said so with Retry-After)."""
        until = time.monotonic() + seconds
        self._paused_until = max(self._paused_until, until)

    async def acquire(self, est_tokens: int) -> None:
        await self._sem.acquire()
        try:
            if self._paused_until:
                delay = self._paused_until - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            if self.rpm is not None:
                await self.rpm.take(1.0)
            if self.tpm is not None:
                await self.tpm.take(float(est_tokens))
        except BaseException:
            self._sem.release()
            raise
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def release(self, est_tokens: int, used_tokens: int | None = None) -> None:
        """Free the slot; if the real usage is known, refund what was reserved but not used."""
        self.in_flight -= 1
        self._sem.release()
        if self.tpm is not None and used_tokens is not None:
            self.tpm.give_back(est_tokens - used_tokens)


def estimate_tokens(messages_chars: int, max_tokens: int, n: int) -> int:
    """What a request may cost before we know: prompt chars // 4 plus the whole completion budget."""
    return messages_chars // 4 + max_tokens * n
