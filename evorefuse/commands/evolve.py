"""`evorefuse evolve` and `evorefuse resume`."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

import click

from evorefuse.config import Config, load_config
from evorefuse.errors import InputError, RunFailed
from evorefuse.evolution.presets import plan_for

EXIT_BUDGET = 3
# Keys that may differ on resume without changing what the run computes.
_RESUME_FREE = {"run.generations", "run.max_calls", "run.max_cost", "run.max_concurrency"}


def _apply_run_limits(cfg: Config, *, generations: int | None, jobs: int | None,
                      max_calls: int | None, max_cost: float | None) -> None:
    """The settings that may change between a run and its resume (they change how far and how
    fast it goes, never what it computes)."""
    if generations is not None:
        cfg.run.generations = generations
    if jobs is not None:
        cfg.run.max_concurrency = jobs
    if max_calls is not None:
        cfg.run.max_calls = max_calls
    if max_cost is not None:
        cfg.run.max_cost = max_cost


def _apply_overrides(cfg: Config, *, generations: int | None, targets: tuple[str, ...],
                     mutator: str | None, judge: str | None, seed: int | None, jobs: int | None,
                     max_calls: int | None, max_cost: float | None, preset: str | None) -> Config:
    _apply_run_limits(cfg, generations=generations, jobs=jobs, max_calls=max_calls,
                      max_cost=max_cost)
    if targets:
        cfg.roles.targets = list(targets)
    if mutator:
        cfg.roles.mutator = mutator
    if judge:
        cfg.roles.judge = judge
    if seed is not None:
        cfg.run.seed = seed
    if preset:
        cfg.run.preset = preset
    for role, names in cfg.role_models().items():
        for n in names:
            cfg.model(n, where=f"--{role}")
    return cfg


def dry_run_estimate(cfg: Config, n_seeds: int) -> dict[str, Any]:
    """Upper bounds on calls per role, and the cost if every call used its max_tokens."""
    from evorefuse.models.pricing import planned_cost

    plan = plan_for(cfg)
    g, L, N = cfg.run.generations, plan.mutations, plan.recombinations
    cands = L + N
    per_role: dict[str, dict[str, float]] = {}

    def add(role: str, name: str, calls: int, tokens_in: int, tokens_out: int) -> None:
        spec = cfg.model(name)
        d = per_role.setdefault(f"{role}/{name}", {"calls": 0, "tokens_in": 0, "tokens_out": 0,
                                                   "cost": 0.0})
        d["calls"] += calls
        d["tokens_in"] += tokens_in
        d["tokens_out"] += tokens_out
        d["cost"] += planned_cost(spec, tokens_in, tokens_out)  # batched models at batch rate

    mut_calls = n_seeds * g * (L + N)   # framings cost nothing, so this bounds the fast preset too
    add("mutator", cfg.roles.mutator, mut_calls, mut_calls * 350, mut_calls *
        cfg.evolution.mutator_max_tokens)
    for j in cfg.judges():
        calls = n_seeds * (1 + g * cands)   # every seed is judged once, as the judge's calibration
        add("judge", j, calls, calls * 150, calls * 8)
    K, T = plan.samples, plan.max_tokens
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
        else:
            calls = n_seeds * (1 + g * scored) * per_full
            out = n_seeds * (1 + g * scored) * K * T
        add("target", t, calls, calls * 60, out)
    total_calls = sum(int(d["calls"]) for d in per_role.values())
    total_cost = sum(d["cost"] for d in per_role.values())
    return {"seeds": n_seeds, "generations": g, "preset": plan.preset, "per_role": per_role,
            "max_calls": total_calls, "max_cost_usd": round(total_cost, 4)}


def _print_summary(store: Any) -> None:
    """The table `make demo` ends with: each seed, its best evolved instruction, before/after."""
    records = store.archive()
    cp = store.checkpoint() or {}
    seeds = {r["lineage"]: r for r in records if r["strategy"] == "seed"}
    click.echo("")
    click.echo(f"{'seed':<14} {'before':>6} {'after':>6}  best evolved instruction")
    before, after = [], []
    for lin in cp.get("lineages", []):
        s = seeds.get(lin["index"], {})
        b = s.get("refusal_rate", 0.0)
        a = lin["best"]["refusal_rate"]
        before.append(b)
        after.append(a)
        prompt = lin["best"]["prompt"]
        prompt = prompt if len(prompt) <= 90 else prompt[:87] + "..."
        click.echo(f"{lin['seed_id'][:14]:<14} {b:>6.2f} {a:>6.2f}  {prompt}")
    if before:
        click.echo(f"{'mean':<14} {sum(before)/len(before):>6.2f} {sum(after)/len(after):>6.2f}")


def run_engine(store: Any, cfg: Config, seeds: list[dict[str, Any]], checkpoint: dict | None,
               quiet: bool) -> None:
    from evorefuse.evolution.engine import BudgetStop, Engine
    from evorefuse.models.cache import RequestCache
    from evorefuse.models.ledger import Budget, Ledger
    from evorefuse.models.registry import Registry, check_credentials

    names = sorted({n for ns in cfg.role_models().values() for n in ns})
    check_credentials(cfg, names)
    cache = RequestCache(store.cache_file)
    ledger = Ledger(budget=Budget(cfg.run.max_calls, cfg.run.max_cost))
    ledger.load_rows(cache.ledger_rows(store.path.name))
    registry = Registry(cfg, cache, ledger, run_id=store.path.name)

    async def go() -> None:
        engine = Engine(cfg, store, registry, ledger, show_progress=not quiet)
        if checkpoint:
            engine.restore(checkpoint)
        else:
            store.truncate_archive(0)  # a crash before the first checkpoint: start clean
        try:
            await engine.run(seeds, cfg.run.generations)
        finally:
            await registry.aclose()

    try:
        asyncio.run(go())
    except BudgetStop as exc:
        click.echo(f"stopped: {exc}; everything is saved. Continue "
                   f"with: evorefuse resume {store.path} --max-calls N / --max-cost USD", err=True)
        raise SystemExit(EXIT_BUDGET)
    finally:
        cache.close()
        store.unlock()
    if not quiet:
        _print_summary(store)
        click.echo(f"\nrun directory: {store.path}  (status: evorefuse status {store.path}; "
                   f"export: evorefuse export {store.path} --format test)")


@click.command("evolve")
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="TOML config (models, roles, evolution settings). Default: everything on `local`.")
@click.option("--seeds", "seed_paths", multiple=True, type=click.Path(path_type=Path),
              help="Seed file(s) or folder: JSONL, CSV (XSTest/OR-Bench) or TXT. Default: shipped seeds.")
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Run directory to create. Default: runs/<timestamp>.")
@click.option("--generations", type=click.IntRange(0, 10_000), help="Generations to run.")
@click.option("--target", "targets", multiple=True, help="Target model name (repeatable).")
@click.option("--mutator", help="Mutator model name.")
@click.option("--judge", help="Judge model name.")
@click.option("--seed", type=int, help="Random seed of the run.")
@click.option("-j", "--max-concurrency", "jobs", type=click.IntRange(1, 4096),
              help="Maximum concurrent model requests.")
@click.option("--max-calls", type=click.IntRange(1), help="Stop before more than N paid calls.")
@click.option("--max-cost", type=click.FloatRange(0, min_open=True), help="Stop before spending more (USD).")
@click.option("--preset", type=click.Choice(["paper", "fast"]), help="paper: EvoRefuse settings; fast: cheap screens (default).")
@click.option("--dry-run", is_flag=True, help="Print the maximum calls per role and the cost; call nothing.")
@click.option("--limit-seeds", type=click.IntRange(1), help="Use only the first N seeds.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or summary table.")
def evolve_command(config_path: Path | None, seed_paths: tuple[Path, ...], run_dir: Path | None,
                   generations: int | None, targets: tuple[str, ...], mutator: str | None,
                   judge: str | None, seed: int | None, jobs: int | None, max_calls: int | None,
                   max_cost: float | None, preset: str | None, dry_run: bool,
                   limit_seeds: int | None, quiet: bool) -> None:
    """Evolve pseudo-malicious instructions from seeds into a new run directory."""
    from evorefuse.runstore import RunStore
    from evorefuse.seeds import load_seeds, shipped_seeds

    cfg = _apply_overrides(load_config(config_path), generations=generations, targets=targets,
                           mutator=mutator, judge=judge, seed=seed, jobs=jobs,
                           max_calls=max_calls, max_cost=max_cost, preset=preset)
    paths = list(seed_paths) or [shipped_seeds("default")]
    seed_set = load_seeds(paths)
    seeds = [{"id": s.id, "prompt": s.prompt, "category": s.category} for s in seed_set.seeds]
    if limit_seeds:
        seeds = seeds[:limit_seeds]
    if not quiet:
        click.echo(seed_set.summary(), err=True)
    if dry_run:
        est = dry_run_estimate(cfg, len(seeds))
        click.echo(f"dry run: {est['seeds']} seeds x {est['generations']} generations, preset "
                   f"{est['preset']}; nothing was called")
        click.echo(f"{'role/model':<28} {'max calls':>10} {'tokens in':>11} {'tokens out':>11} {'cost USD':>10}")
        for k, d in est["per_role"].items():
            click.echo(f"{k:<28} {int(d['calls']):>10} {int(d['tokens_in']):>11} "
                       f"{int(d['tokens_out']):>11} {d['cost']:>10.4f}")
        click.echo(f"{'total':<28} {est['max_calls']:>10} {'':>11} {'':>11} {est['max_cost_usd']:>10.4f}")
        return
    offline = all(cfg.model(n).kind == "local" for ns in cfg.role_models().values() for n in ns)
    if offline and not quiet:
        click.echo("running offline: the embedded model `local` (SmolLM2-135M) plays every role",
                   err=True)
    # Bad input must fail before the run directory exists, not leave a half-made run behind.
    from evorefuse.models.registry import check_credentials
    from evorefuse.operators.strategies import build_catalogue

    build_catalogue(cfg.strategies, cfg.evolution.strategies, source=cfg.source)
    check_credentials(cfg, sorted({n for ns in cfg.role_models().values() for n in ns}))
    run_dir = run_dir or Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    fresh = not run_dir.exists()
    store = RunStore.create(run_dir, cfg.to_json(), cfg.fingerprint(), seeds)
    store.event("created", config=cfg.source, seeds=seed_set.summary())
    try:
        run_engine(store, cfg, seeds, None, quiet)
    except InputError:
        if store.checkpoint() is None and not _has_samples(store.cache_file):
            # nothing was computed or paid for: remove what we created
            import shutil

            store.unlock()
            if fresh:
                shutil.rmtree(run_dir, ignore_errors=True)
            else:
                for child in run_dir.iterdir():
                    shutil.rmtree(child) if child.is_dir() else child.unlink(missing_ok=True)
        raise


def _has_samples(cache_file: Path) -> bool:
    if not cache_file.exists():
        return False
    import sqlite3

    try:
        db = sqlite3.connect(f"file:{cache_file}?mode=ro", uri=True)
        try:
            return db.execute("SELECT COUNT(*) FROM samples").fetchone()[0] > 0
        finally:
            db.close()
    except sqlite3.Error:
        return True  # cannot tell: keep it


def _config_from_run(data: dict[str, Any], source: str) -> Config:
    from evorefuse.config import (EvolutionSection, FitnessSection, RolesSection, RunSection,
                                  StrategySpec)
    from evorefuse.models.spec import ModelSpec

    try:
        fit = dict(data["fitness"])
        fit["lam"] = fit.pop("lambda")
        return Config(run=RunSection(**data["run"]), roles=RolesSection(**data["roles"]),
                      evolution=EvolutionSection(**data["evolution"]),
                      fitness=FitnessSection(**fit),
                      strategies=[StrategySpec(**s) for s in data["strategies"]],
                      models={k: ModelSpec(**v) for k, v in data["models"].items()}, source=source)
    except (KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"the run's config does not fit this evorefuse ({exc}); was it written "
                         "by another version?", path=source) from None


def _first_difference(a: Any, b: Any, prefix: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            key = f"{prefix}.{k}" if prefix else k
            if key in _RESUME_FREE:
                continue
            d = _first_difference(a.get(k), b.get(k), key)
            if d:
                return d
        return None
    return None if a == b else prefix


@click.command("resume")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--generations", type=click.IntRange(0, 10_000),
              help="New total number of generations (not 'N more').")
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Check that this config still matches the run (refuses, naming the key, if not).")
@click.option("-j", "--max-concurrency", "jobs", type=click.IntRange(1, 4096))
@click.option("--max-calls", type=click.IntRange(1), help="New budget: total paid calls of the run.")
@click.option("--max-cost", type=click.FloatRange(0, min_open=True), help="New budget: total USD of the run.")
@click.option("-q", "--quiet", is_flag=True)
def resume_command(run_dir: Path, generations: int | None, config_path: Path | None,
                   jobs: int | None, max_calls: int | None, max_cost: float | None,
                   quiet: bool) -> None:
    """Continue an interrupted run; with --generations N, extend it to N generations in total."""
    from evorefuse.runstore import RunStore

    store = RunStore.open(run_dir)
    cfg = _config_from_run(store.config(), str(store.config_file))
    if config_path is not None:
        given = load_config(config_path)
        diff = _first_difference(cfg.to_json(), given.to_json())
        if diff:
            raise InputError(f"differs from the run's config; resuming would not reproduce the "
                             f"run (start a new run instead)", path=config_path, field=diff)
    _apply_run_limits(cfg, generations=generations, jobs=jobs, max_calls=max_calls,
                      max_cost=max_cost)
    from evorefuse.models.registry import check_credentials

    # before anything is written: a failed resume must leave the run as it was
    check_credentials(cfg, sorted({n for ns in cfg.role_models().values() for n in ns}))
    store.lock()
    cp = store.checkpoint()
    if cp and cp["generation"] >= cfg.run.generations:
        store.unlock()
        click.echo(f"run already has {cp['generation']} generations; nothing to do "
                   f"(extend with --generations N)", err=True)
        return
    store.event("resumed", from_generation=cp["generation"] if cp else None,
                generations=cfg.run.generations)
    if generations is not None or max_calls is not None or max_cost is not None:
        data = store.config()
        data["run"].update(dataclasses.asdict(cfg.run))
        from evorefuse.runstore import write_json
        write_json(store.config_file, data)
    run_engine(store, cfg, store.seeds(), cp, quiet)
