"""Labelling a user's file of prompts (what `evorefuse judge` runs): every input field kept, plus
the verdict, P(harmless), the judge's name and the votes; against a gold column, the gate's figures.

Everything is read and validated before the first prompt is judged, so bad input (a missing
column, an unknown gold value, an empty prompt) stops at once with the file and line, and never
after minutes of judging.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evorefuse.errors import InputError
from evorefuse.scoring.harm.gold import GateScore, gold_harmful, score
from evorefuse.scoring.harm.judge import PromptJudge
from evorefuse.scoring.harm.verdict import HarmVerdict
from evorefuse.tables import Table, column_texts, pick_column, read_table

PROMPT_COLUMNS = ("prompt", "instruction", "text")
BATCH = 64


@dataclass
class Prompts:
    """A validated input: the table, the prompts to judge and, with a gold column, its labels."""

    table: Table
    texts: list[str]
    gold: list[bool] | None


def read_prompts(path: Path, column: str | None, gold_column: str | None) -> Prompts:
    table = read_table(path)
    col = pick_column(table, path, column, PROMPT_COLUMNS, "--column", required=True)
    texts = column_texts(table, path, col, "prompt")
    for text, line in zip(texts, table.lines):
        if not text.strip():
            raise InputError("empty prompt", path=path, line=line, field=col)
    gold = None
    if gold_column is not None:
        gcol = pick_column(table, path, gold_column, (), "--gold", required=True)
        gold = []
        for rec, line in zip(table.records, table.lines):
            value = rec.get(gcol)
            g = gold_harmful(value) if value is not None else None
            if g is None:
                raise InputError(f"unknown gold value {value!r} (harmful: unsafe, harmful, toxic, "
                                 "1, true...; harmless: safe, harmless, benign, 0, false...)",
                                 path=path, line=line, field=gcol)
            gold.append(g)
    return Prompts(table, texts, gold)


async def judge_prompts(judge: PromptJudge, texts: Sequence[str], *, seed: int = 0,
                        batch: int = BATCH,
                        judged: Callable[[int], object] | None = None) -> list[HarmVerdict]:
    """Verdicts in order, judged in batches (the classifier embeds a batch at once). `judged` is
    told how many prompts each batch held: an LLM judge takes seconds a batch, so the command
    draws a progress bar with it."""
    out: list[HarmVerdict] = []
    for start in range(0, len(texts), batch):
        chunk = texts[start:start + batch]
        out.extend(await judge.judge(chunk, seed=seed))
        if judged is not None:
            judged(len(chunk))
    return out


def labelled_rows(table: Table, verdicts: Sequence[HarmVerdict]) -> list[dict[str, Any]]:
    """Each input record with `verdict`, `p_harmless`, `judge`, `votes` and, where there is one,
    `reason` added (replacing input fields of the same names)."""
    return [{**rec, **v.to_json()} for rec, v in zip(table.records, verdicts, strict=True)]


def gold_score(prompts: Prompts, verdicts: Sequence[HarmVerdict]) -> GateScore | None:
    return None if prompts.gold is None else score(verdicts, prompts.gold)
