"""Ctrl-C and SIGTERM in the middle of `evolve`: exit 130 / 143 with the resume command, nothing
lost, and the resumed run ends with exactly the uninterrupted run's archive."""

from __future__ import annotations

import os
import signal

import pytest
from test_reliability_common import (
    archive_key,
    clean_server,
    cli,
    evolve_args,
    reference,
    short_stderr,
    spawn,
    status_json,
)

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_mid_run_exits_with_the_resume_command(tmp_path, tmp_path_factory, signum,
                                                      code) -> None:
    ref = reference(tmp_path_factory)
    srv = clean_server()
    counter = srv.responder
    run = tmp_path / "run"
    holder: dict = {}

    def on_request(n: int) -> None:
        # Mid-run: generation 0 is committed and generation 1 is under way.
        if n == 12 and "proc" in holder and holder["proc"].poll() is None:
            os.kill(holder["proc"].pid, signum)

    with counter.lock:
        counter.count = 0
    counter.on_request = on_request
    try:
        holder["proc"] = proc = spawn(*evolve_args(ref["cfg"], ref["seeds"], run))
        _, err = proc.communicate(timeout=240)
    finally:
        counter.on_request = None
    assert proc.returncode == code, (proc.returncode, err)
    short_stderr(err)
    assert f"evorefuse resume {run}" in err and "interrupted" in err
    assert "Aborted" not in err
    st = status_json(run)
    assert st["state"] == "interrupted" and st["generation"] < 2

    r = cli("resume", str(run), "-q")
    assert r.returncode == 0, r.stderr
    assert archive_key(run) == ref["archive"]
    assert status_json(run)["calls"] == ref["status"]["calls"]
