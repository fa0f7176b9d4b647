"""Any OpenAI-compatible chat endpoint (OpenAI, Azure, vLLM, Ollama, llama.cpp server...).

Why retries are done here and not by the `openai` package: each retry must be counted (the ledger
reports them, `ChatResult.retries`), the backoff must honour `Retry-After` across all concurrent
requests of the endpoint (the limiter pauses), and content-filter refusals (HTTP 400) must become
data, not errors. So the client is built with `max_retries=0`.

Chat completions are posted by `chat_http.DirectChat` over the SDK's recommended aiohttp transport,
without the SDK's per-request machinery, which cost about two thirds of the client's CPU per call
(profiled: benchmarks/throughput.py); `direct=False`, or a missing aiohttp, posts through the
`AsyncOpenAI` client's public `post()` instead. Either way the answer arrives here as status,
headers and body, so retries, errors and parsing are the same code. The JSON body is parsed with
orjson and validated here, so malformed bodies are retried.

The API key is read from the environment once, handed to the HTTP clients, and kept nowhere else:
not on this object, not in messages or exceptions (server messages are redacted, since some echo
the key).
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import os
import random
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Mapping, Sequence

import openai
import orjson

from ..errors import InputError
from .base import ChatResult, Choice, Message, SamplingParams, TokenLogprob, Usage
from .errors import (EndpointAuthError, EndpointRequestError, EndpointUnavailable, one_line,
                     redact)
from .limits import EndpointLimiter, estimate_tokens
from .spec import ModelSpec

def _sdk_http_module() -> Any:
    """The HTTP library this `openai` release is built on: httpx2 (openai >= 3) or httpx (older).
    Same API; we need its `Limits` and `Response` classes, and they must be the SDK's own."""
    for cls in openai.DefaultAsyncHttpxClient.__mro__:
        if cls.__name__ == "AsyncClient":
            return importlib.import_module(cls.__module__.split(".")[0])
    return importlib.import_module("httpx")  # pragma: no cover


httpx = _sdk_http_module()
_HAS_AIOHTTP = importlib.util.find_spec("aiohttp") is not None and hasattr(openai, "DefaultAioHttpClient")
if _HAS_AIOHTTP:
    from .chat_http import TRANSPORT_ERRORS, DirectChat
else:  # pragma: no cover - aiohttp comes with the openai[aiohttp] dependency
    TRANSPORT_ERRORS: tuple[type[BaseException], ...] = ()

BACKOFF_BASE = 0.5      # seconds; full jitter: uniform(0, min(cap, base * 2**attempt))
BACKOFF_CAP = 30.0
RETRY_AFTER_MAX = 600.0  # a server asking for more than 10 minutes is treated as asking for 10
RETRYABLE_STATUS = frozenset({408, 409, 429})
DEFAULT_BASE_URL = "https://api.openai.com/v1"


class MalformedResponse(Exception):
    """The body parsed but is not a chat completion (no choices, no message...)."""


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
        import datetime as _dt
        now = _dt.datetime.now(when.tzinfo or _dt.timezone.utc)
        seconds = (when - now).total_seconds()
    return min(RETRY_AFTER_MAX, max(0.0, seconds))


def backoff_delay(attempt: int, retry_after: float | None, rng: random.Random) -> float:
    """Full-jitter exponential backoff, but never shorter than what the server asked for."""
    delay = rng.uniform(0.0, min(BACKOFF_CAP, BACKOFF_BASE * (2 ** attempt)))
    if retry_after is not None and retry_after > delay:
        delay = retry_after
    return delay


@dataclass
class HTTPFailure:
    """A non-2xx answer, whichever path sent the request."""
    status: int
    headers: Mapping[str, str]
    body: Any  # the decoded JSON error body, or its text

    @classmethod
    def of(cls, status: int, headers: Mapping[str, str], content: bytes) -> "HTTPFailure":
        try:
            body: Any = orjson.loads(content)
        except orjson.JSONDecodeError:
            body = content.decode("utf-8", "replace")
        return cls(status, headers, body)


