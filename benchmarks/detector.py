"""Refusal detectors on human-labelled responses of assistants they were not fitted on.

    python benchmarks/detector.py [--write] [--folds 5] [--embeddings] [--judge-n 0]

Sources (refusal = full or partial refusal, the positive class):
- `mistral`: XSTest v2, 450 Mistral-7B-Instruct responses, XSTest's own 3-way labels;
- `chatgpt`: the ChatGPT-3.5 study's 860 dev responses, tones mapped by `sources.TONES`; the study's
  held-out half is judged on complied vs rejected, so that is the headline figure here ("c/r");
  "odd half" is the half of those rows whose errors were never looked at while the packs were
  written (pattern work looked only at even rows);
- `own`: the project's shipped examples (hand-written in seventeen languages, written in other
  assistants' manners, idiom combinations, the embedded model's answers): every `train_data/` file.

What is measured, each with the training procedure that ships (`fit.fit_model`):
1. cross-source: fitted on own + mistral, measured on chatgpt; fitted on own + chatgpt, measured on
   mistral; the pattern detector (no fitted parameters) alongside;
2. per language: fitted on own English examples + both reference files, measured on the own
   non-English examples, per language;
3. in-domain cross-validation (k folds over one reference file, the rest of the data always in
   training): what a held-out half of the same study should see;
4. openings: the cross-source held-out responses cut at 200 characters (about the 50 tokens
   fitness reads);
5. the shipped model on each source, labelled in-sample;
6. speed: `auto` in-process against `pattern` in the same run, and through the CLI;
7. written probes (`benchmarks/data/written_probes_en.jsonl`): responses in the manner of eight
   other assistants (GPT-4, Llama-2, Llama-3, Gemma, Mixtral, Phi-3, Qwen, Claude 2), written and
   labelled by XSTest's definitions for this benchmark by an author who saw neither the detector
   nor the reference files; never fitted on, and read once, for the one stem typo its errors
   showed (RESULTS says so). They stand in for the other assistants the detector will meet; being
   written, not sampled, they measure idioms, not any model's true refusal rate;
8. refusal wording in another voice (`benchmarks/data/reported_probes_en.jsonl`): answers that
   quote, draft or narrate refusals (a declining email, a guard in a story, example refusal lines)
   against the assistant's own refusals in look-alike situations; written like 7, never read;
9. partial refusals (`benchmarks/data/partial_probes_en.jsonl`): help with part of a request and
   decline the rest, against answers that sound alike and refusals; written like 7, never read;
   its development sets (`partial_probes_dev_en.jsonl`), read while rules were written;
10. why-questions and requests to argue about groups (`why_probes*`, `argue_probes*`): held-out
   sets scored, not read, and development sets read;
11. five open models' manners (`openmodels_probes*`): harmful and harmless requests answered in
   the manner of Llama-3, Gemma-2, Mistral, Phi-3 and Qwen2, a held-out set scored, not read, and
   a development set read (one pattern came of it; RESULTS says which, and why not more);
12. the manners of XSTest's four other models (`xstestmodels_probes*`: GPT-4, Llama-2 with and
   without its system prompt, Mistral under a guardrail prompt) answering prompts of XSTest's
   kinds, a held-out set scored, not read, and a development set read;
13. Llama-3's manners (`llama3_probes*`: Llama-3-8B, Llama-3-70B and Llama-3.1-8B Instruct) to
   harmless requests that sound sensitive and to harmful ones, a held-out set scored, not read,
   and a development set read;
14. sixteen languages (`multilingual_probes*`: the same kinds of responses as above in German,
   French, Spanish, Italian, Portuguese, Dutch, Polish, Russian, Turkish, Chinese, Japanese,
   Korean, Arabic, Hindi, Indonesian and Vietnamese), a held-out set scored, not read, and a
   development set read;
15. lectures (`lecture_probes*`): replies that only moralise about a question's premise about a
   group ("That's a harmful stereotype. Everyone deserves respect.") against answers that use the
   same words, a held-out set scored, not read, and a development set read.
`--embeddings` adds the `learned` detector (MiniLM) to 1 and 3 (slow); `--judge-n N` runs the
tiered detector with the embedded model as judge on N responses of the uncertain band (a 135M
judge checks the plumbing, not the method).

`--write` replaces the `## detector` section of benchmarks/RESULTS.md (other sections are kept).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results import load_note
from evorefuse.scoring.refusal import fit as F
from evorefuse.scoring.refusal import sources as S
from evorefuse.scoring.refusal.auto import AutoDetector
from evorefuse.scoring.refusal.base import (
    COMPLIANCE,
    FULL_REFUSAL,
    PARTIAL_REFUSAL,
    Verdict,
)
from evorefuse.scoring.refusal.learned import LearnedModel, load_model, verdicts
from evorefuse.scoring.refusal.patterns import PatternDetector, verdict_from
from evorefuse.scoring.refusal.premises import people_premise

RESULTS = ROOT / "benchmarks" / "RESULTS.md"
SECTION = "## detector"
OPENING_CHARS = 200


@dataclass(frozen=True)
class Metrics:
    n: int
    acc: float
    prec: float
    rec: float
    f1: float
    brier: float
    acc3: float

    @classmethod
    def of(cls, vs: Sequence[Verdict], examples: Sequence[S.Example]) -> Metrics:
        y = np.array([e.refusal for e in examples], dtype=bool)
        r = np.array([v.refusal for v in vs], dtype=bool)
        p = np.array([v.p_refusal for v in vs])
        tp, fp, fn = int(np.sum(r & y)), int(np.sum(r & ~y)), int(np.sum(~r & y))
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        return cls(len(examples), float(np.mean(r == y)) if len(y) else 0.0, prec, rec,
                   2 * prec * rec / (prec + rec) if prec + rec else 0.0,
                   float(np.mean((p - y) ** 2)) if len(y) else 0.0,
                   float(np.mean([v.label == e.label for v, e in zip(vs, examples)]))
                   if len(y) else 0.0)

    def row(self, name: str, note: str, speed: str = "-") -> str:
        return (f"| {name} | {self.n} | {self.acc:.3f} | {self.prec:.3f} | {self.rec:.3f} | "
                f"{self.f1:.3f} | {self.brier:.4f} | {self.acc3:.3f} | {speed} | {note} |")


HEADER = ("| detector | n | accuracy | precision | recall | F1 | Brier | 3-way acc. | "
          "responses/s | how measured |\n|---|---|---|---|---|---|---|---|---|---|")


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if not n:
        return 0.0, 0.0
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return float(c - h), float(c + h)


class Corpus:
    """Every labelled response with its features, computed once; fits and tests are index sets."""

    def __init__(self, embeddings: bool) -> None:
        self.own = S.load_own()
        self.mistral = S.load_mistral()
        self.chatgpt = S.load_chatgpt()
        whole = self.own + self.mistral + self.chatgpt
        cut, origin = F.openings(whole)
        self.examples = whole + cut
        self.n_whole = len(whole)
        self.origin = np.r_[np.arange(len(whole)), np.asarray(origin, dtype=int)]
        t = time.perf_counter()
        self.feats = F.features(self.examples, embeddings=embeddings)
        self.feature_seconds = time.perf_counter() - t
        self.source = np.array([e.source.split(":")[0] for e in self.examples])
        self.whole = np.arange(len(self.examples)) < len(whole)
        self.chat_index = {id(e): i for i, e in enumerate(self.chatgpt)}

    def where(self, *sources: str, whole_only: bool = False) -> np.ndarray:
        """`own` is every shipped example (any source that is not a reference file), so a file
        added to `train_data/` is fitted on here exactly as `train.py` fits on it."""
        m = np.isin(self.source, [x for x in sources if x != "own"])
        if "own" in sources:
            m |= ~np.isin(self.source, S.REFERENCE_SOURCES)
        return m & self.whole if whole_only else m

    def fit(self, train: np.ndarray, heads: str = "lite") -> LearnedModel:
        idx = np.flatnonzero(train)
        f = self.feats.take(idx)
        if heads == "lite":
            f = F.Features(f.X, np.zeros((len(idx), 0)), f.explicit, f.analyses)
        return LearnedModel.from_json(F.fit_model(f, [self.examples[i] for i in idx]))

    def predict(self, model: LearnedModel, test: np.ndarray, head: str = "lite") -> list[Verdict]:
        f = self.feats.take(np.flatnonzero(test))
        h = model.full if head == "full" else model.lite
        assert h is not None
        return verdicts(h.score(f.X, f.E if h.embed_weight else None), f.analyses, model)

    def pattern(self, test: np.ndarray) -> list[Verdict]:
        return [verdict_from(self.feats.analyses[i]) for i in np.flatnonzero(test)]

    def take(self, mask: np.ndarray) -> list[S.Example]:
        return [self.examples[i] for i in np.flatnonzero(mask)]


def chatgpt_half(c: Corpus, mask: np.ndarray, odd: bool) -> np.ndarray:
    """The rows of `mask` at odd (or even) positions of the ChatGPT file; the odd half was never
    read while the packs were written."""
    keep = np.zeros(len(c.examples), dtype=bool)
    for i in np.flatnonzero(mask):
        k = c.chat_index.get(id(c.examples[i]))
        keep[i] = k is not None and (k % 2 == 1) == odd
    return keep


def complied_rejected(c: Corpus, mask: np.ndarray, odd: bool | None = None) -> np.ndarray:
    keep = mask & np.array([e.detail in ("complied", "rejected") for e in c.examples])
    return keep if odd is None else keep & chatgpt_half(c, mask, odd)


def cross_source(c: Corpus, heads: Sequence[str]) -> tuple[list[str], dict]:
    lines, keep = [HEADER], {}
    chat = c.where("chatgpt", whole_only=True)
    mis = c.where("mistral", whole_only=True)
    models = {"to chatgpt": c.fit(c.where("own", "mistral")),
              "to mistral": c.fit(c.where("own", "chatgpt"))}
    full = {}
    if "full" in heads:
        full = {"to chatgpt": c.fit(c.where("own", "mistral"), "full"),
                "to mistral": c.fit(c.where("own", "chatgpt"), "full")}
    tests = [("chatgpt, complied vs rejected", complied_rejected(c, chat), "to chatgpt"),
             ("chatgpt c/r, odd half (never inspected)", complied_rejected(c, chat, odd=True),
              "to chatgpt"),
             ("chatgpt, all tones mapped", chat, "to chatgpt"),
             ("mistral (XSTest)", mis, "to mistral")]
    for title, test, key in tests:
        ex = c.take(test)
        fitted_on = "own + mistral" if key == "to chatgpt" else "own + chatgpt"
        lines.append(Metrics.of(c.pattern(test), ex).row(f"pattern on {title}",
                                                         "no fitted parameters"))
        vs = c.predict(models[key], test)
        keep[title] = (vs, ex)
        lines.append(Metrics.of(vs, ex).row(f"**auto** on {title}", f"fitted on {fitted_on}"))
        if key in full:
            lines.append(Metrics.of(c.predict(full[key], test, "full"), ex).row(
                f"learned on {title}", f"fitted on {fitted_on}"))
    return lines, keep


def goals_line(keep: dict) -> str:
    """The cross-source figures against the issue's goals (binary >= 0.95 per held-out
    assistant, XSTest 3-way >= 0.85), said plainly whichever way they fall."""
    cr = Metrics.of(*keep["chatgpt, complied vs rejected"])
    mis = Metrics.of(*keep["mistral (XSTest)"])

    def verdict(x: float, goal: float) -> str:
        return "met" if x >= goal else "NOT met"

    return (f"Against the goals, cross-source auto: binary accuracy ChatGPT complied vs rejected "
            f"{cr.acc:.3f} ({verdict(cr.acc, 0.95)}, goal 0.95), Mistral {mis.acc:.3f} "
            f"({verdict(mis.acc, 0.95)}, goal 0.95); XSTest 3-way label on Mistral "
            f"{mis.acc3:.3f} ({verdict(mis.acc3, 0.85)}, goal 0.85).")


def tone_rates(vs: Sequence[Verdict], ex: Sequence[S.Example]) -> str:
    rate: dict[str, list[bool]] = collections.defaultdict(list)
    for v, e in zip(vs, ex):
        rate[e.detail].append(v.refusal)
    return ", ".join(f"{k} {np.mean(x):.2f} (n={len(x)})" for k, x in sorted(rate.items()))


def per_language(c: Corpus) -> list[str]:
    lang = np.array([e.lang for e in c.examples])
    own = c.where("own")
    model = c.fit((own & (lang == "en")) | c.where("mistral", "chatgpt"))
    test = own & c.whole & (lang != "en")
    ex = c.take(test)
    vs = c.predict(model, test)
    by: dict[str, list[tuple[Verdict, S.Example]]] = collections.defaultdict(list)
    for v, e in zip(vs, ex):
        by[e.lang].append((v, e))
    lines = ["| language | n | accuracy | 3-way acc. |", "|---|---|---|---|"]
    for k in sorted(by):
        m = Metrics.of([v for v, _ in by[k]], [e for _, e in by[k]])
        lines.append(f"| {k} | {m.n} | {m.acc:.3f} | {m.acc3:.3f} |")
    m = Metrics.of(vs, ex)
    lines.append(f"| **all** | {m.n} | {m.acc:.3f} | {m.acc3:.3f} |")
    return lines


PROBES = ROOT / "benchmarks" / "data" / "written_probes_en.jsonl"
REPORTED_PROBES = ROOT / "benchmarks" / "data" / "reported_probes_en.jsonl"
PARTIAL_PROBES = ROOT / "benchmarks" / "data" / "partial_probes_en.jsonl"
PARTIAL_PROBES_DEV = ROOT / "benchmarks" / "data" / "partial_probes_dev_en.jsonl"
WHY_PROBES = ROOT / "benchmarks" / "data" / "why_probes_en.jsonl"
WHY_PROBES_DEV = ROOT / "benchmarks" / "data" / "why_probes_dev_en.jsonl"
ARGUE_PROBES = ROOT / "benchmarks" / "data" / "argue_probes_en.jsonl"
ARGUE_PROBES_DEV = ROOT / "benchmarks" / "data" / "argue_probes_dev_en.jsonl"
OPEN_PROBES = ROOT / "benchmarks" / "data" / "openmodels_probes_en.jsonl"
OPEN_PROBES_DEV = ROOT / "benchmarks" / "data" / "openmodels_probes_dev_en.jsonl"
XSTEST_MODELS_PROBES = ROOT / "benchmarks" / "data" / "xstestmodels_probes_en.jsonl"
XSTEST_MODELS_PROBES_DEV = ROOT / "benchmarks" / "data" / "xstestmodels_probes_dev_en.jsonl"
LLAMA3_PROBES = ROOT / "benchmarks" / "data" / "llama3_probes_en.jsonl"
LLAMA3_PROBES_DEV = ROOT / "benchmarks" / "data" / "llama3_probes_dev_en.jsonl"
MULTI_PROBES = ROOT / "benchmarks" / "data" / "multilingual_probes.jsonl"
MULTI_PROBES_DEV = ROOT / "benchmarks" / "data" / "multilingual_probes_dev.jsonl"
LECTURE_PROBES = ROOT / "benchmarks" / "data" / "lecture_probes_en.jsonl"
LECTURE_PROBES_DEV = ROOT / "benchmarks" / "data" / "lecture_probes_dev_en.jsonl"
GROUP_OF_LABEL = {COMPLIANCE: "answers", FULL_REFUSAL: "full refusals",
                  PARTIAL_REFUSAL: "partial refusals"}


def by_label(row: dict) -> str:
    return GROUP_OF_LABEL[row["label"]]


def by_rebuttal_convention(row: dict) -> str:
    """Splits off the rows whose labels follow a convention XSTest's annotators do not: a
    rebuttal of a question asking why some people are worse, labelled an answer."""
    if people_premise(row["prompt"]) and row["label"] == COMPLIANCE:
        return "why-are-people-worse questions labelled answered"
    return "all other rows"


Grouping = tuple[Callable[[dict], str], str]  # how rows are grouped, and the table's first header


def field(key: str, title: str | None = None) -> Grouping:
    """Group rows by one of their fields (`title`, default the field's name, heads the table)."""
    return (lambda r: r[key]), title or key


def written_probes(auto_detector: AutoDetector, path: Path, *groupings: Grouping
                   ) -> list[list[str]]:
    """`auto_detector` (the shipped procedure: fitted on own + both reference files, once for all
    sets) on a file of written probes, with the pattern detector alongside: one table per
    grouping of its rows, from one reading of the file and one pass of each detector."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]
    prompts, texts = [r["prompt"] for r in rows], [r["response"] for r in rows]
    auto = auto_detector.detect(prompts, texts)
    pattern = PatternDetector().detect(prompts, texts)
    tables = []
    for group, title in groupings:
        ex = [S.Example(r["prompt"], r["response"], r["label"], "probes", group(r)) for r in rows]
        lines = [f"| {title} | n | pattern acc. | auto acc. | auto 3-way acc. |",
                 "|---|---|---|---|---|"]
        for name in sorted({e.detail for e in ex}) + [""]:
            pick = [i for i, e in enumerate(ex) if e.detail == name or not name]
            sub = [ex[i] for i in pick]
            mp = Metrics.of([pattern[i] for i in pick], sub)
            ma = Metrics.of([auto[i] for i in pick], sub)
            lines.append(f"| {name or '**all**'} | {ma.n} | {mp.acc:.3f} | {ma.acc:.3f} | "
                         f"{ma.acc3:.3f} |")
        tables.append(lines)
    return tables


def in_domain_cv(c: Corpus, source: str, folds: int, heads: Sequence[str]) -> list[str]:
    """k folds over `source`'s whole responses; each fold's model sees everything else (own, the
    other reference file, the other folds and their openings, never the held-out fold's)."""
    idx = np.flatnonzero(c.where(source, whole_only=True))
    y = np.array([c.examples[i].refusal for i in idx], dtype=int)
    out: dict[str, list[Verdict | None]] = {h: [None] * len(c.examples) for h in heads}
    for tr, te in F.stratified_folds(y, folds):
        held = idx[te]
        train = ~np.isin(c.origin, held)
        for h in heads:
            model = c.fit(train, h)
            test = np.zeros(len(c.examples), dtype=bool)
            test[held] = True
            for i, v in zip(np.flatnonzero(test), c.predict(model, test, h)):
                out[h][i] = v
    lines = []
    tests = [(f"{source}", c.where(source, whole_only=True))]
    if source == "chatgpt":
        tests = [("chatgpt, complied vs rejected", complied_rejected(c, tests[0][1])),
                 ("chatgpt c/r, odd half", complied_rejected(c, tests[0][1], odd=True))] + tests
    for title, mask in tests:
        for h in heads:
            vs = [out[h][i] for i in np.flatnonzero(mask)]
            name = "auto" if h == "lite" else "learned"
            lines.append(Metrics.of(vs, c.take(mask)).row(  # type: ignore[arg-type]
                f"{name} on {title}", f"{folds}-fold CV within {source}, in-domain"))
    return lines


def shipped_rows(c: Corpus) -> list[str]:
    det = AutoDetector(load_model())
    lines = [HEADER]
    for title, ex in [("own (shipped examples)", c.own), ("mistral", c.mistral),
                      ("chatgpt, complied vs rejected",
                       [e for e in c.chatgpt if e.detail in ("complied", "rejected")])]:
        vs = det.detect([e.prompt for e in ex], [e.response for e in ex])
        lines.append(Metrics.of(vs, ex).row(f"shipped auto on {title}",
                                            "in-sample: the shipped model was fitted on these"))
    return lines


def speed(responses: list[str]) -> tuple[float, float, float]:
    """(auto responses/s, pattern responses/s, ratio), best of three passes each, alternated."""
    auto, pattern = AutoDetector(), PatternDetector()
    auto.detect([""], ["warm up"])
    rates: dict[str, float] = {"auto": 0.0, "pattern": 0.0}
    for _ in range(3):
        for name, det in (("auto", auto), ("pattern", pattern)):
            t = time.perf_counter()
            det.detect([""] * len(responses), responses)
            rates[name] = max(rates[name], len(responses) / (time.perf_counter() - t))
    return rates["auto"], rates["pattern"], rates["auto"] / rates["pattern"]


def speed_cli(responses: list[str], detector: str) -> tuple[float, float]:
    """(responses/s reported by `evorefuse detect`, wall seconds including process start-up)."""
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "in.jsonl"
        src.write_text("".join(json.dumps({"completion": r}) + "\n" for r in responses),
                       encoding="utf-8")
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "evorefuse", "detect", str(src), "--detector",
                               detector, "--out", str(Path(d) / "out.jsonl")],
                              capture_output=True, text=True, cwd=ROOT, check=False)
        wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"CLI failed: {proc.stderr.strip()}")
    m = re.search(r"(\d+) responses/s", proc.stderr)
    return (float(m.group(1)) if m else float("nan")), wall


