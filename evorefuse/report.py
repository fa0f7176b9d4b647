"""A run's HTML report: one self-contained page that someone without a terminal can read.

Why self-contained: reports get mailed, attached to tickets and opened from artifact stores, where
sibling files get lost. The plots are embedded as base64 PNG data URIs; the PNG files are also
written beside the page for slides and papers. Matplotlib runs on the Agg backend (no display).
"""

from __future__ import annotations

import base64
import io
import math
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import jinja2
import orjson

from evorefuse.config import config_from_run
from evorefuse.evolution.candidate import Candidate
from evorefuse.evolution.lineage import Lineage
from evorefuse.evolution.presets import plan_for
from evorefuse.fileio import check_output, make_output_dir, write_output
from evorefuse.runstats import answers, lineages, run_status
from evorefuse.runstore import RunStore

TOP_N = 20
PLOT_FILES = ("fitness.png", "rates.png", "strategies.png", "before_after.png", "calls_cost.png")


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    _plt().close(fig)
    return buf.getvalue()


def _no_data(ax: Any, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what} yet", ha="center", va="center", transform=ax.transAxes,
            color="grey")
    ax.set_xticks([])
    ax.set_yticks([])


# --- plots ---------------------------------------------------------------------------------------

def plot_fitness(history: list[dict[str, Any]]) -> bytes:
    fig, ax = _plt().subplots(figsize=(6, 3.4))
    if history:
        g = [h["generation"] for h in history]
        ax.plot(g, [h["best_fitness"] for h in history], "o-", label="best")
        ax.plot(g, [h["mean_fitness"] for h in history], "s--", label="mean (current per lineage)")
        ax.set_xlabel("generation")
        ax.set_ylabel("fitness (ELBO of refusal)")
        ax.set_xticks(g)
        ax.legend()
    else:
        _no_data(ax, "generations")
    ax.set_title("Fitness per generation")
    return _png(fig)


def plot_rates(history: list[dict[str, Any]], lineages: int) -> bytes:
    fig, ax = _plt().subplots(figsize=(6, 3.4))
    hist = [h for h in history if h["generation"] > 0]
    if hist:
        g = [h["generation"] for h in hist]
        ax.plot(g, [h["benign"] / max(1, h["candidates"]) for h in hist], "o-",
                label="benign (passed judge and checks)")
        ax.plot(g, [h["judge_rejected"] / max(1, h["candidates"]) for h in hist], "s-",
                label="rejected by judge")
        ax.plot(g, [h["accepted"] / max(1, lineages) for h in hist], "^-",
                label="annealing acceptance (per lineage)")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xticks(g)
        ax.set_xlabel("generation")
        ax.set_ylabel("fraction")
        ax.legend(fontsize=8)
    else:
        _no_data(ax, "evolved generations")
    ax.set_title("Acceptance and judge rejection")
    return _png(fig)


@dataclass
class StrategyStats:
    """Per strategy: candidates made, fraction benign, mean refusal rate of fully scored ones."""

    n: int
    benign: float
    refusal_rate: float   # nan when none was fully scored
    scored: int


def strategy_stats(records: list[Candidate], k: int) -> dict[str, StrategyStats]:
    acc: dict[str, dict[str, list]] = defaultdict(lambda: {"n": [], "benign": [], "rr": []})
    for c in records:
        s = c.strategy
        if s == "seed" or not s:
            continue
        acc[s]["n"].append(1)
        acc[s]["benign"].append(c.benign)
        if c.benign and c.scored_at(k):
            acc[s]["rr"].append(c.refusal_rate)
    return {s: StrategyStats(len(v["n"]), sum(v["benign"]) / len(v["n"]),
                             (sum(v["rr"]) / len(v["rr"])) if v["rr"] else float("nan"),
                             len(v["rr"]))
            for s, v in sorted(acc.items(), key=lambda kv: -len(kv[1]["n"]))}


