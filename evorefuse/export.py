"""Turn a run's archive into what users take away: a test set, SFT data or DPO pairs.

Why the selection rules: only benign candidates scored with the run's full sample budget K have
refusal rates worth publishing (screened-only candidates carry a cheap estimate, not a measurement),
and seeds are the *input* of the run, so they are left out unless asked for.

Why responses go through the run's own cache (RUN_DIR/cache.sqlite) with fixed seeds: exporting
twice, or in another format, must cost nothing and give the same bytes.

Every output is written to a temporary file renamed into place, so a failure never leaves a file
that looks like a result.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import orjson

from evorefuse import interrupts
from evorefuse.config import config_from_run
from evorefuse.errors import InputError
from evorefuse.evolution.candidate import Candidate
from evorefuse.evolution.presets import plan_for
from evorefuse.evolution.progress import SILENT, Progress
from evorefuse.fileio import check_output, make_output_dir, write_output
from evorefuse.models.base import SamplingParams
from evorefuse.runstore import RunStore
from evorefuse.session import Session

ExportFormat = Literal["test", "sft", "dpo"]
FORMATS: tuple[str, ...] = get_args(ExportFormat)
STYLES = {"test": ("jsonl", "xstest"), "sft": ("trl",), "dpo": ("trl", "llamafactory")}
ALL_STYLES: tuple[str, ...] = tuple(dict.fromkeys(s for styles in STYLES.values() for s in styles))
DEFAULT_STYLE = {"test": "jsonl", "sft": "trl", "dpo": "trl"}
RESPONDER_ATTEMPTS = 3
RESPONDER_SEED = 1234
EXTRA_TARGET_SAMPLES = 5


@dataclass
class ExportOptions:
    fmt: ExportFormat
    style: str | None = None
    best_per_lineage: bool = False
    min_refusal_rate: float | None = None
    min_targets: int | None = None
    dedup: float | None = 0.92
    include_seeds: bool = False
    exclude_judged_unsafe: bool = False


EMBEDDED_RESPONDER_WARNING = ("the responder is the embedded 135M model: its answers are for "
                              "trying the pipeline, not for training (set roles.responder to a "
                              "capable model)")


@dataclass
class ExportResult:
    path: Path
    written: int
    dropped: Counter = field(default_factory=Counter)
    notices: list[str] = field(default_factory=list)

    def summary(self) -> str:
        drops = ", ".join(f"{n} {why}" for why, n in sorted(self.dropped.items()))
        total = sum(self.dropped.values())
        return (f"export: wrote {self.written} record{'s' if self.written != 1 else ''} to "
                f"{self.path}; dropped {total}" + (f" ({drops})" if drops else ""))


# --- selection ------------------------------------------------------------------------------------

def passed_the_gate(c: Candidate) -> bool:
    """Whether the candidate's own verdict lets it be called safe: harmless, or controversial and
    moved by seed calibration; never harmful or unreadable (the gate's contract)."""
    if c.strategy == "seed":
        return True   # harmless by the user's choice; their verdicts only calibrate the judge
    if c.judge is None:
        return False
    label = c.judge.label
    return label == "harmless" or (label == "controversial" and c.judge.relative_to_seed is not None)


class UnsafeItems(InputError):
    """The archive calls items benign that its own judge verdict does not call harmless (runs made
    by versions whose gate let a harmful verdict through on a margin): they must not be exported
    as safe."""

    def __init__(self, items: list[Candidate]) -> None:
        example = items[0]
        super().__init__(
            f"{len(items)} selected item(s) are benign in the archive but their judge said "
            f"{example.judge.label if example.judge else 'nothing'} (e.g. {example.id}); "
            "refusing to label them safe (--exclude-judged-unsafe leaves them out)",
            field="archive.jsonl")



def strategy_chain(c: Candidate, by_id: dict[str, Candidate]) -> list[str]:
    """Operators applied from the seed to `c`, oldest first, following first parents."""
    chain: list[str] = []
    seen: set[str] = set()
    cur: Candidate | None = c
    while cur is not None and cur.id not in seen:
        seen.add(cur.id)
        if cur.strategy != "seed":
            chain.append(cur.strategy or "?")
        cur = by_id.get(cur.parents[0]) if cur.parents else None
    return chain[::-1]


def refusing_targets(c: Candidate, threshold: float) -> list[str]:
    targets = c.score.targets if c.score is not None else {}
    return sorted(n for n, t in targets.items() if (t.refusal_rate or 0.0) >= threshold)


def select(records: list[Candidate], opts: ExportOptions, k: int) -> tuple[list[Candidate], Counter]:
    """Records to export, best fitness first, and how many were dropped by which rule. `k` is the
    run's full sample budget: only candidates scored with it are exportable."""
    dropped: Counter = Counter()
    pool = []
    for c in records:
        if not c.benign or not c.scored_at(k):
            continue  # rejected or not fully scored: never exportable, not counted as a drop
        if c.strategy == "seed" and not opts.include_seeds:
            continue
        pool.append(c)
    unsafe = [c for c in pool if not passed_the_gate(c)]
    if unsafe and not opts.exclude_judged_unsafe:
        raise UnsafeItems(unsafe)
    if unsafe:
        dropped["judged harmful or unreadable"] += len(unsafe)
        pool = [c for c in pool if c not in unsafe]
    if opts.min_refusal_rate is not None:
        keep = [c for c in pool if c.refusal_rate >= opts.min_refusal_rate]
        dropped["below min refusal rate"] += len(pool) - len(keep)
        pool = keep
    if opts.min_targets:
        thr = opts.min_refusal_rate if opts.min_refusal_rate is not None else 0.5
        keep = [c for c in pool if len(refusing_targets(c, thr)) >= opts.min_targets]
        dropped["refused by too few targets"] += len(pool) - len(keep)
        pool = keep
    pool.sort(key=lambda c: (-c.fitness, c.id))
    if opts.best_per_lineage:
        best: dict[int, Candidate] = {}
        for c in pool:
            best.setdefault(c.lineage, c)
        dropped["not best of lineage"] += len(pool) - len(best)
        pool = [c for c in pool if best.get(c.lineage) is c]
    if opts.dedup is not None and 0 < opts.dedup < 1 and len(pool) > 1:
        from evorefuse.scoring.embeddings import embed, near_duplicates

        drop = set(near_duplicates(embed([c.prompt or "" for c in pool]), threshold=opts.dedup))
        dropped["near duplicate"] += len(drop)
        pool = [c for i, c in enumerate(pool) if i not in drop]
    return pool, +dropped


# --- rows -----------------------------------------------------------------------------------------

@dataclass
class TestItem:
    """One item of an exported test set (the JSONL row; the XSTest CSV takes a subset)."""

    id: str
    prompt: str
    category: str | None
    seed_id: str
    lineage: int
    strategies: list[str]
    refusal_rate: dict[str, float]
    mean_refusal_rate: float
    fitness: float
    judge_verdict: str | None
    judge_votes: list[str] | None
    judge: str | None
    p_harmless: float | None

    __test__ = False  # not a pytest test class, despite the name

    @classmethod
    def of(cls, c: Candidate, by_id: dict[str, Candidate]) -> "TestItem":
        targets = c.score.targets if c.score is not None else {}
        return cls(id=c.id, prompt=c.prompt or "", category=c.category, seed_id=c.seed_id,
                   lineage=c.lineage, strategies=strategy_chain(c, by_id),
                   refusal_rate={n: t.refusal_rate for n, t in sorted(targets.items())},
                   mean_refusal_rate=c.refusal_rate, fitness=c.fitness,
                   judge_verdict=c.judge.label if c.judge else None,
                   judge_votes=[v.verdict for v in c.judge.verdict.votes] if c.judge else None,
                   judge=c.judge.verdict.judge if c.judge else None,
                   p_harmless=c.judge.p_harmless if c.judge else None)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def xstest_csv(items: list[TestItem]) -> bytes:
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["id", "prompt", "type", "label", "focus", "note"])
    for r in items:
        w.writerow([r.id, r.prompt, r.category or "", "safe", r.seed_id or "",
                    " > ".join(r.strategies)])
    return buf.getvalue().encode("utf-8")


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in rows)


