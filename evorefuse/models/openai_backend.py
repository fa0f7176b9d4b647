"""Any OpenAI-compatible chat endpoint (OpenAI, Azure, vLLM, Ollama, llama.cpp server...).

Retries are ours (`retry.py`), so the `openai` client is built with `max_retries=0`; content-filter
refusals (HTTP 400) become data, not errors. Every request goes through one `GuardedSession`
(`http_client.py`): no redirect is followed, no body over `max_response_bytes` is read, and the
whole request, retries included, ends by its `deadline`. `direct=False` posts chat completions
through `AsyncOpenAI.post()` instead, without those guards; it exists so that
benchmarks/throughput.py can show what the direct path saves.

With `batch = true` the request bodies go to a `BatchQueue` instead, which sends them through the
OpenAI Batch API; everything else (n handling, parsing, errors) is the same code.

The API key is read from the environment once, handed to the HTTP clients, and kept nowhere else:
not on this object, not in messages or exceptions (server messages are redacted, since some echo
the key).
"""

from __future__ import annotations

import asyncio
import importlib
import os
import random
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import openai
import orjson

from ..errors import InputError
from .base import ChatResult, Message, SamplingParams
from .batch_queue import BatchQueue
from .cache import RequestCache
from .errors import redact
from .exchange import Guard
from .http_client import GuardedSession, RedirectRefused
from .limits import EndpointLimiter, estimate_tokens
from .retry import Deadline, Retryable, retrying
from .spec import ModelSpec
from .wire import (
    HTTPFailure,
    MalformedResponse,
    filtered,
    is_content_filter,
    merge_results,
    parse_completion,
    with_n,
)


def _sdk_http_module() -> Any:
    """The HTTP library this `openai` release is built on: httpx2 (openai >= 3) or httpx (older).
    Same API; we need its `Limits` and `Response` classes, and they must be the SDK's own."""
    for cls in openai.DefaultAsyncHttpxClient.__mro__:
        if cls.__name__ == "AsyncClient":
            return importlib.import_module(cls.__module__.split(".")[0])
    return importlib.import_module("httpx")  # pragma: no cover


httpx = _sdk_http_module()
DEFAULT_BASE_URL = "https://api.openai.com/v1"


def checked_base_url(spec: ModelSpec) -> str:
    """The endpoint's URL, or InputError (exit 2) when it cannot be one: retrying a URL without a
    scheme or host as a connection error would only waste the retries."""
    if spec.base_url:
        url, source = spec.base_url, f"models.{spec.name}.base_url"
    elif os.environ.get("OPENAI_BASE_URL"):
        url, source = os.environ["OPENAI_BASE_URL"], "OPENAI_BASE_URL"
    else:
        return DEFAULT_BASE_URL
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError as exc:
        raise InputError(f"{url!r} is not a URL ({exc})", field=source) from None
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise InputError(f"{url!r} is not an http(s) URL with a host, e.g. "
                         "https://api.openai.com/v1 or http://127.0.0.1:8000/v1", field=source)
    return url


