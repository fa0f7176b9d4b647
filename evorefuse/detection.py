"""Labelling a user's responses as refusals, with any detector, the LLM judge included.

Why a session even here: the `judge` detector calls a model, and those calls must go through the
request cache (labelling the same file twice costs nothing) and the ledger like every other call.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from evorefuse import interrupts
from evorefuse.config import Config
from evorefuse.errors import InputError, RunFailed
from evorefuse.evolution.progress import SILENT, Bar, Progress
from evorefuse.scoring.refusal.base import LABELS, Verdict
from evorefuse.scoring.refusal.factory import can_tier, get_detector
from evorefuse.scoring.refusal.gold import is_refusal, parse_gold_column
from evorefuse.session import Session
from evorefuse.tables import Table

CHUNK = {"judge": 16}
"""Responses labelled between two progress updates (a judge call is slow, a pattern fast)."""


def detect_responses(cfg: Config, detector: str, prompts: Sequence[str],
                     responses: Sequence[str], *, judge_model: str = "local",
                     progress: Progress = SILENT) -> list[Verdict]:
    """One verdict per response. Detectors without a model run in-process; `judge` asks
    `judge_model` (from the config; `local`, the embedded model, needs none), and `auto` or
    `learned:PATH` send their uncertain responses to `roles.detector_judge` when the config names
    one (tiered detection), both through the request cache and the ledger."""
    tier = cfg.roles.detector_judge if can_tier(detector) else None
    model = judge_model if detector == "judge" else tier
    step = CHUNK.get("judge" if model is not None else detector, 5000)
    bar = progress.bar(len(responses), f"detect ({detector})", unit="response")
    try:
        if model is None:
            det = get_detector(detector)
            out: list[Verdict] = []
            for i in range(0, len(responses), step):
                out += det.detect(list(prompts[i:i + step]), list(responses[i:i + step]))
                bar.update(len(responses[i:i + step]))
            return out
        return _with_model(cfg, detector, model, prompts, responses, step, bar)
    finally:
        bar.close()


def _with_model(cfg: Config, detector: str, model: str, prompts: Sequence[str],
                responses: Sequence[str], step: int, bar: Bar) -> list[Verdict]:
    cfg.model(model, where="--judge-model" if detector == "judge" else "roles.detector_judge")
    # read when called, as evaluate and seeds do, so one setting redirects every command
    from evorefuse.session import DEFAULT_CACHE

    session = Session.standalone(cfg, models=[model], cache_path=DEFAULT_CACHE, run_id="detect")

    async def go() -> list[Verdict]:
        det = session.detector_named(detector, model)
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


def parse_gold_labels(table: Table, path: Path, column: str, *, for_fit: bool) -> list[str]:
    """The gold column's labels (`gold.parse_gold`), checked before any detection runs: an unknown
    or empty value names its line; `for_fit` also needs both classes twice (a refit's folds)."""
    gold = parse_gold_column([rec.get(column) for rec in table.records], table.lines, path, column)
    if for_fit:
        from evorefuse.scoring.refusal.refit import (  # scipy: only to fit
            RefitError,
            check_labels,
        )

        try:
            check_labels(gold)
        except RefitError as exc:
            raise InputError(str(exc), path=path, field="--gold") from None
    return gold


def labelled_rows(records: Sequence[dict[str, Any]], verdicts: Sequence[Verdict],
                  gold: Sequence[str] | None) -> bytes:
    """JSONL: each record with the verdict; with gold labels also `gold_refusal` and
    `gold_label` (null for a binary gold refusal), so a report's figures can be recomputed."""
    lines = []
    for k, (rec, v) in enumerate(zip(records, verdicts)):
        row = dict(rec)
        row["refusal"] = v.refusal
        row["p_refusal"] = round(v.p_refusal, 4)
        row["label"] = v.label
        if gold is not None:
            row["gold_refusal"] = is_refusal(gold[k])
            row["gold_label"] = gold[k] if gold[k] in LABELS else None
        lines.append(orjson.dumps(row) + b"\n")
    return b"".join(lines)
