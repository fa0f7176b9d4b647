"""`evorefuse detect FILE`: label responses as refusals (JSONL or CSV in, JSONL out); with `--gold`,
measure the detector against the file's own labels; with `--fit`, refit the detector on them.

Every input record comes out with all its fields plus `refusal` (bool), `p_refusal` (4 decimals)
and `label` (XSTest scheme; "unknown" only when a judge's answer could not be parsed, which counts
as a refusal: p_refusal 0.5); with `--gold`, also `gold_refusal` (bool) and `gold_label` (the XSTest
label, or null for a binary gold refusal), so the printed accuracy can be recomputed from the rows.

Bad input stops before any output exists: the whole file is read and validated first, and outputs
are written to a temporary file renamed into place only at the end.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click
import orjson

from evorefuse.errors import InputError, RunFailed
from evorefuse.fileio import write_atomic
from evorefuse.scoring.refusal.factory import NAMES_HELP, is_detector_name
from evorefuse.tables import column_texts, pick_column, read_table

DEFAULT_RESPONSE_COLUMNS = ("completion", "response")
DEFAULT_PROMPT_COLUMN = "prompt"


# --- detectors ----------------------------------------------------------------------------------

def _detector(name: str, config_path: Path | None, judge_model: str) -> tuple[Any, Any]:
    """(detector, endpoint-or-None). The judge runs on `judge_model` from the config (`local`, the
    embedded model, needs no config)."""
    from evorefuse.scoring.refusal.factory import get_detector

    if name.lower() != "judge":
        return get_detector(name), None
    from evorefuse.config import load_config
    from evorefuse.models.endpoint import Endpoint
    from evorefuse.models.ledger import Ledger
    from evorefuse.models.registry import check_credentials, make_backend

    cfg = load_config(config_path)
    spec = cfg.model(judge_model, where="--judge-model")
    check_credentials(cfg, [judge_model])
    endpoint = Endpoint(make_backend(spec), spec, None, Ledger())
    return get_detector("judge", endpoint), endpoint


def _run(detector: Any, endpoint: Any, prompts: list[str], responses: list[str]) -> list[Any]:
    if endpoint is None:
        return detector.detect(prompts, responses)
    import asyncio

    async def go() -> list[Any]:
        try:
            return await detector.adetect(prompts, responses)
        finally:
            await endpoint.aclose()

    return asyncio.run(go())


# --- writing ------------------------------------------------------------------------------------

def _rate(r: float) -> str:
    return f"{r:.0f}" if r >= 10 else f"{r:.2f}"


def _rows(records: list[dict[str, Any]], verdicts: list[Any], gold: list[str] | None) -> bytes:
    from evorefuse.scoring.refusal.base import LABELS
    from evorefuse.scoring.refusal.gold import is_refusal

    lines = []
    for k, (rec, v) in enumerate(zip(records, verdicts)):
        row = dict(rec)
        row["refusal"] = v.refusal
        row["p_refusal"] = round(v.p_refusal, 4)
        row["label"] = v.label
        if gold is not None:
            row["gold_refusal"] = is_refusal(gold[k])
            row["gold_label"] = gold[k] if gold[k] in LABELS else None
        lines.append(orjson.dumps(row) + b"\n")
    return b"".join(lines)


def _stdout(data: bytes) -> None:
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:
        sys.stdout.write(data.decode("utf-8"))
    else:
        sys.stdout.flush()
        buffer.write(data)
        buffer.flush()


def _check_out(path: Path | None, src: Path, option: str) -> None:
    if path is None:
        return
    if not path.parent.is_dir():
        raise InputError("directory does not exist", path=path.parent, field=option)
    if path.exists() and src.exists() and path.resolve() == src.resolve():
        raise InputError(f"{option} would overwrite the input file", path=path, field=option)


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
    if detector_name is None:
        if config_path is not None:
            from evorefuse.config import load_config
            detector_name = load_config(config_path).roles.detector
        else:
            detector_name = "auto"
    name = detector_name.strip()
    if not is_detector_name(name):
        from evorefuse.scoring.refusal.factory import DETECTOR_NAMES
        raise InputError(f"unknown detector {detector_name!r} (known: {', '.join(DETECTOR_NAMES)}, "
                         "learned:PATH)", field="--detector")
    if (fit_path is not None or as_json) and gold_column is None:
        raise InputError(f"{'--fit' if fit_path is not None else '--json'} needs --gold COLUMN",
                         field="--gold")
    _check_out(out, file, "--out")
    _check_out(fit_path, file, "--fit")

    table = read_table(file)
    rcol = pick_column(table, file, column, DEFAULT_RESPONSE_COLUMNS, "--column", required=True)
    pcol = pick_column(table, file, prompt_column, (DEFAULT_PROMPT_COLUMN,), "--prompt-column",
                       required=False)
    responses = column_texts(table, file, rcol, "response")
    prompts = column_texts(table, file, pcol, "prompt")
    gold = None
    if gold_column is not None:
        from evorefuse.scoring.refusal.gold import parse_gold_column

        pick_column(table, file, gold_column, (), "--gold", required=True)
        gold = parse_gold_column([rec.get(gold_column) for rec in table.records], table.lines,
                                 file, gold_column)
        if fit_path is not None:
            from evorefuse.scoring.refusal.refit import RefitError, check_labels
            try:
                check_labels(gold)
            except RefitError as exc:
                raise InputError(str(exc), path=file, field="--gold") from None

    detector, endpoint = _detector(name, config_path, judge_model)
    t0 = time.perf_counter()
    try:
        verdicts = _run(detector, endpoint, prompts, responses)
    except (RunFailed, InputError):
        raise
    except Exception as exc:  # an unexpected failure is still one line, exit 1
        raise RunFailed(f"{type(exc).__name__}: {exc}") from exc
    elapsed = max(time.perf_counter() - t0, 1e-9)

    rows = _rows(table.records, verdicts, gold)
    if out is not None:
        write_atomic(out, rows)
    elif gold is None:
        _stdout(rows)

    n = len(verdicts)
    k = sum(v.refusal for v in verdicts)
    unknown = sum(v.label == "unknown" for v in verdicts)
    extra = f", {unknown} unknown" if unknown else ""
    embedded = getattr(detector, "embedded", None)
    if embedded:
        extra += f", {embedded} embedded"
    click.echo(f"detect: {n} responses, {k} refusals ({k / n:.1%}){extra}; "
               f"{_rate(n / elapsed)} responses/s ({name}, {elapsed:.2f} s)"
               + (f" -> {out}" if out else ""), err=True)
    if gold is not None:
        _report(gold, verdicts, as_json, fit_path, detector, prompts, responses, file)


def _report(gold: list[str], verdicts: list[Any], as_json: bool, fit_path: Path | None,
            detector: Any, prompts: list[str], responses: list[str], src: Path) -> None:
    from evorefuse.scoring.refusal.gold import format_report, score

    report = score(gold, verdicts).as_dict()
    if fit_path is not None:
        report["fit"] = _fit(gold, detector, prompts, responses, src, fit_path)
    if as_json:
        _stdout(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
        return
    from evorefuse.scoring.refusal.gold import GoldReport

    fit = report.pop("fit", None)
    for line in format_report(GoldReport(**report)):
        click.echo(line)
    if fit is not None:
        click.echo("")
        click.echo(f"refit on {fit['n']} labelled responses (+{fit['shipped_examples']} shipped "
                   f"examples, each of yours weighing {fit['user_weight']:.2f}): cross-validated "
                   f"accuracy on your data {fit['accuracy_before']:.3f} before, "
                   f"{fit['accuracy_after']:.3f} after ({fit['folds']}-fold, out of fold) "
                   f"-> {fit['path']}")


def _fit(gold: list[str], detector: Any, prompts: list[str], responses: list[str], src: Path,
         fit_path: Path) -> dict[str, Any]:
    """Refit the head (on top of the detector in use when it has one) and write the file."""
    from evorefuse.scoring.refusal.learned import LearnedModel, load_model
    from evorefuse.scoring.refusal.refit import RefitError, refit

    prior = getattr(detector, "model", None)
    if not isinstance(prior, LearnedModel):
        prior = load_model()
    try:
        res = refit(prompts, responses, gold, prior)
    except RefitError as exc:
        raise InputError(str(exc), path=src, field="--gold") from None
    write_atomic(fit_path, res.file_text(src.name).encode("utf-8"))
    return {"path": str(fit_path), "n": res.n_user, "shipped_examples": res.n_shipped,
            "user_weight": res.user_weight, "folds": res.folds,
            "accuracy_before": res.accuracy_before, "accuracy_after": res.accuracy_after}
