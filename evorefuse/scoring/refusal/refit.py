"""Refitting the auto detector's head on a user's own labelled responses (`detect --gold --fit`).

Why refit: a user measuring one assistant knows its idioms better than any shipped model; a few
hundred labelled responses of that assistant are worth more than thousands of other models'.

How, and why this way:
- The head is fitted on the user's rows plus the project's own shipped examples (`train_data/`;
  the reference files the shipped head also saw are not shipped, so they cannot be reused).
- Weighting: the user's rows together weigh as much as the shipped examples (each user row weighs
  `max(1, n_shipped / n_user)`), so a small file is not drowned, and a large one counts fully.
- Prior: the L2 penalty pulls the coefficients towards the shipped head's instead of towards zero
  (`fit.fit_logistic`), so what the shipped head learned from data that is not shipped is kept
  unless the user's labels say otherwise. The features' standardisation is the shipped one.
- Responses the patterns decide keep their rule; their probabilities (`explicit_p`, `soft_p`) are
  refitted with the same weights.
- The figures: k-fold cross-validation over the user's rows (k = 5, fewer when a class is rare).
  "Before" is the detector in use on each held-out fold (it never saw these rows), "after" is the
  head refitted on the other folds plus the shipped examples; both are accuracy on the user's
  data, out of fold. The written file is then fitted on all of the user's rows.
No embeddings (the refitted detector runs as `auto` does: torch-free).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evorefuse.errors import InputError
from evorefuse.scoring.refusal.base import FULL_REFUSAL, Verdict
from evorefuse.scoring.refusal.factory import detector_file, load_detector_file
from evorefuse.scoring.refusal.fit import (
    Features,
    features,
    fit_model,
    openings,
    stratified_folds,
)
from evorefuse.scoring.refusal.gold import REFUSAL, is_refusal
from evorefuse.scoring.refusal.learned import LearnedModel, load_model, verdicts
from evorefuse.scoring.refusal.sources import Example, load_own

USER_SOURCE = "user"
MAX_FOLDS = 5


class RefitError(ValueError):
    """The user's labels cannot support a refit (too few, or one class only)."""


@dataclass(frozen=True)
class RefitResult:
    model: dict[str, Any]       # the detector file's content
    n_user: int
    n_shipped: int
    folds: int
    user_weight: float
    accuracy_before: float      # detector in use, on the user's rows
    accuracy_after: float       # refitted head, out of fold
    fixed: int                  # responses the refit gets right and the detector in use wrong
    broken: int                 # and the other way: the change is these two counts, paired

    @property
    def worse(self) -> bool:
        return self.broken > self.fixed

    def file_text(self, source_name: str) -> str:
        """The detector file: the model, what it was fitted on, its cross-validated figures."""
        model = dict(self.model)
        model["meta"] = {"refit_on": source_name, "user_responses": self.n_user,
                         "shipped_examples": self.n_shipped,
                         "user_weight": round(self.user_weight, 4), "folds": self.folds,
                         "cv_accuracy_before": round(self.accuracy_before, 4),
                         "cv_accuracy_after": round(self.accuracy_after, 4),
                         "fixed": self.fixed, "broken": self.broken}
        return json.dumps(model, ensure_ascii=False, separators=(",", ":")) + "\n"

    def summary(self) -> dict[str, Any]:
        """The figures `detect --gold --fit --json` prints."""
        return {"n": self.n_user, "shipped_examples": self.n_shipped,
                "user_weight": self.user_weight, "folds": self.folds,
                "accuracy_before": self.accuracy_before, "accuracy_after": self.accuracy_after,
                "fixed": self.fixed, "broken": self.broken}

    def describe(self) -> str:
        """The same figures as one line. Why the paired counts: two accuracies on the same few
        hundred rows differ by noise; how many responses changed side, and which way, is what
        says whether the refit helped."""
        line = (f"refit on {self.n_user} labelled responses (+{self.n_shipped} shipped examples, "
                f"each of yours weighing {self.user_weight:.2f}): cross-validated accuracy on "
                f"your data {self.accuracy_before:.3f} before, {self.accuracy_after:.3f} after "
                f"({self.folds}-fold, out of fold; {self.fixed} responses fixed, "
                f"{self.broken} broken)")
        if self.worse:
            line += "; worse than the detector in use on your data, which you may keep"
        return line


