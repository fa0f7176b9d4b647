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

The API key lives only in this object's headers, in memory.
"""

from __future__ import annotations

from typing import Any, Mapping

import asyncio

import aiohttp
import orjson

from evorefuse import __version__

# Connection failures, resets and truncated bodies: retried by the backend as connection errors.
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientError,)


class DirectChat:
    def __init__(self, base_url: str, api_key: str, *, max_connections: int) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self._headers = {"Authorization": f"Bearer {api_key}",
                         "Content-Type": "application/json", "Accept": "application/json",
                         "User-Agent": f"evorefuse/{__version__}"}
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _open(self) -> aiohttp.ClientSession:
        # Created on first use, inside the running event loop, as aiohttp requires; a backend
        # used again under another loop (a second asyncio.run) gets a session of its own.
        self._loop = asyncio.get_running_loop()
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._max_connections, ttl_dns_cache=300),
            timeout=aiohttp.ClientTimeout(total=None), auto_decompress=True)
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
