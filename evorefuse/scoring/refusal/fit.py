"""Fitting the learned heads: one procedure for the shipped model, users' refits and the benchmark.

Why one procedure: `benchmarks/detector.py` must measure exactly what ships and what `detect --fit`
writes, so all three call `fit_model` here.

The heads are L2-regularised logistic regressions, solved with scipy's L-BFGS. The penalty pulls the
coefficients towards a *prior* (zero for the shipped model; the shipped head's coefficients when a
user refits, see `refit.py`), so a refit on a few hundred rows adapts the shipped head instead of
forgetting what it learned from data that is not shipped. Everything is deterministic (fixed fold
seeds, coefficients rounded to 6 significant digits), so fitting the same data twice writes the same
file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize

from evorefuse.scoring.refusal.analysis import Analysis
from evorefuse.scoring.refusal.base import PARTIAL_REFUSAL, Verdict
from evorefuse.scoring.refusal.features import (
    FEATURE_VERSION,
    FEATURES,
    explicit_kind,
    featurize,
    is_explicit,
)
from evorefuse.scoring.refusal.learned import (
    FILE_FORMAT,
    FILE_KIND,
    Embedder,
    LearnedModel,
    embed_first_sentences,
    verdicts,
)
from evorefuse.scoring.refusal.sources import Example

SEED = 0
C_REFUSAL = 0.3       # inverse L2 strength of the refusal head
EMBED_WEIGHT = 1.0    # embedding block multiplier: balances it against standardised features
PLATT_FOLDS = 5
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
    a refusal. A compliance cut short is still a compliance and a full refusal's opening still
    refuses; a partial refusal is left out, since what it refuses may come after the cut."""
    out: list[Example] = []
    origin: list[int] = []
    for i, e in enumerate(examples):
        if e.label == PARTIAL_REFUSAL:
            continue
        for chars in TRUNCATE_AT:
            if len(e.response) > chars + 40:
                out.append(Example(e.prompt, truncate(e.response, chars), e.label,
                                   f"{e.source}:opening", e.detail, e.lang))
                origin.append(i)
    return out, origin


@dataclass
class Features:
    X: np.ndarray         # structure features (FEATURES)
    E: np.ndarray         # opening embeddings (n x 384), or n x 0 when not computed
    explicit: np.ndarray  # bool: decided by the patterns (the refusal head never sees these)
    analyses: list[Analysis]

    def take(self, idx: Sequence[int] | np.ndarray) -> Features:
        idx = np.asarray(idx, dtype=int)
        return Features(self.X[idx], self.E[idx], self.explicit[idx],
                        [self.analyses[i] for i in idx])

    @property
    def has_embeddings(self) -> bool:
        return self.E.shape[1] > 0


def features(examples: Sequence[Example], embed_fn: Embedder | None = None, *,
             embeddings: bool = True) -> Features:
    responses = [e.response for e in examples]
    X, analyses = featurize(responses, [e.prompt for e in examples])
    explicit = np.asarray([is_explicit(a) for a in analyses], dtype=bool)
    E = (embed_first_sentences(responses, embed_fn) if embeddings
         else np.zeros((len(responses), 0)))
    return Features(X, E, explicit, analyses)


# --- logistic regression with a prior ------------------------------------------------------------

