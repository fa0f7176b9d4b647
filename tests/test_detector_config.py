"""Tiered refusal detection from the config (`roles.detector_judge`, `roles.detector_band`): the
run's detector re-asks a judge model only about the responses `auto` is unsure of, bad settings
stop at load with the file, line and key, and the dry run bounds the judge's calls."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from loopback_server import LoopbackServer
from test_reliability_common import cli, env
from test_tiered_detector import CLEAR_ANSWER, CLEAR_REFUSAL, UNSURE, _band

from evorefuse.config import load_config
from evorefuse.errors import InputError
from evorefuse.estimate import dry_run_estimate
from evorefuse.scoring.refusal.tiered import JUDGE_CALLS_PER_RESPONSE, TieredDetector
from evorefuse.session import Session

KEY_ENV = "EVOREFUSE_DETECTOR_CONFIG_KEY"
# Each prompt names the answer the target gives to it.
ANSWERS = {"egg": CLEAR_ANSWER, "lock": CLEAR_REFUSAL, "views": UNSURE[0], "market": UNSURE[1]}


def _target(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    asked = messages[-1]["content"]
    return next(text for word, text in ANSWERS.items() if word in asked)


def _judge(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    return "The assistant declines to give a view.\nLABEL: 2"


def _config(path: Path, target_url: str, judge_url: str, roles: str) -> Path:
    path.write_text(f"""
[models.t]
model = "t"
base_url = "{target_url}"
api_key_env = "{KEY_ENV}"
supports_logprobs = false
[models.j]
model = "j"
base_url = "{judge_url}"
api_key_env = "{KEY_ENV}"
supports_logprobs = false
price_in = 1.0
price_out = 2.0
[roles]
targets = ["t"]
{roles}
""")
    return path


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test-not-a-real-key")


def test_the_run_detector_is_tiered_and_asks_the_judge_only_about_unsure_answers(
        tmp_path: Path) -> None:
    lo, hi = _band()
    data = tmp_path / "prompts.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Tell me about {w}."}) + "\n" for w in ANSWERS))
    with LoopbackServer(responder=_target) as target, LoopbackServer(responder=_judge) as judge:
        cfg = _config(tmp_path / "c.toml", target.base_url, judge.base_url,
                      f'detector_judge = "j"\ndetector_band = [{lo}, {hi}]')
        session = Session.standalone(load_config(cfg), models=["t", "j"],
                                     cache_path=tmp_path / "s.sqlite", run_id="t")
        assert isinstance(session.detector, TieredDetector)
        assert session.detector.band == (lo, hi)
        session.close()
        out = tmp_path / "report.json"
        r = cli("evaluate", str(data), "-c", str(cfg), "--out", str(out),
                "--cache", str(tmp_path / "cache.sqlite"), "--no-embeddings")
        assert r.returncode == 0, r.stderr
        assert judge.requests == len(UNSURE)   # the clear answers never reach the judge
    report = json.loads(out.read_text())
    rates = {p["prompt"]: p["refusal_rate"]["t"] for p in report["prompts"]}
    assert rates["Tell me about egg."] == 0.0 and rates["Tell me about lock."] == 1.0
    # The judge called both unsure answers refusals (LABEL: 2).
    assert rates["Tell me about views."] == 1.0 and rates["Tell me about market."] == 1.0


def test_detect_with_a_configured_detector_judge_is_tiered_and_cached(tmp_path: Path) -> None:
    lo, hi = _band()
    data = tmp_path / "responses.jsonl"
    texts = [CLEAR_ANSWER, CLEAR_REFUSAL, *UNSURE]
    data.write_text("".join(json.dumps({"response": t}) + "\n" for t in texts))
    home = env(HOME=str(tmp_path))  # the request cache of `detect` lives under ~/.cache
    with LoopbackServer(responder=_judge) as judge:
        cfg = _config(tmp_path / "c.toml", judge.base_url, judge.base_url,
                      f'detector_judge = "j"\ndetector_band = [{lo}, {hi}]')
        outs = []
        for run in range(2):
            out = tmp_path / f"out{run}.jsonl"
            r = cli("detect", str(data), "-c", str(cfg), "--out", str(out), env_=home)
            assert r.returncode == 0, r.stderr
            outs.append([json.loads(line)["refusal"] for line in out.read_text().splitlines()])
            # Only the unsure responses reach the judge, and only the first time (cache).
            assert judge.requests == len(UNSURE), (run, r.stderr)
        # The judge called both unsure responses refusals (LABEL: 2); the clear ones are auto's.
        assert outs[0] == outs[1] == [False, True, True, True]
        plain = cli("detect", str(data), "-c", str(cfg), "--detector", "pattern",
                    "--out", str(tmp_path / "p.jsonl"), env_=home)
        assert plain.returncode == 0 and judge.requests == len(UNSURE)  # pattern is never tiered


@pytest.mark.parametrize("roles, key", [
    ('detector = "pattern"\ndetector_judge = "j"', "roles.detector_judge"),
    ('detector_judge = "nobody"', "roles.detector_judge"),
    ('detector_judge = "j"\ndetector_band = [0.9, 0.1]', "roles.detector_band"),
    ('detector_band = [0.5]', "roles.detector_band"),
])
def test_bad_detector_settings_stop_at_load(tmp_path: Path, roles: str, key: str) -> None:
    cfg = _config(tmp_path / "c.toml", "http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1", roles)
    name = key.split(".")[1]
    line = 1 + next(i for i, text in enumerate(cfg.read_text().splitlines())
                    if text.startswith(f"{name} ="))
    with pytest.raises(InputError) as info:
        load_config(cfg)
    assert info.value.field == key and info.value.line == line, str(info.value)


def test_the_dry_run_bounds_the_detector_judge_calls(tmp_path: Path) -> None:
    url = "http://127.0.0.1:9/v1"
    plain = dry_run_estimate(load_config(_config(tmp_path / "a.toml", url, url, "")), 3)
    tiered = dry_run_estimate(load_config(
        _config(tmp_path / "b.toml", url, url, 'detector_judge = "j"')), 3)
    assert "detector/j" not in plain.per_role
    judge = tiered.per_role["detector/j"]
    target = tiered.per_role["target/t"]
    # Every target response may fall in the band: one call and one repair turn for each.
    assert judge.calls >= JUDGE_CALLS_PER_RESPONSE * target.calls
    assert judge.cost > 0
    assert sum(r.cost for r in tiered.per_role.values()) == pytest.approx(
        sum(r.cost for r in plain.per_role.values()) + judge.cost)
