"""The two presets: `paper` (faithful EvoRefuse) and `fast` (the default).

`paper` scores every benign candidate with K=10 samples of 50 tokens at temperature 1.

`fast` measures what over-refusal benchmarks report (XSTest, OR-Bench, our `evaluate`): the target's
greedy response. One short greedy call per candidate, graded by the probability mass the target put
on refusal openers, replaces K sampled responses; and per lineage and generation only the
`evaluations` most promising candidates reach the target at all, ranked by what costs nothing (the
bandit's record of each operator against this target, and the surrogate once it has data), and
scoring stops at the first that beats the incumbent. A
lineage whose incumbent already makes the target refuse is finished and spends nothing more. With
a sampling temperature set in the config, `fast` returns to K samples with cheap screens and racing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from evorefuse.config import Config, PresetName, SelectionName
from evorefuse.evolution.rng import derive_seed
from evorefuse.scoring.fitness import FitnessSettings


@dataclass(frozen=True, kw_only=True)
class Plan:
    preset: PresetName
    mutations: int          # L
    recombinations: int     # N
    samples: int            # K
    max_tokens: int
    screen: bool            # screen every candidate cheaply, full K only for the best
    selection: SelectionName
    framings: bool          # allow zero-cost framing operators
    race_k0: int            # racing: first stage of a full evaluation
    screen_samples: int
    screen_tokens: int
    full_per_generation: int  # full evaluations per lineage per generation (screened mode)
    temperature: float = 1.0  # target sampling temperature
    screen_kind: Literal["opener", "prefix"] = "opener"  # "opener" (greedy first tokens' logprobs) or "prefix" (samples)
    screen_top: int = 3       # once the surrogate is trained, screen only its top candidates
    evaluations: int | None = None  # candidates scored per lineage per generation (None: all)


def plan_for(cfg: Config) -> Plan:
    preset = cfg.run.preset
    e, f = cfg.evolution, cfg.fitness
    if preset == "paper":
        base = Plan(preset="paper", mutations=4, recombinations=2, samples=10, max_tokens=50,
                    screen=False, selection="uniform", framings=False, race_k0=10,
                    screen_samples=0, screen_tokens=0, full_per_generation=0)
    else:
        # Up to two greedy responses of 32 tokens per lineage and generation (the second only
        # when the first did not beat the incumbent). 32 tokens hold the first sentence, where
        # refusals show ("I'm sorry, but as an AI I can't ..."), and it is the same greedy text
        # `evaluate` extends to 50. Two evaluations, not one: against the embedded model one
        # scored candidate per generation found a refusal in none of six lineages
        # (benchmarks/efficiency.py), and two still cost 5.8-8.6x fewer target tokens than the
        # paper preset there (whose every call is 10 samples of 50 tokens).
        base = Plan(preset="fast", mutations=4, recombinations=1, samples=1, max_tokens=32,
                    screen=False, selection="bandit", framings=True, race_k0=3, screen_samples=2,
                    screen_tokens=8, full_per_generation=1, evaluations=2)
    sampled = preset != "paper" and (
        (f.temperature is not None and f.temperature > 0) or (f.samples or 1) > 1)
    if sampled:
        # The user asked for sampled fitness: K samples, cheap screens before them, racing.
        base = Plan(preset="fast", mutations=6, recombinations=1, samples=10, max_tokens=32,
                    screen=True, selection="bandit", framings=True, race_k0=3, screen_samples=2,
                    screen_tokens=8, full_per_generation=1, temperature=0.3, evaluations=3)
    return Plan(
        preset=preset,
        mutations=e.mutations if e.mutations is not None else base.mutations,
        recombinations=e.recombinations if e.recombinations is not None else base.recombinations,
        samples=f.samples if f.samples is not None else base.samples,
        max_tokens=f.max_tokens if f.max_tokens is not None else base.max_tokens,
        screen=f.screen if f.screen is not None else base.screen,
        selection=e.selection or base.selection,
        framings=base.framings,
        race_k0=min(base.race_k0, f.samples or base.samples),
        screen_samples=base.screen_samples or 3,
        screen_tokens=base.screen_tokens or 6,
        full_per_generation=base.full_per_generation or 1,
        # The paper samples targets at temperature 1. The default decodes greedily, as refusal
        # benchmarks measure; at 1.0 small models mostly ramble, which hides refusals.
        temperature=f.temperature if f.temperature is not None else
        (1.0 if preset == "paper" else base.temperature if sampled else 0.0),
        evaluations=(e.evaluations if e.evaluations is not None else base.evaluations)
        if preset != "paper" else None,
    )


def fitness_settings(cfg: Config, plan: Plan) -> FitnessSettings:
    """How targets are sampled and scored in this run: built here once, so scoring during the run
    and the export's extra target samples use the very same settings (and cache keys)."""
    return FitnessSettings(samples=plan.samples, lam=cfg.fitness.lam, temperature=plan.temperature,
                           top_p=cfg.fitness.top_p, max_tokens=plan.max_tokens,
                           min_p=cfg.fitness.min_p, seed=derive_seed(cfg.run.seed, "target"))
