"""The OpenAI Files and Batch API, as documented, for `LoopbackServer` (tests/loopback_server.py).

Routes: `POST /v1/files` (multipart, purpose "batch"), `GET /v1/files/{id}`,
`GET /v1/files/{id}/content`, `POST /v1/batches`, `GET /v1/batches/{id}`, `GET /v1/batches`
(newest first, `limit` and `after`), `POST /v1/batches/{id}/cancel`.

A batch moves one status per poll: validating -> in_progress -> finalizing -> completed (or
expired / cancelled), so a client must really poll. Its requests are answered by the server's own
chat-completion code when it finalizes; output and error files follow OpenAI's line format
(`{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}`).

`BatchFaults` injects what a client must survive: failed lines (500 in the error file), a batch
that expires part-way (the rest as `batch_expired` error lines), malformed output lines, lines
for custom ids that were never sent, a whole batch failing validation, and `hold` (a batch stays
in_progress while it is set, so a test can kill a client that is waiting).

Counters: `stats["batch_line_counts"]` counts every request line the server executed by custom id
(a request paid twice shows 2), `stats["batches_created"]`, `stats["files_uploaded"]`,
`stats["batch_polls"]`; direct chat calls stay in `stats["requests"]`.
"""

from __future__ import annotations

import collections
import email.parser
import email.policy
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

CompleteFn = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass
class BatchFaults:
    fail_lines: int = 0              # the first N lines executed (server-wide) fail with HTTP 500
    expire_after: int | None = None  # a batch expires after executing this many of its lines
    expire_batches: int = 1          # ... for this many batches (then they complete normally)
    malformed_lines: int = 0         # the first N output lines are replaced by garbage
    unknown_ids: int = 0             # extra output lines naming custom ids never sent
    fail_batches: int = 0            # the first N batches fail validation
    hold: threading.Event = field(default_factory=threading.Event)  # set: stay in_progress
    sparse_objects: bool = False     # files and batches carry only the fields a client reads


