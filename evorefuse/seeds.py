"""Seed instructions: the starting points of the evolution, loaded from the user's files.

Seeds come from many places (our shipped JSONL, XSTest's and OR-Bench's CSVs, a text file typed by
hand), so this module reads them all into one list of `Seed` with stable ids. Every later stage
(lineages, checkpoints, exports) refers to seeds by id, so ids and order must be the same on every
load of the same files: a resumed run must find the same seeds it started with.

Bad input is the user's to fix, so it raises `InputError` naming the file, line and field instead of
guessing. Harmless oddities (a repeated prompt, an empty prompt) are dropped and reported, because
they would only waste paid calls on a lineage that duplicates another or has nothing to mutate.

Every seed has a BCP-47 `language`: the one its record declares (`language` in JSONL, a `language`
column in CSV), validated; otherwise the one `evorefuse.languages.detect_language` is confident of,
else English. The language tells the operators what to write and which request cues to expect.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from evorefuse.errors import InputError
from evorefuse.languages import DEFAULT_LANGUAGE, detect_language, validate_language
from evorefuse.paths import SHIPPED_SEEDS_DIR
from evorefuse.scoring.overlap import ReferencePrompt, ReferenceSets

MAX_PROMPT_CHARS = 4000
"""Longer prompts are pasted documents, not instructions; they would also blow up every call's cost."""

MAX_LINE_CHARS = 100_000
"""A JSONL line longer than this is rejected before it is parsed (a 4000-char prompt JSON-escaped
with other fields stays well below it), so a pasted megabyte fails at once."""

MAX_FILE_BYTES = 100 * 1024 * 1024
"""Seed sets are small (OR-Bench-80k is ~12 MB); a bigger file is almost surely the wrong file."""

SEED_SUFFIXES = (".jsonl", ".csv", ".txt")


_LINE_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class Seed:
    """One seed instruction. `source` is the file it came from, as the user named it; `language`
    is a standard BCP-47 tag, declared by the file or detected (see the module docstring)."""

    id: str
    prompt: str
    category: str | None
    source: str
    language: str = DEFAULT_LANGUAGE


@dataclass
class SeedSet:
    """The loaded seeds plus what was dropped, so the CLI can tell the user exactly what happened."""

    seeds: list[Seed] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    duplicates: list[tuple[str, int]] = field(default_factory=list)
    """(file, line) of each prompt dropped as a repeat of an earlier one."""
    empty: list[tuple[str, int]] = field(default_factory=list)
    """(file, line) of each record whose prompt was empty or only whitespace."""
    unsafe_skipped: int = 0
    """CSV rows skipped because their `label` column was not `safe` (XSTest's contrast prompts)."""
    renamed: list[tuple[str, int, str]] = field(default_factory=list)
    """(file, line, new id) of each seed whose id clashed with an earlier one and got a suffix."""
    detected: int = 0
    """Seeds whose language the file did not declare: detected, or English when detection was unsure."""

    def __len__(self) -> int:
        return len(self.seeds)

    def __iter__(self) -> Iterator[Seed]:
        return iter(self.seeds)

    def by_category(self) -> dict[str, int]:
        """Seed count per category (`None` shown as "uncategorised"), in first-seen order."""
        return dict(Counter(s.category or "uncategorised" for s in self.seeds))

    def by_language(self) -> dict[str, int]:
        """Seed count per language, in first-seen order."""
        return dict(Counter(s.language for s in self.seeds))

    def summary(self) -> str:
        """One line for the console, e.g. "130 seeds from 1 file (2 duplicates, 1 empty dropped)"."""
        n, f = len(self.seeds), len(self.files)
        text = f"{n} seed{'s' if n != 1 else ''} from {f} file{'s' if f != 1 else ''}"
        notes = []
        dropped = []
        if self.duplicates:
            d = len(self.duplicates)
            dropped.append(f"{d} duplicate{'s' if d != 1 else ''}")
        if self.empty:
            dropped.append(f"{len(self.empty)} empty")
        if dropped:
            notes.append(", ".join(dropped) + " dropped")
        if self.unsafe_skipped:
            u = self.unsafe_skipped
            notes.append(f"{u} unsafe row{'s' if u != 1 else ''} skipped")
        if self.renamed:
            notes.append(f"{len(self.renamed)} clashing id{'s' if len(self.renamed) != 1 else ''} renamed")
        return text + (f" ({'; '.join(notes)})" if notes else "")


@dataclass
class _Record:
    """A prompt as read from a file, before de-duplication and id assignment."""

    line: int
    prompt: str
    id: str | None
    category: str | None
    language: str | None = None


def shipped_seeds(name: str = "default") -> Path:
    """Path of a seed set shipped in `seeds/`: "default" (English), "smoke", or a language's own
    set written for this project ("de", "fr", "es", "zh", "ja", "ar")."""
    path = SHIPPED_SEEDS_DIR / f"{name}.jsonl"
    if not path.is_file():
        available = sorted(p.stem for p in SHIPPED_SEEDS_DIR.glob("*.jsonl"))
        raise InputError(f"no shipped seed set {name!r} (available: {', '.join(available) or 'none'})",
                         path=path)
    return path


