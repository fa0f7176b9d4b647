"""The table `evaluate` prints without --json: diversity, refusal rates per target overall, per
category and per language, the category x language matrix, and the overlap with benchmarks.

Why a matrix: over-refusal differs by language as much as by topic (a model may refuse a German
question about knives that it answers in English), and a mean over a mixed set hides it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evorefuse.against import TooClose
from evorefuse.languages import language_name

LABEL = 28


def format_table(r: dict[str, Any]) -> str:
    """The human-readable summary of an `evaluate` report."""
    name = Path(r["dataset"]).name
    lines = [f"{name}: {r['n']} prompts",
             f"lexical diversity: MSTTR {r['msttr']:.4f}  MTLD {r['mtld']:.2f}  HD-D {r['hdd']:.4f}  "
             f"distinct-1 {r['distinct_1']:.4f}  distinct-2 {r['distinct_2']:.4f}"]
    if r.get("embedding_diversity") is not None:
        lines.append(f"embedding diversity (mean pairwise cosine distance): "
                     f"{r['embedding_diversity']:.4f}")
    if r["refusal_rate"]:
        lines += _rates(r, name)
        if len(r.get("per_language") or {}) > 1:
            lines += _matrix(r)
    if "overlap" in r:
        lines += _overlap(r["overlap"], r["n"])
    return "\n".join(lines)


def _rates(r: dict[str, Any], name: str) -> list[str]:
    targets = list(r["refusal_rate"])

    def row(label: str, rates: dict[str, float], ci: dict[str, list[float]]) -> str:
        return f"  {label[:LABEL]:<{LABEL}} " + " ".join(
            f"{rates[t]:>7.3f} [{ci[t][0]:.3f},{ci[t][1]:.3f}]" for t in targets)

    lines = [f"refusal rate ({r.get('samples')} samples/prompt, detector {r.get('detector')}, "
             "95% Wilson interval):",
             f"  {'dataset / category':<{LABEL}} " + " ".join(f"{t:>22}" for t in targets),
             row(name, r["refusal_rate"], r["ci"])]
    for cat, e in r["per_category"].items():
        lines.append(row(f"  {cat} ({e['n']})", e["refusal_rate"], e["ci"]))
    if r.get("per_language"):
        lines.append(f"  {'by language':<{LABEL}}")
        for lang, e in r["per_language"].items():
            lines.append(row(f"  {lang} {language_name(lang)} ({e['n']})", e["refusal_rate"],
                             e["ci"]))
    return lines


def _matrix(r: dict[str, Any]) -> list[str]:
    """One category x language block per target: refusal rate (prompts) in each cell."""
    languages = list(r["per_language"])
    lines = []
    for target in r["refusal_rate"]:
        lines.append(f"category x language, {target} (refusal rate, prompts):")
        lines.append(f"  {'category':<{LABEL}} " + " ".join(f"{lang:>12}" for lang in languages))
        for cat, by_lang in r["matrix"].items():
            cells = []
            for lang in languages:
                e = by_lang.get(lang)
                cells.append(f"{e['refusal_rate'][target]:>6.2f} ({e['n']:>3})" if e else
                             f"{'-':>12}")
            lines.append(f"  {cat[:LABEL]:<{LABEL}} " + " ".join(cells))
    return lines


def _overlap(o: dict[str, Any], n: int) -> list[str]:
    lines = [f"overlap with {', '.join(o['against'])}: {o['too_close']} of {n} prompts too close "
             f"(similarity >= {o['similarity']:.2f} or 3-gram overlap >= {o['ngram_overlap']:.2f})"]
    lines += [f"  {TooClose(item['id'], item['prompt'], item['match']).describe()}"
              for item in o["items"]]
    return lines
