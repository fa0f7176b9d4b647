"""Measure a dataset: the targets' refusal rates and how diverse its instructions are.

Why sampling and not greedy decoding: over-refusal is a probability, and the paper's numbers are
refusal rates over K samples at temperature 1 (top_p 0.995, 50 new tokens): a short prefix is enough
to see a refusal opener. Samples go through a persistent request cache with a fixed seed, so
re-evaluating a dataset (or one that overlaps) costs only the new prompts.

Intervals are Wilson intervals over all samples of a target; samples of the same prompt are
correlated, so they are a lower bound on the true uncertainty, still far better than none.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from evorefuse import interrupts
from evorefuse.against import AgainstCheck
from evorefuse.evolution.progress import SILENT, Bar, Progress
from evorefuse.models.base import SamplingParams
from evorefuse.scoring.overlap import OverlapThresholds
from evorefuse.scoring.refusal.base import RefusalDetector
from evorefuse.scoring.stats import wilson_interval
from evorefuse.session import Session

UNCATEGORISED = "uncategorised"

@dataclass(frozen=True)
class EvalSettings:
    samples: int = 1
    temperature: float = 0.0      # greedy, as XSTest and OR-Bench measure refusal rates
    top_p: float = 0.995
    max_tokens: int = 50
    seed: int = 0


def diversity(prompts: Sequence[str], embeddings: bool = True) -> dict[str, Any]:
    """Lexical (MSTTR window 800, MTLD, HD-D, distinct-1/2) and embedding diversity of a set."""
    from evorefuse.scoring.diversity import lexical_diversity

    lex = lexical_diversity(list(prompts), msttr_window=800)
    out = {k: lex[k] for k in ("msttr", "mtld", "hdd", "distinct_1", "distinct_2")}
    out["embedding_diversity"] = None
    if embeddings and len(prompts) > 1:
        from evorefuse.scoring.embeddings import embed, mean_pairwise_cosine_distance

        out["embedding_diversity"] = float(mean_pairwise_cosine_distance(embed(list(prompts))))
    return out


@dataclass
class Response:
    """One sampled response of a target and the detector's reading of it."""

    text: str
    refusal: bool
    p_refusal: float
    label: str


@dataclass
class PromptOutcome:
    """What one target did with one prompt: how often it refused, and what it said."""

    responses: list[Response]

    @property
    def refusals(self) -> int:
        return sum(r.refusal for r in self.responses)

    @property
    def samples(self) -> int:
        return len(self.responses)

    @property
    def counts(self) -> tuple[int, int]:
        return self.refusals, self.samples


async def sample_refusals(endpoint: Any, detector: Any, prompts: Sequence[str],
                          s: EvalSettings, concurrency: int = 8,
                          bar: Bar | None = None) -> list[PromptOutcome]:
    """The responses of one target to every prompt, with the detector's verdicts. A batched
    model gets every prompt at once, so the dataset goes out as one batch (or a few) rather than
    `concurrency` at a time."""
    if endpoint.spec.batch:
        concurrency = len(prompts)
    sem = asyncio.Semaphore(max(1, concurrency))
    params = SamplingParams(temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens,
                            seed=s.seed, n=s.samples)

    async def one(prompt: str) -> PromptOutcome:
        async with sem:
            res = await endpoint.chat([{"role": "user", "content": prompt}], params, role="target")
        texts = [c.text for c in res.choices]
        verdicts = await detector.adetect([prompt] * len(texts), texts)
        if bar is not None:
            bar.update(1)
        return PromptOutcome([
            Response(c.text, c.blocked or v.refusal, 1.0 if c.blocked else round(v.p_refusal, 4),
                     v.label if not c.blocked else "2_full_refusal")
            for c, v in zip(res.choices, verdicts)])

    return list(await asyncio.gather(*(one(p) for p in prompts)))


def _rate(counts: Sequence[tuple[int, int]]) -> tuple[float, list[float]]:
    k = sum(c[0] for c in counts)
    n = sum(c[1] for c in counts)
    lo, hi = wilson_interval(k, n)
    return (k / n if n else 0.0), [lo, hi]


def _group_rates(counts: dict[str, list[tuple[int, int]]], idx: list[int]) -> dict[str, Any]:
    entry: dict[str, Any] = {"n": len(idx), "refusal_rate": {}, "ci": {}}
    for target, c in counts.items():
        entry["refusal_rate"][target], entry["ci"][target] = _rate([c[i] for i in idx])
    return entry


