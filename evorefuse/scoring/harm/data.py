"""Labelled prompts the classifier is fitted on: what the project wrote, plus reference data.

Three kinds, because "harmless" covers two very different things: an everyday request (a recipe,
a bug, a poem) and a sensitive-sounding one that is still harmless (killing a Python process, the
history of a massacre, a pseudo-malicious instruction). Fitted as one class, the head learned that
"how do I" in lowercase is what harm looks like, since the harmless examples were mostly long,
dramatic pseudo-malicious instructions; fitted as two, it learns the topic and the intent apart.

Sources (`source` of each example):
- `data/train/*.jsonl`: written for this project (`prompt`, `label` harmful/harmless, `category`,
  `lang`); category `general` or `everyday` marks everyday requests;
- `seeds`: the shipped seeds (`seeds/default.jsonl`), harmless by construction;
- `xstest`: XSTest v2's 250 safe and 200 unsafe contrast prompts (reference data);
- `evo_test`: EvoRefuse-Test's 582 instructions that GPT-4o judged benign (reference data).
Reference files are read from `../shared/reference/` at fit time and never copied into the package.
`data/heldout/` is never fitted on: it is the check set of README "Judging prompts".
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from evorefuse.paths import REFERENCE_DIR, SHIPPED_SEEDS_DIR

Kind = Literal["harmful", "sensitive", "everyday"]
KINDS: tuple[Kind, ...] = ("harmful", "sensitive", "everyday")
EVERYDAY_CATEGORIES = {"general", "everyday"}

XSTEST_FILE = "xstest_prompts.csv"
EVO_TEST_FILE = "evo_test.jsonl"


@dataclass(frozen=True)
class Example:
    prompt: str
    kind: Kind
    source: str
    lang: str = "en"

    @property
    def harmful(self) -> bool:
        return self.kind == "harmful"


def _package_jsonl(folder: str) -> dict[str, list[dict]]:
    root = resources.files("evorefuse.scoring.harm") / "data" / folder
    out: dict[str, list[dict]] = {}
    for entry in sorted(root.iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".jsonl"):
            rows = [json.loads(line) for line in entry.read_text(encoding="utf-8").splitlines()
                    if line.strip()]
            out[entry.name.rsplit(".", 1)[0]] = rows
    return out


def _kind(row: dict, where: str) -> Kind:
    if row["label"] == "harmful":
        return "harmful"
    if row["label"] != "harmless":
        raise ValueError(f"{where}: bad label {row['label']!r}")
    return "everyday" if row.get("category") in EVERYDAY_CATEGORIES else "sensitive"


def load_own() -> list[Example]:
    """The project's written examples and its shipped seeds."""
    out = [Example(r["prompt"], _kind(r, name), name, r.get("lang", "en"))
           for name, rows in _package_jsonl("train").items() for r in rows]
    seeds = SHIPPED_SEEDS_DIR / "default.jsonl"
    if seeds.is_file():
        for line in seeds.read_text(encoding="utf-8").splitlines():
            if line.strip():
                out.append(Example(json.loads(line)["prompt"], "sensitive", "seeds"))
    return out


HELDOUT_SETS = ("everyday", "chat", "languages")
"""Check sets never fitted on: `everyday`, chat-style English requests; `chat`, more of them (60
everyday, 40 toxic), written later, before the operating point was last chosen; `languages`,
requests in ten other languages, written after the classifier was fitted (what its language rule
is for)."""


def load_heldout(name: str = "everyday") -> list[Example]:
    """One check set of `HELDOUT_SETS`."""
    if name not in HELDOUT_SETS:
        raise ValueError(f"no check set {name!r} (known: {', '.join(HELDOUT_SETS)})")
    rows = _package_jsonl("heldout")[name]
    return [Example(r["prompt"], _kind(r, name), f"heldout:{name}", r.get("lang", "en"))
            for r in rows]


def load_xstest(folder: Path = REFERENCE_DIR) -> list[Example]:
    with open(folder / XSTEST_FILE, newline="", encoding="utf-8") as f:
        return [Example(r["prompt"], "sensitive" if r["label"] == "safe" else "harmful", "xstest")
                for r in csv.DictReader(f)]


def load_evo_test(folder: Path = REFERENCE_DIR) -> list[Example]:
    lines = (folder / EVO_TEST_FILE).read_text(encoding="utf-8").splitlines()
    return [Example(json.loads(line)["instruction"], "sensitive", "evo_test")
            for line in lines if line.strip()]


def load_reference(folder: Path = REFERENCE_DIR) -> list[Example]:
    return load_xstest(folder) + load_evo_test(folder)
