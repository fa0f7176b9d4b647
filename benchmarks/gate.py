"""The benign gate's prompt judges: how well they keep harmful prompts out on prompts they were not
fitted on, how fast they are, and whether seed calibration helps.

    python benchmarks/gate.py [--write] [--folds 5] [--llm-n 80]

About an hour on two cores: seven fine-tuning runs of the tuned model (three folds, and one per
source left out), whose scores are kept in `--tuned-cache` so that a rerun resumes.

Measured:
- cross-validated: every training prompt scored by a classifier refitted without its fold
  (`train.fit_model`, the shipped procedure, band included; the tuned model's scores out of fold);
- across sources: refitted without one source and scored on it (XSTest, EvoRefuse-Test, the
  project's chat-style and multilingual prompts), the tuned model fine-tuned without it too, and
  the shipped model on the check sets it never saw (`data/heldout/`: two sets of chat-style
  English, and requests in ten other languages);
- each of those also for the logistic head alone (the model before the tuned one was stacked on
  it), fitted on the same prompts in the same run: the baseline;
- every figure with the classifier's language rule (a prompt in a language it cannot read is
  never `harmless`) and, where the rule changes something, also without it;
- seed calibration: each out-of-fold candidate paired with its nearest shipped seed (MiniLM
  cosine); among `controversial` candidates, how many harmless and harmful ones the rule
  "P(harmless) >= the seed's - margin" would let through;
- the embedded 135M LLM judge (`local-llm`) on a balanced sample of the check set;
- speed: prompts/s of the classifier in process as a ratio to embedding the same prompts alone
  (the same run, so the load of a shared machine cancels), and of the LLM judge.
Positive class: harmful. "kept out" = verdict not harmless (recall); "let through" = harmless
verdict on a harmless prompt. Intervals: Wilson 95%.

`--write` replaces the `## gate` section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import sys
import time
from datetime import date
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results import load_note, replace_section  # noqa: E402
from evorefuse.scoring import embeddings  # noqa: E402
from evorefuse.scoring.harm import train as T  # noqa: E402
from evorefuse.scoring.harm import tune  # noqa: E402
from evorefuse.scoring.harm.classifier import (  # noqa: E402
    Band,
    HarmClassifier,
    HarmModel,
    never_harmless,
    shipped_model,
)
from evorefuse.scoring.harm.data import (  # noqa: E402
    REFERENCE_DIR,
    Example,
    load_heldout,
    load_own,
    load_reference,
)
from evorefuse.scoring.harm.features import embedding_text  # noqa: E402
from evorefuse.scoring.stats import wilson_interval  # noqa: E402

MARGINS = (0.02, 0.05, 0.1)
OPERATING_POINTS = (0.02, 0.03, 0.04, 0.05, 0.07, 0.10)
"""Shares of harmful training prompts the band's upper bound may let through (`HARMFUL_PASS`)."""
CHAT_STYLE_SOURCES = {"en_chat", "en_everyday5", "en_harmful6"}
"""The project's prompts written like chatbot logs (lowercase, typos, everyday and toxic asks)."""


def rates(p: np.ndarray, harmful: np.ndarray, band: Band,
          unreadable: np.ndarray | None = None) -> dict[str, float]:
    """Figures of P(harmless) under `band`; prompts in `unreadable` are never let through (the
    classifier's language rule, `classifier.never_harmless`)."""
    out = (p < band.hi) if unreadable is None else (p < band.hi) | unreadable
    tp, fp = int(np.sum(out & harmful)), int(np.sum(out & ~harmful))
    n_h, n_ok = int(harmful.sum()), int((~harmful).sum())
    return {"n": len(p), "n_harmful": n_h, "n_harmless": n_ok,
            "kept_out": tp / n_h if n_h else float("nan"), "kept_k": tp,
            "passed": (n_ok - fp) / n_ok if n_ok else float("nan"), "passed_k": n_ok - fp,
            "precision": tp / (tp + fp) if tp + fp and n_h else float("nan"),
            "harmful_verdict_on_harmless": float(np.mean(p[~harmful] < band.lo)) if n_ok else
            float("nan")}


def fmt(k: int, n: int) -> str:
    if n == 0:
        return "-"
    lo, hi = wilson_interval(k, n)
    return f"{k / n:.3f} ({lo:.2f}-{hi:.2f})"


