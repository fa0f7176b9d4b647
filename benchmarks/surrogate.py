"""Does the refusal surrogate rank candidates it has not been fitted on? Measured on real runs.

Every candidate scored after the surrogate has seen enough examples carries its prediction
(`surrogate` in archive.jsonl), made before the candidate was scored and so before the surrogate
learnt from it: a held-out prediction by construction. This script collects, from the given run
directories, every candidate with both a prediction and a full score, and reports Spearman's rank
correlation between them (per run and pooled), with a 95% bootstrap interval. The surrogate steers
selection only when this is clearly positive (`evorefuse.evolution.policy.SURROGATE_STEERS`).

    .venv/bin/python benchmarks/surrogate.py RUN_DIR... [--write]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results import replace_section
from evorefuse.evolution.candidate import Candidate
from evorefuse.runstore import RunStore


def pairs(run: Path) -> list[tuple[float, float]]:
    out = []
    for rec in RunStore(run).archive():
        c = Candidate.from_json(rec)
        if c.surrogate is not None and c.score is not None:
            out.append((c.surrogate, c.score.p_refusal))
    return out


def bootstrap(xy: np.ndarray, reps: int = 2000, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    rhos = []
    for _ in range(reps):
        s = xy[rng.integers(0, len(xy), len(xy))]
        if np.ptp(s[:, 0]) > 0 and np.ptp(s[:, 1]) > 0:
            rhos.append(spearmanr(s[:, 0], s[:, 1]).statistic)
    lo, hi = np.percentile(rhos, [2.5, 97.5])
    return float(lo), float(hi)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args()
    rows, pooled = [], []
    for run in a.runs:
        xy = pairs(run)
        pooled += xy
        if len(xy) >= 5:
            arr = np.array(xy)
            rho = spearmanr(arr[:, 0], arr[:, 1]).statistic
            lo, hi = bootstrap(arr)
            rows.append(f"| {run.name} | {len(xy)} | {rho:.2f} | {lo:.2f} to {hi:.2f} |")
        else:
            rows.append(f"| {run.name} | {len(xy)} | too few | |")
    arr = np.array(pooled) if pooled else np.zeros((0, 2))
    if len(arr) >= 5:
        rho = spearmanr(arr[:, 0], arr[:, 1]).statistic
        lo, hi = bootstrap(arr)
        verdict = ("positive: it could steer" if lo > 0 else
                   "not shown positive: it stays off (SURROGATE_STEERS = False)")
        rows.append(f"| all runs | {len(arr)} | {rho:.2f} | {lo:.2f} to {hi:.2f} |")
    else:
        verdict = "too few predictions to measure"
    body = f"""Command: `.venv/bin/python benchmarks/surrogate.py {' '.join(str(r) for r in a.runs)} --write`
Date: {time.strftime('%Y-%m-%d')}.

Held-out predictions of the ridge surrogate (each made before its candidate was scored) against
the candidate's measured P(refusal); Spearman's rho with a 95% bootstrap interval (2,000 resamples
of candidates; candidates of one lineage are not independent, so the interval is optimistic).

| run | candidates | Spearman rho | 95% interval |
|---|---:|---:|---|
{chr(10).join(rows)}

Verdict: {verdict}.
"""
    print(body)
    if a.write:
        replace_section("surrogate", body)


if __name__ == "__main__":
    main()
