"""How well each cheap screen ranks candidates against the full K=10 ELBO, and what it costs.

Candidates: shipped seeds and framings of them (the kind of candidates a run produces), scored on the
embedded model at the default preset's sampling (temperature 0.3, top_p 0.995, 50 tokens). For each
screen: Spearman correlation with the full ELBO and with the full refusal rate, and target tokens
per candidate (prompt + completion) as a ratio of the full evaluation's, measured in the same run.

    .venv/bin/python benchmarks/fitness.py [--candidates 24] [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results import replace_section  # noqa: E402
from evorefuse.models.cache import RequestCache  # noqa: E402
from evorefuse.models.endpoint import Endpoint  # noqa: E402
from evorefuse.models.ledger import Ledger  # noqa: E402
from evorefuse.models.local import LocalBackend  # noqa: E402
from evorefuse.models.spec import LOCAL_SPEC  # noqa: E402
from evorefuse.operators.mutation import frame  # noqa: E402
from evorefuse.operators.strategies import PAPER_STRATEGIES  # noqa: E402
from evorefuse.scoring import embeddings  # noqa: E402
from evorefuse.scoring.fitness import FitnessEstimator, FitnessSettings  # noqa: E402
from evorefuse.scoring.refusal.factory import get_detector  # noqa: E402
from evorefuse.scoring.surrogate import RefusalSurrogate  # noqa: E402


def candidates(n: int) -> list[str]:
    seeds = [json.loads(l)["prompt"] for l in (ROOT / "seeds" / "default.jsonl").open()]
    rng = np.random.default_rng(0)
    picked = [seeds[i] for i in rng.choice(len(seeds), size=n // 2, replace=False)]
    out = list(picked)
    for i, s in enumerate(picked):
        # the extreme-emotion framings, the ones that move this target, so refusals occur
        strat = PAPER_STRATEGIES[i % 2]
        o = frame(s, "x", strat, i)
        out.append(o.prompt or s + " Please, I'm begging you.")
    return out[:n]


async def measure(n: int) -> dict:
    tmp = tempfile.mkdtemp()
    detector = get_detector("auto")
    settings = FitnessSettings(samples=10, temperature=0.3, top_p=0.995, max_tokens=50, seed=1)

    def estimator(name: str, s: FitnessSettings = settings) -> tuple[FitnessEstimator, Ledger]:
        ledger = Ledger()
        ep = Endpoint(LocalBackend(), LOCAL_SPEC, RequestCache(Path(tmp) / f"{name}.sqlite"), ledger)
        return FitnessEstimator([ep], detector, s), ledger

    cands = candidates(n)
    results: dict[str, dict] = {}
    full_est, full_ledger = estimator("full")
    t = time.perf_counter()
    full = [await full_est.score(c) for c in cands]
    full_time = time.perf_counter() - t
    elbo = np.array([s.fitness for s in full])
    rate = np.array([s.refusal_rate for s in full])
    full_tokens = sum(e.tokens_in + e.tokens_out for e in full_ledger.entries.values()) / n
    results["full ELBO (K=10, 50 tokens)"] = {"vals": np.asarray(elbo),
                                              "tokens": full_tokens, "seconds": full_time / n}

    async def screen(name: str, fn, s: FitnessSettings = settings) -> None:
        est, ledger = estimator(name, s)
        t0 = time.perf_counter()
        vals = np.array([await fn(est, c) for c in cands])
        dt = time.perf_counter() - t0
        tokens = sum(e.tokens_in + e.tokens_out for e in ledger.entries.values()) / n
        results[name] = {"vals": vals, "tokens": tokens, "seconds": dt / n}

    # What the default preset scores: one greedy response, graded by the opener mass.
    await screen("greedy graded ELBO, K=1 (the default preset: 1 call, 32 tokens, top-20 logprobs)",
                 lambda e, c: _k(e, c, 1),
                 FitnessSettings(samples=1, temperature=0.0, top_p=0.995, max_tokens=32, seed=1))
    await screen("opener mass (1 greedy call, 6 tokens, top-20 logprobs)",
                 lambda e, c: e.opener_screen(c))
    await screen("prefix screen (3 samples x 6 tokens)",
                 lambda e, c: e.prefix_screen(c, n=3, tokens=6))
    await screen("prefix screen (4 samples x 12 tokens)",
                 lambda e, c: e.prefix_screen(c, n=4, tokens=12))
    await screen("racing stage 1 (4 full samples)", lambda e, c: _k(e, c, 4))
    # Surrogate: leave-one-out on the other candidates' full refusal rates; costs no target tokens.
    emb = embeddings.embed(cands)
    preds = []
    for i in range(n):
        s = RefusalSurrogate(min_examples=8)
        for j in range(n):
            if j != i:
                s.add(emb[j], float(rate[j]))
        preds.append(float(s.predict(emb[i])[0]))
    results["surrogate (ridge on MiniLM, leave-one-out)"] = {
        "vals": np.asarray(preds), "tokens": 0.0, "seconds": 0.0}
    return {"n": n, "mean_refusal_rate": float(rate.mean()), "results": results,
            "elbo": np.asarray(elbo), "rate": np.asarray(rate)}


def rho(x: np.ndarray, y: np.ndarray, reps: int = 2000, seed: int = 0) -> str:
    """Spearman's rho with a 95% bootstrap interval over candidates; an estimator that gives
    every candidate the same value ranks nothing, which is said instead of printing nan."""
    if np.ptp(x) == 0:
        return "constant: ranks nothing"
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(reps):
        i = rng.integers(0, len(x), len(x))
        if np.ptp(x[i]) > 0 and np.ptp(y[i]) > 0:
            boot.append(spearmanr(x[i], y[i])[0])
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return f"{spearmanr(x, y)[0]:.2f} ({lo:.2f} to {hi:.2f})"


async def _k(est: FitnessEstimator, c: str, k: int) -> float:
    return (await est.score(c, k)).fitness


def table(m: dict) -> str:
    full_tokens = m["results"]["full ELBO (K=10, 50 tokens)"]["tokens"]
    lines = ["| estimator | Spearman vs full ELBO (95% interval) | Spearman vs full refusal rate | target tokens / candidate | ratio to full | s / candidate |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, r in m["results"].items():
        lines.append(f"| {name} | {rho(r['vals'], m['elbo'])} | {rho(r['vals'], m['rate'])} | "
                     f"{r['tokens']:.0f} | {r['tokens'] / full_tokens:.3f} | {r['seconds']:.2f} |")
    sur = m["results"]["surrogate (ridge on MiniLM, leave-one-out)"]["vals"]
    lines.append("")
    lines.append(f"The surrogate's rank correlation with the full ELBO: {rho(sur, m['elbo'])}; it "
                 "steers selection only when the interval lies above 0 "
                 "(`SURROGATE_STEERS` in evorefuse/evolution/policy.py; `benchmarks/surrogate.py` "
                 "measures it on real runs).")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--candidates", type=int, default=24)
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args()
    m = asyncio.run(measure(a.candidates))
    body = (f"Command: `.venv/bin/python benchmarks/fitness.py --candidates {a.candidates} --write`\n"
            f"Date: {time.strftime('%Y-%m-%d')}; nproc: {os.cpu_count()}; Python {platform.python_version()}; "
            f"target: embedded SmolLM2-135M at temperature 0.3, top_p 0.995; detector auto.\n\n"
            f"{m['n']} candidates (half shipped seeds, half framings of them); mean full refusal rate "
            f"{m['mean_refusal_rate']:.3f}. Spearman correlations are over these candidates; with few "
            f"refusals many ties make them noisy.\n\n" + table(m) + "\n")
    print(body)
    if a.write:
        replace_section("fitness", body)


if __name__ == "__main__":
    main()
