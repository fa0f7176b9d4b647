"""Efficiency: `--preset paper` against the default preset, same seeds, same target, one run.

For each preset: the refusal rate and mean fitness reached (best per lineage, from `status --json`),
target tokens and calls spent (the ledger), wall time; then both exported sets are re-measured by
`evaluate` with identical sampling, so the comparison does not depend on each preset's own
sampling temperature. Goal: the default reaches at least the paper preset's refusal rate with at
least 5x fewer target tokens.

    .venv/bin/python benchmarks/efficiency.py [--seeds 6] [--generations 3] [--write]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results import replace_section  # noqa: E402
from evorefuse.config import load_config  # noqa: E402
from evorefuse.evaluate import EvalSettings, evaluate  # noqa: E402


def cli(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "evorefuse", *args], cwd=ROOT, text=True,
                          capture_output=True, check=True).stdout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--generations", type=int, default=3)
    ap.add_argument("--offset", type=int, default=40, help="first shipped seed to use")
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    seeds = [json.loads(l) for l in (ROOT / "seeds" / "default.jsonl").open()]
    seeds = seeds[a.offset: a.offset + a.seeds]
    seed_file = tmp / "seeds.jsonl"
    seed_file.write_text("".join(json.dumps(s) + "\n" for s in seeds))
    out = {}
    for preset in ("paper", "fast"):
        run = tmp / preset
        t0 = time.perf_counter()
        cli("evolve", "--seeds", str(seed_file), "--generations", str(a.generations),
            "--preset", preset, "--run-dir", str(run), "-q")
        wall = time.perf_counter() - t0
        st = json.loads(cli("status", str(run), "--json"))
        tgt = st["ledger"].get("target", {})
        cli("export", str(run), "--format", "test", "-o", str(tmp / f"{preset}.jsonl"))
        rep = evaluate(tmp / f"{preset}.jsonl", cfg=load_config(None), targets=["local"],
                       settings=EvalSettings(samples=1, temperature=0.0, max_tokens=50),
                       detector="auto", cache_path=tmp / "eval.sqlite", embeddings=False)
        out[preset] = {
            "wall": wall, "rate": st["refusal_rate_best"], "seeds_rate": st["refusal_rate_seeds"],
            "fitness": st["mean_best_fitness"], "tokens": tgt.get("tokens_in", 0) + tgt.get("tokens_out", 0),
            "target_calls": tgt.get("calls", 0), "calls": st["calls"],
            "eval_rate": rep["refusal_rate"]["local"], "eval_ci": rep["ci"]["local"],
        }
    p, f = out["paper"], out["fast"]
    ratio = p["tokens"] / max(1, f["tokens"])
    lines = [
        f"Command: `.venv/bin/python benchmarks/efficiency.py --seeds {a.seeds} --generations "
        f"{a.generations} --write`",
        f"Date: {time.strftime('%Y-%m-%d')}; nproc: {os.cpu_count()}; Python {platform.python_version()}.",
        "",
        f"{a.seeds} shipped seeds (from #{a.offset}), {a.generations} generations, the embedded model in "
        "every role. `status` figures are each run's own measurements (paper: K=10 samples of 50 "
        "tokens at temperature 1.0; default: one greedy response of 32 tokens); `evaluate` "
        "re-measures both exported sets (best per lineage) the same way for both: greedy "
        "decoding, 50 tokens, detector auto. Target tokens are prompt plus completion tokens "
        "of the target role, from the ledger.",
        "",
        "| preset | seeds' refusal (status) | best refusal (status) | mean best fitness | evaluate refusal (same settings) | target tokens | target calls | all calls | wall s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in out.items():
        lo, hi = r["eval_ci"]
        lines.append(f"| {name} | {r['seeds_rate']:.3f} | {r['rate']:.3f} | {r['fitness']:.3f} | "
                     f"{r['eval_rate']:.3f} ({lo:.2f}-{hi:.2f}) | {r['tokens']} | {r['target_calls']} | "
                     f"{r['calls']} | {r['wall']:.0f} |")
    # The goal as the issue checks it: each preset's refusal rate from its own `status --json`.
    met = f["rate"] >= p["rate"] and ratio >= 5
    (plo, phi), (flo, fhi) = p["eval_ci"], f["eval_ci"]
    overlap = flo <= phi and plo <= fhi
    lines += ["", f"Target tokens, paper / default: **{ratio:.1f}x**. Goal (default refusal rate >= "
              f"paper's in `status --json`, with >= 5x fewer target tokens): "
              f"**{'met' if met else 'not met'}** ({f['rate']:.3f} vs {p['rate']:.3f}).",
              "", f"Cross-check with one protocol for both (`evaluate`, greedy): default "
              f"{f['eval_rate']:.3f} vs paper {p['eval_rate']:.3f}; "
              + ("the 95% intervals overlap, so at this size the two exported sets do not "
                 "differ measurably." if overlap else
                 ("the default is ahead." if f["eval_rate"] > p["eval_rate"] else
                  "the paper preset is ahead."))]
    body = "\n".join(lines)
    print(body)
    if a.write:
        replace_section("efficiency", body)


if __name__ == "__main__":
    main()
