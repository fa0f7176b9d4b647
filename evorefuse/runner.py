"""Starting, resuming and driving an evolution run in its run directory.

Why here and not in the command: the rules about when a run directory may be created, what a
resume may change, and what is left behind after a failure are the product's, not the command
line's; tests and benchmarks drive runs through the same functions.
"""

from __future__ import annotations

import gc
import hashlib
import shutil
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from evorefuse import interrupts
from evorefuse.config import Config, config_from_run, first_difference, load_config
from evorefuse.errors import InputError, Interrupted
from evorefuse.evolution.engine import BudgetStop
from evorefuse.evolution.lineage import seed_languages
from evorefuse.evolution.progress import Progress
from evorefuse.languages import language_name, primary
from evorefuse.models.registry import check_credentials
from evorefuse.operators.strategies import build_catalogue
from evorefuse.preflight import reachable
from evorefuse.runstore import RunStore, write_json
from evorefuse.scoring.harm.classifier import READS
from evorefuse.scoring.harm.judge import resolve_mode
from evorefuse.seeds import Seed
from evorefuse.session import Session

__all__ = ["BudgetStop", "ResumePlan", "SeedPlan", "drive", "prepare_resume", "seed_plan",
           "start_run"]


@dataclass
class SeedPlan:
    """The seed records a run starts from (`id`, `prompt`, `category`, `language`, and
    `target_language` for a seed carried into another language), and what the user should hear
    about how `--language` chose them."""

    records: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)


def seed_plan(seeds: Sequence[Seed], languages: Sequence[str] = ()) -> SeedPlan:
    """The run's seeds, restricted to or carried into the `languages` asked for (BCP-47 codes,
    already validated; compared by their primary subtag, so `zh-Hans` takes `zh` seeds).

    A language some seeds are written in takes those seeds as they are. A language none is
    written in takes every seed that is in none of the languages asked for, to be rewritten into
    it by the mutator (id `<seed id>@<language>`, since one seed may go to several languages).
    Seeds in other languages are left out when every language asked for has seeds of its own.
    """
    if not languages:
        return SeedPlan([_record(s) for s in seeds])
    wanted = list(dict.fromkeys(languages))
    asked = {primary(code) for code in wanted}
    own = {code: [s for s in seeds if primary(s.language) == primary(code)] for code in wanted}
    others = [s for s in seeds if primary(s.language) not in asked]
    records: list[dict[str, Any]] = []
    notes: list[str] = []
    for code in wanted:
        if own[code]:
            records += [_record(s) for s in own[code]]
            notes.append(f"{len(own[code])} seeds in {language_name(code)} ({code})")
        elif others:
            records += [_record(s, carried_into=code) for s in others]
            notes.append(f"{len(others)} seeds carried into {language_name(code)} ({code}) by "
                         "the mutator (framings start once a rewrite is in it)")
        else:
            notes.append(f"no seed for {language_name(code)} ({code}): every seed is in another "
                         "language asked for")
    if others and all(own.values()):
        notes.append(f"{len(others)} seeds in other languages left out")
    if not records:
        raise InputError("no seed left for the languages asked for", field="--language")
    return SeedPlan(records, notes)


