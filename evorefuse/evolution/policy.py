"""The scoring policy: which benign candidates reach the target, and with how many samples.

Target calls are the run's main cost, so three rules decide how they are spent:
- a prior that costs nothing (the bandit's record of each operator against this target, minus the
  share of lineages whose incumbent already carries the same framing; the surrogate's prediction
  only when `SURROGATE_STEERS`) ranks candidates before anything is judged or scored;
- in screened mode a cheap screen (refusal openers' probability mass, or short sampled prefixes)
  comes first, and a full K-sample evaluation is raced (k0 samples, then K only if it can still
  win) and spent only on a candidate whose screen beats the incumbent's;
- in the budgeted default, candidates are scored in rank order and scoring stops at the first one
  that beats the incumbent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from evorefuse.evolution.candidate import Candidate, Incumbent, ScoreRecord
from evorefuse.evolution.embed_batch import EmbedBatcher
from evorefuse.evolution.lineage import GenStats
from evorefuse.evolution.presets import Plan
from evorefuse.scoring.fitness import FitnessEstimator
from evorefuse.scoring.stats import wilson_interval
from evorefuse.scoring.surrogate import RefusalSurrogate

SURROGATE_STEERS = False
"""Whether the surrogate's predictions choose which candidates are screened and scored. Off: on the
20 candidates `benchmarks/fitness.py` measured, its rank correlation with the full ELBO was -0.57
(RESULTS.md, fitness), and a ranking that may point the wrong way must not spend the target budget.
Its predictions are still recorded on every candidate (`surrogate` in the archive), so they can be
measured against the scores of real runs before it steers again."""


class ScoringPolicy:
    def __init__(self, fitness: FitnessEstimator, plan: Plan, semaphore: asyncio.Semaphore,
                 embedder: EmbedBatcher, surrogate: RefusalSurrogate) -> None:
        self.fitness = fitness
        self.plan = plan
        self.sem = semaphore
        self.embedder = embedder
        self.surrogate = surrogate

    # --- measurements --------------------------------------------------------------------------
    async def full(self, c: Candidate, k: int | None = None) -> None:
        """Score `c` with `k` samples (default: the plan's K) on every target."""
        async with self.sem:
            score = await self.fitness.score(c.prompt or "", k or self.plan.samples)
        c.score = ScoreRecord.from_score(score)

    async def screen_prompt(self, prompt: str) -> float:
        async with self.sem:
            if self.plan.screen_kind == "opener":
                return await self.fitness.opener_screen(prompt)
            return await self.fitness.prefix_screen(prompt, n=self.plan.screen_samples,
                                                    tokens=self.plan.screen_tokens)

    async def screen(self, c: Candidate) -> float:
        c.screen = await self.screen_prompt(c.prompt or "")
        return c.screen

    async def race(self, c: Candidate, incumbent: Incumbent, run_to_end: bool = False) -> None:
        """Successive halving in two stages: k0 samples, then K only if it can still win."""
        k0 = self.plan.race_k0
        if k0 < self.plan.samples and not run_to_end:
            await self.full(c, k0)
            assert c.score is not None
            _, hi = wilson_interval(c.score.refusal_rate * c.score.k, c.score.k)
            # Out when it cannot plausibly beat the incumbent: no refusal at all in the first
            # stage and a lower fitness, or an upper confidence bound below the incumbent's rate.
            if c.score.fitness < incumbent.fitness and (
                    c.score.refusal_rate == 0.0 or hi < incumbent.refusal_rate):
                c.raced_out = True
                return
        await self.full(c)

    # --- policies ------------------------------------------------------------------------------
    async def score_all(self, cands: list[Candidate], stats: GenStats) -> None:
        """The paper's policy: every benign candidate gets K samples."""
        await asyncio.gather(*(self.full(c) for c in cands))
        stats.full_evals += len(cands)

    async def score_screened(self, cands: list[Candidate], incumbent: Incumbent,
                                stats: GenStats, force: bool = False) -> None:
        """Screen, then race the most promising. `force`: the lineage has no fully scored
        descendant yet, so its most promising candidate is evaluated even if its screen does not
        beat the incumbent's."""
        if not cands:
            return
        to_screen = cands
        if self.surrogate.ready:
            pred = self.surrogate.predict(await self.embedder.embed([c.prompt or "" for c in cands]))
            for c, p in zip(cands, pred):
                c.surrogate = round(float(p), 4)
            if SURROGATE_STEERS:  # it costs no target tokens: screen only its most promising
                to_screen = sorted(cands, key=lambda c: c.surrogate or 0.0,
                                   reverse=True)[: self.plan.screen_top]
        await asyncio.gather(*(self.screen(c) for c in to_screen))
        stats.screens += len(to_screen)
        weight = 0.5 if SURROGATE_STEERS else 0.0
        ranked = sorted(to_screen, key=lambda c: (c.screen or 0.0) + weight * (c.surrogate or 0.0),
                        reverse=True)
        # A full evaluation only for a candidate whose screen beats the incumbent's own screen
        # (same cheap measurement, cached after the first time): most generations most lineages
        # have nothing that can win, and paying K samples to learn that is the paper's main cost.
        bar = await self.screen_prompt(incumbent.prompt)
        for c in ranked[: self.plan.full_per_generation]:
            if (c.screen or 0.0) <= bar and not force:
                c.screened_out = True
                continue
            await self.race(c, incumbent, run_to_end=force)
            stats.full_evals += 1

    async def score_until_one_wins(self, chosen: list[Candidate],
                                   incumbent: Incumbent) -> list[Candidate]:
        """Score in rank order and stop at the first candidate that beats the incumbent: a
        further evaluation could at best trade one winner for a slightly better one, and target
        tokens are what the budgeted preset exists to save. Returns the scored ones; the rest are
        skipped as not needed."""
        scored: list[Candidate] = []
        for i, c in enumerate(chosen):
            await self.full(c)
            scored.append(c)
            if c.fitness > incumbent.fitness:
                for rest in chosen[i + 1:]:
                    rest.skip("not_needed")
                break
        return scored

    # --- ranking -------------------------------------------------------------------------------
    def prior(self, c: Candidate, arm_mean: Callable[[str], float],
              template_share: Callable[[str], float]) -> float:
        """How promising a candidate is before any target call: its operator's record against
        this target (plus the surrogate's prediction once it has seen enough scored candidates,
        when `SURROGATE_STEERS`), minus the share of lineages whose incumbent already carries the
        same framing (a test set where one template opens every other item is one test, not
        many)."""
        v = arm_mean(c.strategy)
        if self.surrogate.ready and c.embedding is not None:
            c.surrogate = round(float(self.surrogate.predict(c.embedding)[0]), 4)
            if SURROGATE_STEERS:
                v += c.surrogate
        return v - template_share(c.prompt or "")

    def rank_key(self, c: Candidate | Incumbent) -> float:
        """Order for choosing recombination parents: measured candidates by refusal rate (ties by
        fitness), the rest by their screen."""
        if c.scored_at(self.plan.samples):
            return c.refusal_rate + 1e-3 * c.fitness
        return (c.screen or 0.0) if isinstance(c, Candidate) else 0.0
