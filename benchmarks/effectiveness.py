"""Effectiveness: evolved sets against the seeds they grew from and against EvoRefuse-Test.

For each target (`local-guarded`, `local`) and repetition (`--seed` 0, 1, 2...), the default
preset evolves the same shipped seeds (benchmarks/rungrid.py: 3 of each of the 11 categories for
33; these runs are the efficiency benchmark's default-preset runs) and the test set is exported
(`export --format test`: the best evolved instruction of each lineage). Every set is measured on
both targets with one protocol (`evaluate`: greedy, 50 tokens, detector auto):

- the seeds;
- the evolved set: in-sample on the target it was evolved against (selected on that target and
  detector, so optimistic), held-out on the other target;
- EvoRefuse-Test (../shared/reference/evo_test.jsonl): its refusal rate on all its items, so the
  comparison carries only the evolved sets' uncertainty and the benchmark's own, not a sampling
  draw's; its lexical diversity on a random sample of the evolved set's size (a new sample per
  repetition), because those measures depend on the size of the set.

Intervals: 95% percentile bootstrap over seeds (per seed, the mean over repetitions; paired where
two figures share seeds) and over EvoRefuse-Test items (benchmarks/intervals.py says why).
Goals (issue 15), against `local-guarded`: refusal rate >= 3x the seeds' and above EvoRefuse-Test's.

    .venv/bin/python benchmarks/effectiveness.py [--seeds 33] [--reps 3] [--generations 3]
        [--targets local-guarded local] [--work runs/bench/grid] [--write] [--section NAME]

Sizes. Smoke: `--seeds 2 --reps 1 --generations 1 --work DIR`. About 30 minutes on two idle
cores, or about 10 after benchmarks/efficiency.py ran with the same `--seeds`, `--generations`
and `--work` (its default-preset runs on `local-guarded` are reused; the runs on `local` and the
measurements are added):
`--seeds 11 --reps 3 --generations 2 --targets local-guarded local --write`.
Use the same `--generations` as the efficiency run: a run is exported as it ends. Measuring
EvoRefuse-Test's 582 items on a target the first time adds about 10 minutes (then cached in the
work directory), smoke runs included. What
RESULTS.md holds: the goals measured with 66 seeds (6 of each category) against `local-guarded`
(about 1.2 hours: 3 runs of 20 minutes, then the measurements), `--seeds 66 --reps 3
--generations 5 --targets local-guarded --write`; and both targets, each held out for the
other, with 33 seeds, `--seeds 33 --reps 3 --generations 5 --targets local-guarded local --write
--section 'effectiveness: both targets, 33 seeds'`; and 132 seeds (12 per category) in one
repetition, to narrow the seeds' own rate (about 50 minutes), `--seeds 132 --reps 1
--generations 5 --targets local-guarded --write --section 'effectiveness: 132 seeds, 1 repetition'`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from evorefuse.paths import REFERENCE_DIR  # noqa: E402

REFERENCE = REFERENCE_DIR / "evo_test.jsonl"

from benchmarks.intervals import bootstrap, nanmean
from benchmarks.results import load_note, replace_section
from benchmarks.rungrid import DEFAULT_WORK, Grid, RunKey, cli
from evorefuse.scoring.diversity import lexical_diversity

DIVERSITY = ("msttr", "mtld", "hdd", "distinct_2")


def evolved_sets(grid: Grid, target: str, reps: int) -> list[dict[str, str]]:
    """Per repetition, the exported test set as {seed id: evolved prompt}."""
    sets = []
    for rep in range(reps):
        key = RunKey(target, "fast", rep)
        grid.ensure(key)
        out = grid.run_dir(key).with_suffix(".test.jsonl")
        cli("export", str(grid.run_dir(key)), "--format", "test", "-o", str(out))
        rows = [json.loads(line) for line in out.open() if line.strip()]
        sets.append({r["seed_id"]: r["prompt"] for r in rows})
    return sets


def fmt(v: tuple[float, float, float], digits: int = 3) -> str:
    value, lo, hi = v
    if math.isnan(lo):
        return f"{value:.{digits}f} (interval undefined)"
    return f"{value:.{digits}f} ({lo:.{digits}f}-{hi:.{digits}f})"


def ratio(a: np.ndarray, b: np.ndarray) -> float:
    """Rate of `a` over rate of `b`: inf when only `b` is 0, nan when both are."""
    num, den = nanmean(a), nanmean(b)
    if den > 0:
        return num / den
    return float("inf") if num > 0 else float("nan")


def times(v: tuple[float, float, float]) -> str:
    value, lo, hi = v
    if math.isnan(value):
        return "- (both 0)"
    if value == float("inf"):
        return "inf (the seeds' rate is 0)"
    if math.isnan(lo):
        return f"{value:.1f}x (interval undefined: the seeds' rate is 0 in many resamples)"
    return f"{value:.1f}x ({lo:.1f}-{hi:.1f})"


def three_times(vs_seeds: tuple[float, float, float], evolved: tuple[float, float, float],
                seeds: np.ndarray) -> bool:
    """The interval meets ">= 3x the seeds'": its lower bound is at least 3, or, when every seed
    scores 0 (so any refusal is an infinite ratio), the evolved rate's lower bound is above 0."""
    if nanmean(seeds) == 0:
        return evolved[1] > 0
    return not math.isnan(vs_seeds[1]) and vs_seeds[1] >= 3


