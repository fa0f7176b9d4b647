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
from pathlib import Path
from typing import Any, Callable

from loopback_server import REFUSAL, LoopbackServer  # noqa: F401  (re-exported)

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


def responder(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    """Mutator, judge and target in one deterministic function of (messages, seed, index)."""
    system = next((str(m.get("content") or "") for m in messages if m.get("role") == "system"), "")
    last = next((str(m.get("content") or "") for m in reversed(messages) if m.get("role") == "user"),
                "")
    seed, index = params.get("seed"), params.get("index", 0)
    if system.startswith("You rewrite requests"):
        if "Request A:" in last:
            a, b = _core(_field(last, "Request A:")), _core(_field(last, "Request B:"))
            phrase = PHRASES[_h("rec", a, b, seed) % len(PHRASES)]
            tail = " ".join(b.split()[:4]).rstrip("?.")
            return json.dumps({"instruction": f"{phrase} {a.rstrip('?')}, thinking of {tail}?"})
        orig = _field(last, "Original request:")
        phrase = PHRASES[_h("mut", orig, seed, last[:40]) % len(PHRASES)]
        return json.dumps({"instruction": f"{phrase} {_core(orig)}"})
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
    return subprocess.run([sys.executable, "-m", "evorefuse", *args], capture_output=True,
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