def fit_logistic(Z: np.ndarray, y: np.ndarray, w: np.ndarray, C: float,
                 prior: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Minimise sum_i w_i * logloss_i + ||coef - prior||^2 / (2C); the intercept is not penalised
    (sklearn's LogisticRegression objective, scaled by 1/C, with a centre other than zero)."""
    d = Z.shape[1]
    centre = np.zeros(d) if prior is None else np.asarray(prior, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        coef, b = theta[:d], theta[d]
        z = Z @ coef + b
        # log(1 + exp(z)) - y z, computed stably
        ll = np.logaddexp(0.0, z) - y * z
        g = w * (1.0 / (1.0 + np.exp(-np.clip(z, -40, 40))) - y)
        diff = coef - centre
        f = float(np.dot(w, ll) + 0.5 * np.dot(diff, diff) / C)
        grad = np.concatenate([Z.T @ g + diff / C, [g.sum()]])
        return f, grad

    theta0 = np.concatenate([centre, [0.0]])
    res = minimize(loss, theta0, jac=True, method="L-BFGS-B",
                   options={"maxiter": 5000, "gtol": 1e-8, "ftol": 1e-12})
    return res.x[:d], float(res.x[d])


def stratified_folds(y: np.ndarray, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import StratifiedKFold

    k = max(2, min(k, int(np.bincount(y.astype(int), minlength=2).min())))
    folds = StratifiedKFold(n_splits=k, shuffle=True, random_state=SEED)
    return list(folds.split(np.zeros((len(y), 1)), y))


def _r(x: float) -> float:
    return float(f"{x:.6g}")


@dataclass(frozen=True)
class Prior:
    """Coefficients a refit is pulled towards: the shipped head's, in its standardisation."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray


def fit_head(feats: Features, examples: Sequence[Example], weights: np.ndarray, *,
             embed_weight: float, C: float = C_REFUSAL,
             prior: Prior | None = None) -> dict[str, Any]:
    """One calibrated head, fitted on the responses the patterns do not decide. Platt scaling is
    fitted on out-of-fold scores of the same model, so the calibration never sees scores of
    examples the model was fitted on."""
    y_all = np.asarray([e.refusal for e in examples], dtype=int)
    if prior is not None:  # keep the prior's standardisation so its coefficients mean the same
        mean, scale = prior.mean, prior.scale
    else:
        mean = feats.X.mean(axis=0)
        scale = feats.X.std(axis=0)
        scale[scale < 1e-6] = 1.0
    Z_all = (feats.X - mean) / scale
    if embed_weight:
        Z_all = np.hstack([Z_all, feats.E * embed_weight])
    keep = ~feats.explicit
    Z, y, w = Z_all[keep], y_all[keep], weights[keep]
    centre = prior.coef if prior is not None else None

    coef, b = fit_logistic(Z, y, w, C, centre)
    oof = np.zeros(len(y))
    for tr, te in stratified_folds(y, PLATT_FOLDS):
        c, bb = fit_logistic(Z[tr], y[tr], w[tr], C, centre)
        oof[te] = Z[te] @ c + bb
    pa, pb = fit_logistic(oof.reshape(-1, 1), y, w, 1e4)

    return {
        "mean": [_r(v) for v in mean], "scale": [_r(v) for v in scale],
        "coef": [_r(v) for v in coef], "intercept": _r(b),
        "platt": [_r(pa[0]), _r(pb)],
        "embed_weight": embed_weight,
    }


def explicit_probability(feats: Features, examples: Sequence[Example], weights: np.ndarray,
                         kind: str) -> float:
    """Weighted share of refusals among the training responses the patterns decide as `kind`
    (`features.explicit_kind`), Laplace-smoothed."""
    idx = [i for i, a in enumerate(feats.analyses) if explicit_kind(a) == kind]
    k = sum(weights[i] for i in idx if examples[i].refusal)
    n = sum(weights[i] for i in idx)
    return _r((k + 1) / (n + 2))


def fit_model(feats: Features, examples: Sequence[Example], weights: np.ndarray | None = None,
              *, prior: LearnedModel | None = None, C: float = C_REFUSAL) -> dict[str, Any]:
    """A detector file's content: the lite head, the full head when `feats` carry embeddings."""
    w = np.ones(len(examples)) if weights is None else np.asarray(weights, dtype=np.float64)
    lite = Features(feats.X, np.zeros((len(examples), 0)), feats.explicit, feats.analyses)
    model: dict[str, Any] = {
        "kind": FILE_KIND, "format": FILE_FORMAT, "feature_version": FEATURE_VERSION,
        "features": FEATURES, "explicit_p": explicit_probability(feats, examples, w, "strong"),
        "soft_p": explicit_probability(feats, examples, w, "soft"),
        "lite": fit_head(lite, examples, w, embed_weight=0.0, C=C,
                         prior=_prior(prior.lite) if prior is not None else None),
        "full": None,
    }
    if feats.has_embeddings:
        model["embedding"] = {"model": "all-MiniLM-L6-v2",
                              "text": "first 2 sentences, <= 300 chars"}
        model["full"] = fit_head(feats, examples, w, embed_weight=EMBED_WEIGHT, C=C,
                                 prior=_prior(prior.full) if prior is not None
                                 and prior.full is not None else None)
    return model


def _prior(head: Any) -> Prior:
    return Prior(head.mean, head.scale, head.coef)


def predict(model: dict[str, Any], feats: Features, head: str = "lite") -> list[Verdict]:
    """Verdicts of a fitted (not yet written) model on precomputed features."""
    m = LearnedModel.from_json(model)
    h = m.full if head == "full" else m.lite
    assert h is not None
    return verdicts(h.score(feats.X, feats.E if h.embed_weight else None), feats.analyses, m)


def brier(p: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((np.asarray(p) - np.asarray(y)) ** 2))
