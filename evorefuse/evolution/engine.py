"""The evolution engine: lineages, generations, annealing, the bandit, checkpoints.

One generation, per lineage (README, "How it works"):
  1. L offspring from operators chosen by the bandit (`offspring.Breeder`);
  2. the benign gate: free checks first, then the judge (`gate.BenignGate`);
  3. fitness under the scoring policy (`policy.ScoringPolicy`): every benign candidate (paper), a
     screen and a race (sampled fast), or the prior-ranked few scored until one wins (default);
  4. N recombinations, gated and scored the same way;
  5. simulated annealing between the incumbent and the best new candidate on equal terms (both
     scored on the same K cached samples); the best ever seen is kept.
All lineages of a generation run concurrently; everything that feeds back into choices (bandit,
surrogate, archive) is updated at the end of the generation in lineage order, so a resumed run
makes the same choices as an uninterrupted one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from evorefuse.config import Config
from evorefuse.errors import BudgetExceeded
from evorefuse.evolution import annealing
from evorefuse.evolution.bandit import Bandit
from evorefuse.evolution.candidate import Candidate, Incumbent, JudgeRecord, Status
from evorefuse.evolution.embed_batch import EmbedBatcher
from evorefuse.evolution.gate import BenignGate
from evorefuse.evolution.lineage import (
    GenStats,
    Lineage,
    LineageOutcome,
    seed_languages,
)
from evorefuse.evolution.offspring import Breeder, zero_cost_arms
from evorefuse.evolution.policy import ScoringPolicy
from evorefuse.evolution.presets import Plan
from evorefuse.evolution.progress import SILENT, Progress
from evorefuse.evolution.rng import derive_seed, rng_for
from evorefuse.models.endpoint import Endpoint
from evorefuse.models.ledger import Ledger
from evorefuse.operators.intent import intent_check_for
from evorefuse.operators.strategies import build_catalogue
from evorefuse.scoring import embeddings
from evorefuse.scoring.fitness import FitnessEstimator
from evorefuse.scoring.harm.judge import PromptJudge
from evorefuse.scoring.surrogate import RefusalSurrogate


class BudgetStop(Exception):
    """The run stopped because the next call would exceed the budget; it is resumable."""


class RunLog(Protocol):
    """Where the engine commits its work (the run directory's `RunStore` in practice)."""

    @property
    def checkpoint_file(self) -> Any: ...

    @property
    def archive_file(self) -> Any: ...

    def append_archive(self, records: Sequence[dict[str, Any]]) -> int: ...

    def truncate_archive(self, lines: int) -> None: ...

    def archive(self, committed_only: bool = True) -> list[dict[str, Any]]: ...

    def write_checkpoint(self, state: dict[str, Any]) -> None: ...

    def event(self, kind: str, **data: Any) -> None: ...


class Engine:
    def __init__(self, cfg: Config, plan: Plan, log: RunLog, *, mutator: Endpoint,
                 judge: PromptJudge, fitness: FitnessEstimator, ledger: Ledger,
                 progress: Progress = SILENT) -> None:
        self.cfg = cfg
        self.plan = plan
        self.log = log
        self.ledger = ledger
        self.progress = progress
        self.seed = cfg.run.seed
        strategies = build_catalogue(cfg.strategies, cfg.evolution.strategies, source=cfg.source)
        arms = [s.name for s in strategies]
        if plan.framings:
            arms += zero_cost_arms(strategies)
        self.bandit = Bandit(arms, "uniform" if plan.selection == "uniform" else cfg.evolution.bandit)
        self.surrogate = RefusalSurrogate()
        self.lineages: list[Lineage] = []
        self.generation = 0
        self.archive_lines = 0
        sem = asyncio.Semaphore(max(1, cfg.run.max_concurrency))
        embedder = EmbedBatcher()
        self.breeder = Breeder(mutator, strategies, sem, run_seed=self.seed,
                               mutations=plan.mutations,
                               temperature=cfg.evolution.mutator_temperature,
                               max_tokens=cfg.evolution.mutator_max_tokens,
                               intent=intent_check_for(mutator.spec))
        self.gate = BenignGate(judge, embedder, sem, judge_seed=derive_seed(self.seed, "judge"),
                               near_duplicate=cfg.evolution.near_duplicate,
                               judge_margin=cfg.evolution.judge_margin)
        self.scoring = ScoringPolicy(fitness, plan, sem, embedder, self.surrogate)

    # --- state ---------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"generation": self.generation, "archive_lines": self.archive_lines,
                "lineages": [lin.to_json() for lin in self.lineages],
                "bandit": self.bandit.to_json(), "plan": self.plan.__dict__,
                "updated": time.time(), "target_generations": self.cfg.run.generations,
                # What the run had paid for when this generation was committed: a cache that
                # lost its call log (deleted, replaced) cannot make a resumed run forget it.
                "spent": {"calls": self.ledger.total_calls, "cost": self.ledger.total_cost}}

    def restore(self, cp: dict[str, Any]) -> None:
        self.generation = cp["generation"]
        self.archive_lines = cp["archive_lines"]
        self.lineages = [Lineage.from_json(d) for d in cp["lineages"]]
        self.bandit = Bandit.from_json(cp["bandit"])
        self.log.truncate_archive(self.archive_lines)
        benign = [c for c in map(Candidate.from_json, self.log.archive()) if c.benign]
        if benign:
            texts = [c.prompt or "" for c in benign]
            self.gate.remember(embeddings.embed(texts), texts)
        scored = [c for c in benign if c.scored_at(self.plan.samples)]
        for c, e in zip(scored, embeddings.embed([c.prompt or "" for c in scored])
                        if scored else []):
            assert c.score is not None
            self.surrogate.add(e, c.score.p_refusal)

    # --- seeds ---------------------------------------------------------------------------------
    async def initialise(self, seeds: list[dict[str, Any]]) -> None:
        """Generation 0: judge and score every seed fully (the 'before' of every report)."""
        cands = [Candidate(id=f"seed-{i}", prompt=s["prompt"], seed_id=s["id"], lineage=i,
                           parents=[], strategy="seed", generation=0, category=s.get("category"),
                           status=Status.BENIGN)
                 for i, s in enumerate(seeds)]
        bar = self.progress.bar(len(cands), "gen 0 (seeds)")
        # The seeds' verdicts are the judge's calibration on each topic, not a filter.
        for c, v in zip(cands, await self.gate.verdicts([c.prompt or "" for c in cands])):
            c.judge = JudgeRecord(v)

        async def score(c: Candidate) -> None:
            await self.scoring.full(c)
            bar.update(1)
        try:
            await asyncio.gather(*(score(c) for c in cands))
        finally:
            bar.close()
        self.lineages = [Lineage(i, s["id"], s["prompt"], s.get("category"), Incumbent.of(c),
                                 Incumbent.of(c), _p_harmless(c.judge), **seed_languages(s))
                         for i, (s, c) in enumerate(zip(seeds, cands))]
        self._commit(cands, GenStats(candidates=len(cands), benign=len(cands)))

    # --- one generation ------------------------------------------------------------------------
    async def run_generation(self) -> GenStats:
        gen = self.generation + 1
        self.breeder.count_framings(self.lineages)
        bar = self.progress.bar(len(self.lineages), f"gen {gen}")

        async def one(lin: Lineage) -> LineageOutcome:
            out = await self._step(lin, gen)
            bar.update(1)
            return out
        try:
            outcomes = await asyncio.gather(*(one(lin) for lin in self.lineages))
        finally:
            bar.close()
        stats = GenStats()
        records: list[Candidate] = []
        k = self.plan.samples
        for lin, out in zip(self.lineages, outcomes):
            stats.add(out.stats)
            records.extend(out.records)
            for arm, reward in out.rewards:
                self.bandit.update(arm, reward)
            if out.new_current is not None:
                lin.current = Incumbent.of(out.new_current)
            scored = [c for c in out.records if c.benign and c.scored_at(k)]
            lin.evolved_scored += len(scored)
            for c in scored:
                if c.fitness > lin.best.fitness:
                    lin.best = Incumbent.of(c)
        if self.cfg.run.mode == "population":
            self._population_select(records)
        self.generation = gen
        self._commit(records, stats)
        return stats

    async def _step(self, lin: Lineage, gen: int) -> LineageOutcome:
        if self.plan.evaluations is not None:
            return await self._step_budgeted(lin, gen)
        out = LineageOutcome()
        rng = rng_for(self.seed, "gen", gen, "lineage", lin.index)
        cur = lin.current
        cands = await self.breeder.mutants(lin, gen, rng, self.bandit)
        seen = [cur.prompt]
        await self.gate.check(cands, lin, seen, out.stats)
        benign = [c for c in cands if c.benign]
        await self._score(benign, cur, out.stats, force=lin.evolved_scored == 0)
        # Recombination of the two best (mutants and incumbent), or across lineages in population mode.
        pool: list[Candidate | Incumbent] = sorted([*benign, cur], key=self.scoring.rank_key,
                                                   reverse=True)
        children: list[Candidate] = []
        for r in range(self.plan.recombinations):
            a, b = self._recombination_parents(pool, lin, rng, r)
            if a is None or b is None:
                break
            children.append(await self.breeder.child(a, b, lin, gen, r))
        if children:
            await self.gate.check(children, lin, seen + [c.prompt or "" for c in benign], out.stats)
            kids = [c for c in children if c.benign]
            await self._score(kids, cur, out.stats, force=lin.evolved_scored == 0 and not any(
                c.scored_at(self.plan.samples) for c in benign))
            benign += kids
        self._finish_step(out, lin, gen, cands + children, benign)
        return out

    async def _score(self, cands: list[Candidate], cur: Incumbent, stats: GenStats,
                     force: bool) -> None:
        if not cands:
            return
        if self.plan.screen:
            await self.scoring.score_screened(cands, cur, stats, force=force)
        else:
            await self.scoring.score_all(cands, stats)

    def _converged(self, lin: Lineage) -> bool:
        """The target refuses the incumbent on every sample: there is nothing left to gain, so
        the budgeted preset spends nothing more on this lineage."""
        cur = lin.current
        return cur.scored_at(self.plan.samples) and cur.refusal_rate >= 1.0

    def _prior(self, c: Candidate) -> float:
        return round(self.scoring.prior(c, self.bandit.mean, self.breeder.template_share), 4)

    async def _step_budgeted(self, lin: Lineage, gen: int) -> LineageOutcome:
        """The fast preset's generation: make L mutants and N recombinations, rank them by what
        costs nothing, and judge and score only the best `evaluations` of them."""
        out = LineageOutcome()
        if self._converged(lin):
            return out
        rng = rng_for(self.seed, "gen", gen, "lineage", lin.index)
        cur = lin.current
        cands = await self.breeder.mutants(lin, gen, rng, self.bandit)
        seen = [cur.prompt]
        await self.gate.free_checks(cands, lin, seen, out.stats)
        live = [c for c in cands if c.status is Status.PENDING]
        for c in live:
            c.prior = self._prior(c)
        ranked = sorted(live, key=lambda c: c.prior or 0.0, reverse=True)
        # Recombination pairs the incumbent with the most promising mutants (nothing is scored
        # yet), or in population mode the best of them with another lineage's incumbent.
        children: list[Candidate] = []
        for r in range(self.plan.recombinations):
            if self.cfg.run.mode == "population" and len(self.lineages) > 1:
                a, b = self._recombination_parents(ranked or [cur], lin, rng, r)
            elif r < len(ranked):
                a, b = cur, ranked[r]
            else:
                break
            assert a is not None and b is not None
            children.append(await self.breeder.child(a, b, lin, gen, r))
        if children:
            await self.gate.free_checks(children, lin, seen + [c.prompt or "" for c in live],
                                        out.stats)
            for c in children:
                if c.status is Status.PENDING:
                    c.prior = self._prior(c)
            cands += children
        queue = sorted((c for c in cands if c.status is Status.PENDING),
                       key=lambda c: c.prior or 0.0, reverse=True)
        want = self.plan.evaluations or len(queue)
        if self.plan.screen:
            want = max(want, self.plan.screen_top)
        chosen: list[Candidate] = []
        while queue and len(chosen) < want:  # judge in rank order until enough are benign
            batch, queue = queue[: want - len(chosen)], queue[want - len(chosen):]
            await self.gate.judge(batch, lin, out.stats)
            chosen += [c for c in batch if c.benign]
        for c in queue:
            c.skip("not_selected")
        if self.plan.screen:
            await self.scoring.score_screened(chosen, cur, out.stats,
                                                   force=lin.evolved_scored == 0)
        else:
            chosen = await self.scoring.score_until_one_wins(chosen, cur)
            out.stats.full_evals += len(chosen)
        self._finish_step(out, lin, gen, cands, chosen)
        return out

    def _finish_step(self, out: LineageOutcome, lin: Lineage, gen: int,
                     cands: list[Candidate], benign: list[Candidate]) -> None:
        """Bandit rewards (did the child beat its parent?) and annealing between the incumbent
        and the best fully scored new candidate."""
        cur = lin.current
        k = self.plan.samples
        for c in cands:
            if c.status is Status.SKIPPED:
                continue  # never scored: says nothing about its operator
            if not c.benign:
                out.rewards.append((c.strategy, 0.0))
            elif c.scored_at(k):
                out.rewards.append((c.strategy, 1.0 if c.fitness > cur.fitness else 0.0))
            elif c.screen is not None:
                out.rewards.append((c.strategy, 1.0 if c.screen > cur.refusal_rate else 0.0))
        full = [c for c in benign if c.scored_at(k)]
        if full:
            best = max(full, key=lambda c: c.fitness)
            p = annealing.accept_probability(best.fitness, cur.fitness,
                                             annealing.temperature(gen))
            u = float(rng_for(self.seed, "anneal", gen, lin.index).random())
            if u < p:
                best.accepted = True
                out.new_current = best
                out.stats.accepted += 1
        out.records = cands

    def _recombination_parents(self, pool: Sequence[Candidate | Incumbent], lin: Lineage,
                               rng: np.random.Generator, r: int
                               ) -> tuple[Candidate | Incumbent | None, Candidate | Incumbent | None]:
        if self.cfg.run.mode == "population" and len(self.lineages) > 1:
            other = self.lineages[(lin.index + 1 + int(rng.integers(len(self.lineages) - 1)))
                                  % len(self.lineages)]
            return (pool[0] if pool else None), other.current
        if len(pool) < 2:
            return None, None
        j = 1 + min(r, len(pool) - 2)
        return pool[0], pool[j]

    # --- population mode -----------------------------------------------------------------------
    def _population_select(self, records: list[Candidate]) -> None:
        """NSGA-II (DEAP) over (fitness, novelty) picks the next incumbents of all lineages."""
        from evorefuse.evolution.population import select_survivors

        # A candidate annealing just accepted is both a lineage's incumbent and a new record: it
        # enters the pool once, or NSGA-II could hand two lineages the same incumbent.
        pool = list({inc.id: inc for inc in [lin.current for lin in self.lineages] + [
            Incumbent.of(c) for c in records if c.benign and c.scored_at(self.plan.samples)]
        }.values())
        survivors = select_survivors(pool, len(self.lineages), self.gate.archive_emb)
        for lin, s in zip(self.lineages, survivors):
            lin.current = s

    # --- commit --------------------------------------------------------------------------------
    def _commit(self, records: list[Candidate], stats: GenStats) -> None:
        """Append the generation's records, then replace the checkpoint: the generation is final."""
        benign = [c for c in records if c.benign]
        if benign:
            # Candidates were embedded by the free checks; only the seeds still need it.
            missing = [c for c in benign if c.embedding is None]
            if missing:
                for c, e in zip(missing, embeddings.embed([c.prompt or "" for c in missing])):
                    c.embedding = e
            emb = np.vstack([c.embedding for c in benign]).astype(np.float32)
            self.gate.remember(emb, [c.prompt or "" for c in benign])
            for c, e in zip(benign, emb):
                if c.scored_at(self.plan.samples):
                    assert c.score is not None
                    self.surrogate.add(e, c.score.p_refusal)
        t0 = time.perf_counter()  # the checkpoint proper: archive append + state replace
        self.archive_lines += self.log.append_archive([c.to_json() for c in records])
        self.log.write_checkpoint(self.state())
        checkpoint_ms = round((time.perf_counter() - t0) * 1000, 2)
        fits = [lin.current.fitness for lin in self.lineages]
        rates = [lin.best.refusal_rate for lin in self.lineages]
        embedded = embeddings.cache_info()
        line = {
            "generation": self.generation, "best_fitness": max(fits),
            "mean_fitness": float(np.mean(fits)),
            "mean_best_refusal_rate": float(np.mean(rates)), **stats.to_json(),
            "calls": self.ledger.total_calls, "cache_hits": self.ledger.total_cache_hits,
            "cost": round(self.ledger.total_cost, 6), "checkpoint_ms": checkpoint_ms,
            "checkpoint_bytes": self.log.checkpoint_file.stat().st_size,
            "archive_bytes": self.log.archive_file.stat().st_size,
            "embedding_cpu_s": embedded["encode_cpu_s"],  # this process, so far
            "embedded_texts": embedded["misses"],  # texts encoded, so far
        }
        self.log.event("generation", **line)
        self.progress.generation(line)

    # --- driver --------------------------------------------------------------------------------
    async def run(self, seeds: list[dict[str, Any]], generations: int) -> None:
        try:
            if not self.lineages:
                self.log.event("start", seeds=len(seeds), generations=generations,
                               preset=self.plan.preset)
                await self.initialise(seeds)
            while self.generation < generations:
                await self.run_generation()
        except BudgetExceeded as exc:
            self.log.event("stopped_budget", reason=str(exc), generation=self.generation)
            raise BudgetStop(str(exc)) from None
        self.log.event("finished", generation=self.generation)


def _p_harmless(judge: JudgeRecord | None) -> float | None:
    return judge.p_harmless if judge is not None else None