def load_seeds(paths: Sequence[str | Path] | str | Path, *, include_unsafe: bool = False) -> SeedSet:
    """Load seeds from files and directories, in the order given.

    Prompts repeated after whitespace-normalising and case-folding are dropped (first one wins);
    ids missing from the file become `<file-stem>-<line>`; an id already taken gets `-2`, `-3`, ...
    CSV rows labelled other than `safe` are skipped unless `include_unsafe` (a benchmark's contrast
    prompts are still part of the benchmark when checking overlap with it).
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    if not paths:
        raise InputError("no seed files given")
    result = SeedSet()
    seen_prompts: set[str] = set()
    seen_ids: set[str] = set()
    for file in _expand(paths):
        records, unsafe = _read_file(file, include_unsafe)
        result.files.append(str(file))
        result.unsafe_skipped += unsafe
        for rec in records:
            if not rec.prompt:
                result.empty.append((str(file), rec.line))
                continue
            key = " ".join(rec.prompt.split()).casefold()
            if key in seen_prompts:
                result.duplicates.append((str(file), rec.line))
                continue
            seen_prompts.add(key)
            seed_id = rec.id or f"{file.stem}-{rec.line}"
            if seed_id in seen_ids:
                n = 2
                while f"{seed_id}-{n}" in seen_ids:
                    n += 1
                seed_id = f"{seed_id}-{n}"
                result.renamed.append((str(file), rec.line, seed_id))
            seen_ids.add(seed_id)
            language = rec.language
            if language is None:
                language = detect_language(rec.prompt).language
                result.detected += 1
            result.seeds.append(Seed(seed_id, rec.prompt, rec.category, str(file), language))
    return result


def load_references(paths: Sequence[str | Path]) -> ReferenceSets:
    """Benchmark files to check a test set against (`scoring.overlap`): each file read on its own,
    so every prompt keeps its source, with every row (unsafe contrast prompts too). A file that
    cannot be read as prompts stops with InputError, as a seed file would."""
    prompts: list[ReferencePrompt] = []
    files: list[str] = []
    for path in paths:
        loaded = load_seeds([path], include_unsafe=True)
        files.extend(loaded.files)
        prompts.extend(ReferencePrompt(s.id, s.prompt, s.source, s.language) for s in loaded)
    return ReferenceSets(prompts, files)


def _expand(paths: Sequence[str | Path]) -> list[Path]:
    """Turn the user's paths into seed files; a directory contributes its seed files, sorted."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.iterdir()
                           if p.is_file() and p.suffix.lower() in SEED_SUFFIXES)
            if not found:
                raise InputError(f"directory has no seed files ({', '.join(SEED_SUFFIXES)})", path=path)
            files.extend(found)
        elif not path.exists():
            raise InputError("seed file not found", path=path)
        elif path.suffix.lower() not in SEED_SUFFIXES:
            raise InputError(f"unsupported seed file type {path.suffix or '(no extension)'!r}; "
                             f"supported: {', '.join(SEED_SUFFIXES)} or a directory of them", path=path)
        else:
            files.append(path)
    return files


def _read_file(path: Path, include_unsafe: bool = False) -> tuple[list[_Record], int]:
    """Parse one file into records; returns (records, unsafe rows skipped)."""
    text = _read_text(path)
    suffix = path.suffix.lower()
    unsafe = 0
    if suffix == ".jsonl":
        records = _parse_jsonl(path, text)
    elif suffix == ".csv":
        records, unsafe = _parse_csv(path, text, include_unsafe)
    else:
        records = _parse_txt(path, text)
    if not any(rec.prompt for rec in records):
        why = []
        if records:
            why.append(f"{len(records)} empty prompt{'s' if len(records) != 1 else ''}")
        if unsafe:
            why.append(f"{unsafe} row{'s' if unsafe != 1 else ''} skipped as not labelled 'safe'")
        raise InputError("no seeds in file" + (f" ({', '.join(why)})" if why else ""), path=path)
    return records, unsafe


def _read_text(path: Path) -> str:
    """Read a file as UTF-8, naming the line of the first bad byte (not just a byte offset)."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise InputError(f"file is {size / 1e6:.0f} MB; seed files are limited to "
                             f"{MAX_FILE_BYTES // (1024 * 1024)} MB", path=path)
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror or exc}", path=path) from None
    if not data.strip():
        raise InputError("file is empty", path=path)
    if data.startswith(b"\xef\xbb\xbf"):  # BOM written by Excel and Notepad
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[:exc.start].decode("utf-8")
        line = len(_LINE_BREAK.findall(before)) + 1
        column = len(_LINE_BREAK.split(before)[-1]) + 1
        raise InputError(f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at column {column}); "
                         "save the file as UTF-8", path=path, line=line) from None


def _lines(text: str) -> Iterator[str]:
    """Physical lines, split the same way the csv module and our error line numbers split them."""
    return iter(io.StringIO(text, newline=""))


def _check_length(path: Path, line: int, prompt: str, field_name: str) -> None:
    if len(prompt) > MAX_PROMPT_CHARS:
        raise InputError(f"prompt is {len(prompt)} characters long; the limit is {MAX_PROMPT_CHARS}",
                         path=path, line=line, field=field_name)


def _optional_str(path: Path, line: int, value: object, field_name: str) -> str | None:
    """An optional id or category: ids may be numbers (XSTest uses 1, 2, ...); blank means absent."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InputError(f"expected a string, got {_json_type(value)}", path=path, line=line,
                         field=field_name)
    return str(value).strip() or None


