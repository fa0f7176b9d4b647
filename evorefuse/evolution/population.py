"""Population mode: NSGA-II (DEAP) over two objectives, fitness and novelty.

Novelty is the mean cosine distance to the k nearest other candidates (in the pool and the archive),
so the survivors are good *and* different: the set does not collapse onto one trick.
"""

from __future__ import annotations

import numpy as np
from deap import base, creator, tools

from evorefuse.evolution.candidate import Incumbent
from evorefuse.scoring import embeddings

if not hasattr(creator, "EvoRefuseFitness"):
    creator.create("EvoRefuseFitness", base.Fitness, weights=(1.0, 1.0))
if not hasattr(creator, "EvoRefusePoolIndex"):
    # An individual is its index in the pool: DEAP only needs something to hang fitness on.
    creator.create("EvoRefusePoolIndex", list, fitness=creator.EvoRefuseFitness)


def select_survivors(pool: list[Incumbent], k: int, archive_emb: np.ndarray,
                     neighbours: int = 5) -> list[Incumbent]:
    if len(pool) <= k:
        return pool + pool[: k - len(pool)]
    emb = embeddings.embed([p.prompt for p in pool])
    ref = np.vstack([emb, archive_emb]) if archive_emb.size else emb
    sims = emb @ ref.T
    for i in range(len(pool)):
        sims[i, i] = -np.inf  # not its own neighbour
    individuals = []
    for i, p in enumerate(pool):
        row = np.sort(1.0 - sims[i][np.isfinite(sims[i])])
        novelty = float(row[: neighbours].mean()) if row.size else 1.0
        ind = creator.EvoRefusePoolIndex([i])
        ind.fitness.values = (float(p.fitness), novelty)
        individuals.append(ind)
    chosen = tools.selNSGA2(individuals, k)
    return [Incumbent(**pool[ind[0]].to_json()) for ind in chosen]
