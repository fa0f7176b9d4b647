"""The paper's simulated-annealing acceptance rule and temperature schedule."""

from __future__ import annotations

import math


def temperature(generation: int) -> float:
    """tau_i = max(0.05, 0.1 - 0.005 * i) (the EvoRefuse paper; README, "How it works")."""
    return max(0.05, 0.1 - 0.005 * generation)


def accept_probability(f_new: float, f_cur: float, tau: float) -> float:
    if f_new >= f_cur:
        return 1.0
    return math.exp((f_new - f_cur) / tau)
