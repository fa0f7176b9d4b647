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
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from evorefuse.errors import InputError
from evorefuse.fileio import write_atomic

FORMATS = ("test", "sft", "dpo")
STYLES = {"test": ("jsonl", "xstest"), "sft": ("trl",), "dpo": ("trl", "llamafactory")}
DEFAULT_STYLE = {"test": "jsonl", "sft": "trl", "dpo": "trl"}
RESPONDER_ATTEMPTS = 3
RESPONDER_SEED = 1234
EXTRA_TARGET_SAMPLES = 5


@dataclass
class ExportOptions:
    fmt: str
    style: str | None = None
    best_per_lineage: bool = False
    min_refusal_rate: float | None = None
    min_targets: int | None = None
    dedup: float | None = 0.92
    include_seeds: bool = False


@dataclass
class ExportResult:
    path: Path
    written: int
    dropped: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        drops = ", ".join(f"{n} {why}" for why, n in sorted(self.dropped.items()))
        total = sum(self.dropped.values())
        return (f"export: wrote {self.written} record{'s' if self.written != 1 else ''} to "
                f"{self.path}; dropped {total}" + (f" ({drops})" if drops else ""))


# --- selection ------------------------------------------------------------------------------------

def strategy_chain(rec: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> list[str]:
    """Operators applied from the seed to `rec`, oldest first, following first parents."""
    chain: list[str] = []
    seen: set[str] = set()
    cur: dict[str, Any] | None = rec
    while cur is not None and cur["id"] not in seen:
        seen.add(cur["id"])
        if cur.get("strategy") != "seed":
            chain.append(cur.get("strategy") or "?")
        parents = cur.get("parents") or []
        cur = by_id.get(parents[0]) if parents else None
    return chain[::-1]


def refusing_targets(rec: dict[str, Any], threshold: float) -> list[str]:
    return sorted(n for n, t in (rec.get("targets") or {}).items()
                  if (t.get("refusal_rate") or 0.0) >= threshold)


def select(records: list[dict[str, Any]], opts: ExportOptions) -> tuple[list[dict[str, Any]], Counter]:
    """Records to export, best fitness first, and how many were dropped by which rule."""
    dropped: Counter = Counter()
    full_k = max((r.get("k") or 0 for r in records), default=0)
    pool = []
    for r in records:
        if r.get("status") != "benign" or full_k == 0 or (r.get("k") or 0) < full_k:
            continue  # rejected or not fully scored: never exportable, not counted as a drop
        if r.get("strategy") == "seed" and not opts.include_seeds:
            continue
        pool.append(r)
    if opts.min_refusal_rate is not None:
        keep = [r for r in pool if (r.get("refusal_rate") or 0.0) >= opts.min_refusal_rate]
        dropped["below min refusal rate"] += len(pool) - len(keep)
        pool = keep
    if opts.min_targets:
        thr = opts.min_refusal_rate if opts.min_refusal_rate is not None else 0.5
        keep = [r for r in pool if len(refusing_targets(r, thr)) >= opts.min_targets]
        dropped["refused by too few targets"] += len(pool) - len(keep)
        pool = keep
    pool.sort(key=lambda r: (-(r.get("fitness") or float("-inf")), r["id"]))
    if opts.best_per_lineage:
        best: dict[Any, dict[str, Any]] = {}
        for r in pool:
            best.setdefault(r.get("lineage"), r)
        dropped["not best of lineage"] += len(pool) - len(best)
        pool = [r for r in pool if best.get(r.get("lineage")) is r]
    if opts.dedup is not None and 0 < opts.dedup < 1 and len(pool) > 1:
        from evorefuse.scoring.embeddings import embed, near_duplicates

        drop = set(near_duplicates(embed([r["prompt"] for r in pool]), threshold=opts.dedup))
        dropped["near duplicate"] += len(drop)
        pool = [r for i, r in enumerate(pool) if i not in drop]
    return pool, +dropped


# --- rows -----------------------------------------------------------------------------------------

def test_row(rec: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> dict[str, Any]:
    judge = rec.get("judge") or {}
    return {
        "id": rec["id"], "prompt": rec["prompt"], "category": rec.get("category"),
        "seed_id": rec.get("seed_id"), "lineage": rec.get("lineage"),
        "strategies": strategy_chain(rec, by_id),
        "refusal_rate": {n: t.get("refusal_rate") for n, t in sorted((rec.get("targets") or {}).items())},
        "mean_refusal_rate": rec.get("refusal_rate"), "fitness": rec.get("fitness"),
        "judge_verdict": judge.get("verdict"), "judge_votes": judge.get("votes"),
    }


def xstest_csv(rows: list[dict[str, Any]]) -> bytes:
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["id", "prompt", "type", "label", "focus", "note"])
    for r in rows:
        w.writerow([r["id"], r["prompt"], r.get("category") or "", "safe", r.get("seed_id") or "",
                    " > ".join(r["strategies"])])
    return buf.getvalue().encode("utf-8")


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in rows)


