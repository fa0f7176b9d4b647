"""The two presets: `paper` (faithful EvoRefuse) and `fast` (the default: cheap screens first).

Both score seeds and every *fully* evaluated candidate the same way (K samples, same length, same
detector), so their refusal rates and fitness are comparable; `fast` spends full evaluations only on
the candidates that the cheap screens say can still win.
"""

from __future__ import annotations

from dataclasses import dataclass

from evorefuse.config import Config


@dataclass(frozen=True)
class Plan:
    preset: str
    mutations: int          # L
    recombinations: int     # N
    samples: int            # K
    max_tokens: int
    screen: bool            # screen every candidate cheaply, full K only for the best
    selection: str          # "bandit" or "uniform"
    framings: bool          # allow zero-cost framing operators
    race_k0: int            # racing: first stage of a full evaluation
    screen_samples: int
    screen_tokens: int
    full_per_generation: int  # full evaluations per lineage per generation (screened mode)
    temperature: float = 1.0  # target sampling temperature
    screen_kind: str = "opener"  # "opener" (greedy first tokens' logprobs) or "prefix" (samples)
    screen_top: int = 3       # once the surrogate is trained, screen only its top candidates


def plan_for(cfg: Config) -> Plan:
    preset = cfg.run.preset
    e, f = cfg.evolution, cfg.fitness
    if preset == "paper":
        base = Plan("paper", 4, 2, 10, 50, False, "uniform", False, 10, 0, 0, 0)
    else:
        # Full evaluations read 32 tokens: refusals show in the first sentence, and the paper's
        # 50 mostly buys the tail of helpful answers.
        base = Plan("fast", 6, 1, 10, 32, True, "bandit", True, 3, 2, 8, 1)
    return Plan(
        preset=preset,
        mutations=e.mutations if e.mutations is not None else base.mutations,
        recombinations=e.recombinations if e.recombinations is not None else base.recombinations,
        samples=f.samples if f.samples is not None else base.samples,
        max_tokens=f.max_tokens if f.max_tokens != 50 else base.max_tokens,
        screen=f.screen if f.screen is not None else base.screen,
        selection=e.selection or base.selection,
        framings=base.framings,
        race_k0=min(base.race_k0, f.samples or base.samples),
        screen_samples=base.screen_samples or 3,
        screen_tokens=base.screen_tokens or 6,
        full_per_generation=base.full_per_generation or 1,
        # The paper samples targets at temperature 1. The default samples at 0.3: refusal rates
        # are measured with greedy decoding (XSTest, OR-Bench, our `evaluate`), and a low
        # temperature optimises what is measured while K samples still grade near-misses; at 1.0
        # small models mostly ramble, which hides refusals.
        temperature=f.temperature if f.temperature is not None else
        (1.0 if preset == "paper" else 0.3),
    )
