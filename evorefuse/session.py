"""The composition root: one place that wires what every command needs.

A session holds one request cache, one ledger (with the budget), one registry of endpoints, and
builds the refusal detector and the fitness estimator from the config once. Every command goes
through it, so no command builds an endpoint with a throwaway ledger, detectors are chosen the same
way everywhere (no silent fallback in one command and not in another), and scoring settings are
identical during a run and in its exports.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from evorefuse.config import Config
from evorefuse.evolution.presets import Plan, fitness_settings, plan_for
from evorefuse.models.cache import RequestCache
from evorefuse.models.endpoint import Endpoint
from evorefuse.models.ledger import Budget, Ledger
from evorefuse.models.registry import Registry, check_credentials
from evorefuse.scoring.fitness import FitnessEstimator
from evorefuse.scoring.harm.judge import PromptJudge, build_prompt_judge
from evorefuse.scoring.harm.names import Mode, judge_model_name, llm_judge_names
from evorefuse.scoring.refusal.base import RefusalDetector
from evorefuse.scoring.refusal.factory import can_tier, get_detector

if TYPE_CHECKING:  # pragma: no cover
    from evorefuse.evolution.engine import Engine
    from evorefuse.evolution.progress import Progress
    from evorefuse.runstore import RunStore

DEFAULT_CACHE = Path(os.path.expanduser("~/.cache/evorefuse/evaluate.sqlite"))
"""The request cache of work outside a run directory (evaluate, detect with a judge)."""


LOST_CACHE = ("unrecorded", "lost-cache")
"""The ledger entry that carries spending a run's checkpoint records but its cache no longer does."""


def carry_forward(ledger: Ledger, spent: dict[str, float] | None) -> str | None:
    """Never count less than the checkpoint says was paid: a deleted or replaced cache would
    otherwise reset the budget. Returns what to tell the user, or None when nothing was lost."""
    if not spent:
        return None
    calls = int(spent.get("calls", 0)) - ledger.total_calls
    cost = float(spent.get("cost", 0.0)) - ledger.total_cost
    if calls <= 0 and cost <= 1e-9:
        return None
    entry = ledger.entry(*LOST_CACHE)
    entry.calls += max(0, calls)
    entry.cost += max(0.0, cost)
    return (f"records {max(0, calls)} fewer calls (${max(0.0, cost):.4f} less) than the run's "
            "checkpoint: it was deleted, replaced or damaged; the budget counts from the "
            "checkpoint's figures, and calls it no longer holds will be made again")


class Session:
    def __init__(self, cfg: Config, *, cache: RequestCache | None, ledger: Ledger,
                 run_id: str) -> None:
        self.cfg = cfg
        self.cache = cache
        self.ledger = ledger
        self.run_id = run_id
        self.registry = Registry(cfg.model, cache, ledger, run_id=run_id)
        self.notices: list[str] = []

    # --- construction --------------------------------------------------------------------------
    @classmethod
    def for_run(cls, store: RunStore, cfg: Config, *, models: list[str] | None = None,
                budget: bool = True, step: str | None = None) -> Session:
        """A session on a run directory's own cache; the ledger starts from what the run already
        spent (the cache's call log), so budgets count the whole run across resumes. A `step`
        (e.g. "export") records its calls apart from the evolution's."""
        names = models if models is not None else cfg.model_names()
        check_credentials([cfg.model(n) for n in names], cfg.source)
        cache = RequestCache(store.cache_file)
        ledger = Ledger(budget=Budget(cfg.run.max_calls, cfg.run.max_cost) if budget else Budget())
        run_id = store.run_id if step is None else f"{store.run_id}:{step}"
        ledger.load_rows(cache.ledger_rows(run_id))
        session = cls(cfg, cache=cache, ledger=ledger, run_id=run_id)
        cp = store.checkpoint()
        lost = carry_forward(ledger, cp.get("spent") if cp and step is None else None)
        if lost:
            session.notices.append(f"{store.cache_file}: {lost}")
        return session

    @classmethod
    def standalone(cls, cfg: Config, *, models: list[str], cache_path: Path | None,
                   run_id: str, budget: Budget | None = None) -> Session:
        """A session outside any run (evaluate, detect, models check, seeds); `cache_path` None:
        no cache (a check must really call the model); `budget`: calls and cost it may spend."""
        check_credentials([cfg.model(n) for n in models], cfg.source)
        cache = None
        if cache_path is not None:
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            cache = RequestCache(cache_path)
        return cls(cfg, cache=cache, ledger=Ledger(budget=budget or Budget()), run_id=run_id)

    # --- what commands use ---------------------------------------------------------------------
    def endpoint(self, name: str) -> Endpoint:
        return self.registry.endpoint(name)

    @cached_property
    def plan(self) -> Plan:
        return plan_for(self.cfg)

    @cached_property
    def detector(self) -> RefusalDetector:
        """The run's refusal detector (`roles.detector`)."""
        return self.detector_named(self.cfg.roles.detector)

    def detector_named(self, name: str, judge_model: str | None = None) -> RefusalDetector:
        """A detector by name; the `judge` detector asks `judge_model` (default: the first judge
        of the config) through this session's cache and ledger."""
        if name.strip().lower() == "judge":
            default = next(iter(self.cfg.role_models()["judge"]), "local")
            return get_detector("judge", self.endpoint(judge_model or default))
        tier = self.cfg.roles.detector_judge
        if tier is not None and can_tier(name):
            return get_detector(name, tier_judge=self.endpoint(tier),
                                band=(self.cfg.roles.detector_band[0],
                                      self.cfg.roles.detector_band[1]))
        return get_detector(name)

    @cached_property
    def prompt_judge(self) -> PromptJudge:
        """The benign gate's judge (`roles.judge`, `roles.judge_mode`), with the classifier's
        stricter gate band: what it lets through becomes test items and training data."""
        return self.prompt_judge_named(self.cfg.judges(), self.cfg.roles.judge_mode, gate=True)

    def prompt_judge_named(self, names: list[str], mode: Mode = "auto", *,
                           gate: bool = False) -> PromptJudge:
        """A prompt judge: the offline classifier for `local`/`classifier`, LLM judges (any other
        name; `local-llm` is the embedded model) through this session's cache and ledger."""
        endpoints = {n: self.endpoint(judge_model_name(n)) for n in llm_judge_names(names)}
        return build_prompt_judge(names, endpoints, mode, gate=gate)

    def fitness(self, targets: list[str] | None = None) -> FitnessEstimator:
        names = targets if targets is not None else self.cfg.roles.targets
        return FitnessEstimator([self.endpoint(n) for n in names], self.detector,
                                fitness_settings(self.cfg, self.plan))

    def engine(self, log: RunStore, progress: Progress) -> Engine:
        from evorefuse.evolution.engine import Engine

        return Engine(self.cfg, self.plan, log, mutator=self.endpoint(self.cfg.roles.mutator),
                      judge=self.prompt_judge, fitness=self.fitness(), ledger=self.ledger,
                      progress=progress)

    # --- teardown ------------------------------------------------------------------------------
    async def aclose(self) -> None:
        """Close the endpoints (inside the event loop that used them)."""
        await self.registry.aclose()

    def close(self) -> None:
        """Close the cache (after the event loop is done)."""
        if self.cache is not None:
            self.cache.close()
