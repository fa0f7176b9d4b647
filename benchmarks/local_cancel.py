"""How fast the embedded model stops when its call is cancelled, against how long a token takes.

Before the per-token check, a cancelled call's worker thread went on to max_tokens while the
process waited for it (about 9 s at Ctrl-C). Two measurements, in the same run:

1. in process: a greedy generation of up to 2000 tokens is cancelled once it is under way; the
   time from `task.cancel()` to the call's return is compared with the time of one token
   (measured just before on the same prompt), so the figure is in tokens, not seconds of a
   machine that may be shared;
2. end to end: `evorefuse evolve` offline (the embedded model in every role) gets SIGINT while it
   generates; the time from the signal to the process's exit.

    .venv/bin/python benchmarks/local_cancel.py [--trials 5] [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.results import replace_section  # noqa: E402
from evorefuse.models.base import SamplingParams  # noqa: E402
from evorefuse.models.local import LocalBackend, _Engine  # noqa: E402

STORY = [{"role": "user", "content": "Write a very long story about a dragon who learns to bake "
                                     "bread, with many chapters."}]


async def cancel_once(engine: _Engine, wait: float) -> float:
    task = asyncio.ensure_future(LocalBackend().complete(STORY, SamplingParams(
        temperature=0.0, max_tokens=2000)))
    while not engine.lock.locked():
        await asyncio.sleep(0.005)
    await asyncio.sleep(wait)
    t0 = time.perf_counter()
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    return time.perf_counter() - t0


def seconds_per_token(engine: _Engine, tokens: int = 40) -> float:
    params = SamplingParams(temperature=0.0, max_tokens=tokens)
    prompt_only = SamplingParams(temperature=0.0, max_tokens=1)
    t0 = time.perf_counter()
    engine.generate(STORY, prompt_only, 0)
    t1 = time.perf_counter()
    res = engine.generate(STORY, params, 0)
    t2 = time.perf_counter()
    return ((t2 - t1) - (t1 - t0)) / max(1, res.choices[0].completion_tokens - 1)


def evolve_sigint(workdir: Path, wait: float) -> float:
    """Seconds from SIGINT to exit of an offline evolve run that is generating."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    proc = subprocess.Popen([sys.executable, "-m", "evorefuse", "evolve", "-q", "--generations",
                             "3", "--limit-seeds", "2", "--run-dir", str(workdir / "run")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                            cwd=str(ROOT))
    time.sleep(wait)
    t0 = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    proc.wait(300)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--evolve-wait", type=float, default=25.0,
                    help="seconds evolve runs before SIGINT (past model loading, into generation)")
    ap.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = ap.parse_args()
    load_before = os.getloadavg()[0]
    engine = _Engine.get()
    per_token = statistics.median(seconds_per_token(engine) for _ in range(3))
    stops = [asyncio.run(cancel_once(engine, 0.5 + 0.3 * i)) for i in range(args.trials)]
    with tempfile.TemporaryDirectory() as tmp:
        exits = [evolve_sigint(Path(tmp) / str(i), args.evolve_wait) for i in range(3)]
    body = "\n".join([
        "Command: `.venv/bin/python benchmarks/local_cancel.py --write`.",
        f"Date: {datetime.date.today().isoformat()}; 1-minute load average {load_before:.2f} "
        f"before and {os.getloadavg()[0]:.2f} after (the machine is shared; times are noisy, "
        "the ratio to one token is the figure that carries over).",
        "",
        "| measurement | trials | median | max |",
        "|---|---:|---:|---:|",
        f"| one token of the embedded model (greedy, same prompt) | 3 | {1000 * per_token:.1f} ms "
        "| |",
        f"| cancelled 2000-token generation: cancel to return | {len(stops)} | "
        f"{1000 * statistics.median(stops):.1f} ms = {statistics.median(stops) / per_token:.1f} "
        f"tokens | {1000 * max(stops):.1f} ms = {max(stops) / per_token:.1f} tokens |",
        f"| `evorefuse evolve` offline: SIGINT to exit | {len(exits)} | "
        f"{statistics.median(exits):.2f} s | {max(exits):.2f} s |",
        "",
        "A cancelled call returns once its worker thread has stopped, which it does at the next "
        "token; without the check the thread ran on to max_tokens (2000 tokens here would be "
        f"about {2000 * per_token:.0f} s at the measured speed).",
    ])
    print(body)
    if args.write:
        replace_section("local_cancel", body)


if __name__ == "__main__":
    main()
