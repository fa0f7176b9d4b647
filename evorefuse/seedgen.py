"""`evorefuse seeds`: new seed instructions per category and language, each through the same
gate an evolved candidate passes (free checks, near-duplicates, the benign judge).

Generation runs in rounds: every (category, language) still short of seeds asks the generator for
as many requests as it lacks, all concurrently; the answers are then vetted in a fixed order
(pair order, attempt order), so the output depends only on the settings and the models' answers,
and a second run with the same cache costs nothing and writes the same file. A pair gives up
after `attempts_per_seed` calls per seed asked for; what it got is kept and reported.

The judge is the session's prompt judge (`roles.judge`, `roles.judge_mode`) under the gate's
contract (README, "Judging prompts"): a request is kept if the judge calls it harmless. With seed
calibration switched on (`evolution.judge_margin`), a `controversial` one is kept too when its
P(harmless) is at least that of the worked examples (harmless requests that sound sensitive, like
the seeds asked for) minus the margin; `harmful` and unreadable verdicts never pass.

A budget stop (`--max-calls`, `--max-cost`) keeps the seeds accepted so far.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from evorefuse import interrupts
from evorefuse.config import Config
from evorefuse.errors import BudgetExceeded
from evorefuse.evolution.gate import NearDuplicates
from evorefuse.evolution.progress import SILENT, Progress
from evorefuse.evolution.rng import derive_seed
from evorefuse.languages import DEFAULT_LANGUAGE, primary
from evorefuse.models.endpoint import Endpoint
from evorefuse.models.ledger import Budget
from evorefuse.operators.seed_writer import EXAMPLES, Written, write_seed
from evorefuse.preflight import reachable
from evorefuse.scoring import embeddings
from evorefuse.scoring.harm.judge import PromptJudge
from evorefuse.scoring.harm.verdict import passes_gate
from evorefuse.session import Session

ATTEMPTS_PER_SEED = 4
"""Generator calls a (category, language) may make per seed asked for before it gives up."""


@dataclass(frozen=True)
class SeedSpec:
    """What to generate."""

    categories: tuple[str, ...]
    per_category: int
    languages: tuple[str, ...] = (DEFAULT_LANGUAGE,)
    policy: str | None = None
    seed: int = 0
    attempts_per_seed: int = ATTEMPTS_PER_SEED


@dataclass
class Tally:
    """What one (category, language) got, and why the rest was rejected."""

    category: str
    language: str
    wanted: int
    slug: str
    """The category as it appears in seed ids, unique among the categories."""
    seeds: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0
    rejected: Counter = field(default_factory=Counter)

    @property
    def missing(self) -> int:
        return self.wanted - len(self.seeds)

    def summary(self) -> str:
        why = ", ".join(f"{n} {r}" for r, n in self.rejected.most_common())
        return (f"{self.category} / {self.language}: {len(self.seeds)} of {self.wanted} seeds "
                f"from {self.attempts} requests" + (f" (rejected: {why})" if why else ""))


@dataclass
class SeedGeneration:
    tallies: list[Tally]
    stopped: str | None = None
    """Why generation stopped early (the budget), or None."""

    @property
    def seeds(self) -> list[dict[str, Any]]:
        return [s for t in self.tallies for s in t.seeds]


class SeedGenerator:
    def __init__(self, generator: Endpoint, judge: PromptJudge, *, temperature: float,
                 max_tokens: int, judge_margin: float | None, near_duplicate: float,
                 concurrency: int, progress: Progress = SILENT) -> None:
        self.generator = generator
        self.judge = judge
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.judge_margin = judge_margin if judge_margin is not None and judge_margin >= 0 else None
        self.sem = asyncio.Semaphore(max(1, concurrency))
        self.seen = NearDuplicates(near_duplicate)
        self.progress = progress
        self.reference_p: float | None = None
        self.judge_seed = 0

    async def run(self, spec: SeedSpec) -> SeedGeneration:
        slugs = _slugs(spec.categories)
        tallies = [Tally(c, lang, spec.per_category, slugs[c]) for lang in spec.languages
                   for c in spec.categories]
        result = SeedGeneration(tallies)
        bar = self.progress.bar(sum(t.wanted for t in tallies), "seeds", unit="seed")
        self.judge_seed = derive_seed(spec.seed, "judge")
        try:
            self.reference_p = await self._reference_p()
            while result.stopped is None:
                open_ = [t for t in tallies
                         if t.missing > 0 and t.attempts < t.wanted * spec.attempts_per_seed]
                if not open_:
                    break
                result.stopped = await self._round(open_, spec, bar)
        except BudgetExceeded as exc:
            result.stopped = str(exc)
        finally:
            bar.close()
        return result

    async def _round(self, tallies: list[Tally], spec: SeedSpec, bar: Any) -> str | None:
        """One request per missing seed of every open pair; returns a budget stop's reason."""
        jobs = []
        for t in tallies:
            n = min(t.missing, t.wanted * spec.attempts_per_seed - t.attempts)
            jobs += [(t, t.attempts + j) for j in range(n)]
            t.attempts += n
        written = await asyncio.gather(*(self._write(t, j, spec) for t, j in jobs),
                                       return_exceptions=True)
        stop = next((str(w) for w in written if isinstance(w, BudgetExceeded)), None)
        for w in written:
            if isinstance(w, BaseException) and not isinstance(w, BudgetExceeded):
                raise w
        live = [(t, w) for (t, _), w in zip(jobs, written) if isinstance(w, Written)]
        for t, w in live:
            if w.prompt is None:
                t.rejected[w.rejected or "unusable"] += 1
        fresh = await self._new_texts([(t, w.prompt) for t, w in live if w.prompt is not None])
        try:
            verdicts = await self._benign([p for _, p in fresh])
        except BudgetExceeded as exc:
            return stop or str(exc)
        for (t, prompt), ok in zip(fresh, verdicts):
            if not ok:
                t.rejected["judge"] += 1
            elif t.missing > 0:
                t.seeds.append(_record(t, prompt))
                self.seen.add(embeddings.embed([prompt]), [prompt])
                bar.update(1)
        return stop

    async def _write(self, t: Tally, attempt: int, spec: SeedSpec) -> Written:
        async with self.sem:
            return await write_seed(
                self.generator, t.category, policy=spec.policy, language=t.language,
                seed=derive_seed(spec.seed, "seeds", t.category, t.language, attempt),
                temperature=self.temperature, max_tokens=self.max_tokens)

    async def _new_texts(self, found: list[tuple[Tally, str]]) -> list[tuple[Tally, str]]:
        """Those not near duplicates of a seed already written or of one before them in this
        round (counted as rejected)."""
        if not found:
            return []
        emb = await asyncio.to_thread(embeddings.embed, [p for _, p in found])
        fresh = []
        this_round = NearDuplicates(self.seen.cosine, self.seen.jaccard)
        for (t, prompt), e in zip(found, emb):
            if any(s.repeated([prompt], e[None])[0] for s in (self.seen, this_round)):
                t.rejected["near_duplicate"] += 1
            else:
                this_round.add(e[None], [prompt])
                fresh.append((t, prompt))
        return fresh

    async def _benign(self, prompts: list[str]) -> list[bool]:
        """The gate's contract for each prompt (one batch through the judge)."""
        if not prompts:
            return []
        verdicts = await self.judge.judge(prompts, seed=self.judge_seed)
        return [passes_gate(v, seed_p_harmless=self.reference_p, margin=self.judge_margin)
                for v in verdicts]

    async def _reference_p(self) -> float | None:
        """The judge's mean P(harmless) of the worked examples (only needed with seed
        calibration on), or None without probabilities."""
        if self.judge_margin is None:
            return None
        verdicts = await self.judge.judge([r for _, r in EXAMPLES], seed=self.judge_seed)
        known = [v.p_harmless for v in verdicts if v.p_harmless is not None]
        return sum(known) / len(known) if known else None


