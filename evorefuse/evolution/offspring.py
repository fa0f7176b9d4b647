"""Making a generation's offspring: operators chosen by the bandit, framings spread over the set.

The zero-cost arms (framings, and the lexicon's word swaps) need no model call and stay fluent;
the mutator's own rewrites and recombinations go on only when they still ask for the seed's
thing (`operators.intent`): the embedded 135M mutator mostly garbles or drifts.

Why framings are tracked here: a framing is a zero-cost operator that wraps the instruction in one
of its strategy's templates. If every lineage picked the same template the exported set would open
with the same words again and again, so each framing goes to the template the fewest incumbents
carry. Framings do not stack: a framing arm on a framed incumbent re-frames it, the instruction
inside in another template (`mutation.unframe`). Why re-frame rather than leave a framed incumbent
to the LLM strategies: offline, framings are what works (66 seeds x 5 generations against
`local-guarded`: 75 of 422 framings passed the checks and the judge, 5 of 601 rewrites and
recombinations by the embedded mutator did), and a lineage whose first framing moved the target without
making it refuse used to stop there, with most of its strategy's templates untried.

Every operator writes in the lineage's language: framings use that language's templates (a
strategy without any there is not offered), and an incumbent not yet in the lineage's language
(a seed `evolve --language` asked to carry into another) is rewritten by the LLM strategies only.
The lexicon's senses and the intent check (MiniLM) are English: other lineages go without them.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence

import numpy as np

from evorefuse.evolution.bandit import Bandit
from evorefuse.evolution.candidate import Candidate, Incumbent, Status
from evorefuse.evolution.lineage import Lineage
from evorefuse.evolution.rng import derive_seed
from evorefuse.languages import DEFAULT_LANGUAGE, primary
from evorefuse.models.endpoint import Endpoint
from evorefuse.operators import lexicon
from evorefuse.operators.intent import DEFAULT_INTENT_CHECK, IntentCheck
from evorefuse.operators.mutation import (
    Offspring,
    Unframed,
    frame,
    least_used_framing,
    mutate,
    recombine,
    unframe,
)
from evorefuse.operators.strategies import Strategy, all_framings, framings_for

FRAMING_ARM = "framing:"
LEXICON_ARM = lexicon.LEXICON_OPERATOR


def zero_cost_arms(strategies: Sequence[Strategy]) -> list[str]:
    """The bandit arms that call no model: each strategy's framings, and the lexicon."""
    return [f"{FRAMING_ARM}{s.name}" for s in strategies if s.framings] + [LEXICON_ARM]