def is_content_filter(failure: HTTPFailure) -> bool:
    """OpenAI: error.code == "content_filter"; Azure: the same, or details in error.innererror."""
    body = failure.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    parts: list[str] = []
    if isinstance(body, dict):
        for key in ("code", "type", "innererror", "message"):
            if body.get(key) is not None:
                parts.append(json.dumps(body[key]) if not isinstance(body[key], str) else body[key])
    else:
        parts.append(str(body))
    text = " ".join(parts).lower()
    return any(s in text for s in ("content_filter", "content filter", "content_policy",
                                   "responsibleaipolicyviolation", "content management policy"))


def _server_message(failure: HTTPFailure) -> str:
    body = failure.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    return str(body or f"HTTP {failure.status}")


class OpenAIBackend:
    """A `ChatModel` over `openai.AsyncOpenAI`, with the endpoint's limits and counted retries."""

    def __init__(self, spec: ModelSpec, *, limiter: EndpointLimiter | None = None,
                 rng: random.Random | None = None, direct: bool = True) -> None:
        self.spec = spec
        self.name = spec.name
        self.model = spec.model
        self.supports_logprobs = spec.supports_logprobs
        self.limiter = limiter or EndpointLimiter.for_spec(spec)
        self._rng = rng or random.Random()
        self._n_ignored = False  # set when the server answered n>1 with fewer choices
        base_url = spec.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        self.base_url = base_url
        if spec.api_key_env:
            if not os.environ.get(spec.api_key_env):
                raise InputError(f"environment variable {spec.api_key_env} is not set "
                                 f"(needed by model '{spec.name}')",
                                 field=f"models.{spec.name}.api_key_env")
        # One keep-alive connection per concurrency slot, so connections are reused, not churned.
        # The SDK's aiohttp transport (the `openai[aiohttp]` extra, which the SDK recommends for
        # concurrency) costs less CPU per request than its default; fall back when it is absent.
        client_cls = openai.DefaultAsyncHttpxClient
        if _HAS_AIOHTTP:
            client_cls = openai.DefaultAioHttpClient
        http_client = client_cls(
            limits=httpx.Limits(max_connections=spec.max_concurrency + 8,
                                max_keepalive_connections=spec.max_concurrency),
            timeout=spec.timeout,
        )
        # Keyless local servers (vLLM, Ollama) accept any token; "EMPTY" is their convention.
        api_key = os.environ[spec.api_key_env] if spec.api_key_env else "EMPTY"
        self._client = openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, max_retries=0, timeout=spec.timeout,
            http_client=http_client,
        )
        self._direct: DirectChat | None = None
        if direct and _HAS_AIOHTTP:
            headers = {k: v for k, v in self._client.default_headers.items() if isinstance(v, str)}
            headers["Authorization"] = f"Bearer {api_key}"
            self._direct = DirectChat(str(self._client.base_url), headers,
                                      max_connections=spec.max_concurrency + 8)

    def __repr__(self) -> str:
        return f"OpenAIBackend({self.name!r}, model={self.model!r}, base_url={self.base_url!r})"

    @property
    def _where(self) -> str:
        return f"endpoint '{self.name}' ({self.base_url})"

    async def aclose(self) -> None:
        if self._direct is not None:
            await self._direct.aclose()
        await self._client.close()

    async def list_models(self) -> list[str]:
        """Model ids the server offers (GET /models); used by `evorefuse models check`."""
        try:
            async with asyncio.timeout(self.spec.timeout):
                page = await self._client.models.list()
        except openai.APIStatusError as err:
            raise self._status_error(HTTPFailure.of(err.status_code, err.response.headers,
                                                    err.response.content)) from None
        except (openai.APIConnectionError, TimeoutError) as err:
            raise EndpointUnavailable(f"{self._where} is unreachable ({type(err).__name__})",
                                      endpoint=self.name) from None
        return [m.id for m in page.data]

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
            rest = await self.complete(messages, _with_n(params, n - got), sample_offset + got)
            return _merge([result, rest])
        return _merge(await self._gather(
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

    def _kwargs(self, messages: Sequence[Message], params: SamplingParams, n: int,
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

    async def _post(self, body: dict[str, Any]) -> tuple[int, Mapping[str, str], bytes]:
        """Status, headers and body of one attempt, by the direct path or through the SDK."""
        if self._direct is not None:
            return await self._direct.post(body)
        try:
            raw = await self._client.post("/chat/completions", cast_to=httpx.Response, body=body)
        except openai.APIStatusError as err:
            return err.status_code, err.response.headers, err.response.content
        return raw.status_code, raw.headers, raw.content

    async def _request(self, messages: Sequence[Message], params: SamplingParams, n: int,
                       seed: int | None) -> ChatResult:
        """One logical request: attempts under the limiter, retried as the module doc says."""
        kwargs = self._kwargs(messages, params, n, seed)
        prompt_chars = sum(len(m.get("content") or "") for m in messages)
        est = estimate_tokens(prompt_chars, params.max_tokens, n)
        limiter = self.limiter
        timeout = self.spec.timeout
        retries = 0
        while True:
            retry_after: float | None = None
            await limiter.acquire(est)
            used: int | None = None
            try:
                async with asyncio.timeout(timeout):
                    status, headers, content = await self._post(kwargs)
                if status < 300:
                    result = self._parse(orjson.loads(content), prompt_chars)
                    used = result.usage.prompt_tokens + result.usage.completion_tokens
                    result.retries = retries
                    return result
                failure = HTTPFailure.of(status, headers, content)
                if status == 400 and is_content_filter(failure):
                    used = 0
                    return ChatResult(
                        choices=[Choice(text="", finish_reason="content_filter") for _ in range(n)],
                        usage=Usage(0, 0), retries=retries)
                if status not in RETRYABLE_STATUS and status < 500:
                    raise self._status_error(failure) from None
                reason = f"HTTP {status}: {one_line(self._redact(_server_message(failure)), 120)}"
                retry_after = retry_after_seconds(headers)
            except (openai.APITimeoutError, TimeoutError) as err:
                reason = _timeout_or_refused(err, timeout)
            except (openai.APIConnectionError, *TRANSPORT_ERRORS) as err:
                cause = err.__cause__ if isinstance(err, openai.APIConnectionError) else err
                reason = "connection error" + (f" ({type(cause).__name__}: {one_line(str(cause), 120)})"
                                               if cause is not None else "")
            except (orjson.JSONDecodeError, MalformedResponse) as err:
                reason = f"malformed response ({type(err).__name__})"
            finally:
                limiter.release(est, used)
            if retries >= self.spec.max_retries:
                raise EndpointUnavailable(
                    f"{self._where} failed after {retries} retries: {reason}",
                    endpoint=self.name) from None
            if retry_after:
                limiter.pause(retry_after)
            delay = backoff_delay(retries, retry_after, self._rng)
            retries += 1
            await asyncio.sleep(delay)

    def _redact(self, text: str) -> str:
        env = self.spec.api_key_env
        return redact(text, os.environ.get(env) if env else None)

    def _status_error(self, failure: HTTPFailure) -> Exception:
        status = failure.status
        msg = one_line(self._redact(_server_message(failure)), 200)
        if status in (401, 403):
            env = self.spec.api_key_env or "(none configured)"
            return EndpointAuthError(
                f"{self._where} refused the API key (HTTP {status}: {msg}); check the environment "
                f"variable {env}", endpoint=self.name, status=status)
        return EndpointRequestError(f"{self._where} rejected the request (HTTP {status}): {msg}",
                                    endpoint=self.name, status=status)

    def _parse(self, data: Any, prompt_chars: int) -> ChatResult:
        """Turn the decoded JSON body into our dataclasses; anything not shaped like a chat
        completion raises MalformedResponse (and is retried like a broken body)."""
        if not isinstance(data, dict):
            raise MalformedResponse("body is not a JSON object")
        raw = data.get("choices")
        if not isinstance(raw, list) or not raw:
            raise MalformedResponse("no choices")
        choices: list[Choice] = []
        try:
            if len(raw) > 1:
                raw = sorted(raw, key=lambda c: c.get("index") or 0)
            for c in raw:
                msg = c["message"]
                text = msg.get("content")
                if not isinstance(text, str):
                    text = msg.get("refusal") or ""  # OpenAI's structured refusal field
                choices.append(Choice(text=text, finish_reason=str(c.get("finish_reason") or "stop"),
                                      logprobs=_parse_logprobs(c.get("logprobs"))))
        except (KeyError, TypeError, AttributeError, ValueError) as err:
            raise MalformedResponse(f"bad choice: {type(err).__name__}") from None
        usage = data.get("usage")
        p_tok = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        c_tok = usage.get("completion_tokens") if isinstance(usage, dict) else None
        if not isinstance(p_tok, int) or not isinstance(c_tok, int):
            p_tok = prompt_chars // 4
            c_tok = None
        _assign_completion_tokens(choices, c_tok)
        if c_tok is None:
            c_tok = sum(ch.completion_tokens for ch in choices)
        return ChatResult(choices=choices, usage=Usage(p_tok, c_tok))


def _timeout_or_refused(err: BaseException, timeout: float) -> str:
    """The aiohttp transport reports a refused connection as a ConnectTimeout raised at once;
    say what happened, not "timed out"."""
    cause = err.__cause__
    text = str(cause) if cause is not None else ""
    if "Cannot connect" in text or "Connect call failed" in text:
        return f"connection error ({type(cause).__name__}: {one_line(text, 120)})"
    return f"timed out after {timeout:g}s"


def _parse_logprobs(lp: Any) -> list[TokenLogprob] | None:
    """`choice.logprobs.content[*].token/.logprob/.top_logprobs` -> TokenLogprob list."""
    content = lp.get("content") if isinstance(lp, dict) else None
    if not isinstance(content, list):
        return None
    return [TokenLogprob(str(t["token"]), float(t["logprob"]),
                         [(str(a["token"]), float(a["logprob"])) for a in t.get("top_logprobs") or ()])
            for t in content]


def _assign_completion_tokens(choices: list[Choice], total: int | None) -> None:
    """Per-choice token counts: exact from logprobs, else the usage total split by text length
    (so the parts add up to what the provider bills), else a chars/4 estimate."""
    if all(ch.logprobs is not None for ch in choices):
        for ch in choices:
            ch.completion_tokens = len(ch.logprobs or ())
        return
    if total is None:
        for ch in choices:
            ch.completion_tokens = (len(ch.text) + 3) // 4
        return
    if len(choices) == 1:
        choices[0].completion_tokens = total
        return
    lengths = [len(ch.text) for ch in choices]
    whole = sum(lengths)
    given = 0
    for ch, length in zip(choices, lengths):
        share = total * length // whole if whole else total // len(choices)
        ch.completion_tokens = share
        given += share
    choices[-1].completion_tokens += total - given


def _with_n(params: SamplingParams, n: int) -> SamplingParams:
    from dataclasses import replace
    return replace(params, n=n)


def _merge(results: Sequence[ChatResult]) -> ChatResult:
    merged = ChatResult(choices=[], usage=Usage())
    for r in results:
        merged.choices.extend(r.choices)
        merged.usage += r.usage
        merged.retries += r.retries
        merged.cache_hits += r.cache_hits
    return merged
