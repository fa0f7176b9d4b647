"""Content-addressed request cache shared by all roles.

Each *sample* is its own entry, keyed by (endpoint, model, messages, sampling parameters, seed, sample
index). K samples of one prompt are K entries, so a resumed run that asks again for samples 0..K-1
replays them exactly, and a run that later wants K'=20 samples only pays for the 10 new ones.

SQLite in WAL mode with one transaction per call: a kill -9 loses at most the call in flight, never
corrupts what was committed. Only the sampled text, its logprobs and token counts are stored; never
headers, keys or URLs with credentials.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from evorefuse.models.base import Choice, Message, SamplingParams

_SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    key TEXT PRIMARY KEY,
    choice BLOB NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS calls (
    run_id TEXT NOT NULL,
    role TEXT NOT NULL,
    model TEXT NOT NULL,
    calls INTEGER NOT NULL,
    samples INTEGER NOT NULL,
    tokens_in INTEGER NOT NULL,
    tokens_out INTEGER NOT NULL,
    cache_hits INTEGER NOT NULL,
    retries INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    blocked INTEGER NOT NULL,
    cost REAL NOT NULL
);
"""

LEDGER_COLUMNS = ("calls", "samples", "tokens_in", "tokens_out", "cache_hits", "retries", "errors",
                  "blocked", "cost")


def request_fingerprint(endpoint_id: str, model: str, messages: Sequence[Message],
                        params: SamplingParams) -> bytes:
    """Canonical bytes of everything that determines a sample's distribution (not `n`)."""
    return orjson.dumps(
        {"endpoint": endpoint_id, "model": model, "messages": list(messages),
         "params": params.cache_fields()},
        option=orjson.OPT_SORT_KEYS,
    )


def sample_key(fingerprint: bytes, index: int) -> str:
    return hashlib.sha256(fingerprint + b"#" + str(index).encode()).hexdigest()


_DAMAGED = {"SQLITE_CORRUPT", "SQLITE_NOTADB", "SQLITE_FORMAT", "SQLITE_MISMATCH"}
_COLUMNS = {"samples": ["key", "choice", "prompt_tokens", "completion_tokens"],
            "calls": ["run_id", "role", "model", *LEDGER_COLUMNS]}


def _damaged(path: Path, why: str) -> Exception:
    """A cache that is not ours or no longer readable: bad input (exit 2), with what to do."""
    from evorefuse.errors import InputError

    return InputError(f"the request cache is damaged ({why}); move it aside to continue without "
                      "it (the calls it held are then paid again) or put back a good copy",
                      path=path)


def _write_failed(path: Path, exc: sqlite3.Error) -> Exception:
    """A full or read-only disk as one clear line (exit 1), not a traceback. Committed samples are
    intact: each call is one transaction."""
    from evorefuse.errors import RunFailed

    return RunFailed(f"{path}: cannot write the request cache ({exc}); the last checkpoint is "
                     "intact and `evorefuse resume` continues from it once the disk is writable")


def _translate(path: Path, exc: sqlite3.Error) -> Exception:
    name = getattr(exc, "sqlite_errorname", "")
    text = str(exc)
    if name in _DAMAGED or "malformed" in text or "not a database" in text \
            or not isinstance(exc, sqlite3.OperationalError):
        return _damaged(path, text)
    return _write_failed(path, exc)


class RequestCache:
    """Thread-safe SQLite cache of samples. Reads and writes are sub-millisecond.

    Every access goes through `_guard`: a file that is not an SQLite database, a damaged one, or
    one with other tables of the same names raises InputError naming the file (at open, read or
    write alike); a full or read-only disk raises RunFailed.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(str(self.path), check_same_thread=False,
                                       isolation_level=None)
        except sqlite3.Error as exc:
            raise _translate(self.path, exc) from None
        with self._guard():
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=10000")
            self._db.executescript(_SCHEMA)
            for table, columns in _COLUMNS.items():
                have = [row[1] for row in self._db.execute(f"PRAGMA table_info({table})")]
                if have != columns:
                    raise _damaged(self.path, f"its {table} table is not an evorefuse cache's")

    @contextmanager
    def _guard(self) -> Iterator[None]:
        with self._lock:
            try:
                yield
            except sqlite3.Error as exc:
                raise _translate(self.path, exc) from None

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of one read (used by the batch journal, whose tables live in this file)."""
        with self._guard():
            return self._db.execute(sql, list(args)).fetchall()

    def write(self, statements: Iterable[tuple[str, Sequence[Any]]]) -> None:
        """Several writes in one transaction: all of them survive a kill -9, or none. A statement's
        arguments are one tuple of values, or a list of such tuples (executemany)."""
        with self._lock:  # `_guard` spelled out: this is the per-call hot path
            try:
                self._transaction(statements)
            except sqlite3.Error as exc:
                raise _translate(self.path, exc) from None

    def _transaction(self, statements: Iterable[tuple[str, Sequence[Any]]]) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for sql, args in statements:
                if isinstance(args, list):
                    self._db.executemany(sql, args)
                else:
                    self._db.execute(sql, tuple(args))
            self._db.execute("COMMIT")
        except BaseException:
            # SQLite has already rolled back after e.g. SQLITE_FULL; a second ROLLBACK would
            # raise and hide the real error.
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    def get_many(self, keys: Sequence[str]) -> dict[str, tuple[Choice, int, int]]:
        if not keys:
            return {}
        marks = ",".join("?" * len(keys))
        with self._lock:  # `_guard` spelled out: this is the per-call hot path
            try:
                rows = self._db.execute(
                    f"SELECT key, choice, prompt_tokens, completion_tokens FROM samples "
                    f"WHERE key IN ({marks})", list(keys)).fetchall()
            except sqlite3.Error as exc:
                raise _translate(self.path, exc) from None
        try:
            return {k: (Choice.from_json(orjson.loads(c)), p, t) for k, c, p, t in rows}
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise _damaged(self.path, f"a stored sample does not parse: {type(exc).__name__}") \
                from None

    def put_many(self, entries: Iterable[tuple[str, Choice, int, int]],
                 call: tuple[Any, ...] | None = None) -> None:
        """Store samples and the ledger row of the call that produced them in one transaction,
        so what was paid for and what was received can never disagree after a kill -9."""
        rows: list[tuple[Any, ...]] = [
            (k, orjson.dumps(c.to_json()), p, t) for k, c, p, t in entries
        ]
        if not rows and call is None:
            return
        statements: list[tuple[str, Sequence[Any]]] = []
        if rows:
            statements.append(("INSERT OR REPLACE INTO samples VALUES (?, ?, ?, ?)", rows))
        if call is not None:
            statements.append(("INSERT INTO calls VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                               call))
        self.write(statements)

    def ledger_rows(self, run_id: str) -> list[tuple[Any, ...]]:
        """(role, model, *LEDGER_COLUMNS) summed over every call this run recorded."""
        sums = ", ".join(f"SUM({c})" for c in LEDGER_COLUMNS)
        return self.query(
            f"SELECT role, model, {sums} FROM calls WHERE run_id = ? GROUP BY role, model",
            (run_id,))

    def __len__(self) -> int:
        return self.query("SELECT COUNT(*) FROM samples")[0][0]

    def integrity_ok(self) -> bool:
        return self.query("PRAGMA integrity_check")[0][0] == "ok"

    def close(self) -> None:
        with self._lock:
            self._db.close()