def plot_strategies(stats: dict[str, StrategyStats]) -> bytes:
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, max(3.0, 0.35 * len(stats) + 1.2)))
    if stats:
        names = list(stats)[::-1]
        y = range(len(names))
        a1.barh(y, [stats[n].n for n in names], color="#7aa6c2")
        a1.set_yticks(list(y), names, fontsize=8)
        a1.set_xlabel("candidates generated")
        a1.set_title("Strategy use")
        a2.barh([i + 0.2 for i in y], [stats[n].benign for n in names], height=0.4,
                label="fraction benign", color="#8cc084")
        a2.barh([i - 0.2 for i in y], [0 if math.isnan(stats[n].refusal_rate)
                                       else stats[n].refusal_rate for n in names], height=0.4,
                label="mean refusal rate (scored)", color="#d9825b")
        a2.set_yticks(list(y), names, fontsize=8)
        a2.set_xlim(0, 1)
        a2.legend(fontsize=8, loc="lower right")
        a2.set_title("Strategy success")
    else:
        _no_data(a1, "mutations")
        _no_data(a2, "mutations")
    return _png(fig)


def before_after(records: list[Candidate], lineages: list[Lineage],
                 key: Callable[[Lineage], str] = lambda lin: lin.category or "uncategorised"
                 ) -> dict[str, tuple[float, float, int]]:
    """Per category (or per `key` of the lineage): mean refusal rate of the seeds and of the
    best instruction per lineage."""
    seeds = {c.lineage: c for c in records if c.strategy == "seed" and c.score is not None}
    acc: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for lin in lineages:
        s = seeds.get(lin.index)
        if s is None:
            continue
        acc[key(lin)].append((s.refusal_rate, lin.best.refusal_rate))
    return {c: (sum(b for b, _ in v) / len(v), sum(a for _, a in v) / len(v), len(v))
            for c, v in sorted(acc.items())}


def category_language(records: list[Candidate], lineages: list[Lineage]
                      ) -> dict[str, dict[str, tuple[float, float, int]]]:
    """The category x language matrix: per category and lineage language, the seeds' and the
    best instructions' mean refusal rate and the number of lineages."""
    cells = before_after(records, lineages,
                         lambda lin: f"{lin.category or 'uncategorised'}\x00{lin.language}")
    matrix: dict[str, dict[str, tuple[float, float, int]]] = {}
    for key, cell in cells.items():
        category, language = key.split("\x00")
        matrix.setdefault(category, {})[language] = cell
    return matrix


def plot_before_after(ba: dict[str, tuple[float, float, int]]) -> bytes:
    fig, ax = _plt().subplots(figsize=(max(6, 1.1 * len(ba) + 2), 3.6))
    if ba:
        cats = list(ba)
        x = range(len(cats))
        ax.bar([i - 0.2 for i in x], [ba[c][0] for c in cats], width=0.4, label="seed")
        ax.bar([i + 0.2 for i in x], [ba[c][1] for c in cats], width=0.4, label="best evolved")
        ax.set_xticks(list(x), [f"{c}\n(n={ba[c][2]})" for c in cats], fontsize=8, rotation=20)
        ax.set_ylim(0, 1)
        ax.set_ylabel("refusal rate")
        ax.legend()
    else:
        _no_data(ax, "scored lineages")
    ax.set_title("Refusal rate before and after, per category")
    return _png(fig)


def plot_ledger(ledger: dict[str, dict[str, Any]]) -> bytes:
    fig, (a1, a2) = _plt().subplots(1, 2, figsize=(10, 3.2))
    if ledger:
        roles = sorted(ledger)
        a1.bar(roles, [ledger[r]["calls"] for r in roles], color="#7aa6c2", label="calls")
        a1.bar(roles, [ledger[r].get("cache_hits", 0) for r in roles], color="#c9c9c9",
               bottom=[ledger[r]["calls"] for r in roles], label="cache hits")
        a1.set_title("Calls per role")
        a1.legend(fontsize=8)
        a2.bar(roles, [ledger[r]["cost"] for r in roles], color="#d9825b")
        a2.set_ylim(bottom=0, top=max(1e-6, max(ledger[r]["cost"] for r in roles)) * 1.15)
        if not any(ledger[r]["cost"] for r in roles):
            a2.text(0.5, 0.5, "no paid calls (local or unpriced models)", ha="center",
                    va="center", transform=a2.transAxes, color="grey")
        a2.set_title("Cost per role (USD)")
    else:
        _no_data(a1, "calls")
        _no_data(a2, "calls")
    return _png(fig)


