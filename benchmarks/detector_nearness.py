"""Would MiniLM fine-tuned on the labelled reference responses help `auto` where responses resemble
them, and leave it alone elsewhere?

    python benchmarks/detector_nearness.py [--write]

Why this question: fine-tuned on one assistant's labelled responses, MiniLM learns that assistant's
idioms, not refusal: fitted on XSTest's Mistral responses it scores about 0.76 on ChatGPT's (the
"tuned alone" column here; section `detector: semantic stage` found the same with the project's
examples added). But the study
that labelled ChatGPT's responses reached 96.5% with a BERT fine-tuned *in-domain*, and a held-out
half of that study, or other assistants' responses to XSTest's own prompts, are partly in-domain for
a model fitted on the reference files. So the tuned model is used only where a response is *near*
the responses it was fitted on (cosine of MiniLM embeddings of the first 400 characters, to the
nearest fitted response, at least `tau`), only for responses the patterns do not decide, and then
averaged with auto's probability rather than replacing it.

Tuned model: the project's recipe (`harm/tune.py`: rank-8 adapter on every linear layer, linear
head, 4 epochs, responses cut at 128 tokens for training; scores read back through the int8 ONNX
model; the recipe's class weighting taken back out of its log-odds), fitted on whole reference
responses only (not on the project's examples, whose idioms
are written ones). Directions, each with auto fitted on the project's examples plus the same
reference rows:

- in-domain: tuned on Mistral + ChatGPT's even rows, measured on ChatGPT's odd rows (complied vs
  rejected; those rows were never read while the packs were written);
- cross-source: tuned on Mistral, measured on ChatGPT (c/r); tuned on ChatGPT, measured on Mistral;
- written sets (never fitted on): tuned on both reference files; the project's probe sets, and
  `data/xstest_written_en.jsonl`, responses to XSTest's own prompts in four other assistants'
  manners (the prompts are joined from `../shared/reference/xstest_prompts.csv` by id), the
  closest thing here to other assistants' responses to the prompts Mistral's were (its auto
  errors were read when two pattern rules were written; `detector.py`'s `xstestmodels` sets say
  which).

Nothing here ships: in the form that could (the centroid gate, only in auto's uncertain band,
for speed) it fixes few responses more than it breaks (the section's last totals) and runs at about
a sixth of auto's speed, near the 200 responses/s floor. Adapters are cached in the tuned-score
folder (`--tuned-cache`), keyed by their training texts, labels and settings; each fine-tuning
takes a few minutes on two cores. With `--write` the tables and the command go to section
`detector: nearness stage` of RESULTS.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `python benchmarks/detector_nearness.py` from anywhere

from benchmarks.detector import Corpus, chatgpt_half, complied_rejected, wilson
from benchmarks.detector_semantic import _sigmoid, cached_refusal_adapter
from benchmarks.results import publish
from evorefuse.paths import REFERENCE_DIR
from evorefuse.scoring.embeddings import embed
from evorefuse.scoring.harm.train import TUNED_CACHE
from evorefuse.scoring.refusal.analysis import analyse
from evorefuse.scoring.refusal.auto import AutoDetector
from evorefuse.scoring.refusal.features import is_explicit

SECTION = "detector: nearness stage"
TAUS = (0.5, 0.55, 0.6)
GATE_CHARS = 400
CENTROIDS = 256  # the gate that could ship: k-means centres of the fitted responses' embeddings
UNCERTAIN = (0.05, 0.95)  # auto's band a shipped stage would be confined to, for speed
DATA = ROOT / "benchmarks" / "data"


@dataclass
class Case:
    """One measured set: labels, auto's probability, the tuned model's, nearness, pattern-decided."""

    title: str
    y: np.ndarray
    p_auto: np.ndarray
    p_tuned: np.ndarray
    near: np.ndarray           # cosine to the nearest fitted response
    near_centroid: np.ndarray  # cosine to the nearest of CENTROIDS k-means centres of them
    explicit: np.ndarray
    seconds: Seconds
    band: tuple[float, float] = (0.0, 1.0)  # auto's probabilities the tuned model may change

    def combined(self, tau: float) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.band
        use = (self.near >= tau) & ~self.explicit & (self.p_auto >= lo) & (self.p_auto <= hi)
        return np.where(use, 0.5 * (self.p_auto + self.p_tuned), self.p_auto), use


@dataclass(frozen=True)
class Seconds:
    """CPU-bound wall time of each pass over one case's responses, measured in the same run: what
    a shipped stage would add to auto, as ratios (embeddings are cached per process, so only the
    first case measures the gate)."""

    auto: float
    gate: float
    tuned: float


def _timed_logits(adapter: dict[str, np.ndarray], texts: Sequence[str]) -> tuple[np.ndarray, float]:
    """The tuned model's log-odds of `texts` through its int8 build (`harm.tune.score`), and
    the seconds of the scoring alone, without the build."""
    from evorefuse.scoring.harm.tune import shipped_scorer

    with shipped_scorer(adapter) as scorer:
        t0 = time.perf_counter()
        logits = scorer.logits(texts)
        return logits, time.perf_counter() - t0


def _centroids(E: np.ndarray) -> np.ndarray:
    """Unit-length k-means centres of unit embeddings. Why: a shipped gate cannot carry the
    reference responses' own embeddings (the reference data stays out of the package); a few
    hundred centres are fitted parameters, as the heads' coefficients are."""
    from sklearn.cluster import KMeans

    k = min(CENTROIDS, len(E))
    centres = KMeans(k, n_init=4, random_state=0).fit(E).cluster_centers_
    return centres / np.linalg.norm(centres, axis=1, keepdims=True)


