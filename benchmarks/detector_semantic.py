"""Would a semantic stage (MiniLM embeddings of the response) make `auto` hold on unseen assistants?

    python benchmarks/detector_semantic.py [--write] [--views head2,c256,last,full] [--tuned]

Every variant is fitted on the project's examples plus one reference file and measured on the
other, both ways, exactly as `benchmarks/detector.py` measures `auto` (same corpus, same openings,
same pattern gate: responses the patterns decide are decided the same way in every variant, except
in "soft openings to the head"). Columns: ChatGPT-3.5 complied vs rejected (fitted on own +
Mistral), its odd half (rows never inspected while the packs were written), XSTest's Mistral
responses binary and 3-way (fitted on own + ChatGPT), each with a 95% Wilson interval.

Views of a response that get embedded (all-MiniLM-L6-v2, the project's int8 ONNX embedder):
`head2` the first two sentences cut at 300 characters (what the `learned` detector embeds),
`c256` the first 256 characters, `last` the last sentence, `full` the whole response (the model
reads its first 256 tokens: an upper bound, far too slow for `auto`'s speed rule).

`--tuned` adds MiniLM fine-tuned as a refusal classifier (the benign gate's recipe, `harm/tune.py`:
a rank-8 adapter on every linear layer plus a linear head, 4 epochs, responses cut at 128 tokens
for training), fitted per direction on every response of the fit sources and their openings, and
read back through the int8 model. Each fine-tuning takes about 20 minutes on two cores; the
adapters are kept in `--tuned-cache` (keyed by the training texts, labels and settings), so a rerun
only scores.

Nothing here ships: the variants are measured, the figures and the command go to the
`## detector: semantic stage` section of benchmarks/RESULTS.md with `--write`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `python benchmarks/detector_semantic.py` from anywhere

from benchmarks.detector import Corpus, Metrics, complied_rejected, wilson
from benchmarks.results import load_note
from evorefuse.scoring.embeddings import embed
from evorefuse.scoring.harm.train import TUNED_CACHE
from evorefuse.scoring.refusal import fit as F
from evorefuse.scoring.refusal.base import COMPLIANCE, Verdict, strip_reasoning
from evorefuse.scoring.refusal.features import explicit_kind
from evorefuse.scoring.refusal.learned import LearnedModel, first_sentences, verdicts
from evorefuse.scoring.refusal.patterns import refusal_label

SECTION = "detector: semantic stage"
_SPLIT = re.compile(r"(?<=[.!?\u3002\uff01\uff1f])\s+|\n+")


def _last_sentence(text: str) -> str:
    parts = [p for p in _SPLIT.split(strip_reasoning(text or "").strip()) if p.strip()]
    return parts[-1][:300] if parts else ""


VIEWS: dict[str, Callable[[str], str]] = {
    "head2": first_sentences,
    "c256": lambda t: F.truncate(strip_reasoning(t or "").strip(), 256),
    "last": _last_sentence,
    "full": lambda t: strip_reasoning(t or "").strip()[:1500],
}

# scorer(train rows, test rows, the direction's fitted auto model) -> p_refusal of the test rows
Scorer = Callable[[np.ndarray, np.ndarray, LearnedModel], np.ndarray]


class Bench:
    """The corpus of `benchmarks/detector.py`, its embeddings per view, and the two directions."""

    def __init__(self, views: Sequence[str]) -> None:
        self.c = Corpus(embeddings=False)
        self.X = self.c.feats.X
        self.y = np.array([e.refusal for e in self.c.examples], dtype=int)
        self.kind = np.array([explicit_kind(a) or "head" for a in self.c.feats.analyses])
        self.E: dict[str, np.ndarray] = {}
        self.embed_seconds: dict[str, tuple[int, float]] = {}
        for v in views:
            texts = [VIEWS[v](e.response) for e in self.c.examples]
            uniq = sorted({t for t in texts if t})
            t0 = time.perf_counter()
            rows = dict(zip(uniq, np.asarray(embed(uniq, batch_size=32), dtype=np.float64)))
            self.embed_seconds[v] = (len(uniq), time.perf_counter() - t0)
            zero = np.zeros(rows[uniq[0]].shape)
            self.E[v] = np.stack([rows.get(t, zero) for t in texts])
        chat = self.c.where("chatgpt", whole_only=True)
        self.tests = [("c/r", complied_rejected(self.c, chat), ("own", "mistral")),
                      ("odd", complied_rejected(self.c, chat, odd=True), ("own", "mistral")),
                      ("mistral", self.c.where("mistral", whole_only=True), ("own", "chatgpt"))]
        self._auto: dict[tuple[str, ...], LearnedModel] = {}
        self._baseline: dict[str, np.ndarray] = {}  # auto's right/wrong per test, for the diff
        self.accuracy: dict[str, dict[str, float]] = {}  # variant -> test -> binary accuracy

    def auto(self, fit_on: tuple[str, ...]) -> LearnedModel:
        if fit_on not in self._auto:
            self._auto[fit_on] = self.c.fit(self.c.where(*fit_on))
        return self._auto[fit_on]

    def emb(self, views: Sequence[str]) -> np.ndarray:
        return np.hstack([self.E[v] for v in views])

    def row(self, name: str, scorer: Scorer, *, soft_to_head: bool = False) -> str:
        cells = []
        self.accuracy[name] = {}
        for title, test, fit_on in self.tests:
            model = self.auto(fit_on)
            head_kinds = ["head", "soft"] if soft_to_head else ["head"]
            train = np.flatnonzero(self.c.where(*fit_on) & np.isin(self.kind, head_kinds))
            te = np.flatnonzero(test)
            analyses = [self.c.feats.analyses[i] for i in te]
            p = scorer(train, te, model)
            vs = verdicts(p, analyses, model)
            if soft_to_head:
                vs = [Verdict(float(pi), COMPLIANCE if pi < 0.5 else refusal_label(a))
                      if self.kind[i] == "soft" else v
                      for v, pi, a, i in zip(vs, p, analyses, te)]
            ex = self.c.take(test)
            m = Metrics.of(vs, ex)
            lo, hi = wilson(round(m.acc * m.n), m.n)
            right = np.array([v.refusal == e.refusal for v, e in zip(vs, ex)])
            base = self._baseline.setdefault(title, right)
            diff = f"+{int(np.sum(right & ~base))}/-{int(np.sum(~right & base))}"
            self.accuracy[name][title] = m.acc
            cells.append(f"{m.acc:.3f} ({lo:.3f}-{hi:.3f})")
            if title != "odd":
                cells.append(diff)
            if title == "mistral":
                cells.append(f"{m.acc3:.3f}")
        line = f"| {name} | " + " | ".join(cells) + " |"
        print(line, flush=True)
        return line


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _standardise(X: np.ndarray, train: np.ndarray) -> np.ndarray:
    mu, sd = X[train].mean(0), X[train].std(0)
    sd[sd < 1e-6] = 1.0
    return (X - mu) / sd


def lite(b: Bench) -> Scorer:
    return lambda tr, te, model: model.lite.score(b.X[te])


def shipped_full(b: Bench, band: tuple[float, float] | None) -> Scorer:
    """The `learned` head as `fit.fit_model` fits it (features + head2 embedding), on every head
    row or only on those whose lite probability is in `band` (auto's optional embedding band)."""
    cache: dict[int, LearnedModel] = {}

    def score(tr: np.ndarray, te: np.ndarray, model: LearnedModel) -> np.ndarray:
        key = hash(tr.tobytes())
        if key not in cache:
            f = b.c.feats.take(tr)
            f = F.Features(f.X, b.E["head2"][tr], f.explicit, f.analyses)
            cache[key] = LearnedModel.from_json(F.fit_model(f, [b.c.examples[i] for i in tr]))
        full = cache[key].full
        assert full is not None
        p = model.lite.score(b.X[te])
        use = np.ones(len(te), bool) if band is None else (p >= band[0]) & (p <= band[1])
        p[use] = full.score(b.X[te][use], b.E["head2"][te][use])
        return p
    return score


def concat(b: Bench, views: Sequence[str], weight: float, C: float = F.C_REFUSAL) -> Scorer:
    """One logistic regression on standardised features beside the embedding times `weight`
    (the shipped full head uses weight 1, where each embedding dimension's spread is ~0.05)."""
    def score(tr: np.ndarray, te: np.ndarray, model: LearnedModel) -> np.ndarray:
        Z = np.hstack([_standardise(b.X, tr), b.emb(views) * weight])
        clf = LogisticRegression(C=C, max_iter=3000).fit(Z[tr], b.y[tr])
        return clf.predict_proba(Z[te])[:, 1]
    return score


def stacked(b: Bench, views: Sequence[str], C: float = 1.0,
            band: tuple[float, float] | None = None, alone: bool = False) -> Scorer:
    """A second head on the embedding alone; its logit is added to the lite head's (or, `alone`,
    replaces it). With `band`, only rows whose lite probability is in the band are re-scored."""
    def score(tr: np.ndarray, te: np.ndarray, model: LearnedModel) -> np.ndarray:
        E = b.emb(views)
        clf = LogisticRegression(C=C, max_iter=3000).fit(E[tr], b.y[tr])
        p = model.lite.score(b.X[te])
        use = np.ones(len(te), bool) if band is None else (p >= band[0]) & (p <= band[1])
        z = clf.decision_function(E[te][use])
        p[use] = _sigmoid(z if alone else _logit(p[use]) + z)
        return p
    return score


def boosted(b: Bench, depth: int) -> Scorer:
    """More capacity on the same structure features: gradient-boosted trees instead of the
    logistic head."""
    def score(tr: np.ndarray, te: np.ndarray, model: LearnedModel) -> np.ndarray:
        clf = HistGradientBoostingClassifier(max_depth=depth, max_iter=200, learning_rate=0.05,
                                             random_state=0).fit(b.X[tr], b.y[tr])
        return clf.predict_proba(b.X[te])[:, 1]
    return score


def soft_head(b: Bench) -> Scorer:
    """The lite head refitted with the soft openings (which the soft rule decides today)."""
    def score(tr: np.ndarray, te: np.ndarray, model: LearnedModel) -> np.ndarray:
        Z = _standardise(b.X, tr)
        clf = LogisticRegression(C=F.C_REFUSAL, max_iter=3000).fit(Z[tr], b.y[tr])
        return clf.predict_proba(Z[te])[:, 1]
    return score


TUNED_TOKENS = 128  # training cut for responses (scoring reads the int8 model's 256)


def cached_refusal_adapter(texts: Sequence[str], labels: Sequence[bool], cache: Path,
                           name: str) -> dict[str, np.ndarray]:
    """MiniLM's adapter fine-tuned on `texts` as refusals (`labels`), kept in `cache` under a key
    of the texts, labels and settings, so a rerun only scores and a changed input never reads a
    stale adapter."""
    from evorefuse.scoring.harm import tune, tuned

    texts, labels = list(texts), [bool(x) for x in labels]
    key = hashlib.sha256(json.dumps([texts, labels, tune.settings(TUNED_TOKENS)]).encode())
    path = cache / f"refusal-adapter-{key.hexdigest()[:16]}.npz"
    if path.is_file():
        print(f"tuned ({name}): adapter from {path}", file=sys.stderr)
        return tuned.load_adapter(path)
    print(f"tuned ({name}): fine-tuning on {len(texts)} responses", file=sys.stderr, flush=True)
    adapter = tune.fit_adapter(texts, labels, max_tokens=TUNED_TOKENS)
    cache.mkdir(parents=True, exist_ok=True)
    tuned.save_adapter(adapter, path)
    return adapter


class TunedRefusal:
    """MiniLM fine-tuned per direction on the fit sources' responses (adapters cached on disk)."""

    def __init__(self, b: Bench, cache: Path) -> None:
        self.b = b
        self.cache = cache
        self._logits: dict[tuple[str, ...], np.ndarray] = {}

    def _adapter(self, fit_on: tuple[str, ...]) -> dict[str, np.ndarray]:
        rows = np.flatnonzero(self.b.c.where(*fit_on))
        return cached_refusal_adapter([self.b.c.examples[i].response for i in rows],
                                      [bool(self.b.y[i]) for i in rows], self.cache,
                                      "+".join(fit_on))

    def logits(self, fit_on: tuple[str, ...]) -> np.ndarray:
        """Log-odds of refusal of every whole reference response (NaN elsewhere)."""
        if fit_on not in self._logits:
            from evorefuse.scoring.harm import tune

            rows = np.flatnonzero(self.b.c.where("mistral", "chatgpt", whole_only=True))
            out = np.full(len(self.b.c.examples), np.nan)
            out[rows] = tune.score(self._adapter(fit_on),
                                   [self.b.c.examples[i].response for i in rows])
            self._logits[fit_on] = out
        return self._logits[fit_on]

    def scorer(self, weight: float | None, band: tuple[float, float] | None = None) -> Scorer:
        """The tuned model's log-odds added to the lite head's with `weight` (None: alone); with
        `band`, only rows whose lite probability is in the band."""
        def score(tr: np.ndarray, te: np.ndarray, model: LearnedModel) -> np.ndarray:
            fit_on = next(k for k, m in self.b._auto.items() if m is model)
            z = self.logits(fit_on)[te]
            p = model.lite.score(self.b.X[te])
            use = np.ones(len(te), bool) if band is None else (p >= band[0]) & (p <= band[1])
            p[use] = _sigmoid(z[use] if weight is None else _logit(p[use]) + weight * z[use])
            return p
        return score


def band_share(b: Bench, band: tuple[float, float]) -> str:
    """Share of all reference responses an embedding band would send to the embedder."""
    test = b.c.where("mistral", "chatgpt", whole_only=True)
    te = np.flatnonzero(test)
    p = b.auto(("own", "mistral", "chatgpt")).lite.score(b.X[te])
    head = b.kind[te] == "head"
    return f"{np.mean(head & (p >= band[0]) & (p <= band[1])):.2f}"


def verdict_line(b: Bench, baseline: str) -> str:
    """Which variants beat auto in both directions (the condition for shipping one)."""
    ref = b.accuracy[baseline]
    both = [n for n, a in b.accuracy.items() if n != baseline
            and a["c/r"] > ref["c/r"] and a["mistral"] > ref["mistral"]]
    if not both:
        return ("No variant is more accurate than auto in both directions (ChatGPT c/r and "
                "Mistral binary), so none ships; `auto` stays as `## detector` describes it.")
    return "More accurate than auto in both directions: " + "; ".join(both) + "."


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    ap.add_argument("--views", default="head2,c256,last,full",
                    help=f"comma-separated views to embed, of {', '.join(VIEWS)}")
    ap.add_argument("--tuned", action="store_true",
                    help="add the fine-tuned MiniLM variants (about 20 minutes per direction the "
                         "first time)")
    ap.add_argument("--tuned-cache", type=Path, default=TUNED_CACHE,
                    help="where the fine-tuned adapters are kept between runs")
    args = ap.parse_args()
    load0 = os.getloadavg()[0]
    views = [v for v in args.views.split(",") if v]
    if "head2" not in views or any(v not in VIEWS for v in views):
        ap.error(f"--views must include head2 and name only {', '.join(VIEWS)}")
    b = Bench(views)
    rows = [("auto today (lite logistic head; baseline)", lite(b)),
            ("learned head (shipped procedure: features + head2 embedding), every head row",
             shipped_full(b, None)),
            ("learned head on the lite band 0.15-0.85 only (auto's optional band)",
             shipped_full(b, (0.15, 0.85)))]
    for v in views:
        rows.append((f"one logistic head, features + {v} embedding x5", concat(b, [v], 5.0)))
    for v in views:
        rows.append((f"embedding alone ({v}, logistic C=1)", stacked(b, [v], alone=True)))
        rows.append((f"stacked: lite logit + {v}-embedding head logit, every head row",
                     stacked(b, [v])))
    rows += [("stacked head2, band 0.05-0.95 only", stacked(b, ["head2"], band=(0.05, 0.95))),
             ("stacked head2, band 0.15-0.85 only", stacked(b, ["head2"], band=(0.15, 0.85))),
             ("gradient-boosted trees on the features (depth 2)", boosted(b, 2)),
             ("gradient-boosted trees on the features (depth 3)", boosted(b, 3))]
    if args.tuned:
        tuned = TunedRefusal(b, args.tuned_cache)
        rows += [("fine-tuned MiniLM alone (rank-8 adapter + head)", tuned.scorer(None)),
                 ("stacked: lite logit + fine-tuned logit, every head row", tuned.scorer(1.0)),
                 ("stacked: lite logit + 0.5 x fine-tuned logit, every head row",
                  tuned.scorer(0.5)),
                 ("stacked: lite logit + 0.5 x fine-tuned logit, band 0.15-0.85 only",
                  tuned.scorer(0.5, (0.15, 0.85)))]
    header = ("| variant (fitted on own + the other reference file) | ChatGPT c/r | fixed/broken "
              "| c/r odd half | Mistral binary | fixed/broken | Mistral 3-way |\n"
              "|---|---|---|---|---|---|---|")
    print(header)
    table = [b.row(name, scorer) for name, scorer in rows]
    table.append(b.row("soft openings to the head instead of the soft rule", soft_head(b),
                       soft_to_head=True))
    print(f"embedding: {b.embed_seconds}", file=sys.stderr)
    speeds = ", ".join(f"{v} {n / s:.0f} texts/s" for v, (n, s) in b.embed_seconds.items())
    text = "\n".join([
        (f"Command: `python benchmarks/detector_semantic.py --write --views {','.join(views)}"
         f"{' --tuned' if args.tuned else ''}` · "
         f"date {date.today()} · {load_note(load0)}."), "",
        ("Could an embedding stage lift `auto` to the 0.95 goal on assistants it never saw? Each "
         "variant is fitted on the project's examples plus one reference file and measured on the "
         "other (the same corpus, openings and pattern gate as `## detector`; 95% Wilson "
         "intervals). Embedded views: head2 = first two sentences (<= 300 characters), c256 = "
         "first 256 characters, last = last sentence, full = whole response (first 256 tokens). "
         "fixed/broken: responses the variant gets right and auto wrong, and the reverse."
         + (" Fine-tuned rows: MiniLM itself trained as a refusal classifier per direction (the "
            "benign gate's recipe: rank-8 adapter plus head, responses cut at 128 tokens), read "
            "back through int8; stacked rows add its log-odds to the lite head's with a fixed "
            "weight, not one chosen on the test file." if args.tuned else "")),
        "", header, *table, "",
        verdict_line(b, rows[0][0]), "",
        (f"Embedding speed in this run ({speeds}). Share of the reference responses whose lite "
         f"probability falls in 0.05-0.95: {band_share(b, (0.05, 0.95))}, in 0.15-0.85: "
         f"{band_share(b, (0.15, 0.85))} (what a band would send to the embedder)."), "",
    ])
    if args.write:
        from benchmarks.results import replace_section
        replace_section(SECTION, text)
        print("updated benchmarks/RESULTS.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
