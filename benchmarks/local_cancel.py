"""How fast the embedded model stops when its call is cancelled, against how long a token takes.

Before the per-token check, a cancelled call's worker thread went on to max_tokens while the
process waited for it (about 9 s at Ctrl-C). Two measurements, in the same run:

1. in process: a greedy generation of up to 2000 tokens is cancelled while it samples, and
   while its prompt is evaluated; the time from `task.cancel()` to the call's return is compared
   with the time of one token and of the prompt's evaluation (measured just before), so the
   figure is in tokens, not seconds of a machine that may be shared;
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

from benchmarks.results import load_note, replace_section  # noqa: E402
from evorefuse.models.base import SamplingParams  # noqa: E402
from evorefuse.models.local import LocalBackend, _Engine  # noqa: E402

STORY = [{"role": "user", "content": "Write a very long story about a dragon who learns to bake "
                                     "bread, with many chapters."}]


async def cancel_once(engine: _Engine, sampling: bool) -> tuple[float, int]:
    """Seconds from `task.cancel()` to the call's return, and tokens sampled after the cancel,
    cancelling while the prompt is being evaluated (one llama.cpp call, not interruptible) or
    while tokens are being sampled."""
    prompt_len = len(engine.prompt_tokens(STORY))
    task = asyncio.ensure_future(LocalBackend().complete(STORY, SamplingParams(
        temperature=0.0, max_tokens=2000)))
    while not engine.lock.locked():
        await asyncio.sleep(0.002)
    if sampling:  # the context grows by one token per sampled token
        while engine.llm.n_tokens < prompt_len + 3:
            await asyncio.sleep(0.002)
    t0 = time.perf_counter()
    at_cancel = max(engine.llm.n_tokens, prompt_len)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    return time.perf_counter() - t0, engine.llm.n_tokens - at_cancel


def timings(engine: _Engine) -> tuple[float, float]:
    """(seconds of the prompt's evaluation, seconds per sampled token), fastest of 3 each."""
    tokens = engine.prompt_tokens(STORY)
    engine.generate(STORY, SamplingParams(temperature=0.0, max_tokens=20), 0)  # weights paged in
    evals, steps = [], []
    for _ in range(3):
        with engine.lock:
            t0 = time.perf_counter()
            engine._eval_prompt(tokens)
            t1 = time.perf_counter()
            for tok in tokens[-10:]:
                engine.llm.eval([tok])
            t2 = time.perf_counter()
        evals.append(t1 - t0)
        steps.append((t2 - t1) / 10)
    return min(evals), min(steps)


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
    # In a worker thread, as LocalBackend runs it: llama.cpp called from the main thread measured
    # 20-60x slower here on a loaded machine.
    prompt_eval, per_token = asyncio.run(asyncio.to_thread(timings, engine))
    late = [asyncio.run(cancel_once(engine, sampling=True)) for _ in range(args.trials)]
    soon = [asyncio.run(cancel_once(engine, sampling=False)) for _ in range(args.trials)]
    stops, early = [t for t, _ in late], [t for t, _ in soon]
    after = [n for _, n in late + soon]
    with tempfile.TemporaryDirectory() as tmp:
        exits = [evolve_sigint(Path(tmp) / str(i), args.evolve_wait) for i in range(3)]
    body = "\n".join([
        "Command: `.venv/bin/python benchmarks/local_cancel.py --write`.",
        f"Date: {datetime.date.today().isoformat()}; {load_note(load_before)} (times depend on "
        "the load; the count of tokens sampled after a cancel is the figure that carries over).",
        "",
        f"Tokens sampled after the cancel, in all {len(after)} trials: at most {max(after)} "
        f"(median {statistics.median(after):g}); this count does not depend on the machine's "
        "load. The times below do.",
        "",
        "| measurement | trials | median | max |",
        "|---|---:|---:|---:|",
        f"| one sampled token of the embedded model (fastest of 3) | 3 | "
        f"{1000 * per_token:.1f} ms | |",
        f"| evaluating the {len(engine.prompt_tokens(STORY))}-token prompt (fastest of 3) | 3 | "
        f"{1000 * prompt_eval:.1f} ms | |",
        f"| 2000-token generation cancelled while sampling: cancel to return | {len(stops)} | "
        f"{1000 * statistics.median(stops):.1f} ms = {statistics.median(stops) / per_token:.1f} "
        f"tokens | {1000 * max(stops):.1f} ms = {max(stops) / per_token:.1f} tokens |",
        f"| cancelled while the prompt is evaluated: cancel to return | {len(early)} | "
        f"{1000 * statistics.median(early):.1f} ms | {1000 * max(early):.1f} ms |",
        f"| `evorefuse evolve` offline: SIGINT to exit | {len(exits)} | "
        f"{statistics.median(exits):.2f} s | {max(exits):.2f} s |",
        "",
        "A cancelled call returns once its worker thread has stopped, which it does at the next "
        "token; the prompt's evaluation is one llama.cpp call and runs to its end (splitting it "
        "would change the model's numerics, and with them every cached sample). Without the check the thread ran on to max_tokens (2000 tokens here would be "
        f"about {2000 * per_token:.0f} s at the measured speed). The end-to-end figure also "
        "holds whatever else the run has in worker threads when the signal comes (loading the "
        "models, a batch of sentence embeddings), which this check does not reach; how the CLI "
        "exits (code, message) is not part of this measurement.",
    ])
    print(body)
    if args.write:
        replace_section("local_cancel", body)


if __name__ == "__main__":
    main()
