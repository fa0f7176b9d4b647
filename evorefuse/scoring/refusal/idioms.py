"""Composed training examples: written openings and continuations, one recipe per idiom class.

Why compose: what makes "As an AI, I have no opinions" a refusal or not is what follows it, and the
same holds for refusals followed by alternatives (full) or by part of the answer (partial), and for
warnings followed by a complete answer (compliance). Writing every opening once and every
continuation once, then pairing them by recipe, shows the head each move in many phrasings and
contexts, so it learns the structure rather than one assistant's wording. The parts and recipes are
data (`train_data/idioms.json`); the pairing is seeded, so the examples are the same on every run.
"""

from __future__ import annotations

import json
import random
from importlib import resources
from typing import NamedTuple

from evorefuse.scoring.refusal.base import LABELS

IDIOMS_FILE = "idioms.json"
IDIOMS_SOURCE = "idioms"


class Composed(NamedTuple):
    response: str
    label: str
    idiom: str


def compose(doc: dict) -> list[Composed]:
    """Every recipe's examples: `n` combinations of its parts, one part of each kind, paired so
    each part is used about equally often."""
    parts: dict[str, list[str]] = doc["parts"]
    out: list[Composed] = []
    for k, recipe in enumerate(doc["recipes"]):
        kinds = recipe["parts"]
        label = recipe["label"]
        if label not in LABELS or any(kind not in parts for kind in kinds):
            raise ValueError(f"{IDIOMS_FILE}: recipe {recipe['idiom']!r}: bad label or part")
        rng = random.Random(f"{k}:{recipe['idiom']}")
        orders = [rng.sample(range(len(parts[kind])), len(parts[kind])) for kind in kinds]
        for i in range(recipe["n"]):
            pieces = [parts[kind][order[i % len(order)]] for kind, order in zip(kinds, orders)]
            sep = ["\n\n" if "\n" in piece else " " for piece in pieces[1:]]
            text = pieces[0] + "".join(s + p for s, p in zip(sep, pieces[1:]))
            out.append(Composed(text, label, recipe["idiom"]))
    return out


def load_idioms() -> list[Composed]:
    root = resources.files("evorefuse.scoring.refusal") / "train_data" / IDIOMS_FILE
    return compose(json.loads(root.read_text(encoding="utf-8")))
