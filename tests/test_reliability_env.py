"""The run's surroundings: secrets never reach the disk, a second process is refused at once, and a
full or read-only file system gives a clear error and leaves the last checkpoint loadable."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from loopback_server import LoopbackServer
from test_reliability_common import (
    SENTINEL_KEY,
    SENTINEL_OPENAI,
    archive_key,
    clean_server,
    cli,
    evolve_args,
    integrity_ok,
    kill9,
    reference,
    responder,
    short_stderr,
    spawn,
    status_json,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.slow


def _grep_tree(root: Path, needles: list[str]) -> list[str]:
    hits = []
    for p in root.rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            for n in needles:
                if n.encode() in data or n.encode("utf-16-le") in data:
                    hits.append(f"{p.relative_to(root)} contains {n[:12]}...")
    return hits


def test_no_secret_reaches_the_run_directory(tmp_path, tmp_path_factory) -> None:
    ref = reference(tmp_path_factory)  # ran with both sentinels in the environment
    srv = clean_server()
    run = tmp_path / "run"
    shutil.copytree(ref["run"], run)
    assert srv.stats["auth"]["present"] > 0, "the key was sent to the server"
    # The paper preset scores every benign candidate, so some are refused (trigger words) and
    # dpo has pairs; the default preset's reference run now has none (few rewrites pass the
    # off-intent check, and the scored ones were not refused).
    paper = tmp_path / "paper"
    r = cli(*evolve_args(write_config(tmp_path / "c.toml", srv.base_url), ref["seeds"], paper, 2,
                         "--preset", "paper"))
    assert r.returncode == 0, r.stderr
    outputs = [r.stdout + r.stderr]
    # sft and dpo ask the responder (the loopback, with the key) for helpful answers, and dpo
    # pairs them with the targets' refusals of prompts with trigger words.
    for argv in (["status", str(run), "--json"],
                 ["export", str(run), "--format", "test", "--style", "xstest"],
                 ["export", str(run), "--format", "sft", "--include-seeds"],
                 ["export", str(paper), "--format", "dpo", "--style", "llamafactory",
                  "--min-refusal-rate", "0.1"]):
        r = cli(*argv)
        assert r.returncode == 0, (argv, r.stderr)
        outputs.append(r.stdout + r.stderr)
    needles = [SENTINEL_KEY, SENTINEL_OPENAI]
    assert not _grep_tree(run, needles) and not _grep_tree(paper, needles)
    assert not any(n in o for o in outputs for n in needles)
    assert integrity_ok(run / "cache.sqlite")


def test_a_server_echoing_the_key_does_not_leak_it(tmp_path, tmp_path_factory) -> None:
    """A 401 whose message repeats the presented key: the run fails (exit 1 or 2) in one clear
    line, and neither the terminal nor the run directory shows the key."""
    ref = reference(tmp_path_factory)
    with LoopbackServer(responder=responder, expected_key="sk-the-right-one",
                        enforce_key=True) as srv:
        cfg = write_config(tmp_path / "c.toml", srv.base_url)
        run = tmp_path / "run"
        r = cli(*evolve_args(cfg, ref["seeds"], run))
    assert r.returncode in (1, 2), r.stderr
    short_stderr(r.stderr)
    needles = [SENTINEL_KEY, SENTINEL_OPENAI]
    assert not any(n in r.stdout + r.stderr for n in needles), r.stderr
    if run.exists():
        assert not _grep_tree(run, needles)


def test_second_process_on_a_running_run_is_refused_at_once(tmp_path, tmp_path_factory) -> None:
    ref = reference(tmp_path_factory)
    # Slow answers and many generations: the first run must still be going after three more
    # processes have started and ended on a loaded machine (it is killed at the end).
    with LoopbackServer(latency=0.5, responder=responder) as srv:
        cfg = write_config(tmp_path / "slow.toml", srv.base_url)
        run = tmp_path / "run"
        first = spawn(*evolve_args(cfg, ref["seeds"], run, 40))
        try:
            assert wait_for(lambda: (run / "manifest.json").exists() and srv.requests > 0, 60)
            # "At once": the second process is refused while the first still holds the lock,
            # instead of waiting for it (the first is checked to be running afterwards).
            r = cli("resume", str(run), "-q", timeout=120)
            assert r.returncode == 2, r.stderr
            assert "lock" in r.stderr and str(first.pid) in r.stderr
            short_stderr(r.stderr)
            assert first.poll() is None, "the second process waited for the first to end"
            r = cli(*evolve_args(cfg, ref["seeds"], run), timeout=120)
            assert r.returncode == 2, r.stderr
            assert "resume" in r.stderr
            short_stderr(r.stderr)
            # status reads a running run without waiting for it or changing it
            st = status_json(run)
            assert st["state"] == "running or interrupted"
            assert first.poll() is None, "the first run was disturbed"
        finally:
            kill9(first)


# --- full and read-only file systems ---------------------------------------------------------

def _as_root_of_a_user_namespace(test: str, basetemp: Path) -> None:
    """Run `test` again in a new user and mount namespace where this user is root (unshare -rm),
    so a normal user can mount the small tmpfs the test fills; it must pass there."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("not root and no unshare(1): cannot mount a tmpfs to fill")
    probe = subprocess.run([unshare, "--user", "--map-root-user", "--mount", "true"],
                           check=False, capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"not root and no user namespaces here: {probe.stderr.strip()[:120]}")
    r = subprocess.run([unshare, "--user", "--map-root-user", "--mount", sys.executable, "-m",
                        "pytest", "-q", "-rs", "-p", "no:cacheprovider", f"--basetemp={basetemp}",
                        f"{__file__}::{test}"],
                       check=False, capture_output=True, text=True,
                       cwd=Path(__file__).resolve().parent.parent, timeout=900,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0 and "1 passed" in r.stdout, r.stdout[-3000:] + r.stderr[-2000:]


def _mount_tmpfs(where: Path, size: str) -> None:
    where.mkdir(parents=True, exist_ok=True)
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                           check=False, capture_output=True, text=True)
    except OSError as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN): "
                    f"{r.stderr.strip()[:120]}")