def _record(t: Tally, prompt: str) -> dict[str, Any]:
    return {"id": f"{t.slug}-{primary(t.language)}-{len(t.seeds) + 1:03d}",
            "prompt": prompt, "category": t.category, "language": t.language}


def _slugs(categories: Sequence[str]) -> dict[str, str]:
    """Id-friendly, unique forms of category names ("Money laundering" -> "money-laundering";
    a name without Latin letters or digits -> "category-3")."""
    out: dict[str, str] = {}
    for i, name in enumerate(categories, 1):
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40].strip("-")
        slug = slug or f"category-{i}"
        while slug in out.values():
            slug = f"{slug}-{i}"
        out[name] = slug
    return out


def generate_seeds(cfg: Config, spec: SeedSpec, *, generator: str, cache_path: Path | None,
                   budget: Budget | None = None, progress: Progress = SILENT) -> SeedGeneration:
    """Run a generation with the config's judges and `generator` (a model name), through one
    session: its request cache, ledger and budget."""
    names = list(dict.fromkeys([generator, *cfg.role_models()["judge"]]))
    reachable(cfg, names)
    session = Session.standalone(cfg, models=names, cache_path=cache_path, run_id="seeds",
                                 budget=budget)
    gen = SeedGenerator(session.endpoint(generator), session.prompt_judge,
                        temperature=cfg.evolution.mutator_temperature,
                        max_tokens=cfg.evolution.mutator_max_tokens,
                        judge_margin=cfg.evolution.judge_margin,
                        near_duplicate=cfg.evolution.near_duplicate,
                        concurrency=cfg.run.max_concurrency, progress=progress)

    async def go() -> SeedGeneration:
        try:
            return await gen.run(spec)
        finally:
            await session.aclose()

    try:
        return interrupts.run(go())
    finally:
        session.close()


def seeds_jsonl(seeds: Sequence[dict[str, Any]]) -> bytes:
    """The seed file: one JSON object per line, in the seed format `load_seeds` reads."""
    return b"".join(orjson.dumps(s) + b"\n" for s in seeds)
