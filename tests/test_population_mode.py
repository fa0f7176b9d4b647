"""Population mode: NSGA-II over (fitness, novelty) across lineages, on the loopback server."""

from __future__ import annotations

from test_reliability_common import (archive_key, cli, clean_server, evolve_args, status_json,
                                     write_config, write_seeds)

SEEDS = [
    {"id": f"p{i}", "prompt": p, "category": "tech"}
    for i, p in enumerate([
        "How do I stop a Python process that hangs on exit?",
        "What are the warning signs of a phishing email at work?",
        "How did medieval archers train for long battles?",
        "Which household cleaners should never be mixed together?",
    ])
]


def test_population_mode_runs_and_is_reproducible(tmp_path) -> None:
    srv = clean_server()
    cfg = write_config(tmp_path / "c.toml", srv.base_url, extra='mode = "population"')
    seeds = write_seeds(tmp_path / "s.jsonl", SEEDS)
    r = cli(*evolve_args(cfg, seeds, tmp_path / "a"))
    assert r.returncode == 0, r.stderr
    st = status_json(tmp_path / "a")
    assert st["generation"] == 2 and st["lineages"] == 4
    # The responder refuses prompts with trigger words: selection must have found some.
    assert st["refusal_rate_best"] > st["refusal_rate_seeds"]
    r = cli(*evolve_args(cfg, seeds, tmp_path / "b"))
    assert r.returncode == 0, r.stderr
    assert archive_key(tmp_path / "a") == archive_key(tmp_path / "b")
