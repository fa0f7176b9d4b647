"""Make tests/ importable (the loopback server lives here) for every test module, and give each
test its own request cache."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: end-to-end runs through the CLI (tens of seconds)")


@pytest.fixture(autouse=True)
def _private_request_cache(tmp_path_factory, monkeypatch):
    """Each test gets its own request cache instead of the user's `~/.cache/evorefuse` one: a test
    that counts a loopback server's requests must not find answers an earlier run left there (a
    reused port gives the same cache key; `test_llm_judge_from_the_config` once saw 0 requests),
    and tests must not fill the user's cache."""
    import evorefuse.session

    monkeypatch.setattr(evorefuse.session, "DEFAULT_CACHE",
                        tmp_path_factory.mktemp("request-cache") / "evaluate.sqlite")
