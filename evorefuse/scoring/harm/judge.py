"""Prompt judges as the gate calls them: the classifier, LLM judges voting, or both in tiers.

Names: `classifier` is the shipped offline classifier, and so is `local` in the judge role (the
embedded 135M model is worse than chance as a judge; `local-llm` asks it anyway). Any other name
is an LLM endpoint from the config.

Modes:
- `classifier`: the classifier alone (the default when every judge name is `local`/`classifier`);
- `llm`: every named judge votes on every prompt (`verdict.combine_votes`); the classifier votes
  too when it is named;
- `tiered`: the classifier decides what it is sure about (P(harmless) outside its band, in
  English); the LLM judges see only the rest, and their vote decides those. One LLM call per
  unsure prompt instead of one per prompt, and an LLM never lets through what the classifier
  finds clearly harmful.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal

from evorefuse.errors import InputError
from evorefuse.scoring.harm.classifier import Band, HarmClassifier
from evorefuse.scoring.harm.llm import llm_vote
from evorefuse.scoring.harm.names import (CLASSIFIER, CLASSIFIER_ALIASES, MODES, Mode,
                                          is_classifier, llm_judge_names)
from evorefuse.scoring.harm.verdict import CONTROVERSIAL, HarmVerdict, Vote, combine_votes

if TYPE_CHECKING:  # pragma: no cover
    from evorefuse.models.endpoint import Endpoint

def resolve_mode(names: Sequence[str], mode: Mode) -> Literal["classifier", "llm", "tiered"]:
    llms = llm_judge_names(names)
    if mode == "auto":
        return "llm" if llms else "classifier"
    if mode in ("llm", "tiered") and not llms:
        raise InputError(f"judge mode {mode!r} needs an LLM judge (a model name other than "
                         f"{', '.join(sorted(CLASSIFIER_ALIASES))})", field="judge")
    if mode not in MODES:
        raise InputError(f"unknown judge mode {mode!r} (known: {', '.join(MODES)})",
                         field="judge")
    return mode  # type: ignore[return-value]


class PromptJudge:
    """Judges batches of prompts. Build it with `build_prompt_judge`."""

    def __init__(self, mode: Literal["classifier", "llm", "tiered"],
                 llms: Mapping[str, "Endpoint"], classifier: HarmClassifier | None,
                 classifier_votes: bool) -> None:
        self.mode = mode
        self.llms = dict(llms)
        self.classifier = classifier
        self.classifier_votes = classifier_votes
        self.llm_calls = 0

    @property
    def names(self) -> list[str]:
        return ([CLASSIFIER] if self.classifier is not None else []) + list(self.llms)

    async def _classify(self, texts: Sequence[str]) -> list[HarmVerdict]:
        assert self.classifier is not None
        return await asyncio.to_thread(self.classifier.verdicts, list(texts))

    async def _llm_votes(self, text: str, seed: int) -> list[Vote]:
        self.llm_calls += len(self.llms)
        return list(await asyncio.gather(*(llm_vote(ep, name, text, seed=seed)
                                           for name, ep in self.llms.items())))

    async def judge(self, texts: Sequence[str], *, seed: int) -> list[HarmVerdict]:
        """One verdict per text, in order. The classifier embeds the whole batch at once; LLM
        judges are asked concurrently (each endpoint bounds its own concurrency)."""
        texts = list(texts)
        if self.mode == "classifier":
            return await self._classify(texts)
        base = await self._classify(texts) if self.classifier is not None else None
        if self.mode == "tiered":
            assert base is not None and self.classifier is not None
            # Inside the band, or outside it but in a language the classifier cannot read.
            unsure = [i for i, v in enumerate(base) if v.verdict == CONTROVERSIAL]
            votes = await asyncio.gather(*(self._llm_votes(texts[i], seed) for i in unsure))
            out = list(base)
            for i, llm in zip(unsure, votes):
                decided = combine_votes(llm, "+".join(self.llms))
                out[i] = HarmVerdict(decided.verdict, decided.p_harmless,
                                     f"{CLASSIFIER}+{decided.judge}", base[i].votes + tuple(llm))
            return out
        votes = await asyncio.gather(*(self._llm_votes(t, seed) for t in texts))
        name = "+".join(self.names if self.classifier_votes else self.llms)
        return [combine_votes(([*base[i].votes] if base is not None and self.classifier_votes
                               else []) + v, name) for i, v in enumerate(votes)]


def build_prompt_judge(names: Sequence[str], endpoints: Mapping[str, "Endpoint"] | None = None,
                       mode: Mode = "auto", band: tuple[float, float] | None = None,
                       classifier: HarmClassifier | None = None,
                       gate: bool = False) -> PromptJudge:
    """The judge for these names.

    `endpoints` maps every LLM judge name (`llm_judge_names(names)`) to its endpoint; `band`
    overrides the classifier's own (lo, hi); `gate`: the judge of the benign gate inside a run,
    whose classifier uses the model's stricter `gate_band` (`train.GATE_HARMFUL_PASS` says why);
    `classifier` is for tests and benchmarks that fit their own. A name without an endpoint is
    bad input (exit 2 at the command line).
    """
    names = list(names) or ["local"]
    resolved = resolve_mode(names, mode)
    endpoints = endpoints or {}
    llms = {}
    if resolved != "classifier":
        for n in llm_judge_names(names):
            if n not in endpoints:
                raise InputError(f"judge {n!r} is not configured (no endpoint for it)",
                                 field="judge")
            llms[n] = endpoints[n]
    named = any(is_classifier(n) for n in names)
    use_classifier = resolved in ("classifier", "tiered") or named
    clf = None
    if use_classifier:
        clf = classifier or HarmClassifier()
        if band is not None:
            clf = clf.with_band(Band(*band))
        elif gate:
            clf = clf.with_band(clf.model.gate_band)
    return PromptJudge(resolved, llms, clf, classifier_votes=named and resolved == "llm")
