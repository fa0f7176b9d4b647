"""The one record that flows seed -> candidate -> verdict -> score -> archive -> export.

Why typed: a candidate used to be a dict of some 26 loose keys, and "fully scored" was spelled out
by hand in a dozen places. Here a candidate is a dataclass with a status enum, its judge verdict
and its score as records of their own, and one method answers "scored with K samples?". The
archive's JSONL layout is unchanged (score fields at the top level), so runs written by earlier
versions still resume and export; the sentence embedding travels with the candidate in memory but
is never serialised.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from evorefuse.scoring.fitness import Score, TargetScore
from evorefuse.scoring.harm.verdict import LABELS, HarmVerdict


class Status(StrEnum):
    """Where a candidate ended. `pending` exists only inside a generation."""

    PENDING = "pending"
    BENIGN = "benign"        # passed the free checks and the judge
    REJECTED = "rejected"    # `rejected` holds the reason
    SKIPPED = "skipped"      # never judged or scored: not_selected or not_needed


@dataclass
class JudgeRecord:
    """What the benign gate's judge said about a candidate, and whether seed calibration (not
    the verdict itself) let it through."""

    verdict: HarmVerdict
    relative_to_seed: float | None = None  # the seed's P(harmless), when calibration passed it

    @property
    def label(self) -> str:
        return self.verdict.verdict

    @property
    def p_harmless(self) -> float | None:
        return self.verdict.p_harmless

    def to_json(self) -> dict[str, Any]:
        d = self.verdict.to_json()
        if self.relative_to_seed is not None:
            d["relative_to_seed"] = self.relative_to_seed
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any] | None) -> JudgeRecord | None:
        """Also reads records of earlier versions (votes as bare labels, no judge name)."""
        if not d:
            return None
        data = dict(d)
        if data.get("verdict") not in LABELS:
            data["verdict"] = "unknown"
        return cls(HarmVerdict.from_json(data), d.get("relative_to_seed"))


@dataclass
class ScoreRecord:
    """A candidate's fitness over all targets, as measured with `k` samples each."""

    fitness: float
    refusal_rate: float
    p_refusal: float
    k: int
    targets: dict[str, TargetScore] = field(default_factory=dict)

    @classmethod
    def from_score(cls, score: Score) -> ScoreRecord:
        return cls(score.fitness, score.refusal_rate, round(score.p_refusal, 6), score.n,
                   dict(score.per_target))


@dataclass
class Candidate:
    id: str
    prompt: str | None           # None when the operator's output was unusable
    seed_id: str
    lineage: int
    parents: list[str]
    strategy: str                # "seed", a strategy name, "framing:<strategy>", "lexicon" or "recombine"
    generation: int
    category: str | None = None
    status: Status = Status.PENDING
    rejected: str | None = None  # why it was rejected or skipped
    judge: JudgeRecord | None = None
    parse_route: str | None = None
    raw: str | None = None       # the operator's raw output, kept when it could not be used
    seed_similarity: float | None = None
    prior: float | None = None
    surrogate: float | None = None
    screen: float | None = None
    screened_out: bool = False
    raced_out: bool = False
    score: ScoreRecord | None = None
    accepted: bool = False
    embedding: np.ndarray | None = field(default=None, repr=False, compare=False)

    # --- state ---------------------------------------------------------------------------------
    def scored_at(self, k: int) -> bool:
        """Scored with the run's full sample budget K: the only scores worth comparing,
        publishing or learning from."""
        return self.score is not None and self.score.k >= k

    def reject(self, reason: str) -> None:
        self.status, self.rejected = Status.REJECTED, reason

    def skip(self, reason: str) -> None:
        self.status, self.rejected = Status.SKIPPED, reason

    @property
    def benign(self) -> bool:
        return self.status is Status.BENIGN

    @property
    def fitness(self) -> float:
        return self.score.fitness if self.score is not None else float("-inf")

    @property
    def refusal_rate(self) -> float:
        return self.score.refusal_rate if self.score is not None else 0.0

    # --- archive format --------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id, "prompt": self.prompt, "seed_id": self.seed_id, "lineage": self.lineage,
            "parents": self.parents, "strategy": self.strategy, "generation": self.generation,
            "category": self.category, "status": str(self.status), "rejected": self.rejected,
            "judge": self.judge.to_json() if self.judge else None,
        }
        for key in ("parse_route", "raw", "seed_similarity", "prior", "surrogate", "screen"):
            value = getattr(self, key)
            if value is not None:
                d[key] = value
        for key in ("screened_out", "raced_out", "accepted"):
            if getattr(self, key):
                d[key] = True
        if self.score is not None:
            s = self.score
            d.update(fitness=s.fitness, refusal_rate=s.refusal_rate, p_refusal=s.p_refusal, k=s.k,
                     targets={n: t.to_json() for n, t in s.targets.items()})
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Candidate:
        score = None
        if d.get("k") is not None and d.get("fitness") is not None:
            score = ScoreRecord(d["fitness"], d.get("refusal_rate") or 0.0,
                                d.get("p_refusal", d.get("refusal_rate") or 0.0), d["k"],
                                {n: TargetScore(**t) for n, t in (d.get("targets") or {}).items()})
        return cls(
            id=d["id"], prompt=d.get("prompt"), seed_id=d.get("seed_id") or "",
            lineage=d.get("lineage", 0), parents=list(d.get("parents") or []),
            strategy=d.get("strategy") or "?", generation=d.get("generation", 0),
            category=d.get("category"), status=Status(d.get("status", "rejected")),
            rejected=d.get("rejected"), judge=JudgeRecord.from_json(d.get("judge")),
            parse_route=d.get("parse_route"), raw=d.get("raw"),
            seed_similarity=d.get("seed_similarity"), prior=d.get("prior"),
            surrogate=d.get("surrogate"), screen=d.get("screen"),
            screened_out=bool(d.get("screened_out")), raced_out=bool(d.get("raced_out")),
            score=score, accepted=bool(d.get("accepted")))


@dataclass
class Incumbent:
    """What a lineage keeps of its current and its best candidate (the checkpoint's view)."""

    id: str
    prompt: str
    fitness: float
    refusal_rate: float
    generation: int
    strategy: str
    k: int

    @classmethod
    def of(cls, c: Candidate) -> Incumbent:
        assert c.prompt is not None and c.score is not None, "only a scored candidate leads"
        return cls(c.id, c.prompt, c.score.fitness, c.score.refusal_rate, c.generation,
                   c.strategy, c.score.k)

    def scored_at(self, k: int) -> bool:
        return self.k >= k

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Incumbent:
        return cls(d["id"], d["prompt"], d["fitness"], d["refusal_rate"], d["generation"],
                   d["strategy"], d.get("k") or 0)
