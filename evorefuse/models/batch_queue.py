"""Every request of a `batch = true` model, sent through the OpenAI Batch API at the batch rate.

Why a queue under the backend and not batching in the engine: `evaluate` asks for a whole dataset
at once and `evolve` asks for one step of every lineage at about the same moment, so collecting
whatever is asked within a short quiet gap (at most a second; the whole wait is bounded at ten)
turns both into a few large batches without either knowing. Each caller awaits its own future,
resolved by `custom_id` from the batch's output and error files.

The life of a request (each step recorded in `BatchJournal` before the next is waited for):
queued -> uploaded in a JSONL input file -> in a created batch -> polled every
`batch_poll_interval` until the batch is completed, expired, cancelled or failed -> its line
downloaded. A line with a chat completion answers the caller at the batch rate; a content-filter
line is a refusal; a 4xx line is the caller's error; a 429/5xx line, an expired or cancelled
request (its line in the error file), a malformed line or none at all is retried, as a smaller
batch or directly (`batch_retry`), up to `max_retries` times, after which the caller gets an
error naming the batch. Lines that name requests we never sent are skipped and counted. A file
holds at most 50,000 requests and 190 MB (the provider's limits are 50,000 and 200 MB).

While a batch is in flight its request counts (completed / failed / total) show on a tqdm bar on
a terminal, and go to `on_progress` when one is set.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import random
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from openai.types import Batch
from tqdm import tqdm

from .base import ChatResult
from .batch_api import CHAT_URL, BatchAPI
from .batch_journal import UPLOADED, BatchFile, BatchJournal, Line, custom_id
from .cache import RequestCache
from .errors import EndpointRequestError, EndpointUnavailable
from .exchange import Guard
from .http_client import GuardedSession
from .retry import Retryable
from .spec import ModelSpec
from .wire import (
    HTTPFailure,
    MalformedResponse,
    filtered,
    is_content_filter,
    parse_completion,
)

log = logging.getLogger(__name__)

QUIET_MAX = 1.0             # seconds without a new request before a batch is sent
MAX_REQUESTS = 50_000       # per input file (the provider's limit)
MAX_FILE_BYTES = 190 << 20  # per input file (the provider's limit is 200 MB)
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
# A whole batch that failed for one of these is sent again; any other failure (a malformed input
# file, an unknown model) would fail again, so it is every caller's error.
RETRYABLE_BATCH_ERRORS = frozenset({"token_limit_exceeded", "rate_limit_exceeded",
                                    "server_error", "internal_error"})


@dataclass(frozen=True)
class BatchProgress:
    batch_id: str
    status: str
    completed: int
    failed: int
    total: int


@dataclass
class _Ask:
    """A request some caller awaits; callers asking for the same request share it."""
    body: dict[str, Any]
    n: int
    futures: list[asyncio.Future[ChatResult]]


Outcome = ChatResult | BaseException | None  # None: worth another attempt


class BatchQueue:
    def __init__(self, http: GuardedSession, spec: ModelSpec, guard: Guard, *,
                 direct: Callable[[dict[str, Any]], Awaitable[ChatResult]],
                 rng: random.Random) -> None:
        self.api = BatchAPI(http, spec, guard, rng)
        self.spec = spec
        self.guard = guard
        self.endpoint = http.base_url
        self._direct = direct
        self.journal = BatchJournal.in_memory(self.endpoint)
        self.on_progress: Callable[[BatchProgress], None] | None = None
        self.stats: collections.Counter[str] = collections.Counter()
        self._asks: dict[str, _Ask] = {}
        self._queued: list[str] = []
        self._flusher: asyncio.Task[None] | None = None
        self._followers: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def attach_cache(self, cache: RequestCache) -> None:
        self.journal = BatchJournal(cache, self.endpoint)

    # --- callers ---------------------------------------------------------------------------------
    async def request(self, body: dict[str, Any], n: int) -> ChatResult:
        cid = custom_id(self.endpoint, body)
        fut: asyncio.Future[ChatResult] = asyncio.get_running_loop().create_future()
        ask = self._asks.get(cid)
        if ask is not None:
            ask.futures.append(fut)
        else:
            self._asks[cid] = _Ask(body, n, [fut])
            self._route(cid)
        return await fut

    def _route(self, cid: str) -> None:
        """A downloaded line answers at once; a live batch is followed; else the request is sent."""
        line = self.journal.line(cid)
        if line is not None:
            outcome = self._outcome(self._asks[cid], line)
            if outcome is not None:
                self._resolve(cid, outcome)
                return
            self._retry(cid, _describe(line))
            return
        live = self.journal.live_file(cid)
        if live is not None:
            self._follow(live, resumed=True)
        else:
            self._enqueue(cid)

    # --- sending ---------------------------------------------------------------------------------
    def _enqueue(self, cid: str) -> None:
        self._queued.append(cid)
        if self._flusher is None:
            self._flusher = self._spawn(self._flush_soon())

    async def _flush_soon(self) -> None:
        loop = asyncio.get_running_loop()
        quiet = min(QUIET_MAX, self.spec.batch_poll_interval)
        started, seen = loop.time(), -1
        while len(self._queued) != seen and loop.time() - started < 10 * quiet:
            seen = len(self._queued)
            await asyncio.sleep(quiet)
        self._flusher = None
        queued, self._queued = self._queued, []
        for cids, content in self._files(queued):
            self._spawn(self._submit(cids, content))

    def _files(self, cids: list[str]) -> Iterator[tuple[list[str], bytes]]:
        """Input files within the provider's limits."""
        part: list[str] = []
        lines: list[bytes] = []
        size = 0
        for cid in cids:
            ask = self._asks.get(cid)
            if ask is None:
                continue
            line = orjson.dumps({"custom_id": cid, "method": "POST", "url": CHAT_URL,
                                 "body": ask.body}) + b"\n"
            if part and (len(part) >= MAX_REQUESTS or size + len(line) > MAX_FILE_BYTES):
                yield part, b"".join(lines)
                part, lines, size = [], [], 0
            part.append(cid)
            lines.append(line)
            size += len(line)
        if part:
            yield part, b"".join(lines)

    async def _submit(self, cids: list[str], content: bytes) -> None:
        try:
            file_id = await self.api.upload(content, f"evorefuse-{cids[0][4:16]}.jsonl")
            self.journal.uploaded(file_id, cids)
        except Exception as exc:
            for cid in cids:
                self._resolve(cid, exc)
            return
        self.stats["files"] += 1
        self._follow(BatchFile(file_id, None, UPLOADED), resumed=False)

    def _follow(self, bf: BatchFile, *, resumed: bool) -> None:
        if bf.input_file_id not in self._followers:
            self._followers[bf.input_file_id] = self._spawn(self._run(bf, resumed))

    # --- one batch from creation to its lines -----------------------------------------------------
    async def _run(self, bf: BatchFile, resumed: bool) -> None:
        file_id = bf.input_file_id
        cids = self.journal.custom_ids(file_id)
        try:
            batch = await self._created(bf, resumed)
            batch = await self._poll(batch, len(cids))
            if batch.status == "failed":
                self._failed(batch, cids)
                self.journal.done(file_id, {})
                return
            lines = await self._download(batch, cids)
            self.journal.done(file_id, lines)
        except Exception as exc:
            for cid in cids:
                self._resolve(cid, exc)
            return
        finally:
            self._followers.pop(file_id, None)
        missing = (f"batch {batch.id} ended {batch.status} without a usable line for it "
                   f"({self.stats['malformed_lines']} malformed and "
                   f"{self.stats['unknown_lines']} unknown lines seen so far)")
        for cid in cids:
            ask = self._asks.get(cid)
            if ask is None:
                continue  # nobody asks (yet): the line waits in the journal
            line = lines.get(cid)
            outcome = None if line is None else self._outcome(ask, line)
            if outcome is None:
                self._retry(cid, missing if line is None else _describe(line))
            else:
                self._resolve(cid, outcome)

    async def _created(self, bf: BatchFile, resumed: bool) -> Batch:
        """The batch of an uploaded file: known, found (a create lost to a kill), or created."""
        if bf.batch_id is not None:
            return await self.api.retrieve(bf.batch_id)
        batch = await self.api.find(bf.input_file_id) if resumed else None
        if batch is None:
            batch = await self.api.create(bf.input_file_id, {"created_by": "evorefuse"})
            self.stats["batches"] += 1
        self.journal.submitted(bf.input_file_id, batch.id)
        return batch

    async def _poll(self, batch: Batch, size: int) -> Batch:
        with tqdm(total=size, desc=f"batch {batch.id[:20]}", unit="request", leave=False,
                  disable=None) as bar:
            while True:
                self._progress(batch, bar)
                if batch.status in TERMINAL:
                    return batch
                await asyncio.sleep(self.spec.batch_poll_interval)
                batch = await self.api.retrieve(batch.id)

    def _progress(self, batch: Batch, bar: tqdm) -> None:
        counts = batch.request_counts
        done, failed, total = ((counts.completed, counts.failed, counts.total) if counts
                               else (0, 0, bar.total))
        bar.total = total or bar.total
        bar.n = done + failed
        bar.set_postfix_str(f"{batch.status}, {failed} failed", refresh=True)
        if self.on_progress is not None:
            self.on_progress(BatchProgress(batch.id, batch.status, done, failed, total))

    async def _download(self, batch: Batch, cids: list[str]) -> dict[str, Line]:
        wanted = set(cids)
        lines: dict[str, Line] = {}

        def keep(raw: bytes) -> None:
            try:
                obj = orjson.loads(raw)
                cid = obj["custom_id"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                self.stats["malformed_lines"] += 1
                return
            if cid not in wanted:
                self.stats["unknown_lines"] += 1
                log.warning("%s: batch %s returned a line for an unknown custom_id %.60r; "
                            "skipped", self.guard.where, batch.id, cid)
                return
            if cid in lines:
                return
            response, error = obj.get("response"), obj.get("error")
            if isinstance(response, dict) and isinstance(response.get("status_code"), int):
                lines[cid] = Line(response["status_code"], response.get("body"))
            elif isinstance(error, dict):
                lines[cid] = Line(0, error)
            else:
                self.stats["malformed_lines"] += 1

        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id:
                await self.api.download(file_id, keep, max_lines=2 * len(cids) + 16)
        return lines

    def _failed(self, batch: Batch, cids: list[str]) -> None:
        errors = (batch.errors.data if batch.errors is not None else None) or []
        first = errors[0] if errors else None
        code = (first.code if first is not None else None) or "unknown"
        text = (first.message if first is not None else None) or "no reason given"
        reason = f"batch {batch.id} failed ({code}: {self.guard.redact(text)})"
        for cid in cids:
            if cid not in self._asks:
                continue
            if code in RETRYABLE_BATCH_ERRORS:
                self._retry(cid, reason)
            else:
                self._resolve(cid, EndpointRequestError(f"{self.guard.where}: {reason}",
                                                        endpoint=self.guard.name))

    # --- answers ---------------------------------------------------------------------------------
    def _outcome(self, ask: _Ask, line: Line) -> Outcome:
        status = line.status
        if 200 <= status < 300:
            try:
                result = parse_completion(line.body, ask.body["messages"])
            except MalformedResponse:
                return None
            result.batch = True
            return result
        if status == 0:
            return None  # answered without a response: expired, cancelled
        failure = HTTPFailure(status, {}, line.body)
        if status == 400 and is_content_filter(failure):
            result = filtered(ask.n)
            result.batch = True
            return result
        error = self.guard.failure(failure)
        return None if isinstance(error, Retryable) else error

    def _retry(self, cid: str, reason: str) -> None:
        attempts = self.journal.attempts(cid)
        if attempts > self.spec.max_retries:
            self._resolve(cid, EndpointUnavailable(
                f"{self.guard.where}: a request failed in {attempts} batches: {reason}",
                endpoint=self.guard.name))
            return
        self.stats["retried"] += 1
        if self.spec.batch_retry == "direct":
            self._spawn(self._retry_direct(cid))
        else:
            self._enqueue(cid)

    async def _retry_direct(self, cid: str) -> None:
        ask = self._asks.get(cid)
        if ask is None:
            return
        try:
            result = await self._direct(ask.body)
        except Exception as exc:
            self._resolve(cid, exc)
            return
        self._resolve(cid, result)

    def _resolve(self, cid: str, outcome: ChatResult | BaseException) -> None:
        ask = self._asks.pop(cid, None)
        if ask is None:
            return
        retries = max(0, self.journal.attempts(cid) - 1)
        for fut in ask.futures:
            if fut.done():
                continue
            if isinstance(outcome, BaseException):
                fut.set_exception(outcome)
            else:
                fut.set_result(dataclasses.replace(outcome, choices=list(outcome.choices),
                                                   retries=outcome.retries + retries))

    # --- tasks -----------------------------------------------------------------------------------
    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def aclose(self) -> None:
        """Stop polling; batches in flight stay recorded, for a resumed run to collect."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._flusher = None
        self._followers.clear()


def _describe(line: Line) -> str:
    if line.status == 0 and isinstance(line.body, dict):
        return f"{line.body.get('code') or 'error'}: {line.body.get('message') or ''}".strip()
    return f"HTTP {line.status}" if line.status else "no response"
