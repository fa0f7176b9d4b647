"""kill -9 at many points of an `evolve`, then `resume`: the archive equals an uninterrupted run's."""

from __future__ import annotations

import os
import shutil
import signal

import pytest
from test_reliability_common import (
    archive_key,
    clean_server,
    cli,
    evolve_args,
    integrity_ok,
    reference,
    spawn,
    spawn_kill_at_replace,
    status_json,
)

pytestmark = pytest.mark.slow

# One run killed six times in a row, each kill followed by `resume`; the last resume finishes.
# (phase, how, where): kill when the server produces its N-th answer of this phase (a request
# with n choices produces n answers; the reference run produces 250), or at the N-th replace of
# checkpoint.json in this process, just before or just after the rename.
KILL_CHAIN = [
    ("evolve", "answer", 1),            # before anything is committed (seeds being scored)
    ("resume", "replace", (1, "before")),  # gen 0 checkpoint in its temp file, not yet renamed
    ("resume", "answer", 4),            # generation 0 committed, in the middle of generation 1
    ("resume", "replace", (1, "after")),   # right after generation 1's checkpoint replaced gen 0's
    ("resume", "answer", 4),            # in the middle of generation 2
    ("resume", "replace", (1, "before")),  # final commit: archive appended, checkpoint not renamed
]


def test_kill9_six_times_then_resume_equals_uninterrupted(tmp_path, tmp_path_factory) -> None:
    ref = reference(tmp_path_factory)
    srv = clean_server()
    counter = srv.responder
    run = tmp_path / "run"
    before = srv.requests
    committed = 0
    for i, (phase, how, where) in enumerate(KILL_CHAIN):
        args = (evolve_args(ref["cfg"], ref["seeds"], run) if phase == "evolve"
                else ["resume", str(run), "-q"])
        if how == "answer":
            holder: dict = {}

            def on_request(n: int, holder=holder, where=where) -> None:
                if n == where and "proc" in holder and holder["proc"].poll() is None:
                    os.kill(holder["proc"].pid, signal.SIGKILL)

            with counter.lock:
                counter.count = 0
            counter.on_request = on_request
            try:
                holder["proc"] = proc = spawn(*args)
                out, err = proc.communicate(timeout=240)
            finally:
                counter.on_request = None
        else:
            proc = spawn_kill_at_replace(where[0], where[1], *args)
            out, err = proc.communicate(timeout=240)
        assert proc.returncode == -signal.SIGKILL, (i, phase, how, where, proc.returncode, err)

        # After each kill: the lock is free, status reads the run, the cache is intact, and the
        # committed archive is a prefix of the reference that never shrinks.
        st = status_json(run)
        assert st["state"] == "running or interrupted"
        assert integrity_ok(run / "cache.sqlite")
        if (run / "checkpoint.json").exists():
            got = archive_key(run)
            assert got == ref["archive"][: len(got)], f"kill {i}: committed archive diverged"
            assert len(got) >= committed
            committed = len(got)

    assert committed > 3, "some kill points fell after a committed generation"
    r = cli("resume", str(run), "-q")
    assert r.returncode == 0, r.stderr
    got = archive_key(run)
    ids = [k[0] for k in got]
    assert len(ids) == len(set(ids)), "duplicate ids after resume"
    assert got == ref["archive"]
    assert integrity_ok(run / "cache.sqlite")
    st = status_json(run)
    assert st["state"] == "finished" and st["generation"] == 2
    # Never paid twice: the ledger equals the uninterrupted run's, and the server saw at most the
    # reference's requests plus those in flight at each kill (max_concurrency 4).
    assert st["calls"] == ref["status"]["calls"]
    assert srv.requests - before <= ref["requests"] + 4 * len(KILL_CHAIN)


def test_resume_extends_a_finished_run(tmp_path, tmp_path_factory) -> None:
    ref = reference(tmp_path_factory)
    run = tmp_path / "run"
    shutil.copytree(ref["run"], run)
    r = cli("resume", str(run), "-q")
    assert r.returncode == 0, r.stderr
    assert "nothing to do" in r.stderr
    assert archive_key(run) == ref["archive"]
    r = cli("resume", str(run), "--generations", "3", "-q")
    assert r.returncode == 0, r.stderr
    got = archive_key(run)
    assert got[: len(ref["archive"])] == ref["archive"]
    new = got[len(ref["archive"]):]
    assert all(k[0].startswith("g3-") for k in new)
    if not new:  # every lineage had converged: the target already refuses each incumbent
        from evorefuse.runstore import RunStore
        assert all(lin["current"]["refusal_rate"] == 1.0
                   for lin in RunStore.open(run).checkpoint()["lineages"])
    assert len({k[0] for k in got}) == len(got)
    st = status_json(run)
    assert st["generation"] == 3 and st["generations"] == 3 and st["state"] == "finished"
    assert integrity_ok(run / "cache.sqlite")
