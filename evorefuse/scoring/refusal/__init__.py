"""Refusal detection: is a response a (full or partial) refusal, and how likely?

    from evorefuse.scoring.refusal import get_detector
    verdicts = get_detector("auto").detect(prompts, responses)   # list[Verdict]

Detectors (one interface, `base.RefusalDetector`): `pattern` (language packs in `packs/`),
`learned` (calibrated logistic model, `model.json`, refit with `python -m
evorefuse.scoring.refusal.train`), `judge` (an LLM over any Endpoint) and `auto` (the default:
patterns plus the learned model's lite head). Accuracy and speed: benchmarks/RESULTS.md.
"""

from evorefuse.scoring.refusal.base import (
    COMPLIANCE,
    FULL_REFUSAL,
    LABELS,
    PARTIAL_REFUSAL,
    UNKNOWN,
    RefusalDetector,
    Verdict,
    get_detector,
    strip_reasoning,
)

__all__ = ["COMPLIANCE", "FULL_REFUSAL", "LABELS", "PARTIAL_REFUSAL", "UNKNOWN", "RefusalDetector",
           "Verdict", "get_detector", "strip_reasoning"]
