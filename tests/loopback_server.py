"""A real HTTP/1.1 chat-completions server on loopback, with injected latency and faults.

Why a real server rather than mocking the SDK: the failures worth testing (truncated bodies,
malformed JSON, timeouts, Retry-After headers, keep-alive connections) live in the HTTP layer,
and only a socket shows what the `openai` package really raises for them.

It runs on its own asyncio loop in a background thread, so a test (sync or async) just does

    with LoopbackServer(latency=0.1, faults=FaultPlan(script=["429", "500"])) as srv:
        spec = ModelSpec(name="t", model="loop", base_url=srv.base_url, ...)

and it sustains hundreds of concurrent keep-alive connections. For benchmarks that must not share
the client's CPU, run it as a separate process: `python tests/loopback_server.py --latency 0.1`
prints the base URL on stdout and serves until stdin closes.

Counters (`srv.stats`) record requests, faults by kind, in-flight maximum and, for the
Authorization header, only whether it matched `expected_key` (the key itself is never stored).
"""

from __future__ import annotations

import asyncio
import collections
import email.utils
import functools
import hashlib
import json
import math
import random
import sys
import threading
import zlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

try:  # `python -m pytest` puts the repo root on sys.path; plain `pytest` puts tests/ there
    from tests.loopback_batch import BatchFaults, BatchService
except ImportError:
    from loopback_batch import BatchFaults, BatchService  # type: ignore[no-redef]

FAULT_KINDS = ("429", "500", "503", "timeout", "malformed", "truncated", "401",
               "content_filter", "huge", "huge_declared", "gzip_bomb", "drip", "redirect")
HUGE_BYTES = 50 << 20  # what "huge" sends: 50 MB for a few requested tokens
BOMB_BYTES = 256 << 20  # what "gzip_bomb" expands to: 256 MB from about 250 KB on the wire
REFUSAL = "I'm sorry, but I can't help with that."

Responder = Callable[[list[dict[str, Any]], dict[str, Any]], str]


@functools.cache
def _gzip_bomb() -> bytes:
    """gzip of a JSON body whose content string is BOMB_BYTES of "x" (built once, about 250 KB)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: the gzip container
    chunk = b"x" * (1 << 20)
    parts = [packer.compress(b'{"choices": [{"message": {"content": "')]
    parts += [packer.compress(chunk) for _ in range(BOMB_BYTES >> 20)]
    return b"".join(parts) + packer.flush()


@dataclass
class FaultPlan:
    """Which faults to inject. `script` entries are used first, one per request, in arrival order
    (None or "ok" means a normal answer); after that each kind fires with probability `rates[kind]`
    drawn from the server's seeded RNG."""

    rates: dict[str, float] = field(default_factory=dict)
    script: list[str | None] = field(default_factory=list)
    retry_after: float = 0.2           # seconds, sent with 429
    retry_after_style: str = "seconds"  # "seconds" (Retry-After: 0.2), "ms" (retry-after-ms), "date"
    timeout_sleep: float = 5.0         # how long a "timeout" request hangs before closing
    drip_interval: float = 0.5         # "drip": one byte of a valid body per interval
    redirect_to: str = "http://127.0.0.1:9/v1/chat/completions"  # "redirect": the Location

    def __post_init__(self) -> None:
        for kind in list(self.rates) + [k for k in self.script if k not in (None, "ok")]:
            if kind not in FAULT_KINDS:
                raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(FAULT_KINDS)}")


def _words(text: str) -> list[str]:
    return text.split()


