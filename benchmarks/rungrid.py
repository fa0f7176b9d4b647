"""The evolution runs the effectiveness and efficiency benchmarks share, kept in a work directory.

One run per (target, preset, repetition) on the same seeds, each repetition with its own `--seed`.
A run advances one generation at a time (`evolve --generations 0`, then `resume --generations g`,
which ends with exactly the archive of an uninterrupted run), and after each generation the run's
target tokens and calls (from `status --json`, i.e. the ledger) are appended to `curve.jsonl`
beside it. So a killed benchmark resumes where it stopped, a finished run is reused as it is, and
the efficiency benchmark's default-preset runs are the effectiveness benchmark's evolved sets.

Measurements go through `evaluate` (greedy, 50 tokens, detector auto: how XSTest and OR-Bench
measure, and the same for every preset) with one request cache in the work directory, so a prompt
is answered once per target however many runs or generations share it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_SEEDS = ROOT / "seeds" / "default.jsonl"
DEFAULT_WORK = ROOT / "runs" / "bench" / "grid"

from evorefuse.config import load_config
from evorefuse.evaluate import EvalSettings, evaluate

GREEDY = EvalSettings(samples=1, temperature=0.0, max_tokens=50, seed=0)


def cli(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "evorefuse", *args], check=False, cwd=ROOT,
                          text=True, capture_output=True)
    if done.returncode != 0:
        raise SystemExit(f"evorefuse {' '.join(args)} failed ({done.returncode}):\n"
                         f"{done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def pick_seeds(n: int) -> list[dict]:
    """`n` shipped seeds spread over the categories: round robin over the categories in file
    order, each category's seeds in file order (33 gives 3 of each of the 11 categories)."""
    by_cat: dict[str, list[dict]] = defaultdict(list)
    for line in SHIPPED_SEEDS.open():
        if line.strip():
            row = json.loads(line)
            by_cat[row.get("category") or ""].append(row)
    picked: list[dict] = []
    depth = 0
    while len(picked) < n and any(depth < len(v) for v in by_cat.values()):
        picked += [rows[depth] for rows in by_cat.values() if depth < len(rows)][: n - len(picked)]
        depth += 1
    return picked


@dataclass(frozen=True)
class RunKey:
    target: str
    preset: str
    rep: int

    @property
    def name(self) -> str:
        return f"{self.target}-{self.preset}-seed{self.rep}"


@dataclass(frozen=True)
class Point:
    """A run after one generation: what its target has cost so far."""
    generation: int
    target_tokens: int
    target_calls: int
    wall_s: float


