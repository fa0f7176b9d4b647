"""`evorefuse detect FILE`: label responses as refusals (JSONL or CSV in, JSONL out).

Every input record comes out with all its fields plus `refusal` (bool), `p_refusal` (4 decimals)
and `label` (XSTest scheme; "unknown" only when a judge's answer could not be parsed, which counts
as a refusal: p_refusal 0.5).

Bad input stops before any output exists: the whole file is read and validated first, and the
output is written to a temporary file renamed into place only at the end, so a failed or
interrupted run never leaves a partial file that looks like a result.
"""

from __future__ import annotations

import csv
import io
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import orjson

from evorefuse.errors import InputError, RunFailed
from evorefuse.fileio import read_input, write_atomic

DEFAULT_RESPONSE_COLUMNS = ("completion", "response")
DEFAULT_PROMPT_COLUMN = "prompt"
DETECTORS = ("pattern", "learned", "judge", "auto")


@dataclass
class Table:
    records: list[dict[str, Any]]
    lines: list[int]        # 1-based line where each record starts (for error messages)
    columns: list[str]      # in first-seen order
    kind: str               # "jsonl", "json" or "csv"


# --- reading ------------------------------------------------------------------------------------

def _decode(path: Path, raw: bytes) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - raw.rfind(b"\n", 0, exc.start)
        raise InputError(f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {col})",
                         path=path, line=line) from None
    return text[1:] if text.startswith("\ufeff") else text


def _kind(path: Path, text: str) -> str:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".json":
        return "json" if text.lstrip().startswith("[") else "jsonl"
    if suffix in (".csv", ".tsv"):
        return "csv"
    return "jsonl" if text.lstrip().startswith("{") else "csv"


def _read_jsonl(path: Path, text: str) -> Table:
    records, lines, columns, seen = [], [], [], set()
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            reason = str(exc).split(":")[0]
            raise InputError(f"malformed JSON ({reason})", path=path, line=n) from None
        if not isinstance(obj, dict):
            raise InputError(f"expected a JSON object, got {type(obj).__name__}", path=path, line=n)
        for k in obj:
            if k not in seen:
                seen.add(k)
                columns.append(k)
        records.append(obj)
        lines.append(n)
    return Table(records, lines, columns, "jsonl")


def _read_json_array(path: Path, text: str) -> Table:
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        line = text[: getattr(exc, "pos", 0) or 0].count("\n") + 1
        raise InputError(f"malformed JSON ({str(exc).split(':')[0]})", path=path, line=line) from None
    if not isinstance(data, list) or not all(isinstance(x, dict) for x in data):
        raise InputError("expected a JSON array of objects or JSON Lines", path=path)
    columns: list[str] = list(dict.fromkeys(k for x in data for k in x))
    return Table(data, [1] * len(data), columns, "json")


def _read_csv(path: Path, text: str) -> Table:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # long responses are normal here
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    header: list[str] | None = None
    records, lines = [], []
    prev_end = 0
    try:
        for row in reader:
            start, prev_end = prev_end + 1, reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if header is None:
                header = [h.strip() for h in row]
                dupes = sorted({h for h in header if header.count(h) > 1})
                if dupes:
                    raise InputError(f"duplicate column name(s) in the header: {', '.join(dupes)}",
                                     path=path, line=start)
                continue
            if len(row) != len(header):
                raise InputError(f"ragged row: {len(row)} fields, the header has {len(header)}",
                                 path=path, line=start)
            records.append(dict(zip(header, row)))
            lines.append(start)
    except csv.Error as exc:
        raise InputError(f"malformed CSV ({exc})", path=path, line=reader.line_num) from None
    return Table(records, lines, header or [], "csv")


