"""The benign gate: what a candidate must pass before any target sees it.

Order matters for cost: checks that need no model call (the operator's own parse and sanity checks,
near-duplicates of the archive and of the lineage, drift off the seed's topic) run first; the judge
only sees what is left. The judge sees the candidate instruction alone, never the mutator's output
or justification (a judge shown the justification is lenient).

Languages: all-MiniLM-L6-v2 is an English model. Between texts mostly in Latin script its cosine
still separates texts, but unrelated Arabic requests framed by the same template reach 0.974 (3.8%
of such pairs pass the near-duplicate threshold 0.945), and for Chinese, Japanese and Arabic
rewrites it rates unrelated seeds about as close as a rewrite's own seed. So a candidate not mostly
in Latin script is a near duplicate by the Jaccard similarity of its word (Chinese and Japanese:
character) 3-grams, at a threshold fitted on the Latin-script languages to agree with the cosine
threshold; and the topic check runs only where a measure separates topics: both texts mostly Latin
and in the same language (faithful German, French and Spanish renderings of English seeds score as
low as 0.05, and 38-50% of them fall below the off-topic threshold). README, "Languages in a run",
says so; the figures are `benchmarks/gate_languages.py`'s.

Calibration against the seed: the seed is harmless by the user's choice, so a judge that rates the
seed itself as doubtful is biased rather than informative; a candidate it rates at least as harmless
as its seed (within `judge_margin`) did not become more harmful, which is the gate's question.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

from evorefuse.evolution.candidate import Candidate, JudgeRecord, Status
from evorefuse.evolution.embed_batch import EmbedBatcher
from evorefuse.evolution.lineage import GenStats, Lineage
from evorefuse.languages import mostly_latin
from evorefuse.scoring import embeddings
from evorefuse.scoring.harm.classifier import READS_ONLY
from evorefuse.scoring.harm.judge import PromptJudge
from evorefuse.scoring.harm.verdict import HarmVerdict, passes_gate
from evorefuse.scoring.overlap import word_ngrams

MIN_SEED_SIMILARITY = 0.295
"""Cosine similarity to the seed below which a candidate has drifted off its topic: 0.3 under float
MiniLM; with the int8 embedder, thresholds fitted to reproduce the float decisions come out at 0.295
to 0.300 by held-out source, and 0.295 agrees with them as well as 0.3 does (benchmarks/RESULTS.md,
embeddings)."""

NEAR_DUPLICATE_JACCARD = 0.6
"""Jaccard similarity of 3-gram sets at or above which a text not mostly in Latin script is a near
duplicate: about the value that flags the same share of same-seed pairs as the cosine threshold on
English, German, French and Spanish texts (0.59 with the int8 embedder at 0.945; it flags no pair of
different seeds in any of the seven shipped sets, where cosine flags 3.8% of the Arabic ones)."""


def jaccard(a: set[tuple[str, ...]], b: set[tuple[str, ...]]) -> float:
    """Shared n-grams over all n-grams of either text."""
    return len(a & b) / len(a | b) if a or b else 0.0


class NearDuplicates:
    """Texts already in a set, and whether new ones repeat one of them: by MiniLM cosine for
    texts mostly in Latin script, by 3-gram Jaccard otherwise (see the module docstring)."""

    def __init__(self, cosine: float, jaccard: float = NEAR_DUPLICATE_JACCARD) -> None:
        self.cosine = cosine
        self.jaccard = jaccard
        self._rows: np.ndarray = np.zeros((0, embeddings.DIM), np.float32)  # filled, then spare
        self._filled = 0
        self._sizes: list[int] = []                      # 3-grams of each non-Latin text
        self._index: dict[tuple[str, ...], list[int]] = defaultdict(list)

    @property
    def emb(self) -> np.ndarray:
        """The embeddings added so far, one row each, in order (a view: rows never change once
        added)."""
        return self._rows[: self._filled]

    def add(self, emb: np.ndarray, texts: Sequence[str]) -> None:
        """Add texts (rows of `emb`); only embeddings are kept of those mostly in Latin script."""
        if len(emb):
            self._append_rows(np.atleast_2d(emb.astype(np.float32)))
        for text in texts:
            if not mostly_latin(text):
                grams = word_ngrams(text)
                for g in grams:
                    self._index[g].append(len(self._sizes))
                self._sizes.append(len(grams))

    def _append_rows(self, rows: np.ndarray) -> None:
        """Copy `rows` after the filled ones, doubling the buffer when it is full: a set that
        grows one text at a time (a run's archive, a seed writer's prompts) then copies each row
        O(1) times on average instead of the whole set on every addition."""
        if rows.shape[1:] != self._rows.shape[1:]:
            raise ValueError(f"rows of shape {rows.shape[1:]}, the set's are {self._rows.shape[1:]}")
        need = self._filled + len(rows)
        if need > len(self._rows):
            grown = np.empty((max(need, 2 * len(self._rows)), *rows.shape[1:]), np.float32)
            grown[: self._filled] = self._rows[: self._filled]
            self._rows = grown
        self._rows[self._filled: need] = rows
        self._filled = need

    def repeated(self, texts: Sequence[str], emb: np.ndarray) -> list[bool]:
        """For each text (a row of `emb`), whether it repeats a text of the set."""
        near = (self.emb @ emb.T).max(axis=0) if len(self.emb) else np.full(len(texts), -1.0)
        return [bool(cos >= self.cosine) if mostly_latin(text)
                else self._jaccard(text) >= self.jaccard
                for text, cos in zip(texts, near)]

    def _jaccard(self, text: str) -> float:
        """The highest 3-gram Jaccard similarity of `text` to a non-Latin text of the set."""
        grams = word_ngrams(text)
        shared = Counter(j for g in grams for j in self._index.get(g, ()))
        return max((n / (len(grams) + self._sizes[j] - n) for j, n in shared.items()), default=0.0)


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
        self.archive = NearDuplicates(near_duplicate)

    @property
    def archive_emb(self) -> np.ndarray:
        """Embeddings of every benign candidate so far (novelty in population mode)."""
        return self.archive.emb

    def remember(self, emb: np.ndarray, texts: Sequence[str] = ()) -> None:
        """Add benign candidates (their embeddings and texts) to the archive later candidates must
        not repeat."""
        self.archive.add(emb, texts)

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
        lineage = NearDuplicates(self.near_duplicate)
        lineage.add(seen_emb, seen)
        repeats = [a or b for a, b in zip(self.archive.repeated(texts, emb),
                                          lineage.repeated(texts, emb))]
        # The topic is measurable only between Latin-script texts of one language.
        topical = lin.seed_language is None and mostly_latin(lin.seed_prompt)
        kept = NearDuplicates(self.near_duplicate)
        for c, text, e, repeat in zip(live, texts, emb, repeats):
            similarity = float(seed_emb @ e)
            if repeat or kept.repeated([text], e[None])[0]:
                c.reject("near_duplicate")
                stats.duplicates += 1
            elif topical and mostly_latin(text) and similarity < MIN_SEED_SIMILARITY:
                c.reject("off_topic")
                stats.off_topic += 1
            else:
                kept.add(e[None], [text])
                c.seed_similarity = round(similarity, 4)
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
                stats.judge_unreadable += v.reason is not None and READS_ONLY in v.reason
        stats.benign += sum(c.status is Status.BENIGN for c in pending)
