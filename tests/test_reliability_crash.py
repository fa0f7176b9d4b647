"""kill -9 at many points of an `evolve`, then `resume`: the archive equals an uninterrupted run's."""

from __future__ import annotations

import os
import shutil
import signal

import pytest

from test_reliability_common import (archive_key, clean_server, cli, evolve_args, integrity_ok,
                                     kill9, reference, spawn, spawn_kill_at_replace, status_json)

pytestmark = pytest.mark.slow

# (how, where): kill when the server produces its N-th answer (of 250 in the reference run), or at
# the N-th replace of checkpoint.json (gen 0, 1, 2), just before or just after the rename.
KILL_POINTS = [
    ("request", 1),             # before anything is committed (seeds being scored)
    ("replace", (1, "before")),  # gen-0 checkpoint written to its temp file, not yet renamed
    ("request", 70),            # in the middle of generation 1
    ("replace", (2, "after")),  # right after generation 1's checkpoint replaced the old one
    ("request", 190),           # in the middle of generation 2
    ("replace", (3, "before")),  # the final checkpoint: archive appended, checkpoint not renamed
]


@pytest.mark.parametrize("how,where", KILL_POINTS,
                         ids=[f"{h}-{w if h == 'request' else '-'.join(map(str, w))}"
                              for h, w in KILL_POINTS])
def test_kill9_then_resume_equals_uninterrupted(tmp_path, tmp_path_factory, how, where) -> None:
    ref = reference(tmp_path_factory)
    srv = clean_server()
    run = tmp_path / "run"
    args = evolve_args(ref["cfg"], ref["seeds"], run)
    counter = srv.responder
    with counter.lock:
        counter.count = 0
    before = srv.requests
    if how == "request":
        holder: dict = {}

        def on_request(n: int) -> None:
            if n == where and "proc" in holder and holder["proc"].poll() is None:
                os.kill(holder["proc"].pid, signal.SIGKILL)

        counter.on_request = on_request
        try:
            holder["proc"] = proc = spawn(*args)
            proc.communicate(timeout=240)
        finally:
            counter.on_request = None
    else:
        proc = spawn_kill_at_replace(where[0], where[1], *args)
        proc.communicate(timeout=240)
    assert proc.returncode == -signal.SIGKILL, f"the run was not killed at {how} {where}"

    # The interrupted state is readable (no lock left behind, committed part consistent).
    st = status_json(run)
    assert st["state"] == "running or interrupted"
    assert integrity_ok(run / "cache.sqlite")

    r = cli("resume", str(run), "-q")
    assert r.returncode == 0, r.stderr
    got = archive_key(run)
    ids = [k[0] for k in got]
    assert len(ids) == len(set(ids)), "duplicate ids after resume"
    assert got == ref["archive"]
    assert integrity_ok(run / "cache.sqlite")
    st = status_json(run)
    assert st["state"] == "finished" and st["generation"] == 2
    # Never paid twice: the cache served what the killed process had already received; the server
    # saw at most the reference's requests plus those in flight at the kill (max_concurrency 4).
    assert st["calls"] == ref["status"]["calls"]
    assert srv.requests - before <= ref["requests"] + 4


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
    assert new and all(k[0].startswith("g3-") for k in new)
    assert len({k[0] for k in got}) == len(got)
    st = status_json(run)
    assert st["generation"] == 3 and st["generations"] == 3 and st["state"] == "finished"
    assert integrity_ok(run / "cache.sqlite")
