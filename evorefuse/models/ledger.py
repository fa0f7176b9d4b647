"""Calls, tokens and money, per role and model, and the budget that stops a run before overspending.

The budget is checked *before* a request is sent, against what is already spent plus what requests in
flight may still cost (their worst case: every sample runs to max_tokens), so concurrency can never
push a run past --max-calls or --max-cost.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from evorefuse.errors import BudgetExceeded


@dataclass
class LedgerEntry:
    calls: int = 0            # requests actually sent and answered (cache hits excluded)
    samples: int = 0          # choices received from the provider
    tokens_in: int = 0
    tokens_out: int = 0
    cache_hits: int = 0       # samples served from the cache (free)
    retries: int = 0
    errors: int = 0
    blocked: int = 0          # content-filter answers
    cost: float = 0.0         # estimated USD


@dataclass
class Budget:
    max_calls: int | None = None
    max_cost: float | None = None


@dataclass
class Ledger:
    entries: dict[str, LedgerEntry] = field(default_factory=dict)  # key: "role/model"
    budget: Budget = field(default_factory=Budget)
    _inflight_calls: int = 0
    _inflight_cost: float = 0.0

    def entry(self, role: str, model: str) -> LedgerEntry:
        key = f"{role}/{model}"
        e = self.entries.get(key)
        if e is None:
            e = self.entries[key] = LedgerEntry()
        return e

    # --- budget ---------------------------------------------------------------------------------
    def reserve(self, worst_case_cost: float) -> None:
        """Claim room for one request or raise BudgetExceeded without sending it. The messages
        say what happened: nothing past the budget was sent, or (a provider billed more than the
        worst case reserved for its calls) by how much the spending already passed it."""
        b = self.budget
        if b.max_calls is not None and self.total_calls + self._inflight_calls + 1 > b.max_calls:
            raise BudgetExceeded(
                f"the next call would pass the budget --max-calls {b.max_calls} "
                f"({self.total_calls} made, {self._inflight_calls} in flight); it was not made")
        if b.max_cost is not None:
            spent = self.total_cost
            if spent > b.max_cost + 1e-12:
                raise BudgetExceeded(
                    f"the budget --max-cost {b.max_cost:g} USD was passed: {spent:.6f} USD "
                    "spent, because a provider billed more tokens than the worst case reserved "
                    "for its calls; no further call was made")
            if spent + self._inflight_cost + worst_case_cost > b.max_cost + 1e-12:
                raise BudgetExceeded(
                    f"the next call's worst case would pass the budget --max-cost {b.max_cost:g} "
                    f"USD ({spent:.6f} spent, up to {self._inflight_cost:.6f} in flight, this "
                    f"call up to {worst_case_cost:.6f}); it was not made")
        self._inflight_calls += 1
        self._inflight_cost += worst_case_cost

    def release(self, worst_case_cost: float) -> None:
        self._inflight_calls -= 1
        self._inflight_cost -= worst_case_cost

    # --- totals ---------------------------------------------------------------------------------
    @property
    def total_calls(self) -> int:
        return sum(e.calls for e in self.entries.values())

    @property
    def total_cost(self) -> float:
        return sum(e.cost for e in self.entries.values())

    @property
    def total_cache_hits(self) -> int:
        return sum(e.cache_hits for e in self.entries.values())

    def by_role(self) -> dict[str, dict[str, Any]]:
        """Totals per role (summed over models), the shape `status --json` reports."""
        out: dict[str, dict[str, Any]] = {}
        for key, e in self.entries.items():
            role = key.split("/", 1)[0]
            acc = out.setdefault(role, asdict(LedgerEntry()))
            for k, v in asdict(e).items():
                acc[k] += v
        return out

    def load_rows(self, rows: list[tuple[Any, ...]]) -> None:
        """Rebuild from the cache's call log: exact after any crash, since each call's ledger row is
        committed together with its samples."""
        self.entries = {}
        for role, model, *vals in rows:
            self.entries[f"{role}/{model}"] = LedgerEntry(*vals)

    def to_json(self) -> dict[str, Any]:
        return {k: asdict(v) for k, v in sorted(self.entries.items())}

    def load_json(self, data: dict[str, Any]) -> None:
        self.entries = {k: LedgerEntry(**v) for k, v in data.items()}