def test_full_then_read_only_disk(tmp_path, tmp_path_factory) -> None:
    if os.geteuid() != 0:
        _as_root_of_a_user_namespace("test_full_then_read_only_disk", tmp_path / "inner")
        return
    ref = reference(tmp_path_factory)
    clean_server()
    mnt = tmp_path / "mnt"
    _mount_tmpfs(mnt, "16m")
    try:
        # Leave ~200 KB: the run's cache and its WAL need more, so the disk fills part-way.
        filler = mnt / "filler"
        with open(filler, "wb") as f:
            f.write(b"\0" * (16 * 1024 * 1024 - 200 * 1024))
        run = mnt / "run"
        r = cli(*evolve_args(ref["cfg"], ref["seeds"], run))
        assert r.returncode in (1, 2), (r.returncode, r.stderr)
        short_stderr(r.stderr)
        assert "space" in r.stderr.lower() or "full" in r.stderr.lower(), r.stderr
        # Nothing corrupted: the last checkpoint loads, status reads it, the cache is intact.
        st = status_json(run)
        got = archive_key(run)
        assert got == ref["archive"][: len(got)]
        assert integrity_ok(run / "cache.sqlite")

        # Read-only: resume says so in one line; status still works; nothing changes.
        filler.unlink()
        before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
        # The type and source named: mount(8) needs them to remount inside a user namespace.
        subprocess.run(["mount", "-o", "remount,ro", "-t", "tmpfs", "tmpfs", str(mnt)],
                       check=True)
        try:
            r = cli("resume", str(run), "-q")
            assert r.returncode in (1, 2), (r.returncode, r.stderr)
            short_stderr(r.stderr)
            assert "read-only" in r.stderr.lower() or "writ" in r.stderr.lower(), r.stderr
            assert status_json(run)["generation"] == st["generation"]
        finally:
            subprocess.run(["mount", "-o", "remount,rw", "-t", "tmpfs", "tmpfs", str(mnt)],
                           check=True)
        after = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
        assert after == before

        # With room again, resume finishes the run exactly as the uninterrupted one.
        r = cli("resume", str(run), "-q")
        assert r.returncode == 0, r.stderr
        assert archive_key(run) == ref["archive"]
        assert integrity_ok(run / "cache.sqlite")
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False, capture_output=True)
