"""Effectiveness offline: shipped seeds -> evolved set, against EvoRefuse-Test, in one run.

1. `evorefuse evolve` offline (every role on the embedded model, default preset) on `--seeds`
   shipped seeds spread evenly over the file (so every category is represented) for
   `--generations` generations; export the test set (best per lineage).
2. The local target's refusal rate on the seeds, on the evolved set and on an equally sized random
   sample of ../shared/reference/evo_test.jsonl, measured with the same detector and decoding in
   this run: greedy (the `evaluate` default, as XSTest and OR-Bench measure) and sampled (K samples
   at temperature 0.7, a second view that does not favour the greedy default preset).
3. Lexical diversity of each at equal size (EvoRefuse-Test: mean over 20 random subsets).

    .venv/bin/python benchmarks/effectiveness.py [--seeds 16] [--generations 3] [--samples 10] [--write]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
REFERENCE = ROOT.parent / "shared" / "reference" / "evo_test.jsonl"

from benchmarks.results import replace_section  # noqa: E402
from evorefuse.config import load_config  # noqa: E402
from evorefuse.evaluate import EvalSettings, evaluate  # noqa: E402
from evorefuse.scoring.diversity import lexical_diversity  # noqa: E402


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evorefuse", *args], cwd=ROOT, text=True,
                          capture_output=True, check=True)


def write_jsonl(path: Path, prompts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts))
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=16)
    ap.add_argument("--generations", type=int, default=3)
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args()
    if not REFERENCE.exists():
        sys.exit(f"reference data missing: {REFERENCE}")
    tmp = Path(tempfile.mkdtemp())
    shipped = [json.loads(l) for l in (ROOT / "seeds" / "default.jsonl").open()]
    seeds = shipped[:: max(1, len(shipped) // a.seeds)][: a.seeds]
    seed_file = tmp / "seeds.jsonl"
    seed_file.write_text("".join(json.dumps(s) + "\n" for s in seeds))
    run = tmp / "run"
    t0 = time.perf_counter()
    cli("evolve", "--seeds", str(seed_file), "--generations", str(a.generations), "--run-dir",
        str(run), "-q")
    evolve_s = time.perf_counter() - t0
    cli("export", str(run), "--format", "test", "-o", str(tmp / "evolved.jsonl"))
    evolved = [json.loads(l)["prompt"] for l in (tmp / "evolved.jsonl").open()]
    evo_all = [json.loads(l)["instruction"] for l in REFERENCE.open()]
    rng = random.Random(0)
    evo_sample = rng.sample(evo_all, len(evolved))
    sets = {"shipped seeds": [s["prompt"] for s in seeds], "evolved (this run)": evolved,
            "EvoRefuse-Test (random, same size)": evo_sample}
    cfg = load_config(None)
    greedy = EvalSettings(samples=1, temperature=0.0, max_tokens=50, seed=0)
    sampled = EvalSettings(samples=a.samples, temperature=0.7, max_tokens=50, seed=0)
    rows = []
    for i, (name, prompts) in enumerate(sets.items()):
        f = write_jsonl(tmp / f"set{i}.jsonl", prompts)
        g = evaluate(f, cfg=cfg, targets=["local"], settings=greedy, detector="auto",
                     cache_path=tmp / "eval.sqlite", responses=True, embeddings=False)
        rep = evaluate(f, cfg=cfg, targets=["local"], settings=sampled, detector="auto",
                       cache_path=tmp / "eval.sqlite", responses=True, embeddings=False)
        div = lexical_diversity(prompts)
        if name.startswith("EvoRefuse"):
            subs = [lexical_diversity(rng.sample(evo_all, len(evolved))) for _ in range(20)]
            div = {k: float(np.mean([s[k] for s in subs])) for k in ("msttr", "mtld", "hdd", "distinct_2")}
        lo, hi = rep["ci"]["local"]
        rows.append((name, len(prompts), g["refusal_rate"]["local"], rep["refusal_rate"]["local"],
                     lo, hi, div["msttr"], div["mtld"], div["hdd"], div["distinct_2"]))
    base = rows[0][2]
    lines = [
        f"Command: `.venv/bin/python benchmarks/effectiveness.py --seeds {a.seeds} --generations "
        f"{a.generations} --samples {a.samples} --write`",
        f"Date: {time.strftime('%Y-%m-%d')}; nproc: {os.cpu_count()}; Python {platform.python_version()}.",
        "",
        f"Offline run: {a.seeds} shipped seeds, {a.generations} generations, default preset, the "
        f"embedded SmolLM2-135M in every role; evolve took {evolve_s:.0f} s. Refusal rates of the "
        f"local target, detector auto, 50 tokens: greedy (one response per prompt) and sampled "
        f"({a.samples} per prompt at temperature 0.7, top_p 0.995, with a 95% Wilson interval), all "
        "measured in this run. MSTTR uses an 800-token window, so on sets this small it is the "
        "plain type-token ratio of the set.",
        "",
        "| set | n | refusal greedy | ratio to seeds | refusal sampled | 95% CI | MSTTR | MTLD | HD-D | distinct-2 |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for name, n, g, r, lo, hi, m, mt, h, d2 in rows:
        ratio = f"{g / base:.1f}x" if base > 0 else ("inf" if g > 0 else "-")
        lines.append(f"| {name} | {n} | {g:.3f} | {ratio} | {r:.3f} | {lo:.3f}-{hi:.3f} | {m:.3f} | "
                     f"{mt:.1f} | {h:.3f} | {d2:.3f} |")
    body = "\n".join(lines)
    print(body)
    if a.write:
        replace_section("effectiveness", body)


if __name__ == "__main__":
    main()
