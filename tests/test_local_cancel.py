"""The embedded model stops generating when its call is cancelled (Ctrl-C cancels the run's task)
or when `cancel_all()` is called (a signal handler), instead of running on to max_tokens.

Behaviour only; how fast it stops is measured by benchmarks/local_cancel.py.
"""

from __future__ import annotations

import asyncio

import pytest

from evorefuse.models.base import SamplingParams
from evorefuse.models.local import (
    GenerationCancelled,
    LocalBackend,
    _Engine,
    cancel_all,
)

pytestmark = pytest.mark.local_model

# Greedy decoding of this prompt runs to max_tokens (checked: 200 of 200), so a generation of 2000
# tokens is still going when the test cancels it, on any machine.
STORY = [{"role": "user", "content": "Write a very long story about a dragon who learns to bake "
                                     "bread, with many chapters."}]
LONG = SamplingParams(temperature=0.0, max_tokens=2000)


async def _generating(engine: _Engine) -> None:
    """Wait until a generation holds the engine (the prompt is being evaluated or sampled)."""
    while not engine.lock.locked():
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)


def test_a_cancelled_call_stops_its_generation_before_returning() -> None:
    engine = _Engine.get()

    async def go() -> None:
        task = asyncio.ensure_future(LocalBackend().complete(STORY, LONG))
        await _generating(engine)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The cancelled call returned only once its worker thread had stopped: nothing still
        # generates in the background (it would hold the engine for 2000 tokens otherwise).
        assert not engine.lock.locked()
    asyncio.run(go())
    short = LocalBackend().complete_sync([{"role": "user", "content": "Say hi."}],
                                         SamplingParams(temperature=0.0, max_tokens=4))
    assert short.choices[0].text  # the engine serves the next call normally


def test_cancel_all_stops_a_running_generation() -> None:
    engine = _Engine.get()

    async def go() -> None:
        work = asyncio.ensure_future(asyncio.to_thread(engine.generate, STORY, LONG, 0))
        await _generating(engine)
        cancel_all()
        with pytest.raises(GenerationCancelled):
            await work
        assert not engine.lock.locked()
    asyncio.run(go())
    # Calls that start after cancel_all() run normally.
    res = LocalBackend().complete_sync([{"role": "user", "content": "Say hi."}],
                                       SamplingParams(temperature=0.0, max_tokens=4))
    assert res.choices[0].text and res.choices[0].finish_reason in ("stop", "length")
