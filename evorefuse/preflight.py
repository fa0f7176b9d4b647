"""One tiny request to see that a model answers, how fast, and whether it gives logprobs.

Why a failure here is bad input (exit 2): a model that cannot be reached before anything else has
happened is a configuration problem, named by its config key, not a failed run.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from evorefuse.config import Config
from evorefuse.errors import InputError
from evorefuse.models.base import SamplingParams
from evorefuse.models.errors import EndpointError
from evorefuse.session import Session

PROBE = [{"role": "user", "content": "Say hello in one word."}]


@dataclass(frozen=True)
class CheckResult:
    latency_s: float
    answer: str
    logprobs: bool


def check_endpoint(cfg: Config, name: str) -> CheckResult:
    """Call model `name` once, uncached (a check must reach the model)."""
    session = Session.standalone(cfg, models=[name], cache_path=None, run_id="check")

    async def go() -> CheckResult:
        try:
            t = time.perf_counter()
            r = await session.endpoint(name).chat(
                PROBE, SamplingParams(temperature=0.0, max_tokens=8, seed=0, logprobs=True,
                                      top_logprobs=3), role="check")
            return CheckResult(time.perf_counter() - t, r.choices[0].text,
                               bool(r.choices[0].logprobs))
        finally:
            await session.aclose()

    try:
        return asyncio.run(go())
    except EndpointError as exc:
        raise InputError(str(exc.message), path=cfg.source, field=f"models.{name}") from None

