"""Faults at the HTTP layer change nothing but the retry count; budgets stop a run before they are
exceeded and `resume` with a higher budget finishes it identically; the dry run bounds the run."""

from __future__ import annotations

import pytest
from loopback_server import FaultPlan, LoopbackServer
from test_reliability_common import (
    archive_key,
    clean_server,
    cli,
    evolve_args,
    integrity_ok,
    reference,
    responder,
    short_stderr,
    status_json,
    write_config,
)

pytestmark = pytest.mark.slow


def test_faulty_server_gives_the_same_archive_and_counts_retries(tmp_path, tmp_path_factory) -> None:
    ref = reference(tmp_path_factory)
    plan = FaultPlan(rates={"429": 0.40, "500": 0.15, "timeout": 0.02, "malformed": 0.05},
                     retry_after=0.05, timeout_sleep=3.0)
    with LoopbackServer(faults=plan, responder=responder, seed=3) as srv:
        cfg = write_config(tmp_path / "faulty.toml", srv.base_url, timeout=1.0, max_retries=12)
        run = tmp_path / "run"
        r = cli(*evolve_args(cfg, ref["seeds"], run))
        assert r.returncode == 0, r.stderr
        faults = dict(srv.stats["faults"])
    assert all(faults.get(k, 0) > 0 for k in ("429", "500")), faults
    assert sum(faults.values()) > 20, faults
    assert archive_key(run) == ref["archive"]
    st = status_json(run)
    retries = sum(e["retries"] for e in st["ledger"].values())
    assert retries > 0
    # Every injected fault was retried and counted (a retried attempt is not a paid call; a slow
    # machine may add a few genuine client timeouts on top).
    assert retries >= sum(faults.values())
    assert {k: e["calls"] for k, e in st["ledger"].items()} == \
        {k: e["calls"] for k, e in ref["status"]["ledger"].items()}
    assert integrity_ok(run / "cache.sqlite")


def _dry_run(cfg, seeds) -> dict[str, int]:
    r = cli("evolve", "--dry-run", *evolve_args(cfg, seeds, seeds.parent / "never")[1:])
    assert r.returncode == 0, r.stderr
    assert "max calls" in r.stdout and not (seeds.parent / "never").exists()
    per_role: dict[str, int] = {}
    for line in r.stdout.splitlines():
        parts = line.split()
        if parts and "/" in parts[0] and len(parts) >= 5 and parts[1].isdigit():
            role = parts[0].split("/", 1)[0]
            per_role[role] = per_role.get(role, 0) + int(parts[1])
        if parts and parts[0] == "total":
            per_role["total"] = int(parts[1])
    return per_role


def test_dry_run_bounds_the_real_run(tmp_path_factory) -> None:
    ref = reference(tmp_path_factory)
    bound = _dry_run(ref["cfg"], ref["seeds"])
    assert {"mutator", "judge", "target", "total"} <= set(bound), bound
    for role, e in ref["status"]["ledger"].items():
        assert e["calls"] <= bound[role], (role, e["calls"], bound[role])
    assert ref["status"]["calls"] <= bound["total"]


@pytest.mark.parametrize("flag,more", [("--max-calls", "100000"), ("--max-cost", "100")])
def test_budget_stops_then_resume_with_more_finishes_identically(tmp_path, tmp_path_factory,
                                                                 flag, more) -> None:
    ref = reference(tmp_path_factory)
    # Half of what the whole run spends, so the stop falls mid-run whatever the preset spends.
    stop = (str(ref["status"]["calls"] // 2) if flag == "--max-calls"
            else f"{ref['status']['cost_usd'] / 2:.6f}")
    clean_server()
    run = tmp_path / "run"
    r = cli(*evolve_args(ref["cfg"], ref["seeds"], run), flag, stop)
    assert r.returncode == 3, (r.returncode, r.stderr)
    short_stderr(r.stderr)
    assert flag in r.stderr and "budget" in r.stderr and "resume" in r.stderr
    st = status_json(run)
    assert st["state"] == "stopped (budget)"
    if flag == "--max-calls":
        assert 0 < st["calls"] <= int(stop)
    else:
        assert 0 < st["cost_usd"] <= float(stop)
    assert st["calls"] < ref["status"]["calls"]
    # The same budget again stops without exceeding it: at once for a call budget; a cost budget
    # may still fit a few calls, since the first run stopped on the worst-case cost of the calls
    # it had in flight, not on what they turned out to cost.
    r = cli("resume", str(run), "-q", flag, stop)
    assert r.returncode == 3, r.stderr
    again = status_json(run)
    if flag == "--max-calls":
        assert again["calls"] == st["calls"]
    else:
        assert again["cost_usd"] <= float(stop) and again["calls"] < ref["status"]["calls"]

    r = cli("resume", str(run), "-q", flag, more)
    assert r.returncode == 0, r.stderr
    assert archive_key(run) == ref["archive"]
    st = status_json(run)
    assert st["state"] == "finished" and st["calls"] == ref["status"]["calls"]
    assert integrity_ok(run / "cache.sqlite")


def test_cost_budget_holds_against_a_server_billing_more_than_any_estimate(tmp_path) -> None:
    """The provider bills 3 prompt tokens per character (a tokenizer far worse than byte-level
    BPE, or a hidden prompt): the run still stops inside --max-cost, and says what it did."""
    from test_reliability_common import write_seeds

    def bill(messages: list[dict[str, str]]) -> int:
        return 3 * sum(len(str(m.get("content") or "")) for m in messages)

    with LoopbackServer(responder=responder, bill_prompt=bill) as srv:
        cfg = write_config(tmp_path / "greedy.toml", srv.base_url)
        seeds = write_seeds(tmp_path / "seeds.jsonl")
        full = tmp_path / "full"
        r = cli(*evolve_args(cfg, seeds, full))
        assert r.returncode == 0, r.stderr
        total = status_json(full)["cost_usd"]
        for share in (0.5, 0.1):
            budget = round(total * share, 6)
            run = tmp_path / f"run-{share}"
            r = cli(*evolve_args(cfg, seeds, run), "--max-cost", str(budget))
            assert r.returncode == 3, (r.returncode, r.stderr)
            short_stderr(r.stderr)
            assert "it was not made" in r.stderr and "--max-cost" in r.stderr
            st = status_json(run)
            assert 0 < st["cost_usd"] <= budget, (st["cost_usd"], budget)
