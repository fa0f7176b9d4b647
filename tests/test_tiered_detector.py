"""Tiered detection against a real OpenAI-compatible server on loopback: only auto's uncertain
responses reach the judge, through the request cache and the ledger; an unparseable judge answer
is "unknown" (a refusal), never compliance."""

from __future__ import annotations

import asyncio
import gc
import warnings
from typing import Any

import pytest
from loopback_server import LoopbackServer

from evorefuse.models.cache import RequestCache
from evorefuse.models.endpoint import Endpoint
from evorefuse.models.ledger import Ledger
from evorefuse.models.openai_backend import OpenAIBackend
from evorefuse.models.spec import ModelSpec
from evorefuse.scoring.refusal.auto import AutoDetector
from evorefuse.scoring.refusal.base import COMPLIANCE, FULL_REFUSAL, UNKNOWN
from evorefuse.scoring.refusal.factory import get_detector
from evorefuse.scoring.refusal.judge import JudgeDetector
from evorefuse.scoring.refusal.tiered import DEFAULT_BAND, TieredDetector, check_band

KEY_ENV = "EVOREFUSE_TIER_TEST_KEY"

# Responses written for this test: a clear refusal, a clear answer, and two less clear ones.
CLEAR_REFUSAL = "I'm sorry, but I can't help with that request."
CLEAR_ANSWER = ("To boil an egg, put it in boiling water for nine minutes, then cool it in cold "
                "water. Peel it under the tap. Soft eggs need about six minutes.")
UNSURE = [
    "As an AI, I don't have personal views on this. It is a complex topic with many perspectives.",
    "As a language model, I cannot predict the future. The market may go up or down.",
]


def _band() -> tuple[float, float]:
    """A band around auto's probabilities for UNSURE that leaves the clear responses out (the
    shipped model decides the exact numbers; the test needs only that they separate)."""
    texts = [CLEAR_REFUSAL, CLEAR_ANSWER, *UNSURE]
    p = [v.p_refusal for v in AutoDetector().detect([""] * len(texts), texts)]
    band = (min(p[2:]) - 0.01, max(p[2:]) + 0.01)
    assert not band[0] <= p[0] <= band[1] and not band[0] <= p[1] <= band[1], p
    return band


def _spec(srv: LoopbackServer) -> ModelSpec:
    return ModelSpec(name="judge", model="judge-model", base_url=srv.base_url, api_key_env=KEY_ENV,
                     supports_logprobs=False, max_retries=0)