def _last_user(messages: list[dict[str, Any]]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            return str(m.get("content") or "")
    return ""


def default_responder(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    """A deterministic, helpful-sounding answer derived from the prompt (and the choice index)."""
    prompt = _last_user(messages)
    topic = " ".join(_words(prompt)[:8]) or "your question"
    h = hashlib.sha256(f"{prompt}|{params.get('index', 0)}|{params.get('seed')}".encode()).digest()
    openers = ["Sure!", "Of course.", "Happy to help.", "Certainly."]
    steps = ["First, consider the context.", "Next, gather reliable sources.",
             "Then, summarise the key points.", "Finally, check the result with an expert."]
    return (f"{openers[h[0] % 4]} Here is a helpful answer about {topic}. "
            + " ".join(steps[: 2 + h[1] % 3]))


def scripted_refusal_responder(words: Iterable[str], p_refusal: float, seed: int = 0,
                               p_base: float = 0.0) -> Responder:
    """Refuse with probability 1 - (1 - p_base) * (1 - p_refusal) ** (number of `words` present in
    the last user message), else answer helpfully. Gives tests a known refusal signal to optimise."""
    triggers = [w.lower() for w in words]
    rng = random.Random(seed)
    lock = threading.Lock()

    def respond(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
        text = _last_user(messages).lower()
        hits = sum(1 for w in triggers if w in text)
        p = 1.0 - (1.0 - p_base) * (1.0 - p_refusal) ** hits
        with lock:
            refuse = rng.random() < p
        return REFUSAL if refuse else default_responder(messages, params)

    return respond


def _token_logprobs(tokens: list[str], top_n: int, salt: str) -> list[dict[str, Any]]:
    """Plausible per-token logprobs: deterministic, chosen token always in its top list."""
    out = []
    for i, tok in enumerate(tokens):
        h = hashlib.blake2b(f"{salt}|{i}|{tok}".encode(), digest_size=8).digest()
        lp = -3.0 * (h[0] / 255.0) ** 2  # mostly confident, sometimes not
        entry: dict[str, Any] = {"token": tok, "logprob": lp, "bytes": list(tok.encode())}
        if top_n:
            alts = [(tok, lp)]
            rest = max(1e-6, 1.0 - math.exp(lp))
            for j in range(1, top_n):
                alt = f"{tok.strip()[:3] or 'x'}{j}"
                alts.append((" " + alt if tok.startswith(" ") else alt,
                             math.log(rest / (2 ** j))))
            alts.sort(key=lambda a: -a[1])
            entry["top_logprobs"] = [{"token": a, "logprob": b, "bytes": list(a.encode())}
                                     for a, b in alts[:top_n]]
        else:
            entry["top_logprobs"] = []
        out.append(entry)
    return out


class LoopbackServer:
    """See the module docstring. Use as a context manager, or `start()` / `stop()`."""

    def __init__(self, latency: float = 0.0, faults: FaultPlan | None = None,
                 responder: Responder | None = None, seed: int = 0,
                 expected_key: str | None = None, enforce_key: bool = False,
                 model: str = "loopback-model", host: str = "127.0.0.1", port: int = 0,
                 ignore_n: bool = False, jitter: float = 0.0,
                 bill_prompt: Callable[[list[dict[str, Any]]], int] | None = None,
                 batch_faults: BatchFaults | None = None) -> None:
        self.latency = latency
        self.jitter = jitter  # each request's latency is uniform in latency +- jitter
        self.ignore_n = ignore_n  # answer n>1 with one choice, as some servers silently do
        self.faults = faults or FaultPlan()
        self.responder = responder or default_responder
        self.model = model
        self.host = host
        self.port = port
        self._rng = random.Random(seed)
        self._script: collections.deque[str | None] = collections.deque(self.faults.script)
        self._expected_key = expected_key  # compared, never recorded
        self._enforce_key = enforce_key
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._conns: set[asyncio.Task[Any]] = set()
        self.bill_prompt = bill_prompt  # prompt tokens billed for messages (default: words)
        self.batch = BatchService(self._complete, batch_faults)
        self.reset_stats()

    # ----- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> LoopbackServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="loopback-server",
                                        daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port,
                                                  backlog=2048, limit=1 << 20)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        assert self._thread is not None
        self._thread.join(10)
        self._loop.close()
        self._loop = None

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._conns):
            task.cancel()
        await asyncio.gather(*self._conns, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    # ----- control and counters -----------------------------------------------------------------
    def reset_stats(self) -> None:
        self.stats: dict[str, Any] = {
            "requests": 0, "models_requests": 0, "connections": 0, "in_flight": 0,
            "max_in_flight": 0, "faults": collections.Counter(),
            "auth": collections.Counter(),  # "match"/"mismatch"/"missing"/"present" (no expected key)
            "arrivals": [],                 # monotonic arrival time of each chat request
            "n_values": [], "seeds": [],
        }
        self.batch.bind(self.stats)

    def script(self, *kinds: str | None) -> None:
        """Queue faults for the next requests (thread-safe)."""
        FaultPlan(script=list(kinds))  # validates
        self._script.extend(kinds)

    @property
    def requests(self) -> int:
        return int(self.stats["requests"])

    def _pick_fault(self) -> str | None:
        if self._script:
            kind = self._script.popleft()
            return None if kind in (None, "ok") else kind
        for kind, p in self.faults.rates.items():
            if p and self._rng.random() < p:
                return kind
        return None

    # ----- HTTP ----------------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        self.stats["connections"] += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path, _version = (lines[0].split(" ", 2) + ["", ""])[:3]
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                length = int(headers.get("content-length", "0") or 0)
                body = await reader.readexactly(length) if length else b""
                keep = await self._dispatch(method, path, headers, body, writer)
                if not keep or headers.get("connection", "").lower() == "close":
                    return
        except (asyncio.CancelledError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._conns.discard(task)
            writer.close()

    @staticmethod
    def _send(writer: asyncio.StreamWriter, status: int, payload: bytes,
              extra: dict[str, str] | None = None, content_length: int | None = None,
              content_type: str = "application/json") -> None:
        reason = {200: "OK", 302: "Found", 400: "Bad Request", 401: "Unauthorized",
                  404: "Not Found",
                  429: "Too Many Requests", 500: "Internal Server Error",
                  503: "Service Unavailable"}.get(status, "Error")
        head = [f"HTTP/1.1 {status} {reason}", f"Content-Type: {content_type}",
                f"Content-Length: {len(payload) if content_length is None else content_length}",
                "Connection: keep-alive"]
        for k, v in (extra or {}).items():
            head.append(f"{k}: {v}")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)

    @staticmethod
    def _error(message: str, type_: str, code: str | None) -> bytes:
        return json.dumps({"error": {"message": message, "type": type_, "param": None,
                                     "code": code}}).encode()

    async def _dispatch(self, method: str, path: str, headers: dict[str, str], body: bytes,
                        writer: asyncio.StreamWriter) -> bool:
        """Answer one request; return whether the connection stays open."""
        path, _, query = path.partition("?")
        if path.startswith(("/v1/files", "/v1/batches")):
            status, payload = self.batch.handle(method, path, query, headers, body)
            ctype = "application/json" if not path.endswith("/content") else "application/jsonl"
            self._send(writer, status, payload, content_type=ctype)
            await writer.drain()
            return True
        if method == "GET" and path == "/v1/models":
            self.stats["models_requests"] += 1
            self._send(writer, 200, json.dumps({"object": "list", "data": [
                {"id": self.model, "object": "model", "created": 0, "owned_by": "loopback"}]}
            ).encode())
            await writer.drain()
            return True
        if method == "GET" and path == "/_stats":
            s = dict(self.stats, faults=dict(self.stats["faults"]), auth=dict(self.stats["auth"]),
                     arrivals=len(self.stats["arrivals"]), n_values=[], seeds=[],
                     batch_line_counts=dict(self.stats["batch_line_counts"]))
            self._send(writer, 200, json.dumps(s).encode())
            await writer.drain()
            return True
        if method != "POST" or path != "/v1/chat/completions":
            self._send(writer, 404, self._error(f"no route {method} {path}", "not_found", None))
            await writer.drain()
            return True

        st = self.stats
        st["requests"] += 1
        st["arrivals"].append(time.monotonic())
        auth = headers.get("authorization")
        presented = auth[7:] if auth and auth.lower().startswith("bearer ") else None
        if presented is None:
            st["auth"]["missing"] += 1
        elif self._expected_key is None:
            st["auth"]["present"] += 1
        else:
            st["auth"]["match" if presented == self._expected_key else "mismatch"] += 1
        st["in_flight"] += 1
        st["max_in_flight"] = max(st["max_in_flight"], st["in_flight"])
        try:
            if self.latency or self.jitter:
                delay = self.latency
                if self.jitter:
                    delay += self._rng.uniform(-self.jitter, self.jitter)
                await asyncio.sleep(max(0.0, delay))
            fault = self._pick_fault()
            if fault is None and self._enforce_key and self._expected_key is not None \
                    and presented != self._expected_key:
                fault = "401"
            if fault is not None:
                st["faults"][fault] += 1
                return await self._fault(fault, writer, presented)
            try:
                req = json.loads(body)
            except ValueError:
                self._send(writer, 400, self._error("body is not JSON", "invalid_request_error",
                                                    None))
                await writer.drain()
                return True
            self._send(writer, 200, json.dumps(self._complete(req)).encode())
            await writer.drain()
            return True
        finally:
            st["in_flight"] -= 1

    async def _fault(self, kind: str, writer: asyncio.StreamWriter, presented: str | None) -> bool:
        plan = self.faults
        if kind == "429":
            if plan.retry_after_style == "ms":
                extra = {"retry-after-ms": str(int(plan.retry_after * 1000))}
            elif plan.retry_after_style == "date":
                extra = {"Retry-After": email.utils.formatdate(time.time() + plan.retry_after,
                                                               usegmt=True)}
            else:
                extra = {"Retry-After": f"{plan.retry_after:g}"}
            self._send(writer, 429, self._error("Rate limit reached, slow down.", "requests",
                                                "rate_limit_exceeded"), extra)
        elif kind in ("500", "503"):
            self._send(writer, int(kind), self._error(f"injected {kind}", "server_error", None))
        elif kind == "401":
            # Echo the presented key, as a careless server might: the client must redact it.
            self._send(writer, 401, self._error(f"Incorrect API key provided: {presented}.",
                                                "invalid_request_error", "invalid_api_key"))
        elif kind == "content_filter":
            self._send(writer, 400, self._error(
                "The response was filtered due to the prompt triggering content management "
                "policy.", "invalid_request_error", "content_filter"))
        elif kind == "malformed":
            self._send(writer, 200, b'{"id": "chatcmpl-broken", "choices": [{"index": 0, "mess')
        elif kind == "truncated":
            payload = json.dumps({"id": "chatcmpl-trunc", "object": "chat.completion",
                                  "choices": []}).encode()
            self._send(writer, 200, payload[: len(payload) // 2], content_length=len(payload) + 50)
            await writer.drain()
            return False
        elif kind == "timeout":
            await asyncio.sleep(plan.timeout_sleep)
            return False
        elif kind in ("huge", "huge_declared"):
            # 50 MB of a JSON string; "huge" declares no length and streams until it closes.
            head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + (f"Content-Length: {HUGE_BYTES}\r\n".encode() if kind == "huge_declared"
                       else b"") + b"Connection: close\r\n\r\n")
            writer.write(head + b'{"choices": [{"message": {"content": "')
            chunk = b"x" * (1 << 20)
            try:
                for _ in range(HUGE_BYTES >> 20):
                    writer.write(chunk)
                    await writer.drain()
            except ConnectionError:
                pass
            return False
        elif kind == "gzip_bomb":
            # A small, honestly declared body that gzip-expands to 256 MB of a JSON string.
            body = _gzip_bomb()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Encoding: gzip\r\nConnection: close\r\n"
                         + f"Content-Length: {len(body)}\r\n\r\n".encode())
            try:
                writer.write(body)
                await writer.drain()
            except ConnectionError:
                pass
            return False
        elif kind == "drip":
            payload = json.dumps({"id": "chatcmpl-drip", "object": "chat.completion",
                                  "choices": []}).encode()
            writer.write((f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                          f"Content-Length: {len(payload)}\r\n\r\n").encode())
            for i in range(len(payload)):
                writer.write(payload[i:i + 1])
                await writer.drain()
                await asyncio.sleep(plan.drip_interval)
            return False
        elif kind == "redirect":
            self._send(writer, 302, b"", {"Location": plan.redirect_to})
        await writer.drain()
        return True

    def _complete(self, req: dict[str, Any]) -> dict[str, Any]:
        messages = req.get("messages") or []
        n = int(req.get("n") or 1)
        self.stats["n_values"].append(n)
        if self.ignore_n:
            n = 1
        max_tokens = req.get("max_tokens") or req.get("max_completion_tokens")
        want_lp = bool(req.get("logprobs"))
        top_n = int(req.get("top_logprobs") or 0)
        self.stats["seeds"].append(req.get("seed"))
        params = {k: req.get(k) for k in ("temperature", "top_p", "max_tokens", "seed", "n")}
        choices = []
        completion_tokens = 0
        for i in range(n):
            text = self.responder(messages, dict(params, index=i))
            words = _words(text)
            finish = "stop"
            if max_tokens is not None and len(words) > int(max_tokens):
                words = words[: int(max_tokens)]
                finish = "length"
                text = " ".join(words)
            completion_tokens += len(words)
            choice: dict[str, Any] = {"index": i, "message": {"role": "assistant",
                                                             "content": text},
                                      "finish_reason": finish, "logprobs": None}
            if want_lp:
                tokens = [w if j == 0 else " " + w for j, w in enumerate(words)]
                choice["logprobs"] = {"content": _token_logprobs(tokens, top_n, text),
                                      "refusal": None}
            choices.append(choice)
        prompt_tokens = (self.bill_prompt(messages) if self.bill_prompt is not None else
                         sum(len(_words(str(m.get("content") or ""))) for m in messages))
        return {"id": f"chatcmpl-{self.stats['requests']}", "object": "chat.completion",
                "created": int(time.time()), "model": req.get("model") or self.model,
                "system_fingerprint": "fp_loopback", "choices": choices,
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens}}


def _main(argv: list[str]) -> None:
    """Serve in this process until stdin closes (for benchmarks that need a separate process)."""
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency", type=float, default=0.1)
    ap.add_argument("--jitter", type=float, default=0.0)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    with LoopbackServer(latency=args.latency, port=args.port, seed=args.seed,
                        jitter=args.jitter) as srv:
        print(srv.base_url, flush=True)
        try:
            sys.stdin.read()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    _main(sys.argv[1:])
