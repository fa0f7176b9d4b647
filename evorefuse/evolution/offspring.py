"""Making a generation's offspring: operators chosen by the bandit, framings spread over the set.

Why framings are tracked here: a framing is a zero-cost operator that wraps the instruction in one
of its strategy's templates. If every lineage picked the same template the exported set would open
with the same words again and again, so each framing goes to the template the fewest incumbents
carry, and a framed incumbent is rewritten only by the LLM strategies (framings do not stack).

Every operator writes in the lineage's language: framings use that language's templates (a
strategy without any there is not offered), and an incumbent not yet in the lineage's language
(a seed `evolve --language` asked to carry into another) is rewritten by the LLM strategies only.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Sequence

import numpy as np

from evorefuse.evolution.bandit import Bandit
from evorefuse.evolution.candidate import Candidate, Incumbent, Status
from evorefuse.evolution.lineage import Lineage
from evorefuse.evolution.rng import derive_seed
from evorefuse.models.endpoint import Endpoint
from evorefuse.operators.mutation import Offspring, frame, least_used_framing, mutate, recombine
from evorefuse.operators.strategies import Strategy, all_framings, framings_for

FRAMING_ARM = "framing:"


class Breeder:
    def __init__(self, mutator: Endpoint, strategies: Sequence[Strategy],
                 semaphore: asyncio.Semaphore, *, run_seed: int, mutations: int,
                 temperature: float, max_tokens: int) -> None:
        self.mutator = mutator
        self.strategies = {s.name: s for s in strategies}
        self.sem = semaphore
        self.run_seed = run_seed
        self.mutations = mutations
        self.temperature = temperature
        self.max_tokens = max_tokens
        # Templates of every language: a German incumbent carries a German framing.
        self._fragments = [part.strip() for s in strategies for t in all_framings(s)
                           for part in t.split("{x}") if len(part.strip()) >= 12]
        self._share: dict[str, float] = {}

    # --- framings in the set -------------------------------------------------------------------
    def framings_in(self, text: str) -> list[str]:
        """The fixed parts of framing templates that `text` carries."""
        return [f for f in self._fragments if f in text]

    def count_framings(self, lineages: Sequence[Lineage]) -> None:
        """Record, at the start of a generation, how many incumbents carry each framing."""
        n = max(1, len(lineages))
        counts = Counter(f for lin in lineages for f in self.framings_in(lin.current.prompt))
        self._share = {f: c / n for f, c in counts.items()}

    def template_share(self, text: str) -> float:
        """The share of lineages whose incumbent already carries the framing `text` carries."""
        return max((self._share.get(f, 0.0) for f in self.framings_in(text)), default=0.0)

    # --- offspring -----------------------------------------------------------------------------
    async def mutants(self, lin: Lineage, gen: int, rng: np.random.Generator,
                      bandit: Bandit) -> list[Candidate]:
        """L offspring of the incumbent, operators chosen by the bandit."""
        arms = bandit.choose(rng, self.mutations, self._allowed_arms(lin, bandit.arms))
        offspring = await asyncio.gather(*(
            self._offspring(lin.current, arm, gen, lin.index, j, lin.language)
            for j, arm in enumerate(arms)))
        return [_candidate(o, lin, gen, f"g{gen}-l{lin.index}-m{j}")
                for j, o in enumerate(offspring)]

    async def child(self, a: Candidate | Incumbent, b: Candidate | Incumbent, lin: Lineage,
                    gen: int, r: int) -> Candidate:
        """Recombination of two parents into one short instruction."""
        async with self.sem:
            o = await recombine(self.mutator, (a.id, a.prompt or ""), (b.id, b.prompt or ""),
                                seed=derive_seed(self.run_seed, gen, lin.index, "rec", r),
                                temperature=self.temperature, max_tokens=self.max_tokens,
                                language=lin.language)
        return _candidate(o, lin, gen, f"g{gen}-l{lin.index}-r{r}")

    def _allowed_arms(self, lin: Lineage, arms: Sequence[str]) -> list[str] | None:
        """The arms the bandit may pull for this lineage (None: all of them). Framings are left
        out when the incumbent is framed already, not yet in the lineage's language, or when
        the strategy has no framing in that language."""
        framed = bool(self.framings_in(lin.current.prompt))
        allowed = [a for a in arms if not a.startswith(FRAMING_ARM) or (
            not framed and lin.in_language
            and framings_for(self.strategies[a.removeprefix(FRAMING_ARM)], lin.language))]
        return None if len(allowed) == len(arms) else allowed

    async def _offspring(self, cur: Incumbent, arm: str, gen: int, lineage: int,
                         j: int, language: str) -> Offspring:
        if arm.startswith(FRAMING_ARM):
            strategy = self.strategies[arm.removeprefix(FRAMING_ARM)]
            # One rotation per generation, offset by lineage and offspring: lineages that frame
            # with the same strategy in the same generation start at different templates.
            start = derive_seed(self.run_seed, gen, "framing") + lineage * self.mutations + j
            variant = least_used_framing(strategy, self.template_share, start, language)
            return frame(cur.prompt, cur.id, strategy, variant, language)
        async with self.sem:
            return await mutate(self.mutator, cur.prompt, cur.id, self.strategies[arm],
                                seed=derive_seed(self.run_seed, gen, lineage, j, "mut"),
                                temperature=self.temperature, max_tokens=self.max_tokens,
                                language=language)


def _candidate(o: Offspring, lin: Lineage, gen: int, cid: str) -> Candidate:
    return Candidate(id=cid, prompt=o.prompt, seed_id=lin.seed_id, lineage=lin.index,
                     parents=o.parents, strategy=o.operator, generation=gen,
                     category=lin.category,
                     status=Status.REJECTED if o.rejected else Status.PENDING,
                     rejected=o.rejected, parse_route=o.parse_route,
                     raw=None if o.prompt else o.raw[:500])
