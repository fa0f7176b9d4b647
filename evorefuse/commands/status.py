"""`evorefuse status RUN_DIR [--json]`: options and what is printed (the figures: `runstats`)."""

from __future__ import annotations

from pathlib import Path

import click
import orjson


@click.command("status")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status_command(run_dir: Path, as_json: bool) -> None:
    """Show a run's progress, best instructions and spending, without changing it."""
    from evorefuse.runstats import run_status

    s = run_status(run_dir)
    if as_json:
        click.echo(orjson.dumps(s.to_json(), option=orjson.OPT_INDENT_2).decode())
        return
    click.echo(f"{s.run_dir}: {s.state}, generation {s.generation}/{s.generations} "
               f"({s.preset}), {s.lineages} lineages, {s.candidates} candidates")
    if s.refusal_rate_seeds is not None and s.refusal_rate_best is not None:
        click.echo(f"refusal rate: seeds {s.refusal_rate_seeds:.3f} -> best "
                   f"{s.refusal_rate_best:.3f}; mean best fitness {s.mean_best_fitness:.3f}")
    click.echo("candidates: " + (", ".join(f"{k} {v}" for k, v in sorted(s.by_status.items()))
                                 or "none yet"))
    _ledger_table("spending", s.ledger)
    if s.export_ledger:
        _ledger_table("exports (apart from the evolution's spending)", s.export_ledger)
    if s.best:
        click.echo("best instruction of each lineage, and what the targets answered:")
    for b in s.best:
        judge = b.get("judge") or {}
        verdict = f"{judge.get('verdict')} by {judge.get('judge')}" if judge else "seed"
        click.echo(f"  {b['seed_id']}  refusal {b['refusal_rate']:.2f}  [{verdict}]  "
                   f"{_short(b['prompt'], 100)}")
        for target, answer in b["answers"].items():
            click.echo(f"      {target}: {_short(answer, 100) or '(empty)'}")


def _ledger_table(title: str, ledger: dict) -> None:
    click.echo(f"{title}:")
    click.echo(f"  {'role':<10} {'calls':>7} {'tokens in':>10} {'tokens out':>10} {'hits':>7} "
               f"{'retries':>7} {'cost USD':>9}")
    for role, e in sorted(ledger.items()):
        click.echo(f"  {role:<10} {e['calls']:>7} {e['tokens_in']:>10} {e['tokens_out']:>10} "
                   f"{e['cache_hits']:>7} {e['retries']:>7} {e['cost']:>9.4f}")


def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."