def _right(vs: Sequence[Verdict], examples: Sequence[Example]) -> list[bool]:
    """Whether each verdict's refusal agrees with its example's label."""
    return [v.refusal == e.refusal for v, e in zip(vs, examples)]


def _predict_with(model: LearnedModel, feats: Features) -> list[Verdict]:
    return verdicts(model.lite.score(feats.X), feats.analyses, model)


def _fit(user: list[Example], own: list[Example], own_feats: Features, user_feats: Features,
         prior: LearnedModel, weight: float) -> dict[str, Any]:
    """Head fitted on `user` (+ their openings) and the shipped examples (+ theirs)."""
    cut, _ = openings(user)
    cut_feats = features(cut, embeddings=False) if cut else None
    parts = [own_feats, user_feats] + ([cut_feats] if cut_feats is not None else [])
    feats = Features(np.vstack([p.X for p in parts]), np.zeros((sum(len(p.X) for p in parts), 0)),
                     np.concatenate([p.explicit for p in parts]),
                     [a for p in parts for a in p.analyses])
    examples = own + user + cut
    w = np.r_[np.ones(len(own)), np.full(len(user) + len(cut), weight)]
    return fit_model(feats, examples, w, prior=prior)


def check_labels(gold: Sequence[str]) -> None:
    """RefitError unless there are at least two refusals and two compliances (cross-validation
    needs both classes in every fold); called before any detection runs."""
    k = sum(is_refusal(g) for g in gold)
    if min(k, len(gold) - k) < 2:
        raise RefitError(f"--fit needs at least 2 refusals and 2 compliances among the gold labels "
                         f"(found {k} refusals, {len(gold) - k} compliances)")


def refit(prompts: Sequence[str], responses: Sequence[str], gold: Sequence[str],
          prior: LearnedModel) -> RefitResult:
    """Cross-validate, then fit on everything. `gold`: parsed gold labels (`gold.parse_gold`)."""
    check_labels(gold)
    user = [Example(p, r, FULL_REFUSAL if g == REFUSAL else g, USER_SOURCE)
            for p, r, g in zip(prompts, responses, gold)]
    y = np.asarray([is_refusal(g) for g in gold], dtype=int)
    own = load_own()
    own_cut, _ = openings(own)
    own = own + own_cut
    own_feats = features(own, embeddings=False)
    user_feats = features(user, embeddings=False)
    weight = max(1.0, len(own) / len(user))

    before = _predict_with(prior, user_feats)
    after: list[Verdict | None] = [None] * len(user)
    splits = stratified_folds(y, MAX_FOLDS)
    for tr, te in splits:
        model = LearnedModel.from_json(_fit([user[i] for i in tr], own, own_feats,
                                            user_feats.take(tr), prior, weight))
        for i, v in zip(te, _predict_with(model, user_feats.take(te))):
            after[i] = v
    final = _fit(user, own, own_feats, user_feats, prior, weight)
    right_before = _right(before, user)
    right_after = _right([v for v in after if v], user)
    return RefitResult(final, len(user), len(own), len(splits), weight,
                       float(np.mean(right_before)), float(np.mean(right_after)),
                       fixed=sum(a and not b for a, b in zip(right_after, right_before)),
                       broken=sum(b and not a for a, b in zip(right_after, right_before)))


def refit_detector(prompts: Sequence[str], responses: Sequence[str], gold: Sequence[str],
                   detector_name: str, src: Path) -> RefitResult:
    """`refit` on top of the detector in use: a `learned:PATH` file's head is the prior (and the
    "before"), any other detector's the shipped head. InputError naming `src` when the labels
    cannot support a refit."""
    file = detector_file(detector_name)
    prior = load_model() if file is None else load_detector_file(file, field="--detector")
    try:
        return refit(prompts, responses, gold, prior)
    except RefitError as exc:
        raise InputError(str(exc), path=src, field="--gold") from None


__all__ = ["RefitError", "RefitResult", "check_labels", "refit", "refit_detector"]