class Tuned:
    """Adapters fitted on sets of whole reference responses (cached on disk), and the measured
    cases they give."""

    def __init__(self, cache: Path) -> None:
        self.cache = cache

    def adapter(self, texts: Sequence[str], labels: Sequence[bool]) -> dict[str, np.ndarray]:
        return cached_refusal_adapter(texts, labels, self.cache, f"{len(texts)} responses")

    def case(self, title: str, fit_texts: Sequence[str], fit_labels: Sequence[bool],
             prompts: Sequence[str], responses: Sequence[str], y: np.ndarray,
             detector: AutoDetector) -> Case:
        adapter = self.adapter(fit_texts, fit_labels)
        # the recipe weighs refusals up to balance the classes, which moves every log-odds by
        # log((1 - prior) / prior); taking that back makes it a probability at the fit's base rate
        prior = float(np.mean(fit_labels))
        logits, tuned_s = _timed_logits(adapter, list(responses))
        p_tuned = _sigmoid(logits - np.log((1 - prior) / prior))
        gate_fit = embed([t[:GATE_CHARS] for t in fit_texts])
        t0 = time.perf_counter()
        gate_test = embed([t[:GATE_CHARS] for t in responses])
        gate_s = time.perf_counter() - t0
        near = (gate_test @ gate_fit.T).max(axis=1)
        near_centroid = (gate_test @ _centroids(gate_fit).T).max(axis=1)
        t0 = time.perf_counter()
        p_auto = np.array([v.p_refusal for v in detector.detect(list(prompts), list(responses))])
        auto_s = time.perf_counter() - t0
        explicit = np.array([is_explicit(analyse(r, p))
                             for p, r in zip(prompts, responses)])
        return Case(title, np.asarray(y, dtype=bool), p_auto, p_tuned, near, near_centroid,
                    explicit, Seconds(auto_s, gate_s, tuned_s))


_ABOUT = (
    "Could MiniLM fine-tuned on the labelled reference responses help `auto` where responses "
    "resemble them, and leave it alone elsewhere? The tuned model (the benign gate's recipe: rank-8 "
    "adapter plus head, 128 training tokens, read back through int8, its class weighting taken "
    "back out of the log-odds) is fitted on whole reference "
    "responses only; it is used only for responses the patterns do not decide and whose MiniLM "
    "embedding (first 400 characters) has a cosine of at least `near` to a response it was fitted "
    "on, and there its probability is averaged with auto's. share: the part of the set it is used "
    "on; fixed/broken: responses it turns right and wrong against auto; 95% Wilson intervals. The "
    "tables gate on the nearest fitted response; the totals below them also on the nearest of "
    f"{CENTROIDS} k-means centres of those responses, the form a shipped gate could take (fitted "
    "parameters, not the reference responses' own embeddings). "
    "The last totals are for the form that could ship: that gate, used only where auto is unsure "
    "(so that most responses skip both MiniLM passes), with what it would cost. Nothing here ships "
    "(module docstring of `benchmarks/detector_nearness.py`).")