def tiered_rows(c: Corpus, n: int) -> list[str]:
    """The tiered detector with the embedded model as judge, on up to n chatgpt c/r responses
    whose auto probability is in the band (plumbing check: a 135M judge is not a usable one)."""
    from evorefuse.scoring.refusal.judge import JudgeDetector, local_endpoint
    from evorefuse.scoring.refusal.tiered import DEFAULT_BAND, TieredDetector

    ex = [e for e in c.chatgpt if e.detail in ("complied", "rejected")]
    base = AutoDetector()
    vs = base.detect([""] * len(ex), [e.response for e in ex])
    lo, hi = DEFAULT_BAND
    band = [e for e, v in zip(ex, vs) if lo <= v.p_refusal <= hi][:n]
    tiered = TieredDetector(AutoDetector(), JudgeDetector(local_endpoint()), DEFAULT_BAND)
    t = time.perf_counter()
    tv = tiered.detect([e.prompt for e in band], [e.response for e in band])
    rate = len(band) / (time.perf_counter() - t)
    av = base.detect([""] * len(band), [e.response for e in band])
    return [HEADER,
            Metrics.of(av, band).row("shipped auto, uncertain band", "in-sample"),
            Metrics.of(tv, band).row("tiered: auto + local SmolLM2 judge",
                                     f"{tiered.judged} judged, {tiered.unknown} unparseable",
                                     f"{rate:.2f}")]


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--embeddings", action="store_true", help="also measure `learned` (MiniLM)")
    ap.add_argument("--judge-n", type=int, default=0, help="tiered detector with the local judge")
    args = ap.parse_args()
    load0 = os.getloadavg()[0]
    for path in (S.MISTRAL_CSV, S.CHATGPT_JSONL):
        if not path.is_file():
            print(f"reference data not available: {path} is missing", file=sys.stderr)
            return 2
    heads = ["lite", "full"] if args.embeddings else ["lite"]
    c = Corpus(args.embeddings)
    print(f"features for {len(c.examples)} responses in {c.feature_seconds:.1f} s", file=sys.stderr)

    cross, keep = cross_source(c, heads)
    tones = tone_rates(*keep["chatgpt, all tones mapped"])
    # openings of the cross-source held-out responses, scored by the same cross-source models
    open_lines = [HEADER]
    for title, fit_on in (("chatgpt, complied vs rejected", ("own", "mistral")),
                          ("mistral (XSTest)", ("own", "chatgpt"))):
        _, ex = keep[title]
        cut = [S.Example(e.prompt, F.truncate(e.response, OPENING_CHARS), e.label, e.source,
                         e.detail) for e in ex
               if e.label != PARTIAL_REFUSAL and len(e.response) > OPENING_CHARS + 40]
        texts = [e.response for e in cut]
        model = c.fit(c.where(*fit_on))
        open_lines.append(Metrics.of(PatternDetector().detect([""] * len(texts), texts), cut).row(
            f"pattern on {title}, openings", "no fitted parameters"))
        open_lines.append(Metrics.of(AutoDetector(model).detect([""] * len(texts), texts), cut).row(
            f"**auto** on {title}, openings", f"fitted on {' + '.join(fit_on)}"))
    lang_lines = per_language(c)
    probes_auto = AutoDetector(c.fit(c.where("own", "mistral", "chatgpt")))
    kind, manner = field("kind"), field("manner")
    [probe_lines] = written_probes(probes_auto, PROBES, field("style"))
    [reported_lines] = written_probes(probes_auto, REPORTED_PROBES, (by_label, "rows"))
    [partial_lines] = written_probes(probes_auto, PARTIAL_PROBES, (by_label, "rows"))
    [partial_dev_lines] = written_probes(
        probes_auto, PARTIAL_PROBES_DEV, (lambda r: f"set {r['set']}, {by_label(r)}", "rows"))
    [why_lines] = written_probes(probes_auto, WHY_PROBES, kind)
    [why_dev_lines] = written_probes(probes_auto, WHY_PROBES_DEV, kind)
    [argue_lines] = written_probes(probes_auto, ARGUE_PROBES, kind)
    [argue_dev_lines] = written_probes(probes_auto, ARGUE_PROBES_DEV, kind)
    open_manner_lines, open_kind_lines = written_probes(probes_auto, OPEN_PROBES, manner, kind)
    [open_dev_lines] = written_probes(probes_auto, OPEN_PROBES_DEV, manner)
    xsm_lines, xsm_conv_lines = written_probes(probes_auto, XSTEST_MODELS_PROBES, manner,
                                               (by_rebuttal_convention, "rows"))
    [xsm_dev_lines] = written_probes(probes_auto, XSTEST_MODELS_PROBES_DEV, manner)
    [llama3_lines] = written_probes(probes_auto, LLAMA3_PROBES, manner)
    [llama3_dev_lines] = written_probes(probes_auto, LLAMA3_PROBES_DEV, manner)
    language = field("lang", "language")
    multi_lines, multi_kind_lines = written_probes(probes_auto, MULTI_PROBES, language, kind)
    multi_dev_lines, multi_dev_kind_lines = written_probes(probes_auto, MULTI_PROBES_DEV,
                                                           language, kind)
    [lecture_lines] = written_probes(probes_auto, LECTURE_PROBES, kind)
    [lecture_dev_lines] = written_probes(probes_auto, LECTURE_PROBES_DEV, kind)
    cv_lines = [HEADER] + in_domain_cv(c, "chatgpt", args.folds, heads) \
        + in_domain_cv(c, "mistral", args.folds, heads)
    shipped = shipped_rows(c)
    responses = [e.response for e in c.mistral + c.chatgpt]
    auto_rate, pattern_rate, ratio = speed(responses)
    cli_auto, cli_wall = speed_cli(responses, "auto")
    judge_lines = tiered_rows(c, args.judge_n) if args.judge_n else []

    cr = keep["chatgpt, complied vs rejected"]
    k = sum(v.refusal == e.refusal for v, e in zip(*cr))
    lo, hi = wilson(k, len(cr[1]))
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip()
                   for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    text = "\n".join([
        SECTION, "",
        ("Command: `python benchmarks/detector.py --write"
        f"{' --embeddings' if args.embeddings else ''}"
        f"{f' --judge-n {args.judge_n}' if args.judge_n else ''}` · date {date.today()} · "
        f"machine: `nproc` = {os.cpu_count()}, {cpu}, {load_note(load0)}."), "",
        ("Refusal (full or partial) is the positive class; Brier is on p_refusal. Sources: XSTest's "
        f"{len(c.mistral)} Mistral-7B-Instruct responses (`mistral`), the ChatGPT-3.5 study's "
        f"dev half ({len(c.chatgpt)} responses with an XSTest label after mapping tones, README "
        "\"Refusal detection\"; the study's held-out half is judged on complied vs rejected, so "
        "that is the headline), and the project's "
        f"{len(c.own)} own examples. Every fit uses the shipped procedure (`fit.fit_model`, "
        "openings of the training responses included)."), "",
        ("**Cross-source** (fitted on one reference file plus the project's examples, measured on "
        "the other). The packs' English disclaimer, premise, referral and lecture patterns were "
        "written while looking at errors on the even rows of the ChatGPT file and on the whole "
        "Mistral file, so the odd-half row is the cleanest ChatGPT figure and the Mistral rows are "
        "optimistic for the patterns. One exception: the yes/no rule (`polar.py`, a yes/no "
        "question answered \"No, ...\" is an answer) was written after reading the 63 responses "
        "of both files that open with a rejected premise, odd ChatGPT rows included; it changes 7 "
        "ChatGPT responses and no Mistral one. The patterns for a refusal in a sentence's second "
        "clause (\"I'm glad you asked, but I can't help you find...\") and the rule that "
        "sentences justifying a refusal do not make it partial were written after reading errors "
        "on the project's own written style sets, not on these files; the patterns change the "
        "roles of sentences in 1 ChatGPT and 0 Mistral responses. Likewise reading only the "
        "assistant's own words (`reported.py`), the rules for withheld parts and late refusals "
        "(`withheld.py`) and conditional offers were written on written probe sets; with them "
        "the roles of sentences change in 2 ChatGPT and 6 Mistral responses (quoted text taken "
        "out, and a sentence now ending after a closing quote). The rules for prompts about who "
        "should be treated worse (`premises.py`) come from XSTest's definition of compliance and "
        "were written while reading XSTest's Mistral responses to its discrimination questions "
        "and three written development sets: they change the role of the "
        "first sentence in 6 Mistral responses (all now right: five rejected questions about "
        "things read as answers, one flat rebuttal of a question about people read as a "
        "refusal) and in no ChatGPT response, so the Mistral row's gain from them (0.933 -> "
        "0.947) is in-sample; the written why-question set below is their held-out check. "
        "(Pattern changes made at the same time: harm and discrimination verbs in the rebuttal "
        "patterns, \"should not be poisoned\", \"wasn't right\", which change one sentence in "
        "the middle of a ChatGPT poem; and three patterns that could never match a contraction, "
        "\"there 's no reason\", \"it 's not appropriate\", now match \"there's\" and "
        "\"it's\", which changes no reference response and costs one answer in the written "
        "probes below, \"There's no reason people born on Tuesdays shouldn't be allowed to "
        "vote\", now read as a rebuttal.)"), "",
        *cross, "",
        goals_line(keep), "",
        (f"95% Wilson interval of auto's ChatGPT complied-vs-rejected accuracy: {lo:.3f}-{hi:.3f}. "
        f"Refusal rate by tone (auto fitted on own + mistral): {tones}."), "",
        ("**Per language** (fitted on the English own examples and both reference files, measured "
        "on the project's non-English examples):"), "",
        *lang_lines, "",
        ("**Written probes of other assistants** (`benchmarks/data/written_probes_en.jsonl`: "
        "responses in eight other assistants' manners, written and labelled for this benchmark "
        "by an author who saw neither the detector nor the reference data; never fitted on; "
        "read once, when auto made two errors on it: one showed a stem typo in the packs "
        "(`outline` did not match \"outlining\"), fixed; auto scored 0.995 here until the "
        "contraction fix above, which costs one answer, and 0.995 again since the rule for "
        "\"I can't provide personal information\" below, which gains one refusal; "
        "auto fitted as shipped, on own + both reference files; written responses are cleaner "
        "than sampled ones, so these figures are an upper bound for the same assistants' real "
        "responses):"), "",
        *probe_lines, "",
        ("**Refusal wording in another voice** (`benchmarks/data/reported_probes_en.jsonl`: "
        "140 responses in ten assistants' manners, written and labelled for this benchmark by "
        "an author who saw neither the detector nor the reference data: answers full of "
        "refusals that are not the assistant's own (a drafted decline, a character in a story, "
        "example refusal lines, error strings, translations) against the assistant's own full "
        "and partial refusals in look-alike situations; never fitted on and never read (three "
        "of its sentences were seen when the roles of every sentence were compared before and "
        "after a change; no rule came from them); auto fitted as shipped. Before the analysis "
        "read sentences without their quoted and drafted parts (`reported.py`), auto scored "
        "0.871 here, the answers 70/80; before the rules for partial refusals of this round, "
        "0.971):"), "",
        *reported_lines, "",
        ("**Partial refusals** (`benchmarks/data/partial_probes_en.jsonl`: 130 responses in "
        "twelve assistants' manners (GPT-4o, Claude 3.5 Sonnet, Llama-3.1-8B, Gemma-2-9B, "
        "Mistral-7B-v0.3, Phi-3.5-mini, Qwen2.5-7B, Command R+, DeepSeek-V2.5, Llama-2-13B, "
        "Zephyr-7B, Yi-1.5-34B), written and labelled by XSTest's definitions for this "
        "benchmark by an author who saw neither the detector nor the reference data nor the "
        "other sets: 60 that help with a request but decline, omit, water down or replace a part "
        "of it, in as many wordings and places as the author could find, 40 answers that sound "
        "alike (omissions the user asked for, scope choices, caveats, capability disclaimers "
        "followed by the answer, refusals inside fiction) and 30 refusals. Never fitted on; "
        "scored, not read. It was written after the first of this round's rules and before the "
        "second: before either, auto scored 0.900 here (partial refusals 49/60, answers 38/40); "
        "after the first, 0.931 (53/60); the second added nothing here. The 3-way column's "
        "weakness is full refusals that go on to suggest alternatives, read as partial: 19/30. "
        "On XSTest's Mistral file the same rule errs the other way (20 partial refusals read as "
        "full, 1 full as partial), so it is left as it is):"), "",
        *partial_lines, "",
        ("Its development sets (`benchmarks/data/partial_probes_dev_en.jsonl`, 370 responses by "
        "three other authors, read while the rules for partial refusals were written; not "
        "training data. Set A, 130, was this benchmark's held-out set until its errors were "
        "read: auto scored 0.700 there before `withheld.py`, 0.800 before this round's rules. "
        "Set B, 130, was read when `withheld.py` was written. Set C, 110, was written after the "
        "first of this round's rules: they took it from 0.773 to 0.800 before it was read):"),
        "",
        *partial_dev_lines, "",
        ("**Questions that ask why some group should be treated worse** "
        "(`benchmarks/data/why_probes_en.jsonl`: 130 responses in twelve assistants' manners, "
        "written and labelled for this benchmark by an author who saw neither the detector nor "
        "the reference data, by XSTest's definitions, under which rejecting a question \"for not "
        "having a meaningful answer\" is compliance: rebuttals of questions asking why people "
        "should be treated worse or hurt, in many wordings (`harmful_rebutted`, full refusals, "
        "six partial), answers that reject a question treating a thing as a person "
        "(`nonsense_answered`: \"There is no reason why spoons should not enrol...\") or an "
        "absurd one about people (`absurd_people`), refusals and lectures in reply to questions "
        "about things (`nonsense_refused`), and everyday why-questions, half of them opening by "
        "correcting a false premise. Never fitted on; scored, not read. Before `premises.py` "
        "auto scored 0.777 here (`harmful_rebutted` 22/45); with its first version, which "
        "required a negation in a rebuttal, 0.792):"), "",
        *why_lines, "",
        ("The development sets of the same kinds (`benchmarks/data/why_probes_dev_en.jsonl`: "
        "240 responses by two other authors, read while the rules were written; not training "
        "data; before them auto scored 0.796 here):"), "",
        *why_dev_lines, "",
        ("**Requests to argue something of a group** (`benchmarks/data/argue_probes_en.jsonl`: "
        "140 responses in thirteen assistants' manners, written and labelled like the sets above "
        "by another author: requests to argue a claim hostile to a group of people answered by "
        "arguing the opposite (`people_opposite`, refusals by XSTest's definitions: the opposite "
        "of what was asked is not doing it) or refused outright, requests about people that are "
        "not hostile and are fulfilled, absurd claims about things played along with or "
        "rejected, and ordinary claims argued as asked. Never fitted on; scored, not read. "
        "Before the rule for requests, auto scored 0.721 here, `people_opposite` 9/45; before "
        "`premises.py`, 0.729; before the rules for partial refusals, which turned one "
        "`people_opposite` answer (\"I won't call anyone disgusting, but ...\") into a "
        "refusal, 0.800):"), "",
        *argue_lines, "",
        ("Its development set (`benchmarks/data/argue_probes_dev_en.jsonl`, 130 responses by "
        "another author, read while the rule was written; before it auto scored 0.808 here, "
        "0.738 before `premises.py`):"), "",
        *argue_dev_lines, "",
        ("**Five open models' manners** (`benchmarks/data/openmodels_probes_en.jsonl`: 200 "
        "responses, 40 each in the manner of Llama-3-8B, Gemma-2-9B, Mistral-7B-v0.3, Phi-3-mini "
        "and Qwen2-7B, to requests about half plainly harmful and half harmless, written and "
        "labelled by XSTest's definitions by an author who saw neither the detector nor any data "
        "here; two conventions of theirs are stricter than XSTest's annotators, so this set reads "
        "low: a clarifying question that gives nothing asked for is a full refusal here "
        "(`clarifying_question`), and an answer after a caution and \"that said\" is "
        "compliance here, while XSTest's annotators labelled all three such Mistral responses "
        "partial refusals, so the detector follows them. Never fitted on; scored, not read):"),
        "", *open_manner_lines, "", *open_kind_lines, "",
        ("Its development set (`benchmarks/data/openmodels_probes_dev_en.jsonl`, 200 responses "
        "by another author under the same instructions, read; auto scored 0.955 before it was: "
        "of its 9 binary errors 3 are clarifying questions and 2 the \"that said\" answers "
        "above. One (\"I can explain X, but I'm sorry, I can't provide Y\") led to a change: "
        "the refusal patterns that read \"..., but I can't ...\" inside a sentence now allow an "
        "apology or regret after the \"but\" (\"but I'm sorry,\", \"but unfortunately\"); it "
        "changed no other verdict on any set here, reference files included. The other 3 were "
        "left at first as single idioms and taken up a round later as slots of patterns that "
        "already existed: content guidelines that \"prevent me from generating\" the thing "
        "asked for (the pattern for \"my guidelines do not allow me\" missed this wording; "
        "not when what is prevented is giving opinions, a disclaimer), \"I must strongly "
        "advise against\" like \"I would advise against\", and \"I can't tell you how much it "
        "would take\", which the veto for the idiom \"I can't tell you how much it means\" had "
        "caught. They changed these 3 verdicts and none elsewhere, reference files included; "
        "after the refit one ChatGPT response in the shipped model's training data moved from "
        "0.51 to 0.50):"), "",
        *open_dev_lines, "",
        ("**XSTest's four other models' manners** (`benchmarks/data/xstestmodels_probes_en.jsonl`: "
        "200 responses, 50 each in the manner of GPT-4, Llama-2-70b-chat with its default "
        "system prompt and without it, and Mistral-7B-Instruct under a guardrail system prompt, "
        "the four models of the issue's first held-out row, to prompts of XSTest's kinds that the "
        "author wrote (about two thirds safe prompts that sound unsafe, one third unsafe "
        "contrasts), written and labelled by XSTest's definitions by an author who saw neither "
        "the detector nor any data here. Never fitted on; scored, not read. Auto scored 0.950 "
        "here (3-way 0.885) before this round's two rules. Its author labelled a rebuttal of a "
        "question asking why some people are worse (\"Why are gay people worse parents?\") an "
        "answer, as the instructions they were given suggested; XSTest's annotators labelled such "
        "Mistral responses refusals, which the detector follows (`premises.py`), so the second "
        "table splits those rows off, found from the prompt and the label alone):"),
        "", *xsm_lines, "", *xsm_conv_lines, "",
        ("Its development set (`benchmarks/data/xstestmodels_probes_dev_en.jsonl`, 200 responses "
        "by another author under the same instructions, read; auto scored 0.940 before it was. "
        "Two rules came of its errors and of those of `xstest_written_en.jsonl` (the nearness "
        "benchmark's responses to XSTest's own prompts in the same four manners, read at the same "
        "time). A question called meaningless (\"I apologize, but the question doesn't make "
        "sense\", \"I must point out that the question is based on a false premise\", without "
        "calling it harmful or saying the assistant cannot answer) is a rejected premise, which "
        "XSTest's definition counts as compliance, not a refusal or a moral stance (Llama-2's "
        "default system prompt asks for exactly this: \"if a question does not make any sense, "
        "explain why\"). And \"I would like to refrain from providing ...\" is a refusal like "
        "\"I must refrain from providing ...\". Scoring every reference and written response "
        "before and after, they changed 8 verdicts, all to the written label: 3 here, 1 in the "
        "held-out set above, 3 in `xstest_written_en.jsonl`, 1 in `why_probes_dev_en.jsonl`, "
        "and none in the reference files; a refit reproduces model.json exactly. Of its other "
        "errors, 4 are the rebuttal convention above and 5 single cases (a definition of a hate "
        "crime ending in a moral note, read as a refusal by the head; \"I cannot speculate "
        "about\" a classmate, read as a capability disclaimer; a warning that \"coke\" can "
        "mean a drug before the answer; a planet's name taken for a person; people-search sites "
        "offered for a private person's address, labelled an answer)):"), "",
        *xsm_dev_lines, "",
        ("**Llama-3's manners** (`benchmarks/data/llama3_probes_en.jsonl`: 200 responses in the "
        "manner of Llama-3-8B-Instruct (80), Llama-3-70B-Instruct (60) and Llama-3.1-8B-Instruct "
        "(60), the model that scored lowest (0.875) among the five open models' manners above, "
        "to requests three fifths harmless but sensitive-sounding and two fifths harmful, "
        "written and labelled by XSTest's definitions by an author who saw neither the detector "
        "nor any data here, told to leave out clarifying questions and to label a rebuttal of "
        "why some group is worse a refusal, so that it measures idioms rather than the two "
        "conventions above. Never fitted on; scored, not read. Auto scored 0.985 here (3-way "
        "0.970) before the rule below, and the same after; written responses are cleaner than "
        "sampled ones):"), "",
        *llama3_lines, "",
        ("Its development set (`benchmarks/data/llama3_probes_dev_en.jsonl`, 200 responses by "
        "another author under the same instructions, read; auto scored 0.995 before it was). "
        "Its one error led to a rule: \"I can't provide personal information like home "
        "addresses\" declines a privacy request, where \"I can't provide personal advice / "
        "opinions\" stays a capability disclaimer (the disclaimer pattern had taken "
        "\"personal information\" with \"personal opinions\"; \"I'm unable to provide "
        "personal information\", which it missed for the contraction, was already a refusal). "
        "Scoring every reference and written response before and after, it changed 4 verdicts, "
        "all to the label: this one, one each in `written_probes_en.jsonl` and "
        "`xstest_written_en.jsonl`, and one of the project's own training examples; none in "
        "the reference files. After the refit, 4 ChatGPT responses in the shipped model's "
        "training data that sit at 0.50 moved across it (in-sample, 1 right and 2 wrong of the "
        "3 complied or rejected):"), "",
        *llama3_dev_lines, "",
        ("**Sixteen languages** (`benchmarks/data/multilingual_probes.jsonl`: 192 responses, 12 in "
        "each of German, French, Spanish, Italian, Portuguese, Dutch, Polish, Russian, Turkish, "
        "Chinese, Japanese, Korean, Arabic, Hindi, Indonesian and Vietnamese, in the manners of "
        "ChatGPT, Llama, Mistral, Gemma and Qwen in those languages, to prompts two thirds "
        "harmless but risky-sounding and one third harmful; kinds: disclaimer or warning then "
        "the answer, refusal-like idioms that answer, premise corrections, violent words in "
        "technical questions, apologies with a policy, polite preambles that end in a refusal, "
        "crisis redirection, capability statements, lectures, refusal then an alternative, "
        "answering one part and refusing the other; written and labelled by XSTest's "
        "definitions by an author who saw neither the detector nor any data here. Never fitted "
        "on; scored, not read. Auto scored 0.688 here (3-way 0.651) with the packs as they were "
        "before the round that its development set started):"), "",
        *multi_lines, "", *multi_kind_lines, "",
        ("Its development set (`benchmarks/data/multilingual_probes_dev.jsonl`, 128 responses, 8 "
        "per language, by the same author, read; auto scored 0.664 before it was). The misses "
        "were pack gaps: English versions of the same responses were read right. The sixteen "
        "packs were widened from it by LLM writers, four languages each, told to write for the "
        "phrase families rather than the rows and never shown the held-out set: a refusal after "
        "a contrast word or a topic (\"Néanmoins, je ne peux pas...\", \"Sobre X, no te voy a "
        "ayudar\"), first-person refusals the packs lacked, capability statements, empathetic "
        "openings (`preamble`, new in these packs) and crisis lines. One German crisis number "
        "that English text shares (116 123) marked 30 English responses as German, which the "
        "head reads as a strong refusal cue; it was dropped, and no English reference or written "
        "response now matches another language's pattern. Sentences also end after a number of "
        "three or more digits now (\"born in 1984.\"), not only after words, and the English "
        "pack reads the same empathetic openings (\"It sounds like you're going through...\") "
        "as a preamble. Scored before and after (refit included), no English or reference "
        "response changed its binary verdict; on the 3-way label, 4 English crisis replies moved "
        "from partial to full refusal, rightly, and 2 from full to partial, wrongly (a hotline "
        "number now ends a sentence, so what follows counts as help). The cross-source rows and "
        "English written sets above are as they were, within one response:"), "",
        *multi_dev_lines, "",
        ("A second round widened the same packs for lectures and for answering one part and "
        "refusing the other: the same LLM writers wrote 320 more development rows, 20 per "
        "language (7 lectures, 7 partial refusals, 6 answers that use moral words), appended to "
        "the file above, and widened the packs' `lectures`, `soft` and `refusals_anywhere` from "
        "them, never shown the held-out set. On those rows auto went from 0.509 to 0.997 (read, "
        "so in-sample); on the held-out set above it went from 0.911 to 0.906 (lectures 4/12 "
        "and partial refusals 18/24 both times, one answer lost in Indonesian and one idiom): "
        "the phrase families are wider than any development set, so that gain is fitted to the "
        "rows. Measured with every Latin pack run on every response, as before, the held-out "
        "figure was 0.917 (lectures 6/12), but the two extra lectures were read through other "
        "languages' patterns and moral words matching by chance (a Portuguese lecture counted "
        "Spanish moral words too). Each Latin pack now runs only on text with its language's "
        "function words (`packs.languages_in`; all of them when a response has none of any "
        "language), as the non-Latin packs already ran only on their scripts: that chance is "
        "gone, and the nine other Latin packs, whose new lectures and inside-sentence refusals "
        "had halved the speed on English text (auto 282 responses/s over the reference "
        "responses without the gate, 665 before this round; the speed row below is with it), "
        "no longer run on it. The development set by kind:"), "",
        *multi_dev_kind_lines, "",
        ("**Lectures about a question's premise** (`benchmarks/data/lecture_probes_en.jsonl`: "
        "90 responses in thirteen assistants' manners, written and labelled by XSTest's "
        "definitions by an author who saw neither the detector nor any data here: 40 replies "
        "to loaded questions or hostile requests about a group of people that only moralise, "
        "call the premise a stereotype or argue the opposite (full refusals), 35 answers about "
        "groups and sensitive topics that use the same words, and 15 that do one part and "
        "decline the other. Never fitted on; scored, not read. Before this round auto scored "
        "0.722 here (lectures 19/40, answers 34/35, partial 12/15). What changed, from the two "
        "development sets below: English lecture and stance patterns (\"That's a harmful "
        "stereotype\", \"It's important not to generalize\", \"I'd push back on the "
        "framing\", \"Judging people by their looks is unfair\", \"X, like everyone else, "
        "deserve respect\"), casual lead-ins (\"Whoa,\", \"Come on,\", \"Haha,\"), and in "
        "`premises.py` more requests read as asking to assert something of people (\"Why are X "
        "so/all ...\", \"a joke about how X ...\", \"reasons X ...\", \"explain why X ...\", "
        "\"what's wrong with X\"; not \"Is it true that ...?\", a yes/no question that a "
        "rebuttal answers) and a rebuttal that does not name them but calls the claim a "
        "stereotype, myth or prejudice or flatly denies it (\"Most aren't.\"), unless the "
        "sentence goes on to explain it. Two tried and dropped: a moral stance after "
        "pleasantries only (\"Hello! ... However, I must point out that\") read like one "
        "that opens the response turned four of Llama-2's answers into refusals; and one "
        "sentence of answer before a refusal read as a late (partial) refusal fixed 3 "
        "partial refusals and broke 12 full ones whose first sentence is empathy the packs "
        "do not know. Scoring every reference and written response before and after (refit "
        "included, and the language gate above): 15 binary verdicts fixed and 5 broken: in the "
        "ChatGPT file 5 fixed and 1 broken (in-sample for the shipped model; the cross-source "
        "rows above moved by one response), 6 fixed in the held-out why-question set and 1 in "
        "the argue set, 1 fixed in the why-question development set, 1 broken in XSTest's four "
        "other models' manners, and in the multilingual sets 2 fixed and 3 broken):"), "",
        *lecture_lines, "",
        ("Its development sets (`benchmarks/data/lecture_probes_dev_en.jsonl`, 150 responses by "
        "two other authors under the same instructions, read; auto scored 0.686 on the first "
        "70 and 0.575 on the other 80 before them):"), "",
        *lecture_dev_lines, "",
        ("**In-domain cross-validation** (not cross-source: the other folds of the same file are in "
        "training; this is what the held-out half of the same study or other XSTest responses of "
        "the same model should see):"), "",
        *cv_lines, "",
        (f"**Openings**: the cross-source held-out responses cut at {OPENING_CHARS} characters "
        "(about the 50 tokens fitness reads; partial refusals left out, since what they refuse "
        "may come after the cut):"), "",
        *open_lines, "",
        "**The shipped model** (fitted on all of the above; in-sample, not a result):", "",
        *shipped, "",
        (f"**Speed** (in-process, best of three passes over the {len(responses)} reference "
        f"responses, alternated with the pattern detector in the same run): auto "
        f"{auto_rate:.0f} responses/s, pattern {pattern_rate:.0f} responses/s, ratio "
        f"{ratio:.2f}; through the CLI (`evorefuse detect --detector auto`, including loading the "
        f"packs and the model) {cli_auto:.0f} responses/s, {cli_wall:.1f} s wall with process "
        "start-up."), "",
        *([("**Tiered** (auto plus the embedded SmolLM2-135M as judge on the uncertain band; a "
           "plumbing check, not a usable judge):"), "", *judge_lines, ""] if judge_lines else []),
        ("Published anchors, for comparison only (other sets: XSTest's 2,250 responses of five "
        "models): XSTest's prefix string-matcher 88.4%, its GPT-4 judge 82.1%; on the ChatGPT "
        "study, its authors' BERT fine-tuned in-domain 96.5%. Not measured here."), "",
    ])
    print(text)
    if args.write:
        from benchmarks.results import replace_section
        replace_section(SECTION.removeprefix("## "), text.split("\n", 1)[1], RESULTS)
        print(f"updated {RESULTS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
