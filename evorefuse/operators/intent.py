"""The intent check on a mutator's rewrites: keep only what still asks for the seed's thing.

Why: the embedded 135M mutator mostly garbles ("Suffer from a slowfire sapling I had to kill.")
or drifts to another request; the free checks of `parsing` only catch output that is not a request
at all. What separates the rest was measured on hand-labelled rewrites (README, "Fluent offline
operators"; `benchmarks/fluency.py`, labels and procedure there):

- the MiniLM cosine similarity of the rewrite to its lineage's seed separates rewrites that are
  both fluent and on intent from the others almost perfectly, since a 135M model's garbling also
  moves the meaning: every such rewrite scored at least 0.91, most others far below;
- the embedded model's own likelihood of the text (mean token log-probability, or SLOR, its gain
  over each token's context-free probability) does not: the garbled rewrites are the model's own
  samples, so it finds them as likely as fluent ones (AUC about 0.5).

So a rewrite or recombination whose similarity to the seed is below `MIN_INTENT_SIMILARITY` is
rejected as `off_intent`, when the mutator is the embedded model (`intent_check_for`). Framings
and the lexicon's swaps are not checked: they keep the seed's words by construction. The
threshold is for English (MiniLM is an English model); other languages are not checked.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from evorefuse.languages import DEFAULT_LANGUAGE, primary
from evorefuse.models.spec import ModelSpec
from evorefuse.scoring import embeddings

MIN_INTENT_SIMILARITY = 0.9
"""Cosine similarity (MiniLM) to the seed below which a rewrite is `off_intent`: fitted on
hand-labelled rewrites of shipped seeds the demo does not use (benchmarks/RESULTS.md, "fluency")."""


@dataclass(frozen=True)
class IntentCheck:
    """Rejects rewrites that no longer ask for the seed's thing; None turns it off."""

    min_similarity: float | None = MIN_INTENT_SIMILARITY

    @staticmethod
    def similarity(text: str, seed: str) -> float:
        emb = embeddings.embed([text, seed])
        return float(emb[0] @ emb[1])

    def reason(self, similarity: float) -> str | None:
        """Why a rewrite this similar to its seed must not go on, or None."""
        if self.min_similarity is not None and similarity < self.min_similarity:
            return "off_intent"
        return None

    async def check(self, text: str, seed: str,
                    language: str | None = DEFAULT_LANGUAGE) -> str | None:
        """The reject reason for `text`, a rewrite in a lineage whose seed is `seed`."""
        if self.min_similarity is None or primary(language) != "en":
            return None
        return self.reason(await asyncio.to_thread(self.similarity, text, seed))


DEFAULT_INTENT_CHECK = IntentCheck()
"""The check the engine applies unless told otherwise (frozen, so one instance serves all)."""


def intent_check_for(mutator: ModelSpec) -> IntentCheck | None:
    """The check for rewrites by this mutator: the embedded model's only. The threshold was fitted
    on its garbled rewrites; a capable model's good rewrites legitimately move further from the
    seed (a scenario added, two requests recombined), and 0.9 would reject most of them."""
    return DEFAULT_INTENT_CHECK if mutator.kind == "local" else None
