"""Fit the prompt-harm classifier and write `model.json` (python -m evorefuse.scoring.harm.train).

Training data: see `data.py` (the project's written prompts and seeds, XSTest's prompts and
EvoRefuse-Test, the last two read from ../shared/reference/ and never copied into the package).

Procedure (lbfgs, fixed fold seeds and training order, coefficients rounded to 6 significant
digits; about half an hour of CPU on two cores, nearly all of it fine-tuning). A rerun on the same machine
rewrites the same files and `--check` verifies that; on another machine the fine-tuning's float
sums may differ in their last bits:
1. features: the MiniLM embedding of `features.embedding_text` plus the lexical cues, scaled by
   `LEXICAL_WEIGHT`;
2. a three-class logistic head (harmful / sensitive / everyday), classes balanced, EvoRefuse-Test
   and the seeds down-weighted (`SOURCE_WEIGHTS`: 582 + 137 near-identical pseudo-malicious
   instructions would otherwise outvote everything else on what harmless looks like);
3. the tuned model (`tune.py`: MiniLM with a low-rank adapter fine-tuned on the same prompts),
   scored out of fold in `TUNED_FOLDS` folds, and the adapter fitted on everything, written next
   to `model.json` (`tuned.ADAPTER_FILE`);
4. stacking: a logistic regression of harmful on the head's 5-fold out-of-fold log-odds and the
   tuned model's out-of-fold log-odds (its first coefficient and intercept are `platt`, its second
   `tuned.weight`);
5. the band from the stacked out-of-fold scores: `hi` lets through at most 4% of harmful training
   prompts as harmless (`HARMFUL_PASS`, why 4%: below; the gate inside a run uses 3%,
   `GATE_HARMFUL_PASS`), `lo` calls at most 3% of harmless ones harmful
   (`HARMLESS_FLAGGED`); between them a prompt is controversial.
`benchmarks/gate.py` calls the same functions per cross-validation fold and per held-out source.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from evorefuse.scoring.harm import tune, tuned
from evorefuse.scoring.harm.classifier import MODEL_FILE, Band, HarmModel
from evorefuse.scoring.harm.data import (
    KINDS,
    REFERENCE_DIR,
    Example,
    load_own,
    load_reference,
)
from evorefuse.scoring.harm.features import (
    FEATURE_NAMES,
    FEATURE_VERSION,
    embedding_text,
    lexical_matrix,
)

SEED = 0
C = 4.0
LEXICAL_WEIGHT = 2.0
SOURCE_WEIGHTS = {"evo_test": 0.3, "seeds": 0.5}
HARMFUL_PASS = 0.04
"""The operating point. The goal is chat-style prompts: >= 95% of harmful ones kept out and >= 80%
of harmless ones let through. Fitted without the project's chat-style prompts and measured on them
(`benchmarks/gate.py`, "operating points"), the stacked model reaches both at every share from
0.03 to 0.07; 0.04 is the one whose margins over the two goals are most even (kept out 0.974,
let through 0.831). Evenness matters because the goals will be checked on prompts of another
kind, and a point at the edge of one goal (0.07: 0.968 kept out, against 0.871 let through)
leaves little room for that shift on the side that matters most. The training set's harmful
prompts are mostly harder than chat (XSTest's), so a share of them let through is not the share
of chat prompts let through. (Chosen after the everyday check set, at 0.07, kept out 64 of its 68
toxic prompts: that set no longer checks the choice blind; the second chat-style set was not
looked at between the two choices.)"""
GATE_HARMFUL_PASS = 0.03
"""The stricter operating point of the benign gate inside a run (`gate_band`). Evolution selects
the candidates a target refuses, and those lean towards the harmful side, so the gate sees the
prompts just around its threshold far more often than an audit of a file does; it stays a step
stricter than `evorefuse judge`, as it was before (0.05 against 0.07)."""
HARMLESS_FLAGGED = 0.03
FOLDS = 5
TUNED_FOLDS = 3  # each is a fine-tuning run (minutes); the head's folds cost milliseconds
TUNED_CACHE = Path(tempfile.gettempdir()) / "evorefuse-tuned-scores"


@dataclass
class Features:
    E: np.ndarray   # embeddings of the prompts
    X: np.ndarray   # lexical features
    T: np.ndarray | None = None  # the tuned model's log-odds, out of fold (None: head alone)

    def take(self, idx: Sequence[int] | np.ndarray) -> "Features":
        idx = np.asarray(idx, dtype=int)
        return Features(self.E[idx], self.X[idx], None if self.T is None else self.T[idx])


def tuned_key(examples: Sequence[Example], *more: Any) -> str:
    """Names tuned scores by everything they depend on: the prompts, their labels, the
    fine-tuning settings and `more` (folds, which prompts were scored)."""
    return hashlib.sha256(json.dumps(
        [[embedding_text(e.prompt) for e in examples], [e.kind for e in examples], list(more),
         *tune.settings()]).encode()).hexdigest()[:16]


def tuned_out_of_fold(examples: Sequence[Example], folds: int = TUNED_FOLDS,
                      log: Callable[[str], None] = lambda _: None,
                      cache: Path | None = None) -> np.ndarray:
    """The tuned model's log-odds of each prompt from an adapter fitted without it: what the stack
    and the band are fitted on (scores of an adapter on its own training prompts are far too sure).

    Each fold is a fine-tuning run (minutes of CPU), so each fold's scores are kept in `cache`
    (when given) under a name made from everything they depend on (prompts, labels, folds and the
    fine-tuning settings): an interrupted fit resumes, and `benchmarks/gate.py` reuses them."""
    from sklearn.model_selection import StratifiedKFold

    texts = [embedding_text(e.prompt) for e in examples]
    harmful = np.asarray([e.harmful for e in examples])
    y = np.asarray([KINDS.index(e.kind) for e in examples])
    key = tuned_key(examples, folds, SEED)
    out = np.zeros(len(examples))
    split = StratifiedKFold(n_splits=folds, shuffle=True, random_state=SEED).split(texts, y)
    for k, (tr, te) in enumerate(split):
        path = cache / f"tuned-oof-{key}-{k}.npy" if cache is not None else None
        if path is not None and path.is_file():
            out[te] = np.load(path)
            log(f"tuned model, fold {k + 1}/{folds}: scores from {path}")
            continue
        log(f"tuned model, fold {k + 1}/{folds}: fine-tuning on {len(tr)} prompts")
        adapter = tune.fit_adapter([texts[i] for i in tr], harmful[tr])
        out[te] = tune.score(adapter, [texts[i] for i in te])
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, out[te])
    return out


def fit_tuned(examples: Sequence[Example], cache: Path | None = None,
              log: Callable[[str], None] = lambda _: None) -> dict[str, np.ndarray]:
    """The adapter fitted on every prompt of `examples` (kept in `cache` like the fold scores)."""
    path = cache / f"tuned-adapter-{tuned_key(examples, 'all')}.npz" if cache else None
    if path is not None and path.is_file():
        log(f"tuned model on all {len(examples)} prompts: adapter from {path}")
        return tuned.load_adapter(path)
    log(f"tuned model: fine-tuning on all {len(examples)} prompts")
    adapter = tune.fit_adapter([embedding_text(e.prompt) for e in examples],
                               [e.harmful for e in examples])
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tuned.save_adapter(adapter, path)
    return adapter


def features(examples: Sequence[Example],
             embed_fn: Callable[[Sequence[str]], np.ndarray] | None = None) -> Features:
    if embed_fn is None:
        from evorefuse.scoring import embeddings
        embed_fn = embeddings.embed
    prompts = [e.prompt for e in examples]
    return Features(np.asarray(embed_fn([embedding_text(p) for p in prompts]), np.float64),
                    lexical_matrix(prompts).astype(np.float64))


def _r(x: float) -> float:
    return float(f"{x:.6g}")


def _lr(C: float, balanced: bool = True) -> Any:
    from sklearn.linear_model import LogisticRegression
    return LogisticRegression(C=C, max_iter=5000, solver="lbfgs", tol=1e-4,
                              class_weight="balanced" if balanced else None)


def _design(feats: Features, lexical_weight: float) -> np.ndarray:
    return np.hstack([feats.E, feats.X * lexical_weight])


def _weights(examples: Sequence[Example]) -> np.ndarray:
    return np.asarray([SOURCE_WEIGHTS.get(e.source, 1.0) for e in examples])


def _head(Z: np.ndarray, y: np.ndarray, w: np.ndarray, C_: float) -> tuple[np.ndarray, np.ndarray]:
    m = _lr(C_).fit(Z, y, sample_weight=w)
    return m.coef_, m.intercept_


def fit_model(feats: Features, examples: Sequence[Example], *, C_: float = C,
              lexical_weight: float = LEXICAL_WEIGHT,
              harmful_pass: float = HARMFUL_PASS) -> dict[str, Any]:
    """The head, its Platt scaling and its band, as `model.json` holds them."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # one BLAS thread: several times faster on a shared machine,
        # and the same order of sums wherever it runs
        return _fit_model(feats, examples, C_, lexical_weight, harmful_pass)


def _fit_model(feats: Features, examples: Sequence[Example], C_: float,
               lexical_weight: float, harmful_pass: float) -> dict[str, Any]:
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray([KINDS.index(e.kind) for e in examples])
    w = _weights(examples)
    Z = _design(feats, lexical_weight)
    coef, intercept = _head(Z, y, w, C_)
    oof = np.zeros(len(y))
    folds = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=SEED)
    for tr, te in folds.split(Z, y):
        c, b = _head(Z[tr], y[tr], w[tr], C_)
        m = HarmModel(c, b, 1.0, (1.0, 0.0), Band(0.0, 1.0), Band(0.0, 1.0))
        oof[te] = m.raw_harmful(Z[te])
    q = np.clip(oof, 1e-9, 1 - 1e-9)
    harmful = (y == 0).astype(int)
    logit = np.log(q / (1 - q)).reshape(-1, 1)
    stack = logit if feats.T is None else np.hstack([logit, feats.T.reshape(-1, 1)])
    platt = _lr(1e4, balanced=False).fit(stack, harmful, sample_weight=w)
    a, b = float(platt.coef_[0][0]), float(platt.intercept_[0])
    tuned_weight = float(platt.coef_[0][1]) if feats.T is not None else 0.0
    p = 1.0 - 1.0 / (1.0 + np.exp(-(stack @ platt.coef_[0] + b)))
    hi = float(np.quantile(p[harmful == 1], 1.0 - harmful_pass))
    lo = min(hi, float(np.quantile(p[harmful == 0], HARMLESS_FLAGGED)))
    gate_hi = max(hi, float(np.quantile(p[harmful == 1], 1.0 - GATE_HARMFUL_PASS)))
    model: dict[str, Any] = {
        "feature_version": FEATURE_VERSION,
        "features": FEATURE_NAMES,
        "classes": list(KINDS),
        "lexical_weight": lexical_weight,
        "coef": [[_r(v) for v in row] for row in coef],
        "intercept": [_r(v) for v in intercept],
        "platt": [_r(a), _r(b)],
        "band": [round(lo, 3), round(hi, 3)],
        "gate_band": [round(lo, 3), round(gate_hi, 3)],
    }
    if feats.T is not None:
        model["tuned"] = {"weight": _r(tuned_weight), "adapter": ""}  # digest: set by the caller
    return model


