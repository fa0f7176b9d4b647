"""A lineage (one per seed) and what one generation of it produced.

A lineage writes in one language (`language`, a BCP-47 code): the seed's own, or the one
`evolve --language` asked for. When the seed was written in another language (`seed_language`),
the lineage starts from a text not in its language: until an incumbent is in it, only LLM rewrites
can move it there (a framing in German around an English request is neither), so `in_language`
tells the breeder to leave framings out.

Why the outcome is separate from the lineage: all lineages of a generation run concurrently, and
everything that feeds back into later choices (bandit, surrogate, archive, incumbents) is applied
at the end of the generation in lineage order, so a resumed run makes exactly the same choices as
an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from evorefuse.evolution.candidate import Candidate, Incumbent
from evorefuse.languages import DEFAULT_LANGUAGE


@dataclass
class Lineage:
    index: int
    seed_id: str
    seed_prompt: str
    category: str | None
    current: Incumbent               # the incumbent the next generation mutates
    best: Incumbent                  # best ever seen
    seed_p_harmless: float | None = None  # the judge's P(harmless) of the seed: its calibration
    evolved_scored: int = 0          # fully scored descendants (each lineage must export one)
    language: str = DEFAULT_LANGUAGE  # what the lineage writes in (runs before languages: English)
    seed_language: str | None = None  # the seed's own language, when it is not `language`

    @property
    def in_language(self) -> bool:
        """Whether the incumbent is written in the lineage's language: always, except the seed
        of a lineage asked to write in another language than the seed's."""
        return self.seed_language is None or self.current.strategy != "seed"

    def to_json(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["current"], d["best"] = self.current.to_json(), self.best.to_json()
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Lineage:
        return cls(d["index"], d["seed_id"], d["seed_prompt"], d.get("category"),
                   Incumbent.from_json(d["current"]), Incumbent.from_json(d["best"]),
                   d.get("seed_p_harmless"), d.get("evolved_scored", 0),
                   d.get("language") or DEFAULT_LANGUAGE, d.get("seed_language"))


def seed_languages(seed: dict[str, Any]) -> dict[str, str | None]:
    """The `language` and `seed_language` of the lineage grown from a run's seed record: the
    seed's own `language`, or the `target_language` the run asked for instead."""
    own = seed.get("language") or DEFAULT_LANGUAGE
    target = seed.get("target_language") or own
    return {"language": target, "seed_language": own if target != own else None}


@dataclass
class GenStats:
    """Counters of one generation, written to the event log."""

    candidates: int = 0
    benign: int = 0
    judge_rejected: int = 0
    judge_unreadable: int = 0  # of those, kept out only because the judge cannot read the language
    parse_failures: int = 0
    duplicates: int = 0
    off_topic: int = 0
    accepted: int = 0
    full_evals: int = 0
    screens: int = 0

    def add(self, other: GenStats) -> None:
        for k, v in other.__dict__.items():
            setattr(self, k, getattr(self, k) + v)

    def to_json(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class LineageOutcome:
    records: list[Candidate] = field(default_factory=list)
    rewards: list[tuple[str, float]] = field(default_factory=list)
    stats: GenStats = field(default_factory=GenStats)
    new_current: Candidate | None = None
