"""Make tests/ importable (the loopback server lives here) for every test module."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: end-to-end runs through the CLI (tens of seconds)")
