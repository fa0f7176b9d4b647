"""Fit the learned refusal detector and write `model.json` (run: python -m evorefuse.scoring.refusal.train).

Training data:
- `train_data/*.jsonl`: responses written for this project (multilingual refusals, partial refusals,
  compliances, and hard negatives such as helpful answers that mention "illegal" or start with
  "I'm sorry to hear"), each with an XSTest label;
- XSTest v2's 450 human-labelled Mistral-7B-Instruct responses (`--reference`, default
  ../shared/reference/xstest_v2_completions_mistralinstruct.csv). It is read, never copied into the
  package: only the fitted coefficients ship.

Everything is deterministic (lbfgs, fixed fold seeds, coefficients rounded to 6 significant digits),
so running this again on the same data rewrites the same file; `--check` verifies that. The fitting
functions are also what `benchmarks/detector.py` calls per cross-validation fold, so the benchmark
measures exactly this procedure.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from evorefuse.scoring.refusal.base import (
    COMPLIANCE,
    FULL_REFUSAL,
    LABELS,
    PARTIAL_REFUSAL,
    Verdict,
)
from evorefuse.scoring.refusal.patterns import Analysis
from evorefuse.scoring.refusal.learned import (
    FEATURE_VERSION,
    LearnedModel,
    verdicts,
    MODEL_FILE,
    PATTERN_FEATURES,
    embed_first_sentences,
    featurize_patterns,
    is_explicit,
)

REFERENCE_CSV = (Path(__file__).resolve().parents[4] / "shared" / "reference"
                 / "xstest_v2_completions_mistralinstruct.csv")
SEED = 0
C_FULL = 0.3          # inverse L2 strength of the refusal head (chosen by 5-fold CV on the reference)
C_PARTIAL = 0.1       # the partial-vs-full head has few examples: stronger regularisation
EMBED_WEIGHT = 1.0    # embedding block multiplier: balances it against standardised pattern features
OWN_WEIGHT = 1.0      # sample weight of the project's own examples relative to reference ones
PLATT_FOLDS = 5


@dataclass(frozen=True)
class Example:
    prompt: str
    response: str
    label: str
    source: str  # "reference" or the train_data file stem

    @property
    def refusal(self) -> bool:
        return self.label != COMPLIANCE


def load_reference(path: Path = REFERENCE_CSV) -> list[Example]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [Example(r["prompt"], r["completion"], r["final_label"], "reference") for r in rows]


def load_own() -> list[Example]:
    out: list[Example] = []
    root = resources.files("evorefuse.scoring.refusal") / "train_data"
    for entry in sorted(root.iterdir(), key=lambda p: p.name):
        if not entry.name.endswith(".jsonl"):
            continue
        for line in entry.read_text(encoding="utf-8").splitlines():
            if line.strip():
                d = json.loads(line)
                if d["label"] not in LABELS:
                    raise ValueError(f"{entry.name}: bad label {d['label']!r}")
                out.append(Example(d.get("prompt", ""), d["response"], d["label"],
                                   entry.name.rsplit(".", 1)[0]))
    return out


TRUNCATE_AT = (100, 200)  # characters: about 24 and 50 tokens, the response lengths fitness reads


def truncate(text: str, chars: int) -> str:
    """The opening of a response cut at a word boundary, as a max_tokens limit leaves it."""
    cut = text[:chars]
    return cut[: cut.rfind(" ")] if " " in cut else cut


def openings(examples: Sequence[Example]) -> tuple[list[Example], list[int]]:
    """Cut copies of the longer responses (and the index of each one's original).

    Why: fitness and `evaluate` read 24-50 tokens, but labelled responses are whole. Fitted on
    whole responses alone, the heads learned that a short text mentioning abuse or safety is a
    refusal, and called the truncated opening of a plain definition ("Child abuse refers to...")
    a refusal with p = 0.98. A compliance cut short is still a compliance and a full refusal's
    opening still refuses; a partial refusal is left out, since what it refuses may come after
    the cut."""
    out: list[Example] = []
    origin: list[int] = []
    for i, e in enumerate(examples):
        if e.label == PARTIAL_REFUSAL:
            continue
        for chars in TRUNCATE_AT:
            if len(e.response) > chars + 40:
                out.append(Example(e.prompt, truncate(e.response, chars), e.label,
                                   f"{e.source}:opening"))
                origin.append(i)
    return out, origin


@dataclass
class Features:
    X: np.ndarray         # pattern/structure features
    E: np.ndarray         # first-sentences embeddings
    explicit: np.ndarray  # bool: decided by the patterns (the heads never see these)
    analyses: list[Analysis]

    def take(self, idx: Sequence[int] | np.ndarray) -> "Features":
        idx = np.asarray(idx, dtype=int)
        return Features(self.X[idx], self.E[idx], self.explicit[idx],
                        [self.analyses[i] for i in idx])


def features(examples: Sequence[Example],
             embed_fn: Callable[[Sequence[str]], np.ndarray] | None = None) -> Features:
    responses = [e.response for e in examples]
    X, analyses = featurize_patterns(responses)
    explicit = np.asarray([is_explicit(a) for a in analyses], dtype=bool)
    return Features(X, embed_first_sentences(responses, embed_fn), explicit, analyses)


def _r(x: float) -> float:
    return float(f"{x:.6g}")


def _lr(C: float, balanced: bool = False) -> Any:
    from sklearn.linear_model import LogisticRegression
    return LogisticRegression(C=C, max_iter=5000, solver="lbfgs", tol=1e-8,
                              class_weight="balanced" if balanced else None)


def fit_head(feats: Features, examples: Sequence[Example], embed_weight: float, *,
             C: float | None = None, C_partial: float | None = None,
             own_weight: float | None = None) -> dict[str, Any]:
    """One calibrated head, fitted on the responses the patterns do not decide (the refusal head)
    and on all refusals (the partial-vs-full head). Platt scaling is fitted on 5-fold out-of-fold
    scores of the same model, so the calibration never sees scores of examples the model was
    fitted on."""
    from sklearn.model_selection import StratifiedKFold

    C = C_FULL if C is None else C
    C_partial = C_PARTIAL if C_partial is None else C_partial
    own_weight = OWN_WEIGHT if own_weight is None else own_weight
    y_all = np.asarray([e.refusal for e in examples], dtype=int)
    w_all = np.asarray([1.0 if e.source.split(":")[0] == "reference" else own_weight
                        for e in examples])
    mean = feats.X.mean(axis=0)
    scale = feats.X.std(axis=0)
    scale[scale < 1e-6] = 1.0
    Z_all = (feats.X - mean) / scale
    if embed_weight:
        Z_all = np.hstack([Z_all, feats.E * embed_weight])
    keep = ~feats.explicit
    Z, y, w = Z_all[keep], y_all[keep], w_all[keep]

    model = _lr(C).fit(Z, y, sample_weight=w)
    oof = np.zeros(len(y))
    folds = StratifiedKFold(n_splits=PLATT_FOLDS, shuffle=True, random_state=SEED)
    for tr, te in folds.split(Z, y):
        m = _lr(C).fit(Z[tr], y[tr], sample_weight=w[tr])
        oof[te] = m.decision_function(Z[te])
    platt = _lr(1e4).fit(oof.reshape(-1, 1), y, sample_weight=w)

    ref_idx = np.flatnonzero(y_all == 1)
    yp = np.asarray([examples[i].label == PARTIAL_REFUSAL for i in ref_idx], dtype=int)
    partial = _lr(C_partial, balanced=True).fit(Z_all[ref_idx], yp, sample_weight=w_all[ref_idx])
    return {
        "mean": [_r(v) for v in mean], "scale": [_r(v) for v in scale],
        "coef": [_r(v) for v in model.coef_[0]], "intercept": _r(model.intercept_[0]),
        "platt": [_r(platt.coef_[0][0]), _r(platt.intercept_[0])],
        "partial_coef": [_r(v) for v in partial.coef_[0]],
        "partial_intercept": _r(partial.intercept_[0]),
        "embed_weight": embed_weight,
    }


def fit_model(feats: Features, examples: Sequence[Example]) -> dict[str, Any]:
    """Both heads (full: with embeddings; lite: without), as the JSON `model.json` holds."""
    lite_feats = Features(feats.X, np.zeros((len(examples), 0)), feats.explicit, feats.analyses)
    return {
        "feature_version": FEATURE_VERSION,
        "features": PATTERN_FEATURES,
        "explicit_p": explicit_probability(feats, examples),
        "embedding": {"model": "all-MiniLM-L6-v2", "text": "first 2 sentences, <= 300 chars"},
        "full": fit_head(feats, examples, EMBED_WEIGHT),
        "lite": fit_head(lite_feats, examples, 0.0),
    }


def explicit_probability(feats: Features, examples: Sequence[Example]) -> float:
    """Share of refusals among pattern-explicit training responses (Laplace-smoothed), excluding
    empty ones (which are refusals by definition)."""
    idx = [i for i in np.flatnonzero(feats.explicit) if examples[i].response.strip()]
    k = sum(examples[i].refusal for i in idx)
    return _r((k + 1) / (len(idx) + 2))


def predict(model: dict[str, Any], feats: Features, head: str = "full") -> list[Verdict]:
    """Verdicts of a fitted (not yet written) model on precomputed features: what the detector
    would say, used by cross-validation without going through files."""
    m = LearnedModel.from_json(model)
    h = m.full if head == "full" else m.lite
    p, q = h.score(feats.X, feats.E if h.embed_weight else None)
    return verdicts(p, q, feats.analyses, m.explicit_p)


def brier(p: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((np.asarray(p) - np.asarray(y)) ** 2))


LOCAL_DATA = "local_smollm2.jsonl"


def sample_local(seeds: Path, limit: int, max_tokens: int = 160) -> int:
    """Write `train_data/local_smollm2.jsonl`: the embedded model's answers to our own seed prompts.

    Labels come from the pattern detector and only where it is unambiguous: a pattern-explicit
    refusal is kept as a refusal, an answer with no refusal or soft cue at all as compliance, and
    everything in between is dropped (a wrong label would teach the model its own mistakes). Why
    bother: these are compliant answers in another model's style to sensitive-sounding prompts,
    the hard negatives that keep the detector from learning "sensitive topic = refusal".
    Sampling is seeded (temperature 0.7, seed 0), so reruns give the same file."""
    import asyncio

    from evorefuse.models.base import SamplingParams
    from evorefuse.models.local import LocalBackend
    from evorefuse.scoring.refusal.patterns import analyse

    prompts = [json.loads(line)["prompt"] for line in seeds.read_text(encoding="utf-8").splitlines()
               if line.strip()][:limit]
    backend = LocalBackend()
    params = SamplingParams(temperature=0.7, top_p=0.95, max_tokens=max_tokens, seed=0)
    rows = []
    for prompt in prompts:
        res = asyncio.run(backend.complete([{"role": "user", "content": prompt}], params))
        text = res.choices[0].text.strip()
        if res.choices[0].finish_reason == "length":  # cut mid-sentence: keep complete sentences
            text = text[: max(text.rfind(". "), text.rfind(".\n")) + 1].strip()
        a = analyse(text)
        if not text or a.empty:
            continue
        if is_explicit(a):
            label = FULL_REFUSAL
        elif not a.strong and not a.soft:
            label = COMPLIANCE
        else:
            continue
        rows.append({"prompt": prompt, "response": text, "label": label, "lang": "en",
                     "source": "SmolLM2-135M-Instruct, labelled by the pattern detector"})
    target = Path(str(resources.files("evorefuse.scoring.refusal") / "train_data" / LOCAL_DATA))
    target.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                      encoding="utf-8")
    return len(rows)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m evorefuse.scoring.refusal.train",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--reference", type=Path, default=REFERENCE_CSV,
                    help="XSTest labelled completions CSV (default: %(default)s)")
    ap.add_argument("--out", type=Path, default=None,
                    help="where to write the model (default: the package's model.json)")
    ap.add_argument("--check", action="store_true",
                    help="do not write; exit 1 if the result differs from the shipped model.json")
    ap.add_argument("--sample-local", type=Path, metavar="SEEDS_JSONL", default=None,
                    help=f"first regenerate train_data/{LOCAL_DATA} from the embedded model's answers "
                         "to these prompts (slow: minutes)")
    ap.add_argument("--sample-limit", type=int, default=200)
    args = ap.parse_args(argv)
    if args.sample_local is not None:
        n = sample_local(args.sample_local, args.sample_limit)
        print(f"wrote {n} labelled local-model responses to train_data/{LOCAL_DATA}",
              file=sys.stderr)
    if not args.reference.is_file():
        print(f"reference data not found: {args.reference} (pass --reference)", file=sys.stderr)
        return 2
    whole = load_own() + load_reference(args.reference)
    cut, _ = openings(whole)
    examples = whole + cut
    feats = features(examples)
    model = fit_model(feats, examples)
    n_ref = sum(e.source == "reference" for e in examples)
    model["meta"] = {
        "trained_on": {"reference": n_ref, "own": len(whole) - n_ref, "openings": len(cut)},
        "reference_file": args.reference.name,
        "refusals": int(sum(e.refusal for e in examples)),
    }
    text = json.dumps(model, ensure_ascii=False, separators=(",", ":")) + "\n"
    target = args.out or Path(str(resources.files("evorefuse.scoring.refusal") / MODEL_FILE))
    if args.check:
        same = target.is_file() and target.read_text(encoding="utf-8") == text
        print("model.json reproduced exactly" if same else "model.json differs", file=sys.stderr)
        return 0 if same else 1
    target.write_text(text, encoding="utf-8")
    p = np.asarray([v.p_refusal for v in predict(model, feats)])
    y = np.asarray([e.refusal for e in examples], dtype=float)
    print(f"wrote {target} ({len(text) // 1024} KB) on {date.today()}: {len(examples)} examples "
          f"({n_ref} reference); in-sample accuracy {np.mean((p >= 0.5) == y):.3f}, "
          f"Brier {brier(p, y):.4f} (cross-validated figures: benchmarks/detector.py)",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
