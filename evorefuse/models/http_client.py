"""One aiohttp session per endpoint that a hostile or misconfigured server cannot push around.

Why not `AsyncOpenAI.post()` for chat completions: profiled at 32 concurrent requests
(benchmarks/throughput.py), the SDK's request building (options, header merging, URL parsing) and
its httpx-over-aiohttp adapter cost about two thirds of the client's CPU per call, and on a client
that completes a whole wave of requests in the same instant that CPU is what separates the
throughput from concurrency / latency. This session sends the same requests the SDK sends (same
URLs, bearer token, JSON bodies, multipart upload for files) on the aiohttp connection pool the SDK
itself recommends for concurrency, and hands back status, headers and body; retries, error mapping
and parsing stay in the backends.

What it refuses, whoever sent the request (chat, model list, every Batch API call):
- redirects: a 3xx is never followed (aiohttp would turn a POST into a GET against whatever the
  Location names); it raises `RedirectRefused` with the Location, a configuration problem;
- bodies over `max_bytes`: a declared Content-Length over the cap is refused before reading, any
  other body is counted while it streams (after decompression, so a gzip bomb is caught too) and
  dropped the moment it passes the cap; a 50 MB answer never sits in memory;
- file downloads are read line by line with the cap applied to each line, so a batch output file
  of any size is processed in constant memory.
Time limits are the caller's (`asyncio.timeout` around each call), so one deadline can span
retries.

The headers are the SDK client's own (organization, project, platform) plus the bearer token; the
API key lives only there, in memory.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import aiohttp

# Connection failures, resets and truncated bodies: retried by the backends as connection errors.
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientError,)


class RedirectRefused(Exception):
    """The server answered 3xx; `location` is where it wanted us to go."""

    def __init__(self, status: int, location: str) -> None:
        super().__init__(f"HTTP {status} redirect to {location or '(no Location header)'}")
        self.status = status
        self.location = location


class ResponseTooLarge(Exception):
    """A body (or one line of a file) passed the size cap while it was being read."""

    def __init__(self, limit: int, what: str = "response") -> None:
        super().__init__(f"{what} larger than {limit:,} bytes")
        self.limit = limit
        self.what = what


@dataclass
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes


def _proxy_configured() -> bool:
    return any(k.lower().endswith("_proxy") and v for k, v in os.environ.items())


async def _read_capped(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body, or ResponseTooLarge as soon as it passes `limit`."""
    length = resp.content_length
    if length is not None and length > limit:
        raise ResponseTooLarge(limit)
    if length is not None and not resp.headers.get("Content-Encoding"):
        return await resp.read()  # exactly Content-Length bytes: already within the cap
    parts = bytearray()
    async for chunk in resp.content.iter_any():
        parts += chunk
        if len(parts) > limit:
            raise ResponseTooLarge(limit)
    return bytes(parts)


class GuardedSession:
    def __init__(self, base_url: str, headers: Mapping[str, str], *, max_connections: int,
                 max_bytes: int) -> None:
        self.base_url = base_url.rstrip("/")
        self.chat_url = self.base_url + "/chat/completions"
        self.max_bytes = max_bytes
        self._headers = dict(headers)
        self._form_headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        self._max_connections = max_connections
        # One session per event loop (aiohttp binds a session to the loop it was made in): the
        # run's loop, and the short loops of synchronous callers (a judging detector called from
        # a worker thread) at the same time, without one replacing and orphaning the other's.
        self._sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.ClientSession] = (
            weakref.WeakKeyDictionary())
        # The loop used last and its session, as one tuple: read and replaced atomically, so a
        # thread never pairs one loop with another loop's session (the hot path's shortcut).
        self._last: tuple[asyncio.AbstractEventLoop, aiohttp.ClientSession] | None = None

    def _open(self) -> aiohttp.ClientSession:
        """The running loop's session, created on first use inside that loop as aiohttp requires."""
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections, ttl_dns_cache=300),
                timeout=aiohttp.ClientTimeout(total=None), auto_decompress=True,
                # HTTP(S)_PROXY / NO_PROXY are honoured as by the SDK's client; without any set,
                # the per-request lookup (environment and ~/.netrc) would triple the CPU per call.
                trust_env=_proxy_configured())
            self._sessions[loop] = session
        self._last = (loop, session)
        return session

    def url(self, path: str) -> str:
        return self.base_url + path

    async def post_json(self, body: bytes) -> Answer:
        """POST /chat/completions: the hot path, one call per request attempt."""
        last = self._last
        session = last[1] if last is not None and last[0] is asyncio.get_running_loop() else (
            self._open())
        async with session.post(self.chat_url, data=body, headers=self._headers,
                                allow_redirects=False) as resp:
            return await self._answer(resp)

    async def request(self, method: str, path: str, *, body: bytes | None = None,
                      form: aiohttp.FormData | None = None,
                      params: Mapping[str, str] | None = None) -> Answer:
        """Any other call (GET /models, the Files and Batches endpoints)."""
        headers = self._form_headers if form is not None or body is None else self._headers
        async with self._open().request(method, self.url(path), data=form if form is not None
                                        else body, params=params, headers=headers,
                                        allow_redirects=False) as resp:
            return await self._answer(resp)

    async def lines(self, path: str, on_line: Callable[[bytes], None], *,
                    max_lines: int) -> Answer:
        """GET a JSONL file and hand each non-empty line to `on_line` as it arrives; a line over
        the cap, or more than `max_lines` lines, raises ResponseTooLarge. On a non-2xx status the
        (capped) error body comes back in the Answer and no line is handed over."""
        async with self._open().get(self.url(path), headers=self._form_headers,
                                    allow_redirects=False) as resp:
            if resp.status >= 300:
                return await self._answer(resp)
            buf = bytearray()
            count = 0
            async for chunk in resp.content.iter_any():
                buf += chunk
                start = 0
                while (end := buf.find(b"\n", start)) >= 0:
                    if end > start:
                        count += 1
                        if count > max_lines:
                            raise ResponseTooLarge(max_lines, "file with more lines than")
                        on_line(bytes(buf[start:end]))
                    start = end + 1
                del buf[:start]
                if len(buf) > self.max_bytes:
                    raise ResponseTooLarge(self.max_bytes, "file line")
            if buf.strip():
                count += 1
                if count > max_lines:
                    raise ResponseTooLarge(max_lines, "file with more lines than")
                on_line(bytes(buf))
            return Answer(resp.status, resp.headers, b"")

    async def _answer(self, resp: aiohttp.ClientResponse) -> Answer:
        if 300 <= resp.status < 400:
            raise RedirectRefused(resp.status, resp.headers.get("Location", ""))
        return Answer(resp.status, resp.headers, await _read_capped(resp, self.max_bytes))

    async def aclose(self) -> None:
        """Close the running loop's connections; the client stays usable (a later call, under this
        loop or another, opens a new session). Call it before a loop ends: a session left open when
        its loop closes can no longer close its sockets."""
        loop = asyncio.get_running_loop()
        session = self._sessions.pop(loop, None)
        last = self._last
        if last is not None and last[0] is loop:
            self._last = None
        if session is not None:
            await session.close()


def form_upload(purpose: str, filename: str, content: bytes) -> aiohttp.FormData:
    """multipart/form-data as `POST /files` takes it (the SDK's `files.create`)."""
    form = aiohttp.FormData()
    form.add_field("purpose", purpose)
    form.add_field("file", content, filename=filename, content_type="application/jsonl")
    return form

