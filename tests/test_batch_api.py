"""`batch = true`: every call through the OpenAI Batch API of a real loopback server.

The server (tests/loopback_batch.py) implements files, batches, the status progression, output and
error files, and the faults a client must survive; it counts every request line it executes by
custom id, so a request paid twice is visible.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
from loopback_batch import BatchFaults
from loopback_server import LoopbackServer
from test_reliability_common import (
    KEY_ENV,
    REFUSAL,
    cli,
    kill9,
    responder,
    short_stderr,
    spawn,
    wait_for,
    write_config,
)

from evorefuse.config import load_config
from evorefuse.errors import InputError
from evorefuse.models import retry
from evorefuse.models.base import SamplingParams
from evorefuse.models.batch_journal import BatchJournal, custom_id
from evorefuse.models.batch_queue import BatchProgress
from evorefuse.models.cache import RequestCache
from evorefuse.models.endpoint import Endpoint
from evorefuse.models.errors import EndpointRequestError, EndpointUnavailable
from evorefuse.models.ledger import Ledger
from evorefuse.models.openai_backend import OpenAIBackend
from evorefuse.models.pricing import call_cost, planned_cost
from evorefuse.models.spec import ModelSpec

PROMPTS = [f"{w} question number {i} about home repairs?"
           for i, w in enumerate(["I'm furious:", "Calmly:", "This is disgusting,", "Quick",
                                  "I feel worthless,", "Honestly"] * 4)]


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test-batch-key")
    monkeypatch.setattr(retry, "BACKOFF_BASE", 0.01)


def batch_spec(srv: LoopbackServer, **kw: Any) -> ModelSpec:
    base: dict[str, Any] = dict(name="bat", model="m", base_url=srv.base_url, api_key_env=KEY_ENV,
                                batch=True, batch_poll_interval=0.02, price_in=1.0,
                                price_out=2.0, max_retries=3, timeout=5.0)
    base.update(kw)
    return ModelSpec(**base)


def ask_all(spec: ModelSpec, prompts: list[str], cache: Path | None = None,
            params: SamplingParams = SamplingParams(seed=1, max_tokens=40),
            progress: list[BatchProgress] | None = None) -> tuple[list[Any], Ledger]:
    """Every prompt at once through one Endpoint, as `evaluate` asks."""
    async def go() -> list[Any]:
        backend = OpenAIBackend(spec)
        if progress is not None:
            assert backend.batch is not None
            backend.batch.on_progress = progress.append
        ep = Endpoint(backend, spec, RequestCache(cache) if cache else None, ledger)
        try:
            return await asyncio.gather(*(ep.chat([{"role": "user", "content": p}], params,
                                                  role="target") for p in prompts))
        finally:
            await ep.aclose()
    ledger = Ledger()
    return asyncio.run(go()), ledger


def direct_texts(srv: LoopbackServer, prompts: list[str],
                 params: SamplingParams = SamplingParams(seed=1, max_tokens=40)) -> list[str]:
    results, _ = ask_all(batch_spec(srv, batch=False), prompts, params=params)
    return [r.choices[0].text for r in results]


def test_concurrent_requests_go_out_as_one_batch_and_cost_half(tmp_path: Path) -> None:
    progress: list[BatchProgress] = []
    with LoopbackServer() as srv:
        results, ledger = ask_all(batch_spec(srv), PROMPTS, tmp_path / "c.sqlite",
                                  progress=progress)
        st = srv.stats
        assert st["requests"] == 0                      # no direct chat call
        assert st["files_uploaded"] == 1 and st["batches_created"] == 1
        assert st["batch_polls"] >= 3                   # validating -> ... -> completed
        assert sorted(st["batch_line_counts"].values()) == [1] * len(PROMPTS)
        texts = [r.choices[0].text for r in results]
        assert texts == direct_texts(srv, PROMPTS)      # the same answers as direct calls
    e = ledger.entry("target", "bat")
    assert e.calls == len(PROMPTS) and e.retries == 0
    spec = batch_spec(srv)
    assert e.cost == pytest.approx(0.5 * spec.cost(e.tokens_in, e.tokens_out))
    assert e.cost == pytest.approx(call_cost(spec, e.tokens_in, e.tokens_out, batch=True))
    assert [p.status for p in progress][-1] == "completed"
    assert progress[-1].completed == progress[-1].total == len(PROMPTS)
    assert {p.status for p in progress} >= {"validating", "in_progress", "completed"}


def test_n_samples_are_one_line_and_cached_per_sample(tmp_path: Path) -> None:
    params = SamplingParams(seed=3, n=3, temperature=1.0, max_tokens=30)
    with LoopbackServer() as srv:
        first, _ = ask_all(batch_spec(srv), PROMPTS[:5], tmp_path / "c.sqlite", params=params)
        assert srv.stats["n_values"] == [3] * 5 and srv.stats["batches_created"] == 1
        again, ledger = ask_all(batch_spec(srv), PROMPTS[:5], tmp_path / "c.sqlite",
                                params=params)
        assert srv.stats["batches_created"] == 1 and srv.stats["requests"] == 0
    assert [[c.text for c in r.choices] for r in again] == \
        [[c.text for c in r.choices] for r in first]
    assert all(len(r.choices) == 3 for r in again)
    assert ledger.entry("target", "bat").cache_hits == 15


def test_failed_lines_are_retried_as_a_smaller_batch(tmp_path: Path) -> None:
    with LoopbackServer(batch_faults=BatchFaults(fail_lines=4)) as srv:
        results, ledger = ask_all(batch_spec(srv), PROMPTS, tmp_path / "c.sqlite")
        counts = srv.stats["batch_line_counts"]
        assert srv.stats["batches_created"] == 2 and srv.stats["requests"] == 0
        assert sorted(counts.values()) == [1] * (len(PROMPTS) - 4) + [2] * 4
        assert [r.choices[0].text for r in results] == direct_texts(srv, PROMPTS)
    assert sum(r.retries for r in results) == 4
    assert ledger.entry("target", "bat").retries == 4


def test_failed_lines_can_be_retried_directly(tmp_path: Path) -> None:
    with LoopbackServer(batch_faults=BatchFaults(fail_lines=3)) as srv:
        results, ledger = ask_all(batch_spec(srv, batch_retry="direct"), PROMPTS)
        assert srv.stats["batches_created"] == 1
        assert srv.stats["requests"] == 3            # the three failed lines, sent directly
        assert all(r.choices[0].text for r in results)
    # Direct calls are billed at the full rate, batch lines at half.
    spec = batch_spec(srv)
    e = ledger.entry("target", "bat")
    assert 0.5 * spec.cost(e.tokens_in, e.tokens_out) < e.cost < spec.cost(e.tokens_in,
                                                                            e.tokens_out)


def test_an_expired_batch_keeps_its_completed_lines_and_resends_the_rest(tmp_path: Path) -> None:
    with LoopbackServer(batch_faults=BatchFaults(expire_after=7)) as srv:
        results, _ = ask_all(batch_spec(srv), PROMPTS, tmp_path / "c.sqlite")
        counts = srv.stats["batch_line_counts"]
        assert srv.stats["batches_created"] == 2
        assert srv.batch.batches["batch_000001"]["status"] == "expired"
        # Each request executed exactly once: the 7 done before expiry were not sent again.
        assert sorted(counts.values()) == [1] * len(PROMPTS)
        assert [r.choices[0].text for r in results] == direct_texts(srv, PROMPTS)


def test_a_batch_cancelled_elsewhere_is_sent_again(tmp_path: Path) -> None:
    """Someone cancels the batch (the provider's dashboard): its requests come back as
    `batch_cancelled` error lines and go out again in a new batch."""
    import threading

    faults = BatchFaults()
    faults.hold.set()
    with LoopbackServer(batch_faults=faults) as srv:
        out: dict[str, Any] = {}
        worker = threading.Thread(target=lambda: out.update(
            results=ask_all(batch_spec(srv), PROMPTS, tmp_path / "c.sqlite")[0]))
        worker.start()
        assert wait_for(lambda: srv.stats["batch_polls"] >= 3, timeout=60)
        status, _ = srv.batch.handle("POST", "/v1/batches/batch_000001/cancel", "", {}, b"")
        assert status == 200
        faults.hold.clear()
        worker.join(120)
        assert srv.batch.batches["batch_000001"]["status"] == "cancelled"
        assert srv.stats["batches_created"] == 2
        assert sorted(srv.stats["batch_line_counts"].values()) == [1] * len(PROMPTS)
        assert [r.choices[0].text for r in out["results"]] == direct_texts(srv, PROMPTS)


def test_malformed_and_unknown_lines_are_skipped_and_their_requests_retried(
        tmp_path: Path) -> None:
    with LoopbackServer(batch_faults=BatchFaults(malformed_lines=2, unknown_ids=3)) as srv:
        spec = batch_spec(srv)

        async def go() -> tuple[list[Any], dict[str, int]]:
            backend = OpenAIBackend(spec)
            ep = Endpoint(backend, spec, RequestCache(tmp_path / "c.sqlite"), Ledger())
            try:
                res = await asyncio.gather(*(ep.chat([{"role": "user", "content": p}],
                                                     SamplingParams(seed=1, max_tokens=40),
                                                     role="target") for p in PROMPTS))
            finally:
                await ep.aclose()
            assert backend.batch is not None
            return res, dict(backend.batch.stats)
        results, stats = asyncio.run(go())
        assert stats["malformed_lines"] == 2 and stats["unknown_lines"] == 3
        assert srv.stats["batches_created"] == 2
        # The two requests whose lines were unreadable went out again; nothing else did.
        assert sorted(srv.stats["batch_line_counts"].values()) == [1] * (len(PROMPTS) - 2) + [2] * 2
        assert [r.choices[0].text for r in results] == direct_texts(srv, PROMPTS)


def test_lines_that_keep_failing_end_in_a_clear_error() -> None:
    with LoopbackServer(batch_faults=BatchFaults(fail_lines=10_000)) as srv:
        with pytest.raises(EndpointUnavailable) as info:
            ask_all(batch_spec(srv, max_retries=1), PROMPTS[:2])
        assert srv.stats["batches_created"] == 2
    msg = str(info.value)
    assert "2 batches" in msg and "HTTP 500" in msg and "bat" in msg and "\n" not in msg


def test_a_batch_that_fails_validation_is_the_callers_error() -> None:
    with LoopbackServer(batch_faults=BatchFaults(fail_batches=1)) as srv:
        with pytest.raises(EndpointRequestError, match="batch_000001 failed .invalid_request"):
            ask_all(batch_spec(srv), PROMPTS[:3])


def test_a_create_lost_to_a_kill_is_adopted_not_paid_again(tmp_path: Path) -> None:
    """The state a kill between `POST /batches` and recording its id leaves: the file uploaded
    and recorded, a batch made from it on the server, no batch id in the journal."""
    params = SamplingParams(seed=1, max_tokens=40)
    with LoopbackServer() as srv:
        spec = batch_spec(srv)

        async def orphan() -> None:
            backend = OpenAIBackend(spec)
            queue = backend.batch
            assert queue is not None
            bodies = [backend._body([{"role": "user", "content": p}], params, 1, 1)
                      for p in PROMPTS[:4]]
            cids = [custom_id(queue.endpoint, b) for b in bodies]
            content = b"".join(json.dumps({"custom_id": c, "method": "POST",
                                           "url": "/v1/chat/completions", "body": b}).encode()
                               + b"\n" for c, b in zip(cids, bodies))
            file_id = await queue.api.upload(content, "orphan.jsonl")
            BatchJournal(RequestCache(tmp_path / "c.sqlite"), queue.endpoint).uploaded(file_id,
                                                                                       cids)
            await queue.api.create(file_id, {})
            await backend.aclose()
        asyncio.run(orphan())
        assert srv.stats["batches_created"] == 1
        results, _ = ask_all(spec, PROMPTS[:4], tmp_path / "c.sqlite", params=params)
        assert srv.stats["batches_created"] == 1 and srv.stats["files_uploaded"] == 1
        assert sorted(srv.stats["batch_line_counts"].values()) == [1] * 4
        assert [r.choices[0].text for r in results] == direct_texts(srv, PROMPTS[:4])


def test_dry_run_prices_batch_calls_at_the_batch_rate() -> None:
    spec = ModelSpec(name="x", model="m", price_in=2.0, price_out=8.0)
    batched = ModelSpec(name="x", model="m", price_in=2.0, price_out=8.0, batch=True,
                        batch_discount=0.4)
    assert planned_cost(spec, 1000, 500) == pytest.approx(spec.cost(1000, 500))
    assert planned_cost(batched, 1000, 500) == pytest.approx(0.4 * spec.cost(1000, 500))


def test_batch_on_the_embedded_model_is_bad_config(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[models.mine]\nmodel = "x"\nkind = "local"\nbatch = true\n')
    with pytest.raises(InputError) as info:
        load_config(cfg)
    assert info.value.line == 4 and info.value.field == "models.mine.batch"
    cfg.write_text('[models.mine]\nmodel = "x"\nbatch_retry = "later"\n')
    with pytest.raises(InputError, match="batch_retry"):
        load_config(cfg)


# --- the command line: evaluate through batches, killed while a batch is in flight ----------------

def _expected_rate(prompts: list[str], samples: int) -> float:
    refusals = sum(responder([{"role": "user", "content": p}], {"seed": 0, "index": i}) == REFUSAL
                   for p in prompts for i in range(samples))
    return refusals / (len(prompts) * samples)


def _evaluate_args(tmp: Path, base_url: str, samples: int = 1) -> list[str]:
    cfg = write_config(tmp / "batch.toml", base_url,
                       model_extra="batch = true\nbatch_poll_interval = 0.05")
    data = tmp / "data.jsonl"
    data.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    args = ["evaluate", str(data), "-c", str(cfg), "--cache", str(tmp / "cache.sqlite"),
            "--json", "--no-embeddings", "--detector", "pattern"]
    if samples > 1:
        args += ["--samples", str(samples), "--temperature", "0.7"]
    return args


@pytest.mark.slow
def test_evaluate_sends_every_prompt_through_batches(tmp_path: Path) -> None:
    with LoopbackServer(responder=responder) as srv:
        r = cli(*_evaluate_args(tmp_path, srv.base_url, samples=3))
        assert r.returncode == 0, r.stderr
        assert srv.stats["requests"] == 0 and srv.stats["batches_created"] == 1
    report = json.loads(r.stdout)
    assert report["refusal_rate"]["fake"] == pytest.approx(_expected_rate(PROMPTS, 3))
    assert 0 < report["refusal_rate"]["fake"] < 1


@pytest.mark.slow
def test_kill_9_while_a_batch_is_in_flight_resumes_by_polling_it(tmp_path: Path) -> None:
    faults = BatchFaults()
    faults.hold.set()  # the batch stays in_progress until the test lets it finish
    with LoopbackServer(responder=responder, batch_faults=faults) as srv:
        args = _evaluate_args(tmp_path, srv.base_url)
        proc = spawn(*args)
        try:
            assert wait_for(lambda: srv.stats["batch_polls"] >= 3, timeout=180), \
                proc.stderr.read() if proc.poll() is not None else "no poll"
        finally:
            kill9(proc)
        assert srv.stats["batches_created"] == 1 and not srv.stats["batch_line_counts"]
        faults.hold.clear()
        r = cli(*args)
        assert r.returncode == 0, r.stderr
        short_stderr(r.stderr)
        st = srv.stats
        assert st["batches_created"] == 1 and st["files_uploaded"] == 1  # polled, not re-sent
        assert sorted(st["batch_line_counts"].values()) == [1] * len(PROMPTS)
        assert st["requests"] == 0
        report = json.loads(r.stdout)
        assert report["refusal_rate"]["fake"] == pytest.approx(_expected_rate(PROMPTS, 1))
        # Once more: every sample from the cache, no batch call at all.
        polls = st["batch_polls"]
        again = cli(*args)
        assert again.returncode == 0 and json.loads(again.stdout) == report
        assert st["batch_polls"] == polls and st["files_uploaded"] == 1
    assert os.path.getsize(tmp_path / "cache.sqlite") > 0


def test_probe_checks_a_batched_model_in_seconds_not_a_batch() -> None:
    with LoopbackServer() as srv:
        async def go() -> Any:
            backend = OpenAIBackend(batch_spec(srv))
            try:
                return await backend.probe([{"role": "user", "content": "Say hi."}],
                                           SamplingParams(max_tokens=4))
            finally:
                await backend.aclose()
        res = asyncio.run(go())
        assert res.choices[0].text and srv.stats["requests"] == 1
        assert srv.stats["batches_created"] == 0 and srv.stats["files_uploaded"] == 0
    with LoopbackServer() as srv:
        spec = batch_spec(srv, base_url=srv.base_url + "/nowhere")

        async def broken() -> None:
            backend = OpenAIBackend(spec)
            try:
                await backend.probe([{"role": "user", "content": "Say hi."}], SamplingParams())
            finally:
                await backend.aclose()
        with pytest.raises(EndpointRequestError, match="HTTP 404"):
            asyncio.run(broken())


@pytest.mark.slow
def test_evolve_through_batches_gives_the_archive_of_direct_calls(tmp_path: Path,
                                                                  tmp_path_factory: Any) -> None:
    from test_reliability_common import archive_key, evolve_args, reference, status_json

    ref = reference(tmp_path_factory)
    with LoopbackServer(responder=responder) as srv:
        cfg = write_config(tmp_path / "batch.toml", srv.base_url,
                           model_extra="batch = true\nbatch_poll_interval = 0.05")
        run = tmp_path / "run"
        r = cli(*evolve_args(cfg, ref["seeds"], run), "-j", "64")
        assert r.returncode == 0, r.stderr
        assert srv.stats["requests"] == 0                      # every call went through batches
        batches = srv.stats["batches_created"]
    assert archive_key(run) == ref["archive"]
    st = status_json(run)
    calls = {k: e["calls"] for k, e in st["ledger"].items()}
    assert calls == {k: e["calls"] for k, e in ref["status"]["ledger"].items()}
    # Lineages share batches: far fewer batches than calls, and half the direct run's cost.
    assert batches < st["calls"] / 2
    assert st["cost_usd"] == pytest.approx(ref["status"]["cost_usd"] / 2, abs=2e-6)  # 6 digits


def test_the_dry_run_prices_a_batched_model_at_the_batch_rate(tmp_path: Path) -> None:
    from test_reliability_common import write_seeds

    seeds = write_seeds(tmp_path / "seeds.jsonl")
    totals = []
    for extra in ("", "batch = true\nbatch_discount = 0.4"):
        cfg = write_config(tmp_path / "c.toml", "http://127.0.0.1:9/v1", model_extra=extra)
        r = cli("evolve", "--dry-run", "-c", str(cfg), "--seeds", str(seeds))
        assert r.returncode == 0, r.stderr
        total = [ln.split() for ln in r.stdout.splitlines() if ln.startswith("total")][0]
        totals.append(float(total[-1]))
    assert totals[0] > 0 and totals[1] == pytest.approx(0.4 * totals[0], rel=1e-3)


def test_a_server_that_leaves_out_unread_fields_is_not_malformed(tmp_path: Path) -> None:
    """OpenAI's own example of a file object has no `status` (deprecated), and terse servers
    leave out what the client sent (endpoint, window) or never reads: every call still goes
    through one batch, nothing is retried or paid twice."""
    with LoopbackServer(batch_faults=BatchFaults(sparse_objects=True)) as srv:
        results, ledger = ask_all(batch_spec(srv), PROMPTS[:6], tmp_path / "c.sqlite")
        st = srv.stats
        assert st["requests"] == 0 and st["files_uploaded"] == 1 and st["batches_created"] == 1
        assert sorted(st["batch_line_counts"].values()) == [1] * 6
        assert [r.choices[0].text for r in results] == direct_texts(srv, PROMPTS[:6])
    assert ledger.entry("target", "bat").retries == 0
