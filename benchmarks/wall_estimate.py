"""Is the dry run's wall-time figure an upper bound, and how loose? And the embedded model's speed.

Two measurements on this machine, in the same run:
1. the embedded SmolLM2's prefill and decode rates (tokens/s, median of repeats, with the range),
   against the constants `evorefuse.estimate` assumes;
2. `evolve` on a few shipped seeds against `local-guarded`: the dry run's wall-time bound (the
   same library call the command makes) and the real wall time of the run; their ratio must stay
   below 1 for the bound to hold.

    .venv/bin/python benchmarks/wall_estimate.py [--seeds 8] [--generations 2] [--write]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results import replace_section
from evorefuse import estimate
from evorefuse.config import load_config


def model_rates(repeats: int) -> tuple[list[float], list[float]]:
    """Prefill and decode tokens/s of the embedded model, as LocalBackend runs it."""
    from evorefuse.models.local import _Engine

    llm = _Engine.get().llm
    prompt = ("Explain, step by step and with examples, how a home gardener can keep aphids off "
              "roses without harming bees. ") * 12
    ids = llm.tokenize(prompt.encode())
    prefill, decode = [], []
    for _ in range(repeats):
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(ids)
        prefill.append(len(ids) / (time.perf_counter() - t0))
        n, t0 = 0, time.perf_counter()
        for tok in llm.generate([], temp=0.0, reset=False):
            n += 1
            if n >= 64 or tok == llm.token_eos():
                break
        decode.append(n / (time.perf_counter() - t0))
    return prefill, decode


def evolve_bound_and_real(n_seeds: int, generations: int) -> tuple[float, float]:
    tmp = Path(tempfile.mkdtemp())
    seeds = tmp / "seeds.jsonl"
    lines = (ROOT / "seeds" / "default.jsonl").read_text().splitlines()
    seeds.write_text("\n".join(lines[::max(1, len(lines) // n_seeds)][:n_seeds]) + "\n")
    cfg = load_config(None).with_run_limits(generations=generations).with_overrides(
        targets=("local-guarded",))
    bound = estimate.wall_seconds(estimate.dry_run_estimate(cfg, n_seeds), cfg)
    cmd = [sys.executable, "-m", "evorefuse", "evolve", "--seeds", str(seeds), "--generations",
           str(generations), "--target", "local-guarded", "--run-dir", str(tmp / "run"), "-q",
           "-y"]
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return bound, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--generations", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args()
    load = os.getloadavg()[0]
    prefill, decode = model_rates(a.repeats)
    bound, real = evolve_bound_and_real(a.seeds, a.generations)
    load_after = os.getloadavg()[0]

    def rate(xs: list[float], assumed: float) -> str:
        return (f"| {statistics.median(xs):.0f} | {min(xs):.0f}-{max(xs):.0f} | {assumed:.0f} | "
                f"{statistics.median(xs) / assumed:.2f} |")

    body = f"""Command: `.venv/bin/python benchmarks/wall_estimate.py --seeds {a.seeds} --generations {a.generations} --repeats {a.repeats} --write`
Date: {time.strftime('%Y-%m-%d')}; nproc: {os.cpu_count()}; Python {platform.python_version()}; load average (1 min) {load:.1f} before, {load_after:.1f} after.

The embedded model (SmolLM2-135M, llama.cpp, as the local backend runs it), {a.repeats} repeats:

| rate (tokens/s) | median | range | assumed by the dry run | measured / assumed |
|---|---:|---:|---:|---:|
| prefill {rate(prefill, estimate.LOCAL_PREFILL_TOKENS_PER_S)}
| decode {rate(decode, estimate.LOCAL_DECODE_TOKENS_PER_S)}

`evolve` on {a.seeds} shipped seeds x {a.generations} generations against `local-guarded`:
the dry run's bound {bound:.0f} s, the real run {real:.0f} s, real / bound = {real / bound:.2f}
({'the bound held' if real <= bound else 'THE BOUND WAS EXCEEDED'}; the bound assumes every call
writes up to its token limit, which most do not).
"""
    print(body)
    if a.write:
        replace_section("wall_estimate", body)


if __name__ == "__main__":
    main()
