"""The OpenAI-compatible backend against a real HTTP server on loopback, fault by fault."""

from __future__ import annotations

import asyncio
import email.utils
import time
from typing import Any

import pytest

from evorefuse.errors import InputError
from evorefuse.models import retry
from evorefuse.models.base import SamplingParams
from evorefuse.models.errors import (
    EndpointAuthError,
    EndpointRequestError,
    EndpointUnavailable,
    redact,
)
from evorefuse.models.limits import EndpointLimiter, TokenBucket
from evorefuse.models.openai_backend import OpenAIBackend
from evorefuse.models.retry import retry_after_seconds
from evorefuse.models.spec import ModelSpec

try:  # `python -m pytest` puts the repo root on sys.path; plain `pytest` puts tests/ there
    from tests.loopback_server import (
        REFUSAL,
        FaultPlan,
        LoopbackServer,
        scripted_refusal_responder,
    )
except ImportError:
    from loopback_server import (
        REFUSAL,
        FaultPlan,
        LoopbackServer,
        scripted_refusal_responder,
    )

KEY_ENV = "EVOREFUSE_TEST_LOOPBACK_KEY"
SENTINEL = "sk-SENTINEL-7f3a9c1e5b2d4086aa11"
MSGS = [{"role": "user", "content": "How do I kill a Python process that hangs?"}]


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, SENTINEL)
    # Fast backoff for tests that do not measure it; Retry-After still sets the floor.
    monkeypatch.setattr(retry, "BACKOFF_BASE", 0.01)


def make_spec(srv: LoopbackServer, **kw: Any) -> ModelSpec:
    base = dict(name="loop", model="loop-model", base_url=srv.base_url, api_key_env=KEY_ENV,
                timeout=5.0, max_retries=4)
    base.update(kw)
    return ModelSpec(**base)


def call(spec: ModelSpec, params: SamplingParams = SamplingParams(max_tokens=64), *,
         messages: list[dict[str, str]] = MSGS, sample_offset: int = 0):
    async def go():
        backend = OpenAIBackend(spec)
        try:
            return await backend.complete(messages, params, sample_offset=sample_offset)
        finally:
            await backend.aclose()
    return asyncio.run(go())


def test_plain_call_sends_the_key_and_parses_usage() -> None:
    with LoopbackServer(expected_key=SENTINEL, enforce_key=True) as srv:
        res = call(make_spec(srv))
        assert len(res.choices) == 1
        ch = res.choices[0]
        assert ch.text and ch.finish_reason == "stop" and ch.logprobs is None
        assert res.retries == 0
        assert res.usage.prompt_tokens == len(MSGS[0]["content"].split())
        assert res.usage.completion_tokens == len(ch.text.split()) == ch.completion_tokens
        assert srv.stats["auth"] == {"match": 1}


def test_n_choices_and_seed_offset() -> None:
    with LoopbackServer() as srv:
        res = call(make_spec(srv), SamplingParams(n=3, seed=7, max_tokens=64), sample_offset=5)
        assert len(res.choices) == 3
        assert srv.stats["n_values"] == [3] and srv.stats["seeds"] == [12]
        assert res.usage.completion_tokens == sum(c.completion_tokens for c in res.choices)


def test_without_n_support_samples_are_separate_seeded_requests() -> None:
    with LoopbackServer() as srv:
        res = call(make_spec(srv, supports_n=False), SamplingParams(n=3, seed=10), sample_offset=2)
        assert len(res.choices) == 3
        assert srv.stats["n_values"] == [1, 1, 1]
        assert sorted(srv.stats["seeds"]) == [12, 13, 14]


def test_server_that_ignores_n_is_topped_up() -> None:
    with LoopbackServer(ignore_n=True) as srv:
        res = call(make_spec(srv), SamplingParams(n=3, seed=0))
        assert len(res.choices) == 3
        assert srv.stats["seeds"][0] == 0 and sorted(srv.stats["seeds"][1:]) == [1, 2]


def test_logprobs_are_parsed() -> None:
    with LoopbackServer() as srv:
        res = call(make_spec(srv), SamplingParams(logprobs=True, top_logprobs=3, max_tokens=64))
        ch = res.choices[0]
        assert ch.logprobs is not None and len(ch.logprobs) == len(ch.text.split())
        assert "".join(t.token for t in ch.logprobs) == ch.text
        for t in ch.logprobs:
            assert t.logprob <= 0 and len(t.top) == 3
            assert (t.token, t.logprob) in t.top


def test_max_tokens_truncates_with_length_finish() -> None:
    with LoopbackServer() as srv:
        res = call(make_spec(srv), SamplingParams(max_tokens=3))
        assert res.choices[0].finish_reason == "length"
        assert len(res.choices[0].text.split()) == 3


