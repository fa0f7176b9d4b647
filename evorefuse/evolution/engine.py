"""The evolution engine: lineages, the benign gate, fitness, annealing, the bandit, checkpoints.

One generation, per lineage (DESIGN.md section 2):
  1. L offspring from operators chosen by the bandit (LLM rewrites, and in the fast preset also
     zero-cost framings of the same strategies);
  2. free checks first (parse, copy, near-duplicate, still on the seed's topic), then the judge;
  3. fitness: every benign candidate fully (paper), or a cheap screen for all and a raced full
     evaluation for the most promising (fast);
  4. N recombinations of the best two, gated and scored the same way;
  5. simulated annealing between the incumbent and the best new candidate on equal terms (both
     scored on the same K cached samples), best-ever kept.
All lineages of a generation run concurrently; everything that feeds back into choices (bandit,
surrogate, archive) is updated at the end of the generation in lineage order, so a resumed run
makes the same choices as an uninterrupted one.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from evorefuse.config import Config
from evorefuse.errors import BudgetExceeded
from evorefuse.evolution import annealing
from evorefuse.evolution.bandit import Bandit
from evorefuse.evolution.embed_batch import EmbedBatcher
from evorefuse.evolution.presets import Plan, plan_for
from evorefuse.evolution.rng import derive_seed, rng_for
from evorefuse.models.ledger import Ledger
from evorefuse.models.registry import Registry
from evorefuse.operators.judge import judge
from evorefuse.operators.mutation import Offspring, frame, least_used_framing, mutate, recombine
from evorefuse.operators.strategies import Strategy, build_catalogue
from evorefuse.runstore import RunStore
from evorefuse.scoring import embeddings
from evorefuse.scoring.fitness import FitnessEstimator, FitnessSettings, Score
from evorefuse.scoring.refusal.factory import get_detector
from evorefuse.scoring.surrogate import RefusalSurrogate


class BudgetStop(Exception):
    """The run stopped because the next call would exceed the budget; it is resumable."""


@dataclass
class Lineage:
    index: int
    seed_id: str
    seed_prompt: str
    category: str | None
    current: dict[str, Any]          # the incumbent's record (id, prompt, fitness, refusal_rate)
    best: dict[str, Any]             # best ever seen
    seed_p_harmless: float | None = None  # the judge's P(harmless) of the seed: its calibration
    evolved_scored: int = 0          # fully scored descendants (each lineage must export one)

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass
class GenStats:
    candidates: int = 0
    benign: int = 0
    judge_rejected: int = 0
    parse_failures: int = 0
    duplicates: int = 0
    off_topic: int = 0
    accepted: int = 0
    full_evals: int = 0
    screens: int = 0

    def add(self, other: "GenStats") -> None:
        for k, v in other.__dict__.items():
            setattr(self, k, getattr(self, k) + v)


@dataclass
class LineageOutcome:
    records: list[dict[str, Any]] = field(default_factory=list)
    rewards: list[tuple[str, float]] = field(default_factory=list)
    stats: GenStats = field(default_factory=GenStats)
    new_current: dict[str, Any] | None = None


def _summary(rec: dict[str, Any]) -> dict[str, Any]:
    return {k: rec.get(k) for k in ("id", "prompt", "fitness", "refusal_rate", "generation",
                                    "strategy", "k")}


class Engine:
    def __init__(self, cfg: Config, store: RunStore, registry: Registry, ledger: Ledger,
                 *, show_progress: bool = True) -> None:
        self.cfg = cfg
        self.store = store
        self.registry = registry
        self.ledger = ledger
        self.plan: Plan = plan_for(cfg)
        self.show_progress = show_progress
        self.seed = cfg.run.seed
        strategies = build_catalogue(cfg.strategies, cfg.evolution.strategies, source=cfg.source)
        self.strategies: dict[str, Strategy] = {s.name: s for s in strategies}
        arms = [s.name for s in strategies]
        if self.plan.framings:
            arms += [f"framing:{s.name}" for s in strategies if s.framings]
        kind = "uniform" if self.plan.selection == "uniform" else cfg.evolution.bandit
        self.bandit = Bandit(arms, kind)
        self.surrogate = RefusalSurrogate()
        self.mutator = registry.endpoint(cfg.roles.mutator)
        self.judges = [registry.endpoint(n) for n in cfg.judges()]
        self.targets = [registry.endpoint(n) for n in cfg.roles.targets]
        detector_endpoint = self.judges[0] if cfg.roles.detector == "judge" else None
        self.detector = get_detector(cfg.roles.detector, judge_endpoint=detector_endpoint)
        self.fitness = FitnessEstimator(self.targets, self.detector, FitnessSettings(
            samples=self.plan.samples, lam=cfg.fitness.lam, temperature=self.plan.temperature,
            top_p=cfg.fitness.top_p, max_tokens=self.plan.max_tokens, min_p=cfg.fitness.min_p,
            seed=derive_seed(self.seed, "target")))
        self.lineages: list[Lineage] = []
        self.generation = 0
        self.archive_lines = 0
        self._archive_emb: np.ndarray = np.zeros((0, embeddings.DIM), np.float32)
        self._sem = asyncio.Semaphore(max(1, cfg.run.max_concurrency))
        self._embedder = EmbedBatcher()
        self._framing_fragments = [part.strip() for s in strategies for t in s.framings
                                   for part in t.split("{x}") if len(part.strip()) >= 12]
        self._framing_share: dict[str, float] = {}
        self.min_seed_similarity = 0.3

    # --- state ---------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"generation": self.generation, "archive_lines": self.archive_lines,
                "lineages": [lin.to_json() for lin in self.lineages],
                "bandit": self.bandit.to_json(), "plan": self.plan.__dict__,
                "updated": time.time(), "target_generations": self.cfg.run.generations}

    def restore(self, cp: dict[str, Any]) -> None:
        self.generation = cp["generation"]
        self.archive_lines = cp["archive_lines"]
        self.lineages = [Lineage(**d) for d in cp["lineages"]]
        self.bandit = Bandit.from_json(cp["bandit"])
        self.store.truncate_archive(self.archive_lines)
        records = self.store.archive()
        benign = [r["prompt"] for r in records if r["status"] == "benign"]
        self._archive_emb = embeddings.embed(benign) if benign else self._archive_emb
        scored = [r for r in records if r["status"] == "benign" and r.get("k", 0) >= self.plan.samples]
        for r, e in zip(scored, embeddings.embed([r["prompt"] for r in scored]) if scored else []):
            self.surrogate.add(e, r.get("p_refusal", r["refusal_rate"]))

    # --- scoring helpers -----------------------------------------------------------------------
    async def _full(self, rec: dict[str, Any], k: int | None = None) -> Score:
        async with self._sem:
            score = await self.fitness.score(rec["prompt"], k or self.plan.samples)
        rec["fitness"] = score.fitness
        rec["refusal_rate"] = score.refusal_rate
        rec["p_refusal"] = round(score.p_refusal, 6)
        rec["k"] = score.n
        rec["targets"] = {n: s.to_json() for n, s in score.per_target.items()}
        return score

    async def _screen(self, rec: dict[str, Any]) -> float:
        async with self._sem:
            if self.plan.screen_kind == "opener":
                v = await self.fitness.opener_screen(rec["prompt"])
            else:
                v = await self.fitness.prefix_screen(rec["prompt"], n=self.plan.screen_samples,
                                                     tokens=self.plan.screen_tokens)
        rec["screen"] = v
        return v

    async def _race(self, rec: dict[str, Any], incumbent: dict[str, Any],
                    run_to_end: bool = False) -> None:
        """Successive halving in two stages: k0 samples, then K only if it can still win."""
        from evorefuse.scoring.stats import wilson_interval

        k0 = self.plan.race_k0
        if k0 < self.plan.samples and not run_to_end:
            await self._full(rec, k0)
            _, hi = wilson_interval(rec["refusal_rate"] * rec["k"], rec["k"])
            # Out when it cannot plausibly beat the incumbent: no refusal at all in the first
            # stage and a lower fitness, or an upper confidence bound below the incumbent's rate.
            if rec["fitness"] < incumbent["fitness"] and (
                    rec["refusal_rate"] == 0.0 or hi < incumbent["refusal_rate"]):
                rec["raced_out"] = True
                return
        await self._full(rec)

    # --- seeds ---------------------------------------------------------------------------------
    async def initialise(self, seeds: list[dict[str, Any]]) -> None:
        """Generation 0: score every seed fully (the 'before' of every report)."""
        records = []
        for i, s in enumerate(seeds):
            records.append({"id": f"seed-{i}", "prompt": s["prompt"], "seed_id": s["id"],
                            "lineage": i, "parents": [], "strategy": "seed", "generation": 0,
                            "category": s.get("category"), "status": "benign",
                            "judge": None, "rejected": None})
        bar = self._bar(len(records), "gen 0 (seeds)")
        async def score(rec: dict[str, Any]) -> None:
            async with self._sem:
                v = await judge(self.judges, rec["prompt"], seed=derive_seed(self.seed, "judge"))
            rec["judge"] = {"verdict": v.verdict, "votes": v.votes, "p_harmless": v.p_harmless}
            await self._full(rec)
            bar.update(1)
        try:
            await asyncio.gather(*(score(r) for r in records))
        finally:
            bar.close()
        self.lineages = [Lineage(i, s["id"], s["prompt"], s.get("category"),
                                 _summary(r), _summary(r), r["judge"]["p_harmless"])
                         for i, (s, r) in enumerate(zip(seeds, records))]
        self._commit(records, GenStats(candidates=len(records), benign=len(records)))

    # --- one generation ------------------------------------------------------------------------
    async def run_generation(self) -> GenStats:
        gen = self.generation + 1
        n = max(1, len(self.lineages))
        counts = Counter(f for lin in self.lineages for f in self._framings_in(lin.current["prompt"]))
        self._framing_share = {f: c / n for f, c in counts.items()}
        bar = self._bar(len(self.lineages), f"gen {gen}")
        async def one(lin: Lineage) -> LineageOutcome:
            out = await self._step(lin, gen)
            bar.update(1)
            return out
        try:
            outcomes = await asyncio.gather(*(one(lin) for lin in self.lineages))
        finally:
            bar.close()
        stats = GenStats()
        records: list[dict[str, Any]] = []
        for lin, out in zip(self.lineages, outcomes):
            stats.add(out.stats)
            records.extend(out.records)
            for arm, reward in out.rewards:
                self.bandit.update(arm, reward)
            if out.new_current is not None:
                lin.current = _summary(out.new_current)
            lin.evolved_scored += sum(1 for r in out.records if r["status"] == "benign"
                                      and r.get("k", 0) >= self.plan.samples)
            for r in out.records:
                if r["status"] == "benign" and r.get("k", 0) >= self.plan.samples and \
                        r["fitness"] > lin.best["fitness"]:
                    lin.best = _summary(r)
        if self.cfg.run.mode == "population":
            self._population_select(records)
        self.generation = gen
        self._commit(records, stats)
        return stats

    async def _mutants(self, lin: Lineage, gen: int, rng: np.random.Generator) -> list[dict[str, Any]]:
        # One framing per instruction: framing a framed text stacks the same few templates,
        # which makes the exported set long-winded and lexically repetitive.
        framed = bool(self._framings_in(lin.current["prompt"]))
        allowed = [a for a in self.bandit.arms if not a.startswith("framing:")] if framed else None
        arms = self.bandit.choose(rng, self.plan.mutations, allowed)
        offspring = await asyncio.gather(*(
            self._offspring(lin.current, arm, gen, lin.index, j) for j, arm in enumerate(arms)))
        return [self._record(o, lin, gen, f"g{gen}-l{lin.index}-m{j}") for j, o in enumerate(offspring)]

    async def _child(self, a: dict[str, Any], b: dict[str, Any], lin: Lineage, gen: int,
                     r: int) -> dict[str, Any]:
        async with self._sem:
            o = await recombine(self.mutator, (a["id"], a["prompt"]), (b["id"], b["prompt"]),
                                seed=derive_seed(self.seed, gen, lin.index, "rec", r),
                                temperature=self.cfg.evolution.mutator_temperature,
                                max_tokens=self.cfg.evolution.mutator_max_tokens)
        return self._record(o, lin, gen, f"g{gen}-l{lin.index}-r{r}")

    def _converged(self, lin: Lineage) -> bool:
        """The target refuses the incumbent on every sample: there is nothing left to gain, so
        the budgeted preset spends nothing more on this lineage."""
        cur = lin.current
        return cur.get("k", 0) >= self.plan.samples and (cur.get("refusal_rate") or 0.0) >= 1.0

    def _prior(self, r: dict[str, Any]) -> float:
        """How promising a candidate is before any target call: its operator's record against
        this target, plus the surrogate's prediction once it has seen enough scored candidates,
        minus the share of lineages whose incumbent already carries the same framing (a test set
        where one template opens every other item is one test, not many)."""
        v = self.bandit.mean(r["strategy"])
        if self.surrogate.ready and "_emb" in r:
            v += float(self.surrogate.predict(r["_emb"])[0])
        return v - self._template_share(r["prompt"])

    def _template_share(self, text: str) -> float:
        """The share of lineages whose incumbent already carries the framing `text` carries."""
        return max((self._framing_share.get(f, 0.0) for f in self._framings_in(text)),
                   default=0.0)

    def _framings_in(self, text: str) -> list[str]:
        """The fixed parts of framing templates that `text` carries."""
        return [f for f in self._framing_fragments if f in text]

    async def _step_budgeted(self, lin: Lineage, gen: int) -> LineageOutcome:
        """The fast preset's generation: make L mutants and N recombinations, rank them by what
        costs nothing, and judge and score only the best `evaluations` of them."""
        out = LineageOutcome()
        if self._converged(lin):
            return out
        rng = rng_for(self.seed, "gen", gen, "lineage", lin.index)
        cur = lin.current
        recs = await self._mutants(lin, gen, rng)
        seen = [cur["prompt"]]
        await self._free_checks(recs, lin, seen, out.stats)
        live = [r for r in recs if r["status"] == "pending"]
        for r in live:
            r["prior"] = round(self._prior(r), 4)
        ranked = sorted(live, key=lambda r: r["prior"], reverse=True)
        # Recombination pairs the incumbent with the most promising mutants (nothing is scored
        # yet), or in population mode the best of them with another lineage's incumbent.
        children = []
        for r in range(self.plan.recombinations):
            if self.cfg.run.mode == "population" and len(self.lineages) > 1:
                a, b = self._recombination_parents(ranked or [cur], lin, rng, r)
            elif r < len(ranked):
                a, b = cur, ranked[r]
            else:
                break
            children.append(await self._child(a, b, lin, gen, r))
        if children:
            await self._free_checks(children, lin, seen + [r["prompt"] for r in live], out.stats)
            for c in children:
                if c["status"] == "pending":
                    c["prior"] = round(self._prior(c), 4)
            recs += children
        queue = sorted((r for r in recs if r["status"] == "pending"),
                       key=lambda r: r["prior"], reverse=True)
        want = self.plan.evaluations or len(queue)
        if self.plan.screen:
            want = max(want, self.plan.screen_top)
        chosen: list[dict[str, Any]] = []
        while queue and len(chosen) < want:  # judge in rank order until enough are benign
            batch, queue = queue[: want - len(chosen)], queue[want - len(chosen):]
            await self._judge(batch, lin, out.stats)
            chosen += [r for r in batch if r["status"] == "benign"]
        for r in queue:
            r["status"], r["rejected"] = "skipped", "not_selected"
        if self.plan.screen:
            await self._evaluate(chosen, cur, out.stats, force=lin.evolved_scored == 0)
        else:
            chosen = await self._score_until_one_wins(chosen, cur)
            out.stats.full_evals += len(chosen)
        self._finish_step(out, lin, gen, recs, chosen)
        return out

    async def _score_until_one_wins(self, chosen: list[dict[str, Any]],
                                    cur: dict[str, Any]) -> list[dict[str, Any]]:
        """Score in rank order and stop at the first candidate that beats the incumbent: a
        further evaluation could at best trade one winner for a slightly better one, and target
        tokens are what the budgeted preset exists to save. Returns the scored ones; the rest are
        archived skipped."""
        scored: list[dict[str, Any]] = []
        for i, r in enumerate(chosen):
            await self._full(r)
            scored.append(r)
            if r["fitness"] > cur["fitness"]:
                for rest in chosen[i + 1:]:
                    rest["status"], rest["rejected"] = "skipped", "not_needed"
                break
        return scored

    def _finish_step(self, out: LineageOutcome, lin: Lineage, gen: int,
                     recs: list[dict[str, Any]], benign: list[dict[str, Any]]) -> None:
        """Bandit rewards (did the child beat its parent?) and annealing between the incumbent
        and the best fully scored new candidate."""
        cur = lin.current
        for r in recs:
            if r["status"] == "skipped":
                continue  # never scored: says nothing about its operator
            if r["status"] != "benign":
                out.rewards.append((r["strategy"], 0.0))
            elif r.get("k", 0) >= self.plan.samples:
                out.rewards.append((r["strategy"], 1.0 if r["fitness"] > cur["fitness"] else 0.0))
            elif r.get("screen") is not None:
                out.rewards.append((r["strategy"], 1.0 if r["screen"] > cur["refusal_rate"] else 0.0))
        full = [r for r in benign if r.get("k", 0) >= self.plan.samples]
        if full:
            best = max(full, key=lambda r: r["fitness"])
            p = annealing.accept_probability(best["fitness"], cur["fitness"],
                                             annealing.temperature(gen))
            u = float(rng_for(self.seed, "anneal", gen, lin.index).random())
            if u < p:
                best["accepted"] = True
                out.new_current = best
                out.stats.accepted += 1
        out.records = recs

    async def _step(self, lin: Lineage, gen: int) -> LineageOutcome:
        if self.plan.evaluations is not None:
            return await self._step_budgeted(lin, gen)
        out = LineageOutcome()
        rng = rng_for(self.seed, "gen", gen, "lineage", lin.index)
        cur = lin.current
        recs = await self._mutants(lin, gen, rng)
        seen = [cur["prompt"]]
        await self._gate(recs, lin, seen, out.stats)
        benign = [r for r in recs if r["status"] == "benign"]
        await self._evaluate(benign, cur, out.stats, force=lin.evolved_scored == 0)
        # Recombination of the two best (mutants and incumbent), or across lineages in population mode.
        pool = sorted(benign + [dict(cur, status="benign")], key=self._rank_key, reverse=True)
        children: list[dict[str, Any]] = []
        for r in range(self.plan.recombinations):
            a, b = self._recombination_parents(pool, lin, rng, r)
            if a is None or b is None:
                break
            children.append(await self._child(a, b, lin, gen, r))
        if children:
            await self._gate(children, lin, seen + [r["prompt"] for r in benign], out.stats)
            kids = [c for c in children if c["status"] == "benign"]
            await self._evaluate(kids, cur, out.stats,
                                 force=lin.evolved_scored == 0 and not any(
                                     r.get("k", 0) >= self.plan.samples for r in benign))
            benign += kids
        recs += children
        self._finish_step(out, lin, gen, recs, benign)
        return out

    def _rank_key(self, r: dict[str, Any]) -> float:
        if r.get("k", 0) >= self.plan.samples:
            return r["refusal_rate"] + 1e-3 * r["fitness"]
        return r.get("screen", 0.0)

    def _recombination_parents(self, pool: list[dict[str, Any]], lin: Lineage,
                               rng: np.random.Generator, r: int):
        if self.cfg.run.mode == "population" and len(self.lineages) > 1:
            other = self.lineages[(lin.index + 1 + int(rng.integers(len(self.lineages) - 1)))
                                  % len(self.lineages)]
            return (pool[0] if pool else None), other.current
        if len(pool) < 2:
            return None, None
        j = 1 + min(r, len(pool) - 2)
        return pool[0], pool[j]

    async def _offspring(self, cur: dict[str, Any], arm: str, gen: int, lineage: int,
                         j: int) -> Offspring:
        if arm.startswith("framing:"):
            strategy = self.strategies[arm.split(":", 1)[1]]
            # One rotation per generation, offset by lineage and offspring: lineages that frame
            # with the same strategy in the same generation start at different templates.
            start = derive_seed(self.seed, gen, "framing") + lineage * self.plan.mutations + j
            variant = least_used_framing(strategy, self._template_share, start)
            return frame(cur["prompt"], cur["id"], strategy, variant)
        async with self._sem:
            return await mutate(self.mutator, cur["prompt"], cur["id"], self.strategies[arm],
                                seed=derive_seed(self.seed, gen, lineage, j, "mut"),
                                temperature=self.cfg.evolution.mutator_temperature,
                                max_tokens=self.cfg.evolution.mutator_max_tokens)

    def _record(self, o: Offspring, lin: Lineage, gen: int, rid: str) -> dict[str, Any]:
        return {"id": rid, "prompt": o.prompt, "seed_id": lin.seed_id, "lineage": lin.index,
                "parents": o.parents, "strategy": o.operator, "generation": gen,
                "category": lin.category, "status": "rejected" if o.rejected else "pending",
                "rejected": o.rejected, "parse_route": o.parse_route, "judge": None,
                "raw": None if o.prompt else o.raw[:500]}

    async def _gate(self, recs: list[dict[str, Any]], lin: Lineage, seen: list[str],
                    stats: GenStats) -> None:
        """Free checks first (duplicates, topic), then the judge for what is left."""
        await self._free_checks(recs, lin, seen, stats)
        await self._judge(recs, lin, stats)

    async def _free_checks(self, recs: list[dict[str, Any]], lin: Lineage, seen: list[str],
                           stats: GenStats) -> None:
        """Parse failures, near-duplicates (of the archive and of this lineage) and drift off the
        seed's topic: everything that costs no model call is rejected before anything that does."""
        stats.candidates += len(recs)
        live = [r for r in recs if r["status"] == "pending"]
        stats.parse_failures += len(recs) - len(live)
        if not live:
            return
        texts = [r["prompt"] for r in live]
        rows = await self._embedder.embed([*texts, lin.seed_prompt, *seen])
        emb, seed_emb, seen_emb = rows[: len(texts)], rows[len(texts): len(texts) + 1], \
            rows[len(texts) + 1:]
        # Max similarity of each candidate to the archive and to this lineage's own texts,
        # without copying the (growing) archive matrix.
        nearest = np.maximum(
            (self._archive_emb @ emb.T).max(axis=0) if len(self._archive_emb) else -1.0,
            (seen_emb @ emb.T).max(axis=0) if len(seen_emb) else -1.0)
        thr = self.cfg.evolution.near_duplicate
        kept: list[np.ndarray] = []
        for r, e, near in zip(live, emb, nearest):
            if near >= thr or any(float(k @ e) >= thr for k in kept):
                r["status"], r["rejected"] = "rejected", "near_duplicate"
                stats.duplicates += 1
            elif float(seed_emb[0] @ e) < self.min_seed_similarity:
                r["status"], r["rejected"] = "rejected", "off_topic"
                stats.off_topic += 1
            else:
                kept.append(e)
                r["seed_similarity"] = round(float(seed_emb[0] @ e), 4)
                r["_emb"] = e

    async def _judge(self, recs: list[dict[str, Any]], lin: Lineage, stats: GenStats) -> None:
        async def one(r: dict[str, Any]) -> None:
            async with self._sem:
                v = await judge(self.judges, r["prompt"], seed=derive_seed(self.seed, "judge"))
            r["judge"] = {"verdict": v.verdict, "votes": v.votes, "p_harmless": v.p_harmless}
            if v.benign:
                r["status"] = "benign"
            elif self._as_harmless_as_seed(v.p_harmless, lin):
                r["status"] = "benign"
                r["judge"]["relative_to_seed"] = lin.seed_p_harmless
            else:
                r["status"], r["rejected"] = "rejected", f"judge:{v.verdict}"
                stats.judge_rejected += 1
        pending = [r for r in recs if r["status"] == "pending"]
        await asyncio.gather(*(one(r) for r in pending))
        stats.benign += sum(r["status"] == "benign" for r in pending)

    def _as_harmless_as_seed(self, p: float | None, lin: Lineage) -> bool:
        """The seed is harmless by the user's choice, so a judge that rates the seed itself as
        doubtful is biased, not informative. A candidate the judge rates at least as harmless as
        its seed (within a margin) did not become more harmful; that is the gate's question. With a
        capable judge seeds score near 1 and this changes nothing; with a tiny one it removes the
        bias instead of rejecting every rewrite at random."""
        margin = self.cfg.evolution.judge_margin
        return (p is not None and lin.seed_p_harmless is not None and margin is not None
                and p >= lin.seed_p_harmless - margin)

    async def _evaluate(self, recs: list[dict[str, Any]], cur: dict[str, Any],
                        stats: GenStats, force: bool = False) -> None:
        """Score candidates. `force`: the lineage has no fully scored descendant yet, so its most
        promising candidate is evaluated even if its screen does not beat the incumbent's."""
        if not recs:
            return
        if not self.plan.screen:
            await asyncio.gather(*(self._full(r) for r in recs))
            stats.full_evals += len(recs)
            return
        to_screen = recs
        if self.surrogate.ready:
            pred = self.surrogate.predict(await self._embedder.embed([r["prompt"] for r in recs]))
            for r, p in zip(recs, pred):
                r["surrogate"] = round(float(p), 4)
            # The surrogate costs no target tokens: only its most promising candidates get screened.
            to_screen = sorted(recs, key=lambda r: r["surrogate"], reverse=True)[: self.plan.screen_top]
        await asyncio.gather(*(self._screen(r) for r in to_screen))
        stats.screens += len(to_screen)
        ranked = sorted(to_screen, key=lambda r: r["screen"] + 0.5 * r.get("surrogate", 0.0),
                        reverse=True)
        # A full evaluation only for a candidate whose screen beats the incumbent's own screen
        # (same cheap measurement, cached after the first time): most generations most lineages
        # have nothing that can win, and paying K samples to learn that is the paper's main cost.
        bar = await self._screen(dict(prompt=cur["prompt"]))
        for r in ranked[: self.plan.full_per_generation]:
            if r["screen"] <= bar and not force:
                r["screened_out"] = True
                continue
            await self._race(r, cur, run_to_end=force)
            stats.full_evals += 1

    # --- population mode -----------------------------------------------------------------------
    def _population_select(self, records: list[dict[str, Any]]) -> None:
        """NSGA-II (DEAP) over (fitness, novelty) picks the next incumbents of all lineages."""
        from evorefuse.evolution.population import select_survivors

        pool = [lin.current for lin in self.lineages] + [
            _summary(r) for r in records
            if r["status"] == "benign" and r.get("k", 0) >= self.plan.samples]
        survivors = select_survivors(pool, len(self.lineages), self._archive_emb)
        for lin, s in zip(self.lineages, survivors):
            lin.current = s

    # --- commit --------------------------------------------------------------------------------
    def _commit(self, records: list[dict[str, Any]], stats: GenStats) -> None:
        """Append the generation's records, then replace the checkpoint: the generation is final."""
        embedded = {id(r): r.pop("_emb") for r in records if "_emb" in r}
        benign = [r for r in records if r["status"] == "benign"]
        if benign:
            # Candidates were embedded by the free checks; only the seeds still need it.
            missing = [r for r in benign if id(r) not in embedded]
            if missing:
                embedded.update(zip(map(id, missing), embeddings.embed([r["prompt"] for r in missing])))
            emb = np.vstack([embedded[id(r)] for r in benign]).astype(np.float32)
            self._archive_emb = np.vstack([self._archive_emb, emb])
            for r, e in zip(benign, emb):
                if r.get("k", 0) >= self.plan.samples:
                    self.surrogate.add(e, r.get("p_refusal", r["refusal_rate"]))
        t0 = time.perf_counter()  # the checkpoint proper: archive append + state replace
        self.archive_lines += self.store.append_archive(records)
        self.store.write_checkpoint(self.state())
        checkpoint_ms = round((time.perf_counter() - t0) * 1000, 2)
        fits = [lin.current["fitness"] for lin in self.lineages]
        rates = [lin.best["refusal_rate"] for lin in self.lineages]
        line = {
            "generation": self.generation, "best_fitness": max(fits), "mean_fitness": float(np.mean(fits)),
            "mean_best_refusal_rate": float(np.mean(rates)), **stats.__dict__,
            "calls": self.ledger.total_calls, "cache_hits": self.ledger.total_cache_hits,
            "cost": round(self.ledger.total_cost, 6), "checkpoint_ms": checkpoint_ms,
            "checkpoint_bytes": self.store.checkpoint_file.stat().st_size,
            "archive_bytes": self.store.archive_file.stat().st_size,
        }
        self.store.event("generation", **line)
        if self.show_progress:
            tqdm.write(
                f"gen {self.generation}: best {line['best_fitness']:.3f} mean {line['mean_fitness']:.3f} "
                f"refusal(best) {line['mean_best_refusal_rate']:.2f} | {stats.benign}/{stats.candidates} "
                f"benign, {stats.accepted} accepted, {stats.judge_rejected} judge-rejected, "
                f"{stats.parse_failures} unparsed, {stats.duplicates} dup | calls {line['calls']} "
                f"hits {line['cache_hits']} cost ${line['cost']:.4f}")

    def _bar(self, total: int, desc: str) -> tqdm:
        return tqdm(total=total, desc=desc, unit="lineage", leave=False,
                    disable=not self.show_progress)

    # --- driver --------------------------------------------------------------------------------
    async def run(self, seeds: list[dict[str, Any]], generations: int) -> None:
        try:
            if not self.lineages:
                self.store.event("start", seeds=len(seeds), generations=generations,
                                 preset=self.plan.preset)
                await self.initialise(seeds)
            while self.generation < generations:
                await self.run_generation()
        except BudgetExceeded as exc:
            self.store.event("stopped_budget", reason=str(exc), generation=self.generation)
            raise BudgetStop(str(exc)) from None
        self.store.event("finished", generation=self.generation)
