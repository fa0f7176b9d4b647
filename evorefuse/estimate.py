"""How many calls, tokens and dollars a run can take at most, before anything is called.

Why an upper bound and not a guess: the dry run is what a user budgets a paid run by, so every
figure assumes the worst the run can do (every candidate judged and scored where the preset allows
it, every response running to its token limit).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from evorefuse.config import Config
from evorefuse.evolution.presets import plan_for
from evorefuse.models.pricing import planned_cost
from evorefuse.scoring.refusal.judge import MAX_TOKENS as JUDGE_MAX_TOKENS
from evorefuse.scoring.refusal.judge import REPAIR_MAX_TOKENS
from evorefuse.scoring.refusal.tiered import JUDGE_CALLS_PER_RESPONSE


@dataclass
class RoleEstimate:
    """Upper bounds for one role on one model."""

    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0


@dataclass
class RunEstimate:
    seeds: int
    generations: int
    preset: str
    per_role: dict[str, RoleEstimate] = field(default_factory=dict)  # key: "role/model"

    @property
    def max_calls(self) -> int:
        return sum(r.calls for r in self.per_role.values())

    @property
    def max_cost_usd(self) -> float:
        return round(sum(r.cost for r in self.per_role.values()), 4)


JUDGE_PROMPT_TOKENS = 300
"""The judging detector's instructions and the prompt it is shown, in tokens (the response is
bounded by 4 bytes a token of its max_tokens)."""


def dry_run_estimate(cfg: Config, n_seeds: int) -> RunEstimate:
    """Upper bounds on calls per role, and the cost if every call used its max_tokens."""
    plan = plan_for(cfg)
    g, L, N = cfg.run.generations, plan.mutations, plan.recombinations
    cands = L + N
    est = RunEstimate(n_seeds, g, plan.preset)

    def add(role: str, name: str, calls: int, tokens_in: int, tokens_out: int) -> None:
        spec = cfg.model(name)
        r = est.per_role.setdefault(f"{role}/{name}", RoleEstimate())
        r.calls += calls
        r.tokens_in += tokens_in
        r.tokens_out += tokens_out
        r.cost += planned_cost(spec, tokens_in, tokens_out)  # batched models at the batch rate

    mut_calls = n_seeds * g * (L + N)   # framings cost nothing, so this bounds the fast preset too
    add("mutator", cfg.roles.mutator, mut_calls, mut_calls * 350, mut_calls *
        cfg.evolution.mutator_max_tokens)
    # The offline classifier costs no call; an LLM judge (or, tiered, at most) one per candidate.
    for j in cfg.role_models()["judge"]:
        calls = n_seeds * (1 + g * cands)   # every seed is judged once, as the judge's calibration
        add("judge", j, calls, calls * 150, calls * 8)
    K, T = plan.samples, plan.max_tokens
    responses = 0   # target responses the detector reads, at most
    for t in cfg.roles.targets:
        spec = cfg.model(t)
        per_full = 1 if spec.supports_n else K
        # Scored candidates per lineage and generation: all of them (paper), or the budget.
        scored = cands if plan.evaluations is None else min(cands, plan.evaluations)
        if plan.screen:
            per_screen = 1 if spec.supports_n else plan.screen_samples
            # seeds + per generation: screens for the judged candidates (+1: the incumbent's own,
            # the bar a candidate must beat), then raced full evaluations; a race is two calls
            # (k0 samples, then the rest) or K single-sample calls.
            screened = cands if plan.evaluations is None else min(cands, max(scored, plan.screen_top))
            races = min(screened, plan.full_per_generation * (2 if N > 0 else 1)
                        if plan.evaluations is None else scored)
            per_race = (2 if plan.race_k0 < K else 1) if spec.supports_n else K
            full_evals = n_seeds * (1 + g * races)
            calls = n_seeds * per_full + n_seeds * g * ((screened + 1) * per_screen + races * per_race)
            out = (n_seeds * g * (screened + 1) * plan.screen_samples * plan.screen_tokens
                   + full_evals * K * T)
            responses += n_seeds * g * (screened + 1) * plan.screen_samples + full_evals * K
        else:
            calls = n_seeds * (1 + g * scored) * per_full
            out = n_seeds * (1 + g * scored) * K * T
            responses += n_seeds * (1 + g * scored) * K
        add("target", t, calls, calls * 60, out)
    # A judging detector (`judge`, or a tiered one's judge: at most every response falls in its
    # band) makes one call per response, plus a short repair turn when the label is missing.
    judge = cfg.detector_judge_model()
    if judge is not None:
        calls = responses * JUDGE_CALLS_PER_RESPONSE
        add("detector", judge, calls, calls * (JUDGE_PROMPT_TOKENS + 4 * T),
            responses * (JUDGE_MAX_TOKENS + REPAIR_MAX_TOKENS))
    return est


# --- wall time -------------------------------------------------------------------------------------

LOCAL_PREFILL_TOKENS_PER_S = 200.0
"""The embedded SmolLM2-135M (llama.cpp, 2 threads) reading a prompt: 209 tokens/s measured on an
idle 2-core machine (benchmarks/RESULTS.md, "wall_estimate"), rounded down."""
LOCAL_DECODE_TOKENS_PER_S = 70.0
"""... and writing: 71 tokens/s measured there. One model instance serves every role, one call at
a time; on a busy machine llama.cpp's threads wait on each other and it is far slower."""
HOSTED_SECONDS_PER_CALL = 1.0
HOSTED_DECODE_TOKENS_PER_S = 60.0
"""A hosted model: about a second of latency per call plus 60 tokens/s; calls overlap up to the
concurrency the run and the model allow."""
EMBED_SECONDS_PER_TEXT = 0.007
"""MiniLM on CPU per candidate text (near-duplicate and topic checks)."""


def wall_seconds(est: RunEstimate, cfg: Config) -> float:
    """Upper bound on the run's wall time from its call bounds (every call at its token limit)."""
    local = hosted = 0.0
    for key, r in est.per_role.items():
        spec = cfg.model(key.split("/", 1)[1])
        if spec.kind == "local":
            local += r.tokens_in / LOCAL_PREFILL_TOKENS_PER_S + r.tokens_out / LOCAL_DECODE_TOKENS_PER_S
        else:
            lanes = max(1, min(cfg.run.max_concurrency, spec.max_concurrency))
            per_call = HOSTED_SECONDS_PER_CALL + (r.tokens_out / max(1, r.calls)) / HOSTED_DECODE_TOKENS_PER_S
            hosted += r.calls * per_call / lanes
    mutations = sum(r.calls for k, r in est.per_role.items() if k.startswith("mutator/"))
    return local + hosted + mutations * EMBED_SECONDS_PER_TEXT