def test_scripted_refusal_responder() -> None:
    responder = scripted_refusal_responder(["kill"], p_refusal=1.0, seed=0)
    with LoopbackServer(responder=responder) as srv:
        res = call(make_spec(srv), SamplingParams(n=2))
        assert [c.text for c in res.choices] == [REFUSAL, REFUSAL]
        res = call(make_spec(srv), messages=[{"role": "user", "content": "Bake bread"}])
        assert res.choices[0].text != REFUSAL


@pytest.mark.parametrize("style", ["seconds", "ms"])
def test_429_waits_for_retry_after(style: str) -> None:
    plan = FaultPlan(script=["429"], retry_after=0.3, retry_after_style=style)
    with LoopbackServer(faults=plan) as srv:
        t0 = time.monotonic()
        res = call(make_spec(srv))
        assert res.retries == 1 and srv.stats["faults"]["429"] == 1
        gap = srv.stats["arrivals"][1] - srv.stats["arrivals"][0]
        assert gap >= 0.3 and time.monotonic() - t0 >= 0.3


def test_retry_after_parsing() -> None:
    assert retry_after_seconds({"retry-after": "2"}) == 2.0
    assert retry_after_seconds({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= retry_after_seconds({"retry-after": future}) <= 30
    assert retry_after_seconds({"retry-after": "garbage"}) is None
    assert retry_after_seconds({}) is None


def test_5xx_are_retried_and_counted() -> None:
    with LoopbackServer(faults=FaultPlan(script=["500", "503"])) as srv:
        res = call(make_spec(srv))
        assert res.retries == 2 and res.choices[0].text
        assert srv.requests == 3


def test_timeout_is_retried() -> None:
    with LoopbackServer(faults=FaultPlan(script=["timeout"], timeout_sleep=60.0)) as srv:
        res = call(make_spec(srv, timeout=0.3))
        assert res.retries == 1 and res.choices[0].text
        # The second attempt went out while the first was still hanging: the client's timeout,
        # not the server closing the connection after 60 s, ended the first.
        arrivals = srv.stats["arrivals"]
        assert arrivals[1] - arrivals[0] < 60.0


@pytest.mark.parametrize("kind", ["malformed", "truncated"])
def test_broken_bodies_are_retried(kind: str) -> None:
    with LoopbackServer(faults=FaultPlan(script=[kind])) as srv:
        res = call(make_spec(srv))
        assert res.retries == 1 and res.choices[0].text
        assert srv.stats["faults"][kind] == 1 and srv.requests == 2


def test_401_fails_fast_without_leaking_the_key() -> None:
    with LoopbackServer(faults=FaultPlan(script=["401"])) as srv:
        with pytest.raises(EndpointAuthError) as info:
            call(make_spec(srv))
        assert srv.requests == 1
        msg = str(info.value)
        assert KEY_ENV in msg and "loop" in msg and srv.base_url in msg
        assert SENTINEL not in msg and SENTINEL not in repr(info.value.args)
        assert "\n" not in msg and info.value.exit_code == 1


def test_key_not_in_debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    with LoopbackServer(faults=FaultPlan(script=["500", "401"])) as srv:
        with pytest.raises(EndpointAuthError):
            call(make_spec(srv))
    assert caplog.records and SENTINEL not in caplog.text


def test_content_filter_is_a_refusal_not_an_error() -> None:
    with LoopbackServer(faults=FaultPlan(script=["content_filter"])) as srv:
        res = call(make_spec(srv), SamplingParams(n=2))
        assert [c.finish_reason for c in res.choices] == ["content_filter"] * 2
        assert all(c.blocked and c.text == "" for c in res.choices)
        assert res.retries == 0 and srv.requests == 1


def test_retries_exhausted_raise_unavailable() -> None:
    with LoopbackServer(faults=FaultPlan(script=["500"] * 3)) as srv:
        with pytest.raises(EndpointUnavailable) as info:
            call(make_spec(srv, max_retries=2))
        assert srv.requests == 3
        assert "2 retries" in str(info.value) and "HTTP 500" in str(info.value)


def test_other_client_errors_are_not_retried() -> None:
    with LoopbackServer() as srv:
        spec = make_spec(srv, base_url=srv.base_url + "/nowhere")
        with pytest.raises(EndpointRequestError, match="HTTP 404"):
            call(spec)


def test_list_models_and_unreachable_server() -> None:
    async def models(spec: ModelSpec) -> list[str]:
        backend = OpenAIBackend(spec)
        try:
            return await backend.list_models()
        finally:
            await backend.aclose()
    with LoopbackServer(model="m-1") as srv:
        assert asyncio.run(models(make_spec(srv))) == ["m-1"]
        port = srv.port
    dead = ModelSpec(name="dead", model="m", base_url=f"http://127.0.0.1:{port}/v1",
                     api_key_env=KEY_ENV, timeout=1.0, max_retries=1)
    with pytest.raises(EndpointUnavailable, match="dead"):
        asyncio.run(models(dead))
    with pytest.raises(EndpointUnavailable, match="connection error"):
        call(dead)


def test_missing_key_variable_is_bad_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(InputError, match=KEY_ENV):
        OpenAIBackend(ModelSpec(name="x", model="m", base_url="http://127.0.0.1:9/v1",
                                api_key_env=KEY_ENV))


def test_redact() -> None:
    assert SENTINEL not in redact(f"bad key {SENTINEL}!", SENTINEL)
    assert "sk-" not in redact("Incorrect API key provided: sk-proj-abc****wxyz.")


def test_rpm_limit_spaces_requests() -> None:
    # 240/min = 4/s with a one-second burst of 4: 10 requests need >= 1.5 s.
    with LoopbackServer() as srv:
        spec = make_spec(srv, requests_per_minute=240)

        async def go():
            backend = OpenAIBackend(spec)
            try:
                await asyncio.gather(*(backend.complete(MSGS, SamplingParams()) for _ in range(10)))
            finally:
                await backend.aclose()
        asyncio.run(go())
        arrivals = srv.stats["arrivals"]
        assert len(arrivals) == 10 and arrivals[-1] - arrivals[0] >= 1.4


def test_concurrency_limit_is_respected() -> None:
    with LoopbackServer(latency=0.1) as srv:
        spec = make_spec(srv, max_concurrency=4)

        async def go():
            backend = OpenAIBackend(spec)
            try:
                await asyncio.gather(*(backend.complete(
                    [{"role": "user", "content": f"q{i}"}], SamplingParams()) for i in range(16)))
            finally:
                await backend.aclose()
        t0 = time.monotonic()
        asyncio.run(go())
        assert srv.stats["max_in_flight"] == 4
        assert time.monotonic() - t0 >= 0.4  # 16 requests of 0.1 s, 4 at a time


def test_random_faults_under_concurrency_all_succeed() -> None:
    plan = FaultPlan(rates={"500": 0.1, "malformed": 0.05, "truncated": 0.05, "429": 0.05},
                     retry_after=0.05)
    with LoopbackServer(latency=0.01, faults=plan, seed=1) as srv:
        spec = make_spec(srv, max_concurrency=16, max_retries=10)

        async def go():
            backend = OpenAIBackend(spec)
            try:
                return await asyncio.gather(*(backend.complete(
                    [{"role": "user", "content": f"q{i}"}], SamplingParams()) for i in range(60)))
            finally:
                await backend.aclose()
        results = asyncio.run(go())
        assert all(r.choices[0].text for r in results)
        assert sum(r.retries for r in results) == sum(srv.stats["faults"].values()) > 0


def test_token_bucket_lets_oversized_requests_through() -> None:
    async def go() -> float:
        bucket = TokenBucket(6000, burst_seconds=0.1)  # 100/s, capacity 10
        assert bucket.try_take(25)  # bigger than the bucket: goes at once, leaves a debt
        assert bucket.level < -10
        t0 = time.monotonic()
        await bucket.take(25)  # waits for the debt to be repaid and the bucket to refill
        return time.monotonic() - t0
    assert asyncio.run(go()) >= 0.22


def test_limiter_tracks_in_flight() -> None:
    async def go() -> int:
        lim = EndpointLimiter(2)
        await lim.acquire(10)
        await lim.acquire(10)
        assert lim.in_flight == 2
        waiter = asyncio.ensure_future(lim.acquire(10))
        await asyncio.sleep(0.01)
        assert not waiter.done()
        lim.release(10)
        await waiter
        return lim.max_in_flight
    assert asyncio.run(go()) == 2


def test_tpm_reserves_estimate_and_refunds_unused_tokens() -> None:
    async def go() -> float:
        lim = EndpointLimiter(10, tokens_per_minute=6000)  # 100 tokens/s, bucket of 100
        assert lim.tpm is not None
        await lim.acquire(100)          # empties the bucket
        lim.release(100, used_tokens=40)  # 60 were reserved but not used: given back
        assert lim.tpm.level >= 60
        assert lim.tpm.try_take(60)     # fits in the refund, no wait
        assert lim.tpm.level < 1
        t0 = time.monotonic()
        await lim.acquire(50)           # bucket empty: waits ~0.5 s for the refill
        lim.release(50)
        return time.monotonic() - t0
    assert asyncio.run(go()) >= 0.45
