"""A server that misbehaves on purpose: huge bodies, gzip bombs, bodies that drip in, redirects,
bad URLs. Each ends in one clear line, without reading what it should not and without retrying for
long."""

from __future__ import annotations

import asyncio
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from loopback_server import FaultPlan, LoopbackServer
from test_reliability_common import KEY_ENV, cli, short_stderr, write_config

from evorefuse.config import load_config
from evorefuse.errors import InputError
from evorefuse.models import retry
from evorefuse.models.base import SamplingParams
from evorefuse.models.errors import (
    EndpointMisconfigured,
    EndpointProtocolError,
    EndpointUnavailable,
)
from evorefuse.models.openai_backend import OpenAIBackend
from evorefuse.models.spec import ModelSpec

MSGS = [{"role": "user", "content": "Say hi."}]


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test-hostile-key")
    monkeypatch.setattr(retry, "BACKOFF_BASE", 0.01)


def spec_for(base_url: str | None, **kw: Any) -> ModelSpec:
    base: dict[str, Any] = dict(name="hostile", model="m", base_url=base_url, api_key_env=KEY_ENV,
                                timeout=5.0, max_retries=3)
    base.update(kw)
    return ModelSpec(**base)


def call(spec: ModelSpec) -> Any:
    async def go() -> Any:
        backend = OpenAIBackend(spec)
        try:
            return await backend.complete(MSGS, SamplingParams(max_tokens=8))
        finally:
            await backend.aclose()
    return asyncio.run(go())


@pytest.mark.parametrize("kind", ["huge", "huge_declared", "gzip_bomb"])
def test_a_50_mb_body_is_refused_while_reading_not_held_in_memory(kind: str) -> None:
    with LoopbackServer(faults=FaultPlan(script=[kind])) as srv:
        tracemalloc.start()
        try:
            with pytest.raises(EndpointProtocolError) as info:
                call(spec_for(srv.base_url, max_response_bytes=1 << 20))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert srv.requests == 1  # not retried: it would only come back as large
    assert peak < 12 << 20, peak  # the 50 MB body was never held
    msg = str(info.value)
    assert "1,048,576 bytes" in msg and "max_response_bytes" in msg and "\n" not in msg


def test_the_default_cap_lets_normal_answers_through() -> None:
    with LoopbackServer() as srv:
        res = call(spec_for(srv.base_url))
        assert res.choices[0].text and srv.requests == 1
    assert spec_for("http://x").max_response_bytes == 8 << 20


def test_a_dripping_body_is_bounded_by_the_overall_deadline() -> None:
    plan = FaultPlan(rates={"drip": 1.0}, drip_interval=0.2)
    with LoopbackServer(faults=plan) as srv:
        with pytest.raises(EndpointUnavailable) as info:
            # Each attempt may last 1 s, but the whole request only 2.5 s: fewer attempts than
            # max_retries allows, whatever the per-attempt timeout would have permitted.
            call(spec_for(srv.base_url, timeout=1.0, deadline=2.5, max_retries=50))
        assert 1 <= srv.requests <= 4  # each attempt lasts its 1 s timeout: at most 3 fit
    assert "deadline of 2.5s" in str(info.value) and "hostile.deadline" in str(info.value)


def test_a_redirect_is_not_followed_and_names_the_location() -> None:
    with LoopbackServer() as elsewhere:
        plan = FaultPlan(rates={"redirect": 1.0}, redirect_to=elsewhere.base_url +
                         "/chat/completions")
        with LoopbackServer(faults=plan) as srv:
            with pytest.raises(EndpointMisconfigured) as info:
                call(spec_for(srv.base_url))
            assert srv.requests == 1
        assert elsewhere.requests == 0  # the POST did not turn into a GET over there
    msg = str(info.value)
    assert "HTTP 302" in msg and elsewhere.base_url in msg and "hostile.base_url" in msg
    assert info.value.exit_code == 1  # during a run; `models check` reports it with exit 2


def test_the_sdk_path_does_not_follow_redirects_either() -> None:
    plan = FaultPlan(rates={"redirect": 1.0})
    with LoopbackServer(faults=plan) as srv:
        async def go() -> None:
            backend = OpenAIBackend(spec_for(srv.base_url), direct=False)
            try:
                await backend.complete(MSGS, SamplingParams(max_tokens=8))
            finally:
                await backend.aclose()
        with pytest.raises(EndpointMisconfigured, match="redirect to http://127.0.0.1:9/"):
            asyncio.run(go())


@pytest.mark.parametrize("url", ["127.0.0.1:8000/v1", "localhost/v1", "http:///v1",
                                 "ftp://example.com/v1", "http://[::1/v1", "https://h:99999/v1"])
def test_a_base_url_without_scheme_or_host_is_bad_config_at_once(url: str, tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[models.hostile]\nmodel = "m"\nbase_url = "{url}"\n')
    with pytest.raises(InputError) as info:
        load_config(cfg)
    assert info.value.field == "models.hostile.base_url" and info.value.exit_code == 2
    assert info.value.line == 3


def test_openai_base_url_from_the_environment_is_checked_too(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "api.example.com/v1")
    with pytest.raises(InputError) as info:
        OpenAIBackend(spec_for(None))
    assert info.value.field == "OPENAI_BASE_URL"


@pytest.mark.slow
def test_models_check_reports_a_redirect_as_bad_config(tmp_path: Path) -> None:
    with LoopbackServer(faults=FaultPlan(rates={"redirect": 1.0})) as srv:
        cfg = write_config(tmp_path / "c.toml", srv.base_url)
        r = cli("models", "check", "fake", "-c", str(cfg))
    assert r.returncode == 2, r.stderr
    short_stderr(r.stderr, max_lines=1)
    assert "redirect" in r.stderr and "base_url" in r.stderr


@pytest.mark.slow
def test_a_run_against_a_redirecting_server_stops_with_one_line(tmp_path: Path) -> None:
    from test_reliability_common import evolve_args, write_seeds

    with LoopbackServer(faults=FaultPlan(rates={"redirect": 1.0})) as srv:
        cfg = write_config(tmp_path / "c.toml", srv.base_url)
        seeds = write_seeds(tmp_path / "seeds.jsonl")
        r = cli(*evolve_args(cfg, seeds, tmp_path / "run"))
        assert srv.requests <= 4  # the first calls in flight, none retried
    assert r.returncode == 1, r.stderr
    short_stderr(r.stderr)
    assert "redirect" in r.stderr and "base_url" in r.stderr
