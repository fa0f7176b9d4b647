"""Starting, resuming and driving an evolution run in its run directory.

Why here and not in the command: the rules about when a run directory may be created, what a
resume may change, and what is left behind after a failure are the product's, not the command
line's; tests and benchmarks drive runs through the same functions.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evorefuse.config import Config, config_from_run, first_difference, load_config
from evorefuse.errors import InputError
from evorefuse.evolution.engine import BudgetStop
from evorefuse.evolution.progress import Progress
from evorefuse.models.registry import check_credentials
from evorefuse.operators.strategies import build_catalogue
from evorefuse.runstore import RunStore, write_json
from evorefuse.session import Session

__all__ = ["BudgetStop", "ResumePlan", "drive", "prepare_resume", "start_run"]


def drive(store: RunStore, cfg: Config, seeds: list[dict[str, Any]],
          checkpoint: dict[str, Any] | None, progress: Progress) -> None:
    """Run (or continue) the engine to `cfg.run.generations`; raises BudgetStop when the budget
    would be exceeded (everything up to the last generation is saved)."""
    session = Session.for_run(store, cfg)

    async def go() -> None:
        engine = session.engine(store, progress)
        if checkpoint:
            engine.restore(checkpoint)
        else:
            store.truncate_archive(0)  # a crash before the first checkpoint: start clean
        try:
            await engine.run(seeds, cfg.run.generations)
        finally:
            await session.aclose()

    try:
        asyncio.run(go())
    finally:
        session.close()
        store.unlock()


def start_run(cfg: Config, seeds: list[dict[str, Any]], run_dir: Path, seeds_summary: str,
              progress: Progress) -> RunStore:
    """Create the run directory and run it. Bad input fails before the directory exists; if the
    first call turns out to be bad input (an endpoint that rejects the request), nothing was
    computed or paid for and what was created is removed."""
    build_catalogue(cfg.strategies, cfg.evolution.strategies, source=cfg.source)
    check_credentials([cfg.model(n) for n in cfg.model_names()], cfg.source)
    fresh = not run_dir.exists()
    store = RunStore.create(run_dir, cfg.to_json(), cfg.fingerprint(), seeds)
    store.event("created", config=cfg.source, seeds=seeds_summary)
    try:
        drive(store, cfg, seeds, None, progress)
    except InputError:
        if store.checkpoint() is None and not _has_samples(store.cache_file):
            store.unlock()
            if fresh:
                shutil.rmtree(run_dir, ignore_errors=True)
            else:
                for child in run_dir.iterdir():
                    shutil.rmtree(child) if child.is_dir() else child.unlink(missing_ok=True)
        raise
    return store


@dataclass
class ResumePlan:
    """A run ready to continue: its store (locked), config, seeds and checkpoint; `done` when
    it already has the generations asked for."""

    store: RunStore
    cfg: Config
    seeds: list[dict[str, Any]]
    checkpoint: dict[str, Any] | None
    done: bool


def prepare_resume(run_dir: Path, *, generations: int | None, config_path: Path | None,
                   jobs: int | None, max_calls: int | None, max_cost: float | None) -> ResumePlan:
    """Open a run to continue it, refusing (naming the key) a config that would not reproduce
    it; nothing is written before every check has passed."""
    store = RunStore.open(run_dir)
    cfg = config_from_run(store.config(), str(store.config_file))
    if config_path is not None:
        diff = first_difference(cfg.to_json(), load_config(config_path).to_json())
        if diff:
            raise InputError("differs from the run's config; resuming would not reproduce the run "
                             "(start a new run instead)", path=config_path, field=diff)
    cfg = cfg.with_run_limits(generations=generations, jobs=jobs, max_calls=max_calls,
                              max_cost=max_cost)
    check_credentials([cfg.model(n) for n in cfg.model_names()], cfg.source)
    seeds = store.seeds()
    store.lock()
    cp = store.checkpoint()
    if cp and cp["generation"] >= cfg.run.generations:
        store.unlock()
        return ResumePlan(store, cfg, seeds, cp, done=True)
    store.adopt_run_id()
    store.event("resumed", from_generation=cp["generation"] if cp else None,
                generations=cfg.run.generations)
    if generations is not None or max_calls is not None or max_cost is not None:
        data = store.config()
        data["run"].update(cfg.run.model_dump())
        write_json(store.config_file, data)
    return ResumePlan(store, cfg, seeds, cp, done=False)


def _has_samples(cache_file: Path) -> bool:
    """Whether anything was paid for in this cache (read-only; unreadable counts as yes)."""
    if not cache_file.exists():
        return False
    try:
        db = sqlite3.connect(f"file:{cache_file}?mode=ro", uri=True)
        try:
            return db.execute("SELECT COUNT(*) FROM samples").fetchone()[0] > 0
        finally:
            db.close()
    except sqlite3.Error:
        return True  # cannot tell: keep it