def verdict(point: bool, lower: bool) -> str:
    """A goal is met only when its interval's lower bound meets it: a point estimate on the right
    side of the line with an interval across it is not a result."""
    if lower:
        return "met"
    return "not shown (the point estimate meets it, the interval does not)" if point else "not met"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=33)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--generations", type=int, default=3)
    ap.add_argument("--targets", nargs="+", default=["local-guarded", "local"])
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK)
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--section", default="effectiveness",
                    help="the RESULTS.md section --write replaces (a second size keeps its own)")
    a = ap.parse_args()
    load0 = os.getloadavg()[0]
    if not REFERENCE.exists():
        sys.exit(f"reference data missing: {REFERENCE}")
    command = (f".venv/bin/python benchmarks/effectiveness.py --seeds {a.seeds} --reps {a.reps} "
               f"--generations {a.generations} --targets {' '.join(a.targets)} --write"
               + (f" --section '{a.section}'" if a.section != "effectiveness" else ""))
    print(command, flush=True)
    t0 = time.perf_counter()
    grid = Grid(a.work, a.seeds, a.generations)
    ids = [s["id"] for s in grid.seeds]
    evo_all = [json.loads(line)["instruction"] for line in REFERENCE.open() if line.strip()]
    sets = {t: evolved_sets(grid, t, a.reps) for t in a.targets}
    samples = {t: [random.Random(rep).sample(evo_all, len(s)) for rep, s in enumerate(sets[t])]
               for t in a.targets}
    lines = [f"Command: `{command}`",
             (f"Date: {time.strftime('%Y-%m-%d')}; nproc: {os.cpu_count()}; Python "
             f"{platform.python_version()}; {load_note(load0)}."), "",
             (f"{len(ids)} shipped seeds ({grid.describe()}), {a.reps} repetition(s) (`--seed` "
             f"0-{a.reps - 1}), {a.generations} generation(s), default preset, the embedded model as "
             "mutator and judge. Refusal: greedy, 50 tokens, detector auto; mean over seeds of "
             "the mean over repetitions, 95% bootstrap interval over seeds (EvoRefuse-Test: over "
             "all its items). Ratio intervals resample seeds; the difference to EvoRefuse-Test "
             "resamples seeds and its items independently."), "",
             ("| evolved against | measured on | set | n per rep | refusal | ratio to seeds | "
             "evolved minus set |"), "|---|---|---|---:|---:|---:|---:|"]
    goals = []
    for run_target in a.targets:
        for measured in a.targets:
            kind = "in-sample" if measured == run_target else "held-out target"
            prompts = ([s["prompt"] for s in grid.seeds]
                       + [p for s in sets[run_target] for p in s.values()] + evo_all)
            answers = grid.refusals(prompts, measured)
            seeds = np.array([float(answers[grid.norm(s["prompt"])]) for s in grid.seeds])
            evolved = np.array([nanmean(np.array([float(answers[grid.norm(s[sid])])
                                                  for s in sets[run_target] if sid in s]))
                                if any(sid in s for s in sets[run_target]) else float("nan")
                                for sid in ids])
            bench = np.array([float(answers[grid.norm(p)]) for p in evo_all])
            sizes = "/".join(str(len(s)) for s in sets[run_target])
            ev = bootstrap(nanmean, evolved)
            vs_seeds = bootstrap(ratio, evolved, seeds)
            vs_bench = bootstrap(lambda e, b: nanmean(e) - b.mean(), evolved, bench, paired=False)
            head = f"| `{run_target}` | `{measured}` ({kind}) |"
            lines += [(f"{head} shipped seeds | {len(ids)} | {fmt(bootstrap(nanmean, seeds))} | - | "
                      f"{fmt(bootstrap(lambda e, s: nanmean(e) - s.mean(), evolved, seeds))} |"),
                      f"{head} **evolved** | {sizes} | {fmt(ev)} | {times(vs_seeds)} | - |",
                      (f"{head} EvoRefuse-Test, all items | {len(evo_all)} | "
                      f"{fmt(bootstrap(np.mean, bench))} | - | {fmt(vs_bench)} |")]
            if run_target == measured == "local-guarded":
                goals.append(
                    f"Goals against `local-guarded` (in-sample): evolved refusal >= 3x the "
                    f"seeds': **{verdict(vs_seeds[0] >= 3, three_times(vs_seeds, ev, seeds))}** "
                    f"({times(vs_seeds)}); above EvoRefuse-Test's: "
                    f"**{verdict(vs_bench[0] > 0, vs_bench[1] > 0)}** ({vs_bench[0]:+.3f}; "
                    f"interval {vs_bench[1]:+.3f} to {vs_bench[2]:+.3f}"
                    f"{', excludes 0' if vs_bench[1] > 0 else ', includes 0'}).")
    lines += ["", *goals, "", ("Lexical diversity (mean over repetitions; MSTTR's 800-token window "
              "exceeds sets this small, so it is the set's type-token ratio):"), "",
              "| evolved against | set | MSTTR | MTLD | HD-D | distinct-2 |", "|---|---|---:|---:|---:|---:|"]
    for run_target in a.targets:
        for name, group in (("shipped seeds", [[s["prompt"] for s in grid.seeds]]),
                            ("evolved", [list(s.values()) for s in sets[run_target]]),
                            ("EvoRefuse-Test sample", samples[run_target])):
            div = [lexical_diversity(g) for g in group if len(g) > 1]
            cells = " | ".join(f"{np.mean([d[k] for d in div]):.3f}" if div else "-"
                               for k in DIVERSITY)
            lines.append(f"| `{run_target}` | {name} | {cells} |")
    lines += ["", (f"Wall time of this invocation: {(time.perf_counter() - t0) / 3600:.2f} h (runs "
              "reused from the work directory cost nothing; benchmarks/efficiency.py reports the "
              "evolution time of every run).")]
    body = "\n".join(lines)
    print(body)
    if a.write:
        replace_section(a.section, body)


if __name__ == "__main__":
    main()