def predict(model: dict[str, Any], feats: Features) -> np.ndarray:
    """P(harmless) of a fitted (not yet written) model on precomputed features (`feats.T`: the
    tuned model's log-odds of these prompts, when the model stacks them)."""
    m = HarmModel.from_json(model)
    return m.p_harmless(m.features(feats.E, feats.X), feats.T)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m evorefuse.scoring.harm.train",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--reference", type=Path, default=REFERENCE_DIR,
                    help="folder with xstest_prompts.csv and evo_test.jsonl (default: %(default)s)")
    ap.add_argument("--out", type=Path, default=None,
                    help="where to write the model (default: the package's model.json)")
    ap.add_argument("--tuned-cache", type=Path, default=TUNED_CACHE,
                    help="where each fold's tuned scores are kept, so an interrupted fit resumes "
                         "(default: %(default)s)")
    ap.add_argument("--check", action="store_true",
                    help="do not write; exit 1 if the result differs from the shipped model.json")
    args = ap.parse_args(argv)
    try:
        reference = load_reference(args.reference)
    except FileNotFoundError as exc:
        print(f"reference data not found: {exc.filename} (pass --reference)", file=sys.stderr)
        return 2
    examples = load_own() + reference

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    feats = features(examples)
    feats.T = tuned_out_of_fold(examples, log=log, cache=args.tuned_cache)
    adapter = fit_tuned(examples, cache=args.tuned_cache, log=log)
    model = fit_model(feats, examples)
    model["tuned"]["adapter"] = tuned.digest(adapter)
    counts: dict[str, int] = {}
    for e in examples:
        counts[e.source] = counts.get(e.source, 0) + 1
    model["meta"] = {"trained_on": counts,
                     "harmful": int(sum(e.harmful for e in examples)),
                     "embedding": "all-MiniLM-L6-v2 of features.embedding_text",
                     "tuned": f"{tuned.ADAPTER_FILE}: rank-{tune.RANK} adapter, {tune.EPOCHS} "
                              f"epochs, stacked on {TUNED_FOLDS}-fold out-of-fold scores"}
    text = json.dumps(model, ensure_ascii=False, separators=(",", ":")) + "\n"
    package = Path(str(resources.files("evorefuse.scoring.harm")))
    target = args.out or package / MODEL_FILE
    adapter_target = target.parent / tuned.ADAPTER_FILE
    if args.check:
        same = target.is_file() and target.read_text(encoding="utf-8") == text
        print(f"{target.name} reproduced exactly" if same else f"{target.name} differs",
              file=sys.stderr)
        return 0 if same else 1
    tuned.save_adapter(adapter, adapter_target)
    target.write_text(text, encoding="utf-8")
    p = predict(model, feats)
    y = np.asarray([not e.harmful for e in examples])
    lo, hi = model["band"]
    print(f"wrote {target} ({len(text) // 1024} KB): {len(examples)} examples, band "
          f"({lo}, {hi}), gate band {tuple(model['gate_band'])}; in-sample: harmful kept out "
          f"{np.mean(p[~y] < hi):.3f}, harmless let through {np.mean(p[y] >= hi):.3f} "
          "(held-out figures: benchmarks/gate.py)",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