# --- model calls ----------------------------------------------------------------------------------

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


async def _model_rows(store: RunStore, recs: list[Candidate], fmt: str, style: str,
                      dropped: Counter, progress: Progress) -> list[dict[str, Any]]:
    """The responder's helpful answers (and for DPO a target's real refusals) of `recs`, in
    order; the calls overlap up to the run's concurrency and are all cached."""
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
    for res in results:
        if isinstance(res, str):
            dropped[res] += 1
        else:
            rows.append(res)
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


# --- writing --------------------------------------------------------------------------------------

def read_dataset_info(out: Path) -> dict[str, Any]:
    """The LLaMA-Factory `dataset_info.json` beside `out` (empty when absent), read and checked
    before any model is called, so a broken one fails at once instead of after the export."""
    info_path = out.parent / "dataset_info.json"
    check_output(info_path, option="dataset_info.json")
    if not info_path.exists():
        return {}
    try:
        info = orjson.loads(info_path.read_bytes())
    except orjson.JSONDecodeError:
        raise InputError("existing dataset_info.json is not valid JSON", path=info_path) from None
    if not isinstance(info, dict):
        raise InputError("existing dataset_info.json is not a JSON object", path=info_path)
    return info


def write_dataset_info(out: Path, info: dict[str, Any]) -> Path:
    """Merge this file's LLaMA-Factory entry into dataset_info.json next to it."""
    info_path = out.parent / "dataset_info.json"
    name = out.name.split(".")[0] or "evorefuse_dpo"
    info[name] = {"file_name": out.name, "ranking": True, "formatting": "sharegpt",
                  "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"}}
    write_output(info_path, orjson.dumps(info, option=orjson.OPT_INDENT_2) + b"\n")
    return info_path


