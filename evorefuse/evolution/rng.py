"""Randomness derived from names, not from a running generator state.

Every random choice is drawn from a generator seeded by (run seed, generation, lineage, purpose),
so a run resumed from a checkpoint makes exactly the choices the uninterrupted run would have made,
whatever order concurrent lineages finished in.
"""

from __future__ import annotations

import hashlib

import numpy as np


def derive_seed(*parts: object) -> int:
    h = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(h[:4], "little")


def rng_for(*parts: object) -> np.random.Generator:
    return np.random.default_rng(derive_seed(*parts))
