"""A run's HTML report: one self-contained page that someone without a terminal can read.

Why self-contained: reports get mailed, attached to tickets and opened from artifact stores, where
sibling files get lost. The plots are embedded as base64 PNG data URIs; the PNG files are also
written beside the page for slides and papers. Matplotlib runs on the Agg backend (no display).
"""

from __future__ import annotations

import base64
import html
import io
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

import orjson

from evorefuse.errors import InputError

TOP_N = 20


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


def strategy_stats(records: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per strategy: candidates made, fraction benign, mean refusal rate of fully scored ones."""
    full_k = max((r.get("k") or 0 for r in records), default=0)
    acc: dict[str, dict[str, list]] = defaultdict(lambda: {"n": [], "benign": [], "rr": []})
    for r in records:
        s = r.get("strategy")
        if s == "seed" or not s:
            continue
        acc[s]["n"].append(1)
        acc[s]["benign"].append(r.get("status") == "benign")
        if r.get("status") == "benign" and full_k and (r.get("k") or 0) >= full_k:
            acc[s]["rr"].append(r.get("refusal_rate") or 0.0)
    return {s: {"n": len(v["n"]), "benign": sum(v["benign"]) / len(v["n"]),
                "refusal_rate": (sum(v["rr"]) / len(v["rr"])) if v["rr"] else float("nan"),
                "scored": len(v["rr"])}
            for s, v in sorted(acc.items(), key=lambda kv: -len(kv[1]["n"]))}


def plot_strategies(stats: dict[str, dict[str, float]]) -> bytes:
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, max(3.0, 0.35 * len(stats) + 1.2)))
    if stats:
        names = list(stats)[::-1]
        y = range(len(names))
        a1.barh(y, [stats[n]["n"] for n in names], color="#7aa6c2")
        a1.set_yticks(list(y), names, fontsize=8)
        a1.set_xlabel("candidates generated")
        a1.set_title("Strategy use")
        a2.barh([i + 0.2 for i in y], [stats[n]["benign"] for n in names], height=0.4,
                label="fraction benign", color="#8cc084")
        a2.barh([i - 0.2 for i in y], [0 if stats[n]["refusal_rate"] != stats[n]["refusal_rate"]
                                       else stats[n]["refusal_rate"] for n in names], height=0.4,
                label="mean refusal rate (scored)", color="#d9825b")
        a2.set_yticks(list(y), names, fontsize=8)
        a2.set_xlim(0, 1)
        a2.legend(fontsize=8, loc="lower right")
        a2.set_title("Strategy success")
    else:
        _no_data(a1, "mutations")
        _no_data(a2, "mutations")
    return _png(fig)


def before_after(records: list[dict[str, Any]], lineages: list[dict[str, Any]]) -> dict[str, tuple[float, float, int]]:
    """Per category: mean refusal rate of the seeds and of the best instruction per lineage."""
    seeds = {r["lineage"]: r for r in records if r.get("strategy") == "seed"}
    acc: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for lin in lineages:
        s = seeds.get(lin["index"])
        if s is None or s.get("refusal_rate") is None:
            continue
        acc[lin.get("category") or "uncategorised"].append(
            (s["refusal_rate"], lin["best"].get("refusal_rate") or 0.0))
    return {c: (sum(b for b, _ in v) / len(v), sum(a for _, a in v) / len(v), len(v))
            for c, v in sorted(acc.items())}


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

def lineage_chain(rec: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    """(strategy, prompt) from the seed to `rec`, following first parents."""
    steps: list[tuple[str, str]] = []
    seen: set[str] = set()
    cur: dict[str, Any] | None = rec
    while cur is not None and cur["id"] not in seen:
        seen.add(cur["id"])
        steps.append((cur.get("strategy") or "?", cur["prompt"]))
        parents = cur.get("parents") or []
        cur = by_id.get(parents[0]) if parents else None
    return steps[::-1]


def top_records(records: list[dict[str, Any]], n: int = TOP_N) -> list[dict[str, Any]]:
    full_k = max((r.get("k") or 0 for r in records), default=0)
    scored = [r for r in records if r.get("status") == "benign" and r.get("strategy") != "seed"
              and full_k and (r.get("k") or 0) >= full_k]
    return sorted(scored, key=lambda r: (-(r.get("fitness") or float("-inf")), r["id"]))[:n]


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1150px;color:#222;line-height:1.45;padding:0 1em}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
.meta{color:#555}.cards{display:flex;flex-wrap:wrap;gap:.8em;margin:1em 0}
.card{border:1px solid #ddd;border-radius:6px;padding:.5em .9em;min-width:9em;background:#fafafa}
.card b{display:block;font-size:1.35em}img{max-width:100%;border:1px solid #eee}
table{border-collapse:collapse;width:100%;font-size:.9em}td,th{border:1px solid #ddd;padding:.3em .5em;
vertical-align:top;text-align:left}th{background:#f2f2f2}td.num{text-align:right;white-space:nowrap}
ol.chain{margin:0;padding-left:1.2em}ol.chain li{margin:.1em 0}.strat{color:#a14d12;font-weight:600}
"""


def _fmt(v: Any, nd: int = 3) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "–"
    return f"{v:.{nd}f}" if isinstance(v, float) else html.escape(str(v))


def _img(name: str, png: bytes, alt: str) -> str:
    b64 = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{b64}" alt="{html.escape(alt)}" title="{name}">'


def build_report(run_dir: Path, out_dir: Path | None = None) -> Path:
    """Write out_dir/index.html and the PNGs; return the page's path."""
    from evorefuse.commands.status import run_status
    from evorefuse.runstore import RunStore

    store = RunStore.open(run_dir)
    out_dir = out_dir or store.path / "report"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create report directory: {exc.strerror}", path=out_dir) from None
    st = run_status(store.path)
    records = store.archive()
    lineages = (store.checkpoint() or {}).get("lineages", [])
    by_id = {r["id"]: r for r in records}
    stats = strategy_stats(records)
    ba = before_after(records, lineages)
    plots: list[tuple[str, str, Callable[[], bytes]]] = [
        ("fitness.png", "Best and mean fitness per generation", lambda: plot_fitness(st["history"])),
        ("rates.png", "Acceptance and judge-rejection rates",
         lambda: plot_rates(st["history"], max(1, st["lineages"]))),
        ("strategies.png", "Strategy use and success", lambda: plot_strategies(stats)),
        ("before_after.png", "Refusal rates before/after per category",
         lambda: plot_before_after(ba)),
        ("calls_cost.png", "Calls and cost per role", lambda: plot_ledger(st["ledger"])),
    ]
    images: dict[str, str] = {}
    for name, alt, make in plots:
        png = make()
        (out_dir / name).write_bytes(png)
        images[name] = _img(name, png, alt)

    def card(label: str, value: str) -> str:
        return f'<div class="card">{html.escape(label)}<b>{value}</b></div>'

    cards = "".join([
        card("state", html.escape(st["state"])),
        card("generations", f"{st['generation']} / {st['generations']}"),
        card("lineages", str(st["lineages"])), card("candidates", str(st["candidates"])),
        card("refusal rate, seeds", _fmt(st["refusal_rate_seeds"])),
        card("refusal rate, best", _fmt(st["refusal_rate_best"])),
        card("model calls", str(st["calls"])), card("cost (USD)", f"{st['cost_usd']:.4f}"),
    ])
    strat_rows = "".join(
        f"<tr><td>{html.escape(s)}</td><td class=num>{v['n']}</td><td class=num>{v['benign']:.2f}</td>"
        f"<td class=num>{v['scored']}</td><td class=num>{_fmt(v['refusal_rate'])}</td></tr>"
        for s, v in stats.items())
    ledger_rows = "".join(
        f"<tr><td>{html.escape(r)}</td><td class=num>{e['calls']}</td><td class=num>{e['cache_hits']}</td>"
        f"<td class=num>{e['tokens_in']}</td><td class=num>{e['tokens_out']}</td>"
        f"<td class=num>{e['cost']:.4f}</td></tr>" for r, e in sorted(st["ledger"].items()))
    top_rows = []
    for i, r in enumerate(top_records(records), 1):
        chain = "".join(f'<li><span class="strat">{html.escape(s)}</span>: {html.escape(p)}</li>'
                        for s, p in lineage_chain(r, by_id))
        per_t = "<br>".join(f"{html.escape(t)}: {v.get('refusal_rate', 0):.2f}"
                            for t, v in sorted((r.get("targets") or {}).items()))
        top_rows.append(f"<tr><td class=num>{i}</td><td><ol class=chain>{chain}</ol></td>"
                        f"<td>{html.escape(r.get('category') or '')}</td>"
                        f"<td class=num>{_fmt(r.get('fitness'))}</td><td class=num>{per_t}</td></tr>")
    top_html = ("<table><tr><th>#</th><th>lineage: seed → … → instruction (strategy: text)</th>"
                "<th>category</th><th>fitness</th><th>refusal rate</th></tr>"
                + "".join(top_rows) + "</table>") if top_rows else \
        "<p>No evolved candidate has been fully scored yet.</p>"
    ba_rows = "".join(f"<tr><td>{html.escape(c)}</td><td class=num>{n}</td><td class=num>{b:.3f}</td>"
                      f"<td class=num>{a:.3f}</td></tr>" for c, (b, a, n) in ba.items())
    title = f"evorefuse report: {store.path.name}"
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_CSS}</style></head>
<body><h1>{html.escape(title)}</h1>
<p class="meta">Run directory <code>{html.escape(str(store.path))}</code> · preset {html.escape(st['preset'])}
· targets {html.escape(', '.join(st['targets']))} · written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}</p>
<div class="cards">{cards}</div>
<h2>Fitness</h2><p>Best fitness ever seen and the mean over lineages' current instructions.
Higher means the targets are more likely to refuse.</p>{images['fitness.png']}
<h2>Acceptance and judge rejections</h2><p>Per generation: the fraction of new candidates that
were benign, the fraction the judge rejected as not harmless, and how often simulated annealing
replaced a lineage's current instruction.</p>{images['rates.png']}
<h2>Strategies</h2>{images['strategies.png']}
<table><tr><th>strategy</th><th>candidates</th><th>fraction benign</th><th>fully scored</th>
<th>mean refusal rate</th></tr>{strat_rows}</table>
<h2>Refusal rate before and after</h2><p>Seeds versus the best instruction of each lineage.</p>
{images['before_after.png']}
<table><tr><th>category</th><th>lineages</th><th>seeds</th><th>best evolved</th></tr>{ba_rows}</table>
<h2>Calls and cost</h2>{images['calls_cost.png']}
<table><tr><th>role</th><th>calls</th><th>cache hits</th><th>tokens in</th><th>tokens out</th>
<th>cost USD</th></tr>{ledger_rows}</table>
<h2>Top {TOP_N} instructions</h2>{top_html}
</body></html>
"""
    path = out_dir / "index.html"
    from evorefuse.fileio import write_atomic

    write_atomic(path, page.encode("utf-8"))
    (out_dir / "summary.json").write_bytes(orjson.dumps(
        {"strategies": stats, "before_after": {c: list(v) for c, v in ba.items()}},
        option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    return path
