"""Overlap of a new test set with existing benchmarks: is an item new, or a benchmark prompt again?

A model may have been tuned on XSTest, OR-Bench or EvoRefuse-Test; a custom set that repeats their
prompts measures memory, not over-refusal. Each item is compared with every reference prompt two
ways, because each misses what the other sees:

- embedding similarity (cosine of all-MiniLM-L6-v2 sentence embeddings): catches a reworded
  prompt, but an item that adds a long framing to a benchmark prompt drifts away from it;
- word 3-gram overlap: 1 when the shorter text appears whole in the other (a benchmark prompt
  wrapped in a framing), else the shared 3-grams over those of the shorter text, or over
  `ngram_floor` if that is more (a five-word benchmark prompt shares "how do i butcher a" with any
  question about butchering a chicken): catches the wrapped copy, misses rewording.

An item is too close when either passes its threshold. The defaults were chosen on one source and
checked on another (README, "Overlap with benchmarks"; `benchmarks/overlap.py`).

MiniLM is an English model: a translated benchmark prompt is not found by either measure, and
between texts not mostly in Latin script (Arabic, Chinese, Japanese...) its similarity means little
(unrelated Arabic requests average 0.73), so there only the 3-gram test decides and `nearest` is
None. Chinese and Japanese text is compared in character 3-grams (`languages.neutral_tokens`).

Reference files are read by `evorefuse.seeds.load_references` (anything `load_seeds` reads, all
rows included: XSTest's unsafe contrast prompts are part of the benchmark), which stops with an
`InputError` on a file that cannot be read as prompts; this module only compares texts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from evorefuse.languages import mostly_latin, neutral_tokens

NGRAM = 3

DEFAULT_SIMILARITY = 0.75
"""Cosine similarity at or above which an item is a benchmark prompt reworded. Fitted on XSTest
(the highest similarity of any of the 403 shipped seeds to an XSTest prompt, 0.73, rounded up),
where it flags none of them and, with the n-gram test, finds 98.6% of XSTest prompts lightly
changed; on EvoRefuse-Test, held out, 100% and no shipped seed (README, "Overlap with benchmarks")."""

DEFAULT_NGRAM_OVERLAP = 0.55
"""3-gram overlap at or above which an item is a copy; fitted and checked as `DEFAULT_SIMILARITY`."""

DEFAULT_NGRAM_FLOOR = 6
"""Fewest 3-grams a partial overlap is divided by (see the module docstring)."""

WHOLE_MIN_NGRAMS = 3
"""A text of at least this many 3-grams (five words) found whole in another is a copy of it;
shorter ones ("What is murder?") are everyone's wording."""


@dataclass(frozen=True)
class OverlapThresholds:
    """When an item counts as too close to a reference prompt (either test suffices)."""

    similarity: float = DEFAULT_SIMILARITY
    ngram_overlap: float = DEFAULT_NGRAM_OVERLAP
    ngram_floor: int = DEFAULT_NGRAM_FLOOR


@dataclass(frozen=True)
class ReferencePrompt:
    id: str
    prompt: str
    source: str
    """The reference file, as the user named it."""
    language: str


@dataclass(frozen=True)
class Match:
    """One reference prompt and how close an item is to it by both measures."""

    reference: ReferencePrompt
    similarity: float
    ngram_overlap: float


@dataclass(frozen=True)
class ItemOverlap:
    """An item's nearest reference prompts: by embedding, and by shared 3-grams (often the same
    prompt, not always). `too_close` names the measure(s) that passed their threshold."""

    nearest: Match | None
    """By embedding similarity, among reference prompts in Latin script; None for an item that is
    not (see the module docstring)."""
    most_shared: Match | None
    too_close_by: tuple[str, ...] = ()

    @property
    def too_close(self) -> bool:
        return bool(self.too_close_by)

    @property
    def closest(self) -> Match | None:
        """The match to report: the one that made the item too close, else the nearest."""
        if self.too_close_by == ("ngram_overlap",) or self.nearest is None:
            return self.most_shared
        return self.nearest

    def record(self) -> dict[str, object] | None:
        """The closest match as an export row keeps it (`nearest_benchmark`), JSON-ready."""
        m = self.closest
        if m is None:
            return None
        return {"prompt": m.reference.prompt, "id": m.reference.id, "source": m.reference.source,
                "similarity": round(m.similarity, 4), "ngram_overlap": round(m.ngram_overlap, 4),
                "too_close_by": list(self.too_close_by)}