def _json_type(value: object) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            type(None): "null", int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def _parse_jsonl(path: Path, text: str) -> list[_Record]:
    records = []
    for lineno, raw in enumerate(_lines(text), start=1):
        if not raw.strip():
            continue  # blank lines (e.g. a trailing one) are common in hand-edited JSONL
        if len(raw) > MAX_LINE_CHARS:
            raise InputError(f"line is {len(raw)} characters long; a seed prompt may have at most "
                             f"{MAX_PROMPT_CHARS}", path=path, line=lineno)
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise InputError(f"invalid JSON: {exc.msg} (column {exc.colno})", path=path,
                             line=lineno) from None
        if not isinstance(obj, dict):
            raise InputError(f"expected a JSON object like {{\"prompt\": \"...\"}}, got "
                             f"{_json_type(obj)}", path=path, line=lineno)
        key = "prompt" if "prompt" in obj else "instruction" if "instruction" in obj else None
        if key is None:
            present = ", ".join(obj) or "none"
            raise InputError(f"missing; each line needs 'prompt' or 'instruction' (keys present: "
                             f"{present})", path=path, line=lineno, field="prompt")
        prompt = obj[key]
        if not isinstance(prompt, str):
            raise InputError(f"expected a string, got {_json_type(prompt)}", path=path, line=lineno,
                             field=key)
        prompt = prompt.strip()
        _check_length(path, lineno, prompt, key)
        category_key = "category" if "category" in obj else "type"
        records.append(_Record(lineno, prompt, _optional_str(path, lineno, obj.get("id"), "id"),
                               _optional_str(path, lineno, obj.get(category_key), category_key),
                               _language(path, lineno, obj.get("language"))))
    return records


def _language(path: Path, line: int, value: object) -> str | None:
    """A declared language, standardised; absent or blank means "detect"."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return validate_language(value, field="language", path=path, line=line)


def _parse_csv(path: Path, text: str, include_unsafe: bool = False) -> tuple[list[_Record], int]:
    """XSTest (`id,prompt,type,label,...`) or OR-Bench (`prompt,category`) style CSV.

    Line numbers are those of the row's first physical line: `reader.line_num` counts lines consumed
    so far, so before each row it is the line the row starts after (quoted fields may span lines).
    """
    # strict: an unclosed quote is an error instead of silently swallowing the rest of the file
    reader = csv.reader(_lines(text), strict=True)
    header: list[str] | None = None
    records: list[_Record] = []
    unsafe = 0
    columns: dict[str, int] = {}
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            if "field larger than field limit" in str(exc):
                raise InputError(f"a field is longer than {csv.field_size_limit()} characters; a seed "
                                 f"prompt may have at most {MAX_PROMPT_CHARS}", path=path,
                                 line=start) from None
            if "unexpected end of data" in str(exc):
                raise InputError("a quoted field starting in this row is never closed", path=path,
                                 line=start) from None
            raise InputError(f"malformed CSV: {exc}", path=path, line=start) from None
        if not row or not any(cell.strip() for cell in row):
            continue
        if header is None:
            header = [h.strip().lower() for h in row]
            columns = {name: i for i, name in reversed(list(enumerate(header)))}
            if "prompt" not in columns and "instruction" not in columns:
                raise InputError(f"no 'prompt' column (columns present: {', '.join(row)})",
                                 path=path, line=start)
            continue
        if len(row) != len(header):
            raise InputError(f"row has {len(row)} fields but the header has {len(header)} "
                             "(an unquoted comma or a missing quote?)", path=path, line=start)
        if (not include_unsafe and "label" in columns
                and row[columns["label"]].strip().lower() != "safe"):
            unsafe += 1
            continue
        prompt_col = "prompt" if "prompt" in columns else "instruction"
        prompt = row[columns[prompt_col]].strip()
        _check_length(path, start, prompt, prompt_col)
        category_col = "category" if "category" in columns else "type"
        category = row[columns[category_col]].strip() if category_col in columns else ""
        seed_id = row[columns["id"]].strip() if "id" in columns else ""
        language = _language(path, start, row[columns["language"]]) if "language" in columns else None
        records.append(_Record(start, prompt, seed_id or None, category or None, language))
    if header is None:
        raise InputError("file is empty", path=path)
    return records, unsafe


def _parse_txt(path: Path, text: str) -> list[_Record]:
    """One prompt per line; blank lines and `#` comments are for the human editing the file."""
    records = []
    for lineno, raw in enumerate(_lines(text), start=1):
        prompt = raw.strip()
        if not prompt or prompt.startswith("#"):
            continue
        _check_length(path, lineno, prompt, "prompt")
        records.append(_Record(lineno, prompt, None, None))
    return records
