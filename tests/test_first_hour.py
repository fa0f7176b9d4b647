"""What a newcomer meets first: `openai:MODEL` with only the usual environment variables, a bad
endpoint caught before a run directory exists, time and cost before spending (and a question on
a terminal before a long run), status that shows what the targets answered, exports that keep
their own ledger."""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import subprocess
import sys
import time

import pytest
from test_reliability_common import (
    SEEDS,
    SENTINEL_KEY,
    clean_server,
    cli,
    env,
    reference,
    status_json,
    write_seeds,
)

pytestmark = pytest.mark.slow


def test_openai_model_names_need_no_config(tmp_path) -> None:
    srv = clean_server()
    seeds = write_seeds(tmp_path / "s.jsonl", SEEDS[:2])
    e = env(OPENAI_BASE_URL=srv.base_url, OPENAI_API_KEY=SENTINEL_KEY)
    run = tmp_path / "run"
    r = cli("evolve", "-q", "--seeds", str(seeds), "--run-dir", str(run), "--generations", "1",
            "--target", "openai:loop", "--mutator", "openai:loop", "--judge", "openai:loop",
            env_=e)
    assert r.returncode == 0, r.stderr
    st = json.loads(cli("status", str(run), "--json", env_=e).stdout)
    assert st["targets"] == ["openai:loop"] and st["ledger"]["target"]["calls"] > 0
    config = (run / "config.json").read_text()
    saved = json.loads(config)["models"]["openai:loop"]
    assert SENTINEL_KEY not in config
    assert saved["base_url"] == srv.base_url and saved["api_key_env"] == "OPENAI_API_KEY"
    # Resumed with another OPENAI_BASE_URL, the run still talks to the server it started with.
    r = cli("resume", str(run), "--generations", "2", "-q",
            env_=env(OPENAI_BASE_URL="http://127.0.0.1:9/v1", OPENAI_API_KEY=SENTINEL_KEY))
    assert r.returncode == 0, r.stderr


def test_an_unreachable_endpoint_is_bad_input_before_the_run_exists(tmp_path) -> None:
    seeds = write_seeds(tmp_path / "s.jsonl", SEEDS[:2])
    run = tmp_path / "run"
    e = env(OPENAI_BASE_URL="http://127.0.0.1:9/v1", OPENAI_API_KEY="x")  # nothing listens
    r = cli("evolve", "-q", "--seeds", str(seeds), "--run-dir", str(run),
            "--target", "openai:none", env_=e)
    assert r.returncode == 2, r.stderr
    assert "models.openai:none" in r.stderr and "cannot reach" in r.stderr
    assert len([ln for ln in r.stderr.splitlines() if ln.strip()]) == 1
    assert not run.exists()


def test_dry_run_gives_calls_cost_and_wall_time(tmp_path) -> None:
    r = cli("evolve", "--dry-run", "--limit-seeds", "12", "--generations", "3")
    assert r.returncode == 0, r.stderr
    assert "nothing was called" in r.stdout and "wall time: at most about" in r.stdout


def test_a_long_run_asks_first_on_a_terminal(tmp_path) -> None:
    """`evolve` with no options would take hours: on a terminal it asks, and 'n' starts nothing."""
    run = tmp_path / "run"
    pid, fd = pty.fork()
    if pid == 0:  # child: the CLI with a terminal as stdin
        os.chdir(tmp_path)
        os.execve(sys.executable, [sys.executable, "-m", "evorefuse", "evolve", "--run-dir",
                                   str(run)], env())
    out = b""
    deadline = time.monotonic() + 120
    answered = False
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
            if not answered and b"Start it?" in out:
                os.write(fd, b"n\n")
                answered = True
    _, status = os.waitpid(pid, 0)
    text = out.decode(errors="replace")
    assert answered, text
    assert "may take up to about" in text and "--limit-seeds" in text
    assert os.waitstatus_to_exitcode(status) != 0
    assert not run.exists()


def test_status_shows_best_instructions_and_the_targets_answers(tmp_path, tmp_path_factory):
    ref = reference(tmp_path_factory)
    r = cli("status", str(ref["run"]))
    assert r.returncode == 0, r.stderr
    assert "what the targets answered" in r.stdout
    best = status_json(ref["run"])["best"]
    assert all(b["answers"].get("fake") for b in best)
    for b in best:
        assert b["prompt"][:40] in " ".join(r.stdout.split())


def test_exports_are_recorded_apart_from_the_evolution(tmp_path, tmp_path_factory) -> None:
    ref = reference(tmp_path_factory)
    clean_server()
    run = tmp_path / "run"
    shutil.copytree(ref["run"], run)
    r = cli("export", str(run), "--format", "sft", "--include-seeds", "-o", str(tmp_path / "s.jsonl"))
    assert r.returncode == 0, r.stderr
    st = status_json(run)
    assert st["calls"] == ref["status"]["calls"]          # the evolution's figures are unchanged
    assert st["export_ledger"]["responder"]["calls"] > 0  # the export's are its own
    assert "calls" in subprocess.run([sys.executable, "-m", "evorefuse", "status", str(run)],
                                     capture_output=True, text=True, env=env()).stdout
