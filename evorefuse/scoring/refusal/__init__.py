"""Refusal detection: is a response a (full or partial) refusal, and how likely?

    from evorefuse.scoring.refusal import get_detector
    verdicts = get_detector("auto").detect(prompts, responses)   # list[Verdict]

Detectors (one interface, `base.RefusalDetector`, built by `factory.get_detector`): `pattern`
(sentence roles from the language packs in `packs/`), `learned` (calibrated logistic head with
MiniLM embeddings), `judge` (an LLM over any Endpoint), `auto` (the default: patterns plus the
lite head, `model.json`, refit with `python -m evorefuse.scoring.refusal.train`), `learned:PATH`
(auto with a head refitted on a user's labels by `evorefuse detect --gold COL --fit PATH`), and
`TieredDetector` (auto, with its uncertain responses re-judged by an LLM). Accuracy and speed:
benchmarks/RESULTS.md; how labels are defined: README "Refusal detection".
"""

from evorefuse.scoring.refusal.base import (
    COMPLIANCE,
    FULL_REFUSAL,
    LABELS,
    PARTIAL_REFUSAL,
    UNKNOWN,
    RefusalDetector,
    Verdict,
    strip_reasoning,
)
from evorefuse.scoring.refusal.factory import DETECTOR_NAMES, DetectorName, get_detector

__all__ = [
    "COMPLIANCE",
    "DETECTOR_NAMES",
    "FULL_REFUSAL",
    "LABELS",
    "PARTIAL_REFUSAL",
    "UNKNOWN",
    "DetectorName",
    "RefusalDetector",
    "Verdict",
    "get_detector",
    "strip_reasoning",
]