def default_output(run_dir: Path, fmt: str, style: str) -> Path:
    ext = "csv" if style == "xstest" else "jsonl"
    suffix = "" if style in ("jsonl", "trl") else f"_{style}"
    return run_dir / "exports" / f"{fmt}{suffix}.{ext}"


def export_run(run_dir: Path, out: Path | None, opts: ExportOptions,
               progress: Progress = SILENT) -> ExportResult:
    """Select, generate and write; raise InputError (exit 2) for bad input or nothing to export."""
    style = opts.style or DEFAULT_STYLE[opts.fmt]
    if style not in STYLES[opts.fmt]:
        raise InputError(f"style {style!r} is not valid for --format {opts.fmt} "
                         f"(valid: {', '.join(STYLES[opts.fmt])})", field="--style")
    store = RunStore.open(run_dir)
    if out is None:
        out = default_output(store.path, opts.fmt, style)
        make_output_dir(out.parent)
    check_output(out)
    dataset_info = read_dataset_info(out) if opts.fmt == "dpo" and style == "llamafactory" else None
    records = store.candidates()
    cfg = config_from_run(store.config(), str(store.config_file))
    k = plan_for(cfg).samples
    recs, dropped = select(records, opts, k)
    if not recs:
        why = f" ({', '.join(f'{n} {w}' for w, n in dropped.items())})" if dropped else ""
        hint = "" if opts.include_seeds else "; --include-seeds also exports the seeds"
        raise InputError(f"nothing to export: no benign, fully scored candidate passes the "
                         f"selection{why}{hint}", path=run_dir)
    if opts.fmt == "test":
        by_id = {c.id: c for c in records}
        items = [TestItem.of(c, by_id) for c in recs]
        data = xstest_csv(items) if style == "xstest" else jsonl([i.to_json() for i in items])
        written = len(items)
    else:
        rows = interrupts.run(_model_rows(store, recs, opts.fmt, style, dropped, progress))
        if not rows:
            why = ", ".join(f"{n} {w}" for w, n in dropped.items())
            raise InputError(f"nothing to export: every selected candidate was dropped ({why})",
                             path=run_dir)
        data = jsonl(rows)
        written = len(rows)
    write_output(out, data)
    if dataset_info is not None:
        write_dataset_info(out, dataset_info)
    notices = []
    if opts.fmt != "test" and cfg.model(cfg.roles.responder).kind == "local":
        notices.append(EMBEDDED_RESPONDER_WARNING)
    return ExportResult(out, written, dropped, notices)
