"""Scale: many lineages against an OpenAI-compatible server with latency and scripted refusals.

The server (tests/loopback_server.py, in its own process so it does not share our CPU accounting)
plays mutator, judge and target: targets refuse with a probability that grows with trigger words in
the prompt (tests/test_reliability_common.py's responder). We run `evorefuse evolve` as a
subprocess and report: sustained requests/s, the client's CPU time per request (is the orchestrator
the bottleneck?), peak memory (RSS), and per generation the wall time, checkpoint time and the sizes
of checkpoint.json and archive.jsonl (incremental: the checkpoint must not grow with the archive).
The run is made with the default (int8 ONNX) sentence embeddings and, first, with the float torch
backend (`--baseline torch`), so the figures come with ratios measured on the same machine at the
same time: the machine may be shared.

    .venv/bin/python benchmarks/scale.py [--lineages 1000] [--generations 3] [--latency 0.1]
        [--baseline torch|none] [--write]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
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


@dataclass
class Outcome:
    backend: str
    wall: float
    cpu: float
    peak_mb: float
    served: int
    status: dict
    rows: list
    embed_cpu: float  # CPU seconds of the sentence embedder's thread (its model's load included)
    embedded: int  # texts the embedder encoded (cache misses)
    run_dir: Path  # inside a temporary folder, until `discard`: cheaper_embedders reads its archive


def discard(outcome: Outcome) -> None:
    """Delete a run's temporary folder (about 100 MB at 1,000 lineages: the request cache holds
    every response with its logprobs) once its figures are read."""
    shutil.rmtree(outcome.run_dir.parent, ignore_errors=True)


def run_once(a: argparse.Namespace, backend: str) -> Outcome:
    """One `evorefuse evolve` with the sentence embeddings on `backend`, against a fresh server."""
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
    env = {**os.environ, "EVOREFUSE_EMBED_BACKEND": backend}
    t0 = time.perf_counter()
    with (tmp / "stderr.txt").open("w+") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err, env=env)
        # wait4: this child's own CPU time and peak RSS (RUSAGE_CHILDREN would mix in earlier runs)
        _, wait_status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        err.seek(0)
        errors = err.read()
    server.stdin.close()
    served = json.loads(server.stdout.readline() or "{}").get("requests", 0)
    server.wait(timeout=30)
    code = os.waitstatus_to_exitcode(wait_status)
    if code != 0:
        sys.exit(f"evolve failed ({code}): {errors[-2000:]}")
    cpu = usage.ru_utime + usage.ru_stime
    events = [json.loads(l) for l in (run_dir / "events.jsonl").open()]
    rows = []
    prev_t = next(e["t"] for e in events if e["event"] == "start")
    for e in (e for e in events if e["event"] == "generation"):
        rows.append((e["generation"], e["t"] - prev_t, e.get("checkpoint_ms"),
                     e.get("checkpoint_bytes"), e.get("archive_bytes"), e["candidates"],
                     e.get("duplicates"), e["mean_best_refusal_rate"]))
        prev_t = e["t"]
    gens = [e for e in events if e["event"] == "generation"]
    embed_cpu = float(gens[-1].get("embedding_cpu_s", float("nan"))) if gens else float("nan")
    embedded = int(gens[-1].get("embedded_texts", 0)) if gens else 0
    status = json.loads(subprocess.run([sys.executable, "-m", "evorefuse", "status", str(run_dir),
                                        "--json"], cwd=ROOT, capture_output=True, text=True).stdout)
    return Outcome(backend, wall, cpu, usage.ru_maxrss / 1024, served, status, rows, embed_cpu,
                   embedded, run_dir)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lineages", type=int, default=1000)
    ap.add_argument("--generations", type=int, default=3)
    ap.add_argument("--latency", type=float, default=0.1)
    ap.add_argument("--concurrency", type=int, default=128)
    ap.add_argument("--baseline", choices=["torch", "none"], default="torch",
                    help="also run with this embedding backend, for ratios measured in the same run")
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--serve", type=float, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve is not None:
        serve(a.serve)
        return
    runs = ([run_once(a, a.baseline)] if a.baseline != "none" else []) + [run_once(a, "onnx")]
    for r in runs:
        discard(r)
    new = runs[-1]
    lines = [
        f"Command: `.venv/bin/python benchmarks/scale.py --lineages {a.lineages} --generations "
        f"{a.generations} --latency {a.latency} --write`",
        f"Date: {time.strftime('%Y-%m-%d')}; nproc: {os.cpu_count()}; Python {platform.python_version()}.",
        "",
        f"{a.lineages} lineages, {a.generations} generations, default preset, every role on the "
        f"loopback server ({a.latency * 1000:.0f} ms latency, its own process), concurrency "
        f"{a.concurrency}. Sentence embeddings: the default int8 ONNX backend"
        + (f", and the {a.baseline} backend (the float model as before) in the same run for the ratios."
           if len(runs) > 1 else "."),
        "",
        "| figure | " + " | ".join(r.backend for r in runs) + (" | ratio |" if len(runs) > 1 else " |"),
        "|---|" + "---:|" * (len(runs) + (len(runs) > 1)),
    ]

    def row(name: str, values: list[float], fmt: str, ratio: bool = True) -> None:
        cells = " | ".join(format(v, fmt) for v in values)
        tail = f" | {values[-1] / values[0]:.2f} |" if len(values) > 1 and ratio and values[0] else (
            " | |" if len(values) > 1 else " |")
        lines.append(f"| {name} | {cells}{tail}")

    row("requests sent", [r.served for r in runs], "d")
    row("wall time (s)", [r.wall for r in runs], ".1f")
    row("sustained requests/s", [r.served / r.wall for r in runs], ".1f")
    row("evorefuse CPU time, user+sys (s)", [r.cpu for r in runs], ".1f")
    row("evorefuse CPU per request (ms)", [r.cpu / max(1, r.served) * 1000 for r in runs], ".2f")
    # The embedder's share is its model thread's CPU time: exact for onnxruntime on one thread,
    # an undercount for torch, whose worker threads it does not see; so onnx only.
    pad = " |" * (len(runs) - 1)
    ms_embed = new.embed_cpu / max(1, new.served) * 1000
    lines.append(f"| of which the sentence embedder's thread (ms) |{pad} {ms_embed:.2f} |"
                 + (" |" if len(runs) > 1 else ""))
    lines.append(f"| of which everything else (ms) |{pad} "
                 f"{(new.cpu - new.embed_cpu) / max(1, new.served) * 1000:.2f} |"
                 + (" |" if len(runs) > 1 else ""))
    lines.append(f"| texts embedded per request; embedder CPU per text (ms) |{pad} "
                 f"{new.embedded / max(1, new.served):.2f}; "
                 f"{new.embed_cpu / max(1, new.embedded) * 1000:.2f} |"
                 + (" |" if len(runs) > 1 else ""))
    row("peak RSS of evorefuse (MB)", [r.peak_mb for r in runs], ".0f")
    row("refusal rate of the seeds", [r.status["refusal_rate_seeds"] for r in runs], ".3f", False)
    row("refusal rate of the best", [r.status["refusal_rate_best"] for r in runs], ".3f", False)
    lines += [
        f"| ideal requests/s at this concurrency (concurrency / latency) | {a.concurrency / a.latency:.0f} |"
        + (" |" * len(runs) if len(runs) > 1 else ""),
        "",
        f"Per generation ({new.backend}):",
        "",
        "| generation | wall s | checkpoint ms | checkpoint bytes | archive bytes | candidates | near-duplicates | mean best refusal |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for g, dt, ms, cb, ab, c, d, r in new.rows:
        lines.append(f"| {g} | {dt:.1f} | {ms if ms is not None else '-'} | {cb or '-'} | {ab or '-'} "
                     f"| {c} | {d if d is not None else '-'} | {r:.3f} |")
    if len(runs) > 1:
        lines.append("")
        lines.append(f"Near-duplicates per generation with {runs[0].backend}: "
                     + ", ".join(str(d) for *_, d, _ in runs[0].rows) + ".")
    body = "\n".join(lines)
    print(body)
    if a.write:
        replace_section("scale", body)


if __name__ == "__main__":
    main()