def _record(seed: Seed, carried_into: str | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {"id": seed.id, "prompt": seed.prompt, "category": seed.category,
                              "language": seed.language, "source": Path(seed.source).name}
    if carried_into is not None:
        record["id"] = f"{seed.id}@{carried_into}"
        record["target_language"] = carried_into
    return record


def unreadable_lineages(cfg: Config, seeds: Sequence[dict[str, Any]]) -> str | None:
    """What to tell a user whose lineages are in languages the offline judge cannot read: their
    candidates will all be kept out (`scoring.harm.classifier`), which they should hear before
    the run, not discover from an empty export."""
    if resolve_mode(cfg.judges(), cfg.roles.judge_mode) != "classifier":
        return None
    languages = [str(seed_languages(s)["language"]) for s in seeds]
    other = [code for code in languages if primary(code) != READS]
    if not other:
        return None
    n, codes = len(other), sorted(set(other))
    return (f"{n} of {len(seeds)} lineages are in {', '.join(codes)}: the offline judge reads "
            "English only, so their candidates will not pass the benign gate; name an LLM judge "
            "(--judge NAME, or roles.judge) to evolve them")


RUN_GC_THRESHOLD = 50_000
"""Net container allocations between two young-generation collections during a run (Python's
default is 700). A run keeps up to `max_concurrency` requests in flight, and each parsed response
is thousands of lists and dicts (a target's top-20 logprobs at every token) alive for the request's
latency: at 700, young collections run thousands of times, promote what is in flight, and the
oldest generation then grows fast enough to be collected in full, the whole heap each time.
Measured at 1,000 lineages x 3 generations: 56 full collections of about 0.1 s each, a quarter of
the main thread's CPU; at 50,000 none. Only cyclic garbage waits longer: reference counting frees
everything else at once."""


@contextmanager
def collecting_less_often(threshold: int = RUN_GC_THRESHOLD) -> Iterator[None]:
    """Raise the young generation's collection threshold for the duration, then put back the
    previous thresholds (a process that drives several runs, or a test, keeps its own). A
    threshold of 0 (automatic collection off) is left alone."""
    before = gc.get_threshold()
    if before[0]:
        gc.set_threshold(max(threshold, before[0]), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


def drive(store: RunStore, cfg: Config, seeds: list[dict[str, Any]],
          checkpoint: dict[str, Any] | None, progress: Progress) -> None:
    """Run (or continue) the engine to `cfg.run.generations`; raises BudgetStop when the budget
    would be exceeded (everything up to the last generation is saved)."""
    session = Session.for_run(store, cfg)
    unreadable = unreadable_lineages(cfg, seeds)
    if unreadable:
        session.notices.append(unreadable)
    for notice in session.notices:
        progress.notice(notice)
        store.event("notice", text=notice)

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
        with collecting_less_often():
            interrupts.run(go())
    except (KeyboardInterrupt, interrupts.Terminated) as exc:
        cp = store.checkpoint()
        done = cp["generation"] if cp else None
        store.event("interrupted",
                    signal="SIGTERM" if isinstance(exc, interrupts.Terminated) else "SIGINT",
                    generation=done)
        saved = (f"generation {done} is saved" if done is not None
                 else "nothing was complete yet; calls already made are cached")
        raise Interrupted(f"interrupted: {saved}. Continue with: evorefuse resume {store.path}",
                          interrupts.exit_code(exc)) from None
    finally:
        session.close()
        store.unlock()


def start_run(cfg: Config, seeds: list[dict[str, Any]], run_dir: Path, seeds_summary: str,
              progress: Progress) -> RunStore:
    """Create the run directory and run it. Bad input fails before the directory exists; if the
    first call turns out to be bad input (an endpoint that rejects the request), nothing was
    computed or paid for and what was created is removed."""
    cfg = cfg.resolved()
    build_catalogue(cfg.strategies, cfg.evolution.strategies, source=cfg.source)
    check_credentials([cfg.model(n) for n in cfg.model_names()], cfg.source)
    reachable(cfg, cfg.model_names())
    fresh = not run_dir.exists()
    store = RunStore.create(run_dir, cfg, seeds)
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
    notices: list[str] = field(default_factory=list)  # for the user, e.g. what could not be checked


def prepare_resume(run_dir: Path, *, generations: int | None, config_path: Path | None,
                   jobs: int | None, max_calls: int | None, max_cost: float | None) -> ResumePlan:
    """Open a run to continue it, refusing (naming the key) a config that would not reproduce
    it; nothing is written before every check has passed."""
    store = RunStore.open(run_dir)
    cfg = config_from_run(store.config(), str(store.config_file))
    notices = verify_config(store, cfg)
    if config_path is not None:
        diff = first_difference(cfg.to_json(), load_config(config_path).resolved().to_json())
        if diff:
            raise InputError("differs from the run's config; resuming would not reproduce the run "
                             "(start a new run instead)", path=config_path, field=diff)
    cfg = cfg.with_run_limits(generations=generations, jobs=jobs, max_calls=max_calls,
                              max_cost=max_cost)
    check_credentials([cfg.model(n) for n in cfg.model_names()], cfg.source)
    seeds = store.seeds()
    store.archive()  # every committed record readable, or one line saying which is damaged
    store.lock()
    cp = store.checkpoint()
    if cp and cp["generation"] >= cfg.run.generations:
        store.unlock()
        return ResumePlan(store, cfg, seeds, cp, done=True, notices=notices)
    store.adopt_run_id()
    store.event("resumed", from_generation=cp["generation"] if cp else None,
                generations=cfg.run.generations)
    if generations is not None or max_calls is not None or max_cost is not None:
        data = store.config()
        data["run"].update(cfg.run.model_dump())
        write_json(store.config_file, data)
    return ResumePlan(store, cfg, seeds, cp, done=False, notices=notices)


def verify_config(store: RunStore, cfg: Config) -> list[str]:
    """Refuse a run whose saved config was edited since it started in a way that changes what it
    computes (naming the first such key); the run's limits (generations, budgets, concurrency)
    may change. Returns notices for what could not be checked."""
    manifest = store.manifest()
    if manifest.get("format_version", 1) >= 2:
        if cfg.computation_hash() != manifest.get("config_hash"):
            key = first_difference(manifest.get("config") or {}, cfg.computation_json())
            raise InputError("changed since the run started, so resuming would not reproduce "
                             "it; restore the original value or start a new run",
                             path=store.config_file, field=key or "config")
        return []
    # Runs made before version 2 hashed the whole file, limits included.
    saved = hashlib.sha256(orjson.dumps(store.config(), option=orjson.OPT_SORT_KEYS)).hexdigest()
    if saved != manifest.get("config_hash"):
        return [f"{store.config_file}: made by an earlier evorefuse that cannot tell an edited "
                "config from an extended run; continuing without that check"]
    return []


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