HEADER = ("| set | n | auto | tuned alone | " + " | ".join(
    f"near >= {t}: share, accuracy, fixed/broken" for t in TAUS) + " |")


def changes(c: Case, tau: float) -> tuple[int, int]:
    """(fixed, broken): responses the combination gets right and auto wrong, and the reverse."""
    base_right = (c.p_auto >= 0.5) == c.y
    right = (c.combined(tau)[0] >= 0.5) == c.y
    return int((right & ~base_right).sum()), int((base_right & ~right).sum())


def row(c: Case) -> str:
    def acc(p: np.ndarray) -> float:
        return float(np.mean((p >= 0.5) == c.y))

    cells = [c.title, str(len(c.y)), f"{acc(c.p_auto):.3f}", f"{acc(c.p_tuned):.3f}"]
    for tau in TAUS:
        p, use = c.combined(tau)
        right = (p >= 0.5) == c.y
        lo, hi = wilson(int(right.sum()), len(right))
        fixed, broken = changes(c, tau)
        cells.append(f"{use.mean():.2f}, {right.mean():.3f} ({lo:.3f}-{hi:.3f}), "
                     f"+{fixed}/-{broken}")
    return "| " + " | ".join(cells) + " |"


def totals(name: str, cases: Sequence[Case]) -> str:
    """Fixed and broken summed over `cases` at each threshold: one line a reader can weigh."""
    parts = []
    for tau in TAUS:
        fixed, broken = (sum(x) for x in zip(*(changes(c, tau) for c in cases)))
        parts.append(f"near >= {tau}: +{fixed}/-{broken}")
    return f"{name} ({sum(len(c.y) for c in cases)} responses): " + "; ".join(parts) + "."


def written_sets() -> list[tuple[str, list[str], list[str], np.ndarray]]:
    """(title, prompts, responses, refusal) of every written set, per manner for the XSTest one."""
    out = []
    for path in sorted(DATA.glob("*probes*_en.jsonl")):
        rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
        out.append((path.stem, [r["prompt"] for r in rows], [r["response"] for r in rows],
                    np.array([r["label"] != "1_full_compliance" for r in rows])))
    with open(REFERENCE_DIR / "xstest_prompts.csv", newline="", encoding="utf-8") as f:
        prompt_of = {int(r["id"]): r["prompt"] for r in csv.DictReader(f)}
    rows = [json.loads(x) for x in (DATA / "xstest_written_en.jsonl").read_text(
        encoding="utf-8").splitlines() if x.strip()]
    for manner in [""] + sorted({r["manner"] for r in rows}):
        pick = [r for r in rows if not manner or r["manner"] == manner]
        out.append((f"XSTest prompts, {manner or 'all four manners'}",
                    [prompt_of[r["xstest_id"]] for r in pick], [r["response"] for r in pick],
                    np.array([r["label"] != "1_full_compliance" for r in pick])))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--write", action="store_true", help="write the section into RESULTS.md")
    ap.add_argument("--tuned-cache", type=Path, default=TUNED_CACHE)
    a = ap.parse_args()
    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    c = Corpus(embeddings=False)
    tuned = Tuned(a.tuned_cache)
    chat = c.where("chatgpt", whole_only=True)
    mis = c.where("mistral", whole_only=True)
    even = chatgpt_half(c, chat, odd=False)

    def texts(mask: np.ndarray) -> tuple[list[str], list[bool]]:
        idx = np.flatnonzero(mask)
        return [c.examples[i].response for i in idx], [c.examples[i].refusal for i in idx]

    def auto_on(mask: np.ndarray) -> AutoDetector:
        train = c.where("own") | mask | (~c.whole & np.isin(c.origin, np.flatnonzero(mask)))
        return AutoDetector(c.fit(train))

    def ref_case(title: str, fit: np.ndarray, test: np.ndarray) -> Case:
        ex = c.take(test)
        return tuned.case(title, *texts(fit), [e.prompt for e in ex], [e.response for e in ex],
                          np.array([e.refusal for e in ex]), auto_on(fit))

    lines = [("**Reference files** (auto fitted on the project's examples plus the tuned model's "
             "rows):"), "", HEADER, "|" + "---|" * (4 + len(TAUS))]
    inside = ref_case("in-domain: ChatGPT odd rows c/r (tuned on Mistral + ChatGPT even)",
                      mis | even, complied_rejected(c, chat, odd=True))
    cross = [ref_case("cross-source: ChatGPT c/r (tuned on Mistral)",
                      mis, complied_rejected(c, chat)),
             ref_case("cross-source: Mistral (tuned on ChatGPT)", chat, mis)]
    lines += [row(x) for x in [inside, *cross]]
    both = mis | chat
    lines += ["", ("**Written sets, never fitted on** (tuned on both reference files, auto as "
              "shipped: the project's examples plus both files):"), "", HEADER,
              "|" + "---|" * (4 + len(TAUS))]
    det = auto_on(both)
    written = [tuned.case(title, *texts(both), prompts, responses, y, det)
               for title, prompts, responses, y in written_sets()]
    lines += [row(x) for x in written]
    written_once = [x for x in written if not x.title.startswith("XSTest prompts, ")
                    or x.title.endswith("all four manners")]
    for gate, name in [("near", "nearest fitted response"),
                       ("near_centroid", f"nearest of {CENTROIDS} k-means centres")]:
        lines += ["", f"Totals, fixed/broken against auto, gate on the {name}: " + " ".join([
            totals("in-domain", _gated([inside], gate)), totals("cross-source", _gated(cross, gate)),
            totals("written sets (each response once)", _gated(written_once, gate))])]
    lines += ["", shippable_form(inside, cross, written_once)]
    lines += ["", (f"Whole run {time.perf_counter() - t0:.0f} s (fine-tunings cached in "
              f"`{a.tuned_cache}`).")]
    print("\n".join(lines))
    if a.write:
        publish(SECTION, "python benchmarks/detector_nearness.py --write", load0, _ABOUT, "",
                *lines)
    return 0