@dataclass
class ReferenceSets:
    """Reference prompts of one or more benchmark files, with their embeddings and 3-gram index."""

    prompts: list[ReferencePrompt]
    files: list[str]
    _embeddings: np.ndarray | None = field(default=None, repr=False)
    _grams: list[set[tuple[str, ...]]] = field(default_factory=list, repr=False)
    _index: dict[tuple[str, ...], list[int]] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.prompts)

    def embeddings(self) -> np.ndarray:
        if self._embeddings is None:
            from evorefuse.scoring.embeddings import embed

            self._embeddings = embed([p.prompt for p in self.prompts])
        return self._embeddings

    def grams(self) -> tuple[list[set[tuple[str, ...]]], dict[tuple[str, ...], list[int]]]:
        if not self._grams and self.prompts:
            self._grams = [word_ngrams(p.prompt) for p in self.prompts]
            index: dict[tuple[str, ...], list[int]] = defaultdict(list)
            for i, grams in enumerate(self._grams):
                for g in grams:
                    index[g].append(i)
            self._index = dict(index)
        return self._grams, self._index


def word_ngrams(text: str, n: int = NGRAM) -> set[tuple[str, ...]]:
    """The text's `n`-grams of words (characters in Chinese and Japanese), cut the same way in
    every language so that items and references compare fairly."""
    words = neutral_tokens(text)
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def ngram_overlap(a: set[tuple[str, ...]], b: set[tuple[str, ...]],
                  floor: int = DEFAULT_NGRAM_FLOOR) -> float:
    """1 when the smaller set lies whole in the other (and has `WHOLE_MIN_NGRAMS`), else shared
    n-grams over those of the smaller set, or over `floor` if that is more."""
    if not a or not b:
        return 0.0
    shared, smaller = len(a & b), min(len(a), len(b))
    if shared == smaller >= WHOLE_MIN_NGRAMS:
        return 1.0
    return shared / max(smaller, floor, 1)


def find_overlaps(items: Sequence[str], references: ReferenceSets,
                  thresholds: OverlapThresholds = OverlapThresholds(),
                  chunk: int = 1024) -> list[ItemOverlap]:
    """Each item's nearest reference prompts, in the order of `items`, and whether it is too close
    to one. Embeddings go through `embed`'s cache, so a second call with the same texts is cheap."""
    if not items:
        return []
    if not references.prompts:
        return [ItemOverlap(None, None) for _ in items]
    from evorefuse.scoring.embeddings import embed

    ref_emb = references.embeddings()
    item_emb = embed(list(items))
    # Similarity only between Latin-script texts: others get -2, below any cosine.
    latin_refs = np.array([mostly_latin(p.prompt) for p in references.prompts])
    latin_items = np.array([mostly_latin(t) for t in items])
    best = np.zeros(len(items), dtype=np.int64)
    best_sim = np.full(len(items), -2.0, dtype=np.float32)
    for start in range(0, len(items), chunk):
        sims = np.where(latin_refs, item_emb[start:start + chunk] @ ref_emb.T, -2.0)
        best[start:start + chunk] = sims.argmax(axis=1)
        best_sim[start:start + chunk] = np.where(latin_items[start:start + chunk],
                                                 sims.max(axis=1), -2.0)
    ref_grams, index = references.grams()
    results = []
    for i, text in enumerate(items):
        grams = word_ngrams(text)
        sharing = {j for g in grams for j in index.get(g, ())}
        overlaps = {j: ngram_overlap(grams, ref_grams[j], thresholds.ngram_floor) for j in sharing}
        j_near = int(best[i])
        nearest = (Match(references.prompts[j_near], float(best_sim[i]), overlaps.get(j_near, 0.0))
                   if best_sim[i] > -2 else None)
        most_shared = None
        if overlaps:
            j_ng = max(overlaps, key=lambda j: (overlaps[j], -j))
            if overlaps[j_ng] > 0:
                sim = float(item_emb[i] @ ref_emb[j_ng])
                most_shared = Match(references.prompts[j_ng], sim, overlaps[j_ng])
        by = tuple(name for name, hit in (
            ("similarity", nearest is not None and nearest.similarity >= thresholds.similarity),
            ("ngram_overlap", most_shared is not None
             and most_shared.ngram_overlap >= thresholds.ngram_overlap)) if hit)
        results.append(ItemOverlap(nearest, most_shared, by))
    return results