# --- page ----------------------------------------------------------------------------------------

def lineage_chain(c: Candidate, by_id: dict[str, Candidate]) -> list[tuple[str, str]]:
    """(strategy, prompt) from the seed to `c`, following first parents."""
    steps: list[tuple[str, str]] = []
    seen: set[str] = set()
    cur: Candidate | None = c
    while cur is not None and cur.id not in seen:
        seen.add(cur.id)
        steps.append((cur.strategy or "?", cur.prompt or ""))
        cur = by_id.get(cur.parents[0]) if cur.parents else None
    return steps[::-1]


def top_records(records: list[Candidate], k: int, n: int = TOP_N) -> list[Candidate]:
    """The best evolved candidate of each lineage, best first: one entry per seed, so the list
    shows the set's variety rather than one lineage's near-copies."""
    scored = [c for c in records if c.benign and c.strategy != "seed" and c.scored_at(k)]
    best: dict[int, Candidate] = {}
    for c in sorted(scored, key=lambda c: (-c.fitness, c.id)):
        best.setdefault(c.lineage, c)
    return list(best.values())[:n]


def _fmt(v: Any, nd: int = 3) -> str:
    """A number for the page (the template escapes it like any other text)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.{nd}f}" if isinstance(v, float) else str(v)


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _template() -> jinja2.Template:
    env = jinja2.Environment(loader=jinja2.PackageLoader("evorefuse", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["fmt"] = _fmt
    return env.get_template("report.html.j2")


def build_report(run_dir: Path, out_dir: Path | None = None) -> Path:
    """Write out_dir/index.html and the PNGs; return the page's path."""
    store = RunStore.open(run_dir)
    out_dir = out_dir or store.path / "report"
    make_output_dir(out_dir)
    for name in (*PLOT_FILES, "index.html", "summary.json"):
        check_output(out_dir / name)
    st = run_status(store.path)
    k = plan_for(config_from_run(store.config(), str(store.config_file))).samples
    records = store.candidates()
    by_id = {c.id: c for c in records}
    stats = strategy_stats(records, k)
    lins = lineages(store)
    ba = before_after(records, lins)
    matrix = category_language(records, lins)
    matrix_languages = sorted({lang for row in matrix.values() for lang in row})
    plots: list[tuple[str, str, Callable[[], bytes]]] = [
        ("fitness.png", "Best and mean fitness per generation", lambda: plot_fitness(st.history)),
        ("rates.png", "Acceptance and judge-rejection rates",
         lambda: plot_rates(st.history, max(1, st.lineages))),
        ("strategies.png", "Strategy use and success", lambda: plot_strategies(stats)),
        ("before_after.png", "Refusal rates before/after per category",
         lambda: plot_before_after(ba)),
        ("calls_cost.png", "Calls and cost per role", lambda: plot_ledger(st.ledger)),
    ]
    images: dict[str, dict[str, str]] = {}
    for name, alt, make in plots:
        png = make()
        write_output(out_dir / name, png)
        images[name] = {"src": _data_uri(png), "alt": alt, "name": name}
    top = [{"chain": lineage_chain(c, by_id), "category": c.category or "",
            "fitness": c.fitness,
            "targets": sorted((t, s.refusal_rate) for t, s in
                              (c.score.targets if c.score else {}).items()),
            "answers": sorted(answers(c).items()),
            "verdict": (f"{c.judge.label} ({c.judge.verdict.judge})" if c.judge else "")}
           for c in top_records(records, k)]
    page = _template().render(
        title=f"evorefuse report: {store.path.name}", run_dir=str(store.path), st=st,
        written=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), images=images,
        strategies=stats, ledger=sorted(st.ledger.items()), top=top, top_n=TOP_N,
        before_after=ba, matrix=matrix, matrix_languages=matrix_languages)
    path = out_dir / "index.html"
    write_output(path, page.encode("utf-8"))
    write_output(out_dir / "summary.json", orjson.dumps(
        {"strategies": {n: asdict(v) for n, v in stats.items()},
         "before_after": {c: list(v) for c, v in ba.items()},
         "category_language": {c: {lang: list(v) for lang, v in row.items()}
                               for c, row in matrix.items()}},
        option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    return path