# --- model calls ----------------------------------------------------------------------------------

class Responder:
    """The responder role and the targets, through the run's cache, plus the run's detector."""

    def __init__(self, store: Any) -> None:
        from evorefuse.commands.evolve import _config_from_run
        from evorefuse.models.cache import RequestCache
        from evorefuse.models.ledger import Ledger
        from evorefuse.models.registry import Registry, check_credentials

        self.cfg = _config_from_run(store.config(), str(store.config_file))
        names = sorted({self.cfg.roles.responder, *self.cfg.roles.targets})
        check_credentials(self.cfg, names)
        self.cache = RequestCache(store.cache_file)
        self.registry = Registry(self.cfg, self.cache, Ledger(), run_id=store.path.name)
        self.detector = make_detector(self.cfg.roles.detector, self.registry, self.cfg)

    async def helpful_answer(self, prompt: str) -> str | None:
        """A non-refusing answer by the responder, or None after RESPONDER_ATTEMPTS refusals."""
        from evorefuse.models.base import SamplingParams

        ep = self.registry.endpoint(self.cfg.roles.responder)
        for attempt in range(RESPONDER_ATTEMPTS):
            params = SamplingParams(temperature=0.7, top_p=1.0, max_tokens=256,
                                    seed=RESPONDER_SEED + attempt, n=1)
            res = await ep.chat([{"role": "user", "content": prompt}], params, role="responder")
            text = res.choices[0].text.strip() if res.choices else ""
            if text and not (await self.detector.adetect([prompt], [text]))[0].refusal:
                return text
        return None

    async def refusal(self, rec: dict[str, Any]) -> str | None:
        """A real refusal by a target: the one kept from scoring, else a few fresh samples."""
        targets = rec.get("targets") or {}
        for name in sorted(targets):
            ex = targets[name].get("refusal_example")
            if ex and (await self.detector.adetect([rec["prompt"]], [ex]))[0].refusal:
                return ex
        from evorefuse.evolution.presets import plan_for
        from evorefuse.evolution.rng import derive_seed
        from evorefuse.scoring.fitness import FitnessEstimator, FitnessSettings

        plan = plan_for(self.cfg)
        settings = FitnessSettings(samples=plan.samples, temperature=plan.temperature,
                                   top_p=self.cfg.fitness.top_p, max_tokens=plan.max_tokens,
                                   seed=derive_seed(self.cfg.run.seed, "target"))
        for name in self.cfg.roles.targets:
            if name not in targets:
                continue
            ep = self.registry.endpoint(name)
            est = FitnessEstimator([ep], self.detector, settings)
            k = int(targets[name].get("n") or plan.samples)
            # The first k samples are the cached ones already scored: only the extra ones are new.
            choices = (await est.target_samples(ep, rec["prompt"], k + EXTRA_TARGET_SAMPLES))[k:]
            texts = [c.text for c in choices if c.text.strip()]
            if not texts:
                continue
            for t, v in zip(texts, await self.detector.adetect([rec["prompt"]] * len(texts), texts)):
                if v.refusal:
                    return t
        return None

    async def aclose(self) -> None:
        await self.registry.aclose()
        self.cache.close()


def make_detector(name: str, registry: Any = None, cfg: Any = None) -> Any:
    """The configured detector; `auto` falls back to `pattern` when it cannot be built."""
    from evorefuse.scoring.refusal.factory import get_detector

    if name == "judge" and registry is not None and cfg is not None:
        return get_detector("judge", registry.endpoint(cfg.judges()[0]))
    try:
        return get_detector(name)
    except Exception:  # noqa: BLE001 - a missing optional detector must not stop an export
        if name == "auto":
            return get_detector("pattern")
        raise


