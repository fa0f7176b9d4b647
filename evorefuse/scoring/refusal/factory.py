"""Building a detector from its name: the one place that knows every detector.

Why its own module: the detectors import `base` for the shared interface; if `base` also built them,
`base` would import its own importers. Here the arrows all point down.

Names: `pattern`, `learned`, `judge`, `auto`, and `learned:PATH` for a detector file written by
`evorefuse detect FILE --gold COLUMN --fit PATH` (run the way `auto` runs: patterns, then the file's
head). A judge endpoint turns `auto` (or `learned:PATH`) into a tiered detector: only responses
whose probability falls in `band` go to the judge (`tiered.py`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

from evorefuse.errors import InputError
from evorefuse.scoring.refusal.auto import AutoDetector
from evorefuse.scoring.refusal.base import RefusalDetector
from evorefuse.scoring.refusal.judge import JudgeDetector, local_endpoint
from evorefuse.scoring.refusal.learned import (
    LearnedDetector,
    LearnedModel,
    load_model_file,
)
from evorefuse.scoring.refusal.patterns import PatternDetector
from evorefuse.scoring.refusal.tiered import DEFAULT_BAND, TieredDetector

if TYPE_CHECKING:  # pragma: no cover
    from evorefuse.models.endpoint import Endpoint

DetectorName = Literal["pattern", "learned", "judge", "auto"]
DETECTOR_NAMES: tuple[str, ...] = get_args(DetectorName)
LEARNED_FILE_PREFIX = "learned:"
NAMES_HELP = "pattern | learned | judge | auto | learned:PATH"
KNOWN = ", ".join(DETECTOR_NAMES) + ", learned:PATH"


def is_detector_name(name: str) -> bool:
    """A known name or `learned:PATH` (the file itself is checked when the detector is built)."""
    key = name.strip()
    return key.lower() in DETECTOR_NAMES or (key.lower().startswith(LEARNED_FILE_PREFIX)
                                             and len(key) > len(LEARNED_FILE_PREFIX))


def canonical_name(name: str, *, field: str = "detector") -> str:
    """`name` as `get_detector` keys it: a known name in lower case, `learned:PATH` with its path
    as written; InputError for anything else."""
    key = name.strip()
    if key.lower() in DETECTOR_NAMES:
        return key.lower()
    if is_detector_name(key):
        return LEARNED_FILE_PREFIX + key[len(LEARNED_FILE_PREFIX):]
    raise InputError(f"unknown detector {name!r} (known: {KNOWN})", field=field)


def detector_file(name: str) -> Path | None:
    """The file of a `learned:PATH` name, None for the other names."""
    key = name.strip()
    if key.lower().startswith(LEARNED_FILE_PREFIX) and is_detector_name(key):
        return Path(key[len(LEARNED_FILE_PREFIX):])
    return None


def can_tier(name: str) -> bool:
    """Whether a detector of this name can hand its uncertain responses to a detector judge
    (`roles.detector_judge`): `auto` and `learned:PATH`, which give calibrated probabilities."""
    return name.strip().lower() == "auto" or detector_file(name) is not None


def check_detector(name: str, *, field: str = "detector") -> str:
    """`canonical_name`, and for `learned:PATH` the file checked now, before any work is done."""
    key = canonical_name(name, field=field)
    file = detector_file(key)
    if file is not None:
        load_detector_file(file, field=field)
    return key


def load_detector_file(path: str | Path, *, field: str | None = None) -> LearnedModel:
    """The model in a detector file; InputError (exit 2, one line) when it is missing or is not a
    detector file."""
    try:
        return load_model_file(Path(path))
    except ValueError as exc:
        raise InputError(str(exc), field=field) from None


def get_detector(name: str, judge_endpoint: Endpoint | None = None, *,
                 tier_judge: Endpoint | None = None,
                 band: tuple[float, float] | None = None) -> RefusalDetector:
    """Build a detector by name.

    `judge_endpoint`: the endpoint of the `judge` detector (default: the embedded local model,
    offline and weak: a 135M-parameter judge is a smoke test, not a measurement).
    `tier_judge`: an endpoint that re-judges `auto`'s (or `learned:PATH`'s) uncertain responses,
    those with p_refusal in `band` (default `tiered.DEFAULT_BAND`).
    """
    key = name.strip()
    low = key.lower()
    if low == "pattern":
        return PatternDetector()
    if low == "learned":
        return LearnedDetector()
    if low == "judge":
        return JudgeDetector(judge_endpoint if judge_endpoint is not None else local_endpoint())
    if low == "auto" or is_detector_name(key):
        file = detector_file(key)
        model = None if file is None else load_detector_file(file)
        base = AutoDetector(model)
        if tier_judge is None:
            return base
        return TieredDetector(base, JudgeDetector(tier_judge), band or DEFAULT_BAND)
    raise InputError(f"unknown detector {name!r} (known: {KNOWN})", field="detector")
