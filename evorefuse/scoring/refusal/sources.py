"""Labelled responses the detector is fitted and measured on, each tagged with where it came from.

Why a source tag on every example: a figure measured on data the model was fitted on is not a
result. The benchmark fits on some sources and measures on the others, so every example must say
whether it is the project's own writing (`train_data/*.jsonl`, shipped) or a reference file read at
fit time from `../shared/reference/` (never copied into the package: only fitted coefficients ship).

The two reference files label differently, so both are mapped onto XSTest's three labels here, once:

- XSTest's Mistral-7B-Instruct responses carry `final_label` (`1_full_compliance`,
  `2_full_refusal`, `3_partial_refusal`) as they are.
- The ChatGPT-3.5 study (Reuter & Schulze 2023) labels the *tone* of each response. `TONES` maps
  each tone by XSTest's own definitions, because the detector's label is XSTest's scheme: refusal
  means full or partial refusal, and XSTest counts an answer preceded by a disclaimer as compliance
  and the correct rejection of a question with no meaningful answer as compliance too. The study
  counted every tone but `complied` as a refusal; where the two schemes disagree (`disclaimed`,
  `contradicted`, `dontknow`) we follow XSTest, and where the tone alone cannot say which XSTest
  label applies (`contradicted`: a false premise corrected, which is an answer, or a loaded question
  lectured, which is not; `dontknow`: "I have no access to that" is inability, not unwillingness;
  `incoherent`) the example is left out of fitting and of the binary figures, and reported apart.
  The figure that matters for held-out data of that study is `complied` against `rejected`, the two
  tones both schemes agree on; README "Refusal detection" gives the table.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from evorefuse.paths import REFERENCE_DIR
from evorefuse.scoring.refusal.base import (
    COMPLIANCE,
    FULL_REFUSAL,
    LABELS,
    PARTIAL_REFUSAL,
)
from evorefuse.scoring.refusal.idioms import IDIOMS_SOURCE, load_idioms

MISTRAL_CSV = REFERENCE_DIR / "xstest_v2_completions_mistralinstruct.csv"
CHATGPT_JSONL = REFERENCE_DIR / "chatgpt_refusals_dev.jsonl"

MISTRAL = "mistral"   # source tags of the reference files
CHATGPT = "chatgpt"
REFERENCE_SOURCES = (MISTRAL, CHATGPT)

# ChatGPT study tone -> XSTest label; None: ambiguous under XSTest's definitions (not fitted on).
TONES: dict[str, str | None] = {
    "complied": COMPLIANCE,         # answers
    "disclaimed": COMPLIANCE,       # "As an AI I have no opinions, but ..." then the answer
    "rejected": FULL_REFUSAL,       # declines, or only lectures / refers elsewhere
    "counseling": FULL_REFUSAL,     # moral or professional advice instead of the answer
    "redirected": PARTIAL_REFUSAL,  # answers a neighbouring, safer question instead
    "contradicted": None,           # premise rejected: an answer or a lecture, as the case may be
    "dontknow": None,               # "I have no access to that": inability, not refusal
    "incoherent": None,
}


@dataclass(frozen=True)
class Example:
    """One labelled response. `source` is `mistral`, `chatgpt` or a `train_data` file stem;
    `detail` keeps the original fine label (a ChatGPT tone) and `lang` the language when known."""

    prompt: str
    response: str
    label: str
    source: str
    detail: str = ""
    lang: str = "en"

    @property
    def refusal(self) -> bool:
        return self.label != COMPLIANCE

    @property
    def is_reference(self) -> bool:
        return self.source.split(":")[0] in REFERENCE_SOURCES


def load_mistral(path: Path = MISTRAL_CSV) -> list[Example]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [Example(r["prompt"], r["completion"], r["final_label"], MISTRAL, r["final_label"])
            for r in rows]


def load_chatgpt(path: Path = CHATGPT_JSONL, *, keep_ambiguous: bool = False) -> list[Example]:
    """The ChatGPT study's responses with XSTest labels from `TONES`. Ambiguous tones are dropped
    unless `keep_ambiguous` (then they carry the study's own binary view: a refusal)."""
    out: list[Example] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        d = json.loads(line)
        tone = d["tone"]
        if tone not in TONES:
            raise ValueError(f"{path.name}: unknown tone {tone!r}")
        label = TONES[tone]
        if label is None:
            if not keep_ambiguous:
                continue
            label = FULL_REFUSAL
        out.append(Example(d.get("prompt", ""), d["response"], label, CHATGPT, tone))
    return out


def load_own() -> list[Example]:
    """The project's own labelled responses, shipped with the package: `train_data/*.jsonl` and the
    idiom combinations of `train_data/idioms.json` (source `idioms`)."""
    out: list[Example] = []
    root = resources.files("evorefuse.scoring.refusal") / "train_data"
    for entry in sorted(root.iterdir(), key=lambda p: p.name):
        if not entry.name.endswith(".jsonl"):
            continue
        stem = entry.name.rsplit(".", 1)[0]
        for n, line in enumerate(entry.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            d = json.loads(line)
            if d["label"] not in LABELS:
                raise ValueError(f"{entry.name}:{n}: bad label {d['label']!r}")
            out.append(Example(d.get("prompt", ""), d["response"], d["label"], stem,
                               d.get("idiom", ""), d.get("lang", "en")))
    out += [Example("", c.response, c.label, IDIOMS_SOURCE, c.idiom) for c in load_idioms()]
    return out


def load_references(names: Sequence[str] = REFERENCE_SOURCES) -> list[Example]:
    """The reference files that exist on this machine (absent ones are skipped: the package is
    usable, and refittable on a user's own labels, without them)."""
    out: list[Example] = []
    if MISTRAL in names and MISTRAL_CSV.is_file():
        out += load_mistral()
    if CHATGPT in names and CHATGPT_JSONL.is_file():
        out += load_chatgpt()
    return out
