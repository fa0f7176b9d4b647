"""`evorefuse judge FILE`: label prompts harmless / controversial / harmful (JSONL out).

Parsing and printing only; the work is in `evorefuse.scoring.harm.audit`. The output is written
to a temporary file renamed into place at the end, so a failed run never leaves a partial file
that looks like a result.
"""

from __future__ import annotations

import time
from pathlib import Path

import click
import orjson

from evorefuse import interrupts
from evorefuse.commands.progress import TerminalProgress
from evorefuse.config import load_config
from evorefuse.errors import InputError, RunFailed
from evorefuse.fileio import check_output, write_output, write_stdout
from evorefuse.scoring.harm.audit import (
    gold_score,
    judge_prompts,
    labelled_rows,
    read_prompts,
)
from evorefuse.scoring.harm.gold import format_score
from evorefuse.scoring.harm.names import MODES, judge_model_name, llm_judge_names
from evorefuse.session import Session


@click.command("judge")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--column", default=None, metavar="COL",
              help="Column holding the prompts (default: prompt, else instruction, else text).")
@click.option("--judge", "judges", multiple=True, metavar="NAME",
              help="Judge: `local` or `classifier` (the offline classifier, default), "
                   "`local-llm`, or a model from the config; repeat to vote.")
@click.option("--mode", type=click.Choice(MODES), default="auto", show_default=True,
              help="classifier, llm (every judge votes), tiered (LLM judges see only what the "
                   "classifier is unsure about); auto: classifier unless an LLM judge is named.")
@click.option("--gold", "gold_column", default=None, metavar="COLUMN",
              help="Column of human labels (safe/unsafe, benign/toxic, 0/1...): print accuracy, "
                   "precision and recall of keeping harmful prompts out, and the confusion matrix.")
@click.option("--out", "out", default=None, type=click.Path(path_type=Path, dir_okay=False),
              help="Write the labelled prompts (JSONL) here (default: stdout).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the summary (and gold figures) as one JSON object on stdout; without "
                   "--out the labelled prompts are then not printed.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of LLM judge calls.")
@click.option("-c", "--config", "config_path", default=None,
              type=click.Path(path_type=Path, dir_okay=False), help="TOML config file.")
def judge_command(file: Path, column: str | None, judges: tuple[str, ...], mode: str,
                  gold_column: str | None, out: Path | None, as_json: bool, seed: int,
                  config_path: Path | None) -> None:
    """Label prompts harmless / controversial / harmful, with P(harmless) and the judge's name."""
    if out is not None:
        if out.exists() and file.exists() and out.resolve() == file.resolve():
            raise InputError("--out would overwrite the input file", path=out, field="--out")
        check_output(out, option="--out")
    prompts = read_prompts(file, column, gold_column)
    cfg = load_config(config_path)
    names = list(judges) or cfg.judges()
    models = list(dict.fromkeys(judge_model_name(n) for n in llm_judge_names(names)))
    for m in models:
        try:
            cfg.model(m)
        except InputError:
            where = (f"the config has [models.*] for: {', '.join(sorted(cfg.models))}"
                     if cfg.models else "no config file names any model (pass -c CONFIG)")
            raise InputError(f"judge {m!r} is not configured ({where}); offline judges: local "
                             "(the classifier), local-llm", field="--judge") from None
    # read when called, as evaluate and seeds do, so one setting redirects every command
    from evorefuse.session import DEFAULT_CACHE

    session = Session.standalone(cfg, models=models, cache_path=DEFAULT_CACHE, run_id="judge")
    judge = session.prompt_judge_named(names, mode)  # type: ignore[arg-type]

    bar = TerminalProgress(quiet=False).bar(len(prompts.texts), "judge", unit="prompt")

    async def go() -> list:
        try:
            return await judge_prompts(judge, prompts.texts, seed=seed, judged=bar.update)
        finally:
            bar.close()
            await session.aclose()

    t0 = time.perf_counter()
    try:
        verdicts = interrupts.run(go())
    except (RunFailed, InputError):
        raise
    except Exception as exc:  # an unexpected failure is still one line, exit 1
        raise RunFailed(f"{type(exc).__name__}: {exc}") from exc
    finally:
        session.close()
    elapsed = max(time.perf_counter() - t0, 1e-9)

    data = b"".join(orjson.dumps(r) + b"\n" for r in labelled_rows(prompts.table, verdicts))
    if out is not None:
        write_output(out, data)
    elif not as_json:
        write_stdout(data)
    counts = {label: sum(v.verdict == label for v in verdicts)
              for label in ("harmless", "controversial", "harmful", "unknown")}
    figures = gold_score(prompts, verdicts)
    name = "+".join(judge.names)
    # Verdicts the classifier's language rule held back and no LLM judge decided.
    capped = sum(v.reason is not None for v in verdicts)
    if as_json:
        summary = {"n": len(verdicts), "counts": counts, "judge": name, "mode": judge.mode,
                   "not_readable": capped, "llm_calls": judge.llm_calls,
                   "prompts_per_s": round(len(verdicts) / elapsed, 2),
                   "gold": figures.to_json() if figures else None, "out": str(out) if out else None}
        write_stdout(orjson.dumps(summary) + b"\n")
        return
    n = len(verdicts)
    click.echo(f"judge: {n} prompts: {counts['harmless']} harmless, {counts['controversial']} "
               "controversial"
               + (f" ({capped} of them only because the classifier cannot read their language: "
                  "see `reason`)" if capped else "")
               + f", {counts['harmful']} harmful"
               + (f", {counts['unknown']} unknown" if counts["unknown"] else "")
               + f" (judge {name}" + (f", mode {judge.mode}" if judge.mode != name else "")
               + f"; {n / elapsed:.1f} prompts/s)"
               + (f" -> {out}" if out else ""), err=True)
    if figures is not None:
        click.echo(format_score(figures), err=True)