class Breeder:
    def __init__(self, mutator: Endpoint, strategies: Sequence[Strategy],
                 semaphore: asyncio.Semaphore, *, run_seed: int, mutations: int,
                 temperature: float, max_tokens: int,
                 intent: IntentCheck | None = DEFAULT_INTENT_CHECK) -> None:
        self.mutator = mutator
        self.strategies = {s.name: s for s in strategies}
        self.sem = semaphore
        self.run_seed = run_seed
        self.mutations = mutations
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.intent = intent
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

    def framing_spans(self, text: str) -> list[tuple[int, int]]:
        """Where the framings `text` carries stand in it: the lexicon leaves them alone, so a
        framed text stays recognisably framed."""
        spans = []
        for f in self.framings_in(text):
            start = text.find(f)
            spans.append((start, start + len(f)))
        return spans

    def template_share(self, text: str) -> float:
        """The share of lineages whose incumbent already carries the framing `text` carries."""
        return max((self._share.get(f, 0.0) for f in self.framings_in(text)), default=0.0)

    # --- offspring -----------------------------------------------------------------------------
    async def mutants(self, lin: Lineage, gen: int, rng: np.random.Generator,
                      bandit: Bandit) -> list[Candidate]:
        """L offspring of the incumbent, operators chosen by the bandit. The incumbent is taken
        out of its framing once, for the choice of arms and for every framing among them."""
        inside = self._inside(lin.current.prompt)
        arms = bandit.choose(rng, self.mutations, self._allowed_arms(lin, bandit.arms, inside))
        offspring = await asyncio.gather(*(
            self._offspring(lin, arm, gen, j, inside) for j, arm in enumerate(arms)))
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
        return _candidate(await self._on_intent(o, lin), lin, gen, f"g{gen}-l{lin.index}-r{r}")

    def _allowed_arms(self, lin: Lineage, arms: Sequence[str],
                      inside: Unframed | None) -> list[str] | None:
        """The arms the bandit may pull for this lineage (None: all of them). Framings are left
        out when the incumbent carries a framing that cannot be taken off again (`inside` is
        None: a rewrite broke its template apart), is not yet in the lineage's language, or when the strategy
        has no framing in that language; the lexicon (English senses) when the
        lineage is not English or no word of the incumbent has a sense to swap."""
        prompt = lin.current.prompt
        swappable = lexicon.applies(prompt, lin.language, protected=self.framing_spans(prompt))
        allowed = [a for a in arms if (a != LEXICON_ARM or swappable) and (
            not a.startswith(FRAMING_ARM) or (
                inside is not None and lin.in_language
                and framings_for(self.strategies[a.removeprefix(FRAMING_ARM)], lin.language)))]
        return None if len(allowed) == len(arms) else allowed

    async def _on_intent(self, o: Offspring, lin: Lineage) -> Offspring:
        """The mutator's rewrite, or its rejection when it asks for something other than the
        seed. Only in English lineages of English seeds: the check is MiniLM similarity, which
        does not follow a request across languages or scripts (README, "Languages in a run")."""
        if (o.prompt is None or self.intent is None or lin.seed_language is not None
                or primary(lin.language) != DEFAULT_LANGUAGE):
            return o
        reason = await self.intent.check(o.prompt, lin.seed_prompt)
        if reason is None:
            return o
        return Offspring(None, o.operator, o.parents, reason, o.parse_route, o.raw)

    async def _offspring(self, lin: Lineage, arm: str, gen: int, j: int,
                         inside: Unframed | None) -> Offspring:
        cur, lineage, language = lin.current, lin.index, lin.language
        if arm == LEXICON_ARM:
            return lexicon.swap_words(cur.prompt, cur.id,
                                      derive_seed(self.run_seed, gen, lineage, j, "lexicon"),
                                      self.framing_spans(cur.prompt))
        if arm.startswith(FRAMING_ARM):
            strategy = self.strategies[arm.removeprefix(FRAMING_ARM)]
            # One rotation per generation, offset by lineage and offspring: lineages that frame
            # with the same strategy in the same generation start at different templates.
            start = derive_seed(self.run_seed, gen, "framing") + lineage * self.mutations + j
            if inside is None:  # only when the bandit had no other arm to offer
                return Offspring(None, arm, [cur.id], "no_framing")
            return self._frame(inside, cur.id, strategy, start, language)
        async with self.sem:
            o = await mutate(self.mutator, cur.prompt, cur.id, self.strategies[arm],
                             seed=derive_seed(self.run_seed, gen, lineage, j, "mut"),
                             temperature=self.temperature, max_tokens=self.max_tokens,
                             language=language)
        return await self._on_intent(o, lin)

    def _frame(self, inside: Unframed, parent_id: str, strategy: Strategy, start: int,
               language: str | None) -> Offspring:
        """The instruction in the strategy's least used template, never the one it wears now."""
        def share(template: str) -> float:
            return 2.0 if template == inside.template else self.template_share(template)

        variant = least_used_framing(strategy, share, start, language)
        return frame(inside.instruction, parent_id, strategy, variant, language)

    def _inside(self, prompt: str) -> Unframed | None:
        """What a framing would wrap: the prompt itself when it is not framed (template None),
        the instruction inside its framing when it is; None when it carries pieces of a
        framing that cannot be taken off."""
        if not self.framings_in(prompt):
            return Unframed(prompt, None)
        return unframe(prompt, list(self.strategies.values()))


def _candidate(o: Offspring, lin: Lineage, gen: int, cid: str) -> Candidate:
    return Candidate(id=cid, prompt=o.prompt, seed_id=lin.seed_id, lineage=lin.index,
                     parents=o.parents, strategy=o.operator, generation=gen,
                     category=lin.category,
                     status=Status.REJECTED if o.rejected else Status.PENDING,
                     rejected=o.rejected, parse_route=o.parse_route,
                     raw=None if o.prompt else o.raw[:500])
