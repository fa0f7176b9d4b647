"""Which operator to try next: a bandit rewarded when an operator's child beats its parent.

The reference code tried strategies in a fixed order, so the emotion strategies crowded out the
context ones. Thompson sampling (Beta-Bernoulli) or UCB1 spends more tries on what works against
*this* target. The state is plain counts, updated once per generation in lineage order, so a resumed
run makes exactly the same choices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Bandit:
    arms: list[str]
    kind: str = "thompson"          # "thompson", "ucb1" or "uniform"
    tries: dict[str, int] = field(default_factory=dict)
    wins: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for a in self.arms:
            self.tries.setdefault(a, 0)
            self.wins.setdefault(a, 0.0)

    def choose(self, rng: np.random.Generator, k: int,
               allowed: list[str] | None = None) -> list[str]:
        """k arms (with repetition allowed across draws, ties broken by rng), from `allowed`
        when given."""
        arms = allowed or self.arms
        out = []
        for _ in range(k):
            if self.kind == "uniform":
                out.append(arms[int(rng.integers(len(arms)))])
            elif self.kind == "ucb1":
                total = sum(self.tries.values()) + 1
                best, best_v = None, -1.0
                for a in arms:
                    t = self.tries[a]
                    v = float("inf") if t == 0 else self.wins[a] / t + math.sqrt(2 * math.log(total) / t)
                    v += rng.random() * 1e-9
                    if v > best_v:
                        best, best_v = a, v
                out.append(best)  # type: ignore[arg-type]
            else:
                draws = [rng.beta(1 + self.wins[a], 1 + self.tries[a] - self.wins[a]) for a in arms]
                out.append(arms[int(np.argmax(draws))])
        return out

    def update(self, arm: str, reward: float) -> None:
        """Also records operators that are not drawn from the bandit (recombination), so that
        `mean` can rank their children against the others."""
        self.tries[arm] = self.tries.get(arm, 0) + 1
        self.wins[arm] = self.wins.get(arm, 0.0) + max(0.0, min(1.0, reward))

    def mean(self, arm: str) -> float:
        """Posterior mean reward (Beta(1, 1) prior): how often this operator's children won."""
        return (1.0 + self.wins.get(arm, 0.0)) / (2.0 + self.tries.get(arm, 0))

    def to_json(self) -> dict:
        return {"arms": self.arms, "kind": self.kind, "tries": self.tries, "wins": self.wins}

    @classmethod
    def from_json(cls, d: dict) -> Bandit:
        return cls(d["arms"], d["kind"], dict(d["tries"]), dict(d["wins"]))
