"""Scale: many lineages against an OpenAI-compatible server with latency and scripted refusals.

The server (tests/loopback_server.py, in its own process so it does not share our CPU accounting)
plays mutator, judge and target: targets refuse with a probability that grows with trigger words in
the prompt (tests/test_reliability_common.py's responder). We run `evorefuse evolve` as a
subprocess and report: sustained requests/s, the client's CPU time per request (is the orchestrator
the bottleneck?), peak memory (RSS), and per generation the wall time, checkpoint time and the sizes
of checkpoint.json and archive.jsonl (incremental: the checkpoint must not grow with the archive).

    .venv/bin/python benchmarks/scale.py [--lineages 1000] [--generations 3] [--latency 0.1] [--write]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from benchmarks.results import replace_section  # noqa: E402


def serve(latency: float) -> None:
    from loopback_server import LoopbackServer
    from test_reliability_common import responder

    with LoopbackServer(latency=latency, responder=responder, seed=0) as srv:
        print(srv.base_url, flush=True)
        sys.stdin.read()
        print(json.dumps({"requests": srv.requests}), flush=True)


def seeds_file(path: Path, n: int) -> Path:
    base = [json.loads(l) for l in (ROOT / "seeds" / "default.jsonl").open()]
    with path.open("w") as f:
        for i in range(n):
            s = base[i % len(base)]
            f.write(json.dumps({"id": f"s{i}", "prompt": f"{s['prompt']} (case {i})",
                                "category": s["category"]}) + "\n")
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lineages", type=int, default=1000)
    ap.add_argument("--generations", type=int, default=3)
    ap.add_argument("--latency", type=float, default=0.1)
    ap.add_argument("--concurrency", type=int, default=128)
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--serve", type=float, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve is not None:
        serve(a.serve)
        return
    tmp = Path(tempfile.mkdtemp())
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(a.latency)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    base_url = server.stdout.readline().strip()
    cfg = tmp / "scale.toml"
    cfg.write_text(f"""
[run]
max_concurrency = {a.concurrency}
[roles]
mutator = "fake"
judge = "fake"
targets = ["fake"]
responder = "fake"
detector = "pattern"
[models.fake]
base_url = "{base_url}"
model = "fake"
api_key_env = ""
max_concurrency = {a.concurrency}
price_in = 0.15
price_out = 0.6
""")
    run_dir = tmp / "run"
    cmd = [sys.executable, "-m", "evorefuse", "evolve", "-c", str(cfg), "--seeds",
           str(seeds_file(tmp / "seeds.jsonl", a.lineages)), "--generations", str(a.generations),
           "--run-dir", str(run_dir), "-q"]
    t0 = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    server.stdin.close()
    served = json.loads(server.stdout.readline() or "{}").get("requests", 0)
    server.wait(timeout=30)
    if proc.returncode != 0:
        sys.exit(f"evolve failed ({proc.returncode}): {proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    peak_mb = after.ru_maxrss / 1024
    events = [json.loads(l) for l in (run_dir / "events.jsonl").open()]
    gens = [e for e in events if e["event"] == "generation"]
    rows = []
    prev_t = next(e["t"] for e in events if e["event"] == "start")
    for e in gens:
        rows.append((e["generation"], e["t"] - prev_t, e.get("checkpoint_ms"),
                     e.get("checkpoint_bytes"), e.get("archive_bytes"), e["candidates"],
                     e["mean_best_refusal_rate"]))
        prev_t = e["t"]
    status = json.loads(subprocess.run([sys.executable, "-m", "evorefuse", "status", str(run_dir),
                                        "--json"], cwd=ROOT, capture_output=True, text=True).stdout)
    calls = status["calls"]
    lines = [
        f"Command: `.venv/bin/python benchmarks/scale.py --lineages {a.lineages} --generations "
        f"{a.generations} --latency {a.latency} --write`",
        f"Date: {time.strftime('%Y-%m-%d')}; nproc: {os.cpu_count()}; Python {platform.python_version()}.",
        "",
        f"{a.lineages} lineages, {a.generations} generations, default preset, every role on the "
        f"loopback server ({a.latency * 1000:.0f} ms latency, its own process), concurrency "
        f"{a.concurrency}. Requests sent: {served} (ledger: {calls} paid calls, "
        f"{status['cache_hits']} cache hits).",
        "",
        "| figure | value |", "|---|---:|",
        f"| wall time | {wall:.1f} s |",
        f"| sustained requests/s | {served / wall:.1f} |",
        f"| ideal requests/s at this concurrency (concurrency / latency) | {a.concurrency / a.latency:.0f} |",
        f"| evorefuse CPU time (user+sys) | {cpu:.1f} s ({cpu / wall * 100:.0f}% of one core over the run) |",
        f"| evorefuse CPU per request | {cpu / max(1, served) * 1000:.2f} ms |",
        f"| peak RSS of evorefuse | {peak_mb:.0f} MB |",
        f"| refusal rate seeds -> best | {status['refusal_rate_seeds']:.3f} -> {status['refusal_rate_best']:.3f} |",
        "",
        "| generation | wall s | checkpoint ms | checkpoint bytes | archive bytes | candidates | mean best refusal |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for g, dt, ms, cb, ab, c, r in rows:
        lines.append(f"| {g} | {dt:.1f} | {ms if ms is not None else '-'} | {cb or '-'} | {ab or '-'} | {c} | {r:.3f} |")
    body = "\n".join(lines)
    print(body)
    if a.write:
        replace_section("scale", body)


if __name__ == "__main__":
    main()
