"""The OpenAI Files and Batches endpoints, as the `openai` package's `files` and `batches`
resources call them, over the endpoint's guarded session.

Why not the SDK's resources: they read whole bodies into memory and follow redirects, and a batch
output file is the largest body a server sends us; here every call has the same guards, retries
and deadline as a chat completion, and output files are read line by line. The objects are still
the SDK's own types (`openai.types.Batch`, `FileObject`), validated on arrival, so a server that
answers with something else is retried like a malformed body.

Creating a batch is the one call whose retry could pay twice (the first attempt may have created
it before the connection dropped), so a retried create first looks for a batch made from the same
input file.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
import pydantic
from openai.types import Batch, FileObject

from .exchange import Guard
from .http_client import GuardedSession, form_upload
from .retry import Deadline, Retryable, retrying
from .spec import ModelSpec

T = TypeVar("T")
CHAT_URL = "/v1/chat/completions"   # the `url` of every request line and the batch's endpoint
LIST_PAGES = 10                     # batches looked through (100 a page) for a lost create
# Fields the SDK's types require but we never read: a server that leaves them out (OpenAI's own
# examples omit a file's deprecated `status`) is not malformed for us. What we read (ids, status,
# file ids, counts) is still required and type-checked.
FILE_DEFAULTS: dict[str, Any] = {"object": "file", "bytes": 0, "created_at": 0, "filename": "",
                                 "purpose": "batch", "status": "processed"}
BATCH_DEFAULTS: dict[str, Any] = {"object": "batch", "completion_window": "24h", "created_at": 0,
                                  "endpoint": CHAT_URL}


class BatchAPI:
    def __init__(self, http: GuardedSession, spec: ModelSpec, guard: Guard,
                 rng: random.Random) -> None:
        self._http = http
        self._spec = spec
        self._guard = guard
        self._rng = rng

    async def _call(self, attempt: Callable[[Deadline, int], Awaitable[T]],
                    deadline: float | None = None) -> T:
        return await retrying(attempt, deadline=deadline or self._spec.deadline,
                              max_retries=self._spec.max_retries, where=self._guard.where,
                              name=self._guard.name, rng=self._rng)

    async def _json(self, clock: Deadline, method: str, path: str, **kw: Any) -> Any:
        answer = self._guard.ok(await self._guard.exchange(
            clock, self._http.request(method, path, **kw)))
        try:
            return orjson.loads(answer.body)
        except orjson.JSONDecodeError:
            raise Retryable(f"malformed answer to {method} {path}") from None

    async def upload(self, content: bytes, filename: str) -> str:
        """POST /files (purpose "batch"); the new file's id."""
        async def attempt(clock: Deadline, _: int) -> str:
            data = await self._json(clock, "POST", "/files",
                                    form=form_upload("batch", filename, content))
            return _validated(FileObject, data, "file", FILE_DEFAULTS).id
        return await self._call(attempt)

    async def create(self, input_file_id: str, metadata: dict[str, str]) -> Batch:
        """POST /batches for a 24-hour window; a retry first adopts a batch the lost attempt
        may have created from the same file."""
        async def attempt(clock: Deadline, retries: int) -> Batch:
            if retries:
                found = await self.find(input_file_id)
                if found is not None:
                    return found
            body = orjson.dumps({"input_file_id": input_file_id, "endpoint": CHAT_URL,
                                 "completion_window": "24h", "metadata": metadata})
            return _validated(Batch, await self._json(clock, "POST", "/batches", body=body),
                              "batch", BATCH_DEFAULTS)
        return await self._call(attempt)

    async def retrieve(self, batch_id: str) -> Batch:
        async def attempt(clock: Deadline, _: int) -> Batch:
            return _validated(Batch, await self._json(clock, "GET", f"/batches/{batch_id}"),
                              "batch", BATCH_DEFAULTS)
        return await self._call(attempt)

    async def reachable(self) -> None:
        """GET /batches?limit=1: the Batch API answers with this key (for `models check`)."""
        async def attempt(clock: Deadline, _: int) -> Any:
            return await self._json(clock, "GET", "/batches", params={"limit": "1"})
        await self._call(attempt)

    async def find(self, input_file_id: str) -> Batch | None:
        """The batch created from `input_file_id`, looking through the newest batches."""
        after: str | None = None
        for _ in range(LIST_PAGES):
            params = {"limit": "100", **({"after": after} if after else {})}

            async def attempt(clock: Deadline, _: int) -> Any:
                return await self._json(clock, "GET", "/batches", params=params)
            page = await self._call(attempt)
            data = page.get("data") if isinstance(page, dict) else None
            if not isinstance(data, list):
                return None
            for item in data:
                if isinstance(item, dict) and item.get("input_file_id") == input_file_id:
                    return _validated(Batch, item, "batch", BATCH_DEFAULTS)
            if not page.get("has_more") or not data:
                return None
            after = str(data[-1].get("id")) if isinstance(data[-1], dict) else None
        return None

    async def download(self, file_id: str, on_line: Callable[[bytes], None],
                       max_lines: int) -> None:
        """GET /files/{id}/content, each line handed to `on_line` as it arrives. A retried
        download hands the lines over again: `on_line` must keep the first of each. A file of
        up to 200 MB may take longer than one chat request: each attempt has the model's whole
        `deadline`, and all of them together that many times over."""
        seconds = self._spec.deadline

        async def attempt(clock: Deadline, _: int) -> None:
            self._guard.ok(await self._guard.exchange(clock, self._http.lines(
                f"/files/{file_id}/content", on_line, max_lines=max_lines), timeout=seconds))
        await self._call(attempt, deadline=seconds * (self._spec.max_retries + 1))


def _validated(model: type[Any], data: Any, what: str, defaults: dict[str, Any]) -> Any:
    """`data` as the SDK's `model`, with `defaults` for the fields we never read."""
    try:
        return model.model_validate({**defaults, **data} if isinstance(data, dict) else data)
    except pydantic.ValidationError as err:
        raise Retryable(f"malformed {what} object ({err.error_count()} problems)") from None