class Grid:
    def __init__(self, work: Path, n_seeds: int, generations: int) -> None:
        self.work = work
        self.generations = generations
        self.seeds = pick_seeds(n_seeds)
        work.mkdir(parents=True, exist_ok=True)
        self._check_code_version()
        self.seed_file = work / f"seeds-{n_seeds}.jsonl"
        text = "".join(json.dumps(s) + "\n" for s in self.seeds)
        if not self.seed_file.exists() or self.seed_file.read_text() != text:
            self.seed_file.write_text(text)

    def _check_code_version(self) -> None:
        """Runs are reused as they are: say so loudly when the code changed since they began."""
        head = subprocess.run(["git", "rev-parse", "HEAD"], check=False, cwd=ROOT, text=True,
                              capture_output=True).stdout.strip() or "unknown"
        stamp = self.work / "commit.txt"
        if not stamp.exists():
            stamp.write_text(head + "\n")
        elif stamp.read_text().strip() != head:
            print(f"WARNING: the runs in {self.work} began at commit {stamp.read_text().strip()}, "
                  f"HEAD is {head}; they are reused as they are (delete the directory to "
                  "re-measure with this code)", file=sys.stderr, flush=True)

    def describe(self) -> str:
        counts: dict[str, int] = defaultdict(int)
        for s in self.seeds:
            counts[s.get("category") or "uncategorised"] += 1
        return ", ".join(f"{n} {c}" for c, n in counts.items())

    @staticmethod
    def norm(prompt: str) -> str:
        """How the seed loader tells prompts apart (whitespace and case do not count)."""
        return " ".join(prompt.split()).casefold()

    def run_dir(self, key: RunKey) -> Path:
        return self.work / f"{key.name}-n{len(self.seeds)}"

    def curve_file(self, key: RunKey) -> Path:
        return self.run_dir(key).with_suffix(".curve.jsonl")

    def curve(self, key: RunKey) -> list[Point]:
        path = self.curve_file(key)
        if not path.exists():
            return []
        return [Point(**json.loads(line)) for line in path.open() if line.strip()]

    def ensure(self, key: RunKey) -> list[Point]:
        """Advance the run to `generations`, one generation at a time, recording each; a run
        already further along (an earlier invocation with more generations) is cut to this
        invocation's generations."""
        run = self.run_dir(key)
        points = self.curve(key)
        for gen in range(len(points), self.generations + 1):
            t0 = time.perf_counter()
            print(f"  {key.name}: generation {gen}", flush=True)
            if not (run / "manifest.json").exists():
                cli("evolve", "-q", "--seeds", str(self.seed_file), "--target", key.target,
                    "--preset", key.preset, "--seed", str(key.rep), "--generations", str(gen),
                    "--run-dir", str(run))
            else:
                cli("resume", str(run), "--generations", str(gen), "-q")
            status = json.loads(cli("status", str(run), "--json"))
            if status["generation"] != gen:
                raise SystemExit(f"{run}: expected generation {gen}, status says "
                                 f"{status['generation']}")
            target = status["ledger"].get("target", {})
            point = Point(gen, target.get("tokens_in", 0) + target.get("tokens_out", 0),
                          target.get("calls", 0), round(time.perf_counter() - t0, 1))
            with self.curve_file(key).open("a") as f:
                f.write(json.dumps(point.__dict__) + "\n")
            points.append(point)
        return points[: self.generations + 1]

    def best_per_generation(self, key: RunKey) -> dict[int, dict[str, str]]:
        """Each lineage's best prompt (by the run's own fitness) after every generation, keyed
        by seed id, as the engine keeps it: a fully scored benign candidate replaces the best
        only with a strictly higher fitness, in archive order."""
        records = [json.loads(line) for line in (self.run_dir(key) / "archive.jsonl").open()]
        k_full = max(r.get("k") or 0 for r in records if r["strategy"] == "seed")
        best: dict[str, dict] = {}
        out: dict[int, dict[str, str]] = {}
        for gen in range(self.generations + 1):
            for r in records:
                if (r["generation"] == gen and r["status"] == "benign"
                        and (r.get("k") or 0) >= k_full
                        and (r["seed_id"] not in best or r["fitness"] > best[r["seed_id"]]["fitness"])):
                    best[r["seed_id"]] = r
            out[gen] = {sid: r["prompt"] for sid, r in best.items()}
        return out

    def refusals(self, prompts: list[str], target: str) -> dict[str, bool]:
        """Greedy refusal of every prompt by `target` (evaluate's protocol, cached), keyed by
        `norm(prompt)`."""
        unique = list(dict.fromkeys(prompts))
        if not unique:
            return {}
        # One file per process: the two benchmarks may measure in one work directory at once
        # (the answers' cache is SQLite in WAL mode, shared safely).
        path = self.work / f"measure-{target}-{os.getpid()}.jsonl"
        path.write_text("".join(json.dumps({"id": f"m{i}", "prompt": p}) + "\n"
                                for i, p in enumerate(unique)))
        try:
            rep = evaluate(path, cfg=load_config(None), targets=[target], settings=GREEDY,
                           detector="auto", cache_path=self.work / "measure.sqlite",
                           embeddings=False)
        finally:
            path.unlink()
        return {self.norm(p["prompt"]): p["refusal_rate"][target] >= 0.5 for p in rep["prompts"]}
