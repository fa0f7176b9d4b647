"""Fluent offline operators: what separates the embedded mutator's garbled rewrites from fluent
ones, the threshold of `operators.intent` chosen on one half of the seed categories and checked on
the other (and on rewrites labelled after it was fixed), the lexicon's coverage of the seeds, and
the share of fluent, on-intent offspring in an evolved set with and without the changes.

Labelling procedure (labels stored in `benchmarks/fluency_labels.jsonl`, one row per text, set by
hand after `collect` / `sample`): each text is read next to its seed and given two labels, without
looking at any score:
- `fluent`: it is grammatical (small slips a native speaker makes, such as a lower-case letter
  after a full stop, are fine) and reads as something a person would type to an assistant;
  garbled words, broken or nonsensical sentences, and statements or orders addressed to nobody
  make it false;
- `on_intent`: answering it would answer the seed's main request (added emotion, context or a
  story around it is fine); false when the ask changed, narrowed to another thing or vanished.
Sets: `fit` (rewrites labelled before the threshold was chosen), `held-out` (rewrites collected
and labelled after), and one set per evolved run (`before`, `after`).

Steps (the machine was shared; `collect` runs the embedded mutator with one llama.cpp thread):
    .venv/bin/python benchmarks/fluency.py collect [--half A|B] [--first-rewrite N] [--set NAME]
    .venv/bin/python benchmarks/fluency.py fit [--write]
    .venv/bin/python benchmarks/fluency.py sample RUN_DIR NAME [-n N]
    .venv/bin/python benchmarks/fluency.py effect BEFORE AFTER [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
from collections import defaultdict
from itertools import pairwise
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
LABELS = ROOT / "benchmarks" / "fluency_labels.jsonl"
DEMO_SEEDS = ROOT / "seeds" / "demo.jsonl"

from benchmarks.results import replace_section
from evorefuse.scoring.stats import wilson_interval


def read_labels() -> list[dict[str, Any]]:
    if not LABELS.exists():
        return []
    return [json.loads(line) for line in LABELS.read_text().splitlines() if line.strip()]


def append_rows(rows: list[dict[str, Any]]) -> None:
    known = {(r["set"], r["text"]) for r in read_labels()}
    with LABELS.open("a") as f:
        for r in rows:
            if (r["set"], r["text"]) not in known:
                known.add((r["set"], r["text"]))
                f.write(json.dumps(r, ensure_ascii=False) + "\n")


HALF_A = ("chemistry_safety", "cyber_defence", "drugs_medical", "extremism_research",
          "fraud_prevention", "hate_speech_analysis")
"""The categories of one half (the other: privacy_safety, self_harm_support, sexual_health,
violent_words, weapons_history_fiction): thresholds are fitted on one half and measured on the
other, both ways round."""

# --- collect: rewrites of seeds the demo does not use -------------------------------------------
async def _collect(per_category: int, rewrites: int, half: str | None, first: int = 0,
                   name: str = "fit") -> None:
    """Rewrites of a fixed random sample of seeds, appended to the labels file as they come
    (`half` A or B: only that half's categories, so two processes can share the work)."""
    from evorefuse.config import load_config
    from evorefuse.evolution.rng import derive_seed
    from evorefuse.models.ledger import Ledger
    from evorefuse.models.registry import Registry
    from evorefuse.operators.mutation import mutate
    from evorefuse.operators.strategies import PAPER_STRATEGIES
    from evorefuse.seeds import load_seeds, shipped_seeds

    # One llama.cpp thread: on the shared two-core machine two threads spin-wait on each other
    # and the mutator ran about ten times slower (sampling does not depend on the thread count
    # beyond float rounding).
    os.cpu_count = lambda: 1
    cfg = load_config(None)
    demo = {json.loads(line)["id"] for line in DEMO_SEEDS.read_text().splitlines()}
    seeds = [s for s in load_seeds([shipped_seeds("default")]).seeds if s.id not in demo]
    rng = random.Random(7)
    by_cat: dict[str, list[Any]] = defaultdict(list)
    for s in seeds:
        by_cat[s.category or ""].append(s)
    chosen = [s for cat in sorted(by_cat) for s in rng.sample(by_cat[cat], per_category)]
    if half is not None:
        chosen = [s for s in chosen if (s.category in HALF_A) == (half == "A")]
    endpoint = Registry(cfg.model, None, Ledger()).endpoint("local")
    for i, s in enumerate(chosen):
        for j in range(first, first + rewrites):
            strategy = random.Random(f"{s.id}|{j}").choice(PAPER_STRATEGIES)
            o = await mutate(endpoint, s.prompt, s.id, strategy, seed=derive_seed(7, s.id, j),
                             temperature=cfg.evolution.mutator_temperature,
                             max_tokens=cfg.evolution.mutator_max_tokens)
            print(f"{i}/{len(chosen)} {strategy.name}: {o.rejected or o.prompt}", flush=True)
            if o.prompt:
                append_rows([{"set": name, "seed_id": s.id, "category": s.category,
                              "seed": s.prompt, "operator": strategy.name, "text": o.prompt,
                              "fluent": None, "on_intent": None}])


# --- sample: offspring of an evolved set ----------------------------------------------------------
def sample_run(run_dir: Path, name: str, n: int) -> list[dict[str, Any]]:
    """A fixed random sample of `n` benign offspring (generation >= 1) of a run."""
    from evorefuse.runstore import RunStore

    store = RunStore.open(run_dir)
    seeds = {s["id"]: s["prompt"] for s in store.seeds()}
    offspring = [r for r in store.archive() if r["generation"] >= 1 and r["status"] == "benign"]
    picked = random.Random(11).sample(offspring, min(n, len(offspring)))
    return [{"set": name, "seed_id": r["seed_id"], "category": r.get("category"),
             "seed": seeds[r["seed_id"]], "operator": r["strategy"], "text": r["prompt"],
             "fluent": None, "on_intent": None} for r in picked]


# --- fit: which measurement separates the labels, thresholds fitted on one half ----------------------
FEATURES = ("mean_logprob", "slor", "seed_similarity")


class LikelihoodScorer:
    """The embedded model's likelihood of a text (what `operators.intent` found does not work):
    one forward pass with logits at every position, one thread (two spin-wait on a busy
    machine)."""

    def __init__(self) -> None:
        from llama_cpp import Llama

        from evorefuse.models.local import gguf_path

        self.llm = Llama(model_path=str(gguf_path()), n_ctx=512, n_batch=512, n_threads=1,
                         n_threads_batch=1, logits_all=True, verbose=False)
        self.unigram = self._logprobs([self.llm.token_bos()])[0]

    def _logprobs(self, tokens: list[int]) -> Any:
        import numpy as np

        self.llm.reset()
        self.llm.eval(tokens)
        logits = np.array(self.llm.scores[: len(tokens)], dtype=np.float64)
        top = logits.max(axis=1, keepdims=True)
        return logits - top - np.log(np.exp(logits - top).sum(axis=1, keepdims=True))

    def scores(self, text: str) -> tuple[float, float]:
        """(mean token log-probability, SLOR: its mean gain over each token without context)."""
        import numpy as np

        tokens = self.llm.tokenize(text.encode(), add_bos=True)[:512]
        targets = np.asarray(tokens[1:])
        lp = self._logprobs(tokens)[np.arange(len(targets)), targets]
        return float(lp.mean()), float((lp - self.unigram[targets]).mean())


def features(rows: list[dict[str, Any]]) -> list[dict[str, float]]:
    from evorefuse.operators.intent import IntentCheck

    scorer = LikelihoodScorer()
    out = []
    for r in rows:
        mean, slor = scorer.scores(r["text"])
        out.append({"mean_logprob": mean, "slor": slor,
                    "seed_similarity": IntentCheck.similarity(r["text"], r["seed"])})
    return out


def auc(pos: list[float], neg: list[float]) -> float:
    """P(a positive scores above a negative), ties half: how well a feature ranks the labels."""
    if not pos or not neg:
        return float("nan")
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def best_threshold(values: list[float], good: list[bool]) -> float:
    """The cut (keep values >= it) with the best balanced accuracy on these labels."""
    def balanced(t: float) -> float:
        kept_good = sum(v >= t for v, g in zip(values, good) if g) / max(1, sum(good))
        cut_bad = sum(v < t for v, g in zip(values, good) if not g) / max(1, len(good) - sum(good))
        return (kept_good + cut_bad) / 2
    cuts = sorted(set(values))
    mids = [(a + b) / 2 for a, b in pairwise(cuts)] or cuts
    return max(mids, key=lambda t: (balanced(t), -t))


def _rate(k: int, n: int) -> str:
    lo, hi = wilson_interval(k, n)
    return f"{k}/{n} ({k / n:.0%}, {lo:.0%}-{hi:.0%})" if n else "0/0"


def check_figures(rows: list[dict[str, Any]], similarity: list[float],
                  threshold: float) -> dict[str, str]:
    """What the intent check with this threshold keeps and rejects of labelled rows."""
    kept = [v >= threshold for v in similarity]
    good = [bool(r["fluent"] and r["on_intent"]) for r in rows]
    return {"good kept": _rate(sum(k and g for k, g in zip(kept, good)), sum(good)),
            "bad rejected": _rate(sum(not k and not g for k, g in zip(kept, good)),
                                  len(good) - sum(good)),
            "good among kept": _rate(sum(k and g for k, g in zip(kept, good)), sum(kept)),
            "good before": _rate(sum(good), len(good))}


def fit(write: bool) -> None:
    from evorefuse.operators import lexicon
    from evorefuse.operators.intent import MIN_INTENT_SIMILARITY, IntentCheck

    rows = [r for r in read_labels() if r["set"] == "fit" and r["fluent"] is not None]
    feats = features(rows)
    lines = [(f"Fit set: {len(rows)} rewrites by the embedded mutator of {len({r['seed_id'] for r in rows})} "
             "shipped seeds that `seeds/demo.jsonl` does not use, labelled by the procedure in "
             "the module docstring (labels in `benchmarks/fluency_labels.jsonl`): "
             f"{sum(bool(r['fluent']) for r in rows)} fluent, "
             f"{sum(bool(r['on_intent']) for r in rows)} on intent, "
             f"{sum(bool(r['fluent'] and r['on_intent']) for r in rows)} both."), "",
             "How well each measurement ranks the labels (AUC, 0.5 = chance):", "",
             "| measurement | fluent | on intent | both |", "| --- | --- | --- | --- |"]
    for name in FEATURES:
        cells = []
        for label in ("fluent", "on_intent", "both"):
            ok = [bool(r["fluent"] and r["on_intent"]) if label == "both" else bool(r[label])
                  for r in rows]
            vals = [f[name] for f in feats]
            cells.append(f"{auc([v for v, o in zip(vals, ok) if o], [v for v, o in zip(vals, ok) if not o]):.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    good = [bool(r["fluent"] and r["on_intent"]) for r in rows]
    sims = [f["seed_similarity"] for f in feats]
    lines += ["", ("The intent check's threshold (seed similarity, keep >= it), fitted for `both` on one "
                   "half of the categories and measured on the other:"), "",
              ("| fitted on | similarity >= | measured on | good kept | bad rejected | "
               "good among kept | good before |"), "| --- | --- | --- | --- | --- | --- | --- |"]
    for fit_half in (True, False):
        idx_fit = [i for i, r in enumerate(rows) if (r["category"] in HALF_A) == fit_half]
        idx_test = [i for i in range(len(rows)) if i not in idx_fit]
        t = best_threshold([sims[i] for i in idx_fit], [good[i] for i in idx_fit])
        f = check_figures([rows[i] for i in idx_test], [sims[i] for i in idx_test], t)
        lines.append(f"| {'half A' if fit_half else 'half B'} | {t:.3f} | "
                     f"{'half B' if fit_half else 'half A'} | {f['good kept']} | "
                     f"{f['bad rejected']} | {f['good among kept']} | {f['good before']} |")
    t = best_threshold(sims, good)
    f = check_figures(rows, sims, MIN_INTENT_SIMILARITY)
    lines += ["", (f"Fitted on all of them: {t:.3f}; shipped: {MIN_INTENT_SIMILARITY} (on all of "
                   f"them it keeps {f['good kept']} good and rejects {f['bad rejected']} bad).")]
    held = [r for r in read_labels() if r["set"] == "held-out" and r["fluent"] is not None]
    if held:
        hs = [IntentCheck.similarity(r["text"], r["seed"]) for r in held]
        f = check_figures(held, hs, MIN_INTENT_SIMILARITY)
        lines += ["", (f"Held out: {len(held)} rewrites collected and labelled after the threshold "
                       "was fixed (same seeds, later rewrites): good kept "
                       f"{f['good kept']}, bad rejected {f['bad rejected']}, good among kept "
                       f"{f['good among kept']} (before the check {f['good before']}).")]
    lines += ["", (f"The lexicon ({len(lexicon.senses())} "
                   "harmless senses) can change these shipped seeds:"), "", *lexicon_coverage()]
    print("\n".join(lines))
    if write:
        _write_section("fit", "\n".join(lines))


def lexicon_coverage() -> list[str]:
    """Per category, how many shipped English seeds the lexicon can change (it is offered only
    there): those of the demo apart, since the lexicon was written knowing the shipped seeds."""
    from evorefuse.operators import lexicon
    from evorefuse.seeds import load_seeds, shipped_seeds

    demo = {json.loads(line)["id"] for line in DEMO_SEEDS.read_text().splitlines()}
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for s in load_seeds([shipped_seeds("default")]).seeds:
        c = counts[s.category or ""]
        c[2 if s.id in demo else 0] += 1
        c[3 if s.id in demo else 1] += lexicon.applies(s.prompt)
    lines = ["| category | seeds it changes (not in the demo) | demo seeds it changes |",
             "| --- | --- | --- |"]
    for cat in sorted(counts):
        n, k, dn, dk = counts[cat]
        lines.append(f"| {cat} | {k}/{n} | {dk}/{dn} |")
    tot = [sum(c[i] for c in counts.values()) for i in range(4)]
    lines.append(f"| all | {tot[1]}/{tot[0]} | {tot[3]}/{tot[2]} |")
    return lines


def _write_section(part: str, body: str) -> None:
    """RESULTS.md keeps one `fluency` section; its fit and effect parts are rewritten apart."""
    from benchmarks.results import RESULTS

    text = RESULTS.read_text()
    start = text.find("## fluency\n")
    current = text[start:].split("\n## ", 1)[0] if start >= 0 else ""
    parts = dict.fromkeys(("intro", "fit", "effect"), "")
    chunks = current.split("<!-- fluency:")
    for chunk in chunks[1:]:
        name, _, rest = chunk.partition(" -->")
        parts[name] = rest.strip()
    parts[part] = body.strip()
    parts["intro"] = INTRO
    out = "\n\n".join(f"<!-- fluency:{k} -->\n{v}" for k, v in parts.items() if v)
    replace_section("fluency", out)


INTRO = """Whether the mutator's rewrites are fluent and ask for the seed's thing, judged by hand by
the procedure in `benchmarks/fluency.py` (two labels per text; labels stored in
`benchmarks/fluency_labels.jsonl`). Similarities come from the default embedder (MiniLM in int8
ONNX). The machine was shared with other jobs throughout.

Commands: `.venv/bin/python benchmarks/fluency.py fit --write` (the fit part);
`.venv/bin/python benchmarks/fluency.py effect before after --write --runs BEFORE_RUN AFTER_RUN`
(the effect part; the runs are `make demo` runs, the `after` labels from
`fluency.py sample AFTER_RUN after -n 1000` then set by hand)."""


# --- effect: shares of fluent, on-intent offspring in two evolved sets ---------------------------------
EFFECT_NOTE = """Every benign offspring (generation >= 1) of two `make demo` runs (the 12 seeds of
`seeds/demo.jsonl`, 3 generations, `local` in every role, target `local-guarded`, run seed 0),
labelled by the procedure above: `before` ran the code this branch started from (framings
lower-casing the request, no lexicon, no intent check, and the judge main had then), `after` the
branch merged with main (so the judge differs too, not only this branch's changes)."""


def effect(before: str, after: str, write: bool, runs: list[Path]) -> None:
    rows = read_labels()
    lines = [EFFECT_NOTE, "",
             "| set | offspring labelled | fluent | on intent | both |", "| --- | --- | --- | --- | --- |"]
    for name in (before, after):
        rs = [r for r in rows if r["set"] == name and r["fluent"] is not None]
        lines.append(f"| {name} | {len(rs)} | {_rate(sum(bool(r['fluent']) for r in rs), len(rs))} | "
                     f"{_rate(sum(bool(r['on_intent']) for r in rs), len(rs))} | "
                     f"{_rate(sum(bool(r['fluent'] and r['on_intent']) for r in rs), len(rs))} |")
    by_op: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r["set"] in (before, after) and r["fluent"] is not None:
            op = "framing" if r["operator"].startswith("framing:") else (
                r["operator"] if r["operator"] in ("lexicon", "recombine") else "LLM rewrite")
            by_op[f"{r['set']}: {op}"].append(r)
    lines += ["", "| set: operator | n | both fluent and on intent |", "| --- | --- | --- |"]
    for key in sorted(by_op):
        rs = by_op[key]
        lines.append(f"| {key} | {len(rs)} | {_rate(sum(bool(r['fluent'] and r['on_intent']) for r in rs), len(rs))} |")
    if runs:
        lines += ["", *run_table(runs)]
    print("\n".join(lines))
    if write:
        _write_section("effect", "\n".join(lines))


def run_table(runs: list[Path]) -> list[str]:
    """Per run: the demo's table in figures, and what became of the offspring."""
    from collections import Counter

    from evorefuse.runstats import lineage_results, status_key
    from evorefuse.runstore import RunStore

    lines = [("| run | mean refusal before -> after (best) | lineages improved | offspring | "
              "benign | rejections (top 4) |"), "| --- | --- | --- | --- | --- | --- |"]
    for run in runs:
        store = RunStore.open(run)
        res = lineage_results(store)
        cands = [c for c in store.candidates() if c.generation >= 1]
        why = Counter(status_key(c) for c in cands if status_key(c).startswith("rejected"))
        top = ", ".join(f"{k.split(':')[1]} {v}" for k, v in why.most_common(4))
        lines.append(f"| {run.name} | {sum(r.before for r in res) / len(res):.2f} -> "
                     f"{sum(r.after for r in res) / len(res):.2f} | "
                     f"{sum(r.after > r.before for r in res)}/{len(res)} | {len(cands)} | "
                     f"{sum(c.benign for c in cands)} | {top} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="step", required=True)
    c = sub.add_parser("collect")
    c.add_argument("--per-category", type=int, default=3)
    c.add_argument("--rewrites", type=int, default=3)
    c.add_argument("--half", choices=("A", "B"))
    c.add_argument("--first-rewrite", type=int, default=0, help="to add rewrites to a sample")
    c.add_argument("--set", default="fit", help="fit, or held-out for rows labelled later")
    s = sub.add_parser("sample")
    s.add_argument("run_dir", type=Path)
    s.add_argument("name")
    s.add_argument("-n", type=int, default=60)
    f = sub.add_parser("fit")
    f.add_argument("--write", action="store_true")
    e = sub.add_parser("effect")
    e.add_argument("before")
    e.add_argument("after")
    e.add_argument("--write", action="store_true")
    e.add_argument("--runs", type=Path, nargs="*", default=[], help="the two run directories")
    args = ap.parse_args()
    if args.step == "collect":
        asyncio.run(_collect(args.per_category, args.rewrites, args.half, args.first_rewrite,
                             args.set))
    elif args.step == "sample":
        append_rows(sample_run(args.run_dir, args.name, args.n))
    elif args.step == "fit":
        fit(args.write)
    else:
        effect(args.before, args.after, args.write, args.runs)


if __name__ == "__main__":
    main()
