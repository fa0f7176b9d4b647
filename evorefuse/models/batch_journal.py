"""Which requests are in which batch, kept in the run's request cache (`cache.sqlite`).

Why it is written before anything is waited for: a run killed while a batch is in flight must
resume by polling that batch, never by paying for its requests again. So the input file's id is
recorded (with the custom ids of the requests it carries) as soon as it is uploaded, the batch's
id as soon as it is created, and the output lines, once downloaded, in one transaction with the
batch marked done. A resumed run that asks for a request finds, in that order: its downloaded
line (no call at all), the live batch carrying it (polled, not re-sent), or nothing (sent anew).

A custom id is a hash of the endpoint and the exact request body (model, messages, sampling
parameters, seed, n), so the same request asked again after a resume has the same id.
A downloaded line stays here after its samples reach the cache: it is the receipt that the
request was paid for, and what answers it if the process dies before the cache write.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from .cache import RequestCache

_SCHEMA = [
    ("""CREATE TABLE IF NOT EXISTS batch_files (
        input_file_id TEXT PRIMARY KEY,
        endpoint TEXT NOT NULL,
        batch_id TEXT,
        state TEXT NOT NULL,
        created REAL NOT NULL)""", ()),
    ("""CREATE TABLE IF NOT EXISTS batch_lines (
        custom_id TEXT PRIMARY KEY,
        input_file_id TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        status INTEGER,
        body BLOB)""", ()),
    ("CREATE INDEX IF NOT EXISTS batch_lines_file ON batch_lines (input_file_id)", ()),
]

UPLOADED, SUBMITTED, DONE = "uploaded", "submitted", "done"


def custom_id(endpoint: str, body: dict[str, Any]) -> str:
    digest = hashlib.sha256(endpoint.encode() + b"\0" + orjson.dumps(
        body, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"evr-{digest[:40]}"


@dataclass
class BatchFile:
    """One uploaded input file and the batch made from it (None until created)."""
    input_file_id: str
    batch_id: str | None
    state: str


@dataclass
class Line:
    """A request's answer from an output or error file: the HTTP status of its response and the
    response body; status 0 with the line's `error` object when the provider answered for it
    without a response (expired, cancelled)."""
    status: int
    body: Any


class BatchJournal:
    def __init__(self, cache: RequestCache, endpoint: str) -> None:
        self.cache = cache
        self.endpoint = endpoint
        cache.write(_SCHEMA)

    @classmethod
    def in_memory(cls, endpoint: str) -> BatchJournal:
        """Without a run directory (e.g. `models check`): nothing to resume, same code."""
        return cls(RequestCache(":memory:"), endpoint)

    def line(self, cid: str) -> Line | None:
        rows = self.cache.query("SELECT status, body FROM batch_lines WHERE custom_id = ? AND "
                                "status IS NOT NULL", (cid,))
        if not rows:
            return None
        status, body = rows[0]
        return Line(int(status), orjson.loads(body))

    def live_file(self, cid: str) -> BatchFile | None:
        """The not yet downloaded file that carries `cid`, if any."""
        rows = self.cache.query(
            "SELECT f.input_file_id, f.batch_id, f.state FROM batch_lines l JOIN batch_files f "
            "ON f.input_file_id = l.input_file_id WHERE l.custom_id = ? AND l.status IS NULL "
            "AND f.state != ? AND f.endpoint = ?", (cid, DONE, self.endpoint))
        return BatchFile(*rows[0]) if rows else None

    def attempts(self, cid: str) -> int:
        rows = self.cache.query("SELECT attempts FROM batch_lines WHERE custom_id = ?", (cid,))
        return int(rows[0][0]) if rows else 0

    def custom_ids(self, input_file_id: str) -> list[str]:
        return [r[0] for r in self.cache.query(
            "SELECT custom_id FROM batch_lines WHERE input_file_id = ?", (input_file_id,))]

    def uploaded(self, input_file_id: str, cids: Iterable[str]) -> None:
        """The file is on the server: from now on its requests are never sent again unless it
        turns out that they failed."""
        self.cache.write([
            ("INSERT INTO batch_files VALUES (?, ?, NULL, ?, ?)",
             (input_file_id, self.endpoint, UPLOADED, time.time())),
            ("INSERT INTO batch_lines VALUES (?, ?, 1, NULL, NULL) ON CONFLICT(custom_id) DO "
             "UPDATE SET input_file_id = excluded.input_file_id, attempts = attempts + 1, "
             "status = NULL, body = NULL", [(cid, input_file_id) for cid in cids]),
        ])

    def submitted(self, input_file_id: str, batch_id: str) -> None:
        self.cache.write([("UPDATE batch_files SET batch_id = ?, state = ? WHERE "
                           "input_file_id = ?", (batch_id, SUBMITTED, input_file_id))])

    def done(self, input_file_id: str, lines: dict[str, Line]) -> None:
        """The batch's output and error lines, and the file marked done, in one transaction."""
        self.cache.write([
            ("UPDATE batch_lines SET status = ?, body = ? WHERE custom_id = ? AND "
             "input_file_id = ?", [(ln.status, orjson.dumps(ln.body), cid, input_file_id)
                                   for cid, ln in lines.items()]),
            ("UPDATE batch_files SET state = ? WHERE input_file_id = ?", (DONE, input_file_id)),
        ])
