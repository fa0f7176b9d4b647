"""Embeddings: the int8 ONNX MiniLM against the float32 torch one, on the same real texts.

What the engine decides with embeddings, decided by both backends on the same texts:
- near-duplicate: a text's highest cosine similarity to any other text of the pool is >= 0.95
  (`evolution.near_duplicate`); and the export's greedy dedup (`near_duplicates`) keeps the same set;
- off-topic: a rewrite's cosine similarity to its seed is < 0.3 (the engine's `min_seed_similarity`),
  over each text paired with its own rewrite and with the rewrite of another text of its source.
Texts: the shipped seeds, XSTest's 450 prompts and EvoRefuse-Test's 582 items (read from
../shared/reference/), each also rewritten the way the engine frames an incumbent (one of the
strategies' framing templates, chosen by position; every other text framed twice). Reported: the
decisions' agreement (all texts, and only the hard ones within 0.05 of the threshold), the
Pearson correlation of the cosine similarities over all pairs, and for each threshold the value the
int8 backend would need, fitted on two sources and measured on the third. Also the CPU per text of
each backend on the whole pool (alternating runs; the machine may be shared, so read the ratio).

    .venv/bin/python benchmarks/embeddings.py [--write]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results import load_note, replace_section  # noqa: E402
from evorefuse.config import EvolutionSection  # noqa: E402
from evorefuse.evolution.gate import MIN_SEED_SIMILARITY as SHIPPED_MIN_SEED_SIMILARITY  # noqa: E402
from evorefuse.operators.strategies import PAPER_STRATEGIES  # noqa: E402
from evorefuse.paths import REFERENCE_DIR  # noqa: E402
from evorefuse.scoring.embeddings import load_encoder, near_duplicates  # noqa: E402

REFERENCE = REFERENCE_DIR
NEAR_DUPLICATE = 0.95  # the float model's thresholds: what the int8 decisions should reproduce
MIN_SEED_SIMILARITY = 0.3
SHIPPED_NEAR_DUPLICATE = EvolutionSection().near_duplicate  # what the engine uses with int8
HARD_BAND = 0.05


class HeldOut(NamedTuple):
    """Agreement with the float decisions on one held-out source, at three int8 thresholds."""

    source: str
    nd_threshold: float  # near-duplicate threshold fitted on the other two sources
    nd_fitted: float
    nd_float: float
    ot_threshold: float  # off-topic threshold fitted on the other two sources
    ot_fitted: float
    ot_float: float
    nd_shipped: float
    ot_shipped: float


def sources() -> dict[str, list[str]]:
    seeds = [json.loads(l)["prompt"] for l in (ROOT / "seeds" / "default.jsonl").open()]
    with (REFERENCE / "xstest_prompts.csv").open(newline="") as f:
        xstest = [r["prompt"] for r in csv.DictReader(f)]
    evo = [json.loads(l)["instruction"] for l in (REFERENCE / "evo_test.jsonl").open()]
    return {"seeds": seeds, "xstest": xstest, "evo_test": evo}


def framed(texts: list[str]) -> list[str]:
    """Each text framed like an engine incumbent; every other one twice (a second generation)."""
    templates = [t for s in PAPER_STRATEGIES for t in s.framings]
    out = []
    for i, t in enumerate(texts):
        x = templates[i % len(templates)].replace("{x}", t)
        if i % 2:
            x = templates[(i * 7 + 3) % len(templates)].replace("{x}", x)
        out.append(x)
    return out


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def agreement(old: np.ndarray, new: np.ndarray, thr: float, below: bool = False) -> tuple[float, int, int]:
    """Share of equal decisions (value >= thr, or < thr if `below`), and the decisions flipped
    each way (true by old only, true by new only)."""
    a, b = decisions(old, thr, below), decisions(new, thr, below)
    return float(np.mean(a == b)) if len(a) else float("nan"), int(np.sum(a & ~b)), int(np.sum(~a & b))


def decisions(values: np.ndarray, thr: float, below: bool) -> np.ndarray:
    return values < thr if below else values >= thr


def best_threshold(old: np.ndarray, new: np.ndarray, thr: float, below: bool) -> float:
    """The threshold on the new values that best reproduces the old decisions at `thr` (within
    +-0.05; ties go to the value nearest `thr`)."""
    target = decisions(old, thr, below)
    grid = np.round(np.arange(thr - 0.05, thr + 0.0501, 0.005), 3)
    scores = [float(np.mean(target == decisions(new, t, below))) for t in grid]
    best = max(scores)
    return float(min((t for t, s in zip(grid, scores) if s == best), key=lambda t: abs(t - thr)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--rounds", type=int, default=3, help="alternating timing rounds per backend")
    a = ap.parse_args()
    load0 = os.getloadavg()[0]
    if not (REFERENCE / "evo_test.jsonl").is_file():
        sys.exit(f"reference data missing: {REFERENCE} (XSTest and EvoRefuse-Test are needed)")
    src = sources()
    pool: list[str] = []
    origin: list[str] = []
    pairs: list[tuple[int, int, str]] = []  # (text, rewrite, kind)
    for name, texts in src.items():
        base = len(pool)
        pool += texts + framed(texts)
        origin += [name] * (2 * len(texts))
        n = len(texts)
        for i in range(n):
            pairs.append((base + i, base + n + i, "own"))
            pairs.append((base + i, base + n + (i * 31 + 17) % n, "other"))
    encoders = {name: load_encoder(name) for name in ("torch", "onnx")}
    emb: dict[str, np.ndarray] = {}
    cpu: dict[str, list[float]] = {name: [] for name in encoders}
    for _ in range(a.rounds):
        for name, enc in encoders.items():
            t0 = cpu_seconds()
            emb[name] = np.asarray(enc.encode(pool, batch_size=64), dtype=np.float32)
            cpu[name].append(cpu_seconds() - t0)
    old, new = emb["torch"], emb["onnx"]
    sim_old, sim_new = old @ old.T, new @ new.T
    iu = np.triu_indices(len(pool), k=1)
    corr = float(np.corrcoef(sim_old[iu], sim_new[iu])[0, 1])
    diff = np.abs(sim_old[iu] - sim_new[iu])
    np.fill_diagonal(sim_old, -1.0)
    np.fill_diagonal(sim_new, -1.0)
    nearest_old, nearest_new = sim_old.max(axis=1), sim_new.max(axis=1)
    i, j = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    topic_old, topic_new = sim_old[i, j], sim_new[i, j]
    dedup_old = set(near_duplicates(old, NEAR_DUPLICATE))
    dedup_new = set(near_duplicates(new, NEAR_DUPLICATE))
    org = np.array(origin)
    pair_src = org[i]

    nd = agreement(nearest_old, nearest_new, NEAR_DUPLICATE)
    hard = np.abs(nearest_old - NEAR_DUPLICATE) <= HARD_BAND
    nd_hard = agreement(nearest_old[hard], nearest_new[hard], NEAR_DUPLICATE)
    ot = agreement(topic_old, topic_new, MIN_SEED_SIMILARITY, below=True)
    hard_t = np.abs(topic_old - MIN_SEED_SIMILARITY) <= HARD_BAND
    ot_hard = agreement(topic_old[hard_t], topic_new[hard_t], MIN_SEED_SIMILARITY, below=True)

    # Threshold the int8 backend would need: fitted on two sources, measured on the third.
    cross = []
    for held in src:
        fit_n, fit_t = org != held, pair_src != held
        t_nd = best_threshold(nearest_old[fit_n], nearest_new[fit_n], NEAR_DUPLICATE, False)
        t_ot = best_threshold(topic_old[fit_t], topic_new[fit_t], MIN_SEED_SIMILARITY, True)
        held_n, held_t = org == held, pair_src == held
        cross.append(HeldOut(held, t_nd,
                      float(np.mean(decisions(nearest_old[held_n], NEAR_DUPLICATE, False)
                                    == decisions(nearest_new[held_n], t_nd, False))),
                      agreement(nearest_old[held_n], nearest_new[held_n], NEAR_DUPLICATE)[0],
                      t_ot,
                      float(np.mean(decisions(topic_old[held_t], MIN_SEED_SIMILARITY, True)
                                    == decisions(topic_new[held_t], t_ot, True))),
                      agreement(topic_old[held_t], topic_new[held_t], MIN_SEED_SIMILARITY, below=True)[0],
                      float(np.mean(decisions(nearest_old[held_n], NEAR_DUPLICATE, False)
                                    == decisions(nearest_new[held_n], SHIPPED_NEAR_DUPLICATE, False))),
                      float(np.mean(decisions(topic_old[held_t], MIN_SEED_SIMILARITY, True)
                                    == decisions(topic_new[held_t], SHIPPED_MIN_SEED_SIMILARITY, True)))))

    ms = {k: [c / len(pool) * 1000 for c in v] for k, v in cpu.items()}
    ratio = [o / t for o, t in zip(ms["onnx"], ms["torch"])]
    lines = [
        f"Command: `.venv/bin/python benchmarks/embeddings.py --rounds {a.rounds} --write`",
        f"Date: {time.strftime('%Y-%m-%d')}; nproc: {os.cpu_count()}; Python {platform.python_version()}; "
        f"{load_note(load0)} (read the ratio: the machine may be shared).",
        "",
        f"{len(pool)} texts: {', '.join(f'{k} {len(v)}' for k, v in src.items())}, each also framed "
        f"like an engine incumbent. Old: sentence-transformers on torch, float32 (threads as the "
        f"process sets them). New: the int8 ONNX export on onnxruntime, 1 thread.",
        "",
        "| figure | value |", "|---|---:|",
        f"| CPU per text, torch float32 (mean of {a.rounds}) | {np.mean(ms['torch']):.2f} ms |",
        f"| CPU per text, onnx int8 (mean of {a.rounds}) | {np.mean(ms['onnx']):.2f} ms |",
        f"| CPU ratio onnx / torch (min..max over rounds) | {np.mean(ratio):.2f} ({min(ratio):.2f}..{max(ratio):.2f}) |",
        f"| cosine similarity, all {len(iu[0])} pairs: Pearson r | {corr:.4f} |",
        f"| cosine similarity, all pairs: mean / max absolute difference | {diff.mean():.4f} / {diff.max():.4f} |",
        f"| near-duplicate (nearest >= {NEAR_DUPLICATE}): agreement, all {len(pool)} texts | "
        f"{nd[0]:.4f} (dup only by old {nd[1]}, only by new {nd[2]}) |",
        f"| near-duplicate: agreement on the {int(hard.sum())} texts within {HARD_BAND} of the threshold | {nd_hard[0]:.4f} |",
        f"| export dedup (greedy, {NEAR_DUPLICATE}): dropped by old / new / both | "
        f"{len(dedup_old)} / {len(dedup_new)} / {len(dedup_old & dedup_new)} |",
        f"| off-topic (seed similarity < {MIN_SEED_SIMILARITY}): agreement, all {len(pairs)} pairs | "
        f"{ot[0]:.4f} (off-topic only by old {ot[1]}, only by new {ot[2]}) |",
        f"| off-topic: agreement on the {int(hard_t.sum())} pairs within {HARD_BAND} of the threshold | {ot_hard[0]:.4f} |",
        "",
        "Thresholds for the int8 backend, fitted on two sources (best agreement with the old decisions "
        "at the float thresholds; ties go to the float value) and measured on the held-out one, beside "
        f"the float thresholds themselves and the shipped int8 ones (near-duplicate {SHIPPED_NEAR_DUPLICATE}, "
        f"off-topic {SHIPPED_MIN_SEED_SIMILARITY}):",
        "",
        "| held out | near-dup threshold | agreement (fitted / float / shipped) | off-topic threshold "
        "| agreement (fitted / float / shipped) |",
        "|---|---:|---:|---:|---:|",
    ]
    for c in cross:
        lines.append(f"| {c.source} | {c.nd_threshold:.3f} | {c.nd_fitted:.4f} / {c.nd_float:.4f} / "
                     f"{c.nd_shipped:.4f} | {c.ot_threshold:.3f} | {c.ot_fitted:.4f} / {c.ot_float:.4f} / "
                     f"{c.ot_shipped:.4f} |")
    as_good = sum(c.nd_shipped >= c.nd_float and c.ot_shipped >= c.ot_float for c in cross)
    spread = max(max(abs(c.nd_shipped - c.nd_float), abs(c.ot_shipped - c.ot_float)) for c in cross)
    lines += ["", f"The shipped int8 thresholds agree with the float decisions at least as well as the "
              f"float thresholds on {as_good} of {len(cross)} held-out sources (both checks); the largest "
              f"difference either way is {spread:.4f}."]
    body = "\n".join(lines)
    print(body)
    if a.write:
        replace_section("embeddings", body)


if __name__ == "__main__":
    main()