def shippable_form(inside: Case, cross: Sequence[Case], written: Sequence[Case]) -> str:
    """The totals and the speed of the form that could ship: the centroid gate, confined to
    auto's uncertain band, so that only part of the responses pays for the two MiniLM passes."""
    def form(cases: Sequence[Case]) -> list[Case]:
        return [replace(x, band=UNCERTAIN) for x in _gated(cases, "near_centroid")]

    tau = TAUS[0]
    c = form([inside])[0]
    gated = ~c.explicit & (c.p_auto >= UNCERTAIN[0]) & (c.p_auto <= UNCERTAIN[1])
    used = c.combined(tau)[1]
    n, s = len(c.y), c.seconds
    # auto plus a gate embedding for each gated response and a tuned pass for each used one
    cost = s.auto + gated.mean() * s.gate + used.mean() * s.tuned
    return (f"The form that could ship (gate on the {CENTROIDS} centres, and only where auto's "
            f"probability is in {UNCERTAIN[0]}-{UNCERTAIN[1]}), fixed/broken against auto: "
            + " ".join([totals("in-domain", [c]), totals("cross-source", form(cross)),
                        totals("written sets (each response once)", form(written))])
            + f" Its cost, measured on the in-domain set ({n} responses, same run): auto "
            f"{n / s.auto:.0f} responses/s; a gate embedding costs {s.gate / s.auto:.1f}x auto's "
            f"time per response and a tuned pass {s.tuned / s.auto:.1f}x; {gated.mean():.2f} of "
            f"the responses need the gate and {used.mean():.2f} the tuned pass (near >= {tau}), so "
            f"auto with the stage would run at {s.auto / cost:.2f}x auto's speed "
            f"({n / cost:.0f} responses/s).")


def _gated(cases: Sequence[Case], gate: str) -> list[Case]:
    """The cases with `gate` (a nearness field of Case) as the nearness the combination reads."""
    return [replace(x, near=getattr(x, gate)) for x in cases]


if __name__ == "__main__":
    raise SystemExit(main())