def row(name: str, r: dict[str, float], how: str) -> str:
    return (f"| {name} | {r['n_harmful']} / {r['n_harmless']} | {fmt(r['kept_k'], r['n_harmful'])}"
            f" | {fmt(r['passed_k'], r['n_harmless'])} | "
            + ("-" if np.isnan(r["precision"]) else f"{r['precision']:.3f}") + f" | {how} |")


def cross_validate(examples: list[Example], feats: T.Features, folds: int
                   ) -> tuple[np.ndarray, list[Band]]:
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray([T.KINDS.index(e.kind) for e in examples])
    p = np.zeros(len(examples))
    bands = []
    for k, (tr, te) in enumerate(StratifiedKFold(folds, shuffle=True, random_state=1)
                                 .split(np.zeros(len(y)), y)):
        m = T.fit_model(feats.take(tr), [examples[i] for i in tr])
        p[te] = T.predict(m, feats.take(te))
        bands.append(Band(*m["band"]))
        print(f"  fold {k + 1}/{folds}: band {m['band']}", file=sys.stderr)
    return p, bands


def by_source(examples: Sequence[Example], name: str) -> np.ndarray:
    group = {"project chat-style": lambda e: e.source in CHAT_STYLE_SOURCES,
             "project multilingual": lambda e: e.lang != "en",
             "XSTest": lambda e: e.source == "xstest",
             "EvoRefuse-Test": lambda e: e.source == "evo_test"}[name]
    return np.asarray([group(e) for e in examples])


def held_back(examples: Sequence[Example]) -> np.ndarray:
    """Which prompts the classifier's language rule never lets through (`never_harmless`)."""
    return np.asarray([never_harmless(e.prompt) is not None for e in examples], dtype=bool)


def operating_points(examples: list[Example], feats: T.Features, y: np.ndarray,
                     unreadable: np.ndarray) -> list[str]:
    """How the choice of `HARMFUL_PASS` was made: each candidate value, fitted without the
    project's chat-style prompts and measured on them (the goal's kind of prompt)."""
    mask = by_source(examples, "project chat-style")
    tr, te = np.flatnonzero(~mask), np.flatnonzero(mask)
    lines = ["| harmful training prompts the band may let through | band | chat-style harmful kept "
             "out | chat-style harmless let through |", "|---|---|---|---|"]
    for share in OPERATING_POINTS:
        m = T.fit_model(feats.take(tr), [examples[i] for i in tr], harmful_pass=share)
        r = rates(T.predict(m, feats.take(te)), y[te], Band(*m["band"]), unreadable[te])
        mark = (" **(`evorefuse judge`)**" if share == T.HARMFUL_PASS else
                " **(the gate inside a run)**" if share == T.GATE_HARMFUL_PASS else "")
        lines.append(f"| {share:.2f}{mark} | {m['band'][0]:.3f}-{m['band'][1]:.3f} | "
                     f"{fmt(r['kept_k'], r['n_harmful'])} | "
                     f"{fmt(r['passed_k'], r['n_harmless'])} |")
    return lines


def calibration(examples: list[Example], p: np.ndarray, feats: T.Features, band: Band
                ) -> list[str]:
    """Seed calibration on out-of-fold scores: who would it let through?"""
    seeds = [i for i, e in enumerate(examples) if e.source == "seeds"]
    cands = [i for i, e in enumerate(examples) if e.source != "seeds" and e.kind != "everyday"]
    nearest = np.asarray(seeds)[np.argmax(feats.E[cands] @ feats.E[seeds].T, axis=1)]
    lines = ["| margin | controversial candidates (harmless / harmful) | harmless let through "
             "| harmful let through |", "|---|---|---|---|"]
    contro = np.asarray([band.unsure(p[i]) for i in cands])
    harmful = np.asarray([examples[i].harmful for i in cands])
    for m in MARGINS:
        ok = np.asarray([p[i] >= p[s] - m for i, s in zip(cands, nearest)]) & contro
        lines.append(f"| {m} | {int((contro & ~harmful).sum())} / {int((contro & harmful).sum())} | "
                     f"{int((ok & ~harmful).sum())} | {int((ok & harmful).sum())} |")
    return lines


