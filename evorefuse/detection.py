"""Labelling a user's responses as refusals, with any detector, the LLM judge included.

Why a session even here: the `judge` detector calls a model, and those calls must go through the
request cache (labelling the same file twice costs nothing) and the ledger like every other call.
"""

from __future__ import annotations

import asyncio
from typing import Sequence

from evorefuse.config import Config
from evorefuse.errors import RunFailed
from evorefuse.scoring.refusal.base import Verdict, get_detector
from evorefuse.session import DEFAULT_CACHE, Session


def detect_responses(cfg: Config, detector: str, prompts: Sequence[str],
                     responses: Sequence[str], *, judge_model: str = "local") -> list[Verdict]:
    """One verdict per response. Detectors without a model run in-process; `judge` asks
    `judge_model` (from the config; `local`, the embedded model, needs none)."""
    if detector != "judge":
        return get_detector(detector).detect(list(prompts), list(responses))
    cfg.model(judge_model, where="--judge-model")
    session = Session.standalone(cfg, models=[judge_model], cache_path=DEFAULT_CACHE,
                                 run_id="detect")

    async def go() -> list[Verdict]:
        try:
            return await session.detector_named("judge", judge_model).adetect(
                list(prompts), list(responses))
        finally:
            await session.aclose()

    try:
        return asyncio.run(go())
    except RunFailed:
        raise
    except Exception as exc:  # an unexpected failure is still one line, exit 1
        raise RunFailed(f"{type(exc).__name__}: {exc}") from exc
    finally:
        session.close()
