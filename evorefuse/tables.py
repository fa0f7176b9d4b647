"""Reading a user's table of records (JSONL, a JSON array, CSV or TSV) with line numbers.

Why one reader: `detect`, `judge` and any command that labels a user's file must fail the same way
on bad input (one line naming the file, line and field, exit 2) and keep every input field, so the
output can be joined back to the user's data.
"""

from __future__ import annotations

import csv
import io
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from evorefuse.errors import InputError
from evorefuse.fileio import read_input


@dataclass
class Table:
    records: list[dict[str, Any]]
    lines: list[int]        # 1-based line where each record starts (for error messages)
    columns: list[str]      # in first-seen order
    kind: str               # "jsonl", "json", "csv" or "txt"


# --- reading ------------------------------------------------------------------------------------

def _decode(path: Path, raw: bytes) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - raw.rfind(b"\n", 0, exc.start)
        raise InputError(f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {col})",
                         path=path, line=line) from None
    return text.removeprefix("\ufeff")


def _kind(path: Path, text: str) -> str:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".json":
        return "json" if text.lstrip().startswith("[") else "jsonl"
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix == ".txt":
        return "txt"
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


def _read_txt(path: Path, text: str) -> Table:
    """One prompt per line, as seed files: blank lines and `#` comments are skipped."""
    records, lines = [], []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip() and not line.lstrip().startswith("#"):
            records.append({"prompt": line.strip()})
            lines.append(n)
    return Table(records, lines, ["prompt"] if records else [], "txt")


def read_table(path: Path) -> Table:
    """Read and validate FILE (JSONL, JSON array, CSV/TSV, or plain text with one prompt per line)
    or raise InputError naming the line."""
    raw = read_input(path, "a JSONL or CSV file")
    text = _decode(path, raw)
    if not text.strip():
        raise InputError("empty file", path=path)
    kind = _kind(path, text)
    readers = {"jsonl": _read_jsonl, "json": _read_json_array, "csv": _read_csv, "txt": _read_txt}
    table = readers[kind](path, text)
    if not table.records:
        raise InputError("no records (only a header?)" if kind == "csv" else "no records",
                         path=path)
    return table


def pick_column(table: Table, path: Path, wanted: str | None, defaults: tuple[str, ...],
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


def column_texts(table: Table, path: Path, column: str | None, what: str) -> list[str]:
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
