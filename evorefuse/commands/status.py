"""`evorefuse status RUN_DIR [--json]`: read a run without changing it, also while it runs.

It takes no lock and writes nothing: the checkpoint is replaced atomically and the cache is SQLite
in WAL mode, so a reader always sees a consistent state.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import click
import orjson

from evorefuse.models.cache import LEDGER_COLUMNS
from evorefuse.models.ledger import Ledger


def _ledger(store: Any) -> Ledger:
    ledger = Ledger()
    if store.cache_file.exists():
        db = sqlite3.connect(f"file:{store.cache_file}?mode=ro", uri=True)
        try:
            sums = ", ".join(f"SUM({c})" for c in LEDGER_COLUMNS)
            rows = db.execute(f"SELECT role, model, {sums} FROM calls WHERE run_id = ? "
                              "GROUP BY role, model", (store.path.name,)).fetchall()
        except sqlite3.Error:
            rows = []
        finally:
            db.close()
        ledger.load_rows(rows)
    return ledger


def run_status(run_dir: Path) -> dict[str, Any]:
    from evorefuse.runstore import RunStore

    store = RunStore.open(run_dir)
    cp = store.checkpoint() or {}
    cfg = store.config()
    events = store.events()
    records = store.archive()
    ledger = _ledger(store)
    lineages = cp.get("lineages", [])
    seeds = {r["lineage"]: r for r in records if r.get("strategy") == "seed"}
    before = [seeds[i]["refusal_rate"] for i in seeds]
    after = [lin["best"]["refusal_rate"] for lin in lineages]
    last = next((e for e in reversed(events) if e["event"] in
                 ("finished", "stopped_budget", "resumed", "start", "created")), None)
    by_status: dict[str, int] = {}
    for r in records:
        key = r["status"] if r["status"] in ("benign", "skipped") else f"rejected:{(r.get('rejected') or '').split(':')[0]}"
        by_status[key] = by_status.get(key, 0) + 1
    state = {"finished": "finished", "stopped_budget": "stopped (budget)"}.get(
        last["event"] if last else "", "running or interrupted")
    return {
        "run_dir": str(store.path), "state": state,
        "generation": cp.get("generation", 0), "generations": cfg["run"]["generations"],
        "preset": cfg["run"]["preset"], "targets": cfg["roles"]["targets"],
        "lineages": len(lineages), "candidates": len(records), "by_status": by_status,
        "refusal_rate_seeds": sum(before) / len(before) if before else None,
        "refusal_rate_best": sum(after) / len(after) if after else None,
        "mean_best_fitness": (sum(l["best"]["fitness"] for l in lineages) / len(lineages)
                              if lineages else None),
        "ledger": ledger.by_role(), "ledger_by_model": ledger.to_json(),
        "calls": ledger.total_calls, "cache_hits": ledger.total_cache_hits,
        "cost_usd": round(ledger.total_cost, 6),
        "best": [{"seed_id": l["seed_id"], **l["best"]} for l in lineages],
        "history": [e for e in events if e["event"] == "generation"],
    }


@click.command("status")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status_command(run_dir: Path, as_json: bool) -> None:
    """Show a run's progress, best instructions and spending, without changing it."""
    s = run_status(run_dir)
    if as_json:
        click.echo(orjson.dumps(s, option=orjson.OPT_INDENT_2).decode())
        return
    click.echo(f"{s['run_dir']}: {s['state']}, generation {s['generation']}/{s['generations']} "
               f"({s['preset']}), {s['lineages']} lineages, {s['candidates']} candidates")
    if s["refusal_rate_seeds"] is not None:
        click.echo(f"refusal rate: seeds {s['refusal_rate_seeds']:.3f} -> best "
                   f"{s['refusal_rate_best']:.3f}; mean best fitness {s['mean_best_fitness']:.3f}")
    click.echo("candidates: " + ", ".join(f"{k} {v}" for k, v in sorted(s["by_status"].items())))
    click.echo(f"{'role':<10} {'calls':>7} {'tokens in':>10} {'tokens out':>10} {'hits':>7} "
               f"{'retries':>7} {'cost USD':>9}")
    for role, e in sorted(s["ledger"].items()):
        click.echo(f"{role:<10} {e['calls']:>7} {e['tokens_in']:>10} {e['tokens_out']:>10} "
                   f"{e['cache_hits']:>7} {e['retries']:>7} {e['cost']:>9.4f}")
