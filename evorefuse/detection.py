"""Labelling a user's responses as refusals, with any detector, the LLM judge included.

Why a session even here: the `judge` detector calls a model, and those calls must go through the
request cache (labelling the same file twice costs nothing) and the ledger like every other call.
"""

from __future__ import annotations

from typing import Sequence

from evorefuse import interrupts
from evorefuse.config import Config
from evorefuse.errors import RunFailed
from evorefuse.evolution.progress import SILENT, Bar, Progress
from evorefuse.scoring.refusal.base import Verdict, get_detector
from evorefuse.session import DEFAULT_CACHE, Session


CHUNK = {"judge": 16}
"""Responses labelled between two progress updates (a judge call is slow, a pattern fast)."""


def detect_responses(cfg: Config, detector: str, prompts: Sequence[str],
                     responses: Sequence[str], *, judge_model: str = "local",
                     progress: Progress = SILENT) -> list[Verdict]:
    """One verdict per response. Detectors without a model run in-process; `judge` asks
    `judge_model` (from the config; `local`, the embedded model, needs none)."""
    step = CHUNK.get(detector, 5000)
    bar = progress.bar(len(responses), f"detect ({detector})", unit="response")
    try:
        if detector != "judge":
            det = get_detector(detector)
            out: list[Verdict] = []
            for i in range(0, len(responses), step):
                out += det.detect(list(prompts[i:i + step]), list(responses[i:i + step]))
                bar.update(len(responses[i:i + step]))
            return out
        return _judge(cfg, judge_model, prompts, responses, step, bar)
    finally:
        bar.close()


def _judge(cfg: Config, judge_model: str, prompts: Sequence[str], responses: Sequence[str],
           step: int, bar: Bar) -> list[Verdict]:
    cfg.model(judge_model, where="--judge-model")
    session = Session.standalone(cfg, models=[judge_model], cache_path=DEFAULT_CACHE,
                                 run_id="detect")

    async def go() -> list[Verdict]:
        det = session.detector_named("judge", judge_model)
        out: list[Verdict] = []
        try:
            for i in range(0, len(responses), step):
                out += await det.adetect(list(prompts[i:i + step]), list(responses[i:i + step]))
                bar.update(len(responses[i:i + step]))
            return out
        finally:
            await session.aclose()

    try:
        return interrupts.run(go())
    except RunFailed:
        raise
    except Exception as exc:  # an unexpected failure is still one line, exit 1
        raise RunFailed(f"{type(exc).__name__}: {exc}") from exc
    finally:
        session.close()