class OpenAIBackend:
    """A `ChatModel` over an OpenAI-compatible server, with the endpoint's limits and counted
    retries."""

    def __init__(self, spec: ModelSpec, *, limiter: EndpointLimiter | None = None,
                 rng: random.Random | None = None, direct: bool = True) -> None:
        self.spec = spec
        self.name = spec.name
        self.model = spec.model
        self.supports_logprobs = spec.supports_logprobs
        self.limiter = limiter or EndpointLimiter.for_spec(spec)
        self._rng = rng or random.Random()
        self._n_ignored = False  # set when the server answered n>1 with fewer choices
        self.base_url = checked_base_url(spec)
        if spec.api_key_env:
            if not os.environ.get(spec.api_key_env):
                raise InputError(f"environment variable {spec.api_key_env} is not set "
                                 f"(needed by model '{spec.name}')",
                                 field=f"models.{spec.name}.api_key_env")
        # Keyless local servers (vLLM, Ollama) accept any token; "EMPTY" is their convention.
        api_key = os.environ[spec.api_key_env] if spec.api_key_env else "EMPTY"
        # One keep-alive connection per concurrency slot, so connections are reused, not churned.
        http_client = openai.DefaultAioHttpClient(
            limits=httpx.Limits(max_connections=spec.max_concurrency + 8,
                                max_keepalive_connections=spec.max_concurrency),
            timeout=spec.timeout, follow_redirects=False)
        self._client = openai.AsyncOpenAI(
            api_key=api_key, base_url=self.base_url, max_retries=0, timeout=spec.timeout,
            http_client=http_client)
        headers = {k: v for k, v in self._client.default_headers.items() if isinstance(v, str)}
        headers["Authorization"] = f"Bearer {api_key}"
        self._http = GuardedSession(str(self._client.base_url), headers,
                                    max_connections=spec.max_concurrency + 8,
                                    max_bytes=spec.max_response_bytes)
        self._guard = Guard(where=self._where, name=self.name, key_env=spec.api_key_env,
                            timeout=spec.timeout, deadline=spec.deadline, redact=self._redact)
        self._direct = direct
        self._batch: BatchQueue | None = None
        if spec.batch:
            self._batch = BatchQueue(self._http, spec, self._guard, direct=self._request_direct,
                                     rng=self._rng)

    def __repr__(self) -> str:
        return f"OpenAIBackend({self.name!r}, model={self.model!r}, base_url={self.base_url!r})"

    @property
    def _where(self) -> str:
        return f"endpoint '{self.name}' ({self.base_url})"

    @property
    def batch(self) -> BatchQueue | None:
        """The Batch API queue of a `batch = true` model (its progress hook, its counters)."""
        return self._batch

    def attach_cache(self, cache: RequestCache | None) -> None:
        """Record batches in the run's cache, so a resumed run polls them instead of paying again."""
        if self._batch is not None and cache is not None:
            self._batch.attach_cache(cache)

    async def release_connections(self) -> None:
        """Close the HTTP connections of the running event loop; the backend stays usable."""
        await self._http.aclose()

    async def aclose(self) -> None:
        if self._batch is not None:
            await self._batch.aclose()
        await self._http.aclose()
        await self._client.close()

    async def list_models(self) -> list[str]:
        """Model ids the server offers (GET /models); used by `evorefuse models check`."""
        async def attempt(clock: Deadline, _retries: int) -> list[str]:
            answer = self._guard.ok(await self._guard.exchange(
                clock, self._http.request("GET", "/models")))
            try:
                return [str(m["id"]) for m in orjson.loads(answer.body)["data"]]
            except (orjson.JSONDecodeError, KeyError, TypeError) as err:
                raise Retryable(f"malformed model list ({type(err).__name__})") from None
        return await retrying(attempt, deadline=self.spec.deadline, max_retries=1,
                              where=self._where, name=self.name, rng=self._rng)

    async def probe(self, messages: Sequence[Message], params: SamplingParams) -> ChatResult:
        """One request sent directly, even on a batched model, and on a batched model a check
        that its Batch API answers: what `models check` needs in seconds, not a batch's hours."""
        if self._batch is not None:
            await self._batch.api.reachable()
        return await self._request_direct(self._body(messages, params, params.n, params.seed))

    async def complete(self, messages: Sequence[Message], params: SamplingParams,
                       sample_offset: int = 0) -> ChatResult:
        n = params.n
        seed = None if params.seed is None else params.seed + sample_offset
        if n == 1 or (self.spec.supports_n and not self._n_ignored):
            result = await self._request(messages, params, n, seed)
            if len(result.choices) >= n:
                del result.choices[n:]
                return result
            # The server ignored n (some do, silently): fetch the rest one by one from now on.
            self._n_ignored = True
            got = len(result.choices)
            rest = await self.complete(messages, with_n(params, n - got), sample_offset + got)
            return merge_results([result, rest])
        return merge_results(await self._gather(
            self._request(messages, params, 1, None if seed is None else seed + i)
            for i in range(n)))

    @staticmethod
    async def _gather(coros: Any) -> list[ChatResult]:
        """Run concurrently; if one fails, cancel the others instead of leaving them running."""
        tasks = [asyncio.ensure_future(c) for c in coros]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    def _body(self, messages: Sequence[Message], params: SamplingParams, n: int,
              seed: int | None) -> dict[str, Any]:
        kw: dict[str, Any] = {
            **(self.spec.extra_body or {}),
            "model": self.model, "messages": list(messages), "temperature": params.temperature,
            "top_p": params.top_p, "max_tokens": params.max_tokens,
        }
        if n != 1:
            kw["n"] = n
        if seed is not None:
            kw["seed"] = seed
        if params.logprobs and self.supports_logprobs:
            kw["logprobs"] = True
            if params.top_logprobs:
                kw["top_logprobs"] = params.top_logprobs
        return kw

    async def _request(self, messages: Sequence[Message], params: SamplingParams, n: int,
                       seed: int | None) -> ChatResult:
        body = self._body(messages, params, n, seed)
        if self._batch is not None:
            return await self._batch.request(body, n)
        return await self._request_direct(body)

    async def _request_direct(self, body: dict[str, Any]) -> ChatResult:
        """One logical request: attempts under the limiter, retried as `retry.py` says."""
        messages = body["messages"]
        n = int(body.get("n", 1))
        est = estimate_tokens(sum(len(m.get("content") or "") for m in messages),
                              int(body["max_tokens"]), n)
        payload = orjson.dumps(body)
        limiter = self.limiter

        async def attempt(clock: Deadline, retries: int) -> ChatResult:
            await limiter.acquire(est)
            used: int | None = None
            try:
                status, headers, content = await self._guard.exchange(clock,
                                                                      self._post(body, payload))
                if status < 300:
                    try:
                        result = parse_completion(orjson.loads(content), messages)
                    except (orjson.JSONDecodeError, MalformedResponse) as err:
                        raise Retryable(f"malformed response ({type(err).__name__})") from None
                    used = result.usage.prompt_tokens + result.usage.completion_tokens
                    result.retries = retries
                    return result
                failure = HTTPFailure.of(status, headers, content)
                if status == 400 and is_content_filter(failure):
                    used = 0
                    result = filtered(n)
                    result.retries = retries
                    return result
                raise self._guard.failure(failure)
            finally:
                limiter.release(est, used)

        return await retrying(attempt, deadline=self.spec.deadline,
                              max_retries=self.spec.max_retries, where=self._where,
                              name=self.name, rng=self._rng, on_retry_after=limiter.pause)

    async def _post(self, body: dict[str, Any], payload: bytes) -> tuple[int, Mapping[str, str],
                                                                         bytes]:
        """Status, headers and body of one attempt, by the guarded path or through the SDK."""
        if self._direct:
            answer = await self._http.post_json(payload)
            return answer.status, answer.headers, answer.body
        try:
            raw = await self._client.post("/chat/completions", cast_to=httpx.Response, body=body)
        except openai.APIStatusError as err:
            if 300 <= err.status_code < 400:
                raise RedirectRefused(err.status_code,
                                      err.response.headers.get("location", "")) from None
            return err.status_code, err.response.headers, err.response.content
        return raw.status_code, raw.headers, raw.content

    def _redact(self, text: str) -> str:
        env = self.spec.api_key_env
        return redact(text, os.environ.get(env) if env else None)
