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


# --- budgets against a provider that bills more than the bound -----------------------------------

def test_the_prompt_bound_covers_the_embedded_models_tokenizer() -> None:
    """UTF-8 bytes plus the template allowance bound what SmolLM2's byte-level BPE and its chat
    template (with the default system prompt it inserts) really count, in several scripts."""
    from evorefuse.models.local import _Engine
    from evorefuse.models.pricing import prompt_token_bound

    engine = _Engine.get()
    texts = ["Hi", "How do I kill a Python process?", "Wie töte ich einen hängenden Prozess?",
             "如何终止一个挂起的进程？", "Как убить зависший процесс?", "プロセスを終了する方法は？",
             "🔥🔥 emoji 💣 and <|im_end|> special tokens <|im_start|>", "ﻛﻴﻒ أوقف العملية؟ " * 20]
    for text in texts:
        for messages in ([{"role": "user", "content": text}],
                         [{"role": "system", "content": text}, {"role": "user", "content": text}]):
            assert len(engine.prompt_tokens(messages)) <= prompt_token_bound(messages), text


def test_budget_holds_against_a_server_billing_three_tokens_per_char(tmp_path) -> None:
    from loopback_server import LoopbackServer

    from evorefuse.models.openai_backend import OpenAIBackend

    def bill(messages: list[dict[str, str]]) -> int:
        return 3 * sum(len(m["content"]) for m in messages)

    with LoopbackServer(bill_prompt=bill) as srv:
        spec = ModelSpec(name="greedy", model="m", base_url=srv.base_url, api_key_env="",
                         price_in=1.0, price_out=2.0, max_concurrency=8)
        prompts = [f"Question {i}: " + "explain the history of bread baking " * 8
                   for i in range(80)]
        ledger = Ledger(budget=Budget(max_cost=0.015))

        async def go() -> list[object]:
            ep = Endpoint(OpenAIBackend(spec), spec, RequestCache(tmp_path / "c.sqlite"), ledger)
            try:
                return await asyncio.gather(*(ep.chat([{"role": "user", "content": p}],
                                                      SamplingParams(max_tokens=64), role="t")
                                              for p in prompts), return_exceptions=True)
            finally:
                await ep.aclose()
        results = asyncio.run(go())
        billed_prompt = sum(bill([{"role": "user", "content": p}]) for p in prompts[:srv.requests])
    stops = [r for r in results if isinstance(r, BudgetExceeded)]
    assert stops and all(not isinstance(r, BaseException) or isinstance(r, BudgetExceeded)
                         for r in results)
    e = ledger.entry("t", "greedy")
    assert e.calls == srv.requests >= 5
    # The server billed 3 tokens per character, far above the UTF-8 bound (1 per character here),
    assert e.tokens_in == pytest.approx(billed_prompt, rel=0.05)
    # ... and the spending still stayed inside the budget, with a message that says so.
    assert 0.015 * 0.5 < ledger.total_cost <= 0.015
    assert all("--max-cost 0.015" in str(s) and "it was not made" in str(s) for s in stops)


# --- a damaged cache is bad input, whichever access meets it -------------------------------------

def test_a_file_that_is_not_a_cache_is_bad_input(tmp_path) -> None:
    from evorefuse.errors import InputError

    junk = tmp_path / "cache.sqlite"
    junk.write_bytes(b"this is not a database\n" * 500)
    with pytest.raises(InputError) as info:
        RequestCache(junk)
    assert str(junk) in info.value.message and "move it aside" in info.value.message
    assert info.value.exit_code == 2
    other = tmp_path / "other.sqlite"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE samples (a, b)")
    db.commit()
    db.close()
    with pytest.raises(InputError, match="samples table is not an evorefuse cache"):
        RequestCache(other)


def test_damage_after_opening_is_bad_input_on_read_and_write(tmp_path) -> None:
    from evorefuse.errors import InputError

    path = tmp_path / "cache.sqlite"
    cache = RequestCache(path)
    keys = [f"k{i}" for i in range(3000)]
    cache.put_many([(k, Choice("answer " * 30, completion_tokens=30), 5, 30) for k in keys])
    cache.close()
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"cache.sqlite{suffix}").unlink(missing_ok=True)
    data = bytearray(path.read_bytes())
    page = 4096
    for start in range(2 * page, len(data), page):  # keep the header page, scramble the rest
        data[start + 8:start + page] = bytes((i * 7 + start) % 251 for i in range(page - 8))
    path.write_bytes(bytes(data))
    cache = RequestCache(path)  # the first page (schema) is intact: the damage shows on use
    with pytest.raises(InputError, match="damaged"):
        cache.get_many(keys)
    with pytest.raises(InputError, match="damaged"):
        cache.put_many([(f"new{i}", Choice("x"), 1, 1) for i in range(2000)])


def test_only_the_first_call_under_a_cost_budget_waits_for_its_bill(tmp_path) -> None:
    from loopback_server import LoopbackServer

    from evorefuse.models.openai_backend import OpenAIBackend

    # Latency long enough that the sixteen queued calls overlap however busy the machine is.
    with LoopbackServer(latency=0.5) as srv:
        spec = ModelSpec(name="cal", model="m", base_url=srv.base_url, api_key_env="",
                         price_in=1.0, price_out=2.0, max_concurrency=16)

        async def go() -> None:
            ep = Endpoint(OpenAIBackend(spec), spec, None, Ledger(budget=Budget(max_cost=10.0)))
            try:
                await asyncio.gather(*(ep.chat([{"role": "user", "content": f"q{i}"}],
                                               SamplingParams(max_tokens=16), role="t")
                                       for i in range(17)))
            finally:
                await ep.aclose()
        asyncio.run(go())
        # One call alone (the second arrives only after the first's answer, which the server
        # held for its 500 ms latency), then the sixteen that queued behind it together.
        arrivals = srv.stats["arrivals"]
        assert arrivals[1] - arrivals[0] >= 0.5
        assert srv.stats["max_in_flight"] == 16
