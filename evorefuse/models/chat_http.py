"""POST /chat/completions straight over one aiohttp session: the backend's hot path.

Why not `AsyncOpenAI.post()` for every request: profiled at 32 concurrent requests
(benchmarks/throughput.py), the SDK's request building (options, header merging, URL parsing) and
its httpx-over-aiohttp adapter cost about two thirds of the client's CPU per call, and on a client
that completes a whole wave of requests in the same instant that CPU is what separates the
throughput from concurrency / latency. This class sends the same request the SDK sends (same URL,
bearer token, JSON body) on the aiohttp connection pool the SDK itself recommends for
concurrency, and hands back status, headers and body; retries, error mapping and parsing stay in
`OpenAIBackend`, identical for both paths. The SDK client remains the fallback when aiohttp is
absent, and serves everything but chat completions (`models list`).

The headers are the SDK client's own (organization, project, platform) plus the bearer token; the
API key lives only there, in memory.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, Mapping

import aiohttp
import orjson

# Connection failures, resets and truncated bodies: retried by the backend as connection errors.
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientError,)


def _proxy_configured() -> bool:
    return any(k.lower().endswith("_proxy") and v for k, v in os.environ.items())


class DirectChat:
    def __init__(self, base_url: str, headers: Mapping[str, str], *, max_connections: int) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self._headers = dict(headers)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _open(self) -> aiohttp.ClientSession:
        # Created on first use, inside the running event loop, as aiohttp requires; a backend
        # used again under another loop (a second asyncio.run) gets a session of its own.
        self._loop = asyncio.get_running_loop()
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._max_connections, ttl_dns_cache=300),
            timeout=aiohttp.ClientTimeout(total=None), auto_decompress=True,
            # HTTP(S)_PROXY / NO_PROXY are honoured as by the SDK's client; without any set, the
            # per-request lookup (environment and ~/.netrc) would triple the CPU per call.
            trust_env=_proxy_configured())
        return self._session

    async def post(self, body: Mapping[str, Any]) -> tuple[int, Mapping[str, str], bytes]:
        session = self._session
        if session is None or self._loop is not asyncio.get_running_loop():
            session = self._open()
        async with session.post(self.url, data=orjson.dumps(body), headers=self._headers) as resp:
            return resp.status, resp.headers, await resp.read()

    async def aclose(self) -> None:
        if self._session is not None and self._loop is asyncio.get_running_loop():
            await self._session.close()
        self._session = None
