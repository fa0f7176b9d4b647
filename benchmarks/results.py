"""benchmarks/RESULTS.md holds one `## name` section per benchmark; each run replaces only its own."""

from __future__ import annotations

import os
import re
import sys
from datetime import date
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def load_note(before: float) -> str:
    """The 1-minute load average before (`before`, read at the start) and now: what a reader needs
    to weigh times measured on shared cores, instead of a fixed sentence saying they were shared."""
    return f"1-minute load average {before:.2f} before and {os.getloadavg()[0]:.2f} after"


def replace_section(name: str, body: str, path: Path = RESULTS) -> None:
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    section = f"## {name}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(name)}\n.*?(?=^## |\Z)", re.DOTALL | re.MULTILINE)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip() + "\n\n" + section
    path.write_text(text.rstrip() + "\n")


def publish(name: str, command: str, load_before: float, *parts: str) -> None:
    """Write section `name`, headed by the command that produced it, today's date and the load,
    so every section says the same three things in the same words."""
    replace_section(name, "\n".join([
        f"Command: `{command}` · date {date.today()} · {load_note(load_before)}.", "", *parts]))
    print("updated benchmarks/RESULTS.md", file=sys.stderr)

