"""The gate's free checks in other languages: which measure tells a near duplicate, and where the
topic check means anything (`evolution/gate.py`).

Texts: the shipped seeds of each language (44 per set) and every framing of them in that language
(two templates per strategy), plus rewrites written for this project (`benchmarks/data/`): 33
Chinese, Japanese and Arabic rewrites of shipped seeds, and 24 German, French and Spanish
renderings of English seeds (what `evolve --language` asks the mutator for).

Near duplicates: pairs of texts of one seed (the seed and its framings) and pairs across seeds in
the same template. The cosine threshold (MiniLM, `evolution.near_duplicate`) flags a share of the Latin-script (en, de,
fr, es) same-seed pairs; the 3-gram Jaccard threshold is the one that flags the same share there
(fitted on Latin-script languages), then measured on Chinese, Japanese and Arabic, held out.

Topic: MiniLM cosine of a rewrite to its own seed against its cosine to the other seeds; and the
word (character) 3-gram overlap of `scoring.overlap` for the non-Latin ones.

    .venv/bin/python benchmarks/gate_languages.py [--write]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results import replace_section
from evorefuse.config import EvolutionSection
from evorefuse.evolution.gate import (
    MIN_SEED_SIMILARITY,
    NEAR_DUPLICATE_JACCARD,
    jaccard,
)
from evorefuse.operators.mutation import frame
from evorefuse.operators.strategies import PAPER_STRATEGIES, framings_for
from evorefuse.scoring.embeddings import embed
from evorefuse.scoring.overlap import ngram_overlap, word_ngrams
from evorefuse.seeds import load_seeds, shipped_seeds

SETS = ("default", "de", "fr", "es", "zh", "ja", "ar")
LATIN = ("default", "de", "fr", "es")
COSINE = EvolutionSection().near_duplicate
DATA = ROOT / "benchmarks" / "data"


def pairs_of(name: str) -> dict[str, np.ndarray]:
    """(cosine, jaccard) of same-seed pairs and of cross-seed pairs in one template."""
    seeds = list(load_seeds([shipped_seeds(name)]))
    lang = seeds[0].language
    texts, owner, template = [], [], []
    for i, s in enumerate(seeds):
        texts.append(s.prompt), owner.append(i), template.append(None)
        for st in PAPER_STRATEGIES:
            for v in range(len(framings_for(st, lang))):
                o = frame(s.prompt, "x", st, v, lang)
                if o.prompt:
                    texts.append(o.prompt), owner.append(i), template.append((st.name, v))
    emb = embed(texts)
    grams = [word_ngrams(t) for t in texts]
    same, cross = [], []
    by_template: dict[object, list[int]] = defaultdict(list)
    by_owner: dict[int, list[int]] = defaultdict(list)
    for j, (o, t) in enumerate(zip(owner, template)):
        by_owner[o].append(j)
        if t is not None:
            by_template[t].append(j)
    for group, out in ((by_owner, same), (by_template, cross)):
        for members in group.values():
            for a_i, a in enumerate(members):
                for b in members[a_i + 1:]:
                    if group is by_template and owner[a] == owner[b]:
                        continue
                    out.append((float(emb[a] @ emb[b]), jaccard(grams[a], grams[b])))
    return {"same": np.array(same), "cross": np.array(cross)}


def near_duplicates() -> tuple[str, float]:
    data = {name: pairs_of(name) for name in SETS}
    latin_same = np.vstack([data[n]["same"] for n in LATIN])
    target = float(np.mean(latin_same[:, 0] >= COSINE))
    grid = np.round(np.arange(0.40, 1.0, 0.01), 2)
    rates = np.array([np.mean(latin_same[:, 1] >= j) for j in grid])
    fitted = float(grid[int(np.argmin(np.abs(rates - target)))])
    rows = [f"| set | same-seed pairs | flagged by cosine >= {COSINE} | by Jaccard >= "
            f"{fitted:.2f} | cross-seed pairs | flagged by cosine | by Jaccard |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for name in SETS:
        s, c = data[name]["same"], data[name]["cross"]
        held = "" if name in LATIN else " (held out)"
        rows.append(f"| {name}{held} | {len(s)} | {np.mean(s[:, 0] >= COSINE):.3f} | "
                    f"{np.mean(s[:, 1] >= fitted):.3f} | {len(c)} | {np.mean(c[:, 0] >= COSINE):.4f}"
                    f" (max {c[:, 0].max():.3f}) | {np.mean(c[:, 1] >= fitted):.4f} "
                    f"(max {c[:, 1].max():.2f}) |")
    text = (f"Near duplicates. The cosine threshold flags {target:.3f} of the Latin-script "
            f"same-seed pairs; the 3-gram Jaccard threshold flagging the same share there is "
            f"{fitted:.2f} (the gate uses {NEAR_DUPLICATE_JACCARD}).\n\n" + "\n".join(rows))
    return text, fitted


def topic() -> str:
    seeds = {s.id: s.prompt for n in SETS for s in load_seeds([shipped_seeds(n)])}
    rows = ["| pairs | n | own seed: min / median | other seeds: median / max | own seed below "
            f"{MIN_SEED_SIMILARITY} | other seeds at or above it |",
            "| --- | --- | --- | --- | --- | --- |"]

    def add(label: str, own: list[float], other: list[float]) -> None:
        rows.append(f"| {label} | {len(own)} | {min(own):.2f} / {np.median(own):.2f} | "
                    f"{np.median(other):.2f} / {max(other):.2f} | "
                    f"{np.mean(np.array(own) < MIN_SEED_SIMILARITY):.2f} | "
                    f"{np.mean(np.array(other) >= MIN_SEED_SIMILARITY):.2f} |")

    rewrites = [json.loads(ln) for ln in (DATA / "rewrites.jsonl").read_text().splitlines()]
    carried = [json.loads(ln) for ln in (DATA / "carried.jsonl").read_text().splitlines()]
    groups = [(f"{lang} rewrite vs {lang} seed, MiniLM", lang, "cos",
               [(seeds[r["seed_id"]], r["rewrite"]) for r in rewrites
                if r["seed_id"].startswith(lang)]) for lang in ("zh", "ja", "ar")]
    groups += [(f"{lang} rewrite vs {lang} seed, 3-gram overlap", lang, "ngram",
                [(seeds[r["seed_id"]], r["rewrite"]) for r in rewrites
                 if r["seed_id"].startswith(lang)]) for lang in ("zh", "ja", "ar")]
    groups += [(f"{lang} rendering vs English seed, MiniLM", lang, "cos",
                [(seeds[r["seed_id"]], r["rewrite"]) for r in carried if r["language"] == lang])
               for lang in ("de", "fr", "es")]
    for label, _, measure, pairs in groups:
        a, b = [p[0] for p in pairs], [p[1] for p in pairs]
        if measure == "cos":
            sim = embed(a) @ embed(b).T
        else:
            ga, gb = [word_ngrams(t) for t in a], [word_ngrams(t) for t in b]
            sim = np.array([[ngram_overlap(x, y) for y in gb] for x in ga])
        n = len(pairs)
        add(label, [float(sim[i, i]) for i in range(n)],
            [float(sim[i, j]) for i in range(n) for j in range(n) if i != j])
    return ("Topic. A measure separates topics when a rewrite's own seed scores above every "
            "other seed; the gate checks the topic (MiniLM, threshold "
            f"{MIN_SEED_SIMILARITY}) only for Latin-script texts of the seed's own language.\n\n"
            + "\n".join(rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="replace the section in RESULTS.md")
    args = ap.parse_args()
    t0 = time.perf_counter()
    dup, _ = near_duplicates()
    body = (f"Command: `.venv/bin/python benchmarks/gate_languages.py --write` "
            f"({platform.machine()}, 2 shared cores, {time.perf_counter() - t0:.0f} s for the "
            "near-duplicate part). Texts: the shipped seeds with every framing in their language; "
            "rewrites and renderings written for this project (`benchmarks/data/`).\n\n"
            + dup + "\n\n" + topic())
    print(body)
    if args.write:
        replace_section("gate_languages", body)


if __name__ == "__main__":
    main()