def read_table(path: Path) -> Table:
    """Read and validate FILE (JSONL, JSON array or CSV/TSV) or raise InputError naming the line."""
    raw = read_input(path, "a JSONL or CSV file")
    text = _decode(path, raw)
    if not text.strip():
        raise InputError("empty file", path=path)
    kind = _kind(path, text)
    table = {"jsonl": _read_jsonl, "json": _read_json_array, "csv": _read_csv}[kind](path, text)
    if not table.records:
        raise InputError("no records (only a header?)" if kind == "csv" else "no records",
                         path=path)
    return table


def _pick(table: Table, path: Path, wanted: str | None, defaults: tuple[str, ...],
          option: str, required: bool) -> str | None:
    present = ", ".join(table.columns) or "(none)"
    if wanted is not None:
        if wanted not in table.columns:
            raise InputError(f"unknown column {wanted!r} (columns present: {present})", path=path,
                             field=option)
        return wanted
    for name in defaults:
        if name in table.columns:
            return name
    if required:
        raise InputError(f"no {' or '.join(repr(d) for d in defaults)} column (columns present: "
                         f"{present}); choose one with {option}", path=path)
    return None


def _texts(table: Table, path: Path, column: str | None, what: str) -> list[str]:
    if column is None:
        return [""] * len(table.records)
    out = []
    for rec, line in zip(table.records, table.lines):
        if column not in rec:
            raise InputError(f"missing {what} field", path=path, line=line, field=column)
        v = rec[column]
        if v is None:
            v = ""  # no response at all (e.g. content-filtered): judged as a refusal
        elif not isinstance(v, str):
            raise InputError(f"expected a string, got {type(v).__name__}", path=path, line=line,
                             field=column)
        out.append(v)
    return out


# --- detectors ----------------------------------------------------------------------------------

def _detector(name: str, config_path: Path | None, judge_model: str) -> tuple[Any, Any]:
    """(detector, endpoint-or-None). The judge runs on `judge_model` from the config (`local`, the
    embedded model, needs no config)."""
    from evorefuse.scoring.refusal.base import get_detector

    if name != "judge":
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
    if detector_name is None:
        if config_path is not None:
            from evorefuse.config import load_config
            detector_name = load_config(config_path).roles.detector
        else:
            detector_name = "auto"
    name = detector_name.strip().lower()
    if name not in DETECTORS:
        raise InputError(f"unknown detector {detector_name!r} (known: {', '.join(DETECTORS)})",
                         field="--detector")
    if out is not None:
        if not out.parent.is_dir():
            raise InputError("directory does not exist", path=out.parent, field="--out")
        if out.exists() and file.exists() and out.resolve() == file.resolve():
            raise InputError("--out would overwrite the input file", path=out, field="--out")

    table = read_table(file)
    rcol = _pick(table, file, column, DEFAULT_RESPONSE_COLUMNS, "--column", required=True)
    pcol = _pick(table, file, prompt_column, (DEFAULT_PROMPT_COLUMN,), "--prompt-column",
                 required=False)
    responses = _texts(table, file, rcol, "response")
    prompts = _texts(table, file, pcol, "prompt")

    detector, endpoint = _detector(name, config_path, judge_model)
    t0 = time.perf_counter()
    try:
        verdicts = _run(detector, endpoint, prompts, responses)
    except RunFailed:
        raise
    except Exception as exc:  # an unexpected failure is still one line, exit 1
        raise RunFailed(f"{type(exc).__name__}: {exc}") from exc
    elapsed = max(time.perf_counter() - t0, 1e-9)

    lines = []
    for rec, v in zip(table.records, verdicts):
        row = dict(rec)
        row["refusal"] = v.refusal
        row["p_refusal"] = round(v.p_refusal, 4)
        row["label"] = v.label
        lines.append(orjson.dumps(row) + b"\n")
    if out is None:
        data = b"".join(lines)
        buffer = getattr(sys.stdout, "buffer", None)
        if buffer is None:
            sys.stdout.write(data.decode("utf-8"))
        else:
            sys.stdout.flush()
            buffer.write(data)
            buffer.flush()
    else:
        write_atomic(out, b"".join(lines))

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