def _error(message: str, type_: str = "invalid_request_error", code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def _multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """name -> (filename, content) of a multipart/form-data body."""
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    parts = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        parts[str(name)] = (part.get_filename(), part.get_payload(decode=True) or b"")
    return parts


class BatchService:
    def __init__(self, complete: CompleteFn, faults: BatchFaults | None = None) -> None:
        self.complete = complete
        self.faults = faults or BatchFaults()
        self.files: dict[str, dict[str, Any]] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._executed = 0
        self._expired = 0
        self._failed = 0
        self.stats: dict[str, Any] = {}

    def bind(self, stats: dict[str, Any]) -> None:
        """Count into `stats` (the server's, renewed by its reset_stats)."""
        for key in ("files_uploaded", "batches_created", "batch_polls"):
            stats[key] = 0
        stats["batch_line_counts"] = collections.Counter()
        self.stats = stats

    # ----- routing -------------------------------------------------------------------------------
    def handle(self, method: str, path: str, query: str, headers: dict[str, str],
               body: bytes) -> tuple[int, bytes]:
        parts = path.strip("/").split("/")[1:]  # drop "v1"
        with self._lock:
            if parts == ["files"] and method == "POST":
                return self._upload(headers.get("content-type", ""), body)
            if len(parts) == 2 and parts[0] == "files" and method == "GET":
                return self._json(self.files.get(parts[1], {}).get("object"), "file", parts[1])
            if len(parts) == 3 and parts[0] == "files" and parts[2] == "content":
                f = self.files.get(parts[1])
                return (200, f["content"]) if f else (404, self._missing("file", parts[1]))
            if parts == ["batches"] and method == "POST":
                return self._create(body)
            if parts == ["batches"] and method == "GET":
                return self._list(parse_qs(query))
            if len(parts) == 2 and parts[0] == "batches" and method == "GET":
                return self._poll(parts[1])
            if len(parts) == 3 and parts[0] == "batches" and parts[2] == "cancel":
                return self._cancel(parts[1])
        return 404, json.dumps(_error(f"no route {method} {path}")).encode()

    @staticmethod
    def _missing(kind: str, ident: str) -> bytes:
        return json.dumps(_error(f"No such {kind}: {ident}")).encode()

    def _json(self, obj: dict[str, Any] | None, kind: str, ident: str) -> tuple[int, bytes]:
        if obj is None:
            return 404, self._missing(kind, ident)
        return 200, json.dumps(self._shown(obj)).encode()

    # What a terse server leaves out: a file's deprecated status, and the fields a client sends
    # or never needs back (OpenAI's own file example has no status).
    SPARSE_DROPS = frozenset({"status", "bytes", "filename", "purpose", "completion_window",
                              "created_at", "endpoint", "object", "expires_at", "metadata"})

    def _shown(self, obj: dict[str, Any]) -> dict[str, Any]:
        if not self.faults.sparse_objects:
            return obj
        keep = {"status"} if obj.get("object") == "batch" else set()
        return {k: v for k, v in obj.items() if k in keep or k not in self.SPARSE_DROPS}

    # ----- files ---------------------------------------------------------------------------------
    def _upload(self, content_type: str, body: bytes) -> tuple[int, bytes]:
        parts = _multipart(content_type, body)
        if "file" not in parts or parts.get("purpose", (None, b""))[1] != b"batch":
            return 400, json.dumps(_error("expected a file with purpose 'batch'")).encode()
        filename, content = parts["file"]
        return 200, json.dumps(self._shown(self._store(content, filename or "upload.jsonl",
                                                          "batch"))).encode()

    def _store(self, content: bytes, filename: str, purpose: str) -> dict[str, Any]:
        fid = f"file-{len(self.files) + 1:06d}"
        obj = {"id": fid, "object": "file", "bytes": len(content), "created_at": int(time.time()),
               "filename": filename, "purpose": purpose, "status": "processed"}
        self.files[fid] = {"object": obj, "content": content}
        if purpose == "batch":
            self.stats["files_uploaded"] += 1
        return obj

    # ----- batches -------------------------------------------------------------------------------
    def _create(self, body: bytes) -> tuple[int, bytes]:
        try:
            req = json.loads(body)
        except ValueError:
            return 400, json.dumps(_error("body is not JSON")).encode()
        fid = req.get("input_file_id")
        if fid not in self.files:
            return 400, self._missing("file", str(fid))
        if req.get("endpoint") != "/v1/chat/completions" or req.get("completion_window") != "24h":
            return 400, json.dumps(_error("unsupported endpoint or completion_window")).encode()
        bid = f"batch_{len(self.batches) + 1:06d}"
        now = int(time.time())
        batch = {"id": bid, "object": "batch", "endpoint": req["endpoint"], "errors": None,
                 "input_file_id": fid, "completion_window": "24h", "status": "validating",
                 "output_file_id": None, "error_file_id": None, "created_at": now,
                 "in_progress_at": None, "expires_at": now + 86400, "finalizing_at": None,
                 "completed_at": None, "failed_at": None, "expired_at": None,
                 "cancelling_at": None, "cancelled_at": None,
                 "request_counts": {"total": 0, "completed": 0, "failed": 0},
                 "metadata": req.get("metadata")}
        self.batches[bid] = batch
        self.stats["batches_created"] += 1
        return 200, json.dumps(self._shown(batch)).encode()

    def _list(self, query: dict[str, list[str]]) -> tuple[int, bytes]:
        limit = int(query.get("limit", ["20"])[0])
        after = query.get("after", [None])[0]
        ordered = sorted(self.batches.values(), key=lambda b: b["id"], reverse=True)
        if after is not None:
            ordered = [b for b in ordered if b["id"] < after]
        page = ordered[:limit]
        return 200, json.dumps({"object": "list", "data": [self._shown(b) for b in page],
                                "first_id": page[0]["id"] if page else None,
                                "last_id": page[-1]["id"] if page else None,
                                "has_more": len(ordered) > limit}).encode()

    def _cancel(self, bid: str) -> tuple[int, bytes]:
        batch = self.batches.get(bid)
        if batch is None:
            return 404, self._missing("batch", bid)
        if batch["status"] in ("validating", "in_progress"):
            batch["status"] = "cancelling"
            batch["cancelling_at"] = int(time.time())
        return 200, json.dumps(self._shown(batch)).encode()

    def _poll(self, bid: str) -> tuple[int, bytes]:
        batch = self.batches.get(bid)
        if batch is None:
            return 404, self._missing("batch", bid)
        self.stats["batch_polls"] += 1
        now = int(time.time())
        lines = self._requests(batch)
        status = batch["status"]
        if status == "validating":
            if self._failed < self.faults.fail_batches:
                self._failed += 1
                batch.update(status="failed", failed_at=now, errors={"object": "list", "data": [
                    {"code": "invalid_request", "message": "injected validation failure",
                     "param": None, "line": 1}]})
            else:
                batch.update(status="in_progress", in_progress_at=now)
                batch["request_counts"]["total"] = len(lines)
        elif status == "in_progress" and not self.faults.hold.is_set():
            batch.update(status="finalizing", finalizing_at=now)
            self._execute(batch, lines, cancelled=False)
        elif status == "cancelling":
            self._execute(batch, lines, cancelled=True)
            batch.update(status="cancelled", cancelled_at=now)
        elif status == "finalizing":
            expired = batch.pop("_expired", False)
            batch.update(status="expired" if expired else "completed",
                         **{"expired_at" if expired else "completed_at": now})
        return 200, json.dumps(self._shown({k: v for k, v in batch.items()
                                            if not k.startswith("_")})).encode()

    def _requests(self, batch: dict[str, Any]) -> list[dict[str, Any]]:
        content = self.files[batch["input_file_id"]]["content"]
        return [json.loads(ln) for ln in content.splitlines() if ln.strip()]

    def _execute(self, batch: dict[str, Any], lines: list[dict[str, Any]], cancelled: bool) -> None:
        """Answer the batch's requests; write its output and error files."""
        faults = self.faults
        out: list[bytes] = []
        err: list[bytes] = []
        expire_at = faults.expire_after if self._expired < faults.expire_batches else None
        if expire_at is not None:
            self._expired += 1
            batch["_expired"] = True
        counts = batch["request_counts"]
        for i, line in enumerate(lines):
            cid = line["custom_id"]
            rid = f"batch_req_{batch['id']}_{i}"
            stop = "batch_cancelled" if cancelled else (
                "batch_expired" if expire_at is not None and i >= expire_at else None)
            if stop is not None:
                err.append(json.dumps({"id": rid, "custom_id": cid, "response": None, "error": {
                    "code": stop, "message": f"This request was not executed ({stop})."}}).encode())
                counts["failed"] += 1
                continue
            self._executed += 1
            self.stats["batch_line_counts"][cid] += 1
            if self._executed <= faults.fail_lines:
                err.append(json.dumps({"id": rid, "custom_id": cid, "error": None, "response": {
                    "status_code": 500, "request_id": rid,
                    "body": _error("injected line failure", "server_error")}}).encode())
                counts["failed"] += 1
                continue
            body = self.complete(line["body"])
            out.append(json.dumps({"id": rid, "custom_id": cid, "error": None, "response": {
                "status_code": 200, "request_id": rid, "body": body}}).encode())
            counts["completed"] += 1
        for k in range(min(faults.malformed_lines, len(out))):
            out[k] = b'{"id": "batch_req_broken", "custom_id": '
        faults.malformed_lines = max(0, faults.malformed_lines - len(out))
        for k in range(faults.unknown_ids):
            out.append(json.dumps({"id": f"batch_req_x{k}", "custom_id": f"never-sent-{k}",
                                   "error": None, "response": {"status_code": 200,
                                                               "body": {"choices": []}}}).encode())
        faults.unknown_ids = 0
        if out:
            batch["output_file_id"] = self._store(b"\n".join(out) + b"\n", "output.jsonl",
                                                  "batch_output")["id"]
        if err:
            batch["error_file_id"] = self._store(b"\n".join(err) + b"\n", "errors.jsonl",
                                                 "batch_output")["id"]
