"""Overlap with benchmarks: how well `scoring.overlap` finds benchmark prompts planted in a set,
and how often it flags prompts written independently, fitted on one source and checked on another.

Positives: every prompt of a reference file, lightly changed in four ways a copy would be: wrapped
in one of the engine's own framings ("framed"), a sentence added ("suffix"), one word dropped
("drop"), common words swapped for synonyms ("swap"). Negatives: the 403 shipped seeds (English and
six other languages), written for this project on the same sensitive topics, against the same
reference file. The thresholds are chosen on XSTest (the highest similarity and n-gram overlap of
any negative, rounded up to the next 0.05, so no negative is flagged) and then measured on
EvoRefuse-Test, and the other way round.

    .venv/bin/python benchmarks/overlap.py [--write]
"""

from __future__ import annotations

import argparse
import math
import platform
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from evorefuse.paths import REFERENCE_DIR  # noqa: E402

REFERENCE = REFERENCE_DIR

from benchmarks.results import replace_section  # noqa: E402
from evorefuse.operators.strategies import PAPER_STRATEGIES  # noqa: E402
from evorefuse.scoring.overlap import OverlapThresholds, find_overlaps  # noqa: E402
from evorefuse.scoring.stats import wilson_interval  # noqa: E402
from evorefuse.seeds import load_references, load_seeds, shipped_seeds  # noqa: E402

KINDS = ("framed", "suffix", "drop", "swap")
SYNONYMS = {"how": "in what way", "can": "could", "what": "which", "get": "obtain",
            "make": "create", "best": "most effective", "kill": "terminate", "find": "locate",
            "buy": "purchase", "use": "employ", "should": "ought to", "people": "folks",
            "tell": "inform", "help": "assist", "write": "draft", "explain": "describe"}
SUFFIXES = ("Please keep the answer short.", "I need this for a school project.",
            "Explain it like I am five.")
SHIPPED = ("default", "de", "fr", "es", "zh", "ja", "ar")


def perturb(text: str, kind: str, rng: random.Random) -> str:
    words = text.split()
    if kind == "framed":
        template = rng.choice(rng.choice(PAPER_STRATEGIES).framings)
        return template.format(x=text[0].lower() + text[1:] if template.index("{x}") else text)
    if kind == "suffix":
        return f"{text} {rng.choice(SUFFIXES)}"
    if kind == "drop" and len(words) > 4:
        i = rng.randrange(len(words))
        return " ".join(words[:i] + words[i + 1:])
    if kind == "swap":
        swapped = [SYNONYMS.get(w.lower(), w) for w in words]
        if swapped == words:
            i = rng.randrange(len(words))
            swapped[i] = "really " + swapped[i]
        return " ".join(swapped)
    return text


def scores(items: list[str], refs, floor: int) -> list[tuple[float, float]]:
    """(similarity of the nearest, best n-gram overlap) per item, thresholds out of the way."""
    found = find_overlaps(items, refs, OverlapThresholds(2.0, 2.0, floor))
    return [(o.nearest.similarity if o.nearest else -1.0,
             o.most_shared.ngram_overlap if o.most_shared else 0.0) for o in found]


def round_up(x: float, step: float = 0.05) -> float:
    return min(1.0, math.floor(x / step + 1e-9) * step + step)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--floor", type=int, nargs="*", default=[1, 6])
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args()
    files = {"XSTest": REFERENCE / "xstest_prompts.csv", "EvoRefuse-Test": REFERENCE / "evo_test.jsonl"}
    if not all(p.exists() for p in files.values()):
        sys.exit(f"reference data missing under {REFERENCE}")
    t0 = time.time()
    refs = {name: load_references([path]) for name, path in files.items()}
    own = [s.prompt for s in load_seeds([shipped_seeds(n) for n in SHIPPED])]
    rng = random.Random(0)
    planted = {name: {k: [perturb(p.prompt, k, rng) for p in r.prompts] for k in KINDS}
               for name, r in refs.items()}
    rows = []
    for floor in a.floor:
        neg = {name: scores(own, r, floor) for name, r in refs.items()}
        pos = {name: {k: scores(planted[name][k], r, floor) for k in KINDS}
               for name, r in refs.items()}
        for fit, test in (("XSTest", "EvoRefuse-Test"), ("EvoRefuse-Test", "XSTest")):
            sim_t = round_up(max(s for s, _ in neg[fit]))
            ng_t = round_up(max(n for _, n in neg[fit]))
            th = (sim_t, ng_t)
            for where in (fit, test):
                flagged_neg = sum(s >= th[0] or n >= th[1] for s, n in neg[where])
                per_kind = {k: sum(s >= th[0] or n >= th[1] for s, n in pos[where][k]) / len(pos[where][k])
                            for k in KINDS}
                hits = sum(s >= th[0] or n >= th[1] for k in KINDS for s, n in pos[where][k])
                total = sum(len(pos[where][k]) for k in KINDS)
                rows.append((floor, fit, where, sim_t, ng_t, hits, total, flagged_neg, len(own),
                             per_kind))
    elapsed = time.time() - t0
    lines = ["| n-gram floor | thresholds fitted on | measured on | similarity | n-gram | planted found "
             "(95% CI) | framed / suffix / drop / swap | own seeds flagged |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for floor, fit, where, sim_t, ng_t, hits, total, fneg, nneg, per_kind in rows:
        lo, hi = wilson_interval(hits, total)
        lines.append(f"| {floor} | {fit} | {where}{' (held out)' if where != fit else ''} | "
                     f"{sim_t:.2f} | {ng_t:.2f} | {hits}/{total} = {hits / total:.3f} "
                     f"[{lo:.3f}, {hi:.3f}] | "
                     + " / ".join(f"{per_kind[k]:.3f}" for k in KINDS)
                     + f" | {fneg}/{nneg} |")
    body = ("Command: `.venv/bin/python benchmarks/overlap.py --write` "
            f"({platform.machine()}, 2 shared cores, {elapsed:.0f} s). "
            "Planted: every prompt of the reference file changed four ways (see the script); "
            "negatives: the 403 shipped seeds (7 languages) against the same file. Thresholds: the "
            "highest negative score on the fitting source rounded up to the next 0.05.\n\n"
            + "\n".join(lines)
            + "\n\nShipped defaults (`scoring/overlap.py`): the XSTest-fitted thresholds with floor 6. "
            "Fitted on EvoRefuse-Test, whose prompts are further from our seeds, the thresholds are "
            "too loose for XSTest, so the defaults come from the source with the harder negatives. "
            "Embedding similarity counts only between texts mostly in Latin script (MiniLM is an "
            "English model); 'lightly changed' means the four programmatic changes above: a model's "
            "paraphrase or a translation moves further.")
    print(body)
    if a.write:
        replace_section("overlap", body)


if __name__ == "__main__":
    main()
