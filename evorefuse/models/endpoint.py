"""An endpoint as the rest of evorefuse sees it: a backend plus the request cache, ledger and budget.

Every role goes through `Endpoint.chat`, so caching, accounting and budget checks cannot be forgotten
by any caller. Cached samples are served first; only the missing sample indices are requested, in
contiguous runs, so a partially filled request (after a crash) pays only for what is missing.

The budget reserves each call's worst case before it is sent (`pricing.prompt_token_bound` for the
prompt, every sample running to max_tokens) and reconciles with the bill after it: the largest
ratio of billed tokens to that worst case seen so far scales the worst case of every later call,
so a provider whose tokenizer or hidden prompt bills more than the bound is caught at its first
call. Under a cost budget that first call is made alone, so calls sent at the same time cannot
all be under-reserved by the same unknown factor.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import replace

import orjson

from evorefuse.models.base import (
    ChatModel,
    ChatResult,
    Choice,
    Message,
    SamplingParams,
    Usage,
)
from evorefuse.models.cache import RequestCache, request_fingerprint, sample_key
from evorefuse.models.ledger import Ledger
from evorefuse.models.pricing import call_cost, prompt_token_bound, reserve_factor
from evorefuse.models.spec import ModelSpec


def _runs(indices: list[int]) -> list[tuple[int, int]]:
    """Contiguous (start, length) runs of sorted indices."""
    out: list[tuple[int, int]] = []
    for i in indices:
        if out and out[-1][0] + out[-1][1] == i:
            out[-1] = (out[-1][0], out[-1][1] + 1)
        else:
            out.append((i, 1))
    return out


class Endpoint:
    def __init__(self, backend: ChatModel, spec: ModelSpec, cache: RequestCache | None,
                 ledger: Ledger, run_id: str = "") -> None:
        self.backend = backend
        self.spec = spec
        self.cache = cache
        self.ledger = ledger
        self.run_id = run_id
        # The cache identity is where the model lives, not what the user named it in the config.
        self.endpoint_id = spec.base_url or spec.kind
        if spec.extra_body:  # server-specific sampling fields change the answers
            extra = orjson.dumps(spec.extra_body, option=orjson.OPT_SORT_KEYS).decode()
            self.endpoint_id = f"{self.endpoint_id} {extra}"
        # Largest billed / worst-case ratio seen (prompt, completion): 1.0 until a bill says more.
        self.bill_ratio = [1.0, 1.0]
        self._billed_once = False
        self._first_call: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        attach = getattr(backend, "attach_cache", None)
        if attach is not None:  # a batching backend records its batches next to the samples
            attach(cache)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def supports_logprobs(self) -> bool:
        return self.backend.supports_logprobs

    def _worst_case_tokens(self, bound: int, params: SamplingParams, n: int) -> tuple[int, int]:
        """(prompt, completion) tokens a call of `n` samples may bill; `bound` is the prompt's
        `prompt_token_bound`."""
        return (bound if self.spec.supports_n else bound * n), params.max_tokens * n

    def worst_case_cost(self, messages: Sequence[Message], params: SamplingParams, n: int) -> float:
        """What a call of `n` samples may cost at most, as reserved against the budget."""
        return self._worst_case(prompt_token_bound(messages), params, n)

    def _worst_case(self, bound: int, params: SamplingParams, n: int) -> float:
        p, c = self._worst_case_tokens(bound, params, n)
        return (self.spec.cost(math.ceil(p * self.bill_ratio[0]), math.ceil(c * self.bill_ratio[1]))
                * reserve_factor(self.spec))

    def _reconcile(self, bound: int, params: SamplingParams, n: int, result: ChatResult) -> None:
        p, c = self._worst_case_tokens(bound, params, n)
        ratio = self.bill_ratio
        ratio[0] = max(ratio[0], result.usage.prompt_tokens / max(1, p))
        ratio[1] = max(ratio[1], result.usage.completion_tokens / max(1, c))
        self._billed_once = True

    def with_system_prompt(self, messages: Sequence[Message], role: str) -> Sequence[Message]:
        """A target is measured as it is deployed: with its configured system prompt, sent on
        every call in the target role (and so part of the cache key)."""
        prompt = self.spec.system_prompt
        if role != "target" or not prompt or (messages and messages[0].get("role") == "system"):
            return messages
        return [{"role": "system", "content": prompt}, *messages]

    async def chat(self, messages: Sequence[Message], params: SamplingParams, *,
                   role: str) -> ChatResult:
        messages = self.with_system_prompt(messages, role)
        fp = request_fingerprint(self.endpoint_id, self.spec.model, messages, params)
        keys = [sample_key(fp, i) for i in range(params.n)]
        cached = self.cache.get_many(keys) if self.cache is not None else {}
        choices: list[Choice | None] = [cached[k][0] if k in cached else None for k in keys]
        missing = [i for i, c in enumerate(choices) if c is None]
        entry = self.ledger.entry(role, self.spec.name)
        hits = params.n - len(missing)
        entry.cache_hits += hits
        usage = Usage()
        retries = 0
        if hits and self.cache is not None:
            self._record(role, hits=hits)
        for start, length in _runs(missing):
            result = await self._call(messages, params, start, length, role)
            cost = call_cost(self.spec, result.usage.prompt_tokens,
                             result.usage.completion_tokens, batch=result.batch)
            blocked = sum(c.blocked for c in result.choices)
            entry.calls += 1
            entry.samples += len(result.choices)
            entry.tokens_in += result.usage.prompt_tokens
            entry.tokens_out += result.usage.completion_tokens
            entry.retries += result.retries
            entry.blocked += blocked
            entry.cost += cost
            usage += result.usage
            retries += result.retries
            for j, c in enumerate(result.choices[:length]):
                choices[start + j] = c
            if self.cache is not None:
                per_prompt = result.usage.prompt_tokens
                self.cache.put_many(
                    [(keys[start + j], c, per_prompt if j == 0 else 0, c.completion_tokens)
                     for j, c in enumerate(result.choices[:length])],
                    call=(self.run_id, role, self.spec.name, 1, len(result.choices),
                          result.usage.prompt_tokens, result.usage.completion_tokens, 0,
                          result.retries, 0, blocked, cost),
                )
        return ChatResult(choices=[c for c in choices if c is not None], usage=usage,
                          cache_hits=hits, retries=retries)

    def _calibrating(self) -> bool:
        """Under a cost budget, the first call goes alone. Not on a batched model: a batch of one
        would cost a whole batch turnaround (minutes to hours) before the others are sent."""
        return (not self._billed_once and self.ledger.budget.max_cost is not None
                and not self.spec.batch)

    def _first_call_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._first_call is None or self._first_call[0] is not loop:
            self._first_call = (loop, asyncio.Lock())
        return self._first_call[1]

    async def _call(self, messages: Sequence[Message], params: SamplingParams, start: int,
                    length: int, role: str) -> ChatResult:
        if self._calibrating():
            async with self._first_call_lock():  # the first bill calibrates the worst case
                if self._calibrating():  # whoever waited behind it goes on concurrently
                    return await self._reserved_call(messages, params, start, length, role)
        return await self._reserved_call(messages, params, start, length, role)

    async def _reserved_call(self, messages: Sequence[Message], params: SamplingParams,
                             start: int, length: int, role: str) -> ChatResult:
        """One backend call under a budget reservation of its worst case."""
        bound = prompt_token_bound(messages)
        worst = self._worst_case(bound, params, length)
        self.ledger.reserve(worst)
        try:
            result = await self.backend.complete(messages, replace(params, n=length),
                                                 sample_offset=start)
        except BaseException:
            self.ledger.entry(role, self.spec.name).errors += 1
            self._record(role, errors=1)
            raise
        finally:
            self.ledger.release(worst)
        self._reconcile(bound, params, length, result)
        return result

    def _record(self, role: str, *, hits: int = 0, errors: int = 0) -> None:
        if self.cache is not None:
            self.cache.put_many([], call=(self.run_id, role, self.spec.name, 0, 0, 0, 0, hits, 0,
                                          errors, 0, 0.0))

    async def release_connections(self) -> None:
        """Close what the running event loop opened (HTTP connections), keeping the endpoint usable
        from another loop. A synchronous caller that runs each call in its own `asyncio.run` calls
        this before its loop ends; otherwise every call would leave a connection pool open."""
        release = getattr(self.backend, "release_connections", None)
        if release is not None:
            await release()

    async def aclose(self) -> None:
        await self.backend.aclose()
