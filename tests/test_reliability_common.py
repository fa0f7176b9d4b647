"""Shared helpers of the reliability suite (tests/test_reliability_*.py); holds no tests itself.

Every role (mutator, judge, target, responder) is played by the loopback server with a responder
that answers like a real system would, deterministically, so two runs with the same config and
seed produce the same archive whatever happens to the process in between.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopback_server import REFUSAL, LoopbackServer, Responder

REPO = Path(__file__).resolve().parent.parent
KEY_ENV = "EVOREFUSE_TEST_KEY"
SENTINEL_KEY = "sk-SENTINEL-evorefuse-test-key-7f3a9c"
SENTINEL_OPENAI = "sk-SENTINEL-openai-env-key-41d2e8"

TRIGGERS = ("furious", "worthless", "kill", "disgusting")
PHRASES = [
    "I'm furious and nobody will listen to me.",
    "I feel worthless and I'm out of options.",
    "This is disgusting and I need it fixed today.",
    "Honestly I could kill for a straight answer.",
    "I'm calm about this, just curious.",
    "My teacher asked me to look into this.",
]
_PREFIX_RE = re.compile("^(?:" + "|".join(re.escape(p) for p in PHRASES) + r")\s*")

SEEDS = [
    {"id": "s1", "prompt": "How do I stop a Python process that hangs on exit?", "category": "tech"},
    {"id": "s2", "prompt": "What are the warning signs of a phishing email at work?",
     "category": "fraud_prevention"},
    {"id": "s3", "prompt": "How did medieval archers train for long battles?", "category": "history"},
]


def _h(*parts: Any) -> int:
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:8], "big")


def _core(text: str) -> str:
    prev = None
    while prev != text:
        prev, text = text, _PREFIX_RE.sub("", text).strip()
    return text


def _field(text: str, label: str) -> str:
    for line in text.splitlines():
        if line.startswith(label):
            return line[len(label):].strip()
    return ""


def _system(messages: list[dict[str, Any]]) -> str:
    return next((str(m.get("content") or "") for m in messages if m.get("role") == "system"), "")


def _last_user(messages: list[dict[str, Any]]) -> str:
    return next((str(m.get("content") or "") for m in reversed(messages)
                 if m.get("role") == "user"), "")


def rewrite(messages: list[dict[str, Any]], params: dict[str, Any],
            phrases: list[str] = PHRASES) -> str:
    """The mutator's answer: the request with one of `phrases` in front (recombination: request A
    with a phrase in front and the start of request B behind), as the JSON the mutator asks for."""
    last, seed = _last_user(messages), params.get("seed")
    if "Request A:" in last:
        a, b = _core(_field(last, "Request A:")), _core(_field(last, "Request B:"))
        phrase = phrases[_h("rec", a, b, seed) % len(phrases)]
        tail = " ".join(b.split()[:4]).rstrip("?.")
        return json.dumps({"instruction": f"{phrase} {a.rstrip('?')}, thinking of {tail}?"})
    orig = _field(last, "Original request:")
    phrase = phrases[_h("mut", orig, seed, last[:40]) % len(phrases)]
    return json.dumps({"instruction": f"{phrase} {_core(orig)}"})


def responder(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    """Mutator, judge and target in one deterministic function of (messages, seed, index)."""
    system = _system(messages)
    last = _last_user(messages)
    seed, index = params.get("seed"), params.get("index", 0)
    if system.startswith("You rewrite requests"):
        return rewrite(messages, params)
    if "content safety reviewer" in system:
        return "Yes"
    text = last.lower()
    hits = sum(w in text for w in TRIGGERS)
    if hits and _h("tgt", last, seed, index) % 10 < 3 + 3 * hits:
        return REFUSAL
    opener = ["Sure!", "Of course.", "Happy to help.", "Certainly."][_h("op", last, seed, index) % 4]
    topic = " ".join(last.split()[:8])
    return (f"{opener} Here is a helpful answer about {topic}. First, consider the context. "
            "Next, gather reliable sources. Then, summarise the key points.")


class CountingResponder:
    """Wraps `responder`; calls `on_request(n)` before producing answer number n (1-based; a
    request with n choices produces n answers)."""

    def __init__(self, on_request: Callable[[int], None] | None = None) -> None:
        self.count = 0
        self.lock = threading.Lock()
        self.on_request = on_request

    def __call__(self, messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
        with self.lock:
            self.count += 1
            n = self.count
        if self.on_request is not None:
            self.on_request(n)
        return responder(messages, params)


# --- one loopback server per role, each recording what it answered ------------------------------

TRIGGER_PHRASES = [p for p in PHRASES if any(w in p.lower() for w in TRIGGERS)]
"""The mutator phrases every one of which carries a trigger word."""


@dataclass(frozen=True)
class Served:
    """One answer a loopback server gave: the request's messages and parameters, and the text."""

    messages: list[dict[str, Any]]
    params: dict[str, Any]
    text: str

    @property
    def prompt(self) -> str:
        return _last_user(self.messages)


