"""One HTTP exchange inside a retried request: what counts as worth another attempt, what is final.

Shared by chat completions and the Batch API calls, so a redirect, an oversized body, a timeout
or an error status reads the same wherever it happens.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import openai

from .errors import EndpointMisconfigured, EndpointProtocolError, one_line
from .http_client import TRANSPORT_ERRORS, Answer, RedirectRefused, ResponseTooLarge
from .retry import Deadline, Retryable, is_retryable_status, retry_after_seconds
from .wire import HTTPFailure, server_message, status_error

T = TypeVar("T")


class Guard:
    """The identity an endpoint's errors carry: where it is, which settings to name, the key to
    scrub from server text."""

    def __init__(self, *, where: str, name: str, key_env: str, timeout: float, deadline: float,
                 redact: Callable[[str], str]) -> None:
        self.where = where
        self.name = name
        self.key_env = key_env
        self.timeout = timeout
        self.deadline = deadline
        self.redact = redact

    async def exchange(self, clock: Deadline, call: Awaitable[T],
                       timeout: float | None = None) -> T:
        """Await `call` within the attempt's timeout (`timeout`, else the model's); transport
        failures become Retryable, a redirect or an oversized body a final error naming the
        setting to fix."""
        timeout = timeout or self.timeout
        try:
            budget = clock.attempt_timeout(timeout)
        except Retryable:
            close = getattr(call, "close", None)
            if close is not None:
                close()
            raise
        try:
            async with asyncio.timeout(budget):
                return await call
        except RedirectRefused as err:
            raise EndpointMisconfigured(
                f"{self.where} answered with an HTTP {err.status} redirect to "
                f"{self.redact(err.location) or '(no Location)'}; redirects are not followed "
                f"(a POST would become a GET elsewhere): set models.{self.name}.base_url to the "
                "address that answers", endpoint=self.name, status=err.status) from None
        except ResponseTooLarge as err:
            raise EndpointProtocolError(
                f"{self.where} sent a {err.what} larger than {err.limit:,} bytes and it was "
                f"refused while being read; raise models.{self.name}.max_response_bytes if the "
                "server is right", endpoint=self.name) from None
        except (openai.APITimeoutError, TimeoutError) as err:
            if budget < timeout:
                raise Retryable(f"the request's deadline of {clock.seconds:g}s passed "
                                "during an attempt") from None
            raise Retryable(_timeout_or_refused(err, timeout)) from None
        except (openai.APIConnectionError, *TRANSPORT_ERRORS) as err:
            cause = err.__cause__ if isinstance(err, openai.APIConnectionError) else err
            raise Retryable("connection error" + (
                f" ({type(cause).__name__}: {one_line(str(cause), 120)})"
                if cause is not None else "")) from None

    def failure(self, failure: HTTPFailure) -> Exception:
        """The exception of a non-2xx answer: Retryable for 408/409/429/5xx, else final."""
        message = self.redact(server_message(failure))
        if is_retryable_status(failure.status):
            return Retryable(f"HTTP {failure.status}: {one_line(message, 120)}",
                             retry_after_seconds(failure.headers))
        return status_error(failure, where=self.where, name=self.name, key_env=self.key_env,
                            message=message)

    def ok(self, answer: Answer) -> Answer:
        """The answer if it is a 2xx, else its exception raised."""
        if answer.status >= 300:
            raise self.failure(HTTPFailure.of(answer.status, answer.headers, answer.body))
        return answer


def _timeout_or_refused(err: BaseException, timeout: float) -> str:
    """The aiohttp transport reports a refused connection as a ConnectTimeout raised at once;
    say what happened, not "timed out"."""
    cause = err.__cause__
    text = str(cause) if cause is not None else ""
    if "Cannot connect" in text or "Connect call failed" in text:
        return f"connection error ({type(cause).__name__}: {one_line(text, 120)})"
    return f"timed out after {timeout:g}s"

