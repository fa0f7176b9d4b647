"""A run collects cyclic garbage less often: responses with logprobs are thousands of containers
each, alive while their requests are in flight, and the default threshold turned that into full
collections of the whole heap (evorefuse/runner.py, RUN_GC_THRESHOLD)."""

from __future__ import annotations

import gc
from collections import deque

import orjson
import pytest
from loopback_server import _token_logprobs

from evorefuse.models.wire import parse_completion
from evorefuse.runner import RUN_GC_THRESHOLD, collecting_less_often

MESSAGES = [{"role": "user", "content": "How do I kill a Python process that hangs?"}]


def _target_body(i: int) -> bytes:
    """A target's answer as an OpenAI-compatible server sends it: 28 tokens, top-20 logprobs."""
    tokens = [f" w{i}-{j}" for j in range(28)]
    return orjson.dumps({"choices": [{"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": "".join(tokens)},
                                      "logprobs": {"content": _token_logprobs(tokens, 20, str(i))}}],
                         "usage": {"prompt_tokens": 12, "completion_tokens": 28}})


def _collections_while_parsing(bodies: list[bytes], in_flight: int = 128) -> dict[int, int]:
    """Collections per generation while parsing `bodies`, the last `in_flight` results alive."""
    counts = {0: 0, 1: 0, 2: 0}

    def count(phase: str, info: dict) -> None:
        if phase == "stop":
            counts[info["generation"]] += 1

    alive: deque = deque(maxlen=in_flight)
    gc.collect()
    gc.callbacks.append(count)
    try:
        for body in bodies:
            alive.append(parse_completion(orjson.loads(body), MESSAGES))
    finally:
        gc.callbacks.remove(count)
    return counts


def test_in_flight_responses_no_longer_trigger_collections() -> None:
    bodies = [_target_body(i) for i in range(300)]
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)                  # Python's default, whatever the test runner set
    try:
        default = _collections_while_parsing(bodies)
        with collecting_less_often():
            assert gc.get_threshold() == (RUN_GC_THRESHOLD, 10, 10)
            tuned = _collections_while_parsing(bodies)
        assert gc.get_threshold() == (700, 10, 10)
    finally:
        gc.set_threshold(*before)
    assert default[0] > 300 and default[1] > 30    # more than one young collection per response
    assert sum(tuned.values()) * 20 < sum(default.values()), (default, tuned)


def test_thresholds_are_put_back_after_an_error_and_collection_off_stays_off() -> None:
    before = gc.get_threshold()
    try:
        gc.set_threshold(900, 7, 3)
        with pytest.raises(RuntimeError), collecting_less_often():
            assert gc.get_threshold() == (RUN_GC_THRESHOLD, 7, 3)
            raise RuntimeError("a run fails")
        assert gc.get_threshold() == (900, 7, 3)
        gc.set_threshold(0, 7, 3)                  # automatic collection switched off
        with collecting_less_often():
            assert gc.get_threshold()[0] == 0
        with collecting_less_often(threshold=10):  # never lowered below what was set
            assert gc.get_threshold()[0] == 0
        gc.set_threshold(100_000, 7, 3)
        with collecting_less_often():
            assert gc.get_threshold()[0] == 100_000
    finally:
        gc.set_threshold(*before)