async def _model_rows(store: Any, recs: list[dict[str, Any]], fmt: str, style: str,
                      dropped: Counter) -> list[dict[str, Any]]:
    resp = Responder(store)
    rows: list[dict[str, Any]] = []
    try:
        for rec in recs:
            rejected = None
            if fmt == "dpo":
                rejected = await resp.refusal(rec)
                if rejected is None:
                    dropped["no target refusal"] += 1
                    continue
            chosen = await resp.helpful_answer(rec["prompt"])
            if chosen is None:
                dropped["responder refused"] += 1
                continue
            rows.append(format_row(fmt, style, rec["prompt"], chosen, rejected))
    finally:
        await resp.aclose()
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

def check_output(out: Path) -> None:
    parent = out.parent if str(out.parent) else Path(".")
    if out.is_dir():
        raise InputError("is a directory; give a file name", path=out, field="-o")
    if not parent.is_dir():
        raise InputError("directory does not exist", path=parent, field="-o")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError("directory is not writable", path=parent, field="-o")


def update_dataset_info(out: Path) -> Path:
    """Merge this file's LLaMA-Factory entry into dataset_info.json next to it."""
    info_path = out.parent / "dataset_info.json"
    info: dict[str, Any] = {}
    if info_path.exists():
        try:
            info = orjson.loads(info_path.read_bytes())
        except orjson.JSONDecodeError:
            raise InputError("existing dataset_info.json is not valid JSON", path=info_path) from None
        if not isinstance(info, dict):
            raise InputError("existing dataset_info.json is not a JSON object", path=info_path)
    name = out.name.split(".")[0] or "evorefuse_dpo"
    info[name] = {"file_name": out.name, "ranking": True, "formatting": "sharegpt",
                  "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"}}
    write_atomic(info_path, orjson.dumps(info, option=orjson.OPT_INDENT_2) + b"\n")
    return info_path


def default_output(run_dir: Path, fmt: str, style: str) -> Path:
    ext = "csv" if style == "xstest" else "jsonl"
    suffix = "" if style in ("jsonl", "trl") else f"_{style}"
    return run_dir / "exports" / f"{fmt}{suffix}.{ext}"


def export_run(run_dir: Path, out: Path | None, opts: ExportOptions) -> ExportResult:
    """Select, generate and write; raise InputError (exit 2) for bad input or nothing to export."""
    from evorefuse.runstore import RunStore

    style = opts.style or DEFAULT_STYLE[opts.fmt]
    if style not in STYLES[opts.fmt]:
        raise InputError(f"style {style!r} is not valid for --format {opts.fmt} "
                         f"(valid: {', '.join(STYLES[opts.fmt])})", field="--style")
    store = RunStore.open(run_dir)
    if out is None:
        out = default_output(store.path, opts.fmt, style)
        out.parent.mkdir(exist_ok=True)
    check_output(out)
    records = store.archive()
    recs, dropped = select(records, opts)
    if not recs:
        why = f" ({', '.join(f'{n} {w}' for w, n in dropped.items())})" if dropped else ""
        hint = "" if opts.include_seeds else "; --include-seeds also exports the seeds"
        raise InputError(f"nothing to export: no benign, fully scored candidate passes the "
                         f"selection{why}{hint}", path=run_dir)
    if opts.fmt == "test":
        by_id = {r["id"]: r for r in records}
        rows = [test_row(r, by_id) for r in recs]
        data = xstest_csv(rows) if style == "xstest" else jsonl(rows)
    else:
        rows = asyncio.run(_model_rows(store, recs, opts.fmt, style, dropped))
        if not rows:
            why = ", ".join(f"{n} {w}" for w, n in dropped.items())
            raise InputError(f"nothing to export: every selected candidate was dropped ({why})",
                             path=run_dir)
        data = jsonl(rows)
    write_atomic(out, data)
    if opts.fmt == "dpo" and style == "llamafactory":
        update_dataset_info(out)
    return ExportResult(out, len(rows), dropped)
