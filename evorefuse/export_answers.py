"""The model calls an SFT or DPO export needs: the responder's helpful answers and, for DPO, a
target's real refusal of each selected candidate.

Why through the run's own cache (RUN_DIR/cache.sqlite) with fixed seeds: exporting twice, or in
another format, must cost nothing and give the same bytes. The calls are recorded apart from the
evolution's (`step="export"`), so `status` shows what the export cost.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from evorefuse.config import config_from_run
from evorefuse.evolution.candidate import Candidate
from evorefuse.evolution.progress import Progress
from evorefuse.models.base import SamplingParams
from evorefuse.runstore import RunStore
from evorefuse.session import Session

RESPONDER_ATTEMPTS = 3
RESPONDER_SEED = 1234
EXTRA_TARGET_SAMPLES = 5


class Responder:
    """The responder role and the targets, through the run's cache, plus the run's detector."""

    def __init__(self, store: RunStore) -> None:
        cfg = config_from_run(store.config(), str(store.config_file))
        # Its calls are the export's, recorded apart from the evolution's (`step`).
        self.session = Session.for_run(store, cfg, budget=False, step="export",
                                       models=sorted({cfg.roles.responder, *cfg.roles.targets}))
        self.cfg = cfg
        self.detector = self.session.detector

    async def helpful_answer(self, prompt: str) -> str | None:
        """A non-refusing answer by the responder, or None after RESPONDER_ATTEMPTS refusals."""
        ep = self.session.endpoint(self.cfg.roles.responder)
        for attempt in range(RESPONDER_ATTEMPTS):
            params = SamplingParams(temperature=0.7, top_p=1.0, max_tokens=256,
                                    seed=RESPONDER_SEED + attempt, n=1)
            res = await ep.chat([{"role": "user", "content": prompt}], params, role="responder")
            text = res.choices[0].text.strip() if res.choices else ""
            if text and not (await self.detector.adetect([prompt], [text]))[0].refusal:
                return text
        return None

    async def refusal(self, c: Candidate) -> str | None:
        """A real refusal by a target: the one kept from scoring, else a few fresh samples."""
        prompt = c.prompt or ""
        targets = c.score.targets if c.score is not None else {}
        for name in sorted(targets):
            ex = targets[name].refusal_example
            if ex and (await self.detector.adetect([prompt], [ex]))[0].refusal:
                return ex
        plan = self.session.plan
        for name in self.cfg.roles.targets:
            if name not in targets:
                continue
            ep = self.session.endpoint(name)
            est = self.session.fitness([name])
            k = int(targets[name].n or plan.samples)
            # The first k samples are the cached ones already scored: only the extra ones are new.
            choices = (await est.target_samples(ep, prompt, k + EXTRA_TARGET_SAMPLES))[k:]
            texts = [ch.text for ch in choices if ch.text.strip()]
            if not texts:
                continue
            for t, v in zip(texts, await self.detector.adetect([prompt] * len(texts), texts)):
                if v.refusal:
                    return t
        return None

    async def aclose(self) -> None:
        await self.session.aclose()
        self.session.close()


async def model_rows(store: RunStore, recs: list[Candidate], fmt: str, style: str,
                     dropped: Counter, progress: Progress
                     ) -> list[tuple[Candidate, dict[str, Any]]]:
    """The responder's helpful answers (and for DPO a target's real refusals) of `recs`, with the
    candidate each row came from, in order; the calls overlap up to the run's concurrency and are
    all cached. Candidates without a row are counted in `dropped` by reason."""
    resp = Responder(store)
    sem = asyncio.Semaphore(max(1, resp.cfg.run.max_concurrency))
    bar = progress.bar(len(recs), f"{fmt}: asking the responder"
                       + (" and the targets" if fmt == "dpo" else ""), unit="prompt")

    async def one(rec: Candidate) -> dict[str, Any] | str:
        """The row, or why it was dropped."""
        async with sem:
            try:
                rejected = None
                if fmt == "dpo":
                    rejected = await resp.refusal(rec)
                    if rejected is None:
                        return "no target refusal"
                chosen = await resp.helpful_answer(rec.prompt or "")
                if chosen is None:
                    return "responder refused"
                return format_row(fmt, style, rec.prompt or "", chosen, rejected)
            finally:
                bar.update(1)
    try:
        results = await asyncio.gather(*(one(r) for r in recs))
    finally:
        bar.close()
        await resp.aclose()
    rows = []
    for rec, res in zip(recs, results):
        if isinstance(res, str):
            dropped[res] += 1
        else:
            rows.append((rec, res))
    return rows


def format_row(fmt: str, style: str, prompt: str, chosen: str, rejected: str | None) -> dict[str, Any]:
    if fmt == "sft":
        return {"messages": [{"role": "user", "content": prompt},
                             {"role": "assistant", "content": chosen}]}
    if style == "llamafactory":
        return {"conversations": [{"from": "human", "value": prompt}],
                "chosen": {"from": "gpt", "value": chosen},
                "rejected": {"from": "gpt", "value": rejected}}
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}
