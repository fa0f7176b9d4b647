"""The benign gate's contract in a real run: a candidate the judge calls harmful is never benign,
whatever the seed-calibration margin, and export refuses to label safe what its record does not."""

from __future__ import annotations

import json
from typing import Any

import pytest

from loopback_server import LoopbackServer
from test_reliability_common import (SEEDS, TRIGGERS, cli, evolve_args, responder, short_stderr,
                                     write_config, write_seeds)

pytestmark = pytest.mark.slow


def strict_judge(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    """The loopback's roles, with a judge that calls every angry or violent rewrite harmful."""
    system = next((m["content"] for m in messages if m.get("role") == "system"), "")
    if "content safety reviewer" in system:
        return "No" if any(w in messages[-1]["content"].lower() for w in TRIGGERS) else "Yes"
    return responder(messages, params)


def test_a_harmful_verdict_is_never_benign_whatever_the_margin(tmp_path) -> None:
    with LoopbackServer(responder=strict_judge) as srv:
        # A margin of 1 would let anything through if calibration could move a harmful verdict.
        cfg = write_config(tmp_path / "c.toml", srv.base_url)
        cfg.write_text(cfg.read_text() + "\n[evolution]\njudge_margin = 1.0\n")
        run = tmp_path / "run"
        r = cli(*evolve_args(cfg, write_seeds(tmp_path / "s.jsonl", SEEDS), run))
        assert r.returncode == 0, r.stderr
    records = [json.loads(line) for line in (run / "archive.jsonl").read_text().splitlines()]
    judged = [x for x in records if x["strategy"] != "seed" and x.get("judge")]
    angry = [x for x in judged if any(w in (x["prompt"] or "").lower() for w in TRIGGERS)]
    assert angry, "the fake mutator writes angry rewrites"
    for x in angry:
        assert x["judge"]["verdict"] == "harmful" and x["judge"]["judge"] == "fake"
        assert x["status"] == "rejected" and x["rejected"] == "judge:harmful"
    assert any(x["status"] == "benign" for x in judged)
    out = tmp_path / "test.jsonl"
    r = cli("export", str(run), "--format", "test", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert all(row["judge_verdict"] == "harmless" for row in map(json.loads, out.read_text()
                                                                 .splitlines()))


def test_export_refuses_to_label_safe_what_the_record_calls_harmful(tmp_path) -> None:
    """An archive of an earlier version, whose margin let harmful verdicts through."""
    with LoopbackServer(responder=responder) as srv:
        cfg = write_config(tmp_path / "c.toml", srv.base_url)
        run = tmp_path / "run"
        r = cli(*evolve_args(cfg, write_seeds(tmp_path / "s.jsonl", SEEDS), run))
        assert r.returncode == 0, r.stderr
    lines = (run / "archive.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    victim = next(i for i, x in enumerate(records)
                  if x["status"] == "benign" and x["strategy"] != "seed" and x.get("k"))
    records[victim]["judge"] = {"verdict": "harmful", "votes": ["harmful"], "p_harmless": 0.2,
                                "relative_to_seed": 0.3}
    (run / "archive.jsonl").write_text("".join(json.dumps(x) + "\n" for x in records))
    for style in ("jsonl", "xstest"):
        r = cli("export", str(run), "--format", "test", "--style", style, "--all-candidates",
                "-o", str(tmp_path / f"t.{style}"))
        assert r.returncode == 2, r.stderr
        short_stderr(r.stderr, max_lines=1)
        assert "refusing to label them safe" in r.stderr and records[victim]["id"] in r.stderr
        assert not (tmp_path / f"t.{style}").exists()
    out = tmp_path / "t.csv"
    r = cli("export", str(run), "--format", "test", "--style", "xstest", "--all-candidates",
            "--exclude-judged-unsafe", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert "judged harmful or unreadable" in r.stderr
    assert records[victim]["id"] not in out.read_text()
