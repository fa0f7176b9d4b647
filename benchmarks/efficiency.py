"""Efficiency: anytime curves of the default preset and `--preset paper` on the same seeds.

For each target (`local-guarded`, `local`), preset and repetition (`--seed` 0, 1, 2...), one run on
the same shipped seeds (benchmarks/rungrid.py: 3 of each of the 11 categories for 33), advanced a
generation at a time. A curve's point per generation: the target tokens the run has spent (prompt
plus completion, from the ledger) against the greedy refusal rate of each lineage's best prompt so
far (as the run's own fitness ranks them), all measured with one protocol (`evaluate`: greedy,
50 tokens, detector auto), so the presets' own sampling (paper: 10 samples at temperature 1;
default: one greedy answer) does not decide the comparison. Refusal: mean over seeds of the mean
over repetitions, 95% bootstrap interval over seeds; tokens: mean over repetitions, 95%
t-interval (benchmarks/intervals.py says why).

Goal (issue 15): the default reaches the paper preset's final refusal rate with >= 5x fewer target
tokens. Tokens to reach it: where the default's curve first reaches that rate, linear between
generations; the ratio's interval resamples seeds (paired: the same seeds for both presets), with
the token means held fixed.

    .venv/bin/python benchmarks/efficiency.py [--seeds 33] [--reps 3] [--generations 3]
        [--targets local-guarded local] [--work runs/bench/grid] [--write]

Sizes. Smoke (every step once, minutes): `--seeds 2 --reps 1 --generations 1 --work DIR`.
About 30 minutes on two idle cores (one seed per category):
`--seeds 11 --reps 3 --generations 2 --targets local-guarded --write`. `evolve --dry-run` bounds a
repetition at 4 min for the default preset and 17 min for the paper preset (63 min in all); this
script's previous version took about a third of the bound (6 seeds, 3 generations: 314 s against
16 min), and every generation here starts a process (about 10-15 s each). If it must be shorter,
`--generations 1` halves it. The defaults (issue 15's size, both targets) are bounded at about 9
hours: the paper preset's 10 samples of 50 tokens per candidate dominate.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.intervals import bootstrap, t_interval
from benchmarks.results import load_note, replace_section
from benchmarks.rungrid import DEFAULT_WORK, Grid, RunKey

PRESETS = ("fast", "paper")
PLOT = ROOT / "benchmarks" / "efficiency.png"


def curves(grid: Grid, target: str, preset: str, reps: int) -> tuple[np.ndarray, np.ndarray]:
    """tokens[rep, gen] and refused[seed, rep, gen] (0/1) of one target and preset."""
    keys = [RunKey(target, preset, r) for r in range(reps)]
    tokens = np.array([[p.target_tokens for p in grid.ensure(k)] for k in keys], dtype=float)
    best = [grid.best_per_generation(k) for k in keys]
    answers = grid.refusals([p for b in best for g in b.values() for p in g.values()], target)
    ids = [s["id"] for s in grid.seeds]
    refused = np.array([[[float(answers[grid.norm(b[g][sid])]) for g in range(grid.generations + 1)]
                         for b in best] for sid in ids])
    return tokens, refused


def fates(grid: Grid, target: str, preset: str, reps: int) -> str:
    """What became of one preset's offspring (generations 1 on, every repetition): how many the
    free checks and the judge let through, and the commonest reasons they did not. Why: a preset
    whose offspring are all rejected cannot raise the refusal rate, whatever it spends."""
    counts: Counter[str] = Counter()
    for r in range(reps):
        archive = grid.run_dir(RunKey(target, preset, r)) / "archive.jsonl"
        for line in archive.open(encoding="utf-8"):
            c = json.loads(line)
            if 1 <= c.get("generation", 0) <= grid.generations:
                reason = c.get("rejected") or c.get("status") or "?"
                counts["judge" if reason.startswith("judge:") else reason] += 1
    total = sum(counts.values())
    if not total:
        return f"{preset}: no offspring"
    benign = counts.pop("benign", 0) + counts.pop("skipped", 0)
    top = ", ".join(f"{k} {v / total:.0%}" for k, v in counts.most_common(4))
    return (f"{preset}: {total} offspring, {benign} ({benign / total:.0%}) passed the free checks "
            f"and the judge; rejected as {top}")


def tokens_to_reach(rate: float, tokens: np.ndarray, curve: np.ndarray) -> float:
    """Tokens at which `curve` (per generation) first reaches `rate`, linear in between; nan if
    it never does."""
    if curve[0] >= rate:
        return float(tokens[0])
    for g in range(1, len(curve)):
        if curve[g] >= rate:
            frac = (rate - curve[g - 1]) / (curve[g] - curve[g - 1])
            return float(tokens[g - 1] + frac * (tokens[g] - tokens[g - 1]))
    return float("nan")


def summarise(target: str, tok: dict, ref: dict, lines: list[str]) -> dict:
    """One target's table and goal line; returns what the plot needs."""
    gens = tok["fast"].shape[1]
    lines += [f"### target `{target}`", "",
              ("| preset | generation | target tokens (mean, 95% t over reps) | best refusal, "
              "greedy (mean, 95% bootstrap over seeds) |"), "|---|---:|---:|---:|"]
    plot = {}
    for preset in PRESETS:
        per_seed = ref[preset].mean(axis=1)  # [seed, gen]: mean over repetitions
        rows = []
        for g in range(gens):
            t = t_interval(tok[preset][:, g])
            r = bootstrap(lambda x: x.mean(), per_seed[:, g])
            rows.append((t, r))
            lines.append(f"| {preset} | {g} | {t[0]:,.0f} ({t[1]:,.0f}-{t[2]:,.0f}) | "
                         f"{r[0]:.3f} ({r[1]:.3f}-{r[2]:.3f}) |")
        plot[preset] = rows
    mean_tok = {p: tok[p].mean(axis=0) for p in PRESETS}
    fast_seed, paper_seed = ref["fast"].mean(axis=1), ref["paper"].mean(axis=1)

    def ratio(f: np.ndarray, p: np.ndarray) -> float:
        reach = tokens_to_reach(p[:, -1].mean(), mean_tok["fast"], f.mean(axis=0))
        return mean_tok["paper"][-1] / reach if not math.isnan(reach) else 0.0

    # Resample seed indices, so both presets' per-seed curves are resampled together.
    value, lo, hi = bootstrap(lambda i: ratio(fast_seed[i.astype(int)], paper_seed[i.astype(int)]),
                              np.arange(len(fast_seed)))
    gap = bootstrap(lambda f, p: f.mean() - p.mean(), fast_seed[:, -1], paper_seed[:, -1])
    reached = value > 0
    verdict = ("met, and the interval shows it" if lo >= 5 else
               "met on the means, but the interval reaches below 5x" if value >= 5 else "not met")
    if paper_seed[:, -1].mean() <= paper_seed[:, 0].mean():
        verdict = ("vacuous: the paper preset did not raise the refusal rate above the seeds', "
                   "so any run reaches it")
    lines += ["", f"Paper preset after {gens - 1} generation(s): refusal "
              f"{paper_seed[:, -1].mean():.3f} for {mean_tok['paper'][-1]:,.0f} target tokens. "
              + (f"The default reaches that rate at {mean_tok['paper'][-1] / value:,.0f} tokens: "
                 f"**{value:.1f}x fewer** (95% bootstrap over seeds {lo:.1f}-{hi:.1f}; 0 = a "
                 "resample where the default never reaches it)." if reached else
                 "The default does not reach that rate within the run."),
              (f"Final refusal, default minus paper: {gap[0]:+.3f} (95% {gap[1]:+.3f} to "
              f"{gap[2]:+.3f}); tokens, paper / default at the end: "
              f"{mean_tok['paper'][-1] / max(1.0, mean_tok['fast'][-1]):.1f}x."),
              f"Goal (default reaches the paper's rate with >= 5x fewer target tokens): **{verdict}**.",
              ""]
    return plot


