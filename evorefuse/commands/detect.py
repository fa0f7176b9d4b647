"""`evorefuse detect FILE`: label responses as refusals (JSONL or CSV in, JSONL out).

Every input record comes out with all its fields plus `refusal` (bool), `p_refusal` (4 decimals)
and `label` (XSTest scheme; "unknown" only when a judge's answer could not be parsed, which counts
as a refusal: p_refusal 0.5).

Bad input stops before any output exists: the whole file is read and validated first, and the
output is written to a temporary file renamed into place only at the end, so a failed or
interrupted run never leaves a partial file that looks like a result.
"""

from __future__ import annotations

import time
from pathlib import Path

import click
import orjson

from evorefuse.commands.progress import TerminalProgress
from evorefuse.errors import InputError
from evorefuse.fileio import check_output, write_output, write_stdout
from evorefuse.scoring.refusal.base import DETECTOR_NAMES
from evorefuse.tables import column_texts, pick_column, read_table

DEFAULT_RESPONSE_COLUMNS = ("completion", "response")
DEFAULT_PROMPT_COLUMN = "prompt"


# --- writing ------------------------------------------------------------------------------------

def _rate(r: float) -> str:
    return f"{r:.0f}" if r >= 10 else f"{r:.2f}"


@click.command("detect")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=True))
@click.option("--column", default=None, metavar="COL",
              help="Column holding the responses (default: completion, else response).")
@click.option("--prompt-column", default=None, metavar="COL",
              help="Column holding the prompts (default: prompt, if present; optional).")
@click.option("--detector", "detector_name", default=None, metavar="NAME",
              help="pattern | learned | judge | auto (default: the config's roles.detector, "
                   "else auto).")
@click.option("--out", "out", default=None, type=click.Path(path_type=Path, dir_okay=False),
              help="Write JSONL here (default: stdout).")
@click.option("--judge-model", default="local", show_default=True, metavar="NAME",
              help="Model the judge detector uses (from the config; `local` needs none).")
@click.option("-c", "--config", "config_path", default=None,
              type=click.Path(path_type=Path, dir_okay=False), help="TOML config file.")
def detect_command(file: Path, column: str | None, prompt_column: str | None,
                   detector_name: str | None, out: Path | None, judge_model: str,
                   config_path: Path | None) -> None:
    """Label responses as refusals (JSONL or CSV in, JSONL out)."""
    from evorefuse.config import load_config
    from evorefuse.detection import detect_responses

    cfg = load_config(config_path)
    if detector_name is None:
        detector_name = cfg.roles.detector
    name = detector_name.strip().lower()
    if name not in DETECTOR_NAMES:
        raise InputError(f"unknown detector {detector_name!r} (known: "
                         f"{', '.join(DETECTOR_NAMES)})", field="--detector")
    if out is not None:
        if out.exists() and file.exists() and out.resolve() == file.resolve():
            raise InputError("--out would overwrite the input file", path=out, field="--out")
        check_output(out, option="--out")

    table = read_table(file)
    rcol = pick_column(table, file, column, DEFAULT_RESPONSE_COLUMNS, "--column", required=True)
    pcol = pick_column(table, file, prompt_column, (DEFAULT_PROMPT_COLUMN,), "--prompt-column",
                 required=False)
    responses = column_texts(table, file, rcol, "response")
    prompts = column_texts(table, file, pcol, "prompt")

    t0 = time.perf_counter()
    verdicts = detect_responses(cfg, name, prompts, responses, judge_model=judge_model,
                                progress=TerminalProgress(quiet=False))
    elapsed = max(time.perf_counter() - t0, 1e-9)

    lines = []
    for rec, v in zip(table.records, verdicts):
        row = dict(rec)
        row["refusal"] = v.refusal
        row["p_refusal"] = round(v.p_refusal, 4)
        row["label"] = v.label
        lines.append(orjson.dumps(row) + b"\n")
    if out is None:
        write_stdout(b"".join(lines))
    else:
        write_output(out, b"".join(lines))

    n = len(verdicts)
    k = sum(v.refusal for v in verdicts)
    unknown = sum(v.label == "unknown" for v in verdicts)
    extra = f", {unknown} unknown" if unknown else ""
    click.echo(f"detect: {n} responses, {k} refusals ({k / n:.1%}){extra}; "
               f"{_rate(n / elapsed)} responses/s ({name}, {elapsed:.2f} s)"
               + (f" -> {out}" if out else ""), err=True)
