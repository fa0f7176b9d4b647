"""`evorefuse seeds -o FILE`: options and what is printed (the work is `evorefuse.seedgen`)."""

from __future__ import annotations

from pathlib import Path

import click

from evorefuse.commands.progress import TerminalProgress

EXIT_BUDGET = 3


@click.command("seeds")
@click.option("-o", "--out", "out", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="Seed file to write (JSONL: id, prompt, category, language).")
@click.option("--category", "categories", multiple=True, metavar="NAME",
              help="A category to write seeds for (repeatable), e.g. \"medication safety\".")
@click.option("--policy", "policy_path", type=click.Path(path_type=Path),
              help="A content policy (UTF-8 text): categories come from what it restricts, and "
                   "its text guides every request.")
@click.option("--per-category", type=int, default=10, show_default=True,
              help="Seeds per category and language.")
@click.option("--language", "languages", multiple=True, metavar="CODE",
              help="Language to write in (BCP-47, repeatable). Default: en.")
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="TOML config (models, roles). Default: everything on `local`.")
@click.option("--generator", help="Model that writes the seeds. Default: roles.mutator.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Random seed (a different one gives other seeds).")
@click.option("-j", "--max-concurrency", "jobs", type=click.IntRange(1, 4096),
              help="Maximum concurrent model requests.")
@click.option("--max-calls", type=click.IntRange(1), help="Stop before more than N paid calls.")
@click.option("--max-cost", type=click.FloatRange(0, min_open=True),
              help="Stop before spending more (USD).")
@click.option("--cache", "cache_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Request cache (default ~/.cache/evorefuse/evaluate.sqlite).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or per-category summary.")
def seeds_command(out: Path, categories: tuple[str, ...], policy_path: Path | None,
                  per_category: int, languages: tuple[str, ...], config_path: Path | None,
                  generator: str | None, seed: int, jobs: int | None, max_calls: int | None,
                  max_cost: float | None, cache_path: Path | None, quiet: bool) -> None:
    """Write harmless instructions that sound sensitive, per category and language, each passing
    the free checks, near-duplicate removal and the benign judge."""
    from evorefuse.config import load_config
    from evorefuse.content_policy import read_policy
    from evorefuse.errors import InputError, RunFailed
    from evorefuse.fileio import check_output, write_output
    from evorefuse.languages import validate_language
    from evorefuse.models.ledger import Budget
    from evorefuse.seedgen import SeedSpec, generate_seeds, seeds_jsonl
    from evorefuse.session import DEFAULT_CACHE

    if per_category < 1:
        raise InputError(f"must be at least 1, got {per_category}", field="--per-category")
    codes = tuple(dict.fromkeys(validate_language(code) for code in languages)) or ("en",)
    names = tuple(dict.fromkeys(c.strip() for c in categories if c.strip()))
    if categories and not names:
        raise InputError("a category name cannot be empty", field="--category")
    policy = read_policy(policy_path) if policy_path is not None else None
    if not names and policy is None:
        raise InputError("say what to write about: --category NAME (repeatable) or --policy FILE",
                         field="--category")
    check_output(out)
    cfg = load_config(config_path).with_run_limits(jobs=jobs)
    generator = generator or cfg.roles.mutator
    cfg.model(generator, where="--generator")
    spec = SeedSpec(categories=names or (policy.categories if policy else ()),
                    per_category=per_category, languages=codes,
                    policy=policy.text if policy else None, seed=seed)
    if not quiet and policy is not None and not names:
        click.echo(f"categories from {policy.path}: {', '.join(spec.categories)}", err=True)
    result = generate_seeds(cfg, spec, generator=generator, cache_path=cache_path or DEFAULT_CACHE,
                            budget=Budget(max_calls, max_cost),
                            progress=TerminalProgress(quiet))
    if not quiet:
        for tally in result.tallies:
            click.echo(tally.summary(), err=True)
    if not result.seeds:
        if result.stopped:
            click.echo(f"stopped: {result.stopped}; no seed was accepted yet", err=True)
            raise SystemExit(EXIT_BUDGET)
        raise RunFailed("no seed passed the checks (see the reasons above); a capable "
                        "--generator writes far more usable seeds than the embedded model")
    write_output(out, seeds_jsonl(result.seeds))
    click.echo(f"seeds: wrote {len(result.seeds)} seeds to {out} (evolve them with: evorefuse "
               f"evolve --seeds {out})", err=True)
    if result.stopped:
        click.echo(f"stopped: {result.stopped}; the seeds accepted so far are written, and "
                   "running the same command again reuses every cached call", err=True)
        raise SystemExit(EXIT_BUDGET)
