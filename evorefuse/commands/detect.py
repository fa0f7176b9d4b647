"""`evorefuse detect FILE`: label responses as refusals (JSONL or CSV in, JSONL out); with `--gold`,
measure the detector against the file's own labels; with `--fit`, refit the detector on them.

Every input record comes out with all its fields plus `refusal` (bool), `p_refusal` (4 decimals)
and `label` (XSTest scheme; "unknown" only when a judge's answer could not be parsed, which counts
as a refusal: p_refusal 0.5); with `--gold`, also `gold_refusal` (bool) and `gold_label` (the XSTest
label, or null for a binary gold refusal), so the printed accuracy can be recomputed from the rows.

Bad input stops before any output exists: the whole file is read and validated first, and outputs
are written to a temporary file renamed into place only at the end, so a failed or interrupted run
never leaves a partial file that looks like a result.
"""

from __future__ import annotations

import time
from pathlib import Path

import click
import orjson

from evorefuse.commands.progress import TerminalProgress
from evorefuse.errors import InputError
from evorefuse.fileio import check_output, write_output, write_stdout
from evorefuse.scoring.refusal.factory import NAMES_HELP, check_detector
from evorefuse.scoring.refusal.learned import replaceable_by_a_fit
from evorefuse.tables import column_texts, pick_column, read_table

DEFAULT_RESPONSE_COLUMNS = ("completion", "response")
DEFAULT_PROMPT_COLUMN = "prompt"


def _rate(r: float) -> str:
    return f"{r:.0f}" if r >= 10 else f"{r:.2f}"


@click.command("detect")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=True))
@click.option("--column", default=None, metavar="COL",
              help="Column holding the responses (default: completion, else response).")
@click.option("--prompt-column", default=None, metavar="COL",
              help="Column holding the prompts (default: prompt, if present; optional).")
@click.option("--detector", "detector_name", default=None, metavar="NAME",
              help=f"{NAMES_HELP} (default: the config's roles.detector, else auto).")
@click.option("--gold", "gold_column", default=None, metavar="COLUMN",
              help="Column of human labels: print accuracy, precision, recall, F1, Brier and the "
                   "3-way confusion matrix (XSTest labels, 0/1, true/false, refusal/compliance).")
@click.option("--fit", "fit_path", default=None, type=click.Path(path_type=Path, dir_okay=False),
              help="With --gold: refit the detector on these labels and write a detector file "
                   "here (use it with --detector learned:PATH).")
@click.option("--json", "as_json", is_flag=True, help="With --gold: print the figures as JSON.")
@click.option("--out", "out", default=None, type=click.Path(path_type=Path, dir_okay=False),
              help="Write the labelled rows as JSONL here (default: stdout, unless --gold).")
@click.option("--judge-model", default="local", show_default=True, metavar="NAME",
              help="Model the judge detector uses (from the config; `local` needs none).")
@click.option("-c", "--config", "config_path", default=None,
              type=click.Path(path_type=Path, dir_okay=False), help="TOML config file.")
def detect_command(file: Path, column: str | None, prompt_column: str | None,
                   detector_name: str | None, gold_column: str | None, fit_path: Path | None,
                   as_json: bool, out: Path | None, judge_model: str,
                   config_path: Path | None) -> None:
    """Label responses as refusals (JSONL or CSV in, JSONL out); check or refit against labels."""
    from evorefuse.config import load_config
    from evorefuse.detection import detect_responses, labelled_rows, parse_gold_labels

    cfg = load_config(config_path)
    name = check_detector(detector_name if detector_name is not None else cfg.roles.detector,
                          field="--detector")
    if (fit_path is not None or as_json) and gold_column is None:
        raise InputError(f"{'--fit' if fit_path is not None else '--json'} needs --gold COLUMN",
                         field="--gold")
    for path, option in ((out, "--out"), (fit_path, "--fit")):
        if path is not None:
            if path.exists() and file.exists() and path.resolve() == file.resolve():
                raise InputError(f"{option} would overwrite the input file", path=path,
                                 field=option)
            check_output(path, option=option)
    if fit_path is not None and not replaceable_by_a_fit(fit_path):
        raise InputError("exists and is not a detector file; refusing to replace it (choose "
                         "another path, or delete it first)", path=fit_path, field="--fit")

    table = read_table(file)
    rcol = pick_column(table, file, column, DEFAULT_RESPONSE_COLUMNS, "--column", required=True)
    pcol = pick_column(table, file, prompt_column, (DEFAULT_PROMPT_COLUMN,), "--prompt-column",
                       required=False)
    responses = column_texts(table, file, rcol, "response")
    prompts = column_texts(table, file, pcol, "prompt")
    gold = None
    if gold_column is not None:
        pick_column(table, file, gold_column, (), "--gold", required=True)
        gold = parse_gold_labels(table, file, gold_column, for_fit=fit_path is not None)

    t0 = time.perf_counter()
    verdicts = detect_responses(cfg, name, prompts, responses, judge_model=judge_model,
                                progress=TerminalProgress(quiet=False))
    elapsed = max(time.perf_counter() - t0, 1e-9)

    rows = labelled_rows(table.records, verdicts, gold)
    if out is not None:
        write_output(out, rows)
    elif gold is None:
        write_stdout(rows)

    n = len(verdicts)
    k = sum(v.refusal for v in verdicts)
    unknown = sum(v.label == "unknown" for v in verdicts)
    extra = f", {unknown} unknown" if unknown else ""
    click.echo(f"detect: {n} responses, {k} refusals ({k / n:.1%}){extra}; "
               f"{_rate(n / elapsed)} responses/s ({name}, {elapsed:.2f} s)"
               + (f" -> {out}" if out else ""), err=True)
    if gold is not None:
        _report(gold, verdicts, as_json, fit_path, name, prompts, responses, file)


def _report(gold: list[str], verdicts: list, as_json: bool, fit_path: Path | None,
            detector_name: str, prompts: list[str], responses: list[str], src: Path) -> None:
    from evorefuse.scoring.refusal.gold import format_report, score
    from evorefuse.scoring.refusal.refit import refit_detector

    report = score(gold, verdicts)
    fit = None
    if fit_path is not None:
        fit = refit_detector(prompts, responses, gold, detector_name, src)
        write_output(fit_path, fit.file_text(src.name).encode("utf-8"))
    if as_json:
        data = report.as_dict()
        if fit is not None:
            data["fit"] = {"path": str(fit_path), **fit.summary()}
        write_stdout(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
        return
    for line in format_report(report):
        click.echo(line)
    if fit is not None:
        click.echo("")
        click.echo(f"{fit.describe()} -> {fit_path}")
