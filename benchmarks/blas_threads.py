"""OpenBLAS threads for the archive check: one thread (what `evorefuse` sets) against the default.

The engine's near-duplicate check multiplies a few candidate embeddings by the archive's
(`NearDuplicates.repeated`: an (archive x 384) by (384 x candidates) product). OpenBLAS starts one
worker thread per core for such products, and on a machine whose cores are busy (the event loop,
the embedder's thread, other jobs) those workers spin while they wait. `evorefuse.cli.main` sets
`OPENBLAS_NUM_THREADS=1` unless the user did; this measures why.

Each configuration runs in its own child process (the variable is read when numpy loads), with and
without a busy neighbour process spinning on every core, interleaved over `--rounds` rounds; the
figure is the child's own CPU time (user + system) per check, as a median with the range, and the
ratio of the two thread settings measured in the same round.

    .venv/bin/python benchmarks/blas_threads.py [--archive 6000] [--checks 400] [--rounds 5] [--write]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results import load_note, replace_section  # noqa: E402

CHILD = """
import json, resource, sys
import numpy as np
from evorefuse.evolution.gate import NearDuplicates
archive, checks, per_check = map(int, sys.argv[1:4])
rng = np.random.default_rng(0)
def unit(n):
    m = rng.standard_normal((n, 384)).astype(np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)
dups = NearDuplicates(0.945)
dups.add(unit(archive), [])
batches = [unit(per_check) for _ in range(checks)]
texts = ["an English text"] * per_check
dups.repeated(texts, batches[0])
r0 = resource.getrusage(resource.RUSAGE_SELF)
for b in batches:
    dups.repeated(texts, b)
r1 = resource.getrusage(resource.RUSAGE_SELF)
cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
print(json.dumps({"cpu_ms_per_check": cpu / checks * 1000}))
"""


def spin(stop_at: float) -> None:
    """A busy neighbour: one process per core doing pure-Python work until `stop_at`."""
    x = 0
    while time.time() < stop_at:
        x += 1


def one(threads: str | None, a: argparse.Namespace) -> float:
    env = dict(os.environ)
    env.pop("OPENBLAS_NUM_THREADS", None)
    if threads is not None:
        env["OPENBLAS_NUM_THREADS"] = threads
    out = subprocess.run([sys.executable, "-c", CHILD, str(a.archive), str(a.checks), str(a.per_check)],
                         cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out)["cpu_ms_per_check"]


def measure(a: argparse.Namespace, busy: bool) -> dict[str, list[float]]:
    got: dict[str, list[float]] = {"1": [], "default": []}
    for _ in range(a.rounds):
        for name, threads in (("1", "1"), ("default", None)):
            hogs = []
            if busy:
                stop = time.time() + 120
                hogs = [multiprocessing.Process(target=spin, args=(stop,), daemon=True)
                        for _ in range(os.cpu_count() or 1)]
                for h in hogs:
                    h.start()
            try:
                got[name].append(one(threads, a))
            finally:
                for h in hogs:
                    h.terminate()
                    h.join()
    return got


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--archive", type=int, default=6000, help="archive rows (a 1,000-lineage run "
                    "holds about 6,000 benign candidates after three generations)")
    ap.add_argument("--checks", type=int, default=400)
    ap.add_argument("--per-check", type=int, default=4, help="candidates per check (one step of a lineage)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args()
    load_before = os.getloadavg()[0]
    rows = []
    for busy in (False, True):
        got = measure(a, busy)
        ratios = [d / o for o, d in zip(got["1"], got["default"])]
        rows.append((busy, got, ratios))
    lines = [
        f"Command: `.venv/bin/python benchmarks/blas_threads.py --archive {a.archive} --checks {a.checks} "
        f"--rounds {a.rounds} --write`",
        f"Date: {time.strftime('%Y-%m-%d')}; nproc: {os.cpu_count()}; Python {platform.python_version()}; "
        f"{load_note(load_before)}.",
        "",
        f"CPU time of the archive check (`NearDuplicates.repeated`: {a.per_check} candidates against "
        f"{a.archive} archive rows), per check, in a child process; median (range) of {a.rounds} "
        "interleaved rounds. `default` leaves OPENBLAS_NUM_THREADS unset (one thread per core).",
        "",
        "| neighbours | OPENBLAS_NUM_THREADS=1 (ms) | default (ms) | default / 1, same round |",
        "|---|---:|---:|---:|",
    ]
    for busy, got, ratios in rows:
        def cell(v: list[float]) -> str:
            return f"{statistics.median(v):.3f} ({min(v):.3f}-{max(v):.3f})"
        neighbours = "one busy process added per core" if busy else "none added (see the load average)"
        lines.append(f"| {neighbours} | {cell(got['1'])} | {cell(got['default'])} | "
                     f"{statistics.median(ratios):.1f}x "
                     f"({min(ratios):.1f}-{max(ratios):.1f}) |")
    body = "\n".join(lines)
    print(body)
    if a.write:
        replace_section("blas_threads", body)


if __name__ == "__main__":
    main()