def speed(texts: list[str], clf: HarmClassifier, repeats: int = 3) -> tuple[float, float]:
    """(classifier verdicts/s, embedding-alone prompts/s), median of interleaved runs, cold cache."""
    clf_t, emb_t = [], []
    for _ in range(repeats):
        embeddings.clear_cache()
        t = time.perf_counter()
        embeddings.embed([embedding_text(x) for x in texts])
        emb_t.append(time.perf_counter() - t)
        embeddings.clear_cache()
        t = time.perf_counter()
        clf.verdicts(texts)  # the verdicts: the language rule included
        clf_t.append(time.perf_counter() - t)
    return len(texts) / float(np.median(clf_t)), len(texts) / float(np.median(emb_t))


def llm_judge(sample: list[Example]) -> tuple[np.ndarray, list[str], float]:
    from evorefuse.models.endpoint import Endpoint
    from evorefuse.models.ledger import Ledger
    from evorefuse.models.local import LocalBackend
    from evorefuse.models.spec import LOCAL_SPEC
    from evorefuse.scoring.harm.judge import build_prompt_judge

    ep = Endpoint(LocalBackend(LOCAL_SPEC), LOCAL_SPEC, None, Ledger())
    judge = build_prompt_judge(["local-llm"], {"local-llm": ep})

    async def go():
        await judge.judge([sample[0].prompt], seed=0)  # load the model before timing
        t = time.perf_counter()
        v = await judge.judge([e.prompt for e in sample], seed=0)
        return v, time.perf_counter() - t

    verdicts, elapsed = asyncio.run(go())
    p = np.asarray([np.nan if v.p_harmless is None else v.p_harmless for v in verdicts])
    return p, [v.verdict for v in verdicts], len(sample) / elapsed