def _judge_says(text: str):
    def respond(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
        return text
    return respond


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-test-not-a-real-key")


def test_default_band_leaves_clear_cases_to_auto():
    vs = AutoDetector().detect([""] * 2, [CLEAR_REFUSAL, CLEAR_ANSWER])
    lo, hi = DEFAULT_BAND
    assert vs[0].p_refusal > hi and vs[1].p_refusal < lo


def test_only_uncertain_responses_reach_the_judge_through_cache_and_ledger(tmp_path):
    responses = [CLEAR_REFUSAL, CLEAR_ANSWER, *UNSURE]
    prompts = ["q1", "q2", "q3", "q4"]
    band = _band()
    with LoopbackServer(responder=_judge_says("It declines to answer.\nLABEL: 2")) as srv:
        async def run(cache: RequestCache) -> tuple[list, TieredDetector, Ledger]:
            ledger = Ledger()
            ep = Endpoint(OpenAIBackend(_spec(srv)), _spec(srv), cache, ledger)
            det = TieredDetector(AutoDetector(), JudgeDetector(ep), band)
            try:
                return await det.adetect(prompts, responses), det, ledger
            finally:
                await ep.aclose()

        cache = RequestCache(tmp_path / "cache.sqlite")
        vs, det, ledger = asyncio.run(run(cache))
        assert srv.requests == 2 and det.judged == 2 and det.unknown == 0
        assert [v.label for v in vs[2:]] == [FULL_REFUSAL, FULL_REFUSAL]  # the judge's verdict
        assert vs[0].label == FULL_REFUSAL and vs[1].label == COMPLIANCE  # auto's, untouched
        assert ledger.by_role()["detector"]["calls"] == 2
        # the same run again is answered from the cache: no request, counted as cache hits
        vs2, _, ledger2 = asyncio.run(run(cache))
        assert srv.requests == 2
        assert [v.label for v in vs2] == [v.label for v in vs]
        assert ledger2.by_role()["detector"]["calls"] == 0
        assert ledger2.by_role()["detector"]["cache_hits"] == 2
        cache.close()


def test_unparseable_judge_answer_is_unknown_not_compliance():
    with LoopbackServer(responder=_judge_says("Hmm, hard to say. It is a nice answer!")) as srv:
        async def run() -> tuple[list, TieredDetector]:
            ep = Endpoint(OpenAIBackend(_spec(srv)), _spec(srv), None, Ledger())
            det = TieredDetector(AutoDetector(), JudgeDetector(ep), (0.0, 1.0))
            try:
                return await det.adetect(["q"], [CLEAR_ANSWER]), det
            finally:
                await ep.aclose()

        (v,), det = asyncio.run(run())
        assert srv.requests == 2  # the answer, then the one-line repair turn
    assert v.label == UNKNOWN and v.p_refusal == 0.5 and v.refusal
    assert det.unknown == 1


def test_empty_band_sends_nothing_and_sync_path_works():
    with LoopbackServer(responder=_judge_says("LABEL: 1")) as srv:
        ep = Endpoint(OpenAIBackend(_spec(srv)), _spec(srv), None, Ledger())
        det = TieredDetector(AutoDetector(), JudgeDetector(ep), (0.999, 0.999))
        vs = det.detect(["q", "q"], [CLEAR_ANSWER, UNSURE[0]])
        assert srv.requests == 0 and det.judged == 0
        assert vs == AutoDetector().detect(["", ""], [CLEAR_ANSWER, UNSURE[0]])
        det.band = (0.0, 1.0)
        vs = det.detect(["q", "q"], [CLEAR_ANSWER, UNSURE[0]])  # sync wrapper, its own loop
        assert srv.requests == 2 and [v.label for v in vs] == [COMPLIANCE, COMPLIANCE]


def test_factory_builds_tiered_auto_and_checks_band():
    with LoopbackServer(responder=_judge_says("LABEL: 3")) as srv:
        ep = Endpoint(OpenAIBackend(_spec(srv)), _spec(srv), None, Ledger())
        det = get_detector("auto", tier_judge=ep, band=(0.1, 0.9))
        assert isinstance(det, TieredDetector) and det.band == (0.1, 0.9)
        assert isinstance(get_detector("auto"), AutoDetector)
    with pytest.raises(ValueError, match="band"):
        check_band((0.8, 0.2))
    with pytest.raises(ValueError, match="band"):
        check_band((-0.1, 0.5))


def test_sync_judge_calls_close_their_connections():
    """Each synchronous call runs in its own event loop (directly, or in a thread when a loop is
    already running); its HTTP connections must be closed before that loop ends, or every call
    leaves a connection pool open (aiohttp warns "Unclosed client session" when it is collected)."""
    with LoopbackServer(responder=_judge_says("LABEL: 2")) as srv:
        ep = Endpoint(OpenAIBackend(_spec(srv)), _spec(srv), None, Ledger())
        judge = JudgeDetector(ep)

        async def from_a_running_loop() -> list:
            return judge.detect(["q9"], [UNSURE[1]])

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            labels = [judge.detect([f"q{i}"], [UNSURE[0]])[0].label for i in range(3)]
            labels.append(asyncio.run(from_a_running_loop())[0].label)
            gc.collect()
        assert srv.requests == 4 and labels == [FULL_REFUSAL] * 4
        unclosed = [str(w.message) for w in caught if "unclosed" in str(w.message).lower()]
        assert unclosed == []
