"""The names a judge role can hold, without loading any judge (the config checks them)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

CLASSIFIER = "classifier"
"""The shipped offline prompt-harm classifier."""
CLASSIFIER_ALIASES = frozenset({CLASSIFIER, "local"})
"""`local` in the judge role is the classifier: the embedded 135M model is worse than chance
as a judge (benchmarks/RESULTS.md, gate)."""
EMBEDDED_LLM = "local-llm"
"""Judge name of the embedded model asked as an LLM judge anyway (model `local`)."""

Mode = Literal["auto", "classifier", "llm", "tiered"]
MODES: tuple[str, ...] = get_args(Mode)


def is_classifier(name: str) -> bool:
    return name in CLASSIFIER_ALIASES


def llm_judge_names(names: Sequence[str]) -> list[str]:
    """The judge names that need an endpoint (everything but the classifier), in order, once."""
    return list(dict.fromkeys(n for n in names if not is_classifier(n)))


def judge_model_name(name: str) -> str:
    """The model (config name) an LLM judge runs on."""
    return "local" if name == EMBEDDED_LLM else name