class TunedScores:
    """The tuned model's log-odds the stack is fitted and measured on, computed once per run (each
    is a fine-tuning run of minutes) and kept in `folder`, so a rerun after a crash resumes.

    Out of fold for every training prompt (`train.tuned_out_of_fold`, the shipped procedure); for a
    source left out, its prompts are scored by an adapter fitted without that source, and the
    other prompts keep those out-of-fold scores (their adapters saw the left-out source, but the
    stack and band fitted on them never see its scores)."""

    def __init__(self, examples: list[Example], folder: Path) -> None:
        self.examples = examples
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def _cached(self, name: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
        path = self.folder / f"{name}.npy"
        if path.is_file():
            return np.load(path)
        value = compute()
        np.save(path, value)
        return value

    def out_of_fold(self) -> np.ndarray:
        return T.tuned_out_of_fold(self.examples, cache=self.folder,
                                   log=lambda m: print(f"  {m}", file=sys.stderr, flush=True))

    def left_out(self, name: str, mask: np.ndarray) -> np.ndarray:
        """Scores of the prompts in `mask` by an adapter fitted on all the others."""
        def compute() -> np.ndarray:
            print(f"  tuned model without {name}: fine-tuning", file=sys.stderr, flush=True)
            adapter = T.fit_tuned([e for e, m in zip(self.examples, mask) if not m])
            return tune.score(adapter, [embedding_text(e.prompt)
                                        for e, m in zip(self.examples, mask) if m])

        key = T.tuned_key(self.examples, "left out", mask.tolist())
        return self._cached(f"tuned-left-out-{key}", compute)

    def without(self, name: str, mask: np.ndarray) -> np.ndarray:
        held = self.left_out(name, mask)
        out = self.out_of_fold().copy()
        out[mask] = held
        return out


def with_tuned(feats: T.Features, scores: np.ndarray | None) -> T.Features:
    return T.Features(feats.E, feats.X, scores)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--llm-n", type=int, default=80, help="LLM judge sample (0: skip)")
    ap.add_argument("--reference", type=Path, default=REFERENCE_DIR)
    ap.add_argument("--tuned-cache", type=Path,
                    default=T.TUNED_CACHE,
                    help="where the tuned model's scores are kept between runs (delete to refit)")
    args = ap.parse_args()
    if not (args.reference / "xstest_prompts.csv").is_file():
        print(f"reference data not available in {args.reference}", file=sys.stderr)
        return 2
    load0 = os.getloadavg()[0]
    started = time.perf_counter()
    examples = load_own() + load_reference(args.reference)
    check_sets = {key: load_heldout(key) for key in ("everyday", "chat")}
    held = check_sets["everyday"]
    feats = T.features(examples)
    y = np.asarray([e.harmful for e in examples])
    unreadable = held_back(examples)
    shipped = shipped_model()

    tuned = TunedScores(examples, args.tuned_cache)
    print("tuned model: out-of-fold scores", file=sys.stderr)
    feats_t = with_tuned(feats, tuned.out_of_fold())

    print("cross-validating", file=sys.stderr)
    p_cv, bands = cross_validate(examples, feats_t, args.folds)
    band_cv = Band(float(np.median([b.lo for b in bands])), float(np.median([b.hi for b in bands])))
    p_cv_head, bands_head = cross_validate(examples, feats, args.folds)
    band_head = Band(float(np.median([b.lo for b in bands_head])),
                     float(np.median([b.hi for b in bands_head])))
    # Per fold each prompt was judged with its own fold's band; the median band is close to each.
    lines = ["| prompts | harmful / harmless | harmful kept out (recall) | harmless let through "
             "| precision | how measured |", "|---|---|---|---|---|---|"]
    lines.append(row("all training sources", rates(p_cv, y, band_cv, unreadable),
                     f"{args.folds}-fold CV, refitted per fold (median band {band_cv.lo:.2f}-"
                     f"{band_cv.hi:.2f}); tuned scores out of {T.TUNED_FOLDS} folds"))
    lines.append(row("all training sources, P(harmless) alone", rates(p_cv, y, band_cv),
                     f"the same, without the language rule ({int(unreadable.sum())} prompts it "
                     "holds back)"))
    lines.append(row("all training sources, head alone (before)",
                     rates(p_cv_head, y, band_head, unreadable),
                     f"the same folds, without the tuned model (median band {band_head.lo:.2f}-"
                     f"{band_head.hi:.2f})"))
    for name in ("XSTest", "EvoRefuse-Test", "project chat-style", "project multilingual"):
        mask = by_source(examples, name)
        tr, te = np.flatnonzero(~mask), np.flatnonzero(mask)
        f_name = with_tuned(feats, tuned.without(name, mask))
        m = T.fit_model(f_name.take(tr), [examples[i] for i in tr])
        p = T.predict(m, f_name.take(te))
        lines.append(row(name, rates(p, y[te], Band(*m["band"]), unreadable[te]),
                         f"refitted without these {len(te)} prompts, tuned model too"))
        if unreadable[te].any():
            lines.append(row(f"{name}, P(harmless) alone", rates(p, y[te], Band(*m["band"])),
                             f"the same, without the language rule "
                             f"({int(unreadable[te].sum())} of these prompts it holds back)"))
        m = T.fit_model(feats.take(tr), [examples[i] for i in tr])
        lines.append(row(f"{name}, head alone (before)",
                         rates(T.predict(m, feats.take(te)), y[te], Band(*m["band"]),
                               unreadable[te]), "the same, without the tuned model"))
        print(f"  across sources: {name} done", file=sys.stderr)
    clf = HarmClassifier()
    head_alone = HarmModel.from_json(T.fit_model(feats, examples))
    for name, key in (("everyday-style check set", "everyday"), ("chat-style check set 2", "chat")):
        held_set = check_sets[key]
        p_set = clf.p_harmless([e.prompt for e in held_set])
        y_set = np.asarray([e.harmful for e in held_set])
        rule = held_back(held_set)
        for band, how in ((shipped.band, "`evorefuse judge`"), (shipped.gate_band, "run's gate")):
            lines.append(row(f"**{name}**" if band is shipped.band else f"{name}, gate band",
                             rates(p_set, y_set, band, rule),
                             f"shipped model, {how} band {band.lo}-{band.hi}; never fitted on"))
        p_head = HarmClassifier(head_alone).p_harmless([e.prompt for e in held_set])
        lines.append(row(f"{name}, head alone (before)",
                         rates(p_head, y_set, head_alone.band, rule),
                         f"the head refitted on the same data without the tuned model, band "
                         f"{head_alone.band.lo}-{head_alone.band.hi}"))
    langs = load_heldout("languages")
    p_lang = clf.p_harmless([e.prompt for e in langs])
    y_lang = np.asarray([e.harmful for e in langs])
    lang_unreadable = held_back(langs)
    n_lang = len({e.lang for e in langs})
    lines.append(row(f"**{n_lang}-language check set**",
                     rates(p_lang, y_lang, shipped.band, lang_unreadable),
                     "shipped model; written after it was fitted, never fitted on"))
    lines.append(row(f"{n_lang}-language check set, P(harmless) alone",
                     rates(p_lang, y_lang, shipped.band),
                     f"the same, without the language rule ({int(lang_unreadable.sum())} of "
                     f"{len(langs)} prompts it holds back)"))

    calib = calibration(examples, p_cv, feats, band_cv)
    chat_style = by_source(examples, "project chat-style")
    operating = operating_points(examples, with_tuned(feats, tuned.without(
        "project chat-style", chat_style)), y, unreadable)

    texts = [e.prompt for e in held] + [e.prompt for e in examples[:600]]
    clf_s, emb_s = speed(texts, clf)
    llm_lines: list[str] = []
    if args.llm_n:
        rng = random.Random(0)
        toxic = [e for e in held if e.harmful]
        benign = [e for e in held if not e.harmful]
        k = min(args.llm_n // 2, len(toxic), len(benign))
        sample = rng.sample(toxic, k) + rng.sample(benign, k)
        p_llm, labels, llm_s = llm_judge(sample)
        ys = np.asarray([e.harmful for e in sample])
        out = np.asarray([lab != "harmless" for lab in labels])
        tp, tn = int(np.sum(out & ys)), int(np.sum(~out & ~ys))
        unknown = sum(lab == "unknown" for lab in labels)
        mean_tox, mean_ok = np.nanmean(p_llm[ys]), np.nanmean(p_llm[~ys])
        out_c = np.asarray([v.verdict != "harmless"
                            for v in clf.verdicts([e.prompt for e in sample])])
        llm_lines = [
            f"Embedded 135M model as judge (`local-llm`) on a balanced sample of the check set "
            f"({k} toxic, {k} benign, seed 0): toxic kept out {fmt(tp, k)}, benign let through "
            f"{fmt(tn, k)}, {unknown} unknown; mean P(harmless) {mean_tox:.3f} on toxic vs "
            f"{mean_ok:.3f} on benign. The shipped classifier on the same sample: toxic kept out "
            f"{fmt(int(np.sum(out_c & ys)), k)}, benign let through {fmt(int(np.sum(~out_c & ~ys)), k)}.",
            f"Speed of the LLM judge: {llm_s:.1f} prompts/s (one 2-token call each, logprobs), "
            f"{clf_s / llm_s:.0f}x slower than the classifier."]
    body = "\n".join([
        f"Command: `python benchmarks/gate.py --write` · date {date.today()} · machine: nproc "
        f"{os.cpu_count()}, Python {platform.python_version()}, {load_note(load0)}.",
        "",
        "Positive class: harmful. Kept out = verdict not `harmless` (controversial, harmful or "
        "unknown); let through = `harmless` on a harmless prompt. Intervals: Wilson 95%. Goal on "
        "held-out human-labelled everyday prompts: kept out >= 0.95, let through >= 0.80.",
        "",
        *lines,
        "",
        "Operating point: the band's upper bound lets through a chosen share of the harmful "
        "training prompts (out of fold). Each share, fitted without the project's chat-style "
        "prompts and measured on them. `evorefuse judge` uses the share whose margins over the "
        "two goals are most even (`train.HARMFUL_PASS`); the benign gate inside a run is a step "
        "stricter (`train.GATE_HARMFUL_PASS`: evolution selects candidates near the threshold).",
        "",
        *operating,
        "",
        "Seed calibration (`passes_gate` with a margin) on the cross-validated scores: each "
        "candidate paired with its nearest shipped seed; only `controversial` candidates can move.",
        "",
        *calib,
        "",
        *llm_lines,
        "",
        f"Classifier speed: {clf_s:.0f} prompts/s in process ({len(texts)} prompts, cold "
        f"embedding cache, median of 3), {clf_s / emb_s:.2f}x the speed of embedding the same "
        f"prompts alone (the baseline, same run): " + (
            f"the cues, the head and the tuned model cost {(1 / clf_s - 1 / emb_s) * 1000:.2f} "
            "ms per prompt." if clf_s < emb_s else "the cues, the head and the tuned model cost "
            "less than the noise of a shared machine between runs."),
        f"Whole benchmark: {(time.perf_counter() - started) / 60:.1f} min wall time.",
    ])
    print(body)
    if args.write:
        replace_section("gate", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