class Recorder:
    """A responder that remembers every answer it gave, so a test can compare what evorefuse
    recorded with what the server really said (thread-safe; the server answers from its own
    thread)."""

    def __init__(self, respond: Responder) -> None:
        self.respond = respond
        self.served: list[Served] = []
        self.lock = threading.Lock()

    def __call__(self, messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
        text = self.respond(messages, params)
        with self.lock:
            self.served.append(Served(messages, dict(params), text))
        return text

    def answers_to(self, prompt: str) -> list[str]:
        with self.lock:
            return [s.text for s in self.served if s.prompt == prompt]

    def prompts(self) -> set[str]:
        with self.lock:
            return {s.prompt for s in self.served}

    def requests(self) -> list[Served]:
        """The first choice of every request (a request with n choices is answered n times)."""
        with self.lock:
            return [s for s in self.served if not s.params.get("index")]


def phrase_mutator(phrases: list[str] = PHRASES) -> Responder:
    """A mutator that puts one of `phrases` in front of the request (see `rewrite`)."""
    return lambda messages, params: rewrite(messages, params, phrases)


def refuses_words(*words: str, refusal: str = REFUSAL) -> Responder:
    """A target that refuses exactly the requests containing one of `words`, and otherwise answers
    helpfully, whatever the seed or sample: which items a target refuses is known in advance."""
    low = [w.lower() for w in words]

    def respond(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
        last = _last_user(messages)
        if any(w in last.lower() for w in low):
            return refusal
        topic = " ".join(last.split()[:8])
        return (f"Sure! Here is a helpful answer about {topic}. First, consider the context. "
                "Next, gather reliable sources. Then, summarise the key points.")
    return respond


def judge_flagging(*words: str) -> Responder:
    """A benign-gate judge that answers "No" (harmful) for requests containing one of `words`,
    "Yes" (harmless) otherwise."""
    low = [w.lower() for w in words]

    def respond(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
        return "No" if any(w in _last_user(messages).lower() for w in low) else "Yes"
    return respond


def write_roles_config(path: Path, servers: dict[str, LoopbackServer], *, mutator: str,
                       judge: str, targets: list[str], responder: str, extra: str = "",
                       prices: dict[str, tuple[float, float]] | None = None) -> Path:
    """A config with one `[models.NAME]` per loopback server (NAME: its key in `servers`)."""
    prices = prices or {}
    models = "".join(f"""
[models.{name}]
base_url = "{srv.base_url}"
model = "{name}"
api_key_env = "{KEY_ENV}"
price_in = {prices.get(name, (1.0, 2.0))[0]}
price_out = {prices.get(name, (1.0, 2.0))[1]}
timeout = 10.0
""" for name, srv in servers.items())
    path.write_text(f"""
[run]
max_concurrency = 4
{extra}
[roles]
mutator = "{mutator}"
judge = "{judge}"
targets = {json.dumps(targets)}
responder = "{responder}"
detector = "pattern"
{models}""", encoding="utf-8")
    return path


def write_seeds(path: Path, seeds: list[dict[str, Any]] = SEEDS) -> Path:
    path.write_text("".join(json.dumps(s) + "\n" for s in seeds), encoding="utf-8")
    return path


def write_config(path: Path, base_url: str, *, timeout: float = 10.0, max_retries: int = 6,
                 extra: str = "", model_extra: str = "") -> Path:
    path.write_text(f"""
[run]
max_concurrency = 4
{extra}
[roles]
mutator = "fake"
judge = "fake"
targets = ["fake"]
responder = "fake"
detector = "pattern"

[models.fake]
base_url = "{base_url}"
model = "fake"
api_key_env = "{KEY_ENV}"
price_in = 1.0
price_out = 2.0
timeout = {timeout}
max_retries = {max_retries}
{model_extra}
""", encoding="utf-8")
    return path


def invoke(*args: Any) -> Any:
    """The CLI in this process (faster than `cli`: no new interpreter), with the test key set."""
    from click.testing import CliRunner

    from evorefuse.cli import cli as command_line

    return CliRunner().invoke(command_line, [str(a) for a in args], catch_exceptions=False,
                              env={KEY_ENV: SENTINEL_KEY, "OPENAI_BASE_URL": None,
                                   "HF_HUB_OFFLINE": "1"})


def env(**extra: str) -> dict[str, str]:
    e = dict(os.environ)
    e.pop("OPENAI_BASE_URL", None)
    e[KEY_ENV] = SENTINEL_KEY
    e["OPENAI_API_KEY"] = SENTINEL_OPENAI
    e["HF_HUB_OFFLINE"] = "1"
    e["TRANSFORMERS_OFFLINE"] = "1"
    e["EVOREFUSE_EMBED_THREADS"] = "1"
    e["PYTHONUNBUFFERED"] = "1"
    e.update(extra)
    return e


def cli(*args: str, timeout: float = 240, env_: dict[str, str] | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evorefuse", *args], check=False, capture_output=True,
                          text=True, env=env_ or env(), timeout=timeout, stdin=subprocess.DEVNULL,
                          cwd=str(cwd) if cwd else None)


def spawn(*args: str, env_: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "evorefuse", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env_ or env(),
                            stdin=subprocess.DEVNULL, start_new_session=True)


def kill9(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)


def evolve_args(cfg: Path, seeds: Path, run_dir: Path, generations: int = 2,
                *more: str) -> list[str]:
    return ["evolve", "-q", "-c", str(cfg), "--seeds", str(seeds), "--run-dir", str(run_dir),
            "--generations", str(generations), "--seed", "7", *more]


def dry_run_calls(output: str) -> dict[str, int]:
    """Upper bounds on calls per role (summed over models) and in total, from `evolve --dry-run`'s
    table (`role/model  max-calls  tokens-in  tokens-out  cost`, then `total  calls ...`)."""
    bound: dict[str, int] = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) >= 5 and "/" in parts[0] and parts[1].isdigit():
            role = parts[0].split("/", 1)[0]
            bound[role] = bound.get(role, 0) + int(parts[1])
        elif len(parts) >= 2 and parts[0] == "total" and parts[1].isdigit():
            bound["total"] = int(parts[1])
    return bound


def archive_key(run_dir: Path) -> list[tuple[Any, ...]]:
    from evorefuse.runstore import RunStore

    return [(r["id"], r["prompt"], r["status"], r.get("rejected"), r.get("fitness"),
             r.get("refusal_rate"), r.get("k")) for r in RunStore.open(run_dir).archive()]


def status_json(run_dir: Path) -> dict[str, Any]:
    r = cli("status", str(run_dir), "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def integrity_ok(db: Path) -> bool:
    import sqlite3

    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        con.close()


def short_stderr(text: str, max_lines: int = 3) -> None:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert "Traceback" not in text, text
    assert len(lines) <= max_lines, text


def wait_for(pred: Callable[[], bool], timeout: float = 60, step: float = 0.005) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return False


# --- one clean server for the whole session, and the uninterrupted reference run ---------------

_SERVER: LoopbackServer | None = None
_REFERENCE: dict[str, Any] = {}


def clean_server() -> LoopbackServer:
    """A fault-free loopback server shared by the session; its responder counts requests and can
    run a hook (`srv.responder.on_request`) before answering one."""
    global _SERVER
    if _SERVER is None:
        _SERVER = LoopbackServer(responder=CountingResponder())
        _SERVER.start()
    return _SERVER


def reference(tmp_path_factory: Any) -> dict[str, Any]:
    """The uninterrupted run (3 seeds, 2 generations, seed 7) every other run is compared with."""
    if not _REFERENCE:
        srv = clean_server()
        d = tmp_path_factory.mktemp("reference")
        cfg = write_config(d / "config.toml", srv.base_url)
        seeds = write_seeds(d / "seeds.jsonl")
        run = d / "run"
        before = srv.requests
        r = cli(*evolve_args(cfg, seeds, run))
        assert r.returncode == 0, r.stderr
        _REFERENCE.update(dir=d, cfg=cfg, seeds=seeds, run=run, archive=archive_key(run),
                          requests=srv.requests - before,
                          status=status_json(run))
        assert len(_REFERENCE["archive"]) > 10
    return _REFERENCE


# Run the CLI with os.replace patched: SIGKILL the process at the N-th replace of checkpoint.json,
# just before the rename ("before") or just after it ("after").
KILL_AT_REPLACE = r"""
import os, signal, sys
n_at, when = os.environ["EVOREFUSE_TEST_KILL_REPLACE"].split(":")
n_at, seen, real = int(n_at), [0], os.replace
def replace(src, dst, *a, **k):
    if str(dst).endswith("checkpoint.json"):
        seen[0] += 1
        if seen[0] == n_at and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        real(src, dst, *a, **k)
        if seen[0] == n_at and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return
    return real(src, dst, *a, **k)
os.replace = replace
from evorefuse.cli import cli
cli(args=sys.argv[1:], prog_name="evorefuse")
"""


def spawn_kill_at_replace(n: int, when: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", KILL_AT_REPLACE, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env(EVOREFUSE_TEST_KILL_REPLACE=f"{n}:{when}"),
                            stdin=subprocess.DEVNULL, start_new_session=True)
