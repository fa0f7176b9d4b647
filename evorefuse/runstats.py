"""What a run has done so far: state, refusal rates before and after, spending, best instructions.

Read without changing anything, also while the run is going: the checkpoint is replaced atomically
and the cache is SQLite in WAL mode, opened read-only, so a reader always sees a consistent state.
`status`, the report and the demo's closing table all read a run through here.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from evorefuse.config import config_from_run
from evorefuse.evolution.candidate import Candidate, Status
from evorefuse.evolution.lineage import Lineage
from evorefuse.models.cache import LEDGER_COLUMNS
from evorefuse.models.ledger import Ledger
from evorefuse.runstore import RunStore
from evorefuse.session import carry_forward

_LAST_WORD = {"finished": "finished", "stopped_budget": "stopped (budget)",
              "interrupted": "interrupted"}


@dataclass
class LineageResult:
    """One seed's line of the demo table: where it started and the best it reached."""

    seed_id: str
    before: float
    after: float
    best_prompt: str


def answers(c: Candidate | None) -> dict[str, str]:
    """What each target answered a scored candidate (the first sample, refusal preferred)."""
    if c is None or c.score is None:
        return {}
    return {name: (t.refusal_example or t.compliance_example or "")
            for name, t in sorted(c.score.targets.items())}


def _verdict(c: Candidate | None) -> dict[str, Any] | None:
    return c.judge.to_json() if c is not None and c.judge is not None else None


@dataclass
class RunStatus:
    run_dir: str
    state: str
    generation: int
    generations: int
    preset: str
    targets: list[str]
    lineages: int
    candidates: int
    by_status: dict[str, int]
    refusal_rate_seeds: float | None
    refusal_rate_best: float | None
    mean_best_fitness: float | None
    ledger: dict[str, dict[str, Any]]
    ledger_by_model: dict[str, dict[str, Any]]
    calls: int
    cache_hits: int
    cost_usd: float
    export_ledger: dict[str, dict[str, Any]] = field(default_factory=dict)
    best: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def read_ledger(store: RunStore, step: str | None = None) -> Ledger:
    """The run's spending from its cache's call log (read-only; empty without a cache); with a
    `step` (e.g. "export"), that step's."""
    ledger = Ledger()
    if store.cache_file.exists():
        db = sqlite3.connect(f"file:{store.cache_file}?mode=ro", uri=True)
        try:
            sums = ", ".join(f"SUM({c})" for c in LEDGER_COLUMNS)
            rows = db.execute(f"SELECT role, model, {sums} FROM calls WHERE run_id = ? "
                              "GROUP BY role, model",
                              (store.run_id if step is None else f"{store.run_id}:{step}",)
                              ).fetchall()
        except sqlite3.Error:
            rows = []
        finally:
            db.close()
        ledger.load_rows(rows)
    return ledger


def lineages(store: RunStore) -> list[Lineage]:
    cp = store.checkpoint() or {}
    return [Lineage.from_json(d) for d in cp.get("lineages", [])]


def lineage_results(store: RunStore, records: list[Candidate] | None = None) -> list[LineageResult]:
    """Each seed's refusal rate before evolution and that of its best instruction after."""
    records = store.candidates() if records is None else records
    seeds = {c.lineage: c for c in records if c.strategy == "seed"}
    out = []
    for lin in lineages(store):
        seed = seeds.get(lin.index)
        out.append(LineageResult(lin.seed_id, seed.refusal_rate if seed else 0.0,
                                 lin.best.refusal_rate, lin.best.prompt))
    return out


def status_key(c: Candidate) -> str:
    """`benign`, `skipped`, or `rejected:<reason>` without the reason's detail."""
    if c.status in (Status.BENIGN, Status.SKIPPED):
        return str(c.status)
    return f"rejected:{(c.rejected or '').split(':')[0]}"


def run_status(run_dir: Path) -> RunStatus:
    store = RunStore.open(run_dir)
    cp = store.checkpoint() or {}
    cfg = config_from_run(store.config(), str(store.config_file))
    events = store.events()
    records = store.candidates()
    ledger = read_ledger(store)
    carry_forward(ledger, cp.get("spent"))
    lins = lineages(store)
    by_id = {c.id: c for c in records}
    seeds = {c.lineage: c for c in records if c.strategy == "seed"}
    before = [seeds[i].refusal_rate for i in seeds]
    after = [lin.best.refusal_rate for lin in lins]
    last = next((e for e in reversed(events) if e["event"] in
                 ("finished", "stopped_budget", "interrupted", "resumed", "start", "created")),
                None)
    by_status: dict[str, int] = {}
    for c in records:
        key = status_key(c)
        by_status[key] = by_status.get(key, 0) + 1
    return RunStatus(
        run_dir=str(store.path), state=_LAST_WORD.get(last["event"] if last else "",
                                                      "running or interrupted"),
        generation=cp.get("generation", 0), generations=cfg.run.generations,
        preset=cfg.run.preset, targets=list(cfg.roles.targets), lineages=len(lins),
        candidates=len(records), by_status=by_status,
        refusal_rate_seeds=sum(before) / len(before) if before else None,
        refusal_rate_best=sum(after) / len(after) if after else None,
        mean_best_fitness=(sum(lin.best.fitness for lin in lins) / len(lins) if lins else None),
        ledger=ledger.by_role(), ledger_by_model=ledger.to_json(), calls=ledger.total_calls,
        cache_hits=ledger.total_cache_hits, cost_usd=round(ledger.total_cost, 6),
        export_ledger=read_ledger(store, "export").by_role(),
        best=[{"seed_id": lin.seed_id, **lin.best.to_json(),
               "judge": _verdict(by_id.get(lin.best.id)),
               "answers": answers(by_id.get(lin.best.id))} for lin in lins],
        history=[e for e in events if e["event"] == "generation"],
    )
