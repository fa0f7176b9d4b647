"""The benign gate: what a candidate must pass before any target sees it.

Order matters for cost: checks that need no model call (the operator's own parse and sanity checks,
near-duplicates of the archive and of the lineage, drift off the seed's topic) run first; the judge
only sees what is left. The judge sees the candidate instruction alone, never the mutator's output
or justification (a judge shown the justification is lenient).

Calibration against the seed: the seed is harmless by the user's choice, so a judge that rates the
seed itself as doubtful is biased rather than informative; a candidate it rates at least as harmless
as its seed (within `judge_margin`) did not become more harmful, which is the gate's question.
"""

from __future__ import annotations

import asyncio
from typing import Sequence

import numpy as np

from evorefuse.evolution.candidate import Candidate, JudgeRecord, Status
from evorefuse.evolution.embed_batch import EmbedBatcher
from evorefuse.evolution.lineage import GenStats, Lineage
from evorefuse.scoring import embeddings
from evorefuse.scoring.harm.judge import PromptJudge
from evorefuse.scoring.harm.verdict import HarmVerdict, passes_gate

MIN_SEED_SIMILARITY = 0.295
"""Cosine similarity to the seed below which a candidate has drifted off its topic (0.3 under
float MiniLM; the int8 embedder runs about 0.005 lower here: benchmarks/RESULTS.md, embeddings)."""


class BenignGate:
    def __init__(self, judge: PromptJudge, embedder: EmbedBatcher,
                 semaphore: asyncio.Semaphore, *, judge_seed: int, near_duplicate: float,
                 judge_margin: float | None) -> None:
        self.prompt_judge = judge
        self.embedder = embedder
        self.sem = semaphore
        self.judge_seed = judge_seed
        self.near_duplicate = near_duplicate
        self.judge_margin = judge_margin
        self.archive_emb: np.ndarray = np.zeros((0, embeddings.DIM), np.float32)

    def remember(self, emb: np.ndarray) -> None:
        """Add embeddings of benign candidates to the archive later candidates must not repeat."""
        if len(emb):
            self.archive_emb = np.vstack([self.archive_emb, emb.astype(np.float32)])

    async def check(self, cands: list[Candidate], lin: Lineage, seen: list[str],
                    stats: GenStats) -> None:
        """Free checks, then the judge for what is left."""
        await self.free_checks(cands, lin, seen, stats)
        await self.judge(cands, lin, stats)

    async def free_checks(self, cands: list[Candidate], lin: Lineage, seen: list[str],
                          stats: GenStats) -> None:
        """Near-duplicates (of the archive and of this lineage's texts `seen`) and drift off the
        seed's topic; parse failures were already rejected by the operator."""
        stats.candidates += len(cands)
        live = [c for c in cands if c.status is Status.PENDING]
        stats.parse_failures += len(cands) - len(live)
        if not live:
            return
        texts = [c.prompt or "" for c in live]
        rows = await self.embedder.embed([*texts, lin.seed_prompt, *seen])
        emb, seed_emb, seen_emb = rows[: len(texts)], rows[len(texts)], rows[len(texts) + 1:]
        # Max similarity of each candidate to the archive and to this lineage's own texts,
        # without copying the (growing) archive matrix.
        nearest = np.maximum(
            (self.archive_emb @ emb.T).max(axis=0) if len(self.archive_emb) else -1.0,
            (seen_emb @ emb.T).max(axis=0) if len(seen_emb) else -1.0)
        kept: list[np.ndarray] = []
        for c, e, near in zip(live, emb, nearest):
            if near >= self.near_duplicate or any(float(k @ e) >= self.near_duplicate
                                                  for k in kept):
                c.reject("near_duplicate")
                stats.duplicates += 1
            elif float(seed_emb @ e) < MIN_SEED_SIMILARITY:
                c.reject("off_topic")
                stats.off_topic += 1
            else:
                kept.append(e)
                c.seed_similarity = round(float(seed_emb @ e), 4)
                c.embedding = e

    async def verdicts(self, prompts: Sequence[str]) -> list[HarmVerdict]:
        async with self.sem:
            return await self.prompt_judge.judge(prompts, seed=self.judge_seed)

    async def judge(self, cands: list[Candidate], lin: Lineage, stats: GenStats) -> None:
        """The judge for every candidate still pending (one batch); sets benign or rejected."""
        pending = [c for c in cands if c.status is Status.PENDING]
        if not pending:
            return
        for c, v in zip(pending, await self.verdicts([c.prompt or "" for c in pending])):
            c.judge = JudgeRecord(v)
            if v.benign:
                c.status = Status.BENIGN
            elif passes_gate(v, seed_p_harmless=lin.seed_p_harmless, margin=self.judge_margin):
                c.status = Status.BENIGN
                c.judge.relative_to_seed = lin.seed_p_harmless
            else:
                c.reject(f"judge:{v.verdict}")
                stats.judge_rejected += 1
        stats.benign += sum(c.status is Status.BENIGN for c in pending)