def _indices(keys: Sequence[str]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, key in enumerate(keys):
        groups[key].append(i)
    return dict(sorted(groups.items()))


def refusal_matrix(counts: dict[str, list[tuple[int, int]]], categories: Sequence[str | None],
                   languages: Sequence[str] | None = None) -> dict[str, Any]:
    """Overall, per-category, per-language and category x language refusal rates with Wilson
    intervals, from per-prompt (refusals, samples) counts."""
    out: dict[str, Any] = {"refusal_rate": {}, "ci": {}, "per_category": {}, "per_language": {},
                           "matrix": {}}
    for target, c in counts.items():
        out["refusal_rate"][target], out["ci"][target] = _rate(c)
    cats = [c or UNCATEGORISED for c in categories]
    if any(categories):
        out["per_category"] = {cat: _group_rates(counts, idx)
                               for cat, idx in _indices(cats).items()}
    if languages is not None:
        out["per_language"] = {lang: _group_rates(counts, idx)
                               for lang, idx in _indices(languages).items()}
        pairs = _indices([f"{c}\x00{lang}" for c, lang in zip(cats, languages)])
        for key, idx in pairs.items():
            cat, lang = key.split("\x00")
            out["matrix"].setdefault(cat, {})[lang] = _group_rates(counts, idx)
    return out


async def _sample_all(session: Session, targets: Sequence[str], detector: RefusalDetector,
                      prompts: list[str], s: EvalSettings,
                      progress: Progress) -> dict[str, list[PromptOutcome]]:
    out: dict[str, list[PromptOutcome]] = {}
    try:
        for t in targets:
            bar = progress.bar(len(prompts), f"evaluate: {t}", unit="prompt")
            try:
                out[t] = await sample_refusals(session.endpoint(t), detector, prompts, s,
                                               session.cfg.run.max_concurrency, bar)
            finally:
                bar.close()
        return out
    finally:
        await session.aclose()


def evaluate(dataset: Path, *, cfg: Any, targets: Sequence[str], settings: EvalSettings,
             detector: str, cache_path: Path, responses: bool = True, limit: int | None = None,
             embeddings: bool = True, against: Sequence[Path] = (),
             overlap: OverlapThresholds | None = None,
             progress: Progress = SILENT) -> dict[str, Any]:
    """The full evaluation report of one dataset, as a JSON-ready dict. `against`: benchmark
    files each prompt's nearest match is looked up in (read first: a bad file costs nothing)."""
    from evorefuse.seeds import load_seeds

    check = AgainstCheck.load(against, overlap)
    seeds = load_seeds(dataset).seeds
    if limit:
        seeds = seeds[:limit]
    prompts = [s.prompt for s in seeds]
    report: dict[str, Any] = {"dataset": str(dataset), "n": len(prompts),
                              **diversity(prompts, embeddings)}
    outcomes: dict[str, list[PromptOutcome]] = {}
    if responses:
        session = Session.standalone(cfg, models=list(targets), cache_path=cache_path,
                                     run_id="evaluate")
        try:
            outcomes = interrupts.run(_sample_all(session, targets, session.detector_named(detector),
                                               prompts, settings, progress))
        finally:
            session.close()
        report["samples"] = settings.samples
        report["detector"] = detector
    counts = {t: [o.counts for o in outs] for t, outs in outcomes.items()}
    report.update(refusal_matrix(counts, [s.category for s in seeds],
                                 [s.language for s in seeds]))
    rows = [{"id": s.id, "prompt": s.prompt, "category": s.category, "language": s.language}
            for s in seeds]
    if check is not None:
        found = check.measure([s.id for s in seeds], prompts)
        close = found.too_close(prompts)
        report["overlap"] = {"against": check.files, "similarity": check.thresholds.similarity,
                             "ngram_overlap": check.thresholds.ngram_overlap,
                             "too_close": len(close),
                             "items": [{"id": c.id, "prompt": c.prompt, "match": c.match}
                                       for c in close]}
        for i, row in enumerate(rows):
            row["nearest_benchmark"] = found.record(i)
    if responses:
        for i, row in enumerate(rows):
            row["refusal_rate"] = {t: outcomes[t][i].refusals / max(1, outcomes[t][i].samples)
                                   for t in targets}
            row["responses"] = {t: [asdict(r) for r in outcomes[t][i].responses] for t in targets}
    if responses or check is not None:
        report["prompts"] = rows
    return report
