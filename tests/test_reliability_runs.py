"""Damaged, moved and edited runs, and outputs that must not be replaced: each met with a clear
answer (one line, exit 2, nothing changed) or handled without losing count of what was paid."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from test_reliability_common import (
    archive_key,
    clean_server,
    cli,
    reference,
    short_stderr,
    status_json,
)

pytestmark = pytest.mark.slow


def _copy(ref: dict, to: Path) -> Path:
    shutil.copytree(ref["run"], to)
    return to


def _refused(r: subprocess.CompletedProcess, *needles: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stderr)
    short_stderr(r.stderr, max_lines=1)
    for n in needles:
        assert n in r.stderr, r.stderr


# --- spending belongs to the run -----------------------------------------------------------------

def test_spending_survives_a_rename_and_a_lost_cache(tmp_path, tmp_path_factory) -> None:
    ref = reference(tmp_path_factory)
    clean_server()
    moved = _copy(ref, tmp_path / "somewhere" / "renamed")
    st = status_json(moved)
    assert st["calls"] == ref["status"]["calls"] > 0
    assert st["cost_usd"] == pytest.approx(ref["status"]["cost_usd"])

    # Without its cache the run still knows what it paid: status and the budget count from the
    # checkpoint, and resume says what happened.
    lost = _copy(ref, tmp_path / "lost")
    for p in lost.glob("cache.sqlite*"):
        p.unlink()
    st = status_json(lost)
    assert st["calls"] == ref["status"]["calls"]
    assert st["ledger"]["unrecorded"]["calls"] == ref["status"]["calls"]
    r = cli("resume", str(lost), "--generations", "3", "--max-calls", str(st["calls"]), "-q")
    assert r.returncode == 3, r.stderr   # nothing left of the budget: stops before any call
    assert "fewer calls" in r.stderr and "budget" in r.stderr
    assert status_json(lost)["calls"] == ref["status"]["calls"]


# --- a run's own files, damaged or edited ---------------------------------------------------------

@pytest.mark.parametrize("damage, needles", [
    (lambda r: _edit_config(r, lambda c: c["fitness"].update(top_p=0.5)),
     ["config.json", "fitness.top_p", "changed since the run started"]),
    (lambda r: _edit_config(r, lambda c: c["roles"].update(targets="fake")),
     ["config.json", "roles.targets", "expected list"]),
    (lambda r: _edit_config(r, lambda c: c["run"].update(seed="7")),
     ["config.json", "run.seed", "expected int"]),
    (lambda r: (r / "archive.jsonl").write_bytes(
        b"{not json\n" + (r / "archive.jsonl").read_bytes().split(b"\n", 1)[1]),
     ["archive.jsonl:1", "damaged"]),
    (lambda r: (r / "archive.jsonl").write_bytes(b"".join(
        (r / "archive.jsonl").read_bytes().splitlines(keepends=True)[:3])),
     ["archive.jsonl", "the checkpoint records"]),
    (lambda r: (r / "checkpoint.json").write_text('{"generation": 2, "lineages": []}'),
     ["checkpoint.json", "archive_lines"]),
    (lambda r: (r / "seeds.jsonl").write_text('{"id": "s1", "prompt": "x"}\n{oops\n'),
     ["seeds.jsonl:2", "damaged"]),
])
def test_a_damaged_or_edited_run_is_refused_in_one_line(tmp_path, tmp_path_factory, damage,
                                                        needles) -> None:
    ref = reference(tmp_path_factory)
    clean_server()
    run = _copy(ref, tmp_path / "run")
    damage(run)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    _refused(cli("resume", str(run), "--generations", "3", "-q"), *needles)
    after = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert after == before, "a refused resume changed the run"


def _edit_config(run: Path, change) -> None:
    cfg = json.loads((run / "config.json").read_text())
    change(cfg)
    (run / "config.json").write_text(json.dumps(cfg))


def test_resume_may_change_limits_and_is_then_checked_again(tmp_path, tmp_path_factory) -> None:
    ref = reference(tmp_path_factory)
    clean_server()
    run = _copy(ref, tmp_path / "run")
    r = cli("resume", str(run), "--generations", "3", "--max-calls", "10000", "-q")
    assert r.returncode == 0, r.stderr
    assert json.loads((run / "config.json").read_text())["run"]["generations"] == 3
    assert archive_key(run)[: len(ref["archive"])] == ref["archive"]
    r = cli("resume", str(run), "-q")   # the rewritten limits are not an edit
    assert r.returncode == 0 and "nothing to do" in r.stderr, r.stderr


# --- outputs -------------------------------------------------------------------------------------

def test_outputs_that_must_not_be_replaced(tmp_path, tmp_path_factory) -> None:
    ref = reference(tmp_path_factory)
    clean_server()
    run = _copy(ref, tmp_path / "run")
    target = tmp_path / "real.jsonl"
    target.write_text("keep me\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    archive = (run / "archive.jsonl").read_bytes()
    for out, needle in [("/dev/null", "not a regular file"), (str(link), "symbolic link"),
                        (str(run / "archive.jsonl"), "run directory's own state"),
                        (str(tmp_path), "is a directory")]:
        _refused(cli("export", str(run), "--format", "test", "-o", out), needle)
    assert target.read_text() == "keep me\n" and link.is_symlink()
    assert (run / "archive.jsonl").read_bytes() == archive
    r = cli("report", str(run), "-o", str(run / "archive.jsonl"))   # click's own usage error
    assert r.returncode == 2 and "is a file" in r.stderr, r.stderr
    _refused(cli("evaluate", str(ref["seeds"]), "--no-responses", "--out", "/dev/null"),
             "not a regular file")


def test_outputs_keep_modes_and_links_and_respect_the_umask(tmp_path, tmp_path_factory) -> None:
    ref = reference(tmp_path_factory)
    clean_server()
    run = _copy(ref, tmp_path / "run")
    fresh = tmp_path / "fresh.jsonl"
    r = cli("export", str(run), "--format", "test", "-o", str(fresh))
    assert r.returncode == 0, r.stderr
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~umask

    kept = tmp_path / "kept.jsonl"
    kept.write_text("old\n")
    kept.chmod(0o640)
    other_name = tmp_path / "hardlink.jsonl"
    os.link(kept, other_name)
    r = cli("export", str(run), "--format", "test", "-o", str(kept))
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640
    assert kept.stat().st_nlink == 2 and other_name.read_bytes() == kept.read_bytes() != b"old\n"

    r = cli("report", str(run), "-o", str(tmp_path / "report"))
    assert r.returncode == 0, r.stderr
    for p in (tmp_path / "report").iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask, p


def test_a_full_disk_leaves_no_partial_output(tmp_path, tmp_path_factory) -> None:
    from test_reliability_env import _mount_tmpfs

    ref = reference(tmp_path_factory)
    clean_server()
    run = _copy(ref, tmp_path / "run")
    mnt = tmp_path / "mnt"
    _mount_tmpfs(mnt, "1m")
    try:
        with open(mnt / "filler", "wb", buffering=0) as f:   # fill it to the last block
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError:
                pass
        for argv in (["export", str(run), "--format", "test", "--dedup", "1", "-o",
                      str(mnt / "test.jsonl")],
                     ["report", str(run), "-o", str(mnt / "report")]):
            r = cli(*argv)
            assert r.returncode == 1, (argv, r.stderr)
            short_stderr(r.stderr, max_lines=1)
            assert "No space left" in r.stderr and "nothing was written" in r.stderr
        left = [p for p in mnt.rglob("*") if p.is_file() and p.name != "filler"]
        assert all(p.stat().st_size > 0 and not p.name.endswith(".tmp") for p in left), left
        assert not (mnt / "test.jsonl").exists()
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
