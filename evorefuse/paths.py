"""Where the repository's shipped data lies: a module of its own, low in the package, so that
anything (the seed loader, the harm classifier's training data) can name it without importing the
modules that read it."""

from __future__ import annotations

from pathlib import Path

SHIPPED_SEEDS_DIR = Path(__file__).resolve().parent.parent / "seeds"
"""The repository's `seeds/` folder (present in a checkout or an editable install)."""

REFERENCE_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "reference"
"""The labelled reference data (XSTest, human-labelled responses, EvoRefuse-Test) beside the
repository, `../shared/reference/`: read by training scripts, tests and benchmarks, never copied in."""