def draw(plots: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(plots), figsize=(5.5 * len(plots), 4.2), squeeze=False)
    for ax, (target, plot) in zip(axes[0], plots.items()):
        for preset, style in zip(PRESETS, ("o-", "s--")):
            rows = plot[preset]
            x = np.array([t[0] for t, _ in rows])
            y = np.array([r[0] for _, r in rows])
            xerr = np.array([[t[0] - t[1] for t, _ in rows], [t[2] - t[0] for t, _ in rows]])
            yerr = np.array([[r[0] - r[1] for _, r in rows], [r[2] - r[0] for _, r in rows]])
            label = "default (fast)" if preset == "fast" else "paper"
            ax.errorbar(x, y, xerr=np.clip(xerr, 0, None), yerr=np.clip(yerr, 0, None), fmt=style,
                        capsize=3, label=label)
        ax.set_xscale("log")
        ax.set_xlabel("target tokens spent (prompt + completion)")
        ax.set_ylabel("best refusal rate so far (greedy)")
        ax.set_title(f"target: {target}")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=33)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--generations", type=int, default=3)
    ap.add_argument("--targets", nargs="+", default=["local-guarded", "local"])
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK)
    ap.add_argument("--write", action="store_true", help="update RESULTS.md and the plot")
    a = ap.parse_args()
    load0 = os.getloadavg()[0]
    grid = Grid(a.work, a.seeds, a.generations)
    t0 = time.perf_counter()
    command = (f".venv/bin/python benchmarks/efficiency.py --seeds {a.seeds} --reps {a.reps} "
               f"--generations {a.generations} --targets {' '.join(a.targets)} --write")
    print(command, flush=True)
    lines = [f"Command: `{command}`",
             (f"Date: {time.strftime('%Y-%m-%d')}; nproc: {os.cpu_count()}; Python "
             f"{platform.python_version()}; {load_note(load0)}."), "",
             (f"{len(grid.seeds)} shipped seeds ({grid.describe()}), {a.reps} repetition(s) "
             f"(`--seed` 0-{a.reps - 1}), {a.generations} generation(s), the embedded model as "
             "mutator and judge. Curves, intervals and the goal as the script's docstring defines "
             "them; the plot is `benchmarks/efficiency.png`."), ""]
    plots = {}
    for target in a.targets:
        tok, ref = {}, {}
        for preset in PRESETS:
            tok[preset], ref[preset] = curves(grid, target, preset, a.reps)
        plots[target] = summarise(target, tok, ref, lines)
        lines += ["Offspring, generations 1 on, all repetitions ('passed' includes those scored "
                  "or skipped for budget; a rejection reason per candidate):", "",
                  *(f"- {fates(grid, target, p, a.reps)}" for p in PRESETS), ""]
    wall = sum(p.wall_s for t in a.targets for pr in PRESETS for r in range(a.reps)
               for p in grid.curve(RunKey(t, pr, r))[: a.generations + 1])
    lines.append(f"Evolution wall time, all runs: {wall / 3600:.2f} h (this invocation: "
                 f"{(time.perf_counter() - t0) / 3600:.2f} h; runs reused from the work directory "
                 "cost nothing).")
    body = "\n".join(lines)
    print(body)
    if a.write:
        replace_section("efficiency", body)
        draw(plots, PLOT)


if __name__ == "__main__":
    main()
