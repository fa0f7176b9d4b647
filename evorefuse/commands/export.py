"""`evorefuse export RUN_DIR --format test|sft|dpo`: the command-line face of `evorefuse.export`."""

from __future__ import annotations

from pathlib import Path

import click

from evorefuse.commands.progress import TerminalProgress
from evorefuse.export import ALL_STYLES, FORMATS


@click.command("export")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--format", "fmt", required=True, type=click.Choice(FORMATS),
              help="test: test set; sft: TRL messages; dpo: preference pairs.")
@click.option("--style", type=click.Choice(ALL_STYLES),
              help="test: jsonl (default) or xstest CSV; sft: trl; dpo: trl (default) or llamafactory.")
@click.option("-o", "--out", "out", type=click.Path(path_type=Path),
              help="Output file (default: RUN_DIR/exports/<format>.jsonl).")
@click.option("--best-per-lineage/--all-candidates", default=None,
              help="Only the best candidate of each lineage (default for --format test, one "
                   "evolved instruction per seed as in EvoRefuse-Test), or every benign, fully "
                   "scored candidate (default for sft and dpo: more training pairs).")
@click.option("--min-refusal-rate", type=click.FloatRange(0, 1),
              help="Keep candidates whose mean refusal rate is at least this.")
@click.option("--min-targets", type=click.IntRange(1),
              help="Keep candidates refused by at least M targets (rate >= 0.5, or "
                   ">= --min-refusal-rate if given).")
@click.option("--dedup", type=click.FloatRange(0, 1), default=0.92, show_default=True,
              help="Drop near-duplicates at this cosine similarity (1 disables).")
@click.option("--include-seeds", is_flag=True, help="Export the seeds too.")
@click.option("--exclude-judged-unsafe", is_flag=True,
              help="Leave out items the archive calls benign although their judge verdict is "
                   "harmful or unreadable (runs made by earlier versions); without it such an "
                   "archive is refused rather than exported as safe.")
def export_command(run_dir: Path, fmt: str, style: str | None, out: Path | None,
                   best_per_lineage: bool | None, min_refusal_rate: float | None,
                   min_targets: int | None, dedup: float, include_seeds: bool,
                   exclude_judged_unsafe: bool) -> None:
    """Export a run as a test set, SFT data or DPO preference pairs.

    `sft` and `dpo` call models: the responder writes the helpful answers, and for `dpo` the
    targets are asked again where the run kept no refusal. Their calls are cached in the run and
    recorded apart from the evolution's (`status` shows them as the export's)."""
    from evorefuse.export import ExportOptions, export_run

    if best_per_lineage is None:
        best_per_lineage = fmt == "test"
    opts = ExportOptions(fmt=fmt, style=style, best_per_lineage=best_per_lineage,
                         min_refusal_rate=min_refusal_rate, min_targets=min_targets,
                         dedup=dedup if dedup < 1 else None, include_seeds=include_seeds,
                         exclude_judged_unsafe=exclude_judged_unsafe)
    result = export_run(run_dir, out, opts, TerminalProgress(quiet=False))
    for notice in result.notices:
        click.echo(f"warning: {notice}", err=True)
    click.echo(result.summary(), err=True)
