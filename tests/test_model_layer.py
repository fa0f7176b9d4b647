"""Cache, ledger, budget and endpoint over real backends (the embedded model, the loopback server)."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from evorefuse.errors import BudgetExceeded
from evorefuse.models.base import Choice, SamplingParams
from evorefuse.models.cache import RequestCache, request_fingerprint, sample_key
from evorefuse.models.endpoint import Endpoint, _runs
from evorefuse.models.ledger import Budget, Ledger
from evorefuse.models.local import LocalBackend
from evorefuse.models.spec import LOCAL_SPEC, ModelSpec

MSG = [{"role": "user", "content": "Name a colour."}]


def test_runs_groups_contiguous_indices() -> None:
    assert _runs([0, 1, 2, 5, 6, 9]) == [(0, 3), (5, 2), (9, 1)]
    assert _runs([]) == []


def test_cache_roundtrip_and_keys_distinguish_samples(tmp_path) -> None:
    cache = RequestCache(tmp_path / "c.sqlite")
    fp = request_fingerprint("local", "m", MSG, SamplingParams(seed=1))
    k0, k1 = sample_key(fp, 0), sample_key(fp, 1)
    assert k0 != k1
    # n is not part of the identity: asking for 3 or 10 samples shares samples 0..2
    assert fp == request_fingerprint("local", "m", MSG, SamplingParams(seed=1, n=10))
    assert fp != request_fingerprint("local", "m", MSG, SamplingParams(seed=2))
    cache.put_many([(k0, Choice("red", completion_tokens=1), 5, 1)])
    got = cache.get_many([k0, k1])
    assert list(got) == [k0] and got[k0][0].text == "red"
    assert cache.integrity_ok()
    cache.close()


@pytest.mark.local_model
def test_local_model_logprobs_and_exact_replay(tmp_path) -> None:
    async def go():
        cache = RequestCache(tmp_path / "c.sqlite")
        ledger = Ledger()
        ep = Endpoint(LocalBackend(), LOCAL_SPEC, cache, ledger, run_id="t")
        p = SamplingParams(temperature=1.0, top_p=0.95, max_tokens=12, seed=7, n=4, logprobs=True,
                           top_logprobs=3)
        first = await ep.chat(MSG, p, role="target")
        assert len(first.choices) == 4 and first.cache_hits == 0
        for c in first.choices:
            assert c.logprobs and all(lp.logprob <= 0 for lp in c.logprobs)
            assert len(c.logprobs[0].top) == 3
        again = await ep.chat(MSG, p, role="target")
        assert again.cache_hits == 4 and [c.text for c in again.choices] == [c.text for c in first.choices]
        # Growing K pays only for the new samples, and the old ones are unchanged.
        more = await ep.chat(MSG, SamplingParams(**{**p.__dict__, "n": 6}), role="target")
        assert more.cache_hits == 4
        assert [c.text for c in more.choices[:4]] == [c.text for c in first.choices]
        e = ledger.entry("target", "local")
        assert e.calls == 2 and e.samples == 6 and e.cache_hits == 8
        # A fresh cache (no replay) draws sample 5 alone exactly as in the batch: seeded per index.
        ep2 = Endpoint(LocalBackend(), LOCAL_SPEC, RequestCache(tmp_path / "d.sqlite"), Ledger())
        alone = await LocalBackend().complete(MSG, SamplingParams(**{**p.__dict__, "n": 1}), sample_offset=5)
        assert alone.choices[0].text == more.choices[5].text
        await ep2.aclose()
        # The ledger is rebuilt exactly from the cache's call log (what a resume does).
        rebuilt = Ledger()
        rebuilt.load_rows(cache.ledger_rows("t"))
        assert rebuilt.entry("target", "local").calls == 2
        assert rebuilt.entry("target", "local").cache_hits == 8
    asyncio.run(go())


def test_budget_stops_before_the_call() -> None:
    ledger = Ledger(budget=Budget(max_calls=2))
    ledger.reserve(0.0)
    ledger.reserve(0.0)
    with pytest.raises(BudgetExceeded):
        ledger.reserve(0.0)  # in-flight calls count: concurrency cannot overshoot
    ledger.release(0.0)
    ledger.entry("target", "x").calls = 2
    with pytest.raises(BudgetExceeded):
        ledger.reserve(0.0)
    costly = Ledger(budget=Budget(max_cost=1.0))
    costly.reserve(0.6)
    with pytest.raises(BudgetExceeded):
        costly.reserve(0.6)


def test_endpoint_budget_against_http_server(tmp_path, monkeypatch) -> None:
    from loopback_server import LoopbackServer

    monkeypatch.setenv("EVOREFUSE_TEST_KEY", "sk-test-not-a-real-key")
    with LoopbackServer(latency=0.0) as srv:
        from evorefuse.models.openai_backend import OpenAIBackend

        spec = ModelSpec(name="fake", model="fake", base_url=srv.base_url,
                         api_key_env="EVOREFUSE_TEST_KEY", price_in=1.0, price_out=2.0)

        async def go():
            ledger = Ledger(budget=Budget(max_calls=3))
            ep = Endpoint(OpenAIBackend(spec), spec, RequestCache(tmp_path / "c.sqlite"), ledger)
            for i in range(3):
                await ep.chat([{"role": "user", "content": f"q{i}"}], SamplingParams(seed=0), role="t")
            # cached: free, allowed past the budget
            await ep.chat([{"role": "user", "content": "q0"}], SamplingParams(seed=0), role="t")
            with pytest.raises(BudgetExceeded):
                await ep.chat([{"role": "user", "content": "new"}], SamplingParams(seed=0), role="t")
            assert ledger.total_calls == 3 and ledger.total_cost > 0
            await ep.aclose()
        asyncio.run(go())
    db = sqlite3.connect(tmp_path / "c.sqlite")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert b"sk-test-not-a-real-key" not in (tmp_path / "c.sqlite").read_bytes()
