"""`evorefuse evolve` and `evorefuse resume`: options and what is printed."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from evorefuse.commands.progress import TerminalProgress
from evorefuse.config import PRESETS, load_config

EXIT_BUDGET = 3
LONG_RUN_SECONDS = 30 * 60


def _print_summary(store: Any) -> None:
    """The table `make demo` ends with: each seed, its best evolved instruction, before/after."""
    from evorefuse.runstats import lineage_results

    results = lineage_results(store)
    click.echo("")
    click.echo(f"{'seed':<14} {'before':>6} {'after':>6}  best evolved instruction")
    for r in results:
        prompt = r.best_prompt if len(r.best_prompt) <= 90 else r.best_prompt[:87] + "..."
        click.echo(f"{r.seed_id[:14]:<14} {r.before:>6.2f} {r.after:>6.2f}  {prompt}")
    if results:
        n = len(results)
        click.echo(f"{'mean':<14} {sum(r.before for r in results) / n:>6.2f} "
                   f"{sum(r.after for r in results) / n:>6.2f}")


def _run_to_end(run: Callable[[], object], run_dir: Path, quiet: bool) -> None:
    """Run, then print the summary table; at the budget, say how to continue and exit 3."""
    from evorefuse.runner import BudgetStop
    from evorefuse.runstore import RunStore

    try:
        run()
    except BudgetStop as exc:
        click.echo(f"stopped: {exc}; everything is saved. Continue "
                   f"with: evorefuse resume {run_dir} --max-calls N / --max-cost USD", err=True)
        raise SystemExit(EXIT_BUDGET)
    if not quiet:
        _print_summary(RunStore.open(run_dir))
        click.echo(f"\nrun directory: {run_dir}  (status: evorefuse status {run_dir}; "
                   f"export: evorefuse export {run_dir} --format test)")


def _duration(seconds: float) -> str:
    minutes = max(1, round(seconds / 60))
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def _print_estimate(est: Any, seconds: float) -> None:
    click.echo(f"dry run: {est.seeds} seeds x {est.generations} generations, preset "
               f"{est.preset}; nothing was called")
    click.echo(f"{'role/model':<28} {'max calls':>10} {'tokens in':>11} {'tokens out':>11} "
               f"{'cost USD':>10}")
    for k, r in est.per_role.items():
        click.echo(f"{k:<28} {r.calls:>10} {r.tokens_in:>11} {r.tokens_out:>11} {r.cost:>10.4f}")
    click.echo(f"{'total':<28} {est.max_calls:>10} {'':>11} {'':>11} {est.max_cost_usd:>10.4f}")
    click.echo(f"wall time: at most about {_duration(seconds)} (every call at its token limit; "
               "README, \"Time and cost before spending\")")


def _confirm_long_run(est: Any, seconds: float) -> None:
    """On a terminal, a run that may take long is started only when the user says so."""
    if seconds < LONG_RUN_SECONDS or not sys.stdin.isatty():
        return
    click.confirm(f"This run may take up to about {_duration(seconds)} ({est.seeds} seeds x "
                  f"{est.generations} generations, at most {est.max_calls} calls, "
                  f"${est.max_cost_usd:.2f}). For a first try: --limit-seeds 12 --generations 3. "
                  "Start it?", abort=True, err=True)


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
@click.option("--language", "languages", multiple=True, metavar="CODE",
              help="Evolve in this language (BCP-47, repeatable): seeds written in it, or, when "
                   "none is, the other seeds rewritten into it by the mutator.")
@click.option("-j", "--max-concurrency", "jobs", type=click.IntRange(1, 4096),
              help="Maximum concurrent model requests.")
@click.option("--max-calls", type=click.IntRange(1), help="Stop before more than N paid calls.")
@click.option("--max-cost", type=click.FloatRange(0, min_open=True), help="Stop before spending more (USD).")
@click.option("--preset", type=click.Choice(PRESETS),
              help="paper: EvoRefuse settings; fast: cheap screens (default).")
@click.option("--dry-run", is_flag=True, help="Print the maximum calls per role and the cost; call nothing.")
@click.option("--limit-seeds", type=click.IntRange(1), help="Use only the first N seeds.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or summary table.")
@click.option("-y", "--yes", is_flag=True,
              help="Start a long run without asking (on a terminal, runs estimated over 30 "
                   "minutes ask first).")
def evolve_command(config_path: Path | None, seed_paths: tuple[Path, ...], run_dir: Path | None,
                   generations: int | None, targets: tuple[str, ...], mutator: str | None,
                   judge: str | None, seed: int | None, languages: tuple[str, ...],
                   jobs: int | None, max_calls: int | None,
                   max_cost: float | None, preset: str | None, dry_run: bool,
                   limit_seeds: int | None, quiet: bool, yes: bool) -> None:
    """Evolve pseudo-malicious instructions from seeds into a new run directory."""
    from evorefuse.languages import primary, validate_language
    from evorefuse.runner import seed_plan
    from evorefuse.seeds import load_seeds, shipped_seeds

    codes = [validate_language(code) for code in languages]
    cfg = load_config(config_path).with_run_limits(
        generations=generations, jobs=jobs, max_calls=max_calls, max_cost=max_cost
    ).with_overrides(targets=targets, mutator=mutator, judge=judge, seed=seed, preset=preset)
    seed_set = load_seeds(list(seed_paths) or [shipped_seeds("default")])
    plan = seed_plan(seed_set.seeds, codes)
    seeds = plan.records[:limit_seeds] if limit_seeds else plan.records
    if not quiet:
        click.echo(seed_set.summary(), err=True)
        for note in plan.notes:
            click.echo(f"--language: {note}", err=True)
    from evorefuse.estimate import dry_run_estimate, wall_seconds

    est = dry_run_estimate(cfg, len(seeds))
    seconds = wall_seconds(est, cfg)
    if dry_run:
        _print_estimate(est, seconds)
        return
    if not yes:
        _confirm_long_run(est, seconds)
    offline = all(cfg.model(n).kind == "local" for n in cfg.model_names())
    if offline and not quiet:
        click.echo("running offline: the embedded model `local` (SmolLM2-135M) plays every role",
                   err=True)
    if (not quiet and cfg.model(cfg.roles.mutator).kind == "local"
            and any(primary(s.get("target_language") or s["language"]) != "en" for s in seeds)):
        click.echo("note: the embedded mutator writes languages other than English badly; those "
                   "lineages rest on framings (README, \"Languages\")", err=True)
    from evorefuse.runner import start_run

    run_dir = run_dir or Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    summary = "; ".join([seed_set.summary(), *plan.notes])
    _run_to_end(lambda: start_run(cfg, seeds, run_dir, summary,
                                  TerminalProgress(quiet)), run_dir, quiet)


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
    from evorefuse.runner import drive, prepare_resume

    plan = prepare_resume(run_dir, generations=generations, config_path=config_path, jobs=jobs,
                          max_calls=max_calls, max_cost=max_cost)
    for notice in plan.notices:
        click.echo(notice, err=True)
    if plan.done:
        click.echo(f"run already has {plan.checkpoint['generation'] if plan.checkpoint else 0} "
                   f"generations; nothing to do (extend with --generations N)", err=True)
        return
    _run_to_end(lambda: drive(plan.store, plan.cfg, plan.seeds, plan.checkpoint,
                              TerminalProgress(quiet)), plan.store.path, quiet)
